//! Tenants, employees, device accounts and hunt groups.

use std::sync::Arc;

use axum::extract::State;
use axum::http::Method;
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde_json::{json, Value};

use super::api::{list, op, schema, Access, Api};
use super::auth::Principal;
use super::{tenant_of, AdminState, ApiError, Json, Path};
use crate::directory::provision::{
    self, DevicePatch, EmployeePatch, HuntGroupPatch, MemberSpec, NewDevice, NewEmployee,
    NewHuntGroup, NewTenant, TenantPatch,
};
use crate::directory::{Device, Employee, HuntGroup, PluginLimits, Tenant};

pub(super) fn routes() -> Api {
    use Access::*;
    Api::new()
        .route(
            "/tenants",
            vec![
                op(Method::GET, Operator, "List tenants").ok(list::<Tenant>),
                op(
                    Method::POST,
                    Operator,
                    "Create a tenant (it gets the default plugin chain)",
                )
                .body(schema::<NewTenant>)
                .created(schema::<Tenant>),
            ],
            get(list_tenants).post(create_tenant),
        )
        .route(
            "/tenants/{tid}",
            vec![
                op(Method::GET, Member, "Read a tenant").ok(schema::<Tenant>),
                op(
                    Method::PATCH,
                    Admin,
                    "Change a tenant's settings (trunk, voicemail, time zone, history scopes, hotdesk range)",
                )
                .body(schema::<TenantPatch>)
                .ok(schema::<Tenant>),
                op(
                    Method::DELETE,
                    Operator,
                    "Delete a tenant and everything in it",
                ),
            ],
            get(get_tenant).patch(patch_tenant).delete(delete_tenant),
        )
        .route(
            "/tenants/{tid}/plugin-limits",
            vec![
                op(
                    Method::GET,
                    Admin,
                    "Read the tenant's plugin limits: in force, and the operator's overrides",
                )
                .ok(schema::<EffectivePluginLimits>),
                op(
                    Method::PUT,
                    Operator,
                    "Set the tenant's plugin limits (deadline, memory, upload); an absent one is the router's default",
                )
                .body(schema::<PluginLimits>)
                .ok(schema::<EffectivePluginLimits>),
            ],
            get(get_plugin_limits).put(put_plugin_limits),
        )
        .route(
            "/tenants/{tid}/employees",
            vec![
                op(Method::GET, Admin, "List employees").ok(list::<Employee>),
                op(
                    Method::POST,
                    Admin,
                    "Create an employee (extension auto-assigned if absent)",
                )
                .body(schema::<NewEmployee>)
                .created(schema::<Employee>),
            ],
            get(list_employees).post(create_employee),
        )
        .route(
            "/tenants/{tid}/employees/{id}",
            vec![
                op(
                    Method::GET,
                    Member,
                    "Read an employee (themselves, or anyone for administrators)",
                )
                .ok(schema::<Employee>),
                op(Method::PATCH, Admin, "Change an employee")
                    .body(schema::<EmployeePatch>)
                    .ok(schema::<Employee>),
                op(Method::DELETE, Admin, "Delete an employee"),
            ],
            get(get_employee)
                .patch(patch_employee)
                .delete(delete_employee),
        )
        .route(
            "/tenants/{tid}/devices",
            vec![
                op(Method::GET, Admin, "List device accounts").ok(list::<Device>),
                op(
                    Method::POST,
                    Admin,
                    "Create a device account (hotdesk range: owned by nobody)",
                )
                .body(schema::<NewDevice>)
                .created(schema::<Device>),
            ],
            get(list_devices).post(create_device),
        )
        .route(
            "/tenants/{tid}/devices/{id}",
            vec![
                op(Method::GET, Admin, "Read a device account").ok(schema::<Device>),
                op(
                    Method::PATCH,
                    Admin,
                    "Change a device account (name, password, digest algorithms)",
                )
                .body(schema::<DevicePatch>)
                .ok(schema::<Device>),
                op(Method::DELETE, Admin, "Delete a device account"),
            ],
            get(get_device).patch(patch_device).delete(delete_device),
        )
        .route(
            "/tenants/{tid}/hunt-groups",
            vec![
                op(Method::GET, Admin, "List hunt groups").ok(list::<HuntGroup>),
                op(Method::POST, Admin, "Create a hunt group")
                    .body(schema::<NewHuntGroup>)
                    .created(schema::<HuntGroup>),
            ],
            get(list_groups).post(create_group),
        )
        .route(
            "/tenants/{tid}/hunt-groups/{id}",
            vec![
                op(Method::GET, Admin, "Read a hunt group").ok(schema::<HuntGroup>),
                op(
                    Method::PATCH,
                    Admin,
                    "Change a hunt group's name, strategy, ring times or status-on-no-answer rule",
                )
                .body(schema::<HuntGroupPatch>)
                .ok(schema::<HuntGroup>),
                op(Method::DELETE, Admin, "Delete a hunt group"),
            ],
            get(get_group).patch(patch_group).delete(delete_group),
        )
        .route(
            "/tenants/{tid}/hunt-groups/{id}/members",
            vec![op(
                Method::PUT,
                Admin,
                "Replace a hunt group's members, in ring order",
            )
            .body(schema::<Members>)
            .ok(schema::<HuntGroup>)],
            put(put_members),
        )
}

async fn reload(s: &AdminState) -> Result<(), ApiError> {
    s.directory.changed().await.map_err(ApiError::internal)
}

fn created(v: Value) -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(v))
}

async fn list_tenants(State(s): State<AdminState>) -> Json<Value> {
    let snap = s.directory.snapshot();
    let mut items: Vec<_> = snap.tenants().map(|t| t.tenant.clone()).collect();
    items.sort_by_key(|t| t.id);
    Json(json!({"items": items, "total": items.len()}))
}

async fn create_tenant(
    State(s): State<AdminState>,
    Json(body): Json<NewTenant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = provision::create_tenant(&s.store, &body).await?;
    reload(&s).await?;
    s.router
        .plugins()
        .enable_defaults(id)
        .await
        .map_err(ApiError::internal)?;
    let t = tenant_of(&s, id)?;
    Ok(created(json!(t.tenant)))
}

async fn get_tenant(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(tenant_of(&s, tid)?.tenant)))
}

async fn patch_tenant(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Json(body): Json<TenantPatch>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    provision::check_hotdesk_range(&t, &body)?;
    provision::update_tenant(&s.store, tid, &body).await?;
    reload(&s).await?;
    Ok(Json(json!(tenant_of(&s, tid)?.tenant)))
}

/// The plugin limits a tenant's plugins run under, and which of them the
/// operator set for this tenant.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EffectivePluginLimits {
    /// Longest one decision may run (ms).
    pub deadline_ms: u64,
    /// Memory cap of one plugin instance (MiB).
    pub memory_mib: u64,
    /// Largest component the tenant may upload (KiB).
    pub upload_kib: u64,
    /// The operator's overrides for this tenant (absent: the default).
    pub overrides: PluginLimits,
}

fn effective_limits(
    s: &AdminState,
    t: &crate::directory::TenantDirectory,
) -> EffectivePluginLimits {
    let l = s.router.plugins().limits_for(t);
    EffectivePluginLimits {
        deadline_ms: l.deadline.as_millis() as u64,
        memory_mib: (l.memory >> 20) as u64,
        upload_kib: (l.upload >> 10) as u64,
        overrides: t.tenant.plugin_limits,
    }
}

async fn get_plugin_limits(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<EffectivePluginLimits>, ApiError> {
    let t = tenant_of(&s, tid)?;
    Ok(Json(effective_limits(&s, &t)))
}

async fn put_plugin_limits(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Json(body): Json<PluginLimits>,
) -> Result<Json<EffectivePluginLimits>, ApiError> {
    tenant_of(&s, tid)?;
    let ceiling = (s.router.plugins().config().memory_ceiling >> 20) as u32;
    provision::set_plugin_limits(&s.store, tid, &body, ceiling).await?;
    reload(&s).await?;
    let t = tenant_of(&s, tid)?;
    Ok(Json(effective_limits(&s, &t)))
}

async fn delete_tenant(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<StatusCode, ApiError> {
    provision::delete_tenant(&s.store, tid).await?;
    reload(&s).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_employees(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    let mut items: Vec<_> = t.employees.values().cloned().collect();
    items.sort_by(|a, b| a.extension.cmp(&b.extension));
    Ok(Json(json!({"items": items, "total": items.len()})))
}

async fn create_employee(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Json(body): Json<NewEmployee>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let t = tenant_of(&s, tid)?;
    let (id, _) = provision::create_employee(&s.store, &t, &body).await?;
    reload(&s).await?;
    let t = tenant_of(&s, tid)?;
    Ok(created(json!(t.employees.get(&id))))
}

async fn get_employee(
    State(s): State<AdminState>,
    axum::Extension(p): axum::Extension<Arc<Principal>>,
    Path((tid, id)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    let e = t
        .employees
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("employee {id}")))?;
    if !p.is_self_or_admin(tid, e.extension.as_str()) {
        return Err(super::auth::forbidden("employees may read only themselves"));
    }
    Ok(Json(json!(e)))
}

async fn patch_employee(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
    Json(body): Json<EmployeePatch>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    provision::update_employee(&s.store, &t, id, &body).await?;
    if body.password.is_some() {
        // A new password ends the sessions opened with the old one.
        super::auth::revoke_sessions(&s, tid, id).await?;
    }
    reload(&s).await?;
    let t = tenant_of(&s, tid)?;
    Ok(Json(json!(t.employees.get(&id))))
}

async fn delete_employee(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    tenant_of(&s, tid)?;
    provision::delete_employee(&s.store, tid, id).await?;
    reload(&s).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_devices(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    let mut items: Vec<_> = t.devices.values().cloned().collect();
    items.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(Json(json!({"items": items, "total": items.len()})))
}

async fn create_device(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Json(body): Json<NewDevice>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let t = tenant_of(&s, tid)?;
    let id = provision::create_device(&s.store, &t, &body).await?;
    reload(&s).await?;
    let t = tenant_of(&s, tid)?;
    Ok(created(json!(t.devices.get(&id))))
}

async fn get_device(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    let d = t
        .devices
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("device {id}")))?;
    Ok(Json(json!(d)))
}

async fn patch_device(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
    Json(body): Json<DevicePatch>,
) -> Result<Json<Device>, ApiError> {
    let t = tenant_of(&s, tid)?;
    provision::patch_device(&s.store, &t, id, &body).await?;
    reload(&s).await?;
    tenant_of(&s, tid)?
        .devices
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("device {id}")))
}

async fn delete_device(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    tenant_of(&s, tid)?;
    provision::delete_device(&s.store, tid, id).await?;
    reload(&s).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_groups(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    let mut items: Vec<_> = t.groups.values().cloned().collect();
    items.sort_by(|a, b| a.extension.cmp(&b.extension));
    Ok(Json(json!({"items": items, "total": items.len()})))
}

async fn create_group(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Json(body): Json<NewHuntGroup>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let t = tenant_of(&s, tid)?;
    let id = provision::create_hunt_group(&s.store, &t, &body).await?;
    reload(&s).await?;
    let t = tenant_of(&s, tid)?;
    Ok(created(json!(t.groups.get(&id))))
}

async fn get_group(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    let g = t
        .groups
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("hunt group {id}")))?;
    Ok(Json(json!(g)))
}

async fn patch_group(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
    Json(body): Json<HuntGroupPatch>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    provision::update_hunt_group(&s.store, &t, id, &body).await?;
    reload(&s).await?;
    let t = tenant_of(&s, tid)?;
    let g = t
        .groups
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("hunt group {id}")))?;
    Ok(Json(json!(g)))
}

async fn delete_group(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    tenant_of(&s, tid)?;
    provision::delete_hunt_group(&s.store, tid, id).await?;
    reload(&s).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A hunt group's members, in ring order.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Members {
    /// Every member, first rung first.
    members: Vec<MemberSpec>,
}

async fn put_members(
    State(s): State<AdminState>,
    Path((tid, id)): Path<(i64, i64)>,
    Json(body): Json<Members>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    provision::set_members(&s.store, &t, id, &body.members).await?;
    reload(&s).await?;
    let t = tenant_of(&s, tid)?;
    Ok(Json(json!(t.groups.get(&id))))
}
