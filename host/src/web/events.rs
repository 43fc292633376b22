//! Live updates for the console as server-sent events: the live calls and
//! presence an employee may see, sent when they change. Streams are
//! bounded in number per node (`http.max_console_streams`) and in
//! lifetime; the session is checked again while a stream is open, so a
//! logout or revoked session ends it.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{json, Value};

use crate::admin::auth::{self, Principal};
use crate::admin::{presence_json, AdminState, ApiError};

/// How often the state is looked at.
const TICK: Duration = Duration::from_secs(1);
/// How often the session is checked again.
const RECHECK: Duration = Duration::from_secs(15);
/// A stream ends after this long; the browser reconnects by itself, which
/// authenticates it again.
const LIFETIME: Duration = Duration::from_secs(600);
/// Most employees whose presence one snapshot carries.
const MAX_PRESENCE: usize = 500;

/// `GET /console/events`: `snapshot` events with `{"live_calls": [...],
/// "presence": [...]}`. Administrators see the tenant's calls on this node
/// and everyone's presence; a user sees their own.
pub(super) async fn stream(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    let (token, p) = match super::session::employee(&s, &headers).await {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let Some(slot) = s.console.stream_slot() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live-update streams open; the page will retry",
            None,
        )
        .into_response();
    };
    let state = Ticker {
        s,
        token,
        principal: p,
        started: Instant::now(),
        checked: Instant::now(),
        last: None,
        interval: None,
        _slot: slot,
    };
    let events = stream::unfold(state, |mut t| async move {
        let data = t.next_change().await?;
        Some((
            Ok::<Event, Infallible>(Event::default().event("snapshot").data(data)),
            t,
        ))
    });
    super::secured(
        Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response(),
    )
}

struct Ticker {
    s: AdminState,
    token: String,
    principal: std::sync::Arc<Principal>,
    started: Instant,
    checked: Instant,
    last: Option<String>,
    interval: Option<tokio::time::Interval>,
    _slot: super::StreamSlot,
}

impl Ticker {
    /// The next snapshot that differs from the last one sent, or `None`
    /// when the stream should end.
    async fn next_change(&mut self) -> Option<String> {
        loop {
            if self.last.is_some() {
                self.interval
                    .get_or_insert_with(|| tokio::time::interval(TICK))
                    .tick()
                    .await;
            }
            if self.started.elapsed() >= LIFETIME {
                return None;
            }
            if self.checked.elapsed() >= RECHECK {
                self.checked = Instant::now();
                match auth::authenticate(&self.s, &self.token).await {
                    Ok(Some(_)) => {}
                    _ => return None,
                }
            }
            let data = snapshot(&self.s, &self.principal).to_string();
            if self.last.as_deref() != Some(data.as_str()) {
                self.last = Some(data.clone());
                return Some(data);
            }
        }
    }
}

fn snapshot(s: &AdminState, p: &Principal) -> Value {
    let Principal::Employee(e) = p else {
        return json!({});
    };
    let snap = s.directory.snapshot();
    let Some(t) = snap.by_id(e.tenant_id) else {
        return json!({});
    };
    let admin = p.is_admin_of(e.tenant_id);
    let calls: Vec<_> = crate::admin::live_calls_of(s, e.tenant_id)
        .into_iter()
        .filter(|c| admin || c.involves(&e.extension))
        .collect();
    let presence: Vec<_> = if admin {
        let mut exts: Vec<&str> = t.employees.values().map(|x| x.extension.as_str()).collect();
        exts.sort_unstable();
        exts.into_iter()
            .take(MAX_PRESENCE)
            .filter_map(|x| presence_json(s, t, x).ok())
            .collect()
    } else {
        presence_json(s, t, &e.extension).ok().into_iter().collect()
    };
    json!({"live_calls": calls, "presence": presence})
}
