//! The HTTP listener: health, metrics, and the admin API.

use std::sync::Arc;

use axum::routing::get;

use crate::directory::Directory;
use crate::proxy::Router;
use crate::store::Store;

/// What HTTP handlers can reach.
#[derive(Debug, Clone)]
pub(crate) struct HttpState {
    pub store: Store,
    pub directory: Arc<Directory>,
    pub admin_token: String,
    pub router: Arc<Router>,
}

pub(crate) fn app(state: HttpState) -> axum::Router {
    let _ = (&state.store, &state.directory, &state.admin_token);
    let router = state.router.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route(
            "/metrics",
            get(move || {
                let r = router.clone();
                async move {
                    let mut body = crate::metrics::render();
                    body.push_str(&format!(
                        "# TYPE switchboard_registered_contacts gauge\nswitchboard_registered_contacts {}\n\
                         # TYPE switchboard_active_dialogs gauge\nswitchboard_active_dialogs {}\n",
                        r.registrar().location().contact_count(),
                        r.dialogs().len()
                    ));
                    body
                }
            }),
        )
}
