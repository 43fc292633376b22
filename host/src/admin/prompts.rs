//! A tenant's own recordings of the router's prompts (the voice of its
//! feature calls): upload, list, delete. The media endpoint checks and
//! keeps them; this is only their HTTP face.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, put};

use super::api::{op, schema, Access, Api};
use super::{tenant_of, AdminState, ApiError, Json, List, Path};
use crate::media::prompts::{PromptError, TenantPrompt};

pub(super) fn routes() -> Api {
    use Access::*;
    Api::new()
        .route(
            "/tenants/{tid}/prompts",
            vec![op(Method::GET, Admin, "The tenant's own recordings of prompts (name, length, size, upload time); the router's are used for the rest").ok(super::api::list::<TenantPrompt>)],
            get(list),
        )
        .route(
            "/tenants/{tid}/prompts/{name}",
            vec![
                op(Method::PUT, Admin, "Replace a prompt with the tenant's recording (audio/wav: 8 kHz, mono, 16-bit PCM, at most [media] max_prompt_kib and 30 s); names are the recordings plugins use (enter-pin, ...) and digit-0 to digit-9").wav().ok(schema::<TenantPrompt>),
                op(Method::DELETE, Admin, "Delete the tenant's recording: the router's own is used again"),
            ],
            put(upload).delete(remove),
        )
}

async fn list(
    State(s): State<AdminState>,
    Path(tid): Path<i64>,
) -> Result<Json<List<TenantPrompt>>, ApiError> {
    tenant_of(&s, tid)?;
    let items = s.router.media().tenant_prompts(tid).await?;
    Ok(Json(List::new(items)))
}

async fn upload(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
    body: axum::body::Body,
) -> Result<Json<TenantPrompt>, ApiError> {
    tenant_of(&s, tid)?;
    let media = s.router.media();
    let limit = media.max_prompt_bytes();
    let wav = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the recording is over the limit of {limit} bytes"),
            Some("wav"),
        )
    })?;
    let stored = media
        .upload_prompt(tid, &name, &wav)
        .await
        .map_err(|e| match e {
            PromptError::Name(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.to_string(),
                Some("name"),
            ),
            PromptError::TooBig(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string(), Some("wav"))
            }
            PromptError::Format(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), Some("wav"))
            }
            PromptError::Sql(e) => ApiError::from(e),
        })?;
    Ok(Json(stored))
}

async fn remove(
    State(s): State<AdminState>,
    Path((tid, name)): Path<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    tenant_of(&s, tid)?;
    if !s.router.media().remove_prompt(tid, &name).await? {
        return Err(ApiError::not_found(format!(
            "recording `{}`",
            name.chars().take(40).collect::<String>()
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
