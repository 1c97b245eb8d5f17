//! The `paywall.decision` span, as an operator's `tracing` subscriber sees it: one per
//! protected request, closed with its `outcome` and (when admitted) the billing
//! customer's reference, whichever path decided it (in `call` for a warm request, in
//! the boxed future for a new caller). Nothing the paywall logs at debug level holds
//! the caller's token or email, and the span never names the caller's externalRef.
//! Its own test binary: the subscriber is this thread's default, at debug level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::{Request, StatusCode};
use http_body_util::Full;
use paywall_jwt::Hs256Signer;
use paywall_tests::*;
use serde_json::json;
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything the subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }
}

fn with_token(token: &str) -> Request<Full<bytes::Bytes>> {
    Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .expect("request")
}

#[tokio::test]
async fn each_decision_closes_its_span_with_outcome_and_customer_and_no_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let (sub, email) = ("sub-7f3a9c", "ada.lovelace@example.com");
    let token = Hs256Signer::new(SECRET)
        .sign(&json!({
            "sub": sub,
            "email": email,
            "email_verified": true,
            "exp": paywall_jwt::unix_now() + 600,
        }))
        .expect("sign");
    // The embedded backend: its customer references are its own, not the externalRef.
    let backend = paywall_local::LocalBackend::builder()
        .product(paywall_local::Product::new(PRODUCT).free_units(2))
        .open()
        .expect("ledger");
    let paywall = builder(&backend).build().expect("paywall");
    let service = protected(&paywall);

    // New caller (boxed path), warm caller (decided in `call`), spent, forged token.
    let (first, _, body) = read_json(call(&service, with_token(&token)).await).await;
    assert_eq!(first, StatusCode::OK);
    let reference = body["extension"].as_str().expect("customer").to_owned();
    assert!(!reference.contains(sub), "{reference}");
    let mut statuses = vec![first];
    for request in [
        with_token(&token),
        with_token(&token),
        with_token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.forged"),
    ] {
        statuses.push(call(&service, request).await.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::PAYMENT_REQUIRED,
            StatusCode::UNAUTHORIZED
        ]
    );
    paywall.flush().await;

    let text = captured.text();
    let closed: Vec<&str> = text
        .lines()
        // Its own close, not that of a `paywall.backend` span inside it.
        .filter(|line| {
            line.contains("paywall.decision{") && line.contains(" paywall::layer: close")
        })
        .collect();
    assert_eq!(closed.len(), 4, "one closed span per request:\n{text}");
    let outcomes = [
        "admitted",
        "admitted",
        "payment_required",
        "unauthenticated",
    ];
    for (line, outcome) in closed.iter().zip(outcomes) {
        assert!(line.contains(&format!("product={PRODUCT}")), "{line}");
        assert!(line.contains(&format!("outcome=\"{outcome}\"")), "{line}");
        assert_eq!(
            line.contains(&format!("customer=\"{reference}\"")),
            outcome == "admitted",
            "{line}"
        );
    }
    // The forged token's refusal is logged with its reason, not the token.
    assert!(text.contains("credentials refused reason="), "{text}");
    assert!(
        !text.contains("forged"),
        "the forged token was logged:\n{text}"
    );
    assert!(!text.contains(&token), "the token was logged:\n{text}");
    assert!(!text.contains(email), "the email was logged:\n{text}");
    assert!(!text.contains(sub), "the externalRef was logged:\n{text}");
}
