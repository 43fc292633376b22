//! The HTTP admin API (axum): provisioning of tenants, employees, device
//! accounts and hunt groups, plugins and their settings, presence, call
//! history, tokens and the audit log, with roles (seed 002) enforced per
//! operation (see [`api`]); plus `/healthz` and Prometheus `/metrics`.

pub mod api;
pub mod auth;
mod directory;
mod docs;
mod error;
mod features;
mod history;
mod plugins;
mod presence;
mod prompts;

use std::sync::Arc;

use axum::extract::{FromRequest, State};
use axum::http::Method;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

use api::{list, op, schema, Access};

pub use error::ApiError;
pub(crate) use history::live_calls_of;
pub(crate) use presence::presence_json;

use crate::proxy::Router as SipRouter;
use crate::store::Store;

/// What handlers can reach.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Database.
    pub store: Store,
    /// Directory (reloaded after every write).
    pub directory: Arc<crate::directory::Directory>,
    /// Bearer token of the platform operator.
    pub admin_token: String,
    /// The SIP router, for live views.
    pub router: Arc<SipRouter>,
    /// The route table (access rules, OpenAPI).
    registry: Arc<api::Registry>,
    /// Failed logins.
    logins: Arc<auth::LoginLimiter>,
    /// The web console's settings and open streams.
    pub(crate) console: Arc<crate::web::Console>,
}

impl AdminState {
    /// State for [`app`].
    pub fn new(
        store: Store,
        directory: Arc<crate::directory::Directory>,
        admin_token: String,
        router: Arc<SipRouter>,
    ) -> AdminState {
        AdminState {
            store,
            directory,
            admin_token,
            router,
            registry: Arc::default(),
            logins: Arc::default(),
            console: Arc::default(),
        }
    }

    /// With the web console's settings.
    pub fn with_console(self, console: crate::web::Console) -> AdminState {
        AdminState {
            console: Arc::new(console),
            ..self
        }
    }
}

/// The tenant with this id, or 404.
fn tenant_of(s: &AdminState, tid: i64) -> Result<Arc<crate::directory::TenantDirectory>, ApiError> {
    s.directory
        .snapshot()
        .by_id(tid)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("tenant {tid}")))
}

/// Every route of the API, with its access rules.
pub fn routes() -> (Router<AdminState>, api::Registry) {
    api::Api::new()
        .route(
            "/login",
            vec![op(
                Method::POST,
                Access::Public,
                "Log in with an employee's login and password; returns an expiring bearer token",
            )
            .body(schema::<auth::LoginBody>)
            .ok(schema::<auth::Session>)],
            post(auth::login),
        )
        .route(
            "/logout",
            vec![op(Method::POST, Access::Anyone, "Revoke the token presented")],
            post(auth::logout),
        )
        .route(
            "/me",
            vec![op(Method::GET, Access::Anyone, "Who the token belongs to").ok(schema::<auth::Me>)],
            get(auth::me),
        )
        .route(
            "/openapi.json",
            vec![op(Method::GET, Access::Public, "This document").ok(|_| {
                serde_json::json!({"type": "object", "description": "an OpenAPI 3.1 document"})
            })],
            get(openapi),
        )
        .route(
            "/tenants/{tid}/api-tokens",
            vec![
                op(
                    Method::GET,
                    Access::Admin,
                    "List the tenant's tokens (never their secrets)",
                )
                .ok(list::<auth::TokenInfo>),
                op(
                    Method::POST,
                    Access::Admin,
                    "Create a long-lived API token for an employee",
                )
                .body(schema::<auth::NewToken>)
                .created(schema::<auth::CreatedToken>),
            ],
            get(auth::list_tokens).post(auth::create_token),
        )
        .route(
            "/tenants/{tid}/api-tokens/{id}",
            vec![op(Method::DELETE, Access::Admin, "Revoke a token")],
            delete(auth::delete_token),
        )
        .merge(directory::routes())
        .merge(history::routes())
        .merge(plugins::routes())
        .merge(presence::routes())
        .merge(prompts::routes())
        .merge(features::routes())
        .into_parts()
}

/// `{"items": [...], "total": n}`: every list that is not paged.
#[derive(Debug, serde::Serialize)]
pub struct List<T> {
    /// The items.
    pub items: Vec<T>,
    /// How many.
    pub total: usize,
}

impl<T> List<T> {
    /// A list of `items`.
    pub fn new(items: Vec<T>) -> List<T> {
        List {
            total: items.len(),
            items,
        }
    }
}

/// Path parameters whose rejections are [`ApiError`]s.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters whose rejections are [`ApiError`]s naming the field.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

async fn openapi(State(s): State<AdminState>) -> axum::Json<serde_json::Value> {
    axum::Json(api::openapi(&s.registry))
}

/// JSON body extractor whose rejections are [`ApiError`]s naming the field.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Largest JSON body the API reads (plugin uploads have their own limit).
pub const API_BODY_LIMIT: usize = 1 << 20;

/// The whole HTTP app.
pub fn app(state: AdminState) -> Router {
    let (api, registry) = routes();
    let state = AdminState {
        registry: Arc::new(registry),
        ..state
    };
    let body_limit = API_BODY_LIMIT;
    let api = api
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            api::authorize,
        ))
        // JSON bodies are small; plugin and prompt uploads read their own,
        // larger limits (see `plugins::upload`, `prompts::upload`).
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no such path in the API",
                None,
            )
        })
        .layer(middleware::from_fn_with_state(
            body_limit,
            error::json_errors,
        ));
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .route("/api/docs", get(docs::page))
        .merge(crate::web::routes())
        .nest(api::PREFIX, api)
        .with_state(state)
}

async fn metrics(State(s): State<AdminState>) -> String {
    let mut body = crate::metrics::render();
    s.router.plugins().render_latency(&mut body);
    let r = &s.router;
    body.push_str(&format!(
        "# TYPE switchboard_registered_contacts gauge\nswitchboard_registered_contacts {}\n\
         # TYPE switchboard_active_dialogs gauge\nswitchboard_active_dialogs {}\n\
         # TYPE switchboard_server_transactions gauge\nswitchboard_server_transactions {}\n\
         # TYPE switchboard_client_transactions gauge\nswitchboard_client_transactions {}\n\
         # TYPE switchboard_tcp_connections gauge\nswitchboard_tcp_connections {}\n\
         # TYPE switchboard_calls_forking gauge\nswitchboard_calls_forking {}\n\
         # TYPE switchboard_pending_transfers gauge\nswitchboard_pending_transfers {}\n\
         # TYPE switchboard_console_streams gauge\nswitchboard_console_streams {}\n",
        r.registrar().location().contact_count(),
        r.dialogs().len(),
        r.txns.server.len(),
        r.txns.client.len(),
        r.transport.connection_count(),
        r.dialogs().forking_count(),
        r.dialogs().pending_transfers(),
        s.console.open_streams(),
    ));
    body
}
