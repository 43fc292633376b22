//! Typed endpoints for the default plugins' per-employee settings, so a
//! client need not know plugin names or scopes: diverts, delegation,
//! schedule (reception, hours, absences), status on no answer, hotdesk
//! idle period. Each reads and writes the plugin's `employee:<ext>` scope;
//! the plugin validates what is stored. Who may change whose settings
//! follows seed 002: administrators anyone's; department heads their own;
//! users and restricted users only forwarding to their own mobile.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, MethodRouter};
use axum::Extension;
use serde_json::{json, Value};

use super::api::{any_json, op, schema, Access, Api};
use super::auth::{forbidden, Principal};
use super::{AdminState, ApiError, Json, Path};
use crate::directory::Role;

/// Who may change an employee's own settings of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SelfService {
    /// Every role; users and restricted users only to their own mobile.
    Diverts,
    /// Administrators and department heads.
    Personal,
    /// Administrators only.
    AdminOnly,
}

pub(super) fn routes() -> Api {
    use Access::Member;
    let feature = |plugin, who| feature(plugin, who);
    Api::new()
        .route(
            "/tenants/{tid}/extensions/{ext}/diverts",
            vec![
                op(
                    Method::GET,
                    Member,
                    "Diverts: always, no answer, busy, unreachable (divert plugin)",
                )
                .ok(schema::<FeatureSettings>),
                op(
                    Method::PUT,
                    Member,
                    "Set diverts; users and restricted users: only to their own mobile",
                )
                .body(any_json)
                .ok(schema::<FeatureSettings>),
            ],
            feature("divert", SelfService::Diverts),
        )
        .route(
            "/tenants/{tid}/extensions/{ext}/delegation",
            vec![
                op(
                    Method::GET,
                    Member,
                    "Delegates of a boss, ring mode and times (delegation plugin)",
                )
                .ok(schema::<FeatureSettings>),
                op(
                    Method::PUT,
                    Member,
                    "Set delegates (administrators; department heads their own)",
                )
                .body(any_json)
                .ok(schema::<FeatureSettings>),
            ],
            feature("delegation", SelfService::Personal),
        )
        .route(
            "/tenants/{tid}/extensions/{ext}/schedule",
            vec![
                op(
                    Method::GET,
                    Member,
                    "Call reception, working hours and absences (schedule plugin)",
                )
                .ok(schema::<FeatureSettings>),
                op(
                    Method::PUT,
                    Member,
                    "Set them (administrators; department heads their own)",
                )
                .body(any_json)
                .ok(schema::<FeatureSettings>),
            ],
            feature("schedule", SelfService::Personal),
        )
        .route(
            "/tenants/{tid}/extensions/{ext}/status-on-no-answer",
            vec![
                op(
                    Method::GET,
                    Member,
                    "What a missed hunt group call changes (hunt-status plugin)",
                )
                .ok(schema::<FeatureSettings>),
                op(Method::PUT, Member, "Set it (administrators)")
                    .body(any_json)
                    .ok(schema::<FeatureSettings>),
            ],
            feature("hunt-status", SelfService::AdminOnly),
        )
        .route(
            "/tenants/{tid}/extensions/{ext}/hotdesk",
            vec![
                op(
                    Method::GET,
                    Member,
                    "Hotdesk login idle period (hotdesk plugin)",
                )
                .ok(schema::<FeatureSettings>),
                op(Method::PUT, Member, "Set it (administrators)")
                    .body(any_json)
                    .ok(schema::<FeatureSettings>),
            ],
            feature("hotdesk", SelfService::AdminOnly),
        )
}

fn feature(plugin: &'static str, who: SelfService) -> MethodRouter<AdminState> {
    get(
        move |State(s): State<AdminState>,
              Extension(p): Extension<Arc<Principal>>,
              Path((tid, ext)): Path<(i64, String)>| async move {
            read(&s, &p, tid, &ext, plugin).await
        },
    )
    .put(
        move |State(s): State<AdminState>,
              Extension(p): Extension<Arc<Principal>>,
              Path((tid, ext)): Path<(i64, String)>,
              body: Bytes| async move { write(&s, &p, tid, &ext, plugin, who, &body).await },
    )
}

/// An employee's settings of one feature.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct FeatureSettings {
    /// The employee.
    extension: String,
    /// The settings, as the feature's plugin defines them.
    #[schema(value_type = Object)]
    settings: Value,
}

fn employee_role(s: &AdminState, tid: i64, ext: &str) -> Result<(Role, Option<String>), ApiError> {
    let t = super::tenant_of(s, tid)?;
    let e = t
        .employee_by_extension(ext)
        .ok_or_else(|| ApiError::not_found(format!("employee {ext}")))?;
    Ok((e.role, e.mobile.clone()))
}

async fn read(
    s: &AdminState,
    p: &Principal,
    tid: i64,
    ext: &str,
    plugin: &str,
) -> Result<Json<FeatureSettings>, ApiError> {
    employee_role(s, tid, ext)?;
    if !p.is_self_or_admin(tid, ext) {
        return Err(forbidden("employees may read only their own settings"));
    }
    let settings = s
        .router
        .plugins()
        .state()
        .setting(tid, plugin, &format!("employee:{ext}"))
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}));
    Ok(Json(FeatureSettings {
        extension: ext.to_owned(),
        settings,
    }))
}

async fn write(
    s: &AdminState,
    p: &Principal,
    tid: i64,
    ext: &str,
    plugin: &str,
    who: SelfService,
    body: &[u8],
) -> Result<Json<FeatureSettings>, ApiError> {
    let (_, mobile) = employee_role(s, tid, ext)?;
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not JSON: {e}"),
            Some("settings"),
        )
    })?;
    if !p.is_admin_of(tid) {
        let Principal::Employee(me) = p else {
            return Err(forbidden("not allowed"));
        };
        if me.extension != ext {
            return Err(forbidden("employees may change only their own settings"));
        }
        match (who, me.role) {
            (SelfService::AdminOnly, _) => {
                return Err(forbidden("requires the administrator role"))
            }
            (SelfService::Personal, Role::User | Role::RestrictedUser) => {
                return Err(forbidden(
                    "this role's only setting is forwarding to their own mobile",
                ))
            }
            (SelfService::Diverts, Role::User | Role::RestrictedUser) => {
                only_own_mobile(&v, mobile.as_deref())?
            }
            _ => {}
        }
    }
    let t = super::tenant_of(s, tid)?;
    let text = v.to_string();
    s.router
        .plugins()
        .set_settings(&t, plugin, &format!("employee:{ext}"), &text)
        .await
        .map_err(super::plugins::plugin_error)?;
    Ok(Json(FeatureSettings {
        extension: ext.to_owned(),
        settings: v,
    }))
}

/// Seed 002: a User's (or Restricted user's) only setting is forwarding to
/// their own mobile.
fn only_own_mobile(v: &Value, mobile: Option<&str>) -> Result<(), ApiError> {
    let Some(map) = v.as_object() else {
        return Ok(()); // the plugin names the error
    };
    for (field, target) in map {
        let ok = match target {
            Value::Null => true,
            Value::String(s) => s == "off",
            Value::Number(_) => field == "no_answer_ring_s",
            Value::Object(o) => {
                o.len() == 1
                    && mobile.is_some()
                    && o.get("number").and_then(Value::as_str) == mobile
            }
            _ => false,
        };
        if !ok {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{field}: this role may forward only to their own mobile"),
                Some(field),
            ));
        }
    }
    Ok(())
}
