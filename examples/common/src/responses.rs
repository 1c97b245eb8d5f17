//! The JSON bodies both quickstarts answer with, so that axum and actix answer the same
//! bytes.

use serde_json::{json, Value};

/// `GET /health`.
pub fn health_body() -> Value {
    json!({ "status": "ok" })
}

/// `GET /api/hello`: the `x-customer-ref` the handler saw and the caller's external
/// reference.
pub fn hello_body(seen: Option<&str>, external_ref: &str) -> Value {
    json!({ "customerRef": seen, "externalRef": external_ref })
}

/// Unknown paths.
pub fn not_found_body() -> Value {
    paywall::adapter::error_body("Not Found", "not_found", "No route for this path.")
}

/// Known paths, wrong method.
pub fn method_not_allowed_body() -> Value {
    paywall::adapter::error_body(
        "Method Not Allowed",
        "method_not_allowed",
        "This path does not accept this method.",
    )
}
