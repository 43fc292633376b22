//! Error responses: `{"error": "...", "field": "..."}` with a 4xx status for
//! what the client got wrong, a generic 500 (details only in the log) for
//! what we got wrong.

use super::api::ApiErrorBody;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::directory::provision::ProvisionError;

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// A client error.
    pub fn new(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("not found: {}", what.into()),
            None,
        )
    }

    /// 500, logged.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "admin API internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> ApiError {
        match e {
            ProvisionError::Invalid { field, ref reason } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                reason.clone(),
                Some(field),
            ),
            ProvisionError::Conflict { field, ref reason } => {
                ApiError::new(StatusCode::CONFLICT, reason.clone(), Some(field))
            }
            ProvisionError::NotFound(what) => ApiError::not_found(what),
            ProvisionError::Sql(e) => ApiError::internal(e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ApiError {
        // serde's message names the field ("unknown field `x`", "missing field `y`").
        let text = r.body_text();
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.contains("field"))
            .map(str::to_owned);
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: text,
            field,
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> ApiError {
        // axum says 500 for a handler whose parameters do not fit its
        // route: our bug, not the client's.
        if r.status().is_server_error() {
            return ApiError::internal(r.body_text());
        }
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        let field = match &r {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                ErrorKind::ParseErrorAtKey { key, .. }
                | ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
                _ => None,
            },
            _ => None,
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: r.body_text(),
            field,
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> ApiError {
        let text = r.body_text();
        // serde_urlencoded names the parameter in backquotes.
        let field = text.split('`').nth(1).map(str::to_owned);
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: text,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: self.message,
            field: self.field,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: a 401 names the scheme the client should use.
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Answers axum makes by itself (405 for a method the path lacks, 413 for
/// a body over the limit, 400/415 for a body it cannot read) in the API's
/// `{error, field}` shape, naming the methods allowed and the limit.
pub(super) async fn json_errors(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header;
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error()) {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    // axum's own text says why (a body it could not read, say).
    let text = axum::body::to_bytes(resp.into_body(), 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (message, field) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            format!(
                "{method} is not allowed here; allowed: {}",
                allow
                    .as_ref()
                    .and_then(|a| a.to_str().ok())
                    .unwrap_or("none")
            ),
            None,
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            format!("the body is over the limit of {limit} bytes"),
            Some("body"),
        ),
        StatusCode::NOT_FOUND => ("no such path in the API".to_owned(), None),
        _ if !text.is_empty() => (text, None),
        other => (
            format!(
                "the request was refused: {}",
                other.canonical_reason().unwrap_or("client error")
            ),
            None,
        ),
    };
    let mut out = ApiError::new(status, message, field).into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}
