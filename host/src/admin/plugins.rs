//! Plugins: what a tenant can use, its chain (order and on/off), uploads and
//! settings.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{any_json, op, schema, Access, Api};
use super::{tenant_of, AdminState, ApiError, Json, List, Path};
use crate::pipeline::Point;
use crate::plugins::{ChainEntry, Loaded, PluginError};

pub(super) fn routes() -> Api {
    use Access::*;
    Api::new()
        .route(
            "/tenants/{tid}/plugins",
            vec![op(Method::GET, Admin, "Plugins the tenant can use (built-in and uploaded: version, sha256, points, calls, faults) and its chain").ok(schema::<PluginsView>)],
            get(list),
        )
        .route(
            "/tenants/{tid}/plugins/{name}",
            vec![
                op(Method::POST, Admin, "Upload a component (application/wasm); its imports are checked against what the router provides and the tenant's stored settings against the new version before it is stored; a new version serves new calls").wasm().created(schema::<PluginInfo>),
                op(Method::DELETE, Admin, "Delete an uploaded plugin (every version, its settings, store and timers); refused while it is in the chain"),
            ],
            post(upload).delete(delete_plugin),
        )
        .route(
            "/tenants/{tid}/plugin-chain",
            vec![op(Method::PUT, Admin, "Replace the whole chain: order and on/off; applies to the next call (entries not listed are taken out)").body(schema::<ChainBody>).ok(schema::<ChainView>)],
            put(set_chain),
        )
        .route(
            "/tenants/{tid}/plugin-chain/{name}",
            vec![
                op(Method::PUT, Admin, "Add one plugin to the chain or change its entry (on/off, position); the other entries stay as they are").body(schema::<ChainEntryBody>).ok(schema::<ChainView>),
                op(Method::DELETE, Admin, "Take one plugin out of the chain; the other entries stay").ok(schema::<ChainView>),
            ],
            put(put_chain_entry).delete(remove_chain_entry),
        )
        .route(
            "/tenants/{tid}/plugins/{name}/faults",
            vec![op(Method::GET, Admin, "The plugin's recent faults for the tenant on this node (time, call, reason; oldest first, at most 50)").ok(super::api::list::<crate::plugins::Fault>)],
            get(faults),
        )
        .route(
            "/tenants/{tid}/plugins/{name}/kv",
            vec![
                op(Method::GET, Admin, "The plugin's key-value store for the tenant (kept across versions, per plugin name)").ok(super::api::list::<KvEntry>),
                op(Method::DELETE, Admin, "Empty the plugin's key-value store for the tenant"),
            ],
            get(kv_list).delete(kv_clear),
        )
        .route(
            "/tenants/{tid}/plugins/{name}/settings/{scope}",
            vec![
                op(Method::GET, Admin, "A plugin's settings for a scope (tenant, employee:<ext>)").ok(schema::<SettingsView>),
                op(Method::PUT, Admin, "Store settings after the plugin validated them (its error comes back in the 422)").body(any_json).ok(schema::<SettingsView>),
            ],
            put(put_settings).get(get_settings),
        )
}

/// A plugin a tenant can use.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct PluginInfo {
    /// Its name.
    name: String,
    /// Its version (each upload is the next).
    version: i64,
    /// SHA-256 of the component.
    sha256: String,
    /// Shipped with the router.
    builtin: bool,
    /// Decision points it exports, named as in the WIT contract.
    #[schema(schema_with = points_schema)]
    points: Vec<&'static str>,
    /// Decisions it was asked for since the router started.
    calls: u64,
    /// Faults since the router started.
    faults: u64,
}

/// Every decision point, for the schema's list of names.
const POINTS: [Point; 6] = [
    Point::Originate,
    Point::Incoming,
    Point::GroupMembers,
    Point::Failure,
    Point::Event,
    Point::Collected,
];

fn points_schema() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .enum_values(Some(POINTS.map(point_name))),
        )
        .build()
}

/// The WIT name of a decision point.
fn point_name(p: Point) -> &'static str {
    match p {
        Point::Originate => "originate",
        Point::Incoming => "incoming",
        Point::GroupMembers => "group-members",
        Point::Failure => "failure",
        Point::Event => "event",
        Point::Collected => "collected",
    }
}

/// One place in the chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ChainLink {
    /// The plugin.
    name: String,
    /// The version that serves the next call.
    version: i64,
    /// Whether it is asked.
    enabled: bool,
    /// Why the router switched it off (faults), if it did.
    disabled_reason: Option<String>,
}

/// The plugins a tenant can use and its chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct PluginsView {
    /// Built-in and uploaded plugins.
    available: Vec<PluginInfo>,
    /// The chain, in the order plugins are asked.
    chain: Vec<ChainLink>,
}

/// A tenant's chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ChainView {
    /// The chain, in the order plugins are asked.
    chain: Vec<ChainLink>,
}

/// A plugin's settings for one scope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SettingsView {
    /// The plugin.
    plugin: String,
    /// `tenant` or `employee:<ext>`.
    scope: String,
    /// The settings, as the plugin defines them.
    #[schema(value_type = Object)]
    settings: Value,
}

fn plugin_json(p: &Loaded) -> PluginInfo {
    PluginInfo {
        name: p.name.clone(),
        version: p.version,
        sha256: p.sha256.clone(),
        builtin: p.owner.is_none(),
        points: p.points.iter().map(|x| point_name(*x)).collect(),
        calls: p.calls.load(std::sync::atomic::Ordering::Relaxed),
        faults: p.faults.load(std::sync::atomic::Ordering::Relaxed),
    }
}

fn chain_json(c: &[ChainEntry]) -> Vec<ChainLink> {
    c.iter()
        .map(|e| ChainLink {
            name: e.plugin.name.clone(),
            version: e.plugin.version,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
        })
        .collect()
}

pub(super) fn plugin_error(e: PluginError) -> ApiError {
    match e {
        PluginError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m, Some("wasm")),
        PluginError::Settings(m) => {
            let field = settings_field(&m).unwrap_or("settings").to_owned();
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m, Some(&field))
        }
        PluginError::Unknown(n) => ApiError::not_found(format!("plugin {n}")),
        PluginError::Sql(e) => ApiError::internal(e),
        PluginError::Engine(e) => ApiError::internal(e),
        PluginError::Busy(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, m, None),
        PluginError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m, Some("wasm")),
    }
}

/// The setting a plugin's message names: plugins write `path: reason`
/// (`always.number: ...`), and a client puts the message next to that
/// field; a message without such a prefix is about the settings as a whole.
fn settings_field(message: &str) -> Option<&str> {
    let (path, _) = message.split_once(": ")?;
    let ok = !path.is_empty()
        && path.len() <= 64
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']'));
    ok.then_some(path)
}

async fn list(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<PluginsView>, ApiError> {
    tenant_of(&s, tid)?;
    let host = s.router.plugins();
    let available = host.available(tid).iter().map(|p| plugin_json(p)).collect();
    Ok(Json(PluginsView {
        available,
        chain: chain_json(&host.chain(tid)),
    }))
}

async fn upload(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<PluginInfo>), ApiError> {
    // Only this route takes bodies this big; it reads up to the tenant's
    // limit and no further (the rest of the API stops at `API_BODY_LIMIT`).
    let t = tenant_of(&s, tid)?;
    let host = s.router.plugins();
    let limit = host.limits_for(&t).upload;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the component is over the upload limit of {limit} bytes"),
            Some("wasm"),
        )
    })?;
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a plugin name is 1 to 64 of a-z, 0-9 and -",
            Some("name"),
        ));
    }
    if crate::plugins::PRODUCT_PLUGINS.contains(&name.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("`{name}` is a built-in plugin's name"),
            Some("name"),
        ));
    }
    let loaded = host
        .store_plugin(&name, &body, Some(tid))
        .await
        .map_err(plugin_error)?;
    Ok((StatusCode::CREATED, Json(plugin_json(&loaded))))
}

/// One place in a new chain.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChainItem {
    /// A plugin the tenant can use.
    name: String,
    /// Whether it is asked (default true).
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

/// A whole chain, in the order plugins are asked.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"chain": [{"name": "hotdesk"}, {"name": "divert", "enabled": false}]}))]
pub(super) struct ChainBody {
    /// Each plugin once.
    chain: Vec<ChainItem>,
}

async fn set_chain(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
    Json(body): Json<ChainBody>,
) -> Result<Json<ChainView>, ApiError> {
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
    Ok(Json(ChainView {
        chain: chain_json(&host.chain(tid)),
    }))
}

/// Body of `PUT /plugin-chain/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true, "position": 0}))]
pub(super) struct ChainEntryBody {
    /// Whether it is asked (default: as it was; on for a new entry).
    #[serde(default)]
    enabled: Option<bool>,
    /// Place in the chain, 0 first (default: where it was; last for a new
    /// entry); beyond the end means last.
    #[serde(default)]
    #[schema(minimum = 0)]
    position: Option<u32>,
}

fn unknown_in_chain(e: PluginError) -> ApiError {
    match e {
        PluginError::Unknown(n) => ApiError::not_found(format!("plugin `{n}` for this tenant")),
        other => plugin_error(other),
    }
}

async fn put_chain_entry(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
    Json(body): Json<ChainEntryBody>,
) -> Result<Json<ChainView>, ApiError> {
    tenant_of(&s, tid)?;
    let host = s.router.plugins();
    host.put_chain_entry(tid, &name, body.enabled, body.position.map(|p| p as usize))
        .await
        .map_err(unknown_in_chain)?;
    Ok(Json(ChainView {
        chain: chain_json(&host.chain(tid)),
    }))
}

async fn remove_chain_entry(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
) -> Result<Json<ChainView>, ApiError> {
    tenant_of(&s, tid)?;
    let host = s.router.plugins();
    host.remove_chain_entry(tid, &name)
        .await
        .map_err(|e| match e {
            PluginError::Unknown(n) => ApiError::not_found(format!("`{n}` in the chain")),
            other => plugin_error(other),
        })?;
    Ok(Json(ChainView {
        chain: chain_json(&host.chain(tid)),
    }))
}

async fn delete_plugin(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    tenant_of(&s, tid)?;
    s.router
        .plugins()
        .delete_plugin(tid, &name)
        .await
        .map_err(|e| match e {
            PluginError::Unknown(n) => ApiError::not_found(format!("uploaded plugin `{n}`")),
            PluginError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m, Some("name")),
            other => plugin_error(other),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn faults(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
) -> Result<Json<List<crate::plugins::Fault>>, ApiError> {
    tenant_of(&s, tid)?;
    let host = s.router.plugins();
    if !host.available(tid).iter().any(|p| p.name == name) {
        return Err(ApiError::not_found(format!(
            "plugin `{name}` for this tenant"
        )));
    }
    Ok(Json(List::new(host.recent_faults(tid, &name))))
}

/// One key of a plugin's store.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct KvEntry {
    /// The key.
    key: String,
    /// Its value.
    value: String,
}

async fn kv_list(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
) -> Result<Json<List<KvEntry>>, ApiError> {
    tenant_of(&s, tid)?;
    let items = s
        .router
        .plugins()
        .state()
        .kv_all(tid, &name)
        .into_iter()
        .map(|(key, value)| KvEntry { key, value })
        .collect();
    Ok(Json(List::new(items)))
}

async fn kv_clear(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    tenant_of(&s, tid)?;
    let state = s.router.plugins().state();
    state.kv_clear(tid, &name);
    // Acknowledged means stored: wait for the writer to reach the deletes.
    if !state.flush().await {
        return Err(ApiError::internal("the store could not be cleared"));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn put_settings(
    State(s): State<AdminState>,
    Path((tid, name, scope)): Path<(i64, String, String)>,
    body: Bytes,
) -> Result<Json<SettingsView>, ApiError> {
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
    let settings: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    Ok(Json(SettingsView {
        plugin: name,
        scope,
        settings,
    }))
}

pub(super) async fn get_settings(
    State(s): State<AdminState>,
    Path((tid, name, scope)): Path<(i64, String, String)>,
) -> Result<Json<SettingsView>, ApiError> {
    tenant_of(&s, tid)?;
    let text = s
        .router
        .plugins()
        .state()
        .setting(tid, &name, &scope)
        .ok_or_else(|| ApiError::not_found(format!("settings of {name} for {scope}")))?;
    let settings: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Json(SettingsView {
        plugin: name,
        scope,
        settings,
    }))
}

#[cfg(test)]
mod tests {
    use super::settings_field;

    #[test]
    fn a_plugin_message_naming_a_setting_points_at_it() {
        assert_eq!(
            settings_field("always.number: not the employee's mobile"),
            Some("always.number")
        );
        assert_eq!(
            settings_field("week.mon[0]: 18:00 before 09:00"),
            Some("week.mon[0]")
        );
    }

    #[test]
    fn a_plugin_message_without_a_path_is_about_the_whole_settings() {
        assert_eq!(settings_field("`blocked` must be a list of numbers"), None);
        assert_eq!(settings_field("no colon at all"), None);
    }
}
