//! The billing routes ([`paywall::BillingRoutes`]) as an axum router: one call,
//! [`billing_router`], behind the paywall's identity resolver and not charged.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use paywall::adapter::{BILLING_BODY_DEADLINE, MAX_BILLING_BODY};
use paywall::BillingRoutes;

/// The billing routes at `path` (e.g. `/api/billing`, with or without a trailing
/// slash, and everything under it), to merge into the app:
/// `app.merge(billing_router("/api/billing", routes))`.
pub fn billing_router(path: &str, routes: BillingRoutes) -> Router {
    let mount = path.trim_end_matches('/').to_owned();
    Router::new()
        .route(&mount, any(handle))
        .route(&format!("{mount}/"), any(handle))
        .route(&format!("{mount}/{{*rest}}"), any(handle))
        .with_state(Arc::new(Mounted { routes, mount }))
}

struct Mounted {
    routes: BillingRoutes,
    mount: String,
}

async fn handle(State(mounted): State<Arc<Mounted>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // The credentials first: an unauthenticated caller's body is never read.
    if let Err(refused) = mounted.routes.authenticate(&parts).await {
        return refused.map(Body::from).into_response();
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let path = parts
        .uri
        .path()
        .strip_prefix(mounted.mount.as_str())
        .unwrap_or_default();
    mounted
        .routes
        .handle(&parts.method, path, &parts, &body)
        .await
        .map(Body::from)
        .into_response()
}

/// Reads a billing request's body: at most [`MAX_BILLING_BODY`] bytes (413 beyond),
/// within [`BILLING_BODY_DEADLINE`] (408 after).
pub(crate) async fn read_body(body: Body) -> Result<bytes::Bytes, Response> {
    match tokio::time::timeout(BILLING_BODY_DEADLINE, to_bytes(body, MAX_BILLING_BODY)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(BillingRoutes::too_large().map(Body::from).into_response()),
        Err(_) => Err(BillingRoutes::timed_out().map(Body::from).into_response()),
    }
}
