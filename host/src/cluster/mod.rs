//! Several routers on one PostgreSQL database. The database is the only
//! coordination point (no consensus of our own): every node keeps caches of
//! what it reads on the call path, and a node that changes stored state
//! announces it (`NOTIFY`, see [`crate::store::Change`]) so the others
//! re-read just that part within milliseconds. A node's listener that loses
//! its connection reloads everything when it is back, since announcements
//! sent meanwhile are lost.
//!
//! Besides the caches, a node keeps a heartbeat in `cluster_nodes`, writes
//! the calls it carries to `active_calls` (so "already on a call" holds
//! whichever node carries the call), and reaps the calls of nodes whose
//! heartbeat stopped. Plugin timers are claimed row by row (see
//! `plugins::state`), so they fire once whichever nodes are alive.
//!
//! On SQLite there is one node: the heartbeat is kept (it is cheap, and the
//! operator sees the node), nothing is announced or listened for.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::mpsc;

use crate::config::ClusterConfig;
use crate::directory::Directory;
use crate::plugins::PluginHost;
use crate::proxy::dialog::{CallEvent, Dialogs, RemoteCalls};
use crate::registrar::Location;
use crate::store::{now_ms, Backend, Change, Store, CHANGES_CHANNEL};

/// This node's identity in the cluster.
#[derive(Debug, Clone)]
pub struct Node {
    /// Unique name (`cluster.node_id`).
    pub id: String,
    /// Where other nodes reach this one over SIP.
    pub advertise: SocketAddr,
}

impl Node {
    /// The node named by the config, or one named after the host and SIP
    /// port (with a random suffix when the port is chosen by the system,
    /// which only tests do).
    pub fn from_config(config: &ClusterConfig, sip_listen: SocketAddr) -> Node {
        let id = config.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            match sip_listen.port() {
                0 => format!("{host}-{:08x}", rand::random::<u32>()),
                port => format!("{host}-{port}"),
            }
        });
        Node {
            id,
            advertise: config.advertise.unwrap_or(sip_listen),
        }
    }
}

/// What a node's cluster tasks update.
pub struct Caches {
    /// Tenants, people, devices, groups.
    pub directory: Arc<Directory>,
    /// Registrations.
    pub location: Arc<Location>,
    /// Plugins, chains, settings, plugin state.
    pub plugins: Arc<PluginHost>,
    /// Who is on a call.
    pub dialogs: Arc<Dialogs>,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Reading or writing the cluster tables failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Another live node already has this name: two nodes with one name
    /// would take each other's calls and flows for their own.
    #[error(
        "cluster.node_id `{node_id}` is in use by a live node at {advertise}; give each node its own"
    )]
    DuplicateNode {
        /// The name.
        node_id: String,
        /// Where the other node is.
        advertise: String,
    },
}

/// Starts the node's cluster tasks; returns them for shutdown.
pub async fn start(
    store: Store,
    node: Node,
    config: ClusterConfig,
    caches: Caches,
) -> Result<Vec<tokio::task::AbortHandle>, ClusterError> {
    let caches = Arc::new(caches);
    // The same name with a fresh heartbeat at another address is another
    // node; at this address it is this node's previous life.
    let existing: Option<(String, i64)> =
        sqlx::query_as("SELECT advertise, heartbeat_at FROM cluster_nodes WHERE node_id = $1")
            .bind(&node.id)
            .fetch_optional(store.pool())
            .await?;
    if let Some((advertise, heartbeat_at)) = existing {
        let alive = heartbeat_at >= now_ms() - config.dead_after_ms as i64;
        if alive && advertise != node.advertise.to_string() {
            return Err(ClusterError::DuplicateNode {
                node_id: node.id,
                advertise,
            });
        }
    }
    beat(&store, &node, now_ms()).await?;
    let mut tasks = vec![tokio::spawn(heartbeat(
        store.clone(),
        node.clone(),
        config,
        caches.clone(),
    ))
    .abort_handle()];
    if store.backend() == Backend::Postgres {
        // Calls this node carried in a previous life are over.
        sqlx::query("DELETE FROM active_calls WHERE node_id = $1")
            .bind(&node.id)
            .execute(store.pool())
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        caches.dialogs.report_to(tx);
        tasks.push(tokio::spawn(calls_writer(store.clone(), node.id.clone(), rx)).abort_handle());
        tasks.push(tokio::spawn(listen(store, node.id, caches)).abort_handle());
    }
    Ok(tasks)
}

async fn beat(store: &Store, node: &Node, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cluster_nodes (node_id, advertise, started_at, heartbeat_at) \
         VALUES ($1, $2, $3, $3) ON CONFLICT (node_id) DO UPDATE SET \
         advertise = excluded.advertise, heartbeat_at = excluded.heartbeat_at",
    )
    .bind(&node.id)
    .bind(node.advertise.to_string())
    .bind(now)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Writes the heartbeat, learns where the live nodes are, and reaps the
/// calls of dead nodes.
async fn heartbeat(store: Store, node: Node, config: ClusterConfig, caches: Arc<Caches>) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.heartbeat_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_ms();
        if let Err(e) = beat(&store, &node, now).await {
            tracing::warn!(error = %e, "cluster heartbeat not written");
            continue;
        }
        let dead_before = now - config.dead_after_ms as i64;
        let reaped = sqlx::query(
            "DELETE FROM active_calls WHERE node_id IN \
             (SELECT node_id FROM cluster_nodes WHERE heartbeat_at < $1)",
        )
        .bind(dead_before)
        .execute(store.pool())
        .await;
        match reaped {
            Ok(r) if r.rows_affected() > 0 => {
                tracing::warn!(
                    calls = r.rows_affected(),
                    "reaped the calls of a node whose heartbeat stopped"
                );
                store.notify(&Change::Calls).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reaping dead nodes' calls"),
        }
        match live_nodes(&store, dead_before).await {
            Ok(nodes) => {
                crate::metrics::set_cluster_nodes_alive(nodes.len() as i64);
                caches.location.set_nodes(nodes);
            }
            Err(e) => tracing::warn!(error = %e, "reading the live nodes"),
        }
    }
}

/// Live nodes and their SIP addresses.
async fn live_nodes(
    store: &Store,
    dead_before: i64,
) -> Result<std::collections::HashMap<Arc<str>, SocketAddr>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT node_id, advertise FROM cluster_nodes WHERE heartbeat_at >= $1")
            .bind(dead_before)
            .fetch_all(store.pool())
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, addr)| Some((Arc::from(id), addr.parse().ok()?)))
        .collect())
}

/// Writes this node's call starts and ends to `active_calls`, in order,
/// batched, and announces each batch.
async fn calls_writer(store: Store, node: String, mut rx: mpsc::UnboundedReceiver<CallEvent>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        if let Err(e) = write_calls(&store, &node, &batch).await {
            tracing::error!(error = %e, "calls in progress not shared with other nodes");
        }
        batch.clear();
    }
}

async fn write_calls(store: &Store, node: &str, batch: &[CallEvent]) -> Result<(), sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    for event in batch {
        match event {
            CallEvent::Started {
                call_id,
                tenant_id,
                parties,
            } => {
                for ext in parties {
                    sqlx::query(
                        "INSERT INTO active_calls (call_id, tenant_id, extension, node_id, started_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(call_id)
                    .bind(tenant_id)
                    .bind(ext)
                    .bind(node)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            CallEvent::Ended {
                call_id,
                tenant_id,
                parties,
            } => {
                sqlx::query("DELETE FROM active_calls WHERE call_id = $1 AND node_id = $2")
                    .bind(call_id)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
                for ext in parties {
                    sqlx::query(
                        "INSERT INTO call_ends (tenant_id, extension, ended_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (tenant_id, extension) DO UPDATE SET ended_at = excluded.ended_at",
                    )
                    .bind(tenant_id)
                    .bind(ext)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
    }
    store.notify_in(&mut tx, &Change::Calls).await?;
    tx.commit().await
}

/// Calls other nodes carry, and when each extension's last call ended.
async fn remote_calls(store: &Store, node: &str) -> Result<RemoteCalls, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT tenant_id, extension, COUNT(*) AS n FROM active_calls \
         WHERE node_id <> $1 GROUP BY tenant_id, extension",
    )
    .bind(node)
    .fetch_all(store.pool())
    .await?;
    let mut out = RemoteCalls::default();
    for r in rows {
        out.active.insert(
            (r.try_get("tenant_id")?, r.try_get("extension")?),
            u32::try_from(r.try_get::<i64, _>("n")?).unwrap_or(u32::MAX),
        );
    }
    let ends: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT tenant_id, extension, ended_at FROM call_ends")
            .fetch_all(store.pool())
            .await?;
    for (t, ext, at) in ends {
        out.last_ended_ms.insert((t, ext), at);
    }
    Ok(out)
}

/// What the listener task hands to the applying loop.
enum Heard {
    /// An announcement's payload.
    Payload(String),
    /// (Re)connected: whatever was announced before may have been missed.
    Connected,
}

/// Listens for other nodes' changes and applies them, a burst at a time.
async fn listen(store: Store, node: String, caches: Arc<Caches>) {
    // Without announcements, other nodes' calls are still re-read this
    // often (a node that died without reaping announces nothing).
    const CALLS_REFRESH: Duration = Duration::from_secs(5);
    let (tx, mut rx) = mpsc::channel(4096);
    // Receiving runs in its own task so that the applying loop's timeout
    // never cancels a half-read message.
    let receiver = tokio::spawn(receive(store.url().to_owned(), tx));
    let _stop_receiver = AbortOnDrop(receiver.abort_handle());
    loop {
        let first = match tokio::time::timeout(CALLS_REFRESH, rx.recv()).await {
            Err(_) => {
                apply(&store, &caches, HashSet::from([Change::Calls])).await;
                continue;
            }
            Ok(None) => return,
            Ok(Some(h)) => h,
        };
        let mut changes = HashSet::new();
        let mut everything = false;
        let mut collect = |heard: Heard| match heard {
            Heard::Connected => everything = true,
            Heard::Payload(p) => match Change::decode(&p) {
                // Our own announcements: our caches already have them,
                // except the calls we reaped for a dead node.
                Some((from, change)) if from == node && change != Change::Calls => {}
                Some((_, change)) => {
                    changes.insert(change);
                }
                None => tracing::warn!(payload = %p, "unreadable cluster announcement"),
            },
        };
        collect(first);
        while let Ok(h) = rx.try_recv() {
            collect(h);
        }
        if everything {
            reload_everything(&store, &caches).await;
        }
        apply(&store, &caches, changes).await;
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn receive(url: String, tx: mpsc::Sender<Heard>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cluster listener cannot connect; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANGES_CHANNEL).await {
            tracing::warn!(error = %e, "cluster listener cannot listen; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if tx.send(Heard::Connected).await.is_err() {
            return;
        }
        loop {
            let heard = match listener.try_recv().await {
                Ok(Some(n)) => Heard::Payload(n.payload().to_owned()),
                // Reconnected underneath: announcements were lost.
                Ok(None) => Heard::Connected,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster listener failed; reconnecting");
                    break;
                }
            };
            if tx.send(heard).await.is_err() {
                return;
            }
        }
    }
}

async fn reload_everything(store: &Store, caches: &Caches) {
    let mut all = HashSet::from([Change::Directory, Change::Plugins, Change::Calls]);
    for t in caches.directory.snapshot().tenant_ids() {
        all.insert(Change::PluginState(t));
    }
    apply(store, caches, all).await;
    if let Err(e) = caches.location.reload_all(store).await {
        tracing::warn!(error = %e, "reloading registrations");
    }
}

async fn apply(store: &Store, caches: &Caches, changes: HashSet<Change>) {
    // The directory first: the others resolve tenants and people with it.
    if changes.contains(&Change::Directory) {
        if let Err(e) = caches.directory.reload().await {
            tracing::warn!(error = %e, "reloading the directory");
        }
    }
    // A burst of registrations is one query per 200 AORs, not one each.
    let mut aors: Vec<(i64, String)> = Vec::new();
    let mut rest = Vec::new();
    for change in changes {
        match change {
            Change::Location(t, aor) => aors.push((t, aor)),
            Change::Locations(list) => aors.extend(list),
            other => rest.push(other),
        }
    }
    if !aors.is_empty() {
        aors.sort();
        aors.dedup();
        if let Err(e) = caches.location.reload_aors(store, &aors).await {
            tracing::warn!(error = %e, aors = aors.len(), "reloading registrations");
        }
    }
    for change in rest {
        let result = match &change {
            Change::Directory => Ok(()),
            Change::Plugins => caches.plugins.resync().await.map_err(|e| e.to_string()),
            Change::PluginState(t) => caches
                .plugins
                .state()
                .reload_tenant(*t)
                .await
                .map_err(|e| e.to_string()),
            Change::Location(..) | Change::Locations(..) => Ok(()),
            Change::Calls => remote_calls(store, store.node_id())
                .await
                .map(|r| caches.dialogs.set_remote(r))
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(?change, error = %e, "applying another node's change");
        }
    }
}
