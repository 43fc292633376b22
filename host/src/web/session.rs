//! Console login and logout. The session is the API's own (an expiring
//! token from `POST /api/v1/login`), but the browser keeps it in an
//! `HttpOnly` cookie, so no script of the page can read it, and the page
//! gets only the session's anti-forgery value, which it sends on writes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::admin::auth::{self, LoginBody, Principal};
use crate::admin::{AdminState, ApiError, Json};
use crate::directory::Role;

/// Who is logged in, as the page needs it.
#[derive(Debug, Serialize)]
struct SessionView {
    /// Sent back in `X-CSRF-Token` on every write.
    csrf: String,
    tenant_id: i64,
    domain: String,
    employee_id: i64,
    extension: String,
    name: String,
    role: Role,
}

fn view(s: &AdminState, token: &str, p: &Principal) -> Option<SessionView> {
    let Principal::Employee(e) = p else {
        // The operator's token lives in the config; the console is for
        // employees (administrators and users) of a tenant.
        return None;
    };
    let snap = s.directory.snapshot();
    let t = snap.by_id(e.tenant_id)?;
    let name = t
        .employees
        .get(&e.employee_id)
        .map(|x| x.name.clone())
        .unwrap_or_default();
    Some(SessionView {
        csrf: auth::csrf_for(token),
        tenant_id: e.tenant_id,
        domain: t.tenant.domain.to_string(),
        employee_id: e.employee_id,
        extension: e.extension.clone(),
        name,
        role: e.role,
    })
}

fn not_logged_in() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "not logged in", None)
}

fn cookie(s: &AdminState, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if s.console.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}",
        auth::SESSION_COOKIE
    );
    // Only hex digits and fixed text go in: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn principal_of(
    s: &AdminState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(String, Principal), ApiError> {
    let token = auth::session_cookie(headers).ok_or_else(not_logged_in)?;
    let p = auth::authenticate_cookie(s, peer.ip(), &token)
        .await?
        .ok_or_else(not_logged_in)?;
    Ok((token, p))
}

/// Console answers carry the security headers, errors included, and are
/// never cached: they hold the anti-forgery value.
fn finish(r: Result<Response, ApiError>) -> Response {
    let mut resp = super::secured(r.unwrap_or_else(IntoResponse::into_response));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /console/session`: who the cookie belongs to, or 401.
pub(super) async fn current(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let (token, p) = principal_of(&s, peer, &headers).await?;
            let v = view(&s, &token, &p).ok_or_else(not_logged_in)?;
            Ok(Json(v).into_response())
        }
        .await,
    )
}

/// Whether a browser says the request came from another site: such a
/// request must not log anyone in (login CSRF), whatever its content type.
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        host,
    ) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            origin_host != host
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// `POST /console/session`: logs in with domain, login and password (the
/// API's login, with its rate limits) and sets the cookie. JSON only, and
/// refused when the browser says it comes from another site.
pub(super) async fn log_in(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, ApiError>,
) -> Response {
    finish(
        async {
            if cross_site(&headers) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a console login must come from the console's own page",
                    Some("Origin"),
                ));
            }
            let Json(body) = body?;
            let session = auth::open_session(&s, peer, body).await?;
            let p = auth::authenticate(&s, &session.token)
                .await?
                .ok_or_else(not_logged_in)?;
            let v = view(&s, &session.token, &p).ok_or_else(not_logged_in)?;
            let mut resp = Json(v).into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                cookie(&s, &session.token, auth::SESSION_TTL.as_secs()),
            );
            Ok(resp)
        }
        .await,
    )
}

/// `DELETE /console/session`: revokes the session on the server (the
/// token stops working everywhere at once) and clears the cookie.
pub(super) async fn log_out(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let (token, p) = principal_of(&s, peer, &headers).await?;
            if !auth::csrf_ok(&headers, &token) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "logging out needs the session's X-CSRF-Token header",
                    Some("X-CSRF-Token"),
                ));
            }
            if let Principal::Employee(e) = &p {
                auth::revoke(&s, e.tenant_id, e.token_id).await?;
            }
            let mut resp = StatusCode::NO_CONTENT.into_response();
            resp.headers_mut()
                .insert(header::SET_COOKIE, cookie(&s, "", 0));
            Ok(resp)
        }
        .await,
    )
}

/// The employee a request's session cookie belongs to (for the stream).
pub(super) async fn employee(
    s: &AdminState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(String, Arc<Principal>), ApiError> {
    let (token, p) = principal_of(s, peer, headers).await?;
    Ok((token, Arc::new(p)))
}
