//! The billing routes ([`paywall::BillingRoutes`]) as an actix scope: one call,
//! [`billing_scope`], behind the paywall's identity resolver and not charged.

use actix_web::{web, HttpRequest, HttpResponse, Scope};
use futures_util::StreamExt;
use paywall::adapter::{BILLING_BODY_DEADLINE, MAX_BILLING_BODY};
use paywall::BillingRoutes;

use crate::{head_of, to_actix};

/// The billing routes mounted at `path` (e.g. `/api/billing`):
/// `App::new().service(billing_scope("/api/billing", routes))`.
pub fn billing_scope(path: &str, routes: BillingRoutes) -> Scope {
    let mount = path.trim_end_matches('/').to_owned();
    web::scope(path)
        .app_data(web::Data::new(Mounted { routes, mount }))
        .default_service(web::to(handle))
}

struct Mounted {
    routes: BillingRoutes,
    mount: String,
}

async fn handle(
    request: HttpRequest,
    mut payload: web::Payload,
    mounted: web::Data<Mounted>,
) -> HttpResponse {
    let parts = head_of(&request);
    // The credentials first: an unauthenticated caller's body is never read.
    if let Err(refused) = mounted.routes.authenticate(&parts).await {
        return to_actix(refused);
    }
    let body = match read_body(&mut payload).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let path = request
        .path()
        .strip_prefix(mounted.mount.as_str())
        .unwrap_or_default();
    to_actix(
        mounted
            .routes
            .handle(&parts.method, path, &parts, &body)
            .await,
    )
}

/// Reads a billing request's body: at most [`MAX_BILLING_BODY`] bytes (413 beyond),
/// within [`BILLING_BODY_DEADLINE`] (408 after).
pub(crate) async fn read_body(payload: &mut web::Payload) -> Result<web::BytesMut, HttpResponse> {
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            match chunk {
                Ok(chunk) if body.len() + chunk.len() <= MAX_BILLING_BODY => {
                    body.extend_from_slice(&chunk)
                }
                _ => return None,
            }
        }
        Some(body)
    };
    match tokio::time::timeout(BILLING_BODY_DEADLINE, read).await {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err(to_actix(BillingRoutes::too_large())),
        Err(_) => Err(to_actix(BillingRoutes::timed_out())),
    }
}
