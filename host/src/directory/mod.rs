//! The tenants' directory: who and what has an extension. Read on every call,
//! so the router keeps an immutable in-memory [`Snapshot`] and swaps in a new
//! one after each provisioning change ([`Directory::reload`]).

pub mod demo;
mod model;
pub mod provision;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use sqlx::Row;

pub use model::{
    ha1_pair, is_international_number, Device, Employee, Extension, HistoryScope, HuntGroup,
    Member, NoAnswerAppliesTo, PluginLimits, RingStrategy, Role, Tenant, EMERGENCY_NUMBERS,
};

use crate::store::Store;

/// What an extension of a tenant stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// An employee (by id).
    Employee(i64),
    /// A hunt group (by id).
    Group(i64),
    /// A device account (by id).
    Device(i64),
}

/// A SIP account that can authenticate: an employee's own or a device's.
#[derive(Debug, Clone)]
pub struct Account {
    /// SIP username.
    pub username: String,
    /// HA1 for MD5 digest.
    pub ha1_md5: String,
    /// HA1 for SHA-256 digest.
    pub ha1_sha256: String,
    /// Whose account.
    pub owner: Entry,
}

/// One tenant's directory.
#[derive(Debug, Clone)]
pub struct TenantDirectory {
    /// The tenant.
    pub tenant: Tenant,
    /// Employees by id.
    pub employees: HashMap<i64, Employee>,
    /// Devices by id.
    pub devices: HashMap<i64, Device>,
    /// Hunt groups by id.
    pub groups: HashMap<i64, HuntGroup>,
    by_extension: HashMap<String, Entry>,
}

impl TenantDirectory {
    /// A tenant with nothing in it (for calls made outside any tenant, such
    /// as asking a plugin which points it handles).
    pub fn empty() -> TenantDirectory {
        TenantDirectory {
            tenant: Tenant {
                id: 0,
                domain: String::new(),
                name: String::new(),
                time_zone: "UTC".into(),
                trunk_uri: None,
                voicemail_uri: None,
                hotdesk_range: 5400..=5499,
                busy_on_active_call: false,
                digest_algorithms: Vec::new(),
                head_history_scope: HistoryScope::Department,
                user_history_scope: HistoryScope::Department,
                plugin_limits: PluginLimits::default(),
            },
            employees: HashMap::new(),
            devices: HashMap::new(),
            groups: HashMap::new(),
            by_extension: HashMap::new(),
        }
    }

    /// What `user` (the user part of a SIP URI) dials within this tenant.
    pub fn resolve(&self, user: &str) -> Option<Entry> {
        self.by_extension.get(user).copied()
    }

    /// The SIP account named `username`, for digest authentication.
    pub fn account(&self, username: &str) -> Option<Account> {
        match self.resolve(username)? {
            Entry::Employee(id) => self.employees.get(&id).map(|e| Account {
                username: username.to_owned(),
                ha1_md5: e.ha1_md5.clone(),
                ha1_sha256: e.ha1_sha256.clone(),
                owner: Entry::Employee(id),
            }),
            Entry::Device(id) => self.devices.get(&id).map(|d| Account {
                username: username.to_owned(),
                ha1_md5: d.ha1_md5.clone(),
                ha1_sha256: d.ha1_sha256.clone(),
                owner: Entry::Device(id),
            }),
            Entry::Group(_) => None,
        }
    }

    /// The digest algorithms a challenge for `username` offers, most
    /// preferred first: the device account's own list, else the tenant's
    /// (empty: the router's default).
    pub fn digest_algorithms_for(&self, username: &str) -> &[String] {
        match self.resolve(username) {
            Some(Entry::Device(id)) => match self.devices.get(&id) {
                Some(d) if !d.digest_algorithms.is_empty() => &d.digest_algorithms,
                _ => &self.tenant.digest_algorithms,
            },
            _ => &self.tenant.digest_algorithms,
        }
    }

    /// Employee by extension.
    pub fn employee_by_extension(&self, ext: &str) -> Option<&Employee> {
        match self.resolve(ext)? {
            Entry::Employee(id) => self.employees.get(&id),
            _ => None,
        }
    }

    /// Device accounts owned by an employee.
    pub fn devices_of(&self, employee_id: i64) -> impl Iterator<Item = &Device> {
        self.devices
            .values()
            .filter(move |d| d.employee_id == Some(employee_id))
    }

    /// The employee who owns a device account, if anyone does.
    pub fn owner_of(&self, device: &Device) -> Option<&Employee> {
        device.employee_id.and_then(|e| self.employees.get(&e))
    }

    /// Whether a device account can be logged in at (hotdesking): in the
    /// tenant's hotdesk range and owned by nobody.
    pub fn is_hotdesk(&self, device: &Device) -> bool {
        device.employee_id.is_none()
            && self
                .tenant
                .hotdesk_range
                .contains(&device.username.number())
    }

    /// Whether an extension is taken by anything.
    pub fn is_taken(&self, ext: &str) -> bool {
        self.by_extension.contains_key(ext)
    }
}

/// Every tenant's directory at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    tenants: HashMap<i64, Arc<TenantDirectory>>,
    by_domain: HashMap<String, i64>,
}

impl Snapshot {
    /// The tenant whose SIP domain is `domain` (case-insensitive).
    pub fn by_domain(&self, domain: &str) -> Option<&Arc<TenantDirectory>> {
        let id = self.by_domain.get(&domain.to_ascii_lowercase())?;
        self.tenants.get(id)
    }

    /// The tenant with this id.
    pub fn by_id(&self, id: i64) -> Option<&Arc<TenantDirectory>> {
        self.tenants.get(&id)
    }

    /// Ids of all tenants.
    pub fn tenant_ids(&self) -> Vec<i64> {
        self.tenants.keys().copied().collect()
    }

    /// All tenants.
    pub fn tenants(&self) -> impl Iterator<Item = &Arc<TenantDirectory>> {
        self.tenants.values()
    }
}

/// The live directory: a snapshot behind a lock that is only held to clone
/// an `Arc`, so calls never wait on provisioning.
#[derive(Debug)]
pub struct Directory {
    store: Store,
    current: RwLock<Arc<Snapshot>>,
    /// Reloads one at a time: a reload that starts after a commit installs
    /// its snapshot after any that started before it.
    reloading: tokio::sync::Mutex<()>,
    default_domain: RwLock<Option<String>>,
}

impl Directory {
    /// Loads every tenant from the database.
    pub async fn load(
        store: Store,
        default_domain: Option<String>,
    ) -> Result<Directory, sqlx::Error> {
        let snapshot = load_snapshot(&store).await?;
        Ok(Directory {
            store,
            current: RwLock::new(Arc::new(snapshot)),
            reloading: tokio::sync::Mutex::new(()),
            default_domain: RwLock::new(default_domain),
        })
    }

    /// Re-reads the database; calls already routed keep the old snapshot.
    pub async fn reload(&self) -> Result<(), sqlx::Error> {
        self.reload_quietly().await
    }

    /// Reloads after a change made here, and tells the other nodes.
    pub async fn changed(&self) -> Result<(), sqlx::Error> {
        self.reload_quietly().await?;
        self.store.notify(&crate::store::Change::Directory).await;
        Ok(())
    }

    async fn reload_quietly(&self) -> Result<(), sqlx::Error> {
        let _one_at_a_time = self.reloading.lock().await;
        let snapshot = load_snapshot(&self.store).await?;
        *self.current.write() = Arc::new(snapshot);
        Ok(())
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    /// The tenant for a request's domain: an exact match, else the default
    /// tenant (phones that use the router's IP address as their domain):
    /// the configured one, or the only tenant when there is just one.
    pub fn tenant_for(&self, domain: &str) -> Option<Arc<TenantDirectory>> {
        let snap = self.snapshot();
        if let Some(t) = snap.by_domain(domain) {
            return Some(t.clone());
        }
        match self.default_domain.read().as_deref() {
            Some(default) => snap.by_domain(default).cloned(),
            None if snap.tenants.len() == 1 => snap.tenants.values().next().cloned(),
            None => None,
        }
    }

    /// Sets the domain used when a request's domain matches no tenant.
    pub fn set_default_domain(&self, domain: Option<String>) {
        *self.default_domain.write() = domain;
    }

    /// The database behind the directory.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn parse_ext(s: &str) -> Option<Extension> {
    match Extension::parse(s) {
        Ok(e) => Some(e),
        Err(reason) => {
            tracing::warn!(extension = s, %reason, "skipping stored row with invalid extension");
            None
        }
    }
}

/// A stored limit; one out of range (written by hand) counts as none.
fn limit(v: Option<i64>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0)
}

async fn load_snapshot(store: &Store) -> Result<Snapshot, sqlx::Error> {
    let pool = store.pool();
    let mut dirs: HashMap<i64, TenantDirectory> = HashMap::new();
    for row in sqlx::query(
        "SELECT id, domain, name, time_zone, trunk_uri, voicemail_uri, hotdesk_first, \
         hotdesk_last, busy_on_active_call, head_history_scope, user_history_scope, \
         digest_algorithms, plugin_deadline_ms, plugin_memory_mib, plugin_upload_kib FROM tenants",
    )
    .fetch_all(pool)
    .await?
    {
        let tenant = Tenant {
            id: row.try_get("id")?,
            domain: row.try_get::<String, _>("domain")?.to_ascii_lowercase(),
            name: row.try_get("name")?,
            time_zone: row.try_get("time_zone")?,
            trunk_uri: row.try_get("trunk_uri")?,
            voicemail_uri: row.try_get("voicemail_uri")?,
            hotdesk_range: (row.try_get::<i64, _>("hotdesk_first")? as u32)
                ..=(row.try_get::<i64, _>("hotdesk_last")? as u32),
            busy_on_active_call: row.try_get::<i64, _>("busy_on_active_call")? != 0,
            digest_algorithms: algorithm_list(row.try_get("digest_algorithms")?),
            head_history_scope: HistoryScope::parse(
                &row.try_get::<String, _>("head_history_scope")?,
            ),
            user_history_scope: HistoryScope::parse(
                &row.try_get::<String, _>("user_history_scope")?,
            ),
            plugin_limits: PluginLimits {
                deadline_ms: limit(row.try_get("plugin_deadline_ms")?),
                memory_mib: limit(row.try_get("plugin_memory_mib")?),
                upload_kib: limit(row.try_get("plugin_upload_kib")?),
            },
        };
        dirs.insert(
            tenant.id,
            TenantDirectory {
                tenant,
                employees: HashMap::new(),
                devices: HashMap::new(),
                groups: HashMap::new(),
                by_extension: HashMap::new(),
            },
        );
    }
    for row in sqlx::query(
        "SELECT id, tenant_id, name, login, extension, role, position, email, mobile, \
         department_id, ha1_md5, ha1_sha256, voicemail_pin, forced_login, call_waiting \
         FROM employees",
    )
    .fetch_all(pool)
    .await?
    {
        let Some(extension) = parse_ext(&row.try_get::<String, _>("extension")?) else {
            continue;
        };
        let e = Employee {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            login: row.try_get("login")?,
            extension,
            role: Role::parse(&row.try_get::<String, _>("role")?).unwrap_or(Role::User),
            position: row.try_get("position")?,
            email: row.try_get("email")?,
            mobile: row.try_get("mobile")?,
            department_id: row.try_get("department_id")?,
            ha1_md5: row.try_get("ha1_md5")?,
            ha1_sha256: row.try_get("ha1_sha256")?,
            voicemail_pin: row.try_get("voicemail_pin")?,
            forced_login: row.try_get::<i64, _>("forced_login")? != 0,
            call_waiting: row.try_get::<i64, _>("call_waiting")? != 0,
        };
        if let Some(dir) = dirs.get_mut(&e.tenant_id) {
            dir.by_extension
                .insert(e.extension.as_str().to_owned(), Entry::Employee(e.id));
            dir.employees.insert(e.id, e);
        }
    }
    for row in sqlx::query(
        "SELECT id, tenant_id, username, name, employee_id, ha1_md5, ha1_sha256, \
         digest_algorithms FROM devices",
    )
    .fetch_all(pool)
    .await?
    {
        let Some(username) = parse_ext(&row.try_get::<String, _>("username")?) else {
            continue;
        };
        let d = Device {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            username,
            name: row.try_get("name")?,
            employee_id: row.try_get("employee_id")?,
            ha1_md5: row.try_get("ha1_md5")?,
            ha1_sha256: row.try_get("ha1_sha256")?,
            digest_algorithms: algorithm_list(row.try_get("digest_algorithms")?),
        };
        if let Some(dir) = dirs.get_mut(&d.tenant_id) {
            dir.by_extension
                .insert(d.username.as_str().to_owned(), Entry::Device(d.id));
            dir.devices.insert(d.id, d);
        }
    }
    for row in sqlx::query(
        "SELECT id, tenant_id, extension, name, strategy, member_ring_secs, total_ring_secs, \
         no_answer_applies_to FROM hunt_groups",
    )
    .fetch_all(pool)
    .await?
    {
        let Some(extension) = parse_ext(&row.try_get::<String, _>("extension")?) else {
            continue;
        };
        let g = HuntGroup {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            extension,
            name: row.try_get("name")?,
            strategy: RingStrategy::parse(&row.try_get::<String, _>("strategy")?)
                .unwrap_or(RingStrategy::RingAll),
            member_ring_secs: row.try_get::<i64, _>("member_ring_secs")?.max(1) as u32,
            total_ring_secs: row.try_get::<i64, _>("total_ring_secs")?.max(1) as u32,
            no_answer_applies_to: NoAnswerAppliesTo::parse(
                &row.try_get::<String, _>("no_answer_applies_to")?,
            )
            .unwrap_or(NoAnswerAppliesTo::None),
            members: Vec::new(),
        };
        if let Some(dir) = dirs.get_mut(&g.tenant_id) {
            dir.by_extension
                .insert(g.extension.as_str().to_owned(), Entry::Group(g.id));
            dir.groups.insert(g.id, g);
        }
    }
    let group_tenant: HashMap<i64, i64> = dirs
        .values()
        .flat_map(|d| d.groups.values().map(|g| (g.id, g.tenant_id)))
        .collect();
    for row in sqlx::query(
        "SELECT group_id, employee_id, enabled FROM hunt_group_members ORDER BY group_id, position, employee_id",
    )
    .fetch_all(pool)
    .await?
    {
        let group_id: i64 = row.try_get("group_id")?;
        let Some(tenant_id) = group_tenant.get(&group_id) else {
            continue;
        };
        if let Some(g) = dirs
            .get_mut(tenant_id)
            .and_then(|d| d.groups.get_mut(&group_id))
        {
            g.members.push(Member {
                employee_id: row.try_get("employee_id")?,
                enabled: row.try_get::<i64, _>("enabled")? != 0,
            });
        }
    }
    let mut snapshot = Snapshot::default();
    for (id, dir) in dirs {
        snapshot.by_domain.insert(dir.tenant.domain.clone(), id);
        snapshot.tenants.insert(id, Arc::new(dir));
    }
    Ok(snapshot)
}

/// A stored comma list of digest algorithm names (NULL: none of its own).
fn algorithm_list(stored: Option<String>) -> Vec<String> {
    stored
        .map(|l| {
            l.split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default()
}
