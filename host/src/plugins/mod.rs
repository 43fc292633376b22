//! The plugin runtime: tenants' WebAssembly components, run with wasmtime's
//! component model under a deadline and a memory cap, in the order each
//! tenant configured.
//!
//! - One [`wasmtime::Engine`] with epoch interruption (a ticker thread
//!   advances the epoch every millisecond) and the pooling allocator.
//!   Compiled code is cached on disk by wasmtime, keyed by content hash, so
//!   a restart does not recompile.
//! - Each plugin version is compiled once into an `InstancePre`; every
//!   decision instantiates it into a fresh `Store` (no state survives a call
//!   except through the host's key-value store).
//! - A trap, a missed deadline, the memory cap or an invalid decision counts
//!   as `continue` and as a fault; [`PluginConfig::fault_limit`] faults within
//!   [`PluginConfig::fault_window`] switch the plugin off for that tenant,
//!   with the reason stored.

mod bindings;
mod compat;
pub mod harness;
mod imports;
pub mod state;
pub mod wasi;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use sha2::Digest as _;
use sqlx::Row;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, ResourceLimiter, Store};

use crate::directory::{Directory, TenantDirectory};
use crate::pipeline::{Decision, Input, Point, Verdict};
use crate::store::{now_ms, Change, Store as Db};

pub use state::{PluginState, Status};

/// Guest components built from `plugins/` into the binary.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

    /// A built-in guest's wasm by crate name.
    pub fn get(name: &str) -> Option<&'static [u8]> {
        ALL.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
    }
}

/// Built-in plugins offered to every tenant (test guests are not).
pub const PRODUCT_PLUGINS: &[&str] = &[
    "hotdesk",
    "hunt-status",
    "delegation",
    "schedule",
    "divert",
    "example-blocklist",
];

/// The chain a new tenant starts with, in this order: feature codes and
/// logins first (hotdesk, hunt-status), then who rings: delegation (a boss's
/// calls go to the delegates, whatever the boss's diverts say), schedules
/// (absences and working hours before diverts), diverts last.
/// `example-blocklist` is offered, not enabled.
pub const DEFAULT_CHAIN: &[&str] = &["hotdesk", "hunt-status", "delegation", "schedule", "divert"];

/// Sandbox and fault settings.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// Longest a plugin may run per call.
    pub deadline: Duration,
    /// Largest linear memory a plugin may have (bytes), unless the
    /// operator set another for its tenant.
    pub memory_limit: usize,
    /// The most memory any tenant's instance may be given (bytes): the
    /// instance pool is sized for it.
    pub memory_ceiling: usize,
    /// Largest component a tenant may upload (bytes).
    pub max_upload: usize,
    /// Where compiled code is cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Faults within [`PluginConfig::fault_window`] that switch a plugin off.
    pub fault_limit: usize,
    /// See [`PluginConfig::fault_limit`].
    pub fault_window: Duration,
    /// A timer this late is fired by whichever node sees it first: the
    /// node that set it has died (or is stuck).
    pub timer_takeover: Duration,
    /// Plugin instances that may exist at once on this node (the pooling
    /// allocator's slots; idle instances kept for reuse take up to half).
    pub pool_slots: u32,
    /// Core instances (and memories, tables) one plugin may create: a
    /// component from componentize-py is made of many modules.
    pub max_core_instances: u32,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            deadline: Duration::from_millis(10),
            memory_limit: 16 << 20,
            memory_ceiling: 64 << 20,
            max_upload: 32 << 20,
            cache_dir: None,
            fault_limit: 5,
            timer_takeover: Duration::from_secs(2),
            fault_window: Duration::from_secs(60),
            pool_slots: 64,
            max_core_instances: 32,
        }
    }
}

/// The limits one tenant's plugins run under (see [`PluginHost::limits_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// Longest one decision may run.
    pub deadline: Duration,
    /// Memory cap of one instance (bytes).
    pub memory: usize,
    /// Largest upload (bytes).
    pub upload: usize,
}

/// Why a plugin could not be loaded, stored or configured.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Not a component of our world, too big, or does not compile.
    #[error("invalid plugin: {0}")]
    Invalid(String),
    /// The plugin refused the settings.
    #[error("{0}")]
    Settings(String),
    /// No such plugin for this tenant.
    #[error("unknown plugin `{0}`")]
    Unknown(String),
    /// The database failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// wasmtime failed to set up.
    #[error("plugin engine: {0}")]
    Engine(String),
    /// A concurrent upload of the same plugin stored its version first.
    #[error("{0}")]
    Conflict(String),
    /// The tenant's previous plugin job (compile, validate) is still running.
    #[error("{0}")]
    Busy(String),
}

/// The functions of `switchboard:plugin/host@0.2.0`, read from the
/// contract this router implements.
fn host_functions() -> &'static std::collections::HashSet<String> {
    static NAMES: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        include_str!("../../../wit/host.wit")
            .lines()
            .filter_map(|l| l.trim().split_once(": func"))
            .map(|(name, _)| name.trim().to_owned())
            .collect()
    })
}

/// The contract's interfaces a plugin may import (0.2.0's host has the
/// same functions).
const HOST_INTERFACE: &str = "switchboard:plugin/host@0.3.0";
const TYPES_INTERFACE: &str = "switchboard:plugin/types@0.3.0";
/// The contract's world and handler.
const WORLD: &str = "switchboard:plugin/plugin@0.3.0";
const HANDLER_INTERFACE: &str = "switchboard:plugin/handler@0.3.0";

/// Refuses a component that imports what the host does not provide (it
/// would fault on every call): an interface other than the contract's and
/// WASI, or a host function this version of the contract lacks. WASI
/// imports are allowed: std builds carry them (see the world's docs).
fn check_imports(engine: &Engine, component: &Component) -> Result<(), PluginError> {
    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        if name.starts_with("wasi:") || name == TYPES_INTERFACE || name == compat::TYPES_INTERFACE {
            continue;
        }
        if name != HOST_INTERFACE && name != compat::HOST_INTERFACE {
            return Err(PluginError::Invalid(format!(
                "imports `{name}`, which this router does not provide (a plugin may import {HOST_INTERFACE} and WASI)"
            )));
        }
        if let wasmtime::component::types::ComponentItem::ComponentInstance(inst) = item.ty {
            for (func, f) in inst.exports(engine) {
                let is_func = matches!(
                    f.ty,
                    wasmtime::component::types::ComponentItem::ComponentFunc(_)
                );
                if is_func && !host_functions().contains(func) {
                    return Err(PluginError::Invalid(format!(
                        "imports `{name}#{func}`, which this router does not provide (built against another version of the contract?)"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// One fault of a plugin: when, in which call, why.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Fault {
    /// Unix ms.
    pub at: i64,
    /// The call's history id (empty outside a call: settings, timers).
    pub call_id: String,
    /// What went wrong, as the runtime saw it.
    pub reason: String,
}

/// Lines of plugin output logged per second per tenant and plugin.
pub const OUTPUT_LINES_PER_SECOND: usize = 100;

/// Faults kept per (tenant, plugin).
pub const RECENT_FAULTS: usize = 50;

/// What the runtime needs to know about calls in progress.
pub trait Presence: Send + Sync + std::fmt::Debug {
    /// Whether the extension (or one of its devices, or a hotdesk device
    /// it is logged in at) is registered.
    fn is_registered(&self, tenant_id: i64, extension: &str) -> bool;
    /// Whether the extension's own account or a device it owns is
    /// registered (hotdesk logins not counted).
    fn home_registered(&self, tenant_id: i64, extension: &str) -> bool;
    /// Answered calls the extension is on.
    fn active_calls(&self, tenant_id: i64, extension: &str) -> u32;
}

/// A compiled plugin version.
pub struct Loaded {
    /// Name.
    pub name: String,
    /// Version (1, 2, ... per name and owner).
    pub version: i64,
    /// SHA-256 of the wasm, hex.
    pub sha256: String,
    /// Points it handles.
    pub points: Vec<Point>,
    /// Owning tenant (`None`: built in).
    pub owner: Option<i64>,
    pre: Pre,
    /// Decisions run.
    pub calls: AtomicU64,
    /// Faults.
    pub faults: AtomicU64,
    /// How long its decisions take.
    pub latency: crate::metrics::Histogram,
    /// The most memory one of its instances has held (bytes, all of the
    /// instance's memories together): what a plugin costs per instance.
    pub memory_peak: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// One entry of a tenant's chain.
#[derive(Debug, Clone)]
pub struct ChainEntry {
    /// The plugin (newest version visible to the tenant).
    pub plugin: Arc<Loaded>,
    /// Enabled?
    pub enabled: bool,
    /// Why it was switched off, if it was.
    pub disabled_reason: Option<String>,
}

/// A plugin's name and owning tenant (`None`: built in).
type PluginKey = (String, Option<i64>);

/// State of one plugin call.
pub(crate) struct CallState {
    tenant: Arc<TenantDirectory>,
    plugin: String,
    call_id: String,
    shared: Arc<PluginState>,
    annotations: Vec<String>,
    limits: Limits,
    /// The call's WASI: captured output, resources.
    wasi: wasi::Wasi,
    /// Counts this store (and its instance) in `/metrics` while it lives.
    _gauge: crate::metrics::PluginInstanceGauge,
}

/// A plugin instance's limits: the memory cap counts every memory of the
/// instance together (a component of many modules has several), so one
/// instance never holds more than `memory_cap` however it is built.
#[derive(Debug)]
struct Limits {
    memory_cap: usize,
    memory_used: usize,
    instances: usize,
}

/// Memories one instance may have (componentize-py's components have a
/// few); each counts against the one cap.
const MAX_MEMORIES: usize = 8;
/// Tables one instance may have, and their largest size.
const MAX_TABLES: usize = 64;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self
            .memory_used
            .saturating_sub(current)
            .saturating_add(desired);
        if after > self.memory_cap {
            return Err(wasmtime::Error::msg(format!(
                "forcing trap when growing memory to {after} bytes in all"
            )));
        }
        self.memory_used = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::msg("forcing trap when growing a table"));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

impl wasi::HasWasi for CallState {
    fn wasi(&mut self) -> &mut wasi::Wasi {
        &mut self.wasi
    }
}

/// The runtime.
pub struct PluginHost {
    /// This host, for the instances it prepares off the call path.
    me: std::sync::Weak<PluginHost>,
    engine: Engine,
    config: PluginConfig,
    db: Db,
    directory: Arc<Directory>,
    state: Arc<PluginState>,
    /// (name, owner) -> newest compiled version.
    plugins: RwLock<HashMap<PluginKey, Arc<Loaded>>>,
    chains: RwLock<HashMap<i64, Arc<Vec<ChainEntry>>>>,
    faults: Mutex<HashMap<(i64, String), VecDeque<Instant>>>,
    /// The last faults of each (tenant, plugin) with their reasons, for the
    /// tenant's administrators (this node's; newest last).
    recent_faults: Mutex<HashMap<(i64, String), VecDeque<Fault>>>,
    /// Output lines logged this second per (tenant, plugin).
    output_budget: Mutex<HashMap<(i64, String), (u64, usize)>>,
    /// Instances that finished a call cleanly, kept for the next call of
    /// the same tenant and plugin version (see [`PluginHost::decide`]).
    idle: Mutex<HashMap<IdleKey, Vec<Idle>>>,
    idle_count: std::sync::atomic::AtomicUsize,
    /// Timers fired into plugins by this node.
    timers_fired: std::sync::atomic::AtomicU64,
    stop: Arc<AtomicBool>,
    /// One admin-side plugin job (compile, validate) at a time per owner
    /// (`None`: the platform's built-ins), so no tenant can occupy more
    /// than one blocking thread with plugin work.
    admin_jobs: Mutex<HashMap<Option<i64>, Arc<tokio::sync::Semaphore>>>,
}

/// Tenant, plugin name and version.
/// (tenant, plugin name, sha256 of the component): the code itself, so an
/// instance of a refused or deleted upload is never taken for another one
/// that got the same version number.
type IdleKey = (i64, String, String);

struct Idle {
    store: Store<CallState>,
    instance: Guest,
}

/// A compiled component, by the contract version it was built against.
enum Pre {
    V3(bindings::PluginPre<CallState>),
    V2(compat::PluginPre<CallState>),
}

impl Pre {
    fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Guest> {
        Ok(match self {
            Pre::V3(p) => Guest::V3(p.instantiate(&mut *store)?),
            Pre::V2(p) => Guest::V2(p.instantiate(&mut *store)?),
        })
    }
}

/// An instance, by contract version; calls are made in 0.3.0's types.
enum Guest {
    V3(bindings::Plugin),
    V2(compat::Plugin),
}

impl Guest {
    fn points(&self, store: &mut Store<CallState>) -> wasmtime::Result<Vec<Point>> {
        Ok(match self {
            Guest::V3(g) => g
                .switchboard_plugin_handler()
                .call_points(store)?
                .into_iter()
                .map(Point::from)
                .collect(),
            Guest::V2(g) => g
                .switchboard_plugin_handler()
                .call_points(store)?
                .into_iter()
                .map(|p| Point::from(compat::point_up(p)))
                .collect(),
        })
    }

    fn decide(
        &self,
        store: &mut Store<CallState>,
        point: Point,
        input: &bindings::wit::PointInput,
    ) -> wasmtime::Result<bindings::wit::Decision> {
        match self {
            Guest::V3(g) => g
                .switchboard_plugin_handler()
                .call_decide(store, point.into(), input),
            Guest::V2(g) => match compat::point(point.into()) {
                Some(old) => Ok(compat::decision(
                    g.switchboard_plugin_handler().call_decide(
                        store,
                        old,
                        &compat::input(input),
                    )?,
                )),
                None => Ok(bindings::wit::Decision::Continue),
            },
        }
    }

    fn validate_settings(
        &self,
        store: &mut Store<CallState>,
        scope: &str,
        json: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Guest::V3(g) => g
                .switchboard_plugin_handler()
                .call_validate_settings(store, scope, json),
            Guest::V2(g) => g
                .switchboard_plugin_handler()
                .call_validate_settings(store, scope, json),
        }
    }
}

/// Idle instances kept in all (each holds a pool slot).
/// Idle instances kept at most, as a share of the pool.
const MAX_IDLE_SHARE: usize = 2;
/// Idle instances kept per tenant and plugin.
const MAX_IDLE_PER_KEY: usize = 4;

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.config)
            .finish()
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Deadline for calls outside a call's path (`points`, `validate-settings`):
/// an admin waits for these, a caller does not; short all the same, since
/// each one holds a core.
const ADMIN_DEADLINE: Duration = Duration::from_millis(200);

/// How long an admin request waits for its tenant's previous plugin job.
const ADMIN_QUEUE_WAIT: Duration = Duration::from_secs(2);

fn engine(config: &PluginConfig) -> Result<Engine, PluginError> {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    // Plugin calls run synchronously on the runtime's threads, so at most a
    // few dozen instances exist at once; a small pool keeps the address
    // space and mapping count modest.
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    let slots = config.pool_slots.max(1);
    let per = config.max_core_instances.max(1);
    // Most plugins are one core module; a few big ones (Python) are many.
    pool.total_component_instances(slots)
        .total_core_instances(slots * 2 + per)
        .total_memories(slots * 2 + MAX_MEMORIES as u32)
        .total_tables(slots * 2 + MAX_TABLES as u32)
        .total_stacks(slots)
        .max_core_instances_per_component(per)
        .max_memories_per_component(MAX_MEMORIES as u32)
        .max_tables_per_component(MAX_TABLES as u32)
        .max_memory_size(config.memory_ceiling.max(config.memory_limit));
    c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    // Explicit bounds checks instead of 4 GiB reservations per memory: a
    // thousand concurrent instances must fit in the address space.
    c.memory_reservation(config.memory_ceiling.max(config.memory_limit) as u64);
    c.memory_guard_size(64 << 10);
    if let Some(dir) = &config.cache_dir {
        let mut cc = wasmtime::CacheConfig::new();
        cc.with_directory(dir.clone());
        let cache = wasmtime::Cache::new(cc).map_err(|e| PluginError::Engine(e.to_string()))?;
        c.cache(Some(cache));
    }
    Engine::new(&c).map_err(|e| PluginError::Engine(e.to_string()))
}

impl PluginHost {
    /// Starts the runtime: registers the built-in plugins, loads every
    /// stored plugin and chain, and starts the epoch ticker and timers.
    pub async fn start(
        config: PluginConfig,
        db: Db,
        directory: Arc<Directory>,
        presence: Arc<dyn Presence>,
    ) -> Result<Arc<PluginHost>, PluginError> {
        let engine = engine(&config)?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            // The ticker is a thread, not a task: it must tick while every
            // runtime worker is busy running plugins. It also ends with the
            // runtime that started it (whose task holds `alive`), so a host
            // that is never stopped explicitly does not tick forever.
            let (alive, watch) = tokio::sync::watch::channel(());
            tokio::spawn(async move {
                let _alive = alive;
                std::future::pending::<()>().await;
            });
            std::thread::Builder::new()
                .name("plugin-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) && watch.has_changed().is_ok() {
                        std::thread::sleep(Duration::from_millis(1));
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| PluginError::Engine(e.to_string()))?;
        }
        let state = PluginState::load(db.clone(), directory.clone(), presence).await?;
        let host = Arc::new_cyclic(|me| PluginHost {
            me: me.clone(),
            engine,
            config,
            db,
            directory,
            state,
            plugins: RwLock::new(HashMap::new()),
            chains: RwLock::new(HashMap::new()),
            faults: Mutex::new(HashMap::new()),
            recent_faults: Mutex::new(HashMap::new()),
            output_budget: Mutex::new(HashMap::new()),
            idle: Mutex::new(HashMap::new()),
            idle_count: std::sync::atomic::AtomicUsize::new(0),
            timers_fired: std::sync::atomic::AtomicU64::new(0),
            stop,
            admin_jobs: Mutex::new(HashMap::new()),
        });
        for name in PRODUCT_PLUGINS {
            if let Some(wasm) = builtin::get(name) {
                host.store_plugin(name, wasm, None).await?;
            }
        }
        host.load_all().await?;
        host.state
            .start_timers(Arc::downgrade(&host), host.config.timer_takeover);
        Ok(host)
    }

    /// Stops the epoch ticker: plugin calls after this trap at once.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Prometheus histograms of every loaded plugin version's call latency,
    /// and the most memory one of its instances has held.
    pub fn render_latency(&self, out: &mut String) {
        let mut all: Vec<Arc<Loaded>> = self.plugins.read().values().cloned().collect();
        all.sort_by(|a, b| (&a.name, a.owner, a.version).cmp(&(&b.name, b.owner, b.version)));
        let labels = |p: &Loaded| {
            let owner = p
                .owner
                .map(|t| t.to_string())
                .unwrap_or_else(|| "builtin".into());
            format!(
                "plugin=\"{}\",version=\"{}\",owner=\"{owner}\"",
                p.name, p.version
            )
        };
        out.push_str("# TYPE switchboard_plugin_call_duration_seconds histogram\n");
        for p in &all {
            p.latency
                .render(out, "switchboard_plugin_call_duration_seconds", &labels(p));
        }
        out.push_str("# TYPE switchboard_plugin_instance_memory_peak_bytes gauge\n");
        for p in &all {
            out.push_str(&format!(
                "switchboard_plugin_instance_memory_peak_bytes{{{}}} {}\n",
                labels(p),
                p.memory_peak.load(Ordering::Relaxed)
            ));
        }
    }

    /// The shared plugin state (settings, key-value, statuses).
    pub fn state(&self) -> &Arc<PluginState> {
        &self.state
    }

    /// Sandbox settings.
    pub fn config(&self) -> &PluginConfig {
        &self.config
    }

    /// The limits a tenant's plugins run under: the operator's overrides
    /// for the tenant, else the `[plugins]` defaults (memory never above
    /// the pool's ceiling).
    pub fn limits_for(&self, tenant: &TenantDirectory) -> TenantLimits {
        let o = tenant.tenant.plugin_limits;
        TenantLimits {
            deadline: o.deadline_ms.map_or(self.config.deadline, |ms| {
                Duration::from_millis(u64::from(ms))
            }),
            memory: o
                .memory_mib
                .map_or(self.config.memory_limit, |m| (m as usize) << 20)
                .min(self.config.memory_ceiling.max(self.config.memory_limit)),
            upload: o
                .upload_kib
                .map_or(self.config.max_upload, |k| (k as usize) << 10),
        }
    }

    /// Runs admin-side plugin work for `owner` off the async runtime (on
    /// the blocking pool, one job per owner at a time), so a slow or looping
    /// plugin stalls no SIP message of anyone.
    async fn admin_job<R: Send + 'static>(
        self: &Arc<Self>,
        owner: Option<i64>,
        job: impl FnOnce(&PluginHost) -> Result<R, PluginError> + Send + 'static,
    ) -> Result<R, PluginError> {
        let sem = self
            .admin_jobs
            .lock()
            .entry(owner)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
            .clone();
        let busy = || {
            PluginError::Busy("the tenant's previous plugin job is still running; try again".into())
        };
        let permit = tokio::time::timeout(ADMIN_QUEUE_WAIT, sem.acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job(&me)
        })
        .await
        .map_err(|e| PluginError::Engine(format!("plugin job: {e}")))?
    }

    fn compile(
        &self,
        name: &str,
        version: i64,
        owner: Option<i64>,
        wasm: &[u8],
    ) -> Result<Loaded, PluginError> {
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| PluginError::Invalid(format!("not a valid component: {e:#}")))?;
        check_imports(&self.engine, &component)?;
        let mut linker: Linker<CallState> = Linker::new(&self.engine);
        bindings::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        compat::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        // The benign part of WASI (printing, clocks, randomness, exit);
        // files and sockets stay traps that name the call.
        wasi::World::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        wasi::stub_the_rest(&self.engine, &mut linker, &component)
            .map_err(|e| PluginError::Invalid(format!("imports: {e:#}")))?;
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        // A component built against the frozen 0.2.0 exports its handler.
        let old = exports.iter().any(|n| n == compat::HANDLER_INTERFACE);
        let world = if old { compat::WORLD } else { WORLD };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Invalid(format!("does not fit world {world}: {e:#}")))?;
        let not_exported = |e: wasmtime::Error| {
            let list: Vec<String> = exports.iter().map(|n| format!("`{n}`")).collect();
            PluginError::Invalid(format!(
                "does not export {HANDLER_INTERFACE} or {} (it exports {}; build it against this router's wit/): {e:#}",
                compat::HANDLER_INTERFACE,
                if list.is_empty() { "nothing".to_owned() } else { list.join(", ") }
            ))
        };
        let pre = if old {
            Pre::V2(compat::PluginPre::new(pre).map_err(not_exported)?)
        } else {
            Pre::V3(bindings::PluginPre::new(pre).map_err(not_exported)?)
        };
        let mut loaded = Loaded {
            name: name.to_owned(),
            version,
            sha256: hex::encode(sha2::Sha256::digest(wasm)),
            points: Vec::new(),
            owner,
            pre,
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            latency: crate::metrics::Histogram::default(),
            memory_peak: std::sync::atomic::AtomicUsize::new(0),
        };
        let (points, _) = self
            .with_instance(&loaded, None, "", ADMIN_DEADLINE, |p, store| {
                p.points(store)
            })
            .map_err(|e| PluginError::Invalid(format!("points() failed: {e}")))?;
        loaded.points = points;
        Ok(loaded)
    }

    fn new_store(
        &self,
        plugin: &Loaded,
        tenant: Arc<TenantDirectory>,
        call_id: &str,
    ) -> Store<CallState> {
        let memory_cap = self.limits_for(&tenant).memory;
        let state = CallState {
            tenant,
            plugin: plugin.name.clone(),
            call_id: call_id.to_owned(),
            shared: self.state.clone(),
            annotations: Vec::new(),
            wasi: wasi::Wasi::default(),
            limits: Limits {
                memory_cap,
                memory_used: 0,
                instances: self.config.max_core_instances.max(1) as usize,
            },
            _gauge: crate::metrics::PluginInstanceGauge::hold(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store
    }

    /// What went wrong in a plugin, in words a plugin's author can act on
    /// (wasmtime's own text says `wasm trap: interrupt` for a deadline).
    fn plain_reason(&self, e: &wasmtime::Error, deadline: Duration, memory_cap: usize) -> String {
        let full = format!("{e:#}");
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            match trap {
                wasmtime::Trap::Interrupt => {
                    return format!("deadline of {} ms exceeded", deadline.as_millis())
                }
                wasmtime::Trap::UnreachableCodeReached => {
                    return format!(
                        "trapped: unreachable code (a panic or abort in the plugin) ({full})"
                    )
                }
                wasmtime::Trap::StackOverflow => return "stack overflow".to_owned(),
                _ => {}
            }
        }
        if full.contains("forcing trap when growing memory")
            || full.contains("memory minimum size")
            || full.contains("exceeds memory limits")
        {
            return format!("memory cap of {} MiB exceeded ({full})", memory_cap >> 20);
        }
        if let Some(import) = full
            .split("unknown import: `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
        {
            return format!(
                "called `{import}`, which plugins cannot use: no files or sockets (wit/world.wit)"
            );
        }
        full
    }

    /// Writes what a call printed to the log (tagged with tenant, plugin
    /// and call; at most [`OUTPUT_LINES_PER_SECOND`] lines a second per
    /// tenant and plugin), and turns a fault's reason into the panic's
    /// message when the plugin printed one.
    fn emit_output(
        &self,
        store: &mut Store<CallState>,
        plugin: &Loaded,
        tenant_id: i64,
        call_id: &str,
        fault: Option<String>,
    ) -> Option<String> {
        let panicked = store.data().wasi.panic_message();
        let (out, err, dropped) = store.data_mut().wasi.take_output();
        // A panic ends in an `unreachable` trap; only then is the message
        // on stderr the reason (not for a deadline hit after a print).
        let fault = match (fault, panicked) {
            (Some(f), Some(message)) if f.starts_with("trapped: unreachable") => {
                Some(format!("panicked: {message}"))
            }
            (f, _) => f,
        };
        if out.is_empty() && err.is_empty() {
            return fault;
        }
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let lines: Vec<(&str, &str)> = out
            .lines()
            .map(|l| ("stdout", l))
            .chain(err.lines().map(|l| ("stderr", l)))
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        let allowed = {
            let mut budget = self.output_budget.lock();
            if budget.len() > 10_000 {
                budget.retain(|_, (s, _)| *s == second);
            }
            let (at, used) = budget
                .entry((tenant_id, plugin.name.clone()))
                .or_insert((second, 0));
            if *at != second {
                *at = second;
                *used = 0;
            }
            let room = OUTPUT_LINES_PER_SECOND.saturating_sub(*used);
            let take = room.min(lines.len());
            *used += take;
            take
        };
        for (stream, line) in &lines[..allowed] {
            tracing::info!(tenant = tenant_id, plugin = %plugin.name, call = call_id, stream, "plugin: {line}");
        }
        if allowed < lines.len() || dropped > 0 {
            tracing::warn!(tenant = tenant_id, plugin = %plugin.name, call = call_id,
                lines = lines.len() - allowed, bytes = dropped, "plugin output dropped (over the limit)");
        }
        fault
    }

    /// Runs `f` under the sandbox limits on an instance of `plugin`: a fresh
    /// one, or for a tenant's call one that finished an earlier call of the
    /// same tenant cleanly. Instantiating costs more than most decisions, so
    /// instances are reused; one that trapped or ran out of time is dropped.
    /// Plugins must not rely on globals surviving, nor on them being reset.
    fn with_instance<R>(
        &self,
        plugin: &Loaded,
        tenant: Option<Arc<TenantDirectory>>,
        call_id: &str,
        deadline: Duration,
        f: impl FnOnce(&Guest, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<(R, Vec<String>), String> {
        let key = tenant
            .as_ref()
            .map(|t| (t.tenant.id, plugin.name.clone(), plugin.sha256.clone()));
        let tenant = tenant.unwrap_or_else(|| Arc::new(TenantDirectory::empty()));
        let reused = key.as_ref().and_then(|k| {
            let mut idle = self.idle.lock();
            let i = idle.get_mut(k).and_then(Vec::pop);
            if i.is_some() {
                self.idle_count.fetch_sub(1, Ordering::Relaxed);
            }
            i
        });
        let ticks = deadline.as_millis().max(1) as u64 + 1;
        let tenant_id = tenant.tenant.id;
        let (mut store, instance) = match reused {
            Some(Idle {
                mut store,
                instance,
            }) => {
                let memory_cap = self.limits_for(&tenant).memory;
                let d = store.data_mut();
                d.limits.memory_cap = memory_cap;
                d.tenant = tenant;
                d.call_id.clear();
                d.call_id.push_str(call_id);
                d.annotations.clear();
                (store, instance)
            }
            None => {
                let mut store = self.new_store(plugin, tenant, call_id);
                store.set_epoch_deadline(ticks);
                store.data_mut().wasi.wall_ms = self.state.now_ms();
                let instance = match plugin.pre.instantiate(&mut store) {
                    Ok(i) => i,
                    Err(e) => {
                        let why = self.plain_reason(&e, deadline, store.data().limits.memory_cap);
                        let why =
                            self.emit_output(&mut store, plugin, tenant_id, call_id, Some(why));
                        return Err(format!("instantiate: {}", why.unwrap_or_default()));
                    }
                };
                (store, instance)
            }
        };
        store.set_epoch_deadline(ticks);
        store.data_mut().wasi.wall_ms = self.state.now_ms();
        let r = match f(&instance, &mut store) {
            Ok(r) => {
                self.emit_output(&mut store, plugin, tenant_id, call_id, None);
                r
            }
            Err(e) => {
                let why = self.plain_reason(&e, deadline, store.data().limits.memory_cap);
                return Err(self
                    .emit_output(&mut store, plugin, tenant_id, call_id, Some(why))
                    .unwrap_or_default());
            }
        };
        plugin
            .memory_peak
            .fetch_max(store.data().limits.memory_used, Ordering::Relaxed);
        let notes = std::mem::take(&mut store.data_mut().annotations);
        // An instance that has grown past seven eighths of its cap is not
        // kept: garbage-collected guests (JavaScript, Python) grow their
        // heaps call after call and would hit the cap, as a fault, in the
        // middle of a later call. A fresh instance starts small again.
        let limits = &store.data().limits;
        let worn = limits.memory_used > limits.memory_cap / 8 * 7;
        if worn {
            // Its successor is made now, off the call path.
            let current = self
                .plugins
                .read()
                .get(&(plugin.name.clone(), plugin.owner))
                .filter(|p| p.sha256 == plugin.sha256)
                .cloned();
            if let Some(p) = current {
                self.prewarm(vec![(p, tenant_id)]);
            }
        }
        if let Some(k) = key.filter(|_| !worn) {
            if self.idle_count.load(Ordering::Relaxed)
                < self.config.pool_slots as usize / MAX_IDLE_SHARE
            {
                let mut idle = self.idle.lock();
                let list = idle.entry(k).or_default();
                if list.len() < MAX_IDLE_PER_KEY {
                    list.push(Idle { store, instance });
                    self.idle_count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok((r, notes))
    }

    /// Asks the tenant's chain at a point. Never fails: faults count as
    /// `continue`.
    pub fn decide(&self, tenant: &Arc<TenantDirectory>, input: &Input) -> Verdict {
        self.decide_in(tenant, input, None)
    }

    /// Asks one plugin of the tenant's chain (the one that asked the
    /// caller a question, for its answer), if it is still enabled.
    pub fn decide_by(&self, tenant: &Arc<TenantDirectory>, plugin: &str, input: &Input) -> Verdict {
        self.decide_in(tenant, input, Some(plugin))
    }

    fn decide_in(
        &self,
        tenant: &Arc<TenantDirectory>,
        input: &Input,
        only: Option<&str>,
    ) -> Verdict {
        let point = input.point();
        let chain = self.chains.read().get(&tenant.tenant.id).cloned();
        let Some(chain) = chain else {
            return Verdict::none();
        };
        let mut verdict = Verdict::none();
        let deadline = self.limits_for(tenant).deadline;
        let wit_input = bindings::input(input);
        let group_members = match input {
            Input::GroupMembers { members, .. } => Some(members.as_slice()),
            _ => None,
        };
        for entry in chain.iter() {
            if !entry.enabled
                || !entry.plugin.points.contains(&point)
                || only.is_some_and(|n| n != entry.plugin.name)
            {
                continue;
            }
            let plugin = &entry.plugin;
            plugin.calls.fetch_add(1, Ordering::Relaxed);
            crate::metrics::count_plugin_call();
            let started = Instant::now();
            let res = self.with_instance(
                plugin,
                Some(tenant.clone()),
                input.call_id(),
                deadline,
                |p, store| p.decide(store, point, &wit_input),
            );
            plugin.latency.observe(started.elapsed());
            let decision = match res {
                Ok((d, notes)) => {
                    verdict.annotations.extend(notes);
                    bindings::decision(point, d, tenant, group_members)
                }
                Err(e) => Err(e),
            };
            match decision {
                Ok(Decision::Continue) => continue,
                Ok(d) => {
                    verdict.decision = d;
                    verdict.decided_by = Some(plugin.name.clone());
                    return verdict;
                }
                Err(why) => self.fault(tenant.tenant.id, plugin, input.call_id(), &why),
            }
        }
        verdict
    }

    fn fault(&self, tenant_id: i64, plugin: &Loaded, call_id: &str, why: &str) {
        // A full instance pool is this node's shortage, not the plugin's
        // doing: it must not count towards switching the plugin off.
        if why.contains("maximum concurrent") {
            tracing::warn!(tenant = tenant_id, plugin = %plugin.name, call = call_id, reason = why,
                "plugin skipped: the instance pool is full");
            crate::metrics::count_plugin_fault();
            return;
        }
        plugin.faults.fetch_add(1, Ordering::Relaxed);
        crate::metrics::count_plugin_fault();
        {
            let mut recent = self.recent_faults.lock();
            // Bounded in keys as well as per key.
            if recent.len() >= 10_000 && !recent.contains_key(&(tenant_id, plugin.name.clone())) {
                recent.clear();
            }
            let q = recent.entry((tenant_id, plugin.name.clone())).or_default();
            if q.len() >= RECENT_FAULTS {
                q.pop_front();
            }
            q.push_back(Fault {
                at: crate::store::now_ms(),
                call_id: call_id.chars().take(64).collect(),
                reason: why.chars().take(500).collect(),
            });
        }
        tracing::warn!(tenant = tenant_id, plugin = %plugin.name, call = call_id, reason = why, "plugin fault: skipped");
        let switch_off = {
            let mut faults = self.faults.lock();
            let q = faults.entry((tenant_id, plugin.name.clone())).or_default();
            let now = Instant::now();
            q.push_back(now);
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.config.fault_window)
            {
                q.pop_front();
            }
            let off = q.len() >= self.config.fault_limit;
            if off {
                q.clear();
            }
            off
        };
        if switch_off {
            let reason = format!(
                "switched off after {} faults within {} s; last: {}",
                self.config.fault_limit,
                self.config.fault_window.as_secs(),
                why.chars().take(200).collect::<String>()
            );
            tracing::error!(tenant = tenant_id, plugin = %plugin.name, %reason, "plugin disabled");
            // Off for the next call at once; the database follows.
            self.set_enabled_in_memory(tenant_id, &plugin.name, false, Some(reason.clone()));
            let db = self.db.clone();
            let name = plugin.name.clone();
            tokio::spawn(async move {
                let r = sqlx::query(
                    "UPDATE tenant_plugins SET enabled = 0, disabled_reason = $1 WHERE tenant_id = $2 AND plugin_name = $3",
                )
                .bind(reason)
                .bind(tenant_id)
                .bind(name)
                .execute(db.pool())
                .await;
                match r {
                    Ok(_) => db.notify(&Change::Plugins).await,
                    Err(e) => tracing::error!(error = %e, "storing a plugin switch-off"),
                }
            });
        }
    }

    fn set_enabled_in_memory(
        &self,
        tenant_id: i64,
        name: &str,
        enabled: bool,
        reason: Option<String>,
    ) {
        let mut chains = self.chains.write();
        if let Some(chain) = chains.get(&tenant_id) {
            let mut new: Vec<ChainEntry> = chain.as_ref().clone();
            for e in &mut new {
                if e.plugin.name == name {
                    e.enabled = enabled;
                    e.disabled_reason = reason.clone();
                }
            }
            chains.insert(tenant_id, Arc::new(new));
        }
    }

    /// Validates (compiles, checks the world) and stores a plugin version;
    /// returns it. Calls already routing keep the version they started with.
    pub async fn store_plugin(
        self: &Arc<Self>,
        name: &str,
        wasm: &[u8],
        owner: Option<i64>,
    ) -> Result<Arc<Loaded>, PluginError> {
        // A tenant's own limit (the admin API read the body up to it);
        // built-ins are the operator's own code.
        let limit = match owner.and_then(|t| self.directory.snapshot().by_id(t).cloned()) {
            Some(t) => self.limits_for(&t).upload,
            None => usize::MAX,
        };
        if wasm.len() > limit {
            return Err(PluginError::Invalid(format!(
                "{} bytes is over the {limit} byte limit",
                wasm.len(),
            )));
        }
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(PluginError::Invalid(
                "name must be 1-64 of a-z, 0-9 and -".into(),
            ));
        }
        let sha = hex::encode(sha2::Sha256::digest(wasm));
        // The database, not this node's memory, says which version is the
        // newest: another node may have stored one since, and built-ins are
        // offered again at every start.
        let latest: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, sha256 FROM plugins WHERE name = $1 \
             AND owner_tenant_id IS NOT DISTINCT FROM $2 ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .bind(owner)
        .fetch_optional(self.db.pool())
        .await?;
        let current = self.plugins.read().get(&(name.to_owned(), owner)).cloned();
        if let Some((version, stored_sha)) = &latest {
            if *stored_sha == sha {
                if let Some(c) = current.filter(|c| c.sha256 == sha) {
                    return Ok(c);
                }
                let (job_name, job_wasm, version) = (name.to_owned(), wasm.to_vec(), *version);
                let loaded = Arc::new(
                    self.admin_job(owner, move |host| {
                        host.compile(&job_name, version, owner, &job_wasm)
                    })
                    .await?,
                );
                self.plugins
                    .write()
                    .insert((name.to_owned(), owner), loaded.clone());
                return Ok(loaded);
            }
        }
        let version = latest.map(|(v, _)| v + 1).unwrap_or(1);
        let (job_name, job_wasm) = (name.to_owned(), wasm.to_vec());
        // The new version must accept what the tenant stored for the old
        // one, or it would start with settings it cannot read.
        let stored = owner
            .map(|t| self.state.settings_of(t, name))
            .unwrap_or_default();
        let tenant = owner.and_then(|t| self.directory.snapshot().by_id(t).cloned());
        let loaded = self
            .admin_job(owner, move |host| {
                let loaded = host.compile(&job_name, version, owner, &job_wasm)?;
                if let Some(tenant) = tenant {
                    for (scope, json) in &stored {
                        let res = host.with_instance(&loaded, Some(tenant.clone()), "", ADMIN_DEADLINE, |p, store| {
                            p.validate_settings(store, scope, json)
                        });
                        match res {
                            Ok((Ok(()), _)) => {}
                            Ok((Err(why), _)) => {
                                return Err(PluginError::Settings(format!(
                                    "the new version rejects the stored settings of scope `{scope}`: {why}"
                                )))
                            }
                            Err(e) => {
                                return Err(PluginError::Settings(format!(
                                    "the new version failed while validating the stored settings of scope `{scope}`: {e}"
                                )))
                            }
                        }
                    }
                }
                Ok(loaded)
            })
            .await?;
        sqlx::query(
            "INSERT INTO plugins (name, version, sha256, wasm, owner_tenant_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(name)
        .bind(version)
        .bind(&sha)
        .bind(wasm)
        .bind(owner)
        .bind(now_ms())
        .execute(self.db.pool())
        .await
        .map_err(|e| match e.as_database_error() {
            Some(d) if d.is_unique_violation() => PluginError::Conflict(format!(
                "version {version} of `{name}` was stored by a concurrent upload; upload again"
            )),
            _ => PluginError::Sql(e),
        })?;
        let loaded = Arc::new(loaded);
        self.plugins
            .write()
            .insert((name.to_owned(), owner), loaded.clone());
        self.reload_chains().await?;
        self.db.notify(&Change::Plugins).await;
        Ok(loaded)
    }

    /// Applies plugin changes another node made: new versions (compiled
    /// here; unchanged ones are not fetched again), chains and settings.
    pub async fn resync(&self) -> Result<(), PluginError> {
        self.load_all().await?;
        self.state.reload_settings().await?;
        Ok(())
    }

    async fn load_all(&self) -> Result<(), PluginError> {
        // Newest version of each plugin: one row per (name, owner); the
        // wasm is read only for versions this node does not run yet.
        let newest = sqlx::query(
            "SELECT p.id, p.name, p.version, p.owner_tenant_id FROM plugins p \
             WHERE p.id = (SELECT MAX(q.id) FROM plugins q WHERE q.name = p.name \
             AND q.owner_tenant_id IS NOT DISTINCT FROM p.owner_tenant_id \
             AND q.version = (SELECT MAX(r.version) FROM plugins r WHERE r.name = p.name \
             AND r.owner_tenant_id IS NOT DISTINCT FROM p.owner_tenant_id))",
        )
        .fetch_all(self.db.pool())
        .await?;
        // Plugins deleted on another node are forgotten here too.
        let mut stored: std::collections::HashSet<PluginKey> = std::collections::HashSet::new();
        for row in &newest {
            stored.insert((row.try_get("name")?, row.try_get("owner_tenant_id")?));
        }
        let missing: Vec<PluginKey> = self
            .plugins
            .read()
            .keys()
            .filter(|k| !stored.contains(*k))
            .cloned()
            .collect();
        for key in missing {
            // An upload of this node may have committed after the query
            // above: forget only what is really gone.
            let still: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM plugins WHERE name = $1 AND owner_tenant_id IS NOT DISTINCT FROM $2 LIMIT 1",
            )
            .bind(&key.0)
            .bind(key.1)
            .fetch_optional(self.db.pool())
            .await?;
            if still.is_none() {
                self.plugins.write().remove(&key);
                if let Some(t) = key.1 {
                    self.forget_idle(|k| k.0 == t && k.1 == key.0);
                }
            }
        }
        for row in newest {
            let id: i64 = row.try_get("id")?;
            let name: String = row.try_get("name")?;
            let version: i64 = row.try_get("version")?;
            let owner: Option<i64> = row.try_get("owner_tenant_id")?;
            let current = self.plugins.read().get(&(name.clone(), owner)).cloned();
            if current.is_some_and(|c| c.version == version) {
                continue;
            }
            let wasm: Vec<u8> = sqlx::query_scalar("SELECT wasm FROM plugins WHERE id = $1")
                .bind(id)
                .fetch_one(self.db.pool())
                .await?;
            match self.compile(&name, version, owner, &wasm) {
                Ok(l) => {
                    self.plugins.write().insert((name, owner), Arc::new(l));
                }
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "stored plugin no longer loads")
                }
            }
        }
        self.reload_chains().await
    }

    /// Re-reads every tenant's chain from the database.
    pub async fn reload_chains(&self) -> Result<(), PluginError> {
        let rows = sqlx::query(
            "SELECT tenant_id, plugin_name, enabled, disabled_reason FROM tenant_plugins ORDER BY tenant_id, position",
        )
        .fetch_all(self.db.pool())
        .await?;
        let plugins = self.plugins.read().clone();
        let mut chains: HashMap<i64, Vec<ChainEntry>> = HashMap::new();
        for row in rows {
            let tenant_id: i64 = row.try_get("tenant_id")?;
            let name: String = row.try_get("plugin_name")?;
            let plugin = plugins
                .get(&(name.clone(), Some(tenant_id)))
                .or_else(|| plugins.get(&(name.clone(), None)));
            let Some(plugin) = plugin else {
                continue;
            };
            chains.entry(tenant_id).or_default().push(ChainEntry {
                plugin: plugin.clone(),
                enabled: row.try_get::<i64, _>("enabled")? != 0,
                disabled_reason: row.try_get("disabled_reason")?,
            });
        }
        let ready: Vec<(Arc<Loaded>, i64)> = chains
            .iter()
            .flat_map(|(tid, chain)| {
                chain
                    .iter()
                    .filter(|e| e.enabled)
                    .map(|e| (e.plugin.clone(), *tid))
            })
            .collect();
        *self.chains.write() = chains.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        self.prewarm(ready);
        Ok(())
    }

    /// Instances of these plugins ready for their tenants before a call
    /// needs one: created on one blocking thread, off the call path, for
    /// each (plugin, tenant) that has no idle instance, while the idle
    /// share of the pool has room. A big component's first call (a new
    /// upload, a plugin just put in the chain, an instance just retired)
    /// then does not pay for instantiation inside its deadline.
    fn prewarm(&self, work: Vec<(Arc<Loaded>, i64)>) {
        let (Some(me), Ok(rt)) = (self.me.upgrade(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        if work.is_empty() {
            return;
        }
        rt.spawn_blocking(move || {
            for (plugin, tenant_id) in work {
                if me.stop.load(Ordering::Relaxed)
                    || me.idle_count.load(Ordering::Relaxed)
                        >= me.config.pool_slots as usize / MAX_IDLE_SHARE
                {
                    return;
                }
                let key = (tenant_id, plugin.name.clone(), plugin.sha256.clone());
                if me.idle.lock().get(&key).is_some_and(|l| !l.is_empty()) {
                    continue;
                }
                let Some(tenant) = me.directory.snapshot().by_id(tenant_id).cloned() else {
                    continue;
                };
                let mut store = me.new_store(&plugin, tenant, "");
                store.set_epoch_deadline(ADMIN_DEADLINE.as_millis() as u64 + 1);
                store.data_mut().wasi.wall_ms = me.state.now_ms();
                match plugin.pre.instantiate(&mut store) {
                    Ok(instance) => {
                        let mut idle = me.idle.lock();
                        let list = idle.entry(key).or_default();
                        if list.len() < MAX_IDLE_PER_KEY {
                            list.push(Idle { store, instance });
                            me.idle_count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // A call would fail the same way and report it as the
                    // plugin's fault; nothing to report twice.
                    Err(e) => tracing::debug!(tenant = tenant_id, plugin = %plugin.name,
                        error = %e, "instance not prepared ahead"),
                }
            }
        });
    }

    /// Idle instances of a tenant's plugin (the newest version), ready for
    /// its next call.
    pub fn idle_instances(&self, tenant_id: i64, name: &str) -> usize {
        let Some(p) = self.resolve(tenant_id, name) else {
            return 0;
        };
        self.idle
            .lock()
            .get(&(tenant_id, p.name.clone(), p.sha256.clone()))
            .map_or(0, Vec::len)
    }

    /// Gives a tenant the product plugins (enabled, in the documented
    /// order), keeping what its chain already has.
    pub async fn enable_defaults(&self, tenant_id: i64) -> Result<(), PluginError> {
        let mut entries: Vec<(String, bool)> = self
            .chain(tenant_id)
            .into_iter()
            .map(|e| (e.plugin.name.clone(), e.enabled))
            .collect();
        for name in DEFAULT_CHAIN {
            if !entries.iter().any(|(n, _)| n == name) {
                entries.push(((*name).to_owned(), true));
            }
        }
        self.set_chain(tenant_id, &entries).await
    }

    /// A tenant's chain, in order.
    pub fn chain(&self, tenant_id: i64) -> Vec<ChainEntry> {
        self.chains
            .read()
            .get(&tenant_id)
            .map(|c| c.as_ref().clone())
            .unwrap_or_default()
    }

    /// Plugins a tenant can use: built-ins and its own uploads.
    pub fn available(&self, tenant_id: i64) -> Vec<Arc<Loaded>> {
        let mut v: Vec<Arc<Loaded>> = self
            .plugins
            .read()
            .iter()
            .filter(|((_, owner), _)| owner.is_none() || *owner == Some(tenant_id))
            .map(|(_, l)| l.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn resolve(&self, tenant_id: i64, name: &str) -> Option<Arc<Loaded>> {
        let plugins = self.plugins.read();
        plugins
            .get(&(name.to_owned(), Some(tenant_id)))
            .or_else(|| plugins.get(&(name.to_owned(), None)))
            .cloned()
    }

    /// Replaces a tenant's chain: `(name, enabled)` in order. Applies to the
    /// next call.
    pub async fn set_chain(
        &self,
        tenant_id: i64,
        entries: &[(String, bool)],
    ) -> Result<(), PluginError> {
        for (name, _) in entries {
            if self.resolve(tenant_id, name).is_none() {
                return Err(PluginError::Unknown(name.clone()));
            }
        }
        let mut tx = self.db.pool().begin().await?;
        self.lock_chain(&mut tx, tenant_id).await?;
        sqlx::query("DELETE FROM tenant_plugins WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        for (pos, (name, enabled)) in entries.iter().enumerate() {
            sqlx::query(
                "INSERT INTO tenant_plugins (tenant_id, plugin_name, position, enabled) VALUES ($1, $2, $3, $4)",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(pos as i64)
            .bind(i64::from(*enabled))
            .execute(&mut *tx)
            .await?;
        }
        self.db.notify_in(&mut tx, &Change::Plugins).await?;
        tx.commit().await?;
        self.reload_chains().await
    }

    /// Drops idle instances whose key matches.
    fn forget_idle(&self, gone: impl Fn(&IdleKey) -> bool) {
        let mut idle = self.idle.lock();
        let mut dropped = 0;
        idle.retain(|k, list| {
            if gone(k) {
                dropped += list.len();
                false
            } else {
                true
            }
        });
        self.idle_count.fetch_sub(dropped, Ordering::Relaxed);
    }

    /// The tenant's recent faults of plugin `name`, oldest first.
    pub fn recent_faults(&self, tenant_id: i64, name: &str) -> Vec<Fault> {
        self.recent_faults
            .lock()
            .get(&(tenant_id, name.to_owned()))
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds `name` to the tenant's chain or changes its entry, leaving
    /// every other entry as it is (with its reason if faults switched it
    /// off): `enabled` (default: as it was, or on for a new entry; turning
    /// it on clears its reason), `position` (0 first; default: where it
    /// was, or last for a new entry). One transaction, the tenant's chain
    /// locked, so concurrent edits of other entries are not lost.
    pub async fn put_chain_entry(
        &self,
        tenant_id: i64,
        name: &str,
        enabled: Option<bool>,
        position: Option<usize>,
    ) -> Result<(), PluginError> {
        if self.resolve(tenant_id, name).is_none() {
            return Err(PluginError::Unknown(name.to_owned()));
        }
        let mut tx = self.db.pool().begin().await?;
        self.lock_chain(&mut tx, tenant_id).await?;
        let mut order: Vec<String> = sqlx::query_scalar(
            "SELECT plugin_name FROM tenant_plugins WHERE tenant_id = $1 ORDER BY position",
        )
        .bind(tenant_id)
        .fetch_all(&mut *tx)
        .await?;
        let at = order.iter().position(|n| n == name);
        match at {
            None => {
                sqlx::query(
                    "INSERT INTO tenant_plugins (tenant_id, plugin_name, position, enabled) VALUES ($1, $2, $3, $4)",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(order.len() as i64)
                .bind(i64::from(enabled.unwrap_or(true)))
                .execute(&mut *tx)
                .await?;
            }
            Some(_) => {
                if let Some(on) = enabled {
                    sqlx::query(
                        "UPDATE tenant_plugins SET enabled = $1, \
                         disabled_reason = CASE WHEN $2 = 1 THEN NULL ELSE disabled_reason END \
                         WHERE tenant_id = $3 AND plugin_name = $4",
                    )
                    .bind(i64::from(on))
                    .bind(i64::from(on))
                    .bind(tenant_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        let was = at.unwrap_or(order.len());
        if let Some(i) = at {
            order.remove(i);
        }
        let to = position.unwrap_or(was).min(order.len());
        order.insert(to, name.to_owned());
        for (pos, n) in order.iter().enumerate() {
            sqlx::query(
                "UPDATE tenant_plugins SET position = $1 WHERE tenant_id = $2 AND plugin_name = $3",
            )
            .bind(pos as i64)
            .bind(tenant_id)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        self.db.notify_in(&mut tx, &Change::Plugins).await?;
        tx.commit().await?;
        self.reload_chains().await
    }

    /// Serialises chain edits of one tenant: an advisory lock on
    /// PostgreSQL; on SQLite the transaction writes first, so it holds the
    /// write lock before it reads (a transaction that reads first and then
    /// writes after another connection committed fails with SQLITE_BUSY
    /// instead of waiting).
    async fn lock_chain(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant_id: i64,
    ) -> Result<(), PluginError> {
        let sql = if self.db.backend() == crate::store::Backend::Postgres {
            "SELECT pg_advisory_xact_lock($1)"
        } else {
            "UPDATE tenants SET name = name WHERE id = $1"
        };
        sqlx::query(sql).bind(tenant_id).execute(&mut **tx).await?;
        Ok(())
    }

    /// Takes `name` out of the tenant's chain (its settings and store stay);
    /// the other entries keep their order, state and reasons.
    pub async fn remove_chain_entry(&self, tenant_id: i64, name: &str) -> Result<(), PluginError> {
        let mut tx = self.db.pool().begin().await?;
        self.lock_chain(&mut tx, tenant_id).await?;
        let n = sqlx::query("DELETE FROM tenant_plugins WHERE tenant_id = $1 AND plugin_name = $2")
            .bind(tenant_id)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(PluginError::Unknown(name.to_owned()));
        }
        self.db.notify_in(&mut tx, &Change::Plugins).await?;
        tx.commit().await?;
        self.reload_chains().await
    }

    /// Deletes every version of a plugin the tenant uploaded, with its
    /// settings, store and timers. Refused for built-ins and while the
    /// plugin is in the tenant's chain.
    pub async fn delete_plugin(&self, tenant_id: i64, name: &str) -> Result<(), PluginError> {
        if !self
            .plugins
            .read()
            .contains_key(&(name.to_owned(), Some(tenant_id)))
        {
            if self.plugins.read().contains_key(&(name.to_owned(), None)) {
                return Err(PluginError::Conflict(format!(
                    "`{name}` is built in; take it out of the chain instead"
                )));
            }
            return Err(PluginError::Unknown(name.to_owned()));
        }
        // The plugin's queued store writes land before the rows go.
        if !self.state.flush().await {
            return Err(PluginError::Engine(
                "the plugin's pending writes could not be stored".into(),
            ));
        }
        let mut tx = self.db.pool().begin().await?;
        self.lock_chain(&mut tx, tenant_id).await?;
        let chained: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM tenant_plugins WHERE tenant_id = $1 AND plugin_name = $2",
        )
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if chained.is_some() {
            return Err(PluginError::Conflict(format!(
                "`{name}` is in the chain; take it out of the chain first"
            )));
        }
        for sql in [
            "DELETE FROM plugins WHERE owner_tenant_id = $1 AND name = $2",
            "DELETE FROM plugin_settings WHERE tenant_id = $1 AND plugin_name = $2",
            "DELETE FROM plugin_kv WHERE tenant_id = $1 AND plugin_name = $2",
            "DELETE FROM plugin_timers WHERE tenant_id = $1 AND plugin_name = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        self.db.notify_in(&mut tx, &Change::Plugins).await?;
        tx.commit().await?;
        self.plugins
            .write()
            .remove(&(name.to_owned(), Some(tenant_id)));
        self.recent_faults
            .lock()
            .remove(&(tenant_id, name.to_owned()));
        self.forget_idle(|k| k.0 == tenant_id && k.1 == name);
        self.state.reload_settings().await?;
        self.state.forget_kv(tenant_id, name);
        self.db.notify(&Change::PluginState(tenant_id)).await;
        Ok(())
    }

    /// Validates settings with the plugin itself, then stores them. A plugin
    /// that traps or runs out of time while validating has faulted.
    pub async fn set_settings(
        self: &Arc<Self>,
        tenant: &Arc<TenantDirectory>,
        name: &str,
        scope: &str,
        json: &str,
    ) -> Result<(), PluginError> {
        let plugin = self
            .resolve(tenant.tenant.id, name)
            .ok_or_else(|| PluginError::Unknown(name.to_owned()))?;
        if serde_json::from_str::<serde_json::Value>(json).is_err() {
            return Err(PluginError::Settings(
                "settings must be a JSON document".into(),
            ));
        }
        let (job_tenant, job_scope, job_json) = (tenant.clone(), scope.to_owned(), json.to_owned());
        let verdict = self
            .admin_job(Some(tenant.tenant.id), move |host| {
                let tenant_id = job_tenant.tenant.id;
                let res = host.with_instance(
                    &plugin,
                    Some(job_tenant),
                    "",
                    ADMIN_DEADLINE,
                    |p, store| p.validate_settings(store, &job_scope, &job_json),
                );
                match res {
                    Ok((verdict, _)) => Ok(verdict),
                    Err(e) => {
                        host.fault(tenant_id, &plugin, "", &e);
                        Err(PluginError::Settings(format!(
                            "the plugin failed while validating: {e}"
                        )))
                    }
                }
            })
            .await?;
        verdict.map_err(PluginError::Settings)?;
        self.state
            .put_setting(tenant.tenant.id, name, scope, json)
            .await?;
        Ok(())
    }

    /// Delivers a fired timer to its plugin's event point.
    /// How many timers this node has fired into plugins.
    pub fn timers_fired(&self) -> u64 {
        self.timers_fired.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn fire_timer(&self, tenant_id: i64, plugin_name: &str, payload: String) {
        let Some(tenant) = self.directory.snapshot().by_id(tenant_id).cloned() else {
            return;
        };
        let chain = self.chains.read().get(&tenant_id).cloned();
        let Some(entry) =
            chain.and_then(|c| c.iter().find(|e| e.plugin.name == plugin_name).cloned())
        else {
            return;
        };
        if !entry.enabled || !entry.plugin.points.contains(&Point::Event) {
            return;
        }
        self.timers_fired
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::count_timer_fired();
        let input = Input::Event {
            kind: crate::pipeline::EventKind::TimerFired,
            subject: None,
            group: None,
            call: None,
            payload: Some(payload),
        };
        let wit_input = bindings::input(&input);
        let deadline = self.limits_for(&tenant).deadline;
        let res = self.with_instance(&entry.plugin, Some(tenant), "", deadline, |p, store| {
            p.decide(store, Point::Event, &wit_input)
        });
        if let Err(e) = res {
            self.fault(tenant_id, &entry.plugin, "", &e);
        }
    }

    /// Sends an event to every enabled plugin of the tenant that handles
    /// events.
    pub fn event(&self, tenant: &Arc<TenantDirectory>, input: &Input) {
        let _ = self.decide(tenant, input);
    }
}
