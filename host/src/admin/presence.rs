//! Who is logged in where and who takes calls: hotdesk logins (seed 000's
//! portal "activate phone"), employee statuses and hunt group memberships
//! (seed 004's status on no answer, restored by a user or an admin), and the
//! record of every change with its time and cause.

use std::sync::Arc;

use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, put};
use axum::Extension;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::api::{list, op, schema, Access, Api};
use super::auth::Principal;
use super::history::Page;
use super::{tenant_of, AdminState, ApiError, Json, List, Path, Query};
use crate::directory::{Entry, TenantDirectory};
use crate::plugins::Status;

pub(super) fn routes() -> Api {
    use Access::*;
    Api::new()
        .route(
            "/tenants/{tid}/hotdesk",
            vec![op(Method::GET, Admin, "Hotdesk logins: device -> employee").ok(list::<HotdeskLogin>)],
            get(list_logins),
        )
        .route(
            "/tenants/{tid}/hotdesk/{device}",
            vec![
                op(Method::PUT, Member, "Activate a hotdesk phone for an employee (employees: for themselves)").body(schema::<LoginBody>).ok(schema::<HotdeskLogin>),
                op(Method::DELETE, Member, "Release a hotdesk phone (employees: their own login)"),
            ],
            put(login).delete(logout),
        )
        .route(
            "/tenants/{tid}/presence/{ext}",
            vec![op(Method::GET, Member, "Status, registrations, calls, memberships and hotdesk logins (employees: their own)").ok(schema::<Presence>)],
            get(presence),
        )
        .route(
            "/tenants/{tid}/presence/{ext}/status",
            vec![op(Method::PUT, Member, "Set the status: available, dnd, logged_out (employees: their own)").body(schema::<StatusBody>).ok(schema::<Presence>)],
            put(set_status),
        )
        .route(
            "/tenants/{tid}/presence/{ext}/memberships/{group}",
            vec![op(Method::PUT, Member, "Enable or disable a hunt group membership (employees: their own)").body(schema::<MembershipBody>).ok(schema::<Presence>)],
            put(set_membership),
        )
        .route(
            "/tenants/{tid}/presence/{ext}/changes",
            vec![op(Method::GET, Member, "Every status, membership and login change with time and cause").query::<Page>().ok(schema::<ChangePage>)],
            get(changes),
        )
}

fn only_self(p: &Principal, tid: i64, ext: &str) -> Result<(), ApiError> {
    if p.is_self_or_admin(tid, ext) {
        Ok(())
    } else {
        Err(super::auth::forbidden(
            "employees may change only themselves",
        ))
    }
}

fn cause(p: &Principal) -> String {
    format!("http: {}", p.actor())
}

fn employee(t: &TenantDirectory, ext: &str) -> Result<(), ApiError> {
    t.employee_by_extension(ext)
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found(format!("employee {ext}")))
}

fn unprocessable(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        message,
        Some(field),
    )
}

/// The schema of an employee's status.
pub(super) fn status_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["available", "dnd", "logged_out"]))
        .description(Some("available, dnd (no calls at all) or logged_out"))
        .build()
}

/// A hotdesk phone and who is logged in at it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct HotdeskLogin {
    /// The device account's extension.
    device: String,
    /// The employee logged in at it.
    extension: String,
}

/// Where an employee is and what they may be offered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Presence {
    /// The employee.
    extension: String,
    /// Their status.
    #[schema(schema_with = status_schema)]
    status: Status,
    /// Whether a phone of theirs is registered (own or hotdesk).
    registered: bool,
    /// Calls they are on now.
    active_calls: u32,
    /// Hotdesk phones they are logged in at.
    hotdesk_devices: Vec<String>,
    /// Hunt groups they are a member of.
    memberships: Vec<Membership>,
}

/// A hunt group membership.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Membership {
    /// The group's extension.
    group: String,
    /// The group's name.
    name: String,
    /// Whether group calls are offered to the member.
    enabled: bool,
}

/// One change of status, membership or hotdesk login.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Change {
    /// What changed.
    what: String,
    /// Who or what changed it.
    cause: String,
    /// When (Unix ms).
    at_ms: i64,
}

/// A page of changes, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ChangePage {
    /// The changes.
    items: Vec<Change>,
    /// Page size.
    limit: i64,
    /// Offset.
    offset: i64,
}

async fn list_logins(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<List<HotdeskLogin>>, ApiError> {
    let t = tenant_of(&s, tid)?;
    let items = s
        .router
        .plugins()
        .state()
        .bindings_of_tenant(t.tenant.id)
        .into_iter()
        .map(|(device, extension)| HotdeskLogin { device, extension })
        .collect();
    Ok(Json(List::new(items)))
}

/// Body of a hotdesk login over HTTP.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = HotdeskActivation)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    /// The employee to log in at the device.
    extension: String,
}

async fn login(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path((tid, device)): Path<(i64, String)>,
    Json(body): Json<LoginBody>,
) -> Result<Json<HotdeskLogin>, ApiError> {
    let t = tenant_of(&s, tid)?;
    only_self(&p, tid, &body.extension)?;
    if !matches!(t.resolve(&device), Some(Entry::Device(_))) {
        return Err(ApiError::not_found(format!("device {device}")));
    }
    employee(&t, &body.extension).map_err(|_| {
        unprocessable(
            "extension",
            format!("no employee with extension {}", body.extension),
        )
    })?;
    let state = s.router.plugins().state();
    state
        .bind_device(t.tenant.id, &device, Some(&body.extension), &cause(&p))
        .map_err(|e| unprocessable("device", e))?;
    stored(state).await?;
    Ok(Json(HotdeskLogin {
        device,
        extension: body.extension,
    }))
}

async fn logout(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path((tid, device)): Path<(i64, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    let t = tenant_of(&s, tid)?;
    if !matches!(t.resolve(&device), Some(Entry::Device(_))) {
        return Err(ApiError::not_found(format!("device {device}")));
    }
    let state = s.router.plugins().state();
    let holder = state.binding_of(t.tenant.id, &device).unwrap_or_default();
    if !p.is_admin_of(tid) {
        only_self(&p, tid, &holder)?;
    }
    state
        .bind_device(t.tenant.id, &device, None, &cause(&p))
        .map_err(|e| unprocessable("device", e))?;
    stored(state).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Waits for the change to be in the database; a failed write is a 500,
/// never a success the next restart forgets.
async fn stored(state: &crate::plugins::PluginState) -> Result<(), ApiError> {
    if state.flush().await {
        Ok(())
    } else {
        Err(ApiError::internal("the change could not be stored"))
    }
}

/// Where employee `ext` of `t` is: status, registration, calls, hotdesk
/// logins and hunt group memberships (404 for an unknown extension).
pub(crate) fn presence_json(
    s: &AdminState,
    t: &TenantDirectory,
    ext: &str,
) -> Result<Presence, ApiError> {
    let Some(e) = t.employee_by_extension(ext) else {
        return Err(ApiError::not_found(format!("employee {ext}")));
    };
    let state = s.router.plugins().state();
    let (registered, active_calls, status) = state.presence(t.tenant.id, ext);
    let mut memberships: Vec<Membership> = t
        .groups
        .values()
        .filter_map(|g| {
            g.members
                .iter()
                .find(|m| m.employee_id == e.id)
                .map(|m| Membership {
                    group: g.extension.as_str().to_owned(),
                    name: g.name.clone(),
                    enabled: m.enabled,
                })
        })
        .collect();
    memberships.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(Presence {
        extension: ext.to_owned(),
        status,
        registered,
        active_calls,
        hotdesk_devices: state.devices_bound_to(t.tenant.id, ext),
        memberships,
    })
}

async fn presence(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path((tid, ext)): Path<(i64, String)>,
) -> Result<Json<Presence>, ApiError> {
    let t = tenant_of(&s, tid)?;
    only_self(&p, tid, &ext)?;
    Ok(Json(presence_json(&s, &t, &ext)?))
}

/// Body of a status change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusBody {
    /// `available`, `dnd` or `logged_out`.
    #[schema(schema_with = status_schema)]
    status: Status,
}

async fn set_status(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path((tid, ext)): Path<(i64, String)>,
    Json(body): Json<StatusBody>,
) -> Result<Json<Presence>, ApiError> {
    let t = tenant_of(&s, tid)?;
    only_self(&p, tid, &ext)?;
    employee(&t, &ext)?;
    let state = s.router.plugins().state();
    state
        .set_status(t.tenant.id, &ext, body.status, &cause(&p))
        .map_err(|e| unprocessable("status", e))?;
    stored(state).await?;
    Ok(Json(presence_json(&s, &t, &ext)?))
}

/// Body of a membership change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MembershipBody {
    /// Whether group calls are offered to the member.
    enabled: bool,
}

async fn set_membership(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path((tid, ext, group)): Path<(i64, String, String)>,
    Json(body): Json<MembershipBody>,
) -> Result<Json<Presence>, ApiError> {
    let t = tenant_of(&s, tid)?;
    only_self(&p, tid, &ext)?;
    employee(&t, &ext)?;
    let state = s.router.plugins().state();
    state
        .set_membership(t.tenant.id, &group, &ext, body.enabled, &cause(&p))
        .map_err(|e| unprocessable("group", e))?;
    stored(state).await?;
    let t = tenant_of(&s, tid)?;
    Ok(Json(presence_json(&s, &t, &ext)?))
}

async fn changes(
    State(s): State<AdminState>,
    Extension(p): Extension<Arc<Principal>>,
    Path((tid, ext)): Path<(i64, String)>,
    Query(page): Query<Page>,
) -> Result<Json<ChangePage>, ApiError> {
    let t = tenant_of(&s, tid)?;
    only_self(&p, tid, &ext)?;
    employee(&t, &ext)?;
    let (limit, offset) = super::history::page(page.limit, page.offset)?;
    let state = s.router.plugins().state();
    stored(state).await?;
    let rows = sqlx::query(
        "SELECT what, cause, changed_at FROM status_changes WHERE tenant_id = $1 AND extension = $2 \
         ORDER BY changed_at DESC, rowid DESC LIMIT $3 OFFSET $4",
    )
    .bind(t.tenant.id)
    .bind(&ext)
    .bind(limit)
    .bind(offset)
    .fetch_all(state.db().pool())
    .await
    .map_err(ApiError::internal)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(Change {
            what: r.try_get("what").map_err(ApiError::internal)?,
            cause: r.try_get("cause").map_err(ApiError::internal)?,
            at_ms: r.try_get("changed_at").map_err(ApiError::internal)?,
        });
    }
    Ok(Json(ChangePage {
        items,
        limit,
        offset,
    }))
}
