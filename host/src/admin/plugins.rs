//! Plugins: what a tenant can use, its chain (order and on/off), uploads and
//! settings.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{Access, Api};
use super::{tenant_of, AdminState, ApiError, Json};
use crate::plugins::{ChainEntry, Loaded, PluginError};

pub(super) fn routes() -> Api {
    use Access::*;
    Api::new()
        .route(
            "/tenants/{tid}/plugins",
            &[(Method::GET, Admin, "Plugins the tenant can use (built-in and uploaded: version, sha256, points, calls, faults) and its chain")],
            get(list),
        )
        .route(
            "/tenants/{tid}/plugins/{name}",
            &[(Method::POST, Admin, "Upload a component (application/wasm); validated before it is stored; a new version serves new calls")],
            post(upload),
        )
        .route(
            "/tenants/{tid}/plugin-chain",
            &[(Method::PUT, Admin, "Set the chain: order and on/off; applies to the next call")],
            put(set_chain),
        )
        .route(
            "/tenants/{tid}/plugins/{name}/settings/{scope}",
            &[
                (Method::GET, Admin, "A plugin's settings for a scope (tenant, employee:<ext>)"),
                (Method::PUT, Admin, "Store settings after the plugin validated them (its error comes back in the 422)"),
            ],
            put(put_settings).get(get_settings),
        )
}

fn plugin_json(p: &Loaded) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "sha256": p.sha256,
        "builtin": p.owner.is_none(),
        "points": p.points.iter().map(|x| format!("{x:?}").to_lowercase()).collect::<Vec<_>>(),
        "calls": p.calls.load(std::sync::atomic::Ordering::Relaxed),
        "faults": p.faults.load(std::sync::atomic::Ordering::Relaxed),
    })
}

fn chain_json(c: &[ChainEntry]) -> Value {
    json!(c
        .iter()
        .map(|e| json!({
            "name": e.plugin.name,
            "version": e.plugin.version,
            "enabled": e.enabled,
            "disabled_reason": e.disabled_reason,
        }))
        .collect::<Vec<_>>())
}

pub(super) fn plugin_error(e: PluginError) -> ApiError {
    match e {
        PluginError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m, Some("wasm")),
        PluginError::Settings(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m, Some("settings"))
        }
        PluginError::Unknown(n) => ApiError::not_found(format!("plugin {n}")),
        PluginError::Sql(e) => ApiError::internal(e),
        PluginError::Engine(e) => ApiError::internal(e),
        PluginError::Busy(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, m, None),
        PluginError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m, Some("wasm")),
    }
}

async fn list(State(s): State<AdminState>, Path(tid): Path<i64>) -> Result<Json<Value>, ApiError> {
    tenant_of(&s, tid)?;
    let host = s.router.plugins();
    let available: Vec<Value> = host.available(tid).iter().map(|p| plugin_json(p)).collect();
    Ok(Json(
        json!({"available": available, "chain": chain_json(&host.chain(tid))}),
    ))
}

async fn upload(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    tenant_of(&s, tid)?;
    let host = s.router.plugins();
    if crate::plugins::PRODUCT_PLUGINS.contains(&name.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("`{name}` is a built-in plugin's name"),
            Some("name"),
        ));
    }
    if body.len() > host.config().max_upload {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} bytes is over the {} byte limit",
                body.len(),
                host.config().max_upload
            ),
            Some("wasm"),
        ));
    }
    let loaded = host
        .store_plugin(&name, &body, Some(tid))
        .await
        .map_err(plugin_error)?;
    Ok((StatusCode::CREATED, Json(plugin_json(&loaded))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainItem {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainBody {
    chain: Vec<ChainItem>,
}

async fn set_chain(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Json(body): Json<ChainBody>,
) -> Result<Json<Value>, ApiError> {
    tenant_of(&s, tid)?;
    let mut seen = std::collections::HashSet::new();
    for i in &body.chain {
        if !seen.insert(i.name.clone()) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{}` is listed twice", i.name),
                Some("chain"),
            ));
        }
    }
    let entries: Vec<(String, bool)> = body
        .chain
        .into_iter()
        .map(|i| (i.name, i.enabled))
        .collect();
    let host = s.router.plugins();
    host.set_chain(tid, &entries).await.map_err(|e| match e {
        PluginError::Unknown(n) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no plugin `{n}` for this tenant"),
            Some("chain"),
        ),
        other => plugin_error(other),
    })?;
    Ok(Json(json!({"chain": chain_json(&host.chain(tid))})))
}

pub(super) async fn put_settings(
    State(s): State<AdminState>,
    Path((tid, name, scope)): Path<(i64, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_of(&s, tid)?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "settings must be UTF-8 JSON",
            Some("settings"),
        )
    })?;
    let host = s.router.plugins();
    host.set_settings(&t, &name, &scope, text)
        .await
        .map_err(plugin_error)?;
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    Ok(Json(json!({"plugin": name, "scope": scope, "settings": v})))
}

pub(super) async fn get_settings(
    State(s): State<AdminState>,
    Path((tid, name, scope)): Path<(i64, String, String)>,
) -> Result<Json<Value>, ApiError> {
    tenant_of(&s, tid)?;
    let text = s
        .router
        .plugins()
        .state()
        .setting(tid, &name, &scope)
        .ok_or_else(|| ApiError::not_found(format!("settings of {name} for {scope}")))?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Json(json!({"plugin": name, "scope": scope, "settings": v})))
}
