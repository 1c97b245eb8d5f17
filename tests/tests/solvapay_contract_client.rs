//! The client side of the contract: every request `SolvaPayBackend` sends matches the
//! request schemas of SolvaPay's published OpenAPI file
//! (`tests/contracts/solvapay-openapi.json`), seen by a server that records them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use paywall::backend::{BillingBackend, Outcome, UsageEvent};
use paywall::{CustomerRef, Identity};
use paywall_solvapay::{wire, SolvaPayBackend};
use paywall_tests::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One request the recording server saw.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    query: Option<String>,
    body: Value,
    auth: Option<String>,
}

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<Call>>>);

/// Answers like SolvaPay, conflicting on the first create to exercise the adoption path,
/// and records every request.
async fn recording(State(recorded): State<Recorded>, request: Request) -> axum::response::Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let creates = {
        let mut log = recorded.0.lock().expect("lock");
        log.push(Call {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
            auth,
        });
        log.iter()
            .filter(|c| c.method == "POST" && c.path == "/v1/sdk/customers")
            .count()
    };
    let customer = json!({ "reference": "cus_owner", "name": "", "email": "owner@example.com" });
    match (method.as_str(), path.as_str()) {
        ("GET", "/v1/sdk/customers")
            if query.as_deref().is_some_and(|q| q.starts_with("email=")) =>
        {
            axum::Json(customer).into_response()
        }
        ("GET", "/v1/sdk/customers") => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"statusCode": 404, "error": "Not Found", "message": "Customer not found"}),
            ),
        )
            .into_response(),
        ("POST", "/v1/sdk/customers") if creates == 1 => (
            StatusCode::CONFLICT,
            axum::Json(json!({"statusCode": 409, "error": "Conflict", "message": "email taken"})),
        )
            .into_response(),
        ("POST", "/v1/sdk/customers") => (
            StatusCode::CREATED,
            axum::Json(json!({ "reference": "cus_new", "name": "", "email": body["email"] })),
        )
            .into_response(),
        ("PATCH", _) => axum::Json(customer).into_response(),
        ("POST", "/v1/sdk/limits") => {
            axum::Json(json!({ "withinLimits": true, "remaining": 3 })).into_response()
        }
        ("POST", "/v1/sdk/usages/bulk") => {
            axum::Json(json!({ "success": true, "inserted": 1, "results": [] })).into_response()
        }
        ("POST", "/v1/sdk/checkout-sessions") => (
            StatusCode::CREATED,
            axum::Json(json!({ "sessionId": "cs_1", "checkoutUrl": "https://pay/cs_1" })),
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_requests_match_the_published_schemas() {
    let spec = openapi();
    let recorded = Recorded::default();
    let router = axum::Router::new()
        .fallback(recording)
        .with_state(recorded.clone());
    let server = Served::start(loopback().await, router);
    let backend = SolvaPayBackend::new(solvapay_config(&server.base)).expect("backend");

    // 409 on create: re-find by externalRef (404), find by the verified email, PATCH the
    // externalRef onto that customer (it has none yet).
    let adopted = backend
        .ensure_customer(
            &Identity::new("auth0|42")
                .with_verified_email("owner@example.com")
                .with_name("Owner"),
        )
        .await
        .expect("ensure");
    assert_eq!(adopted.as_str(), "cus_owner");
    // No email: a placeholder address, and a plain create.
    let created = backend
        .ensure_customer(&Identity::new("user-2"))
        .await
        .expect("ensure");
    assert_eq!(created.as_str(), "cus_new");
    let limits = backend
        .check_limits(&CustomerRef::new("cus_new"), "prd_x", "requests")
        .await
        .expect("limits");
    assert_eq!(limits.remaining, 3);
    let event = UsageEvent {
        idempotency_key: "key-1".into(),
        customer: CustomerRef::new("cus_new"),
        product: "prd_x".into(),
        meter: "requests".into(),
        units: 2,
        outcome: Outcome::Success,
        timestamp: std::time::SystemTime::now(),
        duration: Some(Duration::from_millis(12)),
    };
    backend.record_usage(&[event]).await.expect("usage");
    let session = backend
        .client()
        .create_checkout_session(&wire::CreateCheckoutSession {
            customer_ref: "cus_new".into(),
            product_ref: Some("prd_x".into()),
            ..wire::CreateCheckoutSession::default()
        })
        .await
        .expect("session");
    assert_eq!(session.session_id, "cs_1");

    let log = recorded.0.lock().expect("lock").clone();
    let calls: Vec<String> = log
        .iter()
        .map(|c| {
            let query = c
                .query
                .as_ref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            format!("{} {}{query}", c.method, c.path)
        })
        .collect();
    assert_eq!(
        calls,
        [
            "GET /v1/sdk/customers?externalRef=auth0%7C42",
            "POST /v1/sdk/customers",
            "GET /v1/sdk/customers?externalRef=auth0%7C42",
            "GET /v1/sdk/customers?email=owner%40example.com",
            "PATCH /v1/sdk/customers/cus_owner",
            "GET /v1/sdk/customers?externalRef=user-2",
            "POST /v1/sdk/customers",
            "POST /v1/sdk/limits",
            "POST /v1/sdk/usages/bulk",
            "POST /v1/sdk/checkout-sessions",
        ]
    );
    for call in &log {
        let bearer = format!("Bearer {DEV_KEY}");
        assert_eq!(call.auth.as_deref(), Some(bearer.as_str()), "{call:?}");
        let spec_path = if call.path.starts_with("/v1/sdk/customers/") {
            "/v1/sdk/customers/{reference}"
        } else {
            call.path.as_str()
        };
        let method = call.method.to_lowercase();
        if method == "get" {
            continue;
        }
        let what = format!("{method} {} request", call.path);
        assert_valid(
            &spec,
            request_schema(&spec, &method, spec_path),
            &call.body,
            &what,
        );
    }
    let limits_body = &log[7].body;
    assert_eq!(limits_body["meterName"], "requests");
    assert_eq!(limits_body["includeCheckoutSession"], true);
    let usage = &log[8].body["events"][0];
    assert_eq!(usage["idempotencyKey"], "key-1");
    assert_eq!(usage["units"], 2);
    assert_eq!(usage["metadata"]["meterName"], "requests");
    let placeholder = log[6].body["email"].as_str().expect("email");
    assert!(
        placeholder.starts_with("user-2-") && placeholder.ends_with("@auto-created.local"),
        "{placeholder}"
    );
    assert_eq!(log[4].body, json!({ "externalRef": "auth0|42" }));
    server.stop().await;
}
