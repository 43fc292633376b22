//! Writes to the directory. Every input is validated here, whatever the
//! caller (HTTP API, demo seed, tests), and a refusal names the field.

use serde::Deserialize;

use super::{
    ha1_pair, is_international_number, Extension, HistoryScope, NoAnswerAppliesTo, RingStrategy,
    Role, TenantDirectory,
};
use crate::store::{now_ms, Store};

/// Why a provisioning change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A field has a value the router cannot use.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// JSON field name.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The value is already used by something else in the tenant.
    #[error("`{field}` is already taken: {reason}")]
    Conflict {
        /// JSON field name.
        field: &'static str,
        /// What holds it.
        reason: String,
    },
    /// The referenced row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database failed.
    #[error("database: {0}")]
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for ProvisionError {
    /// A uniqueness constraint lost to a concurrent write is a conflict on
    /// the field it guards, not a failure: the database decided.
    fn from(e: sqlx::Error) -> ProvisionError {
        let Some(db) = e.as_database_error() else {
            return ProvisionError::Sql(e);
        };
        if !db.is_unique_violation() {
            return ProvisionError::Sql(e);
        }
        // SQLite names the column in its message (`employees.login`),
        // PostgreSQL names the constraint (`employees_tenant_id_login_key`).
        let msg = format!("{} {}", db.message(), db.constraint().unwrap_or(""));
        let field = if msg.contains("tenant_numbers") || msg.contains("extension") {
            "extension"
        } else if msg.contains("login") {
            "login"
        } else if msg.contains("username") {
            "username"
        } else if msg.contains("domain") {
            "domain"
        } else {
            "id"
        };
        ProvisionError::Conflict {
            field,
            reason: "is in use (taken by a concurrent change)".into(),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A new tenant.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// SIP domain (also the digest realm).
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = "^[A-Za-z0-9.-]+$",
        example = "acme.example"
    )]
    pub domain: String,
    /// Display name.
    pub name: String,
    /// IANA time zone; default `UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// SIP URI of the outbound trunk.
    #[serde(default)]
    pub trunk_uri: Option<String>,
    /// SIP URI of the voicemail server.
    #[serde(default)]
    pub voicemail_uri: Option<String>,
    /// First hotdesk extension; default 5400.
    #[serde(default)]
    pub hotdesk_first: Option<u32>,
    /// Last hotdesk extension; default 5499.
    #[serde(default)]
    pub hotdesk_last: Option<u32>,
    /// A second call to someone already on a call is busy (seed 001's
    /// "on busy"); default true. Employees with call waiting are rung.
    #[serde(default = "yes")]
    pub busy_on_active_call: bool,
}

/// Checks a SIP domain: a host name or IP, lowercase letters, digits, `-`, `.`.
pub fn validate_domain(domain: &str) -> Result<String, ProvisionError> {
    let d = domain.trim().to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(d)
    } else {
        Err(invalid("domain", format!("`{domain}` is not a host name")))
    }
}

/// Checks a SIP URI given for a trunk or voicemail.
pub fn validate_sip_uri(field: &'static str, uri: &str) -> Result<(), ProvisionError> {
    let parsed = rsip::Uri::try_from(uri)
        .map_err(|_| invalid(field, format!("`{uri}` is not a SIP URI")))?;
    match parsed.scheme {
        Some(rsip::Scheme::Sip) | Some(rsip::Scheme::Sips) => Ok(()),
        _ => Err(invalid(field, format!("`{uri}` must start with sip:"))),
    }
}

/// Checks an IANA time zone name.
pub fn validate_time_zone(tz: &str) -> Result<(), ProvisionError> {
    tz.parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| invalid("time_zone", format!("`{tz}` is not an IANA time zone")))
}

/// Creates a tenant; returns its id.
pub async fn create_tenant(store: &Store, t: &NewTenant) -> Result<i64, ProvisionError> {
    let domain = validate_domain(&t.domain)?;
    if t.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    let tz = t.time_zone.clone().unwrap_or_else(|| "UTC".to_owned());
    validate_time_zone(&tz)?;
    if let Some(u) = &t.trunk_uri {
        validate_sip_uri("trunk_uri", u)?;
    }
    if let Some(u) = &t.voicemail_uri {
        validate_sip_uri("voicemail_uri", u)?;
    }
    let first = t.hotdesk_first.unwrap_or(5400);
    let last = t.hotdesk_last.unwrap_or(5499);
    if first > last || last > 99_999_999 {
        return Err(invalid(
            "hotdesk_last",
            "hotdesk range must be first <= last, at most 8 digits",
        ));
    }
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM tenants WHERE domain = $1")
        .bind(&domain)
        .fetch_optional(store.pool())
        .await?;
    if exists.is_some() {
        return Err(ProvisionError::Conflict {
            field: "domain",
            reason: format!("a tenant already uses `{domain}`"),
        });
    }
    let id = sqlx::query_scalar(
        "INSERT INTO tenants (domain, name, time_zone, trunk_uri, voicemail_uri, hotdesk_first, \
         hotdesk_last, busy_on_active_call, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(&domain)
    .bind(t.name.trim())
    .bind(&tz)
    .bind(&t.trunk_uri)
    .bind(&t.voicemail_uri)
    .bind(i64::from(first))
    .bind(i64::from(last))
    .bind(i64::from(t.busy_on_active_call))
    .bind(now_ms())
    .fetch_one(store.pool())
    .await?;
    Ok(id)
}

/// A new employee.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Erin Example", "password": "erin-2005-pw", "extension": "2005",
    "role": "user", "mobile": "447700900123", "voicemail_pin": "5555"}))]
pub struct NewEmployee {
    /// Full name.
    pub name: String,
    /// HTTP login; defaults to the extension.
    #[serde(default)]
    pub login: Option<String>,
    /// Password for HTTP and SIP (at least 6 characters).
    pub password: String,
    /// Free text.
    #[serde(default)]
    pub position: Option<String>,
    /// Role; default `user`.
    #[serde(default)]
    pub role: Option<Role>,
    /// Extension; auto-assigned when absent.
    #[serde(default)]
    pub extension: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Personal mobile, international digits.
    #[serde(default)]
    pub mobile: Option<String>,
    /// Voicemail PIN, 4 to 8 digits.
    #[serde(default)]
    pub voicemail_pin: Option<String>,
    /// Department (hunt group id).
    #[serde(default)]
    pub department_id: Option<i64>,
    /// Forced login (seed 004); default false.
    #[serde(default)]
    pub forced_login: Option<bool>,
    /// Call waiting: a second call rings them while they are on a call
    /// (else it is busy when the tenant says so); default false.
    #[serde(default)]
    pub call_waiting: Option<bool>,
}

/// Checks that `ext` may be given to a person or group in this tenant.
pub fn check_free_extension(
    dir: &TenantDirectory,
    field: &'static str,
    ext: &str,
    hotdesk_allowed: bool,
) -> Result<Extension, ProvisionError> {
    let e = Extension::parse(ext).map_err(|r| invalid(field, r))?;
    let in_range = dir.tenant.hotdesk_range.contains(&e.number());
    if in_range && !hotdesk_allowed {
        return Err(invalid(
            field,
            format!(
                "`{ext}` is in the hotdesk range {}-{}",
                dir.tenant.hotdesk_range.start(),
                dir.tenant.hotdesk_range.end()
            ),
        ));
    }
    if dir.is_taken(ext) {
        return Err(ProvisionError::Conflict {
            field,
            reason: format!("extension `{ext}` is in use"),
        });
    }
    Ok(e)
}

/// The lowest free extension from 2000 up, outside the hotdesk range.
pub fn next_free_extension(dir: &TenantDirectory) -> Option<Extension> {
    (2000u32..100_000).find_map(|n| {
        if dir.tenant.hotdesk_range.contains(&n) || dir.is_taken(&n.to_string()) {
            return None;
        }
        Extension::parse(&n.to_string()).ok()
    })
}

/// Creates an employee in `dir`'s tenant; returns (id, extension).
pub async fn create_employee(
    store: &Store,
    dir: &TenantDirectory,
    e: &NewEmployee,
) -> Result<(i64, Extension), ProvisionError> {
    if e.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if e.password.chars().count() < 6 {
        return Err(invalid("password", "must be at least 6 characters"));
    }
    let extension = match &e.extension {
        Some(x) => check_free_extension(dir, "extension", x, false)?,
        None => next_free_extension(dir)
            .ok_or_else(|| invalid("extension", "no free extension left"))?,
    };
    if let Some(m) = &e.mobile {
        if !is_international_number(m) {
            return Err(invalid(
                "mobile",
                format!("`{m}` must be international digits like 441234567890"),
            ));
        }
    }
    if let Some(pin) = &e.voicemail_pin {
        if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("voicemail_pin", "must be 4 to 8 digits"));
        }
    }
    if let Some(email) = &e.email {
        if !email.contains('@') {
            return Err(invalid(
                "email",
                format!("`{email}` is not an e-mail address"),
            ));
        }
    }
    if let Some(dep) = e.department_id {
        if !dir.groups.contains_key(&dep) {
            return Err(invalid("department_id", format!("no hunt group {dep}")));
        }
    }
    let login = e
        .login
        .clone()
        .unwrap_or_else(|| extension.as_str().to_owned());
    if login.trim().is_empty() {
        return Err(invalid("login", "must not be empty"));
    }
    if dir.employees.values().any(|x| x.login == login) {
        return Err(ProvisionError::Conflict {
            field: "login",
            reason: format!("login `{login}` is in use"),
        });
    }
    let (ha1_md5, ha1_sha256) = ha1_pair(extension.as_str(), &dir.tenant.domain, &e.password);
    let password_hash =
        crate::credentials::hash_password(&e.password).map_err(|r| invalid("password", r))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO employees (tenant_id, name, login, password_hash, ha1_md5, ha1_sha256, \
         position, role, extension, email, mobile, voicemail_pin, department_id, created_at, \
         forced_login, call_waiting) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16) RETURNING id",
    )
    .bind(dir.tenant.id)
    .bind(e.name.trim())
    .bind(&login)
    .bind(&password_hash)
    .bind(&ha1_md5)
    .bind(&ha1_sha256)
    .bind(e.position.clone().unwrap_or_default())
    .bind(e.role.unwrap_or(Role::User).as_str())
    .bind(extension.as_str())
    .bind(&e.email)
    .bind(&e.mobile)
    .bind(&e.voicemail_pin)
    .bind(e.department_id)
    .bind(now_ms())
    .bind(i64::from(e.forced_login.unwrap_or(false)))
    .bind(i64::from(e.call_waiting.unwrap_or(false)))
    .fetch_one(store.pool())
    .await?;
    Ok((id, extension))
}

/// A new device account.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "5403", "password": "desk-5403-pw", "name": "Desk by the window"}))]
pub struct NewDevice {
    /// SIP username (an extension).
    pub username: String,
    /// SIP password (at least 6 characters).
    pub password: String,
    /// Label.
    #[serde(default)]
    pub name: Option<String>,
    /// Owner; absent for a hotdesk account.
    #[serde(default)]
    pub employee_id: Option<i64>,
    /// Digest algorithms its challenges offer, most preferred first
    /// (`MD5`, `SHA-256`); absent or empty: the tenant's.
    #[serde(default)]
    pub digest_algorithms: Vec<String>,
}

/// Changes to a device account; absent fields stay as they are.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    /// Label.
    #[serde(default)]
    pub name: Option<String>,
    /// New SIP password (at least 6 characters).
    #[serde(default)]
    pub password: Option<String>,
    /// Digest algorithms, most preferred first; empty: the tenant's.
    #[serde(default)]
    pub digest_algorithms: Option<Vec<String>>,
}

/// Changes a device account.
pub async fn patch_device(
    store: &Store,
    dir: &TenantDirectory,
    id: i64,
    p: &DevicePatch,
) -> Result<(), ProvisionError> {
    let d = dir
        .devices
        .get(&id)
        .ok_or_else(|| ProvisionError::NotFound(format!("device {id}")))?;
    let algorithms = p
        .digest_algorithms
        .as_deref()
        .map(digest_list)
        .transpose()?;
    let hashes = match &p.password {
        Some(pw) if pw.chars().count() < 6 => {
            return Err(invalid("password", "must be at least 6 characters"))
        }
        Some(pw) => Some(ha1_pair(d.username.as_str(), &dir.tenant.domain, pw)),
        None => None,
    };
    let mut tx = store.pool().begin().await?;
    if let Some(name) = &p.name {
        sqlx::query("UPDATE devices SET name = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(name)
            .bind(id)
            .bind(dir.tenant.id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some((md5, sha256)) = hashes {
        sqlx::query(
            "UPDATE devices SET ha1_md5 = $1, ha1_sha256 = $2 WHERE id = $3 AND tenant_id = $4",
        )
        .bind(md5)
        .bind(sha256)
        .bind(id)
        .bind(dir.tenant.id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(value) = algorithms {
        sqlx::query("UPDATE devices SET digest_algorithms = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(value)
            .bind(id)
            .bind(dir.tenant.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Creates a device account; returns its id.
pub async fn create_device(
    store: &Store,
    dir: &TenantDirectory,
    d: &NewDevice,
) -> Result<i64, ProvisionError> {
    let username = check_free_extension(dir, "username", &d.username, true)?;
    if d.password.chars().count() < 6 {
        return Err(invalid("password", "must be at least 6 characters"));
    }
    if let Some(owner) = d.employee_id {
        if !dir.employees.contains_key(&owner) {
            return Err(invalid("employee_id", format!("no employee {owner}")));
        }
        if dir.tenant.hotdesk_range.contains(&username.number()) {
            return Err(invalid(
                "employee_id",
                "a hotdesk device account belongs to nobody",
            ));
        }
    }
    let algorithms = digest_list(&d.digest_algorithms)?;
    let (ha1_md5, ha1_sha256) = ha1_pair(username.as_str(), &dir.tenant.domain, &d.password);
    let id = sqlx::query_scalar(
        "INSERT INTO devices (tenant_id, username, name, ha1_md5, ha1_sha256, employee_id, created_at, \
         digest_algorithms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(dir.tenant.id)
    .bind(username.as_str())
    .bind(d.name.clone().unwrap_or_default())
    .bind(&ha1_md5)
    .bind(&ha1_sha256)
    .bind(d.employee_id)
    .bind(now_ms())
    .bind(algorithms)
    .fetch_one(store.pool())
    .await?;
    Ok(id)
}

/// A new hunt group.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"extension": "2100", "name": "Sales", "strategy": "sequential",
    "member_ring_secs": 15, "total_ring_secs": 60, "members": [1, 2]}))]
pub struct NewHuntGroup {
    /// The group's extension.
    pub extension: String,
    /// Name.
    pub name: String,
    /// Ring strategy; default ring all.
    #[serde(default)]
    pub strategy: Option<RingStrategy>,
    /// Seconds per member (sequential strategies), 5-300; default 20.
    #[serde(default)]
    pub member_ring_secs: Option<u32>,
    /// Seconds before giving up, 5-3600; default 60.
    #[serde(default)]
    pub total_ring_secs: Option<u32>,
    /// Status on no answer applies to; default none.
    #[serde(default)]
    pub no_answer_applies_to: Option<NoAnswerAppliesTo>,
    /// Member employee ids in ring order.
    #[serde(default)]
    pub members: Vec<i64>,
}

/// Creates a hunt group with its members; returns its id.
pub async fn create_hunt_group(
    store: &Store,
    dir: &TenantDirectory,
    g: &NewHuntGroup,
) -> Result<i64, ProvisionError> {
    let ext = check_free_extension(dir, "extension", &g.extension, false)?;
    if g.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    let member_ring = g.member_ring_secs.unwrap_or(20);
    if !(5..=300).contains(&member_ring) {
        return Err(invalid("member_ring_secs", "must be 5 to 300 seconds"));
    }
    let total_ring = g.total_ring_secs.unwrap_or(60);
    if !(5..=3600).contains(&total_ring) {
        return Err(invalid("total_ring_secs", "must be 5 to 3600 seconds"));
    }
    for m in &g.members {
        if !dir.employees.contains_key(m) {
            return Err(invalid("members", format!("no employee {m}")));
        }
    }
    let mut tx = store.pool().begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO hunt_groups (tenant_id, extension, name, strategy, member_ring_secs, \
         total_ring_secs, no_answer_applies_to) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(dir.tenant.id)
    .bind(ext.as_str())
    .bind(g.name.trim())
    .bind(g.strategy.unwrap_or(RingStrategy::RingAll).as_str())
    .bind(i64::from(member_ring))
    .bind(i64::from(total_ring))
    .bind(
        g.no_answer_applies_to
            .unwrap_or(NoAnswerAppliesTo::None)
            .as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    for (pos, m) in g.members.iter().enumerate() {
        sqlx::query(
            "INSERT INTO hunt_group_members (group_id, employee_id, position, enabled) VALUES ($1, $2, $3, 1)",
        )
        .bind(id)
        .bind(m)
        .bind(pos as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Changes to a hunt group; absent fields stay as they are (members
/// change with [`set_members`]).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"strategy": "sequential", "member_ring_secs": 15}))]
pub struct HuntGroupPatch {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Ring strategy.
    #[serde(default)]
    pub strategy: Option<RingStrategy>,
    /// Seconds per member (sequential strategies), 5-300.
    #[serde(default)]
    pub member_ring_secs: Option<u32>,
    /// Seconds before giving up, 5-3600.
    #[serde(default)]
    pub total_ring_secs: Option<u32>,
    /// Which unanswered group calls change a member's status (seed 004).
    #[serde(default)]
    pub no_answer_applies_to: Option<NoAnswerAppliesTo>,
}

/// Changes a hunt group's name, strategy and ring times, all or nothing.
pub async fn update_hunt_group(
    store: &Store,
    dir: &TenantDirectory,
    id: i64,
    p: &HuntGroupPatch,
) -> Result<(), ProvisionError> {
    let Some(g) = dir.groups.get(&id) else {
        return Err(ProvisionError::NotFound(format!("hunt group {id}")));
    };
    let name = match &p.name {
        Some(n) if n.trim().is_empty() => return Err(invalid("name", "must not be empty")),
        Some(n) => n.trim().to_owned(),
        None => g.name.clone(),
    };
    let member_ring = p.member_ring_secs.unwrap_or(g.member_ring_secs);
    if !(5..=300).contains(&member_ring) {
        return Err(invalid("member_ring_secs", "must be 5 to 300 seconds"));
    }
    let total_ring = p.total_ring_secs.unwrap_or(g.total_ring_secs);
    if !(5..=3600).contains(&total_ring) {
        return Err(invalid("total_ring_secs", "must be 5 to 3600 seconds"));
    }
    let n = sqlx::query(
        "UPDATE hunt_groups SET name = $1, strategy = $2, member_ring_secs = $3, \
         total_ring_secs = $4, no_answer_applies_to = $5 WHERE id = $6 AND tenant_id = $7",
    )
    .bind(name)
    .bind(p.strategy.unwrap_or(g.strategy).as_str())
    .bind(i64::from(member_ring))
    .bind(i64::from(total_ring))
    .bind(
        p.no_answer_applies_to
            .unwrap_or(g.no_answer_applies_to)
            .as_str(),
    )
    .bind(id)
    .bind(dir.tenant.id)
    .execute(store.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ProvisionError::NotFound(format!("hunt group {id}")));
    }
    Ok(())
}

/// Changes to a tenant; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// Display name.
    pub name: Option<String>,
    /// IANA time zone.
    pub time_zone: Option<String>,
    /// Trunk URI (empty string clears it).
    pub trunk_uri: Option<String>,
    /// Voicemail URI (empty string clears it).
    pub voicemail_uri: Option<String>,
    /// A second call to someone on a call is busy.
    pub busy_on_active_call: Option<bool>,
    /// Digest algorithms offered, most preferred first (`MD5`, `SHA-256`);
    /// an empty list goes back to the router's default.
    pub digest_algorithms: Option<Vec<String>>,
    /// Whose history department heads see: `department` or `company`.
    pub head_history_scope: Option<HistoryScope>,
    /// Whose history users see: `department` or `company`.
    pub user_history_scope: Option<HistoryScope>,
    /// First extension of the hotdesk range (with `hotdesk_last`).
    pub hotdesk_first: Option<u32>,
    /// Last extension of the hotdesk range (with `hotdesk_first`).
    pub hotdesk_last: Option<u32>,
}

/// Checks a new hotdesk range against the directory: it must hold every
/// hotdesk device account (they belong to nobody) and no employee, hunt
/// group or owned device, or numbers would change meaning under them.
pub fn check_hotdesk_range(dir: &TenantDirectory, p: &TenantPatch) -> Result<(), ProvisionError> {
    let (first, last) = match (p.hotdesk_first, p.hotdesk_last) {
        (None, None) => return Ok(()),
        (Some(f), Some(l)) => (f, l),
        (None, Some(_)) => {
            return Err(invalid(
                "hotdesk_first",
                "give the whole range: hotdesk_first and hotdesk_last",
            ))
        }
        (Some(_), None) => {
            return Err(invalid(
                "hotdesk_last",
                "give the whole range: hotdesk_first and hotdesk_last",
            ))
        }
    };
    if first > last || last > 99_999_999 {
        return Err(invalid(
            "hotdesk_last",
            "hotdesk range must be first <= last, at most 8 digits",
        ));
    }
    let range = first..=last;
    if let Some(e) = dir
        .employees
        .values()
        .find(|e| range.contains(&e.extension.number()))
    {
        return Err(invalid(
            "hotdesk_first",
            format!(
                "employee extension {} would fall in the hotdesk range",
                e.extension.as_str()
            ),
        ));
    }
    if let Some(g) = dir
        .groups
        .values()
        .find(|g| range.contains(&g.extension.number()))
    {
        return Err(invalid(
            "hotdesk_first",
            format!(
                "hunt group {} would fall in the hotdesk range",
                g.extension.as_str()
            ),
        ));
    }
    for d in dir.devices.values() {
        let inside = range.contains(&d.username.number());
        if inside && d.employee_id.is_some() {
            return Err(invalid(
                "hotdesk_first",
                format!(
                    "device {} has an owner and would fall in the hotdesk range",
                    d.username.as_str()
                ),
            ));
        }
        if !inside && d.employee_id.is_none() {
            return Err(invalid(
                "hotdesk_last",
                format!(
                    "hotdesk device {} would fall outside the hotdesk range",
                    d.username.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn optional_uri(
    field: &'static str,
    v: &Option<String>,
) -> Result<Option<Option<String>>, ProvisionError> {
    match v.as_deref() {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(u) => {
            validate_sip_uri(field, u)?;
            Ok(Some(Some(u.to_owned())))
        }
    }
}

/// Updates a tenant.
pub async fn update_tenant(store: &Store, id: i64, p: &TenantPatch) -> Result<(), ProvisionError> {
    if let Some(n) = &p.name {
        if n.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
    }
    if let Some(tz) = &p.time_zone {
        validate_time_zone(tz)?;
    }
    let trunk = optional_uri("trunk_uri", &p.trunk_uri)?;
    let voicemail = optional_uri("voicemail_uri", &p.voicemail_uri)?;
    let mut tx = store.pool().begin().await?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(ProvisionError::NotFound(format!("tenant {id}")));
    }
    if let (Some(first), Some(last)) = (p.hotdesk_first, p.hotdesk_last) {
        sqlx::query("UPDATE tenants SET hotdesk_first = $1, hotdesk_last = $2 WHERE id = $3")
            .bind(i64::from(first))
            .bind(i64::from(last))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(n) = &p.name {
        sqlx::query("UPDATE tenants SET name = $1 WHERE id = $2")
            .bind(n.trim())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(tz) = &p.time_zone {
        sqlx::query("UPDATE tenants SET time_zone = $1 WHERE id = $2")
            .bind(tz)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(t) = trunk {
        sqlx::query("UPDATE tenants SET trunk_uri = $1 WHERE id = $2")
            .bind(t)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for (column, scope) in [
        ("head_history_scope", p.head_history_scope),
        ("user_history_scope", p.user_history_scope),
    ] {
        if let Some(scope) = scope {
            sqlx::query(&format!("UPDATE tenants SET {column} = $1 WHERE id = $2"))
                .bind(scope.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
    }
    if let Some(v) = voicemail {
        sqlx::query("UPDATE tenants SET voicemail_uri = $1 WHERE id = $2")
            .bind(v)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(b) = p.busy_on_active_call {
        sqlx::query("UPDATE tenants SET busy_on_active_call = $1 WHERE id = $2")
            .bind(i64::from(b))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(list) = &p.digest_algorithms {
        let value = digest_list(list)?;
        sqlx::query("UPDATE tenants SET digest_algorithms = $1 WHERE id = $2")
            .bind(value)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Checks a list of digest algorithm names (RFC 8760's names for the two
/// the registrar speaks) and gives its stored form (`None` for empty).
fn digest_list(list: &[String]) -> Result<Option<String>, ProvisionError> {
    let mut seen: Vec<&str> = Vec::new();
    for a in list {
        let known = ["MD5", "SHA-256"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(a.trim()));
        match known {
            Some(k) if !seen.contains(&k) => seen.push(k),
            Some(_) => {
                return Err(invalid(
                    "digest_algorithms",
                    format!("`{a}` is listed twice"),
                ))
            }
            None => {
                return Err(invalid(
                    "digest_algorithms",
                    format!("`{a}` is not one of MD5, SHA-256"),
                ))
            }
        }
    }
    Ok((!seen.is_empty()).then(|| seen.join(",")))
}

/// Deletes a row of `table` that belongs to `tenant_id` (or the tenant itself).
async fn delete_row(
    store: &Store,
    table: &'static str,
    tenant_id: i64,
    id: i64,
) -> Result<(), ProvisionError> {
    let sql = match table {
        "tenants" => "DELETE FROM tenants WHERE id = $1 AND id = $2",
        "employees" => "DELETE FROM employees WHERE id = $1 AND tenant_id = $2",
        "devices" => "DELETE FROM devices WHERE id = $1 AND tenant_id = $2",
        "hunt_groups" => "DELETE FROM hunt_groups WHERE id = $1 AND tenant_id = $2",
        _ => return Err(ProvisionError::NotFound(table.to_owned())),
    };
    let r = sqlx::query(sql)
        .bind(id)
        .bind(tenant_id)
        .execute(store.pool())
        .await?;
    if r.rows_affected() == 0 {
        return Err(ProvisionError::NotFound(format!("{table} {id}")));
    }
    Ok(())
}

/// The most a tenant's plugin deadline may be set to (ms): a decision holds
/// one of the router's threads while it runs.
pub const MAX_PLUGIN_DEADLINE_MS: u32 = 100;
/// The largest upload limit a tenant may be given (KiB).
pub const MAX_PLUGIN_UPLOAD_KIB: u32 = 256 * 1024;

/// Sets the operator's plugin limits for a tenant (absent: the `[plugins]`
/// default). `memory_ceiling_mib` is the most the router's instance pool
/// can give one instance.
pub async fn set_plugin_limits(
    store: &Store,
    tenant_id: i64,
    limits: &crate::directory::PluginLimits,
    memory_ceiling_mib: u32,
) -> Result<(), ProvisionError> {
    if let Some(d) = limits.deadline_ms {
        if !(1..=MAX_PLUGIN_DEADLINE_MS).contains(&d) {
            return Err(invalid(
                "deadline_ms",
                format!("must be 1-{MAX_PLUGIN_DEADLINE_MS} ms"),
            ));
        }
    }
    if let Some(m) = limits.memory_mib {
        if !(1..=memory_ceiling_mib).contains(&m) {
            return Err(invalid(
                "memory_mib",
                format!(
                    "must be 1-{memory_ceiling_mib} MiB (the router's [plugins] memory_ceiling_mib)"
                ),
            ));
        }
    }
    if let Some(u) = limits.upload_kib {
        if !(1..=MAX_PLUGIN_UPLOAD_KIB).contains(&u) {
            return Err(invalid(
                "upload_kib",
                format!("must be 1-{MAX_PLUGIN_UPLOAD_KIB} KiB"),
            ));
        }
    }
    let r = sqlx::query(
        "UPDATE tenants SET plugin_deadline_ms = $1, plugin_memory_mib = $2, plugin_upload_kib = $3 WHERE id = $4",
    )
    .bind(limits.deadline_ms.map(i64::from))
    .bind(limits.memory_mib.map(i64::from))
    .bind(limits.upload_kib.map(i64::from))
    .bind(tenant_id)
    .execute(store.pool())
    .await?;
    if r.rows_affected() == 0 {
        return Err(ProvisionError::NotFound(format!("tenant {tenant_id}")));
    }
    Ok(())
}

/// Deletes a tenant and everything in it.
pub async fn delete_tenant(store: &Store, id: i64) -> Result<(), ProvisionError> {
    delete_row(store, "tenants", id, id).await
}

/// Deletes an employee of a tenant.
pub async fn delete_employee(store: &Store, tenant_id: i64, id: i64) -> Result<(), ProvisionError> {
    delete_row(store, "employees", tenant_id, id).await
}

/// Deletes a device account of a tenant.
pub async fn delete_device(store: &Store, tenant_id: i64, id: i64) -> Result<(), ProvisionError> {
    delete_row(store, "devices", tenant_id, id).await
}

/// Deletes a hunt group of a tenant (memberships go with it).
pub async fn delete_hunt_group(
    store: &Store,
    tenant_id: i64,
    id: i64,
) -> Result<(), ProvisionError> {
    delete_row(store, "hunt_groups", tenant_id, id).await
}

/// Changes to an employee; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployeePatch {
    /// Full name.
    pub name: Option<String>,
    /// New password (HTTP and SIP).
    pub password: Option<String>,
    /// Free text.
    pub position: Option<String>,
    /// Role.
    pub role: Option<Role>,
    /// New extension; needs `password` too, because SIP secrets are bound
    /// to the username.
    pub extension: Option<String>,
    /// E-mail (empty clears).
    pub email: Option<String>,
    /// Mobile, international digits (empty clears).
    pub mobile: Option<String>,
    /// Voicemail PIN, 4-8 digits.
    pub voicemail_pin: Option<String>,
    /// Department (hunt group id); `null` clears it, absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub department_id: Option<Option<i64>>,
    /// Forced login (seed 004).
    pub forced_login: Option<bool>,
    /// Call waiting (a second call rings them during a call).
    pub call_waiting: Option<bool>,
}

/// A field that was sent, even as `null` (absent fields stay `None` by
/// `#[serde(default)]`): tells "clear it" from "leave it".
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Updates an employee of `dir`'s tenant.
pub async fn update_employee(
    store: &Store,
    dir: &TenantDirectory,
    id: i64,
    p: &EmployeePatch,
) -> Result<(), ProvisionError> {
    let Some(current) = dir.employees.get(&id) else {
        return Err(ProvisionError::NotFound(format!("employee {id}")));
    };
    if let Some(n) = &p.name {
        if n.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
    }
    let extension = match &p.extension {
        Some(x) if x != current.extension.as_str() => {
            if p.password.is_none() {
                return Err(invalid("password", "required when the extension changes"));
            }
            Some(check_free_extension(dir, "extension", x, false)?)
        }
        _ => None,
    };
    if let Some(pw) = &p.password {
        if pw.chars().count() < 6 {
            return Err(invalid("password", "must be at least 6 characters"));
        }
    }
    if let Some(m) = p.mobile.as_deref().filter(|m| !m.is_empty()) {
        if !is_international_number(m) {
            return Err(invalid(
                "mobile",
                format!("`{m}` must be international digits like 441234567890"),
            ));
        }
    }
    if let Some(pin) = &p.voicemail_pin {
        if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("voicemail_pin", "must be 4 to 8 digits"));
        }
    }
    if let Some(email) = p.email.as_deref().filter(|e| !e.is_empty()) {
        if !email.contains('@') {
            return Err(invalid(
                "email",
                format!("`{email}` is not an e-mail address"),
            ));
        }
    }
    if let Some(Some(dep)) = p.department_id {
        if !dir.groups.contains_key(&dep) {
            return Err(invalid("department_id", format!("no hunt group {dep}")));
        }
    }
    let mut tx = store.pool().begin().await?;
    if let Some(n) = &p.name {
        sqlx::query("UPDATE employees SET name = $1 WHERE id = $2")
            .bind(n.trim())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(pos) = &p.position {
        sqlx::query("UPDATE employees SET position = $1 WHERE id = $2")
            .bind(pos)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(r) = p.role {
        sqlx::query("UPDATE employees SET role = $1 WHERE id = $2")
            .bind(r.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(e) = &p.email {
        sqlx::query("UPDATE employees SET email = $1 WHERE id = $2")
            .bind(Some(e).filter(|e| !e.is_empty()))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(m) = &p.mobile {
        sqlx::query("UPDATE employees SET mobile = $1 WHERE id = $2")
            .bind(Some(m).filter(|m| !m.is_empty()))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(pin) = &p.voicemail_pin {
        sqlx::query("UPDATE employees SET voicemail_pin = $1 WHERE id = $2")
            .bind(pin)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(f) = p.forced_login {
        sqlx::query("UPDATE employees SET forced_login = $1 WHERE id = $2")
            .bind(i64::from(f))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(w) = p.call_waiting {
        sqlx::query("UPDATE employees SET call_waiting = $1 WHERE id = $2")
            .bind(i64::from(w))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(dep) = p.department_id {
        sqlx::query("UPDATE employees SET department_id = $1 WHERE id = $2")
            .bind(dep)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(e) = &extension {
        sqlx::query("UPDATE employees SET extension = $1 WHERE id = $2")
            .bind(e.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(pw) = &p.password {
        let user = extension.as_ref().unwrap_or(&current.extension);
        let (md5, sha) = ha1_pair(user.as_str(), &dir.tenant.domain, pw);
        let phc = crate::credentials::hash_password(pw).map_err(|r| invalid("password", r))?;
        sqlx::query(
            "UPDATE employees SET ha1_md5 = $1, ha1_sha256 = $2, password_hash = $3 WHERE id = $4",
        )
        .bind(md5)
        .bind(sha)
        .bind(phc)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One member in a hunt group's new member list.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// The employee.
    pub employee_id: i64,
    /// Whether calls are offered to them; default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Replaces a hunt group's members (in ring order).
pub async fn set_members(
    store: &Store,
    dir: &TenantDirectory,
    group_id: i64,
    members: &[MemberSpec],
) -> Result<(), ProvisionError> {
    if !dir.groups.contains_key(&group_id) {
        return Err(ProvisionError::NotFound(format!("hunt group {group_id}")));
    }
    let mut seen = std::collections::HashSet::new();
    for m in members {
        if !dir.employees.contains_key(&m.employee_id) {
            return Err(invalid("members", format!("no employee {}", m.employee_id)));
        }
        if !seen.insert(m.employee_id) {
            return Err(invalid(
                "members",
                format!("employee {} listed twice", m.employee_id),
            ));
        }
    }
    let mut tx = store.pool().begin().await?;
    sqlx::query("DELETE FROM hunt_group_members WHERE group_id = $1")
        .bind(group_id)
        .execute(&mut *tx)
        .await?;
    for (pos, m) in members.iter().enumerate() {
        sqlx::query("INSERT INTO hunt_group_members (group_id, employee_id, position, enabled) VALUES ($1, $2, $3, $4)")
            .bind(group_id)
            .bind(m.employee_id)
            .bind(pos as i64)
            .bind(i64::from(m.enabled))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
