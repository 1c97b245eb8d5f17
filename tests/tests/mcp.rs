//! MCP tool calls priced one by one (`paywall-mcp`, through the `mcp-quickstart` app),
//! driven over real sockets by the official TypeScript client
//! (`@modelcontextprotocol/sdk` from npm) and by rmcp's own client: listing and
//! initializing are free, `echo` is free forever, `summarize` costs 2 units and then
//! answers the payment gate with a checkout link that works, a failed call gives its
//! units back, `generate` is charged what it produced, concurrent calls never overspend,
//! and calls without a valid token are 401 in HTTP.

use http::StatusCode;
use paywall_tests::*;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

fn summarize(text: &str) -> Value {
    json!({ "call": "summarize", "args": { "text": text } })
}

/// Whether a reported tool result was admitted (a result that is not the gate).
fn admitted(result: &Value) -> bool {
    result["isError"] == false && result["structuredContent"].is_null()
}

fn gated(result: &Value) -> bool {
    result["isError"] == false && result["structuredContent"]["kind"] == "payment_required"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_is_gated_after_the_allowance_and_admitted_after_paying() {
    let app = McpApp::start(5).await;
    let token = token("mcp-alice");
    let report = official_client(
        &app.url(),
        json!({ "token": token, "steps": [
            { "list": true },
            { "call": "echo", "args": { "text": "hello" } },
            { "call": "echo", "args": { "text": "again" } },
            summarize("one two three four"),
            summarize("five six"),
            summarize("seven"),
            { "call": "echo", "args": { "text": "still free" } },
        ] }),
    )
    .await;
    let steps = report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    assert_eq!(
        steps[0]["tools"],
        json!(["echo", "generate", "manage_account", "summarize", "upgrade"])
    );
    assert_eq!(steps[1]["text"], "hello");
    assert!(admitted(&steps[3]) && admitted(&steps[4]), "{report}");
    assert_eq!(steps[3]["text"], "one two three four");
    // 5 units, 2 per call: the third is the gate, as a normal tool result.
    let gate = &steps[5];
    assert!(gated(gate), "{gate}");
    let structured = &gate["structuredContent"];
    assert_eq!(structured["product"], "prd_quickstart");
    assert_eq!(structured["remaining"], 1);
    assert!(structured["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let checkout = structured["checkoutUrl"].as_str().expect("a checkout link");
    assert!(gate["text"].as_str().is_some_and(|t| t.contains(checkout)));
    assert_eq!(steps[6]["text"], "still free", "free tools stay free");
    assert_eq!(
        app.recorded("requests").await,
        4,
        "two admitted calls, 2 units each"
    );

    // Pay on the local checkout the link points to; the next call is admitted.
    let client = reqwest::Client::new();
    let page = client.get(checkout).send().await.expect("checkout page");
    assert_eq!(page.status(), StatusCode::OK);
    pay_locally(checkout).await;
    let after = official_client(
        &app.url(),
        json!({ "token": token, "steps": [summarize("paid for")] }),
    )
    .await;
    assert!(admitted(&after["steps"][0]), "{after}");
    assert_eq!(app.recorded("requests").await, 6);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_calls_with_five_units_admit_exactly_two() {
    let app = McpApp::start(5).await;
    let report = official_client(
        &app.url(),
        json!({ "token": token("mcp-crowd"), "steps": [
            { "concurrent": 20, "call": "summarize", "args": { "text": "at once" } },
        ] }),
    )
    .await;
    let results = report["steps"][0]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    assert_eq!(results.len(), 20);
    assert_eq!(
        results.iter().filter(|r| admitted(r)).count(),
        2,
        "{report}"
    );
    assert_eq!(results.iter().filter(|r| gated(r)).count(), 18, "{report}");
    assert_eq!(
        app.recorded("requests").await,
        4,
        "usage equals admitted calls"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_valid_token_are_401_in_http() {
    let app = McpApp::start(5).await;
    for token in [None, Some("forged.token.value".to_owned())] {
        let mut scenario = json!({ "steps": [{ "list": true }] });
        if let Some(token) = &token {
            scenario["token"] = json!(token);
        }
        let report = official_client(&app.url(), scenario).await;
        assert_eq!(report["connectError"]["code"], 401, "{report}");
    }
    // What the client saw, in HTTP: the challenge OAuth discovery starts from.
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": { "name": "curl", "version": "1" } } });
    let client = reqwest::Client::new();
    for (auth, challenge) in [
        (None, "Bearer"),
        (Some("Bearer forged"), "Bearer error=\"invalid_token\""),
    ] {
        let mut request = client
            .post(app.url())
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], challenge);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["kind"], "unauthenticated");
    }
    // Other paths answer the quickstarts' JSON 404.
    let unknown = client
        .get(format!("{}/nope", app.base))
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.json::<Value>().await.expect("json")["kind"],
        "not_found"
    );
    assert_eq!(app.recorded("requests").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_failed_calls_give_units_back_and_generate_is_charged_what_it_produced() {
    let app = McpApp::start(5).await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(app.url()).auth_header(token("mcp-rmcp")),
    );
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), 5, "three tools and the two recovery tools");
    let call = |name: &str, args: Value| {
        let params = CallToolRequestParams::new(name.to_owned())
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        client.call_tool(params)
    };
    // A failing tool (`isError: true`) gives its 2 units back, every time.
    for _ in 0..4 {
        let failed = call("summarize", json!({ "text": "" }))
            .await
            .expect("call");
        assert_eq!(failed.is_error, Some(true));
    }
    for _ in 0..2 {
        let ok = call("summarize", json!({ "text": "a b" }))
            .await
            .expect("call");
        assert_eq!(ok.is_error, Some(false));
        assert!(ok.structured_content.is_none());
    }
    let gate = call("summarize", json!({ "text": "a b" }))
        .await
        .expect("call");
    assert_eq!(
        gate.structured_content.as_ref().map(|s| s["kind"].clone()),
        Some(json!("payment_required"))
    );
    // By consumption: 5 reserved, 3 produced, 3 charged; then 3 reserved of 2 left: the gate.
    let generated = call("generate", json!({ "max_tokens": 5, "tokens": 3 }))
        .await
        .expect("call");
    assert_eq!(generated.is_error, Some(false));
    let too_many = call("generate", json!({ "max_tokens": 3, "tokens": 3 }))
        .await
        .expect("call");
    assert_eq!(
        too_many
            .structured_content
            .as_ref()
            .map(|s| s["remaining"].clone()),
        Some(json!(2))
    );
    // A JSON-RPC error from the tool (bad arguments) charges nothing either.
    assert!(call("generate", json!({ "max_tokens": 0, "tokens": 1 }))
        .await
        .is_err());
    let _ = client.cancel().await;
    assert_eq!(app.recorded("requests").await, 4);
    assert_eq!(app.recorded("tokens").await, 3);
    app.stop().await;
}

/// `initialize` over raw HTTP as `sub`, or with `session` a notification in it: the
/// status and the session id the server named.
async fn mcp_post(
    app: &McpApp,
    sub: &str,
    session: Option<&str>,
    method: &str,
) -> (StatusCode, Option<String>, Value) {
    let body = if method == "initialize" {
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": { "name": "raw", "version": "1" } } })
    } else {
        json!({ "jsonrpc": "2.0", "method": method })
    };
    let mut request = reqwest::Client::new()
        .post(app.url())
        .bearer_auth(token(sub))
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    (
        status,
        id,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_belong_to_who_opened_them_and_are_capped_per_identity() {
    let app = McpApp::start(5).await;
    // One identity opens sessions until the cap (8): the ninth is a 429 JSON.
    let mut mine = Vec::new();
    for _ in 0..8 {
        let (status, id, _) = mcp_post(&app, "opener", None, "initialize").await;
        assert_eq!(status, StatusCode::OK);
        mine.push(id.expect("a session id"));
    }
    let (status, id, body) = mcp_post(&app, "opener", None, "initialize").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["kind"], "too_many_sessions");
    assert!(id.is_none(), "no ninth session");
    // Another identity is not affected by that cap...
    let (status, _, _) = mcp_post(&app, "someone-else", None, "initialize").await;
    assert_eq!(status, StatusCode::OK);

    // ...and cannot use, nor close, the opener's sessions.
    let theirs = mine[0].clone();
    let (status, _, body) = mcp_post(
        &app,
        "someone-else",
        Some(&theirs),
        "notifications/initialized",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["kind"], "session_not_found");
    let deleted = reqwest::Client::new()
        .delete(app.url())
        .bearer_auth(token("someone-else"))
        .header("mcp-session-id", &theirs)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NOT_FOUND);
    let (status, _, _) = mcp_post(&app, "opener", Some(&theirs), "notifications/initialized").await;
    assert_eq!(status, StatusCode::ACCEPTED, "the owner's session lives on");

    // Closing one of its own gives the opener a place back.
    let closed = reqwest::Client::new()
        .delete(app.url())
        .bearer_auth(token("opener"))
        .header("mcp-session-id", &theirs)
        .send()
        .await
        .expect("delete");
    assert!(closed.status().is_success(), "{}", closed.status());
    let (status, id, _) = mcp_post(&app, "opener", None, "initialize").await;
    assert_eq!(status, StatusCode::OK);
    assert!(id.is_some());
    app.stop().await;
}
