//! Switchboard: a programmable SIP call router.
//!
//! Modules in reading order: configuration and storage, the directory of
//! tenants, the SIP wire layer and transport, transactions, the registrar,
//! the proxy that routes calls, call history, and the HTTP admin API.
//! [`run`] wires them together.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod directory;
pub mod history;
pub mod locate;
pub mod media;
pub mod metrics;
pub mod pipeline;
pub mod plugins;
pub mod proxy;
pub mod registrar;
pub mod sip;
pub mod store;
pub mod transaction;
pub mod transport;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use config::Config;
use directory::Directory;
use history::History;
use proxy::{ProxySettings, Router, RouterHandler};
use registrar::{Location, Registrar};
use store::Store;
use transaction::{Timers, Transactions};
use transport::Transport;

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A query at start failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The demo tenant could not be created.
    #[error("demo seed: {0}")]
    Seed(#[from] directory::provision::ProvisionError),
    /// The plugin runtime could not start.
    #[error("plugins: {0}")]
    Plugins(#[from] plugins::PluginError),
    /// The TLS certificate or key could not be used.
    #[error("tls: {0}")]
    Tls(#[from] transport::tls::TlsError),
    /// The node could not join its cluster.
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
}

/// A running router.
#[derive(Debug)]
pub struct Running {
    /// SIP address (UDP and TCP).
    pub sip_addr: SocketAddr,
    /// SIP over TLS address, when TLS is on.
    pub tls_addr: Option<SocketAddr>,
    /// IPv6 SIP address (UDP and TCP), when `sip.listen_v6` is set.
    pub sip_addr_v6: Option<SocketAddr>,
    /// HTTP admin address.
    pub http_addr: SocketAddr,
    /// Bearer token of the bootstrap administrator.
    pub admin_token: String,
    /// Demo tenant created at this start, if any.
    pub demo: Option<directory::demo::DemoInfo>,
    router: Arc<Router>,
    store: Store,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Running {
    /// The router (for tests that look at its state).
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.router.directory
    }

    /// Stops listening and background work. Committed state stays in the
    /// database for the next start.
    pub async fn shutdown(self) {
        self.router.transport.shutdown();
        self.router.plugins().stop();
        for t in &self.tasks {
            t.abort();
        }
        self.store.pool().close().await;
    }
}

/// The Record-Route MAC key: made once and kept in the database, so every
/// router on the database (and every start of one) signs alike.
async fn route_key(store: &Store) -> Result<[u8; 32], StartError> {
    // Nodes starting together on an empty database all keep the first
    // writer's key.
    let fresh: [u8; 32] = rand::random();
    let hex_key = store
        .setting_or_insert("route_key", &hex::encode(fresh))
        .await?;
    let mut key = [0u8; 32];
    if hex::decode_to_slice(hex_key.trim(), &mut key).is_ok() {
        return Ok(key);
    }
    tracing::warn!("stored route_key is not 64 hex digits; making a new one");
    let key: [u8; 32] = rand::random();
    store.set_setting("route_key", &hex::encode(key)).await?;
    Ok(key)
}

/// Starts the router: database, directory, registrar, SIP and HTTP.
pub async fn run(config: Config) -> Result<Running, StartError> {
    let mut store = Store::open(&config.database_url).await?;
    let mut node = cluster::Node::from_config(&config.cluster, config.sip.listen);
    store.set_node_id(&node.id);
    let directory =
        Arc::new(Directory::load(store.clone(), config.sip.default_domain.clone()).await?);
    let demo = if config.seed_demo {
        directory::demo::seed_demo(&store, &directory).await?
    } else {
        None
    };
    let admin_token = match &config.admin_token {
        Some(t) => t.clone(),
        None => {
            let fresh = format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            );
            store.setting_or_insert("admin_token", &fresh).await?
        }
    };
    let location = Location::load(store.clone()).await?;
    let registrar = Arc::new(Registrar::new(
        location.clone(),
        config.registrar.clone(),
        Duration::from_secs(config.sip.nonce_ttl_secs),
    ));
    let timers = Timers {
        t1: Duration::from_millis(config.sip.t1_ms),
        t2: Duration::from_millis(config.sip.t2_ms),
        t4: Duration::from_millis(config.sip.t4_ms),
    };
    let txns = Transactions::new(timers);
    let tls = match config.tls() {
        Some((addr, files)) => Some((addr, transport::tls::Tls::load(files)?)),
        None => None,
    };
    let transport = Transport::bind(
        config.sip.listen,
        config.sip.listen_v6,
        transport::TcpPolicy::from(&config.sip.tcp),
        tls,
    )
    .await
    .map_err(|source| StartError::Bind {
        addr: config.sip.tls_listen.unwrap_or(config.sip.listen),
        source,
    })?;
    let sip_addr = transport.local_addr();
    if config.cluster.advertise.is_none() {
        node.advertise = sip_addr;
        if store.backend() == store::Backend::Postgres && sip_addr.ip().is_unspecified() {
            tracing::warn!(
                %sip_addr,
                "cluster.advertise is not set: other nodes cannot send calls through this one"
            );
        }
    }
    let history = History::start(store.clone());
    let dialogs = Arc::new(proxy::Dialogs::default());
    let presence = Arc::new(proxy::LivePresence {
        location: location.clone(),
        dialogs: dialogs.clone(),
        directory: directory.clone(),
        bound: std::sync::OnceLock::new(),
    });
    let mut plugin_config = config.plugins.runtime();
    plugin_config.timer_takeover = Duration::from_millis(config.cluster.timer_takeover_ms);
    let plugin_host = plugins::PluginHost::start(
        plugin_config,
        store.clone(),
        directory.clone(),
        presence.clone(),
    )
    .await?;
    let _ = presence.bound.set(Arc::downgrade(plugin_host.state()));
    if let Some(demo) = &demo {
        // New tenants get the product plugins, in the documented order.
        if let Some(t) = directory.tenant_for(&demo.domain) {
            plugin_host.enable_defaults(t.tenant.id).await?;
        }
    }
    let mut proxy_settings = ProxySettings::from_config(&config, sip_addr.port());
    proxy_settings.route_key = route_key(&store).await?;
    proxy_settings.tls_port = transport.tls_addr().map(|a| a.port());
    if let (Some(v6), Some(bound)) = (proxy_settings.v6.as_mut(), transport.local_addr_v6()) {
        v6.port = bound.port();
    }
    let router = Router::new(
        transport.clone(),
        txns.clone(),
        directory.clone(),
        registrar.clone(),
        history.clone(),
        dialogs,
        plugin_host,
        proxy_settings,
        locate::Locator::new(&config.sip.dns_servers),
        Arc::new(media::Media::new(
            &config.media,
            config.sip.listen.ip(),
            store.clone(),
        )),
    );
    transport.start(Arc::new(RouterHandler(router.clone())));

    let mut tasks = cluster::start(
        store.clone(),
        node,
        config.cluster.clone(),
        cluster::Caches {
            directory: directory.clone(),
            location: location.clone(),
            plugins: router.plugins().clone(),
            dialogs: router.dialogs().clone(),
        },
    )
    .await?;
    let t = txns.clone();
    tasks.push(
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                t.reap();
            }
        })
        .abort_handle(),
    );
    let (r, s, h, d, rt) = (
        registrar.clone(),
        store.clone(),
        history.clone(),
        router.dialogs().clone(),
        router.clone(),
    );
    tasks.push(
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                for dialog in d.sweep(rt.settings.dialog_max_idle) {
                    tracing::info!(record = %dialog.record_id, "idle call reaped");
                    h.ended(&dialog.record_id, store::now_ms());
                    rt.call_ended(&dialog);
                }
                if !n.is_multiple_of(15) {
                    continue;
                }
                let expired = r.location().sweep();
                rt.registrations_expired(expired);
                r.digest().sweep();
                if let Err(e) = registrar::location::purge_expired(&s).await {
                    tracing::warn!(error = %e, "purging expired registrations");
                }
            }
        })
        .abort_handle(),
    );

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.http.listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.http.listen,
        source,
    })?;
    let app = admin::app(
        admin::AdminState::new(
            store.clone(),
            directory.clone(),
            admin_token.clone(),
            router.clone(),
        )
        .with_console(web::Console::new(
            config.http.secure_cookies,
            config.http.max_console_streams,
        )),
    )
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tasks.push(
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "http server stopped");
            }
        })
        .abort_handle(),
    );
    tracing::info!(%sip_addr, %http_addr, "switchboard started");
    Ok(Running {
        sip_addr,
        tls_addr: router.transport.tls_addr(),
        sip_addr_v6: router.transport.local_addr_v6(),
        http_addr,
        admin_token,
        demo,
        router,
        store,
        tasks,
    })
}
