//! The route table: every API route is registered here with who may call
//! each of its methods and a one-line summary. One table builds the axum
//! router, decides access before a handler runs, records accepted writes in
//! the audit log, and is served as the OpenAPI document, so the three
//! cannot drift apart.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use serde_json::{json, Map, Value};

use super::auth::{self, Principal};
use super::{AdminState, ApiError};
use crate::store::now_ms;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nobody needs a token.
    Public,
    /// Any valid token.
    Anyone,
    /// The platform operator only.
    Operator,
    /// Any employee of the path's tenant; the handler narrows it by role
    /// (own data, department, company).
    Member,
    /// Administrators of the path's tenant (and the operator).
    Admin,
}

impl Access {
    fn describe(self) -> &'static str {
        match self {
            Access::Public => "no token",
            Access::Anyone => "any token",
            Access::Operator => "the platform operator",
            Access::Member => "employees of the tenant (narrowed by role)",
            Access::Admin => "administrators of the tenant",
        }
    }
}

/// Writes the schema of a type into the document's components and gives
/// the schema (usually a `$ref`) to use in its place.
pub type SchemaFn = fn(&mut Components) -> Value;

/// Query parameters of an operation (from a `utoipa::IntoParams` type).
pub type ParamsFn = fn() -> Vec<utoipa::openapi::path::Parameter>;

/// The named schemas of the document.
#[derive(Debug, Default)]
pub struct Components {
    schemas: Map<String, Value>,
    /// Names given to two different schemas (a bug the tests look for).
    clashes: Vec<String>,
}

impl Components {
    /// Names that two different types claimed.
    pub fn clashes(&self) -> &[String] {
        &self.clashes
    }
}

/// A `$ref` to `T`, whose schema (and every schema it refers to) is added
/// to the components.
pub fn schema<T: utoipa::ToSchema>(c: &mut Components) -> Value {
    let name = T::name().into_owned();
    let mut all = vec![(name.clone(), T::schema())];
    T::schemas(&mut all);
    for (n, s) in all {
        let s = to_json(&s);
        match c.schemas.get(&n) {
            None => {
                c.schemas.insert(n, s);
            }
            Some(existing) if *existing != s => c.clashes.push(n),
            Some(_) => {}
        }
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A JSON object whose shape the plugin defines (and validates).
pub fn any_json(_: &mut Components) -> Value {
    json!({"type": "object", "description": "settings as the plugin defines them; the plugin validates them"})
}

/// `{"items": [T], "total": n}`, the shape of every unpaged list.
pub fn list<T: utoipa::ToSchema>(c: &mut Components) -> Value {
    json!({
        "type": "object",
        "required": ["items", "total"],
        "properties": {
            "items": {"type": "array", "items": schema::<T>(c)},
            "total": {"type": "integer", "minimum": 0},
        },
    })
}

fn to_json(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// What an operation takes as its body.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// Nothing.
    Empty,
    /// JSON of this schema.
    Json(SchemaFn),
    /// A WebAssembly component (`application/wasm`).
    Wasm,
    /// A recording (`audio/wav`).
    Wav,
}

/// What an operation answers when it succeeds.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// 200 with JSON of this schema.
    Ok(SchemaFn),
    /// 201 with JSON of this schema.
    Created(SchemaFn),
    /// 204.
    NoContent,
}

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// HTTP method.
    pub method: Method,
    /// Who may call it.
    pub access: Access,
    /// What it does.
    pub summary: &'static str,
    /// Its request body.
    pub body: Body,
    /// Its query parameters.
    pub query: Option<ParamsFn>,
    /// Its success answer.
    pub reply: Reply,
}

/// An operation answering 204 with no body; the builder methods say more.
pub(super) fn op(method: Method, access: Access, summary: &'static str) -> Operation {
    Operation {
        method,
        access,
        summary,
        body: Body::Empty,
        query: None,
        reply: Reply::NoContent,
    }
}

impl Operation {
    /// Answers 200 with JSON of `f`'s schema.
    pub(super) fn ok(mut self, f: SchemaFn) -> Operation {
        self.reply = Reply::Ok(f);
        self
    }

    /// Answers 201 with JSON of `f`'s schema.
    pub(super) fn created(mut self, f: SchemaFn) -> Operation {
        self.reply = Reply::Created(f);
        self
    }

    /// Takes JSON of `f`'s schema.
    pub(super) fn body(mut self, f: SchemaFn) -> Operation {
        self.body = Body::Json(f);
        self
    }

    /// Takes a WebAssembly component.
    pub(super) fn wasm(mut self) -> Operation {
        self.body = Body::Wasm;
        self
    }

    /// Takes a WAV recording as its body.
    pub(super) fn wav(mut self) -> Operation {
        self.body = Body::Wav;
        self
    }

    /// Takes the query parameters of `T`.
    pub(super) fn query<T: utoipa::IntoParams>(mut self) -> Operation {
        self.query = Some(|| T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query)));
        self
    }
}

/// A request body of raw bytes: `media_type`, or any octet stream.
fn binary_body(media_type: &str, description: &str) -> serde_json::Value {
    json!({"required": true, "description": description, "content": {
        media_type: {"schema": {"type": "string", "contentMediaType": media_type}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }})
}

/// The documented routes, in registration order.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    routes: Vec<(&'static str, Vec<Operation>)>,
}

impl Registry {
    /// The operation for a matched path template and method.
    pub fn find(&self, path: &str, method: &Method) -> Option<&Operation> {
        self.routes
            .iter()
            .find(|(p, _)| *p == path)
            .and_then(|(_, ops)| ops.iter().find(|o| o.method == method))
    }

    /// Every route and its operations.
    pub fn routes(&self) -> &[(&'static str, Vec<Operation>)] {
        &self.routes
    }
}

/// A router under construction with its registry.
pub(super) struct Api {
    router: Router<AdminState>,
    registry: Registry,
}

impl Api {
    pub(super) fn new() -> Api {
        Api {
            router: Router::new(),
            registry: Registry::default(),
        }
    }

    /// Registers `path` with its operations; `ops` must list exactly the
    /// methods `handlers` serves.
    pub(super) fn route(
        mut self,
        path: &'static str,
        ops: Vec<Operation>,
        handlers: MethodRouter<AdminState>,
    ) -> Api {
        self.router = self.router.route(path, handlers);
        self.registry.routes.push((path, ops));
        self
    }

    pub(super) fn merge(mut self, other: Api) -> Api {
        self.router = self.router.merge(other.router);
        self.registry.routes.extend(other.registry.routes);
        self
    }

    pub(super) fn into_parts(self) -> (Router<AdminState>, Registry) {
        (self.router, self.registry)
    }
}

/// Where the API is mounted.
pub const PREFIX: &str = "/api/v1";

/// Authenticates, checks the operation's access rule, runs the handler,
/// and records accepted writes in the audit log.
pub(super) async fn authorize(
    State(s): State<AdminState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let template = matched
        .as_ref()
        .map(|m| {
            m.as_str()
                .strip_prefix(PREFIX)
                .unwrap_or(m.as_str())
                .to_owned()
        })
        .unwrap_or_default();
    let Some(op) = s.registry.find(&template, req.method()).cloned() else {
        // A method the path lacks: 405 naming the ones it has.
        let allowed: Vec<&str> = s
            .registry
            .routes()
            .iter()
            .filter(|(p, _)| *p == template)
            .flat_map(|(_, ops)| ops.iter().map(|o| o.method.as_str()))
            .collect();
        if allowed.is_empty() {
            return next.run(req).await;
        }
        let allow = allowed.join(", ");
        let mut resp = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here; allowed: {allow}", req.method()),
            None,
        )
        .into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&allow) {
            resp.headers_mut().insert(axum::http::header::ALLOW, v);
        }
        return resp;
    };
    if op.access == Access::Public {
        return next.run(req).await;
    }
    // A bearer token (scripts, other clients) or the console's session
    // cookie; a cookie alone never authorises a write without the session's
    // anti-forgery header.
    let (token, from_cookie) = match req.headers().get(axum::http::header::AUTHORIZATION) {
        Some(header) => (
            header
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("")
                .to_owned(),
            false,
        ),
        None => match auth::session_cookie(req.headers()) {
            Some(token) => (token, true),
            None => {
                // No token is no guess: it does not count against the source.
                return ApiError::new(StatusCode::UNAUTHORIZED, "a bearer token is required", None)
                    .into_response();
            }
        },
    };
    if from_cookie
        && !matches!(*req.method(), Method::GET | Method::HEAD)
        && !auth::csrf_ok(req.headers(), &token)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "a write with the session cookie needs the session's X-CSRF-Token header",
            Some("X-CSRF-Token"),
        )
        .into_response();
    }
    // Guessing tokens is limited per source like guessing passwords.
    let source = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| auth::token_source_key(c.0.ip()))
        .unwrap_or_else(|| "token:unknown".to_owned());
    if let Err(wait) = s.logins.check(&source, auth::TOKEN_FAILURES) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many wrong bearer tokens; try again in {wait} s"),
            None,
        )
        .into_response();
    }
    // A cookie carries only a login session; anything else in it is as
    // wrong as a wrong token.
    let principal = match auth::authenticate(&s, &token).await {
        Ok(Some(
            Principal::Operator
            | Principal::Employee(auth::EmployeePrincipal { session: false, .. }),
        )) if from_cookie => {
            crate::metrics::count_auth_failure();
            s.logins.fail(&source);
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the session cookie is not a login session",
                None,
            )
            .into_response();
        }
        Ok(Some(p)) => p,
        Ok(None) => {
            crate::metrics::count_auth_failure();
            s.logins.fail(&source);
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing, wrong or expired bearer token",
                None,
            )
            .into_response();
        }
        Err(e) => return e.into_response(),
    };
    // Every tenant route starts /tenants/{tid}.
    let tid: Option<i64> = if template.starts_with("/tenants/{tid}") {
        let path = req.uri().path();
        path.strip_prefix(PREFIX)
            .unwrap_or(path)
            .split('/')
            .nth(2)
            .and_then(|t| t.parse().ok())
    } else {
        None
    };
    if let Err(e) = check(&principal, op.access, tid) {
        return e.into_response();
    }
    let actor = principal.actor();
    let audit_tenant = tid.or(match &principal {
        Principal::Employee(e) => Some(e.tenant_id),
        Principal::Operator => None,
    });
    req.extensions_mut().insert(Arc::new(principal));
    let method = req.method().clone();
    // Nesting strips the prefix from the URI the middleware sees.
    let path = match req.uri().path() {
        p if p.starts_with(PREFIX) => p.to_owned(),
        p => format!("{PREFIX}{p}"),
    };
    let resp = next.run(req).await;
    if method != Method::GET && resp.status().as_u16() < 400 {
        let r = sqlx::query(
            "INSERT INTO audit_log (tenant_id, actor, method, path, status, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(audit_tenant)
        .bind(&actor)
        .bind(method.as_str())
        .bind(&path)
        .bind(i64::from(resp.status().as_u16()))
        .bind(now_ms())
        .execute(s.store.pool())
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "audit log not written");
        }
    }
    resp
}

fn check(p: &Principal, access: Access, tid: Option<i64>) -> Result<(), ApiError> {
    let e = match p {
        Principal::Operator => return Ok(()),
        Principal::Employee(e) => e,
    };
    match access {
        Access::Public | Access::Anyone => Ok(()),
        Access::Operator => Err(auth::forbidden("only the platform operator may do this")),
        Access::Member | Access::Admin => {
            let Some(tid) = tid.filter(|t| *t == e.tenant_id) else {
                // Another tenant does not exist as far as they can tell.
                return Err(ApiError::not_found(format!(
                    "tenant {}",
                    tid.map(|t| t.to_string()).unwrap_or_default()
                )));
            };
            if access == Access::Admin && !p.is_admin_of(tid) {
                return Err(auth::forbidden("requires the administrator role"));
            }
            Ok(())
        }
    }
}

/// The type of a path parameter: database ids are integers, everything
/// else (extensions, names, scopes, call ids) a string.
fn path_param(name: &str) -> Value {
    let schema = match name {
        "tid" | "id" => json!({"type": "integer", "format": "int64"}),
        _ => json!({"type": "string", "minLength": 1}),
    };
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

/// The OpenAPI 3.1 document of the registry.
pub fn openapi(registry: &Registry) -> Value {
    document(registry).0
}

/// The document and the components it was built from.
pub fn document(registry: &Registry) -> (Value, Components) {
    let mut components = Components::default();
    let error = schema::<ApiErrorBody>(&mut components);
    let error_reply = json!({
        "description": "what went wrong, and the field it is about",
        "content": {"application/json": {"schema": error}},
    });
    let mut paths = Map::new();
    for (path, ops) in registry.routes() {
        let mut item = Map::new();
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(path_param)
            .collect();
        for op in ops {
            let mut parameters = params.clone();
            if let Some(q) = op.query {
                parameters.extend(q().iter().map(to_json));
            }
            let mut responses = Map::new();
            match op.reply {
                Reply::Ok(f) | Reply::Created(f) => {
                    let code = if matches!(op.reply, Reply::Ok(_)) {
                        "200"
                    } else {
                        "201"
                    };
                    responses.insert(
                        code.into(),
                        json!({"description": "success",
                               "content": {"application/json": {"schema": f(&mut components)}}}),
                    );
                }
                Reply::NoContent => {
                    responses.insert("204".into(), json!({"description": "done"}));
                }
            }
            // Every error has the same shape; which statuses an operation
            // can give depends on the caller, so they share `default`.
            responses.insert("default".into(), error_reply.clone());
            let mut o = json!({
                "operationId": operation_id(&op.method, path),
                "summary": op.summary,
                "description": format!("Who may call it: {}.", op.access.describe()),
                "parameters": parameters,
                "responses": responses,
            });
            match op.body {
                Body::Empty => {}
                Body::Json(f) => {
                    o["requestBody"] = json!({"required": true,
                        "content": {"application/json": {"schema": f(&mut components)}}});
                }
                Body::Wasm => {
                    o["requestBody"] = binary_body(
                        "application/wasm",
                        "a WebAssembly component built for the plugin world of wit/",
                    );
                }
                Body::Wav => {
                    o["requestBody"] =
                        binary_body("audio/wav", "a WAV file: 8000 Hz, mono, 16-bit PCM");
                }
            }
            if op.access == Access::Public {
                o["security"] = json!([]);
            }
            item.insert(op.method.as_str().to_ascii_lowercase(), o);
        }
        paths.insert(format!("{PREFIX}{path}"), Value::Object(item));
    }
    let doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tenants, employees, devices, hunt groups, plugins and their settings, \
                            presence, call history. Bearer tokens: the operator's from the config, \
                            or an employee's from POST /api/v1/login. Errors are {error, field?}. \
                            Times are Unix milliseconds.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components.schemas.clone(),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    });
    (doc, components)
}

/// `get_tenants_tid_employees` for `GET /tenants/{tid}/employees`.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(seg.chars().filter(|c| !matches!(c, '{' | '}')).map(|c| {
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        }));
    }
    id
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ApiErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The request field it is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_types_claim_one_schema_name() {
        let (_, registry) = crate::admin::routes();
        let (_, components) = document(&registry);
        assert!(
            components.clashes().is_empty(),
            "{:?}",
            components.clashes()
        );
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let (_, registry) = crate::admin::routes();
        let (doc, _) = document(&registry);
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"").skip(1) {
            let target = r.split('"').next().unwrap_or_default();
            let name = target.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling reference {target}"
            );
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let (_, registry) = crate::admin::routes();
        let mut seen = std::collections::HashSet::new();
        for (path, ops) in registry.routes() {
            for op in ops {
                assert!(seen.insert(operation_id(&op.method, path)), "{path}");
            }
        }
    }
}
