//! The billing routes on their own, with the in-memory backend (which has none of the
//! account capabilities): state from the paywall's own budgets, and a clear 501 for
//! what the backend does not offer.

use bytes::Bytes;
use http::{Method, StatusCode};
use paywall::test_util::{HeaderResolver, MemoryBackend};
use paywall::{BillingRoutes, Charge, Paywall};
use serde_json::Value;

fn head(user: Option<&str>) -> http::request::Parts {
    let mut request = http::Request::builder();
    if let Some(user) = user {
        request = request.header("x-user", user);
    }
    request.body(()).expect("request").into_parts().0
}

fn json(response: &http::Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn state_counts_admitted_requests_and_missing_capabilities_are_501() {
    let backend = MemoryBackend::with_allowance(4);
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .build()
        .expect("paywall");
    let routes = BillingRoutes::new(&paywall, [Charge::new("prd_x")]).expect("routes");
    let state = routes
        .handle(&Method::GET, "", &head(Some("ada")), b"")
        .await;
    assert_eq!(state.status(), StatusCode::OK);
    assert_eq!(json(&state)["products"][0]["remaining"], 4);
    assert_eq!(json(&state)["customerRef"], "cus_ada");

    let route = paywall.route(Charge::new("prd_x")).expect("route");
    let admission = paywall
        .admit(&head(Some("ada")), &route)
        .await
        .expect("admitted");
    admission.finish(StatusCode::OK).await;
    let state = routes
        .handle(&Method::GET, "/", &head(Some("ada")), b"")
        .await;
    assert_eq!(
        json(&state)["products"][0]["remaining"],
        3,
        "no backend call needed"
    );

    for (method, path) in [
        (Method::POST, "/portal"),
        (Method::GET, "/purchases"),
        (Method::POST, "/purchases/pur_1/cancel"),
        (Method::POST, "/checkout"),
    ] {
        let body: &[u8] = if path == "/checkout" {
            br#"{"product":"prd_x"}"#
        } else {
            b""
        };
        let answer = routes.handle(&method, path, &head(Some("ada")), body).await;
        assert_eq!(answer.status(), StatusCode::NOT_IMPLEMENTED, "{path}");
        assert_eq!(json(&answer)["kind"], "unsupported", "{path}");
    }
    let anonymous = routes.handle(&Method::GET, "", &head(None), b"").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
