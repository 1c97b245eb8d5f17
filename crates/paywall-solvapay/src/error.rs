//! What can go wrong talking to SolvaPay: [`SolvaPayError`].

use std::time::Duration;

use paywall::backend::BackendError;

/// Body text kept in errors, at most this many bytes.
const BODY_LIMIT: usize = 1024;

/// A SolvaPay call failed. Variants keep the status and (truncated) body text for
/// diagnosis; the paywall never sends them to API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SolvaPayError {
    /// 401 or 403: the secret key is wrong or lacks access.
    #[error("SolvaPay refused the secret key ({status}): {body}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// 404: the customer, product or session does not exist.
    #[error("not found at SolvaPay: {body}")]
    NotFound {
        /// The answer's body.
        body: String,
    },
    /// 409: the resource already exists (a customer's email is taken).
    #[error("conflict at SolvaPay: {body}")]
    Conflict {
        /// The answer's body.
        body: String,
    },
    /// 429 after every attempt.
    #[error("rate limited by SolvaPay (retry after {retry_after:?}): {body}")]
    RateLimited {
        /// The `Retry-After` of the last answer.
        retry_after: Option<Duration>,
        /// The answer's body.
        body: String,
    },
    /// 5xx (or 408) after every attempt.
    #[error("SolvaPay server error {status}: {body}")]
    Server {
        /// The status.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// Another 4xx: the request was refused as invalid. Not retried.
    #[error("SolvaPay rejected the request ({status}): {body}")]
    BadRequest {
        /// The status.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// No answer in time (per request or the call's deadline).
    #[error("SolvaPay did not answer in time")]
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS).
    #[error("cannot reach SolvaPay: {0}")]
    Transport(String),
    /// A 2xx answer whose body is not what the API promises.
    #[error("unexpected answer from SolvaPay ({status}): {reason}; body: {body}")]
    UnexpectedBody {
        /// The status.
        status: u16,
        /// Why it could not be read.
        reason: String,
        /// The answer's body.
        body: String,
    },
}

impl SolvaPayError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SolvaPayError::RateLimited { .. }
                | SolvaPayError::Server { .. }
                | SolvaPayError::Timeout
                | SolvaPayError::Transport(_)
        )
    }

    pub(crate) fn body_text(bytes: &[u8]) -> String {
        let end = bytes.len().min(BODY_LIMIT);
        let mut text = String::from_utf8_lossy(&bytes[..end]).into_owned();
        if bytes.len() > BODY_LIMIT {
            text.push_str("...");
        }
        text
    }
}

impl From<SolvaPayError> for BackendError {
    fn from(err: SolvaPayError) -> Self {
        match err {
            SolvaPayError::NotFound { .. } => BackendError::NotFound(err.to_string()),
            SolvaPayError::RateLimited { retry_after, .. } => BackendError::Unavailable {
                message: err.to_string(),
                retry_after,
            },
            // A wrong key is an operator's error that is fixed without losing usage:
            // keep retrying rather than dropping events.
            SolvaPayError::Unauthorized { .. }
            | SolvaPayError::Server { .. }
            | SolvaPayError::Timeout
            | SolvaPayError::Transport(_)
            | SolvaPayError::UnexpectedBody { .. } => BackendError::unavailable(err.to_string()),
            SolvaPayError::Conflict { .. } | SolvaPayError::BadRequest { .. } => {
                BackendError::Rejected(err.to_string())
            }
        }
    }
}
