//! Registrations and call history.

use axum::extract::State;
use std::sync::Arc;

use axum::http::Method;
use axum::routing::get;
use axum::Extension;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::api::{list, op, schema, Access, Api};
use super::auth::Principal;
use super::{AdminState, ApiError, Json, List, Path, Query};
use crate::directory::{HistoryScope, Role};
use crate::store::{now_ms, numbered};

pub(super) fn routes() -> Api {
    use Access::*;
    Api::new()
        .route(
            "/tenants/{tid}/registrations",
            vec![op(Method::GET, Admin, "Live registrations").ok(list::<Registration>)],
            get(registrations),
        )
        .route(
            "/tenants/{tid}/live-calls",
            vec![op(Method::GET, Admin, "Answered calls in progress").ok(list::<LiveCall>)],
            get(live_calls),
        )
        .route(
            "/tenants/{tid}/calls",
            vec![op(Method::GET, Member, "Call history, filtered and paged; what each role sees follows seed 002").query::<CallQuery>().ok(schema::<CallPage>)],
            get(calls),
        )
        .route(
            "/tenants/{tid}/stats",
            vec![op(Method::GET, Member, "Call statistics by outcome and direction over the history the role sees (not restricted users)").query::<StatsQuery>().ok(schema::<Stats>)],
            get(stats),
        )
        .route(
            "/tenants/{tid}/calls/{call}",
            vec![op(Method::GET, Member, "One call with its legs, if the role may see it").ok(schema::<CallRecord>)],
            get(call),
        )
        .route(
            "/tenants/{tid}/audit",
            vec![op(Method::GET, Admin, "Who changed what, when (newest first)").query::<Page>().ok(schema::<AuditPage>)],
            get(tenant_audit),
        )
        .route(
            "/audit",
            vec![op(Method::GET, Operator, "The audit log of every tenant and the platform").query::<Page>().ok(schema::<AuditPage>)],
            get(all_audit),
        )
}

fn check_tenant(s: &AdminState, tid: i64) -> Result<(), ApiError> {
    s.directory
        .snapshot()
        .by_id(tid)
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found(format!("tenant {tid}")))
}

/// A live registration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Registration {
    /// Address of record (`sip:ext@domain`).
    aor: String,
    /// Where the phone is reached.
    contact: String,
    /// Unix ms.
    expires_at: i64,
    /// Address it registered from.
    source: String,
    /// udp, tcp or tls.
    transport: String,
    /// The phone's User-Agent.
    user_agent: Option<String>,
}

/// One attempt to reach a target.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Leg {
    /// Who was tried.
    target: String,
    /// The contact it went to.
    contact: String,
    /// Unix ms.
    started_at: i64,
    /// Unix ms.
    ended_at: Option<i64>,
    /// Final SIP status.
    status_code: Option<i64>,
    /// answered, no_answer, busy, unreachable, cancelled, rejected...
    outcome: String,
}

/// A call in the history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct CallRecord {
    /// Record id.
    id: String,
    /// The SIP Call-ID.
    sip_call_id: String,
    /// Calling extension or number.
    caller: String,
    /// Called extension or number.
    callee: String,
    /// internal, inbound or outbound.
    direction: String,
    /// Unix ms.
    started_at: i64,
    /// Unix ms.
    answered_at: Option<i64>,
    /// Unix ms.
    ended_at: Option<i64>,
    /// Who answered.
    answered_by: Option<String>,
    /// answered, no_answer, busy, unreachable, cancelled, rejected.
    outcome: String,
    /// Final SIP status.
    status_code: Option<i64>,
    /// What plugins noted on the call (JSON text).
    annotations: String,
    /// Its legs, in order.
    legs: Vec<Leg>,
}

/// A page of the call history, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct CallPage {
    /// The calls.
    items: Vec<CallRecord>,
    /// Calls matching the filters.
    total: i64,
    /// Page size.
    limit: i64,
    /// Offset.
    offset: i64,
}

/// Call statistics.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Stats {
    /// Calls.
    total: i64,
    /// Calls per outcome.
    by_outcome: std::collections::BTreeMap<String, i64>,
    /// Calls per direction.
    by_direction: std::collections::BTreeMap<String, i64>,
    /// Seconds of answered calls.
    talk_time_s: i64,
}

/// An answered call in progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LiveCall {
    /// Its history record id.
    call_id: String,
    /// Who is talking.
    parties: Vec<String>,
    /// Seconds since it was answered.
    duration_s: u64,
}

/// An accepted write.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AuditEntry {
    /// The tenant it concerned (absent: the platform).
    tenant_id: Option<i64>,
    /// Who did it.
    actor: String,
    /// HTTP method.
    method: String,
    /// Path.
    path: String,
    /// The HTTP status answered.
    status: i64,
    /// Unix ms.
    at: i64,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AuditPage {
    /// The entries.
    items: Vec<AuditEntry>,
    /// Page size.
    limit: i64,
    /// Offset.
    offset: i64,
}

async fn registrations(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<List<Registration>>, ApiError> {
    check_tenant(&s, tid)?;
    let rows = sqlx::query(
        "SELECT aor, contact_uri, expires_at, source, transport, user_agent FROM registrations \
         WHERE tenant_id = $1 AND expires_at > $2 ORDER BY aor, contact_uri",
    )
    .bind(tid)
    .bind(now_ms())
    .fetch_all(s.store.pool())
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(Registration {
            aor: r.try_get("aor")?,
            contact: r.try_get("contact_uri")?,
            expires_at: r.try_get("expires_at")?,
            source: r.try_get("source")?,
            transport: r.try_get("transport")?,
            user_agent: r.try_get("user_agent")?,
        });
    }
    Ok(Json(List::new(items)))
}

/// A list page: `limit` 1-500 (default 50), `offset` from 0.
pub(super) fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "limit must be 1 to 500",
            Some("limit"),
        ));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "offset must be 0 or more",
            Some("offset"),
        ));
    }
    Ok((limit, offset))
}

/// History filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct CallQuery {
    /// Unix ms, inclusive.
    from: Option<i64>,
    /// Unix ms, exclusive.
    to: Option<i64>,
    /// Caller or callee.
    extension: Option<String>,
    /// Outcome (answered, no_answer, busy, unreachable, cancelled, rejected).
    outcome: Option<String>,
    /// internal, inbound, outbound.
    direction: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// How many to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

const CALL_COLUMNS: &str = "id, sip_call_id, caller, callee, direction, started_at, answered_at, \
    ended_at, answered_by, outcome, status_code, annotations";

async fn call_json(s: &AdminState, r: &sqlx::any::AnyRow) -> Result<CallRecord, sqlx::Error> {
    let id: String = r.try_get("id")?;
    let legs = sqlx::query(
        "SELECT target, contact, started_at, ended_at, status_code, outcome FROM call_legs \
         WHERE call_id = $1 ORDER BY idx",
    )
    .bind(&id)
    .fetch_all(s.store.pool())
    .await?;
    let mut leg_items = Vec::with_capacity(legs.len());
    for l in legs {
        leg_items.push(Leg {
            target: l.try_get("target")?,
            contact: l.try_get("contact")?,
            started_at: l.try_get("started_at")?,
            ended_at: l.try_get("ended_at")?,
            status_code: l.try_get("status_code")?,
            outcome: l.try_get("outcome")?,
        });
    }
    Ok(CallRecord {
        id,
        sip_call_id: r.try_get("sip_call_id")?,
        caller: r.try_get("caller")?,
        callee: r.try_get("callee")?,
        direction: r.try_get("direction")?,
        started_at: r.try_get("started_at")?,
        answered_at: r.try_get("answered_at")?,
        ended_at: r.try_get("ended_at")?,
        answered_by: r.try_get("answered_by")?,
        outcome: r.try_get("outcome")?,
        status_code: r.try_get("status_code")?,
        annotations: r.try_get("annotations")?,
        legs: leg_items,
    })
}

/// What part of a tenant's history a principal sees (seed 002's table).
struct Visibility {
    /// Only calls with one of these as caller, callee or answerer.
    extensions: Option<Vec<String>>,
    /// No extension-to-extension calls.
    exclude_internal: bool,
}

impl Visibility {
    /// The SQL condition (`AND ...`, possibly empty) and, in order, the
    /// values its placeholders take.
    fn sql(&self) -> (String, Vec<&str>) {
        let mut cond = String::new();
        if self.exclude_internal {
            cond.push_str(" AND direction <> 'internal'");
        }
        let Some(visible) = &self.extensions else {
            return (cond, Vec::new());
        };
        // An empty list still needs one placeholder: bind one no extension has.
        let list: Vec<&str> = if visible.is_empty() {
            vec![""]
        } else {
            visible.iter().map(String::as_str).collect()
        };
        let marks = vec!["?"; list.len()].join(", ");
        cond.push_str(&format!(
            " AND (caller IN ({marks}) OR callee IN ({marks}) OR answered_by IN ({marks}))"
        ));
        (cond, list.repeat(3))
    }
}

fn visibility(s: &AdminState, p: &Principal, tid: i64) -> Result<Visibility, ApiError> {
    let Principal::Employee(e) = p else {
        return Ok(Visibility {
            extensions: None,
            exclude_internal: false,
        });
    };
    let t = super::tenant_of(s, tid)?;
    let department = || -> Vec<String> {
        let mut v: Vec<String> = match e.department_id {
            Some(d) => t
                .employees
                .values()
                .filter(|x| x.department_id == Some(d))
                .map(|x| x.extension.to_string())
                .chain(t.groups.get(&d).map(|g| g.extension.to_string()))
                .collect(),
            None => Vec::new(),
        };
        if !v.contains(&e.extension) {
            v.push(e.extension.clone());
        }
        v
    };
    let scoped = |scope: HistoryScope| match scope {
        HistoryScope::Company => None,
        HistoryScope::Department => Some(department()),
    };
    Ok(match e.role {
        Role::Administrator => Visibility {
            extensions: None,
            exclude_internal: false,
        },
        Role::DepartmentHead => Visibility {
            extensions: scoped(t.tenant.head_history_scope),
            exclude_internal: false,
        },
        Role::User => Visibility {
            extensions: scoped(t.tenant.user_history_scope),
            exclude_internal: true,
        },
        Role::RestrictedUser => Visibility {
            extensions: Some(vec![e.extension.clone()]),
            exclude_internal: true,
        },
    })
}

async fn calls(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path(tid): Path<i64>,
    Query(q): Query<CallQuery>,
) -> Result<Json<CallPage>, ApiError> {
    check_tenant(&s, tid)?;
    let vis = visibility(&s, &p, tid)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    // Filters as optional parameters keep the statement fixed (and portable).
    let filter = "tenant_id = ? AND (? IS NULL OR started_at >= ?) AND (? IS NULL OR started_at < ?) \
        AND (? IS NULL OR caller = ? OR callee = ? OR answered_by = ?) AND (? IS NULL OR outcome = ?) \
        AND (? IS NULL OR direction = ?)";
    let (visible_sql, visible_binds) = vis.sql();
    let filter = format!("{filter}{visible_sql}");
    macro_rules! bind_filter {
        ($query:expr) => {
            $query
                .bind(tid)
                .bind(q.from)
                .bind(q.from)
                .bind(q.to)
                .bind(q.to)
                .bind(&q.extension)
                .bind(&q.extension)
                .bind(&q.extension)
                .bind(&q.extension)
                .bind(&q.outcome)
                .bind(&q.outcome)
                .bind(&q.direction)
                .bind(&q.direction)
        };
    }
    let count_sql = numbered(&format!("SELECT COUNT(*) FROM calls WHERE {filter}"));
    let mut count = bind_filter!(sqlx::query_scalar(&count_sql));
    for v in &visible_binds {
        count = count.bind(*v);
    }
    let total: i64 = count.fetch_one(s.store.pool()).await?;
    let rows_sql = numbered(&format!(
        "SELECT {CALL_COLUMNS} FROM calls WHERE {filter} ORDER BY started_at DESC LIMIT ? OFFSET ?"
    ));
    let mut rows = bind_filter!(sqlx::query(&rows_sql));
    for v in &visible_binds {
        rows = rows.bind(*v);
    }
    let rows = rows
        .bind(limit)
        .bind(offset)
        .fetch_all(s.store.pool())
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(call_json(&s, r).await?);
    }
    Ok(Json(CallPage {
        items,
        total,
        limit,
        offset,
    }))
}

async fn call(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path((tid, id)): Path<(i64, String)>,
) -> Result<Json<CallRecord>, ApiError> {
    check_tenant(&s, tid)?;
    let vis = visibility(&s, &p, tid)?;
    let row = sqlx::query(&format!(
        "SELECT {CALL_COLUMNS} FROM calls WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tid)
    .bind(&id)
    .fetch_optional(s.store.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("call {id}")))?;
    let party = |c: &str| row.try_get::<Option<String>, _>(c).ok().flatten();
    let direction = party("direction").unwrap_or_default();
    let involved = ["caller", "callee", "answered_by"]
        .iter()
        .filter_map(|c| party(c))
        .any(|x| vis.extensions.as_ref().is_none_or(|v| v.contains(&x)));
    if !involved || (vis.exclude_internal && direction == "internal") {
        return Err(ApiError::not_found(format!("call {id}")));
    }
    Ok(Json(call_json(&s, &row).await?))
}

/// Time window of the statistics.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsQuery {
    /// Unix ms, inclusive.
    from: Option<i64>,
    /// Unix ms, exclusive.
    to: Option<i64>,
}

async fn stats(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path(tid): Path<i64>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    check_tenant(&s, tid)?;
    if matches!(p.as_ref(), Principal::Employee(e) if e.role == Role::RestrictedUser) {
        return Err(super::auth::forbidden(
            "restricted users see only their own calls, not statistics",
        ));
    }
    let vis = visibility(&s, &p, tid)?;
    let (visible_sql, visible_binds) = vis.sql();
    let filter = format!(
        "tenant_id = ? AND (? IS NULL OR started_at >= ?) AND (? IS NULL OR started_at < ?){visible_sql}"
    );
    // CAST: PostgreSQL's SUM over BIGINT is NUMERIC.
    let sql = numbered(&format!(
        "SELECT outcome, direction, COUNT(*) AS n, \
         CAST(SUM(CASE WHEN answered_at IS NOT NULL AND ended_at IS NOT NULL THEN ended_at - answered_at ELSE 0 END) AS BIGINT) AS talk_ms \
         FROM calls WHERE {filter} GROUP BY outcome, direction"
    ));
    let mut query = sqlx::query(&sql)
        .bind(tid)
        .bind(q.from)
        .bind(q.from)
        .bind(q.to)
        .bind(q.to);
    for v in &visible_binds {
        query = query.bind(*v);
    }
    let rows = query.fetch_all(s.store.pool()).await?;
    let mut by_outcome = std::collections::BTreeMap::new();
    let mut by_direction = std::collections::BTreeMap::new();
    let (mut total, mut talk_ms) = (0i64, 0i64);
    for r in rows {
        let n: i64 = r.try_get("n")?;
        let outcome: String = r.try_get("outcome")?;
        let direction: String = r.try_get("direction")?;
        talk_ms += r.try_get::<Option<i64>, _>("talk_ms")?.unwrap_or(0);
        total += n;
        *by_outcome.entry(outcome).or_insert(0) += n;
        *by_direction.entry(direction).or_insert(0) += n;
    }
    Ok(Json(Stats {
        total,
        by_outcome,
        by_direction,
        talk_time_s: talk_ms / 1000,
    }))
}

async fn live_calls(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<List<LiveCall>>, ApiError> {
    check_tenant(&s, tid)?;
    Ok(Json(List::new(live_calls_of(&s, tid))))
}

/// The tenant's answered calls in progress on this node.
pub(crate) fn live_calls_of(s: &AdminState, tid: i64) -> Vec<LiveCall> {
    s.router
        .dialogs()
        .of_tenant(tid)
        .into_iter()
        .map(|(call_id, parties, duration_s)| LiveCall {
            call_id,
            parties,
            duration_s,
        })
        .collect()
}

impl LiveCall {
    /// Whether `extension` is one of the parties.
    pub(crate) fn involves(&self, extension: &str) -> bool {
        self.parties.iter().any(|p| p == extension)
    }
}

/// Paging of a list (the audit log, the change record).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub(super) limit: Option<i64>,
    /// How many to skip (default 0).
    #[param(minimum = 0)]
    pub(super) offset: Option<i64>,
}

async fn audit(s: &AdminState, tenant: Option<i64>, q: &Page) -> Result<Json<AuditPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let rows = sqlx::query(
        "SELECT tenant_id, actor, method, path, status, at FROM audit_log WHERE ($1 IS NULL OR tenant_id = $2) ORDER BY id DESC LIMIT $3 OFFSET $4",
    )
    .bind(tenant)
    .bind(tenant)
    .bind(limit)
    .bind(offset)
    .fetch_all(s.store.pool())
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(AuditEntry {
            tenant_id: r.try_get("tenant_id")?,
            actor: r.try_get("actor")?,
            method: r.try_get("method")?,
            path: r.try_get("path")?,
            status: r.try_get("status")?,
            at: r.try_get("at")?,
        });
    }
    Ok(Json(AuditPage {
        items,
        limit,
        offset,
    }))
}

async fn tenant_audit(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Query(q): Query<Page>,
) -> Result<Json<AuditPage>, ApiError> {
    check_tenant(&s, tid)?;
    audit(&s, Some(tid), &q).await
}

async fn all_audit(
    State(s): State<AdminState>,
    Query(q): Query<Page>,
) -> Result<Json<AuditPage>, ApiError> {
    audit(&s, None, &q).await
}
