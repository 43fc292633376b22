//! State plugins read and change through host imports: their settings, their
//! key-value stores, their timers, and employees' statuses. Reads come from
//! memory; writes go to memory at once and to the database in the
//! background, in order.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use sqlx::Row;
use tokio::sync::mpsc;

use super::{PluginHost, Presence};
use crate::directory::Directory;
use crate::store::{now_ms, Change, Store as Db};

/// An employee's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Takes calls.
    Available,
    /// Busy not available: no calls at all.
    Dnd,
    /// Cannot make or take calls.
    LoggedOut,
}

impl Status {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::Dnd => "dnd",
            Status::LoggedOut => "logged_out",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "dnd" => Status::Dnd,
            "logged_out" => Status::LoggedOut,
            _ => Status::Available,
        }
    }
}

/// Limits of a plugin's key-value store.
pub const KV_MAX_KEY: usize = 256;
/// See [`KV_MAX_KEY`].
pub const KV_MAX_VALUE: usize = 64 << 10;
/// See [`KV_MAX_KEY`].
pub const KV_MAX_KEYS: usize = 10_000;
/// Longest timer.
pub const MAX_TIMER: Duration = Duration::from_secs(7 * 24 * 3600);

enum Write {
    KvSet(i64, String, String, String),
    KvDelete(i64, String, String),
    Timer(i64, i64, String, i64, String),
    TimerDone(i64),
    Status(i64, String, Status, String),
    Membership(i64, i64, bool, String, String, String),
    Bind(i64, String, Option<String>),
    /// (tenant, extension, what, cause): a line of the change record.
    Change(i64, String, String, String),
    /// (tenant, extension, when): a wrong PIN.
    PinFailure(i64, String, i64),
    /// (tenant, extension): the right PIN; the count starts again.
    PinCleared(i64, String),
    /// Answered once everything sent before it is committed (and the
    /// directory reloaded when memberships changed).
    Flush(tokio::sync::oneshot::Sender<bool>),
}

/// Shared plugin state.
pub struct PluginState {
    db: Db,
    directory: Arc<Directory>,
    presence: Arc<dyn Presence>,
    settings: DashMap<(i64, String, String), String>,
    kv: DashMap<(i64, String), HashMap<String, String>>,
    statuses: DashMap<(i64, String), Status>,
    /// (tenant, device) -> employee extension.
    bindings: DashMap<(i64, String), String>,
    /// Timers this node set (or found at start), waiting to fire.
    timers: DashMap<i64, tokio::task::AbortHandle>,
    /// Bumped by every local write of kv, status or hotdesk login: a reload
    /// that saw it move re-reads rather than drop a write it raced with.
    local_writes: std::sync::atomic::AtomicU64,
    writes: mpsc::UnboundedSender<Write>,
    host: parking_lot::Mutex<Weak<PluginHost>>,
    /// Offset added to the wall clock (tests move the tenant clock).
    clock_offset_ms: std::sync::atomic::AtomicI64,
    /// (tenant, extension) -> times of recent wrong PINs (rate limit).
    pin_failures: DashMap<(i64, String), Vec<i64>>,
}

/// How often a node looks for timers others did not fire.
const TIMER_SCAN: Duration = Duration::from_millis(500);

fn timer_row(r: &sqlx::any::AnyRow) -> Option<(i64, i64, String, i64, String)> {
    Some((
        r.try_get("id").ok()?,
        r.try_get("tenant_id").ok()?,
        r.try_get("plugin_name").ok()?,
        r.try_get("fire_at").ok()?,
        r.try_get("payload").ok()?,
    ))
}

/// Wrong PINs for one extension allowed within [`PIN_WINDOW_MS`].
pub const PIN_MAX_FAILURES: usize = 5;
/// Window of the PIN rate limit, and how long a lock lasts.
pub const PIN_WINDOW_MS: i64 = 10 * 60 * 1000;

impl std::fmt::Debug for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginState")
    }
}

impl PluginState {
    pub(super) async fn load(
        db: Db,
        directory: Arc<Directory>,
        presence: Arc<dyn Presence>,
    ) -> Result<Arc<PluginState>, sqlx::Error> {
        let settings = DashMap::new();
        for r in sqlx::query("SELECT tenant_id, plugin_name, scope, json FROM plugin_settings")
            .fetch_all(db.pool())
            .await?
        {
            settings.insert(
                (
                    r.try_get("tenant_id")?,
                    r.try_get("plugin_name")?,
                    r.try_get("scope")?,
                ),
                r.try_get("json")?,
            );
        }
        let kv: DashMap<(i64, String), HashMap<String, String>> = DashMap::new();
        for r in sqlx::query("SELECT tenant_id, plugin_name, key, value FROM plugin_kv")
            .fetch_all(db.pool())
            .await?
        {
            kv.entry((r.try_get("tenant_id")?, r.try_get("plugin_name")?))
                .or_default()
                .insert(r.try_get("key")?, r.try_get("value")?);
        }
        let statuses = DashMap::new();
        for r in sqlx::query("SELECT tenant_id, extension, status FROM employee_status")
            .fetch_all(db.pool())
            .await?
        {
            statuses.insert(
                (r.try_get("tenant_id")?, r.try_get("extension")?),
                Status::parse(&r.try_get::<String, _>("status")?),
            );
        }
        let bindings = DashMap::new();
        for r in sqlx::query("SELECT tenant_id, device, extension FROM device_bindings")
            .fetch_all(db.pool())
            .await?
        {
            bindings.insert(
                (r.try_get("tenant_id")?, r.try_get("device")?),
                r.try_get("extension")?,
            );
        }
        let pin_failures: DashMap<(i64, String), Vec<i64>> = DashMap::new();
        for r in sqlx::query("SELECT tenant_id, extension, at FROM pin_failures WHERE at >= $1")
            .bind(now_ms() - PIN_WINDOW_MS)
            .fetch_all(db.pool())
            .await?
        {
            pin_failures
                .entry((r.try_get("tenant_id")?, r.try_get("extension")?))
                .or_default()
                .push(r.try_get("at")?);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(db.clone(), rx, Arc::downgrade(&directory)));
        Ok(Arc::new(PluginState {
            db,
            directory,
            presence,
            settings,
            kv,
            statuses,
            bindings,
            timers: DashMap::new(),
            local_writes: std::sync::atomic::AtomicU64::new(0),
            writes: tx,
            host: parking_lot::Mutex::new(Weak::new()),
            clock_offset_ms: std::sync::atomic::AtomicI64::new(0),
            pin_failures,
        }))
    }

    /// Schedules stored timers (after a restart), remembers the host that
    /// timers fire into, and starts looking for timers other nodes did not
    /// fire: a timer more than `takeover` late is claimed and fired here.
    pub(super) fn start_timers(self: &Arc<Self>, host: Weak<PluginHost>, takeover: Duration) {
        *self.host.lock() = host;
        let me = self.clone();
        tokio::spawn(async move {
            let rows = sqlx::query(
                "SELECT id, tenant_id, plugin_name, fire_at, payload FROM plugin_timers",
            )
            .fetch_all(me.db.pool())
            .await;
            if let Ok(rows) = rows {
                for r in rows {
                    if let Some((id, t, p, at, payload)) = timer_row(&r) {
                        me.schedule(id, t, p, at, payload);
                    }
                }
            }
            let mut tick = tokio::time::interval(TIMER_SCAN);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if me.host.lock().strong_count() == 0 {
                    return;
                }
                me.take_over_late_timers(takeover).await;
            }
        });
    }

    async fn take_over_late_timers(self: &Arc<Self>, takeover: Duration) {
        let due = now_ms() - takeover.as_millis() as i64;
        let rows = sqlx::query(
            "SELECT id, tenant_id, plugin_name, fire_at, payload FROM plugin_timers \
             WHERE fire_at <= $1 ORDER BY fire_at LIMIT 100",
        )
        .bind(due)
        .fetch_all(self.db.pool())
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "looking for late timers");
                return;
            }
        };
        for r in rows {
            let Some((id, tenant, plugin, _, payload)) = timer_row(&r) else {
                continue;
            };
            // One of ours that is late only because a plugin is slow.
            if self.timers.contains_key(&id) {
                continue;
            }
            if self.claim_timer(id).await {
                tracing::info!(timer = id, tenant, plugin = %plugin, "took over a late timer");
                self.fire(tenant, plugin, payload);
            }
        }
    }

    /// Takes a due timer out of the database; `true` for exactly one
    /// caller across every node (the row lock decides), which fires it.
    async fn claim_timer(&self, id: i64) -> bool {
        let claimed: Result<Option<i64>, _> =
            sqlx::query_scalar("DELETE FROM plugin_timers WHERE id = $1 RETURNING id")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await;
        match claimed {
            Ok(row) => row.is_some(),
            Err(e) => {
                tracing::warn!(timer = id, error = %e, "claiming a timer");
                false
            }
        }
    }

    fn fire(&self, tenant: i64, plugin: String, payload: String) {
        let host = self.host.lock().upgrade();
        if let Some(h) = host {
            // Plugins run synchronously; keep them off the runtime's
            // workers.
            tokio::task::spawn_blocking(move || h.fire_timer(tenant, &plugin, payload));
        }
    }

    fn schedule(
        self: &Arc<Self>,
        id: i64,
        tenant: i64,
        plugin: String,
        fire_at: i64,
        payload: String,
    ) {
        let me = self.clone();
        let delay = Duration::from_millis((fire_at - now_ms()).max(0) as u64);
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The row goes in through the writer: make sure it is there,
            // then claim it (another node may have fired or cancelled it).
            let stored = me.flush().await;
            me.timers.remove(&id);
            if stored && me.claim_timer(id).await {
                me.fire(tenant, plugin, payload);
            }
        });
        self.timers.insert(id, task.abort_handle());
    }

    /// Sets a timer; returns its id.
    pub(super) fn set_timer(
        self: &Arc<Self>,
        tenant: i64,
        plugin: &str,
        delay: Duration,
        payload: String,
    ) -> i64 {
        // Random, not a counter: nodes setting timers at once must not
        // collide (53 bits: an id survives a round trip through JSON).
        let id = rand::random::<i64>().rem_euclid(1 << 53).max(1);
        let fire_at = now_ms() + delay.min(MAX_TIMER).as_millis() as i64;
        let _ = self.writes.send(Write::Timer(
            id,
            tenant,
            plugin.to_owned(),
            fire_at,
            payload.clone(),
        ));
        self.schedule(id, tenant, plugin.to_owned(), fire_at, payload);
        id
    }

    /// Cancels a timer.
    pub(super) fn cancel_timer(&self, id: i64) {
        if let Some((_, h)) = self.timers.remove(&id) {
            h.abort();
        }
        let _ = self.writes.send(Write::TimerDone(id));
    }

    /// Re-reads a tenant's key-value stores, statuses, hotdesk logins and
    /// wrong-PIN counts after another node changed them. Writes of this node still on their
    /// way to the database go first, so the reload cannot undo them.
    pub async fn reload_tenant(&self, tenant: i64) -> Result<(), sqlx::Error> {
        use std::sync::atomic::Ordering::SeqCst;
        for _ in 0..5 {
            let before = self.local_writes.load(SeqCst);
            if !self.flush().await {
                tracing::warn!(tenant, "reloading plugin state over unstored local writes");
            }
            let mut kv: HashMap<String, HashMap<String, String>> = HashMap::new();
            for r in
                sqlx::query("SELECT plugin_name, key, value FROM plugin_kv WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_all(self.db.pool())
                    .await?
            {
                kv.entry(r.try_get("plugin_name")?)
                    .or_default()
                    .insert(r.try_get("key")?, r.try_get("value")?);
            }
            let mut statuses: HashMap<String, Status> = HashMap::new();
            for r in
                sqlx::query("SELECT extension, status FROM employee_status WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_all(self.db.pool())
                    .await?
            {
                statuses.insert(
                    r.try_get("extension")?,
                    Status::parse(&r.try_get::<String, _>("status")?),
                );
            }
            let mut bindings: HashMap<String, String> = HashMap::new();
            for r in
                sqlx::query("SELECT device, extension FROM device_bindings WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_all(self.db.pool())
                    .await?
            {
                bindings.insert(r.try_get("device")?, r.try_get("extension")?);
            }
            let mut pins: HashMap<String, Vec<i64>> = HashMap::new();
            for r in sqlx::query(
                "SELECT extension, at FROM pin_failures WHERE tenant_id = $1 AND at >= $2",
            )
            .bind(tenant)
            .bind(now_ms() - PIN_WINDOW_MS)
            .fetch_all(self.db.pool())
            .await?
            {
                pins.entry(r.try_get("extension")?)
                    .or_default()
                    .push(r.try_get("at")?);
            }
            if self.local_writes.load(SeqCst) != before {
                continue;
            }
            self.pin_failures
                .retain(|(t, e), _| *t != tenant || pins.contains_key(e));
            for (e, times) in pins {
                self.pin_failures.insert((tenant, e), times);
            }
            // Entry by entry, so a call reading meanwhile sees the old or
            // the new value, never an empty store.
            self.kv
                .retain(|(t, p), _| *t != tenant || kv.contains_key(p));
            for (p, m) in kv {
                self.kv.insert((tenant, p), m);
            }
            self.statuses
                .retain(|(t, e), _| *t != tenant || statuses.contains_key(e));
            for (e, st) in statuses {
                self.statuses.insert((tenant, e), st);
            }
            self.bindings
                .retain(|(t, d), _| *t != tenant || bindings.contains_key(d));
            for (d, e) in bindings {
                self.bindings.insert((tenant, d), e);
            }
            return Ok(());
        }
        tracing::warn!(tenant, "plugin state kept changing locally; reload skipped");
        Ok(())
    }

    /// Re-reads every plugin setting after another node changed one.
    pub async fn reload_settings(&self) -> Result<(), sqlx::Error> {
        let mut fresh: HashMap<(i64, String, String), String> = HashMap::new();
        for r in sqlx::query("SELECT tenant_id, plugin_name, scope, json FROM plugin_settings")
            .fetch_all(self.db.pool())
            .await?
        {
            fresh.insert(
                (
                    r.try_get("tenant_id")?,
                    r.try_get("plugin_name")?,
                    r.try_get("scope")?,
                ),
                r.try_get("json")?,
            );
        }
        self.settings.retain(|k, _| fresh.contains_key(k));
        for (k, v) in fresh {
            self.settings.insert(k, v);
        }
        Ok(())
    }

    /// A plugin's settings for a scope.
    pub fn setting(&self, tenant: i64, plugin: &str, scope: &str) -> Option<String> {
        self.settings
            .get(&(tenant, plugin.to_owned(), scope.to_owned()))
            .map(|s| s.clone())
    }

    pub(super) async fn put_setting(
        &self,
        tenant: i64,
        plugin: &str,
        scope: &str,
        json: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO plugin_settings (tenant_id, plugin_name, scope, json) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, plugin_name, scope) DO UPDATE SET json = excluded.json",
        )
        .bind(tenant)
        .bind(plugin)
        .bind(scope)
        .bind(json)
        .execute(self.db.pool())
        .await?;
        self.settings.insert(
            (tenant, plugin.to_owned(), scope.to_owned()),
            json.to_owned(),
        );
        self.db.notify(&Change::Plugins).await;
        Ok(())
    }

    /// Every stored setting of a plugin for a tenant: `(scope, json)`.
    pub fn settings_of(&self, tenant: i64, plugin: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .settings
            .iter()
            .filter(|e| e.key().0 == tenant && e.key().1 == plugin)
            .map(|e| (e.key().2.clone(), e.value().clone()))
            .collect();
        v.sort();
        v
    }

    /// Every key and value of a plugin's store for a tenant, by key.
    pub fn kv_all(&self, tenant: i64, plugin: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .kv
            .get(&(tenant, plugin.to_owned()))
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Empties a plugin's store for a tenant (in memory at once; the
    /// database follows in order with the plugin's own writes).
    pub fn kv_clear(&self, tenant: i64, plugin: &str) -> usize {
        let keys: Vec<String> = self
            .kv
            .remove(&(tenant, plugin.to_owned()))
            .map(|(_, m)| m.into_keys().collect())
            .unwrap_or_default();
        for k in &keys {
            self.local_writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = self
                .writes
                .send(Write::KvDelete(tenant, plugin.to_owned(), k.clone()));
        }
        keys.len()
    }

    /// Forgets a deleted plugin's store in memory (its rows are gone).
    pub(super) fn forget_kv(&self, tenant: i64, plugin: &str) {
        self.kv.remove(&(tenant, plugin.to_owned()));
    }

    /// Reads a key of a plugin's store.
    pub fn kv_get(&self, tenant: i64, plugin: &str, key: &str) -> Option<String> {
        self.kv
            .get(&(tenant, plugin.to_owned()))
            .and_then(|m| m.get(key).cloned())
    }

    pub(super) fn kv_set(
        &self,
        tenant: i64,
        plugin: &str,
        key: &str,
        value: &str,
    ) -> Result<(), String> {
        if key.is_empty() || key.len() > KV_MAX_KEY {
            return Err(format!("key must be 1 to {KV_MAX_KEY} bytes"));
        }
        if value.len() > KV_MAX_VALUE {
            return Err(format!("value over {KV_MAX_VALUE} bytes"));
        }
        let mut m = self.kv.entry((tenant, plugin.to_owned())).or_default();
        if !m.contains_key(key) && m.len() >= KV_MAX_KEYS {
            return Err(format!("store full ({KV_MAX_KEYS} keys)"));
        }
        m.insert(key.to_owned(), value.to_owned());
        self.local_writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.writes.send(Write::KvSet(
            tenant,
            plugin.to_owned(),
            key.to_owned(),
            value.to_owned(),
        ));
        Ok(())
    }

    pub(super) fn kv_delete(&self, tenant: i64, plugin: &str, key: &str) {
        if let Some(mut m) = self.kv.get_mut(&(tenant, plugin.to_owned())) {
            m.remove(key);
        }
        self.local_writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self
            .writes
            .send(Write::KvDelete(tenant, plugin.to_owned(), key.to_owned()));
    }

    /// An employee's status (available unless set).
    pub fn status(&self, tenant: i64, extension: &str) -> Status {
        self.statuses
            .get(&(tenant, extension.to_owned()))
            .map(|s| *s)
            .unwrap_or(Status::Available)
    }

    /// Sets an employee's status, recording why.
    pub fn set_status(
        &self,
        tenant: i64,
        extension: &str,
        status: Status,
        cause: &str,
    ) -> Result<(), String> {
        let known = self
            .directory
            .snapshot()
            .by_id(tenant)
            .is_some_and(|t| t.employee_by_extension(extension).is_some());
        if !known {
            return Err(format!("no employee with extension {extension}"));
        }
        self.statuses.insert((tenant, extension.to_owned()), status);
        self.local_writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.writes.send(Write::Status(
            tenant,
            extension.to_owned(),
            status,
            cause.to_owned(),
        ));
        Ok(())
    }

    /// Enables or disables a hunt group membership (applies to the next call
    /// once the directory reloads, within milliseconds).
    pub fn set_membership(
        &self,
        tenant: i64,
        group: &str,
        extension: &str,
        enabled: bool,
        cause: &str,
    ) -> Result<(), String> {
        let snap = self.directory.snapshot();
        let t = snap.by_id(tenant).ok_or("unknown tenant")?;
        let g = match t.resolve(group) {
            Some(crate::directory::Entry::Group(id)) => t.groups.get(&id).ok_or("unknown group")?,
            _ => return Err(format!("no hunt group with extension {group}")),
        };
        let e = t
            .employee_by_extension(extension)
            .ok_or_else(|| format!("no employee with extension {extension}"))?;
        if !g.members.iter().any(|m| m.employee_id == e.id) {
            return Err(format!("{extension} is not a member of {group}"));
        }
        let _ = self.writes.send(Write::Membership(
            g.id,
            e.id,
            enabled,
            extension.to_owned(),
            g.extension.to_string(),
            cause.to_owned(),
        ));
        Ok(())
    }

    /// Binds a hotdesk device to an employee (or releases it with `None`).
    /// Only devices in the tenant's hotdesk range that belong to nobody can
    /// be bound. Tells the tenant's plugins who was logged in and out.
    pub fn bind_device(
        &self,
        tenant: i64,
        device: &str,
        extension: Option<&str>,
        cause: &str,
    ) -> Result<(), String> {
        let snap = self.directory.snapshot();
        let t = snap.by_id(tenant).ok_or("unknown tenant")?;
        let Some(crate::directory::Entry::Device(id)) = t.resolve(device) else {
            return Err(format!("no device account {device}"));
        };
        if !t.devices.get(&id).is_some_and(|d| t.is_hotdesk(d)) {
            return Err(format!("{device} is not a hotdesk device"));
        }
        let mut changes: Vec<(crate::pipeline::EventKind, String, String)> = Vec::new();
        let key = (tenant, device.to_owned());
        let holder = self.bindings.get(&key).map(|e| e.clone());
        if holder.as_deref() == extension {
            return Ok(());
        }
        if let Some(ext) = extension {
            if t.employee_by_extension(ext).is_none() {
                return Err(format!("no employee with extension {ext}"));
            }
            // One device per employee: a login elsewhere moves them.
            let previous: Vec<String> = self
                .bindings
                .iter()
                .filter(|e| e.key().0 == tenant && e.value() == ext && e.key().1 != device)
                .map(|e| e.key().1.clone())
                .collect();
            for d in previous {
                self.bindings.remove(&(tenant, d.clone()));
                self.local_writes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = self.writes.send(Write::Bind(tenant, d.clone(), None));
                changes.push((crate::pipeline::EventKind::LoggedOut, ext.to_owned(), d));
            }
            self.bindings.insert(key, ext.to_owned());
        } else {
            self.bindings.remove(&key);
        }
        if let Some(h) = holder {
            changes.push((crate::pipeline::EventKind::LoggedOut, h, device.to_owned()));
        }
        if let Some(ext) = extension {
            changes.push((
                crate::pipeline::EventKind::LoggedIn,
                ext.to_owned(),
                device.to_owned(),
            ));
        }
        self.local_writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.writes.send(Write::Bind(
            tenant,
            device.to_owned(),
            extension.map(str::to_owned),
        ));
        for (kind, ext, dev) in &changes {
            let what = match kind {
                crate::pipeline::EventKind::LoggedIn => format!("logged in at {dev}"),
                _ => format!("logged out of {dev}"),
            };
            let _ = self
                .writes
                .send(Write::Change(tenant, ext.clone(), what, cause.to_owned()));
        }
        self.announce(tenant, changes);
        Ok(())
    }

    /// Tells the tenant's plugins about logins and logouts. Runs later, on
    /// its own task: the change may come from inside a plugin call.
    fn announce(&self, tenant: i64, changes: Vec<(crate::pipeline::EventKind, String, String)>) {
        let Some(host) = self.host.lock().upgrade() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let directory = self.directory.clone();
        rt.spawn_blocking(move || {
            let Some(t) = directory.snapshot().by_id(tenant).cloned() else {
                return;
            };
            for (kind, ext, device) in changes {
                host.event(
                    &t,
                    &crate::pipeline::Input::Event {
                        kind,
                        subject: Some(ext),
                        group: None,
                        call: None,
                        payload: Some(device),
                    },
                );
            }
        });
    }

    /// Checks an employee's voicemail PIN, with a lock after
    /// [`PIN_MAX_FAILURES`] wrong ones within [`PIN_WINDOW_MS`].
    pub fn verify_pin(&self, tenant: i64, extension: &str, pin: &str) -> Result<(), String> {
        let snap = self.directory.snapshot();
        let t = snap.by_id(tenant).ok_or("unknown tenant")?;
        let e = t
            .employee_by_extension(extension)
            .ok_or("unknown extension")?;
        let expected = e.voicemail_pin.as_deref().ok_or("no PIN set")?;
        let now = crate::store::now_ms();
        let key = (tenant, extension.to_owned());
        let mut failures = self.pin_failures.entry(key.clone()).or_default();
        failures.retain(|at| now - at < PIN_WINDOW_MS);
        if failures.len() >= PIN_MAX_FAILURES {
            return Err("locked".into());
        }
        // Stored (and announced) so the lock holds on every node.
        if crate::credentials::constant_time_eq(expected.as_bytes(), pin.as_bytes()) {
            drop(failures);
            if self.pin_failures.remove(&key).is_some() {
                self.local_writes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = self
                    .writes
                    .send(Write::PinCleared(tenant, extension.to_owned()));
            }
            Ok(())
        } else {
            failures.push(now);
            self.local_writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = self
                .writes
                .send(Write::PinFailure(tenant, extension.to_owned(), now));
            Err("wrong PIN".into())
        }
    }

    /// Waits until every change made so far is in the database (and
    /// membership changes are in the directory). `false`: the batch that
    /// carried them failed, so nobody may be told they were made.
    #[must_use = "a change is not made until it is stored"]
    pub async fn flush(&self) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.writes.send(Write::Flush(tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Every hotdesk login of a tenant: (device, employee extension).
    pub fn bindings_of_tenant(&self, tenant: i64) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .bindings
            .iter()
            .filter(|e| e.key().0 == tenant)
            .map(|e| (e.key().1.clone(), e.value().clone()))
            .collect();
        v.sort();
        v
    }

    /// The database (status change history).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The employee a device is bound to.
    pub fn binding_of(&self, tenant: i64, device: &str) -> Option<String> {
        self.bindings
            .get(&(tenant, device.to_owned()))
            .map(|e| e.clone())
    }

    /// Devices bound to an employee.
    pub fn devices_bound_to(&self, tenant: i64, extension: &str) -> Vec<String> {
        self.bindings
            .iter()
            .filter(|e| e.key().0 == tenant && e.value() == extension)
            .map(|e| e.key().1.clone())
            .collect()
    }

    /// Presence of an extension.
    pub fn presence(&self, tenant: i64, extension: &str) -> (bool, u32, Status) {
        (
            self.presence.is_registered(tenant, extension),
            self.presence.active_calls(tenant, extension),
            self.status(tenant, extension),
        )
    }

    /// Whether an employee's own account or devices are registered.
    pub fn home_registered(&self, tenant: i64, extension: &str) -> bool {
        self.presence.home_registered(tenant, extension)
    }

    /// The tenant clock (ms since the epoch).
    pub fn now_ms(&self) -> i64 {
        now_ms()
            + self
                .clock_offset_ms
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves the tenant clock (tests of schedules and vacations).
    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset_ms
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the tenant clock to `at_ms` (the plugin test harness starts a
    /// script at its own time).
    pub fn set_clock(&self, at_ms: i64) {
        self.clock_offset_ms
            .store(at_ms - now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }
}

async fn writer(db: Db, mut rx: mpsc::UnboundedReceiver<Write>, directory: Weak<Directory>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let membership_changed = batch.iter().any(|w| matches!(w, Write::Membership(..)));
        let stored = match commit(&db, &batch).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "plugin state not written");
                false
            }
        };
        if membership_changed {
            if let Some(d) = directory.upgrade() {
                if let Err(e) = d.reload().await {
                    tracing::error!(error = %e, "directory reload after a membership change");
                }
            }
        }
        for w in batch.drain(..) {
            if let Write::Flush(done) = w {
                let _ = done.send(stored);
            }
        }
    }
}

async fn commit(db: &Db, batch: &[Write]) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    for w in batch {
        match w {
            Write::KvSet(t, p, k, v) => {
                sqlx::query(
                    "INSERT INTO plugin_kv (tenant_id, plugin_name, key, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, plugin_name, key) DO UPDATE SET value = excluded.value",
                )
                .bind(t)
                .bind(p)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            Write::KvDelete(t, p, k) => {
                sqlx::query(
                    "DELETE FROM plugin_kv WHERE tenant_id = $1 AND plugin_name = $2 AND key = $3",
                )
                .bind(t)
                .bind(p)
                .bind(k)
                .execute(&mut *tx)
                .await?;
            }
            Write::Timer(id, t, p, at, payload) => {
                sqlx::query("INSERT INTO plugin_timers (id, tenant_id, plugin_name, fire_at, payload) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id)
                    .bind(t)
                    .bind(p)
                    .bind(at)
                    .bind(payload)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::TimerDone(id) => {
                sqlx::query("DELETE FROM plugin_timers WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Status(t, ext, s, cause) => {
                sqlx::query(
                    "INSERT INTO employee_status (tenant_id, extension, status, cause, changed_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id, extension) DO UPDATE SET status = excluded.status, \
                     cause = excluded.cause, changed_at = excluded.changed_at",
                )
                .bind(t)
                .bind(ext)
                .bind(s.as_str())
                .bind(cause)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO status_changes (tenant_id, extension, what, cause, changed_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(t)
                    .bind(ext)
                    .bind(format!("status={}", s.as_str()))
                    .bind(cause)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Bind(t, device, ext) => match ext {
                Some(ext) => {
                    sqlx::query(
                            "INSERT INTO device_bindings (tenant_id, device, extension, bound_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (tenant_id, device) DO UPDATE SET extension = excluded.extension, \
                             bound_at = excluded.bound_at",
                        )
                        .bind(t)
                        .bind(device)
                        .bind(ext)
                        .bind(now_ms())
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    sqlx::query("DELETE FROM device_bindings WHERE tenant_id = $1 AND device = $2")
                        .bind(t)
                        .bind(device)
                        .execute(&mut *tx)
                        .await?;
                }
            },
            Write::Change(t, ext, what, cause) => {
                sqlx::query("INSERT INTO status_changes (tenant_id, extension, what, cause, changed_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(t)
                    .bind(ext)
                    .bind(what)
                    .bind(cause)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Flush(_) => {}
            Write::PinFailure(t, ext, at) => {
                sqlx::query("DELETE FROM pin_failures WHERE at < $1")
                    .bind(at - PIN_WINDOW_MS)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO pin_failures (tenant_id, extension, at) VALUES ($1, $2, $3)",
                )
                .bind(t)
                .bind(ext)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            Write::PinCleared(t, ext) => {
                sqlx::query("DELETE FROM pin_failures WHERE tenant_id = $1 AND extension = $2")
                    .bind(t)
                    .bind(ext)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Membership(g, e, enabled, ext, group_ext, cause) => {
                sqlx::query("UPDATE hunt_group_members SET enabled = $1 WHERE group_id = $2 AND employee_id = $3")
                    .bind(i64::from(*enabled))
                    .bind(g)
                    .bind(e)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO status_changes (tenant_id, extension, what, cause, changed_at) \
                     SELECT tenant_id, $1, $2, $3, $4 FROM hunt_groups WHERE id = $5",
                )
                .bind(ext)
                .bind(format!(
                    "membership of {group_ext} {}",
                    if *enabled { "enabled" } else { "disabled" }
                ))
                .bind(cause)
                .bind(now_ms())
                .bind(g)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    // Other nodes reload what this batch changed once it commits.
    let mut tenants: Vec<i64> = batch
        .iter()
        .filter_map(|w| match w {
            Write::KvSet(t, ..)
            | Write::KvDelete(t, ..)
            | Write::Status(t, ..)
            | Write::Bind(t, ..)
            | Write::PinFailure(t, ..)
            | Write::PinCleared(t, ..) => Some(*t),
            _ => None,
        })
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    for t in tenants {
        db.notify_in(&mut tx, &Change::PluginState(t)).await?;
    }
    if batch.iter().any(|w| matches!(w, Write::Membership(..))) {
        db.notify_in(&mut tx, &Change::Directory).await?;
    }
    tx.commit().await
}
