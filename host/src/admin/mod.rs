//! The HTTP admin API (axum): provisioning of tenants, employees, device
//! accounts and hunt groups, registrations and call history, behind a bearer
//! token; plus `/healthz` and Prometheus `/metrics`.

mod directory;
mod error;
mod history;
mod plugins;
mod presence;

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use error::ApiError;

use crate::proxy::Router as SipRouter;
use crate::store::Store;

/// What handlers can reach.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Database.
    pub store: Store,
    /// Directory (reloaded after every write).
    pub directory: Arc<crate::directory::Directory>,
    /// Bearer token of the bootstrap administrator.
    pub admin_token: String,
    /// The SIP router, for live views.
    pub router: Arc<SipRouter>,
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

/// The whole HTTP app.
pub fn app(state: AdminState) -> Router {
    let api = Router::new()
        .merge(directory::routes())
        .merge(history::routes())
        .merge(plugins::routes())
        .merge(presence::routes())
        // Plugin uploads are bigger than axum's 2 MiB default.
        .layer(axum::extract::DefaultBodyLimit::max(
            state.router.plugins().config().max_upload + (64 << 10),
        ))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .with_state(state)
}

async fn metrics(State(s): State<AdminState>) -> String {
    let mut body = crate::metrics::render();
    body.push_str(&format!(
        "# TYPE switchboard_registered_contacts gauge\nswitchboard_registered_contacts {}\n\
         # TYPE switchboard_active_dialogs gauge\nswitchboard_active_dialogs {}\n",
        s.router.registrar().location().contact_count(),
        s.router.dialogs().len()
    ));
    body
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), s.admin_token.as_bytes()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
            None,
        )
        .into_response();
    }
    next.run(req).await
}
