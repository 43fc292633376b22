//! Live updates for the console as server-sent events: the live calls and
//! presence an employee may see, sent when they change. Streams are
//! bounded in number per node (`http.max_console_streams`) and in
//! lifetime; the session is checked again while a stream is open, so a
//! logout or revoked session ends it.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
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
pub(super) async fn stream(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (token, p) = match super::session::employee(&s, peer, &headers).await {
        Ok(x) => x,
        Err(e) => return super::secured(e.into_response()),
    };
    let Principal::Employee(e) = p.as_ref() else {
        return super::secured(
            ApiError::new(StatusCode::UNAUTHORIZED, "not logged in", None).into_response(),
        );
    };
    let Some(slot) = s.console.stream_slot(e.employee_id) else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live-update streams open; the page will retry",
            None,
        )
        .into_response();
    };
    let state = Ticker {
        peer,
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
        // A comment every few seconds also lets a closed connection be
        // noticed (and its slot freed) while nothing changes.
        Sse::new(events)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
            .into_response(),
    )
}

struct Ticker {
    peer: SocketAddr,
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
                // A revoked session ends the stream; so does a change of
                // role or extension (it would change what may be seen).
                match auth::authenticate_cookie(&self.s, self.peer.ip(), &self.token).await {
                    Ok(Some(now)) if same_view(&now, &self.principal) => {}
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

fn same_view(a: &Principal, b: &Principal) -> bool {
    match (a, b) {
        (Principal::Employee(a), Principal::Employee(b)) => {
            a.employee_id == b.employee_id && a.role == b.role && a.extension == b.extension
        }
        _ => false,
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
    if p.is_admin_of(e.tenant_id) {
        let shared = s.console.shared_snapshot(e.tenant_id, TICK - Duration::from_millis(100), || {
            let mut exts: Vec<&str> = t
                .employees
                .values()
                .map(|x| x.extension.as_str())
                .collect();
            exts.sort_unstable();
            let presence: Vec<_> = exts
                .into_iter()
                .take(MAX_PRESENCE)
                .filter_map(|x| presence_json(s, t, x).ok())
                .collect();
            json!({"live_calls": crate::admin::live_calls_of(s, e.tenant_id), "presence": presence})
        });
        return shared.as_ref().clone();
    }
    let calls: Vec<_> = crate::admin::live_calls_of(s, e.tenant_id)
        .into_iter()
        .filter(|c| c.involves(&e.extension))
        .collect();
    let presence: Vec<_> = presence_json(s, t, &e.extension).ok().into_iter().collect();
    json!({"live_calls": calls, "presence": presence})
}
