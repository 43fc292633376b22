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
use super::{tenant_of, AdminState, ApiError, Json, Path};
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
            vec![op(Method::POST, Admin, "Upload a component (application/wasm); validated before it is stored; a new version serves new calls").wasm().created(schema::<PluginInfo>)],
            post(upload),
        )
        .route(
            "/tenants/{tid}/plugin-chain",
            vec![op(Method::PUT, Admin, "Set the chain: order and on/off; applies to the next call").body(schema::<ChainBody>).ok(schema::<ChainView>)],
            put(set_chain),
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
const POINTS: [Point; 5] = [
    Point::Originate,
    Point::Incoming,
    Point::GroupMembers,
    Point::Failure,
    Point::Event,
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
    body: Bytes,
) -> Result<(StatusCode, Json<PluginInfo>), ApiError> {
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
