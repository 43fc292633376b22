//! The web console: pages for administrators and employees, served by the
//! router on the admin listener at `/`.
//!
//! The console is a browser client of the same JSON API (`/api/v1`): every
//! read and write goes through the API's route table, so access rules,
//! validation, the audit log and errors are the API's own, and nothing the
//! console shows is decided twice. The pages are a small script compiled
//! into the binary (no build step, no CDN, nothing fetched at run time).
//! What this module adds is what a browser needs and an API client does
//! not: a login that keeps the session token in an `HttpOnly` cookie,
//! anti-forgery values for writes, strict security headers, and a stream
//! of live updates (server-sent events).

mod events;
mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::admin::AdminState;

/// What the console keeps per node.
#[derive(Debug)]
pub struct Console {
    /// Mark cookies `Secure` (served over HTTPS).
    secure_cookies: bool,
    /// Live-update streams allowed at once.
    max_streams: usize,
    /// Live-update streams open now.
    streams: AtomicUsize,
    /// Streams open now per employee id (at most [`STREAMS_PER_EMPLOYEE`]).
    per_employee: parking_lot::Mutex<HashMap<i64, usize>>,
    /// The administrators' snapshot per tenant, built at most once a tick
    /// however many administrators watch.
    snapshots: parking_lot::Mutex<HashMap<i64, (Instant, Arc<serde_json::Value>)>>,
}

/// Live-update streams one employee may hold open (a few tabs), so one
/// account cannot take every stream of the node.
pub const STREAMS_PER_EMPLOYEE: usize = 4;

impl Console {
    /// Console settings from the `[http]` config.
    pub fn new(secure_cookies: bool, max_streams: usize) -> Console {
        Console {
            secure_cookies,
            max_streams,
            streams: AtomicUsize::new(0),
            per_employee: parking_lot::Mutex::default(),
            snapshots: parking_lot::Mutex::default(),
        }
    }

    /// Live-update streams open now (a gauge in `/metrics`).
    pub fn open_streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// A slot for one more stream of `employee`, if there is room on the
    /// node and under the employee's own limit; freed on drop.
    fn stream_slot(self: &Arc<Self>, employee: i64) -> Option<StreamSlot> {
        let mut mine = self.per_employee.lock();
        let n = mine.entry(employee).or_insert(0);
        if *n >= STREAMS_PER_EMPLOYEE {
            return None;
        }
        self.streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_streams).then_some(n + 1)
            })
            .ok()?;
        *n += 1;
        Some(StreamSlot {
            console: self.clone(),
            employee,
        })
    }

    /// The tenant's snapshot if one was built within `fresh`, else the one
    /// `build` makes now.
    fn shared_snapshot(
        &self,
        tenant: i64,
        fresh: std::time::Duration,
        build: impl FnOnce() -> serde_json::Value,
    ) -> Arc<serde_json::Value> {
        if let Some((at, v)) = self.snapshots.lock().get(&tenant) {
            if at.elapsed() < fresh {
                return v.clone();
            }
        }
        let v = Arc::new(build());
        let mut map = self.snapshots.lock();
        map.retain(|_, (at, _)| at.elapsed() < fresh * 10);
        map.insert(tenant, (Instant::now(), v.clone()));
        v
    }
}

impl Default for Console {
    fn default() -> Console {
        Console::new(false, 256)
    }
}

/// One open live-update stream; dropping it (the browser went away, the
/// session ended, the stream's lifetime ran out) frees its place.
struct StreamSlot {
    console: Arc<Console>,
    employee: i64,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut mine = self.console.per_employee.lock();
        if let Some(n) = mine.get_mut(&self.employee) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                mine.remove(&self.employee);
            }
        }
        self.console.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The console's routes, outside the API prefix.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route("/console/app.js", get(script))
        .route("/console/app.css", get(style))
        .route(
            "/console/session",
            get(session::current)
                .post(session::log_in)
                .delete(session::log_out),
        )
        .route("/console/events", get(events::stream))
}

/// Headers every console response carries: no inline or foreign script,
/// no framing, no sniffing, no referrer leaking paths.
fn secured(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    secured(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type),
                // Assets change with the binary; a short cache keeps an
                // upgrade visible within a minute.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
    )
}

async fn index() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}
