//! The database: connection pool, schema migrations, and the one place that
//! knows which backend is underneath. Domain modules write their own queries
//! against [`Store::pool`] in SQL both backends accept: `$1`-style
//! placeholders, integers for timestamps and booleans, `CAST` where
//! PostgreSQL would widen a type.
//!
//! SQLite (one file, one node) is the embedded default; PostgreSQL is the
//! store of a cluster of nodes.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// Schema migrations, embedded in the binary, one directory per backend
/// with the same versions.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names a backend this build does not speak.
    #[error(
        "unsupported database_url `{0}`: use sqlite://PATH or postgres://USER:PASS@HOST:PORT/DB"
    )]
    UnsupportedUrl(String),
    /// Connecting or querying failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Which database is underneath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file, one node.
    Sqlite,
    /// Shared by every node of a cluster.
    Postgres,
}

/// Shared handle on the database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    node_id: std::sync::Arc<str>,
}

impl Store {
    /// Opens (creating an SQLite file if needed) the database and applies
    /// migrations. Several nodes may open the same PostgreSQL database at
    /// once: the migrator holds an advisory lock while it works.
    ///
    /// SQLite runs in WAL mode with `synchronous=NORMAL`: a committed write
    /// survives a crash of the router process; only an OS crash or power loss
    /// can lose the last commits.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        };
        let pool = match backend {
            Backend::Sqlite => {
                // Create the file unless the URL says otherwise.
                let url = if url.contains("mode=") {
                    url.to_owned()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                let options: AnyConnectOptions = url.parse()?;
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                let options: AnyConnectOptions = url.parse()?;
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Store {
            pool,
            backend,
            url: url.to_owned(),
            node_id: "local".into(),
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database is underneath.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL the store was opened with (it may carry a password: never
    /// log it, see [`redact`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This node's name in [`Change`] payloads.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Names this node (before anything is sent).
    pub fn set_node_id(&mut self, node_id: &str) {
        self.node_id = node_id.into();
    }

    /// Tells the other nodes about a change made outside a transaction.
    /// Best effort: a node that misses it (its listener was reconnecting)
    /// reloads everything when it reconnects.
    pub async fn notify(&self, change: &Change) {
        if self.backend != Backend::Postgres {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(change.encode(&self.node_id))
            .execute(&self.pool)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, ?change, "change not announced to other nodes");
        }
    }

    /// Tells the other nodes about a change when `conn`'s transaction
    /// commits (and not at all if it rolls back).
    pub async fn notify_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        change: &Change,
    ) -> Result<(), sqlx::Error> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(change.encode(&self.node_id))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Reads a value from the `settings` table.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
    }

    /// Writes a value to the `settings` table.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes a value to the `settings` table unless one is there, and
    /// returns the value that is there afterwards: when several nodes start
    /// together, all of them end up with the first writer's value.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, sqlx::Error> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
    }
}

/// The PostgreSQL channel that carries [`Change`]s between nodes.
pub const CHANGES_CHANNEL: &str = "switchboard_changes";

/// A change to stored state that other nodes hold in memory: sent by the
/// node that made it (PostgreSQL `NOTIFY`, delivered when the transaction
/// commits) and applied by the others to their caches. On SQLite there is
/// one node and nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// Tenants, employees, devices, hunt groups or memberships.
    Directory,
    /// Plugin uploads, chains, plugin settings.
    Plugins,
    /// A tenant's plugin key-value stores, statuses or hotdesk logins.
    PluginState(i64),
    /// The bindings of one address of record.
    Location(i64, String),
    /// The bindings of several addresses of record (one announcement for
    /// a batch of registrations).
    Locations(Vec<(i64, String)>),
    /// Who is on a call.
    Calls,
}

impl Change {
    /// The notification payload: the sending node, then the change.
    pub fn encode(&self, node: &str) -> String {
        match self {
            Change::Directory => format!("{node} dir"),
            Change::Plugins => format!("{node} plugins"),
            Change::PluginState(t) => format!("{node} state {t}"),
            Change::Location(t, aor) => format!("{node} loc {t} {aor}"),
            Change::Locations(aors) => format!(
                "{node} locs {}",
                serde_json::to_string(aors).unwrap_or_else(|_| "[]".into())
            ),
            Change::Calls => format!("{node} calls"),
        }
    }

    /// Reads a payload: (sending node, change); `None` if malformed.
    pub fn decode(payload: &str) -> Option<(&str, Change)> {
        let mut parts = payload.splitn(4, ' ');
        let node = parts.next()?;
        let change = match parts.next()? {
            "dir" => Change::Directory,
            "plugins" => Change::Plugins,
            "state" => Change::PluginState(parts.next()?.parse().ok()?),
            "loc" => Change::Location(parts.next()?.parse().ok()?, parts.next()?.to_owned()),
            "locs" => {
                let rest: Vec<&str> = parts.collect();
                Change::Locations(serde_json::from_str(&rest.join(" ")).ok()?)
            }
            "calls" => Change::Calls,
            _ => return None,
        };
        Some((node, change))
    }
}

/// A URL with its password replaced by `***`, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Numbers the `?` placeholders of a statement built at run time as `$1`,
/// `$2`, ... (the form both backends accept). Statements written out in the
/// source use `$N` directly; this is for those assembled from parts, where
/// counting by hand would break as soon as a part is added. A `?` inside a
/// quoted literal is left alone.
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// Milliseconds since the Unix epoch, the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_counts_placeholders_in_order_and_skips_quoted_ones() {
        assert_eq!(
            numbered("a = ? AND b = '?' AND c IN (?, ?)"),
            "a = $1 AND b = '?' AND c IN ($2, $3)"
        );
    }

    #[test]
    fn changes_survive_their_payload() {
        for c in [
            Change::Directory,
            Change::Plugins,
            Change::PluginState(7),
            Change::Location(3, "2001".into()),
            Change::Locations(vec![(3, "2001".into()), (4, "a b".into())]),
            Change::Calls,
        ] {
            assert_eq!(Change::decode(&c.encode("n1")), Some(("n1", c)));
        }
        assert_eq!(Change::decode("n1 state x"), None);
        assert_eq!(Change::decode("n1"), None);
    }

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://sb:secret@db:5432/sb"),
            "postgres://sb:***@db:5432/sb"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
