//! Registrations and call history.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;

use super::{AdminState, ApiError, Json};
use crate::store::now_ms;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/tenants/{tid}/registrations", get(registrations))
        .route("/tenants/{tid}/calls", get(calls))
        .route("/tenants/{tid}/calls/{id}", get(call))
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
         WHERE tenant_id = ? AND expires_at > ? ORDER BY aor, contact_uri",
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

async fn call_json(s: &AdminState, r: &sqlx::sqlite::SqliteRow) -> Result<Value, sqlx::Error> {
    let id: String = r.try_get("id")?;
    let legs = sqlx::query(
        "SELECT target, contact, started_at, ended_at, status_code, outcome FROM call_legs \
         WHERE call_id = ? ORDER BY idx",
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

async fn calls(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Query(q): Query<CallQuery>,
) -> Result<Json<Value>, ApiError> {
    check_tenant(&s, tid)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "limit must be 1 to 500",
            Some("limit"),
        ));
    }
    let offset = q.offset.unwrap_or(0).max(0);
    // Filters as optional parameters keep the statement fixed (and portable).
    let filter = "tenant_id = ? AND (? IS NULL OR started_at >= ?) AND (? IS NULL OR started_at < ?) \
        AND (? IS NULL OR caller = ? OR callee = ? OR answered_by = ?) AND (? IS NULL OR outcome = ?) \
        AND (? IS NULL OR direction = ?)";
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
    let total: i64 = bind_filter!(sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM calls WHERE {filter}"
    )))
    .fetch_one(s.store.pool())
    .await?;
    let rows = bind_filter!(sqlx::query(&format!(
        "SELECT {CALL_COLUMNS} FROM calls WHERE {filter} ORDER BY started_at DESC LIMIT ? OFFSET ?"
    )))
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
    Path((tid, id)): Path<(i64, String)>,
) -> Result<Json<Value>, ApiError> {
    check_tenant(&s, tid)?;
    let row = sqlx::query(&format!(
        "SELECT {CALL_COLUMNS} FROM calls WHERE tenant_id = ? AND id = ?"
    ))
    .bind(tid)
    .bind(&id)
    .fetch_optional(s.store.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("call {id}")))?;
    Ok(Json(call_json(&s, &row).await?))
}
