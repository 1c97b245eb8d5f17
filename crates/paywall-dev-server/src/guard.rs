//! What every `/v1/sdk` request passes first: a bound on the declared body size, and
//! the secret key.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::error::api_error;
use crate::Shared;

/// Request bodies larger than this are refused before being read.
pub const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;

pub(crate) async fn limit_body(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request bodies are limited to {MAX_BODY_BYTES} bytes"),
        );
    }
    next.run(request).await
}

pub(crate) async fn require_key(
    State(dev): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = dev.config.secret_key.as_bytes();
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected)) {
        return api_error(StatusCode::UNAUTHORIZED, "Invalid or missing API key");
    }
    next.run(request).await
}
