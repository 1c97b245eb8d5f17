//! MCP servers that agents authorize and pay through on their own (`mcp-quickstart`
//! behind an OpenID provider): the official MCP client (`@modelcontextprotocol/sdk`),
//! given only the MCP URL, a client id and secret and the expected issuer, finds the
//! authorization server through the protected resource metadata (RFC 9728) named in
//! the 401, gets a client-credentials token for the MCP URL from oidc-provider (RFC
//! 8707), is admitted, meets the gate, calls `upgrade`, pays on the link and is admitted
//! again, on the embedded backend and on the SolvaPay backend (the dev server, with its
//! webhook). A billing backend that goes down leaves identity, `tools/list` and free
//! tools working.

use base64::Engine as _;
use http::StatusCode;
use paywall_examples::config::QuickstartConfig;
use paywall_tests::*;
use serde_json::{json, Value};

fn summarize(text: &str) -> Value {
    json!({ "call": "summarize", "args": { "text": text } })
}

fn admitted(result: &Value) -> bool {
    result["isError"] == false && result["structuredContent"].is_null()
}

/// The quickstart's configuration behind `provider`: tokens from its issuer, for the
/// MCP URL as audience (and resource).
fn oauth_config(provider: &OidcProvider, base: &str, free_units: u64) -> QuickstartConfig {
    QuickstartConfig {
        jwt_secret: None,
        oidc_issuer: Some(provider.issuer.clone()),
        jwt_audience: Some(format!("{base}/mcp")),
        ..quickstart_config(free_units)
    }
}

/// The client's own OAuth discovery, as client `client-<n>`.
fn oauth(provider: &OidcProvider, client: u32) -> Value {
    json!({
        "clientId": format!("client-{client}"),
        "clientSecret": "secret",
        "expectedIssuer": provider.issuer,
    })
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

enum Backend {
    Embedded,
    /// The dev server, stopped with the app.
    DevServer(Served),
}

/// The MCP quickstart behind `provider`, on the embedded backend or on the dev server
/// (whose signed webhooks reach the app).
async fn start(provider: &OidcProvider, dev: bool) -> (McpApp, Backend) {
    let listener = loopback().await;
    if !dev {
        let app = McpApp::start_on(listener, |base| oauth_config(provider, base, 4), None).await;
        return (app, Backend::Embedded);
    }
    let app_base = format!("http://{}", listener.local_addr().expect("addr"));
    let dev_listener = loopback().await;
    let dev_base = format!("http://{}", dev_listener.local_addr().expect("addr"));
    let (served, ledger) = dev_server(
        dev_listener,
        "prd_quickstart",
        4,
        Some(format!("{app_base}/webhooks/solvapay")),
    );
    let app = McpApp::start_on(
        listener,
        |base| QuickstartConfig {
            solvapay: Some(solvapay_config(&dev_base)),
            webhook_secret: Some(WEBHOOK_SECRET.into()),
            ..oauth_config(provider, base, 4)
        },
        Some(ledger),
    )
    .await;
    (app, Backend::DevServer(served))
}

async fn discovers_authorization_and_recovers_from_the_gate(dev: bool) {
    let provider = OidcProvider::start();
    let (app, backend) = start(&provider, dev).await;
    let report = official_client(
        &app.url(),
        json!({ "oauth": oauth(&provider, 7), "steps": [
            { "list": true },
            summarize("one two"),
            summarize("three four"),
            summarize("five"),
            { "call": "upgrade", "args": { "customerRef": "cus_somebody_else" } },
            { "call": "upgrade", "args": { "product": "prd_nope" } },
        ] }),
    )
    .await;
    let steps = report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    // The token the client got by itself: for this server, from the provider.
    let token = report["token"].as_str().expect("the client's own token");
    let claims = claims_of(token);
    assert_eq!(claims["aud"], app.url(), "{claims}");
    assert_eq!(claims["iss"], provider.issuer);
    assert_eq!(
        steps[0]["tools"],
        json!(["echo", "generate", "manage_account", "summarize", "upgrade"])
    );
    assert!(admitted(&steps[1]) && admitted(&steps[2]), "{report}");
    let gate = &steps[3];
    assert_eq!(
        gate["structuredContent"]["kind"], "payment_required",
        "{gate}"
    );
    assert!(
        gate["text"]
            .as_str()
            .is_some_and(|t| t.contains("`upgrade`")),
        "{gate}"
    );
    assert!(
        gate["structuredContent"]["checkoutUrl"].is_string(),
        "{gate}"
    );
    // `upgrade` acts for the token's caller, whatever the arguments name.
    let upgrade = &steps[4];
    assert_eq!(upgrade["isError"], false, "{upgrade}");
    assert_eq!(upgrade["structuredContent"]["product"], "prd_quickstart");
    let checkout = upgrade["structuredContent"]["checkoutUrl"]
        .as_str()
        .expect("a checkout link")
        .to_owned();
    assert!(upgrade["text"]
        .as_str()
        .is_some_and(|t| t.contains(&checkout)));
    assert!(!checkout.contains("somebody_else"), "{checkout}");
    let unknown = &steps[5];
    assert_eq!(unknown["isError"], true, "{unknown}");
    assert!(
        unknown["text"]
            .as_str()
            .is_some_and(|t| t.contains("prd_nope")),
        "{unknown}"
    );

    // Pay on the link `upgrade` gave; the next priced call is admitted.
    match &backend {
        Backend::Embedded => pay_locally(&checkout).await,
        Backend::DevServer(_) => {
            let paid = reqwest::Client::new()
                .post(&checkout)
                .send()
                .await
                .expect("pay");
            assert_eq!(paid.status(), StatusCode::OK);
        }
    }
    let mut after = Value::Null;
    for _ in 0..50 {
        // The dev server's webhook is delivered in the background.
        after = official_client(
            &app.url(),
            json!({ "oauth": oauth(&provider, 7), "steps": [
                summarize("paid for"),
                { "call": "manage_account" },
            ] }),
        )
        .await;
        if admitted(&after["steps"][0]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(admitted(&after["steps"][0]), "{after}");
    let account = &after["steps"][1];
    assert_eq!(account["isError"], false, "{account}");
    assert_eq!(account["structuredContent"]["product"], "prd_quickstart");
    assert!(
        account["structuredContent"]["remaining"].is_u64(),
        "{account}"
    );
    let structured = account["structuredContent"]
        .as_object()
        .expect("structured");
    assert!(
        structured.contains_key("plan") && structured.contains_key("customerUrl"),
        "{account}"
    );
    assert_eq!(
        app.recorded("requests").await,
        6,
        "two paid calls before, one after"
    );
    app.stop().await;
    if let Backend::DevServer(served) = backend {
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_authorizes_itself_upgrades_and_pays_on_the_embedded_backend() {
    discovers_authorization_and_recovers_from_the_gate(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_authorizes_itself_upgrades_and_pays_through_solvapay() {
    discovers_authorization_and_recovers_from_the_gate(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_401_names_the_metadata_and_the_metadata_names_the_issuer() {
    let provider = OidcProvider::start();
    let (app, _) = start(&provider, false).await;
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", app.base);
    let client = reqwest::Client::new();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("metadata");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let document: Value = response.json().await.expect("json");
        assert_eq!(document["resource"], app.url());
        assert_eq!(document["authorization_servers"], json!([provider.issuer]));
        assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    }
    let other = client
        .get(format!(
            "{}/.well-known/oauth-protected-resource/other",
            app.base
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        other.json::<Value>().await.expect("json")["kind"],
        "not_found"
    );

    // No token; a token of the provider for another resource (RFC 8707); a forgery.
    let elsewhere = provider.token(3, "RS256").await;
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": { "name": "curl", "version": "1" } } });
    for (token, error) in [
        (None, ""),
        (Some(elsewhere.as_str()), "error=\"invalid_token\", "),
        (Some("forged.token.value"), "error=\"invalid_token\", "),
    ] {
        let mut request = client
            .post(app.url())
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["www-authenticate"],
            format!("Bearer {error}resource_metadata=\"{metadata_url}\"").as_str()
        );
        let body: Value = response.json().await.expect("every 401 is JSON");
        assert_eq!(body["kind"], "unauthenticated");
    }
    assert_eq!(app.recorded("requests").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_billing_down_callers_connect_list_and_use_free_tools_but_priced_ones_wait() {
    let listener = loopback().await;
    let dev_listener = loopback().await;
    let dev_base = format!("http://{}", dev_listener.local_addr().expect("addr"));
    let (dev, ledger) = dev_server(dev_listener, "prd_quickstart", 5, None);
    let app = McpApp::start_on(
        listener,
        |_| QuickstartConfig {
            solvapay: Some(solvapay_config(&dev_base)),
            ..quickstart_config(5)
        },
        Some(ledger),
    )
    .await;
    let before = official_client(
        &app.url(),
        json!({ "token": token("mcp-before"), "steps": [summarize("while it is up")] }),
    )
    .await;
    assert!(admitted(&before["steps"][0]), "{before}");

    dev.stop().await; // the billing backend goes away mid-run
    let report = official_client(
        &app.url(),
        json!({ "token": token("mcp-newcomer"), "steps": [
            { "list": true },
            { "call": "echo", "args": { "text": "still here" } },
            summarize("not free"),
        ] }),
    )
    .await;
    let steps = report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("a valid token connects: {report}"))
        .clone();
    assert_eq!(
        steps[0]["tools"].as_array().map(Vec::len),
        Some(5),
        "{report}"
    );
    assert_eq!(steps[1]["text"], "still here");
    let priced = &steps[2];
    assert!(priced["text"].is_null(), "never run free: {priced}");
    assert_eq!(
        priced["rpcError"]["data"]["kind"], "billing_unavailable",
        "{priced}"
    );
    assert!(
        priced["rpcError"]["data"]["retryAfter"]
            .as_u64()
            .is_some_and(|s| s >= 1),
        "{priced}"
    );
    app.stop().await;
}
