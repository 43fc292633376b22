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

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// HTTP method.
    pub method: Method,
    /// Who may call it.
    pub access: Access,
    /// What it does.
    pub summary: &'static str,
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
        ops: &[(Method, Access, &'static str)],
        handlers: MethodRouter<AdminState>,
    ) -> Api {
        self.router = self.router.route(path, handlers);
        self.registry.routes.push((
            path,
            ops.iter()
                .map(|(method, access, summary)| Operation {
                    method: method.clone(),
                    access: *access,
                    summary,
                })
                .collect(),
        ));
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
        // Unknown method on a known path: axum answers 405.
        return next.run(req).await;
    };
    if op.access == Access::Public {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
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
    let principal = match auth::authenticate(&s, &token).await {
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

/// The OpenAPI 3.1 document of the registry.
pub fn openapi(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (path, ops) in registry.routes() {
        let mut item = Map::new();
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        for op in ops {
            let mut o = json!({
                "summary": op.summary,
                "description": format!("Who may call it: {}.", op.access.describe()),
                "parameters": params,
                "responses": {
                    "2XX": {"description": "success", "content": {"application/json": {}}},
                    "4XX": {"description": "client error",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                },
            });
            if op.access == Access::Public {
                o["security"] = json!([]);
            }
            item.insert(op.method.as_str().to_ascii_lowercase(), o);
        }
        paths.insert(format!("{PREFIX}{path}"), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tenants, employees, devices, hunt groups, plugins and their settings, \
                            presence, call history. Bearer tokens: the operator's from the config, \
                            or an employee's from POST /api/v1/login. Errors are {error, field?}.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
            }},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}
