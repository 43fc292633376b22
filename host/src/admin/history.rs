//! Registrations and call history.

use axum::extract::{Path, Query, State};
use std::sync::Arc;

use axum::http::Method;
use axum::routing::get;
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;

use super::api::{Access, Api};
use super::auth::Principal;
use super::{AdminState, ApiError, Json};
use crate::directory::{HistoryScope, Role};
use crate::store::{now_ms, numbered};

pub(super) fn routes() -> Api {
    use Access::*;
    Api::new()
        .route(
            "/tenants/{tid}/registrations",
            &[(Method::GET, Admin, "Live registrations")],
            get(registrations),
        )
        .route(
            "/tenants/{tid}/live-calls",
            &[(Method::GET, Admin, "Answered calls in progress")],
            get(live_calls),
        )
        .route(
            "/tenants/{tid}/calls",
            &[(
                Method::GET,
                Member,
                "Call history, filtered and paged; what each role sees follows seed 002",
            )],
            get(calls),
        )
        .route(
            "/tenants/{tid}/stats",
            &[(Method::GET, Member, "Call statistics by outcome and direction over the history the role sees (not restricted users)")],
            get(stats),
        )
        .route(
            "/tenants/{tid}/calls/{id}",
            &[(
                Method::GET,
                Member,
                "One call with its legs, if the role may see it",
            )],
            get(call),
        )
        .route(
            "/tenants/{tid}/audit",
            &[(Method::GET, Admin, "Who changed what, when (newest first)")],
            get(tenant_audit),
        )
        .route(
            "/audit",
            &[(
                Method::GET,
                Operator,
                "The audit log of every tenant and the platform",
            )],
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

async fn registrations(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<Value>, ApiError> {
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
        items.push(json!({
            "aor": r.try_get::<String, _>("aor")?,
            "contact": r.try_get::<String, _>("contact_uri")?,
            "expires_at": r.try_get::<i64, _>("expires_at")?,
            "source": r.try_get::<String, _>("source")?,
            "transport": r.try_get::<String, _>("transport")?,
            "user_agent": r.try_get::<Option<String>, _>("user_agent")?,
        }));
    }
    Ok(Json(json!({"total": items.len(), "items": items})))
}

/// A list page: `limit` 1-500 (default 50), `offset` from 0.
fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "limit must be 1 to 500",
            Some("limit"),
        ));
    }
    Ok((limit, offset.unwrap_or(0).max(0)))
}

/// History filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallQuery {
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
    /// Page size (default 50, max 500).
    limit: Option<i64>,
    /// Offset.
    offset: Option<i64>,
}

const CALL_COLUMNS: &str = "id, sip_call_id, caller, callee, direction, started_at, answered_at, \
    ended_at, answered_by, outcome, status_code, annotations";

async fn call_json(s: &AdminState, r: &sqlx::any::AnyRow) -> Result<Value, sqlx::Error> {
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
        leg_items.push(json!({
            "target": l.try_get::<String, _>("target")?,
            "contact": l.try_get::<String, _>("contact")?,
            "started_at": l.try_get::<i64, _>("started_at")?,
            "ended_at": l.try_get::<Option<i64>, _>("ended_at")?,
            "status_code": l.try_get::<Option<i64>, _>("status_code")?,
            "outcome": l.try_get::<String, _>("outcome")?,
        }));
    }
    Ok(json!({
        "id": id,
        "sip_call_id": r.try_get::<String, _>("sip_call_id")?,
        "caller": r.try_get::<String, _>("caller")?,
        "callee": r.try_get::<String, _>("callee")?,
        "direction": r.try_get::<String, _>("direction")?,
        "started_at": r.try_get::<i64, _>("started_at")?,
        "answered_at": r.try_get::<Option<i64>, _>("answered_at")?,
        "ended_at": r.try_get::<Option<i64>, _>("ended_at")?,
        "answered_by": r.try_get::<Option<String>, _>("answered_by")?,
        "outcome": r.try_get::<String, _>("outcome")?,
        "status_code": r.try_get::<Option<i64>, _>("status_code")?,
        "annotations": r.try_get::<String, _>("annotations")?,
        "legs": leg_items,
    }))
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
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({"items": items, "total": total, "limit": limit, "offset": offset}),
    ))
}

async fn call(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path((tid, id)): Path<(i64, String)>,
) -> Result<Json<Value>, ApiError> {
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
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
) -> Result<Json<Value>, ApiError> {
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
    let mut by_outcome = serde_json::Map::new();
    let mut by_direction = serde_json::Map::new();
    let (mut total, mut talk_ms) = (0i64, 0i64);
    for r in rows {
        let n: i64 = r.try_get("n")?;
        let outcome: String = r.try_get("outcome")?;
        let direction: String = r.try_get("direction")?;
        talk_ms += r.try_get::<Option<i64>, _>("talk_ms")?.unwrap_or(0);
        total += n;
        let add = |m: &mut serde_json::Map<String, Value>, k: String| {
            let v = m.get(&k).and_then(Value::as_i64).unwrap_or(0) + n;
            m.insert(k, json!(v));
        };
        add(&mut by_outcome, outcome);
        add(&mut by_direction, direction);
    }
    Ok(Json(json!({
        "total": total,
        "by_outcome": by_outcome,
        "by_direction": by_direction,
        "talk_time_s": talk_ms / 1000,
    })))
}

async fn live_calls(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    check_tenant(&s, tid)?;
    let items: Vec<Value> = s
        .router
        .dialogs()
        .of_tenant(tid)
        .into_iter()
        .map(|(record_id, parties, secs)| {
            json!({"call_id": record_id, "parties": parties, "duration_s": secs})
        })
        .collect();
    Ok(Json(json!({"total": items.len(), "items": items})))
}

/// Paging of the audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn audit(
    s: &AdminState,
    tenant: Option<i64>,
    q: &AuditQuery,
) -> Result<Json<Value>, ApiError> {
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
        items.push(json!({
            "tenant_id": r.try_get::<Option<i64>, _>("tenant_id")?,
            "actor": r.try_get::<String, _>("actor")?,
            "method": r.try_get::<String, _>("method")?,
            "path": r.try_get::<String, _>("path")?,
            "status": r.try_get::<i64, _>("status")?,
            "at": r.try_get::<i64, _>("at")?,
        }));
    }
    Ok(Json(
        json!({"items": items, "limit": limit, "offset": offset}),
    ))
}

async fn tenant_audit(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    check_tenant(&s, tid)?;
    audit(&s, Some(tid), &q).await
}

async fn all_audit(
    State(s): State<AdminState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    audit(&s, None, &q).await
}
