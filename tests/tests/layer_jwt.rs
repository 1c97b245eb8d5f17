//! The JWT resolver behind the tower layer: every malformed, forged or ambiguous token
//! is a 401 that costs no backend call.

use std::time::Duration;

use http::Request;
use http_body_util::Full;
use paywall_jwt::Hs256Signer;
use paywall_tests::*;
use serde_json::json;

fn with_auth(value: &str) -> Request<Full<bytes::Bytes>> {
    Request::builder()
        .header("authorization", value)
        .body(Full::default())
        .expect("request")
}

async fn assert_401(request: Request<Full<bytes::Bytes>>) {
    assert_401_with(request, "Bearer error=\"invalid_token\"").await;
}

async fn assert_401_with(request: Request<Full<bytes::Bytes>>, challenge: &str) {
    let backend = MemoryBackend::with_allowance(5);
    let paywall = test_paywall(&backend);
    let (status, headers, body) = read_json(call(&protected(&paywall), request).await).await;
    assert_eq!(status, http::StatusCode::UNAUTHORIZED);
    assert_eq!(headers[http::header::WWW_AUTHENTICATE], challenge);
    assert_eq!(body["kind"], "unauthenticated");
    assert_eq!(
        backend.ensure_calls(),
        0,
        "a refused token costs no backend call"
    );
}

#[tokio::test]
async fn missing_token_is_401() {
    assert_401_with(Request::new(Full::default()), "Bearer").await;
}

#[tokio::test]
async fn malformed_token_is_401() {
    assert_401(with_auth("Bearer not.a.jwt")).await;
    assert_401(with_auth("Bearer abc")).await;
    assert_401_with(with_auth("Basic dXNlcjpwYXNz"), "Bearer").await;
    assert_401(with_auth("Bearer ")).await;
}

#[tokio::test]
async fn expired_token_is_401() {
    let now = paywall_jwt::unix_now();
    let token = Hs256Signer::new(SECRET)
        .sign(&json!({ "sub": "alice", "exp": now - 3600 }))
        .expect("sign");
    assert_401(with_auth(&format!("Bearer {token}"))).await;
}

#[tokio::test]
async fn token_signed_with_another_secret_is_401() {
    let token = Hs256Signer::new("another-secret-another-secret-another-secret")
        .token_for("alice", Duration::from_secs(60))
        .expect("sign");
    assert_401(with_auth(&format!("Bearer {token}"))).await;
}

#[tokio::test]
async fn token_without_sub_or_exp_is_401() {
    let signer = Hs256Signer::new(SECRET);
    let exp = paywall_jwt::unix_now() + 600;
    for claims in [
        json!({ "exp": exp }),
        json!({ "sub": "", "exp": exp }),
        json!({ "sub": 7, "exp": exp }),
        json!({ "sub": "alice" }),
    ] {
        let token = signer.sign(&claims).expect("sign");
        assert_401(with_auth(&format!("Bearer {token}"))).await;
    }
}

#[tokio::test]
async fn two_authorization_headers_are_401() {
    let request = Request::builder()
        .header("authorization", bearer("alice"))
        .header("authorization", bearer("bob"))
        .body(Full::default())
        .expect("request");
    assert_401(request).await;
}

/// One verified-token cache behind two paywalls (two products billed by two backends):
/// each ensures and charges its own customer, whatever the other remembered with the
/// token, and a customer one of them forgets is ensured again at its next request.
#[tokio::test]
async fn one_token_cache_behind_two_paywalls() {
    let resolver = std::sync::Arc::new(resolver());
    let first = MemoryBackend::with_allowance(3);
    let second = MemoryBackend::with_allowance(5);
    let paywalls = [&first, &second].map(|backend| {
        paywall::Paywall::builder(std::sync::Arc::clone(&resolver), backend.clone())
            .recorder(fast_recorder())
            .build()
            .expect("paywall")
    });
    let services = paywalls.each_ref().map(protected);
    let mut seen = [Vec::new(), Vec::new()];
    for _ in 0..6 {
        for (service, seen) in services.iter().zip(&mut seen) {
            seen.push(status_of(service, "alice").await.as_u16());
        }
    }
    assert_eq!(seen[0], [200, 200, 200, 402, 402, 402]);
    assert_eq!(seen[1], [200, 200, 200, 200, 200, 402]);
    for paywall in &paywalls {
        assert_eq!(paywall.flush().await.pending, 0);
    }
    assert_eq!((first.recorded_units(), second.recorded_units()), (3, 5));
    assert_eq!((first.ensure_calls(), second.ensure_calls()), (1, 1));

    paywalls[0].forget_external_ref("alice").await;
    for service in &services {
        status_of(service, "alice").await;
    }
    assert_eq!((first.ensure_calls(), second.ensure_calls()), (2, 1));
}
