//! Who is calling the API: the platform operator (the bootstrap token from
//! the config), or an employee through a session token (from a login with
//! their login and password, expiring) or an API token (for automation,
//! until revoked). Tokens are random 256-bit values; only their SHA-256 is
//! stored. Failed logins are rate limited per account and per source
//! address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::Extension;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{AdminState, ApiError, Json, Path};
use crate::directory::Role;
use crate::store::now_ms;

/// How long a login session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Failed logins allowed per account within [`LOGIN_WINDOW`].
pub const ACCOUNT_FAILURES: usize = 5;
/// Failed logins allowed per source address within [`LOGIN_WINDOW`].
pub const SOURCE_FAILURES: usize = 20;
/// Wrong bearer tokens allowed per source address within [`LOGIN_WINDOW`].
pub const TOKEN_FAILURES: usize = 30;
/// Window of the login rate limits.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// An authenticated caller of the API.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The platform operator: every tenant.
    Operator,
    /// An employee, with their role as it is now.
    Employee(EmployeePrincipal),
}

/// An employee calling the API.
#[derive(Debug, Clone)]
pub struct EmployeePrincipal {
    /// Their tenant.
    pub tenant_id: i64,
    /// Their id.
    pub employee_id: i64,
    /// Their extension.
    pub extension: String,
    /// Their role.
    pub role: Role,
    /// Their department (hunt group id).
    pub department_id: Option<i64>,
    /// The token they presented.
    pub token_id: i64,
    /// Whether that token is a login session (not a long-lived API token).
    pub session: bool,
}

impl Principal {
    /// For the audit log.
    pub fn actor(&self) -> String {
        match self {
            Principal::Operator => "operator".into(),
            Principal::Employee(e) => format!("employee {} ({:?})", e.extension, e.role),
        }
    }

    /// Whether this principal administers the tenant.
    pub fn is_admin_of(&self, tenant_id: i64) -> bool {
        match self {
            Principal::Operator => true,
            Principal::Employee(e) => e.tenant_id == tenant_id && e.role == Role::Administrator,
        }
    }

    /// Whether this principal is the employee with this extension, or
    /// administers their tenant.
    pub fn is_self_or_admin(&self, tenant_id: i64, extension: &str) -> bool {
        self.is_admin_of(tenant_id)
            || matches!(self, Principal::Employee(e) if e.tenant_id == tenant_id && e.extension == extension)
    }
}

/// 403 naming what is missing.
pub fn forbidden(why: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, why, None)
}

fn hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The principal a bearer token stands for, if it is valid now.
pub async fn authenticate(s: &AdminState, token: &str) -> Result<Option<Principal>, ApiError> {
    if crate::credentials::constant_time_eq(token.as_bytes(), s.admin_token.as_bytes()) {
        return Ok(Some(Principal::Operator));
    }
    if token.is_empty() {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT id, tenant_id, employee_id, kind, expires_at, revoked_at FROM api_tokens WHERE token_hash = $1",
    )
    .bind(hash(token))
    .fetch_optional(s.store.pool())
    .await
    .map_err(ApiError::internal)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let expires: Option<i64> = row.try_get("expires_at").map_err(ApiError::internal)?;
    let revoked: Option<i64> = row.try_get("revoked_at").map_err(ApiError::internal)?;
    if revoked.is_some() || expires.is_some_and(|e| e <= now_ms()) {
        return Ok(None);
    }
    let tenant_id: i64 = row.try_get("tenant_id").map_err(ApiError::internal)?;
    let employee_id: i64 = row.try_get("employee_id").map_err(ApiError::internal)?;
    let snap = s.directory.snapshot();
    let Some(e) = snap
        .by_id(tenant_id)
        .and_then(|t| t.employees.get(&employee_id))
    else {
        return Ok(None); // the employee is gone
    };
    Ok(Some(Principal::Employee(EmployeePrincipal {
        tenant_id,
        employee_id,
        extension: e.extension.to_string(),
        role: e.role,
        department_id: e.department_id,
        token_id: row.try_get("id").map_err(ApiError::internal)?,
        session: row
            .try_get::<String, _>("kind")
            .map_err(ApiError::internal)?
            == "session",
    })))
}

async fn issue(
    s: &AdminState,
    tenant_id: i64,
    employee_id: i64,
    kind: &str,
    label: &str,
    ttl: Option<Duration>,
) -> Result<(i64, String, Option<i64>), ApiError> {
    let token = new_token();
    let expires_at = ttl.map(|t| now_ms() + t.as_millis() as i64);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_tokens (token_hash, tenant_id, employee_id, kind, label, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(hash(&token))
    .bind(tenant_id)
    .bind(employee_id)
    .bind(kind)
    .bind(label)
    .bind(now_ms())
    .bind(expires_at)
    .fetch_one(s.store.pool())
    .await
    .map_err(ApiError::internal)?;
    Ok((id, token, expires_at))
}

/// The cookie that carries a console session's token. The browser holds
/// it (`HttpOnly`, `SameSite=Strict`) so no script ever sees the token.
pub const SESSION_COOKIE: &str = "sb_session";

/// The header a cookie-authenticated write must carry, with the value of
/// [`csrf_for`] its session: a page of another site can make the browser
/// send the cookie (were `SameSite` ever relaxed) but cannot read or
/// compute this value.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The anti-forgery value of a session token: derived, so nothing more
/// has to be stored, and useless without the token it came from.
pub fn csrf_for(token: &str) -> String {
    hash(&format!("switchboard-csrf:{token}"))
}

/// Whether a request carries the anti-forgery value of session `token`.
pub fn csrf_ok(headers: &axum::http::HeaderMap, token: &str) -> bool {
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    crate::credentials::constant_time_eq(sent.as_bytes(), csrf_for(token).as_bytes())
}

/// The session token in a request's `Cookie` headers, if there is exactly
/// one: a second `sb_session` (planted by a sibling site for a narrower
/// path, say) makes the request unauthenticated rather than letting the
/// order of cookies choose whose session it runs in.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    let mut found = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value);
    let value = found.next()?;
    if found.next().is_some() {
        return None;
    }
    // A token is 64 hex digits; anything else is not ours.
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())).then(|| value.to_owned())
}

/// The employee a console session cookie stands for: only login sessions
/// count (an API token or the operator's never rides in a cookie), and
/// wrong cookies are limited per source like wrong bearer tokens.
pub(crate) async fn authenticate_cookie(
    s: &AdminState,
    peer: IpAddr,
    token: &str,
) -> Result<Option<Principal>, ApiError> {
    let source = token_source_key(peer);
    if let Err(wait) = s.logins.check(&source, TOKEN_FAILURES) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many wrong session cookies; try again in {wait} s"),
            None,
        ));
    }
    match authenticate(s, token).await? {
        Some(p @ Principal::Employee(EmployeePrincipal { session: true, .. })) => Ok(Some(p)),
        _ => {
            crate::metrics::count_auth_failure();
            s.logins.fail(&source);
            Ok(None)
        }
    }
}

/// Failed login attempts by key (`account:...`, `source:...`).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: parking_lot::Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    /// Seconds until `key` may try again, if it is over `limit`.
    fn blocked_in(map: &mut HashMap<String, Vec<Instant>>, key: &str, limit: usize) -> Option<u64> {
        let list = map.get_mut(key)?;
        list.retain(|t| t.elapsed() < LOGIN_WINDOW);
        if list.len() < limit {
            return None;
        }
        let oldest = list.first()?;
        Some(
            LOGIN_WINDOW
                .saturating_sub(oldest.elapsed())
                .as_secs()
                .max(1),
        )
    }

    /// Takes one attempt for every key, or none if any key is over its
    /// limit (the seconds to wait). Checking and counting under one lock,
    /// before the slow password check, is what stops a burst of parallel
    /// attempts from all passing the check before any failure is counted.
    pub(super) fn attempt(&self, keys: &[(&str, usize)]) -> Result<(), u64> {
        let mut map = self.failures.lock();
        for (key, limit) in keys {
            if let Some(wait) = Self::blocked_in(&mut map, key, *limit) {
                return Err(wait);
            }
        }
        // Bound memory under a flood of distinct keys.
        if map.len() > 100_000 {
            map.retain(|_, l| l.last().is_some_and(|t| t.elapsed() < LOGIN_WINDOW));
        }
        let now = Instant::now();
        for (key, _) in keys {
            map.entry((*key).to_owned()).or_default().push(now);
        }
        Ok(())
    }

    /// Whether `key` is over `limit` (the seconds to wait), without taking
    /// an attempt: for checks cheap enough that a burst cannot slip by.
    pub(super) fn check(&self, key: &str, limit: usize) -> Result<(), u64> {
        match Self::blocked_in(&mut self.failures.lock(), key, limit) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failure of `key`.
    pub(super) fn fail(&self, key: &str) {
        let mut map = self.failures.lock();
        if map.len() > 100_000 {
            map.retain(|_, l| l.last().is_some_and(|t| t.elapsed() < LOGIN_WINDOW));
        }
        map.entry(key.to_owned()).or_default().push(Instant::now());
    }

    /// Gives back the attempt of a success: it was not a failure.
    pub(super) fn succeeded(&self, key: &str) {
        let mut map = self.failures.lock();
        if let Some(list) = map.get_mut(key) {
            list.pop();
            if list.is_empty() {
                map.remove(key);
            }
        }
    }

    fn clear(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

/// The limiter key of an API caller's address.
pub(super) fn token_source_key(ip: IpAddr) -> String {
    format!("token:{}", source_key(ip))
}

/// A domain as the directory matches it: case and a trailing dot do not
/// make another tenant, nor another failure counter.
fn normalise_domain(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Body of `POST /login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"domain": "demo.switchboard.test", "login": "alice", "password": "alice-2001-pw"}))]
pub(crate) struct LoginBody {
    /// The tenant's SIP domain.
    pub(crate) domain: String,
    /// The employee's login.
    pub(crate) login: String,
    /// Their password.
    pub(crate) password: String,
}

fn too_many(retry_after: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed logins; try again in {retry_after} s"),
        None,
    )
}

/// Stores a failed login (and forgets those older than the window).
async fn record_login_failure(
    s: &AdminState,
    account: &str,
    window_start: i64,
) -> Result<(), ApiError> {
    let mut tx = s.store.pool().begin().await.map_err(ApiError::internal)?;
    sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(window_start)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
    sqlx::query("INSERT INTO login_failures (account, at) VALUES ($1, $2)")
        .bind(account)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await.map_err(ApiError::internal)
}

pub(super) async fn login(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginBody>,
) -> Result<Json<Session>, ApiError> {
    open_session(&s, peer, body).await.map(Json)
}

/// Checks an employee's login and password (rate limited per account and
/// per source) and opens an expiring session: for the API's `POST /login`
/// and the console's login, which puts the token in a cookie instead.
pub(crate) async fn open_session(
    s: &AdminState,
    peer: SocketAddr,
    body: LoginBody,
) -> Result<Session, ApiError> {
    let source = format!("source:{}", source_key(peer.ip()));
    let domain = normalise_domain(&body.domain);
    let tenant = s.directory.tenant_for(&domain);
    // Keyed by the tenant the domain resolves to, so every spelling of a
    // domain (and the default domain) shares one counter per account.
    let account = match &tenant {
        Some(t) => format!("account:{}:{}", t.tenant.id, body.login),
        None => format!("account:?{domain}:{}", body.login),
    };
    let limiter = &s.logins;
    if let Err(wait) = limiter.attempt(&[
        (account.as_str(), ACCOUNT_FAILURES),
        (source.as_str(), SOURCE_FAILURES),
    ]) {
        return Err(too_many(wait));
    }
    // The account's failures on every node (this one's included): the
    // limit holds for the cluster, not per node.
    let window_start = now_ms() - LOGIN_WINDOW.as_millis() as i64;
    let (failed, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(at) FROM login_failures WHERE account = $1 AND at >= $2",
    )
    .bind(&account)
    .bind(window_start)
    .fetch_one(s.store.pool())
    .await
    .map_err(ApiError::internal)?;
    if failed >= ACCOUNT_FAILURES as i64 {
        let wait = oldest.map_or(1, |o| ((o - window_start) / 1000).max(1));
        return Err(too_many(wait as u64));
    }
    let row = match &tenant {
        Some(t) => sqlx::query(
            "SELECT id, password_hash FROM employees WHERE tenant_id = $1 AND login = $2",
        )
        .bind(t.tenant.id)
        .bind(&body.login)
        .fetch_optional(s.store.pool())
        .await
        .map_err(ApiError::internal)?,
        None => None,
    };
    let (id, phc) = match row {
        Some(r) => (
            Some(r.try_get::<i64, _>("id").map_err(ApiError::internal)?),
            r.try_get::<String, _>("password_hash")
                .map_err(ApiError::internal)?,
        ),
        // Hash anyway, so an unknown login takes as long as a wrong password.
        None => (None, dummy_hash().to_owned()),
    };
    let password = body.password.clone();
    let ok =
        tokio::task::spawn_blocking(move || crate::credentials::verify_password(&password, &phc))
            .await
            .unwrap_or(false);
    let (Some(t), Some(id), true) = (tenant, id, ok) else {
        crate::metrics::count_auth_failure();
        record_login_failure(s, &account, window_start).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong domain, login or password",
            None,
        ));
    };
    limiter.clear(&account);
    limiter.succeeded(&source);
    sqlx::query("DELETE FROM login_failures WHERE account = $1")
        .bind(&account)
        .execute(s.store.pool())
        .await
        .map_err(ApiError::internal)?;
    let (_, token, expires_at) =
        issue(s, t.tenant.id, id, "session", "login", Some(SESSION_TTL)).await?;
    let e = t.employees.get(&id);
    Ok(Session {
        token,
        expires_at,
        tenant_id: t.tenant.id,
        extension: e.map(|e| e.extension.to_string()),
        role: e.map(|e| e.role),
    })
}

/// A session opened by `POST /login`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Session {
    /// Bearer token for the `Authorization` header.
    pub(crate) token: String,
    /// When it stops working (Unix ms).
    pub(crate) expires_at: Option<i64>,
    /// The employee's tenant.
    pub(crate) tenant_id: i64,
    /// The employee's extension.
    pub(crate) extension: Option<String>,
    /// The employee's role.
    pub(crate) role: Option<Role>,
}

/// Who a token belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Me {
    /// The platform operator's token.
    operator: bool,
    /// The employee's tenant (absent for the operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<i64>,
    /// The employee (absent for the operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    employee_id: Option<i64>,
    /// Their extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    extension: Option<String>,
    /// Their role.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
}

/// A new API token; its secret is shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct CreatedToken {
    /// Token id (for revoking it).
    id: i64,
    /// The secret.
    token: String,
    /// When it stops working (Unix ms); absent: until revoked.
    expires_at: Option<i64>,
    /// Whose token.
    employee_id: i64,
}

/// An API token or session, without its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TokenInfo {
    /// Token id.
    id: i64,
    /// Whose token.
    employee_id: i64,
    /// `session` (from a login) or `api`.
    kind: String,
    /// What it is for.
    label: String,
    /// Unix ms.
    created_at: i64,
    /// Unix ms; absent: until revoked.
    expires_at: Option<i64>,
    /// Unix ms, once revoked.
    revoked_at: Option<i64>,
}

/// IPv6 clients are limited per /64, as they usually own one.
fn source_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        crate::credentials::hash_password("not a password of anyone").unwrap_or_default()
    })
}

pub(super) async fn logout(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
) -> Result<StatusCode, ApiError> {
    let Principal::Employee(e) = p.as_ref() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the operator token is set in the config and cannot be logged out",
            None,
        ));
    };
    revoke(&s, e.tenant_id, e.token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes token `id` of the tenant (404 if it is not a live token of it).
pub(crate) async fn revoke(s: &AdminState, tenant_id: i64, id: i64) -> Result<(), ApiError> {
    let n = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .bind(tenant_id)
    .execute(s.store.pool())
    .await
    .map_err(ApiError::internal)?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::not_found(format!("token {id}")));
    }
    Ok(())
}

/// Revokes an employee's login sessions (API tokens stay).
pub(super) async fn revoke_sessions(
    s: &AdminState,
    tenant_id: i64,
    employee_id: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND employee_id = $3 \
         AND kind = 'session' AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(tenant_id)
    .bind(employee_id)
    .execute(s.store.pool())
    .await
    .map_err(ApiError::internal)?;
    Ok(())
}

pub(super) async fn me(Extension(p): Extension<Arc<Principal>>) -> Json<Me> {
    Json(match p.as_ref() {
        Principal::Operator => Me {
            operator: true,
            tenant_id: None,
            employee_id: None,
            extension: None,
            role: None,
        },
        Principal::Employee(e) => Me {
            operator: false,
            tenant_id: Some(e.tenant_id),
            employee_id: Some(e.employee_id),
            extension: Some(e.extension.clone()),
            role: Some(e.role),
        },
    })
}

/// Body of `POST /tenants/{tid}/api-tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    /// What it is for.
    label: String,
    /// Whose token (default: the caller; the operator must say).
    #[serde(default)]
    employee_id: Option<i64>,
    /// Lifetime in days; absent = until revoked.
    #[serde(default)]
    #[schema(minimum = 1)]
    expires_in_days: Option<u32>,
}

pub(super) async fn create_token(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path(tid): Path<i64>,
    Json(body): Json<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let t = super::tenant_of(&s, tid)?;
    let employee_id = match (body.employee_id, p.as_ref()) {
        (Some(id), _) => id,
        (None, Principal::Employee(e)) => e.employee_id,
        (None, Principal::Operator) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the operator must name the employee",
                Some("employee_id"),
            ))
        }
    };
    if !t.employees.contains_key(&employee_id) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no employee {employee_id} in tenant {tid}"),
            Some("employee_id"),
        ));
    }
    let label = body.label.trim();
    if label.is_empty() || label.len() > 100 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "must be 1 to 100 characters",
            Some("label"),
        ));
    }
    if body.expires_in_days == Some(0) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "must be at least 1",
            Some("expires_in_days"),
        ));
    }
    let ttl = body
        .expires_in_days
        .map(|d| Duration::from_secs(u64::from(d) * 86_400));
    let (id, token, expires_at) = issue(&s, tid, employee_id, "api", label, ttl).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            token,
            expires_at,
            employee_id,
        }),
    ))
}

pub(super) async fn list_tokens(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<super::List<TokenInfo>>, ApiError> {
    super::tenant_of(&s, tid)?;
    let rows = sqlx::query(
        "SELECT id, employee_id, kind, label, created_at, expires_at, revoked_at FROM api_tokens \
         WHERE tenant_id = $1 ORDER BY id",
    )
    .bind(tid)
    .fetch_all(s.store.pool())
    .await
    .map_err(ApiError::internal)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(TokenInfo {
            id: r.try_get("id").map_err(ApiError::internal)?,
            employee_id: r.try_get("employee_id").map_err(ApiError::internal)?,
            kind: r.try_get("kind").map_err(ApiError::internal)?,
            label: r.try_get("label").map_err(ApiError::internal)?,
            created_at: r.try_get("created_at").map_err(ApiError::internal)?,
            expires_at: r.try_get("expires_at").map_err(ApiError::internal)?,
            revoked_at: r.try_get("revoked_at").map_err(ApiError::internal)?,
        });
    }
    Ok(Json(super::List::new(items)))
}

pub(super) async fn delete_token(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    super::tenant_of(&s, tid)?;
    revoke(&s, tid, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
