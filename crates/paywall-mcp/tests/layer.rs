//! The HTTP side on its own, with `tower::ServiceExt::oneshot`: refusals answered in
//! HTTP before the MCP transport (naming the protected resource metadata), identified
//! requests passed on with the caller, and the billing backend not asked.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use paywall::adapter::X_CUSTOMER_REF;
use paywall::test_util::{HeaderResolver, MemoryBackend};
use paywall::{Charge, Customer, Identity, Paywall};
use paywall_mcp::{ProtectedResource, ToolPaywall};
use tower::{service_fn, Layer, ServiceExt};

fn prices(backend: &MemoryBackend) -> ToolPaywall {
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .build()
        .expect("paywall");
    ToolPaywall::builder(&paywall)
        .free("echo")
        .tool("summarize", Charge::new("prd_x").units(2))
        .build()
        .expect("prices")
}

/// An MCP transport stand-in that answers with what the layer told it.
async fn transport(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let identity = request.extensions().get::<Identity>().cloned();
    let customer = request.extensions().get::<Customer>().cloned();
    let header = request.headers().get(X_CUSTOMER_REF).cloned();
    let text = format!(
        "{}|{}|{}",
        identity.map(|i| i.external_ref).unwrap_or_default(),
        customer
            .map(|c| c.reference().to_string())
            .unwrap_or_default(),
        header
            .and_then(|h| h.to_str().ok().map(str::to_owned))
            .unwrap_or_default(),
    );
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::test]
async fn identified_requests_reach_the_transport_with_the_caller_and_billing_is_not_asked() {
    let backend = MemoryBackend::with_allowance(0);
    backend.set_ensure_down(true); // billing down is not identity down
    let service = prices(&backend).layer().layer(service_fn(transport));
    let request = Request::builder()
        .uri("/mcp")
        .header("x-user", "ada")
        .header(X_CUSTOMER_REF, "cus_someone_else")
        .body(Full::<Bytes>::default())
        .expect("request");
    let response = service.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "nothing is charged here");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        body, "ada||",
        "the caller, no customer yet, and the client's x-customer-ref removed"
    );
    assert_eq!(
        backend.ensure_calls(),
        0,
        "ensured at the first priced call"
    );
}

#[tokio::test]
async fn a_401_names_the_protected_resource_metadata() {
    let backend = MemoryBackend::with_allowance(5);
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .build()
        .expect("paywall");
    let resource =
        ProtectedResource::new("https://mcp.test/mcp", ["https://idp.test"]).expect("resource");
    let prices = ToolPaywall::builder(&paywall)
        .free("echo")
        .protected_resource(resource)
        .build()
        .expect("prices");
    let service = prices.layer().layer(service_fn(transport));
    let response = service
        .oneshot(Request::new(Full::<Bytes>::default()))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer resource_metadata=\"https://mcp.test/.well-known/oauth-protected-resource/mcp\""
    );
}

#[tokio::test]
async fn callers_without_credentials_are_answered_401_in_http() {
    let backend = MemoryBackend::with_allowance(5);
    let service = prices(&backend).layer().layer(service_fn(transport));
    let response = service
        .oneshot(Request::new(Full::<Bytes>::default()))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(backend.ensure_calls(), 0, "the transport never saw it");
}
