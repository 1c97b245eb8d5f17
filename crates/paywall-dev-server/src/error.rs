//! Error answers in SolvaPay's shape: `{statusCode, error, message}`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paywall_local::LocalError;
use paywall_solvapay::wire;
use tracing::warn;

/// `{statusCode, error, message}`, as SolvaPay's API answers errors.
pub(crate) fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = wire::ErrorBody {
        status_code: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: message.into(),
    };
    (status, Json(body)).into_response()
}

/// An error answer, cheap to pass around before it becomes a response.
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        api_error(self.status, self.message)
    }
}

impl From<LocalError> for ApiError {
    fn from(err: LocalError) -> Self {
        let (status, message) = match err {
            LocalError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            LocalError::Conflict(what) => (StatusCode::CONFLICT, what),
            other => {
                warn!(error = %other, "dev server ledger error");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The ledger is unavailable".to_owned(),
                )
            }
        };
        Self { status, message }
    }
}

pub(crate) fn ledger_error(err: LocalError) -> Response {
    ApiError::from(err).into_response()
}

pub(crate) fn bad_json(rejection: JsonRejection) -> Response {
    let status = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    api_error(status, rejection.body_text())
}
