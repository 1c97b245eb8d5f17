//! The routes of SolvaPay's React components ([`paywall::ReactRoutes`]) as actix
//! resources: one call, [`react_services`], with CORS for the origins the routes allow
//! (`actix-cors`).

use actix_cors::Cors;
use actix_web::http::{header, Method};
use actix_web::middleware::Condition;
use actix_web::{web, HttpRequest, HttpResponse};
use paywall::ReactRoutes;

use crate::billing::read_body;
use crate::{head_of, to_actix};

/// The routes `@solvapay/react`'s default transport calls ([`ReactRoutes::PATHS`]),
/// under `prefix` (`/api` is where the components look by default), as a
/// configuration: `App::new().configure(react_services("/api", billing_routes.react()))`.
/// Only those paths are taken; the app's other routes under `prefix` stay its own.
///
/// With [`ReactRoutes::cors_origins`], a browser frontend on those origins may call
/// them (preflights answered, `Authorization` and `Content-Type` allowed); without,
/// no CORS header is sent.
pub fn react_services(prefix: &str, routes: ReactRoutes) -> impl FnOnce(&mut web::ServiceConfig) {
    let mount = prefix.trim_end_matches('/').to_owned();
    move |config: &mut web::ServiceConfig| {
        let origins = routes.allowed_origins().to_vec();
        let data = web::Data::new(routes);
        for path in ReactRoutes::PATHS {
            config.service(
                web::resource(format!("{mount}/{path}"))
                    .app_data(data.clone())
                    .wrap(Condition::new(!origins.is_empty(), cors(&origins)))
                    .default_service(web::to(
                        move |request: HttpRequest,
                              payload: web::Payload,
                              routes: web::Data<ReactRoutes>| {
                            handle(request, payload, routes, path)
                        },
                    )),
            );
        }
    }
}

/// The CORS middleware for `origins`.
fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-solvapay-customer-ref"),
        ])
        .max_age(600)
}

async fn handle(
    request: HttpRequest,
    mut payload: web::Payload,
    routes: web::Data<ReactRoutes>,
    path: &'static str,
) -> HttpResponse {
    let parts = head_of(&request);
    // The credentials first: an unauthenticated caller's body is never read.
    if let Err(refused) = routes.authenticate(&parts).await {
        return to_actix(refused);
    }
    let body = match read_body(&mut payload).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    to_actix(routes.handle(&parts.method, path, &parts, &body).await)
}
