//! The dev server's side of the contract, against SolvaPay's published OpenAPI file
//! (`tests/contracts/solvapay-openapi.json`): its answers match the response schemas,
//! and it accepts what the spec allows and SolvaPay's SDK sends. The client's side is
//! `solvapay_contract_client.rs`.

use paywall_tests::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One call to the dev server's API with the secret key: status and body text.
async fn dev_api(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(DEV_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_servers_answers_match_the_published_schemas() {
    let spec = openapi();
    let (dev, _ledger) = dev_server(loopback().await, "prd_contract", 2, None);
    let client = reqwest::Client::new();
    let base = dev.base.as_str();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let answer = dev_api(&client, base, method, path.to_owned(), body);
        async move {
            let (status, text) = answer.await;
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };

    let (status, created) = call(
        reqwest::Method::POST,
        "/v1/sdk/customers",
        Some(json!({ "email": "ada@example.com", "name": "Ada", "externalRef": "ada", "metadata": {} })),
    )
    .await;
    assert_eq!(status, 201);
    assert_valid(
        &spec,
        response_schema(&spec, "post", "/v1/sdk/customers", 201),
        &created,
        "POST /customers 201",
    );
    let reference = created["reference"].as_str().expect("reference").to_owned();
    assert!(reference.starts_with("cus_"));

    for query in [
        "externalRef=ada",
        "email=ada%40example.com",
        &format!("reference={reference}"),
    ] {
        let (status, found) = call(
            reqwest::Method::GET,
            &format!("/v1/sdk/customers?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{query}");
        assert_valid(
            &spec,
            response_schema(&spec, "get", "/v1/sdk/customers", 200),
            &found,
            "GET /customers",
        );
        assert_eq!(found["reference"], reference.as_str());
    }
    let (status, found) = call(
        reqwest::Method::GET,
        &format!("/v1/sdk/customers/{reference}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_valid(
        &spec,
        response_schema(&spec, "get", "/v1/sdk/customers/{reference}", 200),
        &found,
        "GET /customers/{ref}",
    );

    let (status, patched) = call(
        reqwest::Method::PATCH,
        &format!("/v1/sdk/customers/{reference}"),
        Some(json!({ "name": "Ada L." })),
    )
    .await;
    assert_eq!(status, 200);
    assert_valid(
        &spec,
        response_schema(&spec, "patch", "/v1/sdk/customers/{reference}", 200),
        &patched,
        "PATCH",
    );
    assert_eq!(patched["name"], "Ada L.");

    let (status, limits) = call(
        reqwest::Method::POST,
        "/v1/sdk/limits",
        Some(json!({ "customerRef": reference, "productRef": "prd_contract", "meterName": "requests", "includeCheckoutSession": true })),
    )
    .await;
    assert_eq!(status, 200);
    assert_valid(
        &spec,
        response_schema(&spec, "post", "/v1/sdk/limits", 200),
        &limits,
        "POST /limits",
    );
    assert_eq!(limits["remaining"], 2.0);
    assert!(limits["checkoutUrl"]
        .as_str()
        .is_some_and(|u| u.contains("/checkout/cs_")));

    let event = json!({ "customerRef": reference, "actionType": "api_call", "units": 1, "outcome": "success",
                        "productRef": "prd_contract", "metadata": {}, "timestamp": "2026-11-22T10:00:00.000Z",
                        "idempotencyKey": "contract-1" });
    let (status, single) = call(reqwest::Method::POST, "/v1/sdk/usages", Some(event.clone())).await;
    assert_eq!(status, 200);
    assert_valid(
        &spec,
        response_schema(&spec, "post", "/v1/sdk/usages", 200),
        &single,
        "POST /usages",
    );
    let (status, bulk) = call(
        reqwest::Method::POST,
        "/v1/sdk/usages/bulk",
        Some(json!({ "events": [event] })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bulk["inserted"], 0, "the replayed key is not counted again");
    assert_eq!(bulk["results"][0]["status"], "duplicate");

    let (status, session) = call(
        reqwest::Method::POST,
        "/v1/sdk/checkout-sessions",
        Some(json!({ "customerRef": reference, "productRef": "prd_contract" })),
    )
    .await;
    assert_eq!(status, 201);
    assert_valid(
        &spec,
        response_schema(&spec, "post", "/v1/sdk/checkout-sessions", 201),
        &session,
        "POST /checkout-sessions",
    );

    // The status codes the real API uses, each with a {statusCode, error, message} body.
    let cases: Vec<(reqwest::Method, String, Option<Value>, u16)> = vec![
        (reqwest::Method::GET, "/v1/sdk/customers".into(), None, 400),
        (
            reqwest::Method::GET,
            "/v1/sdk/customers?externalRef=a&email=b%40c.d".into(),
            None,
            400,
        ),
        (
            reqwest::Method::GET,
            "/v1/sdk/customers?externalRef=nobody".into(),
            None,
            404,
        ),
        (
            reqwest::Method::GET,
            "/v1/sdk/customers/cus_nobody".into(),
            None,
            404,
        ),
        (
            reqwest::Method::POST,
            "/v1/sdk/customers".into(),
            Some(json!({ "email": "not-an-email", "metadata": {} })),
            400,
        ),
        (
            reqwest::Method::POST,
            "/v1/sdk/customers".into(),
            Some(json!({ "name": "no email" })),
            400,
        ),
        (
            reqwest::Method::POST,
            "/v1/sdk/customers".into(),
            Some(json!({ "email": "ada@example.com", "metadata": {} })),
            409,
        ),
        (
            reqwest::Method::PATCH,
            "/v1/sdk/customers/cus_nobody".into(),
            Some(json!({ "name": "x" })),
            404,
        ),
        (
            reqwest::Method::POST,
            "/v1/sdk/limits".into(),
            Some(json!({ "customerRef": reference, "productRef": "prd_none" })),
            404,
        ),
        (
            reqwest::Method::POST,
            "/v1/sdk/limits".into(),
            Some(json!({ "customerRef": "", "productRef": "prd_contract" })),
            400,
        ),
        (
            reqwest::Method::POST,
            "/v1/sdk/usages/bulk".into(),
            Some(
                json!({ "events": [{ "customerRef": reference, "units": 100001, "metadata": {}, "timestamp": "2026-11-22T10:00:00Z" }] }),
            ),
            400,
        ),
        (
            reqwest::Method::POST,
            "/v1/sdk/usages/bulk".into(),
            Some(
                json!({ "events": [{ "customerRef": reference, "outcome": "maybe", "metadata": {}, "timestamp": "2026-11-22T10:00:00Z" }] }),
            ),
            400,
        ),
        (
            reqwest::Method::POST,
            "/v1/sdk/usages/bulk".into(),
            Some(
                json!({ "events": [{ "customerRef": reference, "metadata": {}, "timestamp": "yesterday" }] }),
            ),
            400,
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = call(method.clone(), &path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert_eq!(answer["statusCode"], expected, "{answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
        assert!(answer["error"].is_string(), "{answer}");
    }
    let raw = client
        .post(format!("{base}/v1/sdk/limits"))
        .bearer_auth(DEV_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);

    for auth in [None, Some("Bearer sk_wrong"), Some("Basic abc")] {
        let mut request = client.get(format!("{base}/v1/sdk/customers?externalRef=ada"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["statusCode"], 401);
    }
    dev.stop().await;
}

#[test]
fn the_schema_check_rejects_what_the_contract_forbids() {
    let spec = openapi();
    let compile = |schema: &Value| validator(&spec, schema);
    let customer = compile(response_schema(&spec, "get", "/v1/sdk/customers", 200));
    assert!(
        !customer.is_valid(&json!({ "reference": "cus_1" })),
        "name and email are required"
    );
    let usage = compile(request_schema(&spec, "post", "/v1/sdk/usages/bulk"));
    let event = |units: u64, outcome: &str| json!({ "events": [{ "customerRef": "cus_1", "units": units, "outcome": outcome, "metadata": {}, "timestamp": "2026-11-22T10:00:00Z" }] });
    assert!(usage.is_valid(&event(1, "success")));
    assert!(!usage.is_valid(&event(100_001, "success")));
    assert!(!usage.is_valid(&event(1, "maybe")));
    let create = compile(request_schema(&spec, "post", "/v1/sdk/customers"));
    assert!(!create.is_valid(&json!({ "email": "not an email", "metadata": {} })));
}

/// What SolvaPay's official TypeScript SDK sends, and what the spec allows, is accepted
/// by the dev server; its answers have the documented shapes.
#[tokio::test]
async fn the_dev_server_accepts_what_the_spec_allows_and_the_sdk_sends() {
    let spec = openapi();
    let (dev, ledger) = dev_server(loopback().await, "prd_contract", 5, None);
    let client = reqwest::Client::new();
    let base = dev.base.as_str();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        dev_api(&client, base, method, path.to_owned(), body)
    };
    let json_of = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let (_, created) = call(
        reqwest::Method::POST,
        "/v1/sdk/customers",
        Some(json!({ "email": "sdk@example.com", "externalRef": "sdk", "metadata": {} })),
    )
    .await;
    let reference = json_of(&created)["reference"]
        .as_str()
        .expect("reference")
        .to_owned();

    // Usage as the SDK's route helper sends it: no timestamp, fractional numbers.
    let usage = json!({ "customerRef": reference, "productRef": "prd_contract", "units": 0.6,
                        "duration": 12.5, "metadata": {}, "idempotencyKey": "sdk-1" });
    let (status, text) = call(reqwest::Method::POST, "/v1/sdk/usages", Some(usage.clone())).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = call(
        reqwest::Method::POST,
        "/v1/sdk/usages/bulk",
        Some(json!({ "events": [usage, { "customerRef": reference, "metadata": {} }] })),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let bulk = json_of(&text);
    assert_eq!(bulk["results"][0]["reference"], "usage_sdk-1", "{bulk}");
    assert!(bulk["results"][1]["reference"]
        .as_str()
        .is_some_and(|r| r.starts_with("usage_")));
    assert_eq!(recorded(&ledger, Some(&reference)).await.0, 2);

    // A checkout session with only the required customerRef; returnUrl http(s) only.
    let (status, text) = call(
        reqwest::Method::POST,
        "/v1/sdk/checkout-sessions",
        Some(json!({ "customerRef": reference })),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    for bad in [
        "javascript:alert(document.cookie)",
        "data:text/html,x",
        "//evil.example",
    ] {
        let (status, text) = call(
            reqwest::Method::POST,
            "/v1/sdk/checkout-sessions",
            Some(json!({ "customerRef": reference, "returnUrl": bad })),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {text}");
    }

    // Customer sessions and the balance.
    let (status, text) = call(
        reqwest::Method::POST,
        "/v1/sdk/customers/customer-sessions",
        Some(json!({ "customerRef": reference })),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let session = json_of(&text);
    assert_valid(
        &spec,
        response_schema(&spec, "post", "/v1/sdk/customers/customer-sessions", 201),
        &session,
        "POST /customers/customer-sessions",
    );
    let id = session["sessionId"].as_str().expect("session id");
    let (status, text) = call(
        reqwest::Method::GET,
        &format!("/v1/sdk/customers/customer-sessions/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_valid(
        &spec,
        response_schema(
            &spec,
            "get",
            "/v1/sdk/customers/customer-sessions/{sessionId}",
            200,
        ),
        &json_of(&text),
        "GET /customers/customer-sessions/{id}",
    );
    let portal = reqwest::get(session["customerUrl"].as_str().expect("url"))
        .await
        .expect("portal");
    assert_eq!(portal.status(), 200);
    assert!(portal.text().await.expect("page").contains(&reference));
    let (status, text) = call(
        reqwest::Method::GET,
        &format!("/v1/sdk/customers/{reference}/balance"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json_of(&text)["customerRef"], reference.as_str());
    let (status, _) = call(
        reqwest::Method::GET,
        "/v1/sdk/customers/cus_nobody/balance",
        None,
    )
    .await;
    assert_eq!(status, 404);
}
