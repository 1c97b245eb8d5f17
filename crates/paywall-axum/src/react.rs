//! The routes of SolvaPay's React components ([`paywall::ReactRoutes`]) as an axum
//! router: one call, [`react_router`], with CORS for the origins the routes allow
//! (tower-http's `CorsLayer`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use paywall::ReactRoutes;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::billing::read_body;

/// The routes `@solvapay/react`'s default transport calls ([`ReactRoutes::PATHS`]),
/// under `prefix` (`/api` is where the components look by default), to merge into the
/// app: `app.merge(react_router("/api", billing_routes.react()))`. Only those paths
/// are taken; the app's other routes under `prefix` stay its own.
///
/// With [`ReactRoutes::cors_origins`], a browser frontend on those origins may call
/// them (preflights answered, `Authorization` and `Content-Type` allowed); without,
/// no CORS header is sent.
pub fn react_router(prefix: &str, routes: ReactRoutes) -> Router {
    let mount = prefix.trim_end_matches('/');
    let cors = cors(routes.allowed_origins());
    let routes = Arc::new(routes);
    let mut router = Router::new();
    for path in ReactRoutes::PATHS {
        router = router.route(
            &format!("{mount}/{path}"),
            any(
                move |State(routes): State<Arc<ReactRoutes>>, request: Request| {
                    handle(routes, path, request)
                },
            ),
        );
    }
    let router = router.with_state(routes);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The CORS layer for `origins`, none when there are none.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-solvapay-customer-ref"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

async fn handle(routes: Arc<ReactRoutes>, path: &'static str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // The credentials first: an unauthenticated caller's body is never read.
    if let Err(refused) = routes.authenticate(&parts).await {
        return refused.map(Body::from).into_response();
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    routes
        .handle(&parts.method, path, &parts, &body)
        .await
        .map(Body::from)
        .into_response()
}
