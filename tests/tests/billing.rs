//! Billing routes for the application's frontend (`paywall::BillingRoutes`, mounted at
//! `/api/billing` by both quickstarts): the caller's state before and after usage,
//! checkout → pay → the purchase and its allowance, the portal, cancelling (never
//! another customer's), customer references in the query or body ignored or refused,
//! and no secret in any answer; on the embedded backend and through SolvaPay's API
//! (the dev server), over real sockets, on both adapters.

use std::time::Duration;

use paywall_examples::config::QuickstartConfig;
use paywall_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// One billing call: status, `WWW-Authenticate`, body.
async fn call(
    app: &App,
    method: Method,
    path: &str,
    sub: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", app.base));
    if let Some(sub) = sub {
        request = request.bearer_auth(token(sub));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    assert!(!text.contains(DEV_KEY), "the secret key leaked: {text}");
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn state(app: &App, sub: &str) -> Value {
    let (status, _, body) = call(app, Method::GET, "/api/billing", Some(sub), None).await;
    assert_eq!(status, StatusCode::OK, "{}: {body}", app.name);
    body
}

async fn hello(app: &App, sub: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}/api/hello", app.base))
        .bearer_auth(token(sub))
        .send()
        .await
        .expect("send")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_backend_on_both_adapters() {
    for app in both_apps(quickstart_config(5)).await {
        let (alice, bob) = (format!("alice-{}", app.name), format!("bob-{}", app.name));
        let before = state(&app, &alice).await;
        let customer = before["customerRef"]
            .as_str()
            .expect("customerRef")
            .to_owned();
        assert!(customer.starts_with("cus_"));
        let product = &before["products"][0];
        assert_eq!(product["product"], "prd_quickstart");
        assert_eq!(product["remaining"], 5);
        assert_eq!(product["allowance"], 5);
        assert_eq!(product["withinLimits"], true);
        assert!(product["resetsAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert_eq!(before["credits"], Value::Null);

        // Every admitted request shows at once.
        assert_eq!(hello(&app, &alice).await, StatusCode::OK);
        assert_eq!(hello(&app, &alice).await, StatusCode::OK);
        assert_eq!(state(&app, &alice).await["products"][0]["remaining"], 3);

        // The caller is the token's: a customer in the query is ignored, in a body refused.
        let bob_ref = state(&app, &bob).await["customerRef"].clone();
        let path = format!(
            "/api/billing?customerRef={}",
            bob_ref.as_str().unwrap_or_default()
        );
        let (_, _, mine) = call(&app, Method::GET, &path, Some(&alice), None).await;
        assert_eq!(mine["customerRef"], customer.as_str());
        let (status, _, refused) = call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some(&alice),
            Some(json!({ "product": "prd_quickstart", "customerRef": bob_ref })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["kind"], "bad_request");

        // Checkout → pay → the state shows the paid plan and its allowance.
        let (status, _, checkout) = call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some(&alice),
            Some(json!({ "product": "prd_quickstart", "returnUrl": "https://app.example/done" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{checkout}");
        pay_locally(
            &app.base,
            checkout["checkoutUrl"].as_str().expect("checkoutUrl"),
        )
        .await;
        let paid = state(&app, &alice).await;
        assert_ne!(
            paid["products"][0]["plan"], before["products"][0]["plan"],
            "{paid}"
        );
        assert_ne!(paid["products"][0]["allowance"], 5, "{paid}");
        let (_, _, purchases) = call(
            &app,
            Method::GET,
            "/api/billing/purchases",
            Some(&alice),
            None,
        )
        .await;
        let purchase = purchases["purchases"][0].clone();
        assert_eq!(purchase["status"], "active", "{purchases}");
        let reference = purchase["reference"]
            .as_str()
            .expect("reference")
            .to_owned();

        // The portal lists it.
        let (status, _, portal) = call(
            &app,
            Method::POST,
            "/api/billing/portal",
            Some(&alice),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{portal}");
        let page = reqwest::get(portal["url"].as_str().expect("url"))
            .await
            .expect("portal");
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.expect("html").contains(&reference));
        // Its cancel button acts only on the session customer's purchases.
        let foreign = reqwest::Client::new()
            .post(format!("{}/cancel", portal["url"].as_str().expect("url")))
            .form(&[("purchase", "pur_someone_elses")])
            .send()
            .await
            .expect("portal cancel");
        assert_eq!(foreign.status(), StatusCode::NOT_FOUND);

        // Bob cannot cancel it; Alice can, and is back on the free plan.
        let cancel = format!("/api/billing/purchases/{reference}/cancel");
        let (status, _, body) = call(&app, Method::POST, &cancel, Some(&bob), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["kind"], "not_found");
        let (status, _, body) = call(&app, Method::POST, &cancel, Some(&alice), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["purchase"]["status"], "cancelled");
        let after = state(&app, &alice).await;
        assert_eq!(
            after["products"][0]["plan"], before["products"][0]["plan"],
            "{after}"
        );

        // Errors are JSON: no token, unknown product, bad JSON, unknown route.
        let (status, challenge, body) = call(&app, Method::GET, "/api/billing", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        assert_eq!(body["kind"], "unauthenticated");
        let (status, _, body) = call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some(&alice),
            Some(json!({ "product": "prd_unknown" })),
        )
        .await;
        assert_eq!(
            (status, body["kind"].clone()),
            (StatusCode::NOT_FOUND, json!("not_found"))
        );
        let bad = reqwest::Client::new()
            .post(format!("{}/api/billing/checkout", app.base))
            .bearer_auth(token(&alice))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("send");
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let oversized = reqwest::Client::new()
            .post(format!("{}/api/billing/checkout", app.base))
            .bearer_auth(token(&alice))
            .body(format!(r#"{{"product":"{}"}}"#, "x".repeat(20 * 1024)))
            .send()
            .await
            .expect("send");
        assert_eq!(
            oversized.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            app.name
        );
        assert_eq!(
            oversized.json::<Value>().await.expect("json")["kind"],
            "payload_too_large"
        );
        assert_eq!(
            bad.json::<Value>().await.expect("json")["kind"],
            "bad_request"
        );
        let (status, _, body) =
            call(&app, Method::GET, "/api/billing/nope", Some(&alice), None).await;
        assert_eq!(
            (status, body["kind"].clone()),
            (StatusCode::NOT_FOUND, json!("not_found"))
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_solvapay_and_the_dev_server_on_both_adapters() {
    let (dev, _ledger) = dev_server(loopback().await, "prd_quickstart", 3, None);
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        limits_ttl: Duration::from_millis(200),
        ..quickstart_config(3)
    };
    for app in both_apps(config).await {
        let (alice, bob) = (
            format!("sp-alice-{}", app.name),
            format!("sp-bob-{}", app.name),
        );
        let before = state(&app, &alice).await;
        assert_eq!(before["products"][0]["remaining"], 3, "{before}");
        assert_eq!(hello(&app, &alice).await, StatusCode::OK);
        assert_eq!(state(&app, &alice).await["products"][0]["remaining"], 2);
        assert_eq!(before["credits"]["balance"], 0, "the dev server's balance");

        let (status, _, checkout) = call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some(&alice),
            Some(json!({ "product": "prd_quickstart" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{checkout}");
        let url = checkout["checkoutUrl"].as_str().expect("checkoutUrl");
        assert!(
            url.starts_with(&format!("{}/checkout/cs_", dev.base)),
            "{url}"
        );
        let paid = reqwest::Client::new().post(url).send().await.expect("pay");
        assert_eq!(paid.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await; // past the limits TTL
        let after = state(&app, &alice).await;
        // SolvaPay's limits answer names the plan and what is left (no allowance).
        assert_ne!(
            after["products"][0]["plan"], before["products"][0]["plan"],
            "{after}"
        );
        assert!(
            after["products"][0]["remaining"].as_u64() > Some(2),
            "{after}"
        );

        let (_, _, purchases) = call(
            &app,
            Method::GET,
            "/api/billing/purchases",
            Some(&alice),
            None,
        )
        .await;
        let reference = purchases["purchases"][0]["reference"]
            .as_str()
            .unwrap_or_else(|| panic!("{purchases}"))
            .to_owned();
        let (status, _, portal) = call(
            &app,
            Method::POST,
            "/api/billing/portal",
            Some(&alice),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{portal}");
        assert!(portal["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&dev.base)));

        let cancel = format!("/api/billing/purchases/{reference}/cancel");
        let (status, _, _) = call(&app, Method::POST, &cancel, Some(&bob), None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "never another customer's purchase"
        );
        let (status, _, body) = call(&app, Method::POST, &cancel, Some(&alice), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["purchase"]["status"], "cancelled");
        app.stop().await;
    }
    dev.stop().await;
}

/// A conformance case: name, method, path, with a token, body, status.
type Case = (
    &'static str,
    Method,
    &'static str,
    bool,
    Option<&'static str>,
    u16,
);

/// `ps_` portal sessions are random per call: written as a placeholder.
fn without_sessions(mut seen: Seen) -> Seen {
    while let Some(at) = seen.body.find("/portal/ps_") {
        let start = at + "/portal/".len();
        let end = seen.body[start..]
            .find('"')
            .map_or(seen.body.len(), |i| start + i);
        seen.body.replace_range(start..end, "{session}");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_answer_the_billing_routes_byte_identically() {
    let servers = both_apps(quickstart_config(3)).await;
    let mut customers = Vec::new();
    for server in &servers {
        customers.push(
            state(server, "conf-billing").await["customerRef"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default(),
        );
    }
    let auth = vec![("authorization", format!("Bearer {}", token("conf-billing")))];
    let scenarios: [Case; 11] = [
        ("state", Method::GET, "/api/billing", true, None, 200),
        (
            "state, trailing slash",
            Method::GET,
            "/api/billing/",
            true,
            None,
            200,
        ),
        (
            "state without a token",
            Method::GET,
            "/api/billing",
            false,
            None,
            401,
        ),
        (
            "checkout",
            Method::POST,
            "/api/billing/checkout",
            true,
            Some(r#"{"product":"prd_quickstart"}"#),
            200,
        ),
        (
            "checkout, unknown product",
            Method::POST,
            "/api/billing/checkout",
            true,
            Some(r#"{"product":"prd_nope"}"#),
            404,
        ),
        (
            "checkout, not JSON",
            Method::POST,
            "/api/billing/checkout",
            true,
            Some("product=prd_quickstart"),
            400,
        ),
        (
            "checkout naming a customer",
            Method::POST,
            "/api/billing/checkout",
            true,
            Some(r#"{"product":"prd_quickstart","externalRef":"someone"}"#),
            400,
        ),
        (
            "portal",
            Method::POST,
            "/api/billing/portal",
            true,
            None,
            200,
        ),
        (
            "purchases",
            Method::GET,
            "/api/billing/purchases",
            true,
            None,
            200,
        ),
        (
            "cancel someone else's",
            Method::POST,
            "/api/billing/purchases/pur_not_yours/cancel",
            true,
            None,
            404,
        ),
        (
            "wrong method",
            Method::DELETE,
            "/api/billing",
            true,
            None,
            405,
        ),
    ];
    for (name, method, path, with_token, body, status) in scenarios {
        let headers = if with_token { auth.clone() } else { Vec::new() };
        let mut seen = Vec::new();
        for (server, customer) in servers.iter().zip(&customers) {
            let (answer, _) = send(server, method.clone(), path, &headers, body).await;
            seen.push(without_sessions(normalize(
                answer,
                server,
                &[customer.as_str()],
            )));
        }
        let seen: [Seen; 2] = seen.try_into().expect("two");
        assert_same(name, &seen, status);
    }
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_meter_a_product_is_priced_on_shows_what_was_used() {
    let mut config = quickstart_config(50);
    config.generate_delay = Duration::from_millis(1);
    for app in both_apps(config).await {
        let streamer = format!("streamer-{}", app.name);
        let before = state(&app, &streamer).await;
        let meters: Vec<&str> = before["products"]
            .as_array()
            .expect("products")
            .iter()
            .filter_map(|p| p["meter"].as_str())
            .collect();
        assert_eq!(meters, ["requests", "tokens"], "{}: {before}", app.name);
        let tokens_before = before["products"][1]["remaining"]
            .as_u64()
            .expect("remaining");

        let streamed = reqwest::Client::new()
            .post(format!("{}/api/generate", app.base))
            .bearer_auth(token(&streamer))
            .json(&json!({ "max_tokens": 10, "tokens": 7 }))
            .send()
            .await
            .expect("generate");
        assert_eq!(streamed.status(), StatusCode::OK);
        let _ = streamed.text().await.expect("the whole stream");
        assert_eq!(hello(&app, &streamer).await, StatusCode::OK);

        // Settled when the stream ended: the tokens meter moved by what was streamed,
        // the requests meter by the one call.
        let mut after = Value::Null;
        for _ in 0..50 {
            after = state(&app, &streamer).await;
            if after["products"][1]["remaining"].as_u64() == Some(tokens_before - 7) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            after["products"][1]["remaining"].as_u64(),
            Some(tokens_before - 7),
            "{after}"
        );
        assert_eq!(after["products"][1]["meter"], "tokens");
        assert_eq!(
            after["products"][0]["remaining"].as_u64(),
            before["products"][0]["remaining"].as_u64().map(|r| r - 1),
            "{after}"
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_caller_is_answered_before_its_body_is_read() {
    for app in both_apps(quickstart_config(5)).await {
        let addr = app
            .base
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
            .expect("addr");
        let name = app.name;
        // 50 checkouts without a token whose bodies never come: each is a 401 at once.
        let answers = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let streams: Vec<std::net::TcpStream> = (0..50)
                .map(|_| {
                    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
                    stream
                        .write_all(
                            b"POST /api/billing/checkout HTTP/1.1\r\nHost: x\r\n\
                              Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n{",
                        )
                        .expect("write");
                    stream
                })
                .collect();
            streams
                .iter()
                .filter(|stream| {
                    let mut stream = *stream;
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut head = [0u8; 12];
                    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 401")
                })
                .count()
        })
        .await
        .expect("stalled callers");
        assert_eq!(
            answers, 50,
            "{name}: every one answered 401 without its body"
        );
        app.stop().await;
    }
}

/// The security headers of a page at `url`.
async fn assert_page_headers(url: &str) {
    let page = reqwest::Client::new().get(url).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK, "{url}");
    let headers = page.headers();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .is_ok_and(|csp| csp.contains("frame-ancestors 'none'")),
        "{url}"
    );
    assert_eq!(headers["x-frame-options"], "DENY", "{url}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{url}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{url}");
    assert_eq!(headers["cache-control"], "no-store", "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_refuses_framing_sniffing_referrers_and_caches() {
    for app in both_apps(quickstart_config(5)).await {
        let (_, _, checkout) = call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some("framed"),
            Some(json!({ "product": "prd_quickstart" })),
        )
        .await;
        assert_page_headers(checkout["checkoutUrl"].as_str().expect("checkoutUrl")).await;
        let (_, _, portal) = call(
            &app,
            Method::POST,
            "/api/billing/portal",
            Some("framed"),
            None,
        )
        .await;
        assert_page_headers(portal["url"].as_str().expect("portal url")).await;
        app.stop().await;
    }
    // The dev server's checkout page too.
    let (dev, _ledger) = dev_server(loopback().await, "prd_quickstart", 0, None);
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        ..quickstart_config(0)
    };
    let [axum_app, actix_app] = both_apps(config).await;
    let (_, _, checkout) = call(
        &axum_app,
        Method::POST,
        "/api/billing/checkout",
        Some("framed-at-dev"),
        Some(json!({ "product": "prd_quickstart" })),
    )
    .await;
    assert_page_headers(checkout["checkoutUrl"].as_str().expect("checkoutUrl")).await;
    axum_app.stop().await;
    actix_app.stop().await;
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_returns_only_to_an_allowed_origin() {
    for app in both_apps(quickstart_config(5)).await {
        for (url, allowed) in [
            ("https://app.example/done", true),
            ("https://evil.example/phish", false),
            ("https://app.example.evil.example/", false),
            ("http://app.example/done", false),
        ] {
            let (status, _, body) = call(
                &app,
                Method::POST,
                "/api/billing/checkout",
                Some("returner"),
                Some(json!({ "product": "prd_quickstart", "returnUrl": url })),
            )
            .await;
            let expected = if allowed {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(status, expected, "{} {url}: {body}", app.name);
        }
        app.stop().await;
    }
    // By default, the app's own origin only.
    let own = QuickstartConfig {
        return_origins: Vec::new(),
        ..quickstart_config(5)
    };
    for app in both_apps(own).await {
        let home = format!("{}/done", app.base);
        for (url, expected) in [
            (home.as_str(), StatusCode::OK),
            ("https://app.example/done", StatusCode::BAD_REQUEST),
        ] {
            let (status, _, body) = call(
                &app,
                Method::POST,
                "/api/billing/checkout",
                Some("returner"),
                Some(json!({ "product": "prd_quickstart", "returnUrl": url })),
            )
            .await;
            assert_eq!(status, expected, "{} {url}: {body}", app.name);
        }
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_form_refuses_a_post_from_another_site() {
    for app in both_apps(quickstart_config(5)).await {
        let (_, _, checkout) = call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some("target"),
            Some(json!({ "product": "prd_quickstart" })),
        )
        .await;
        let url = checkout["checkoutUrl"]
            .as_str()
            .expect("checkoutUrl")
            .to_owned();
        let form: Vec<(String, String)> = reqwest::Url::parse(&url)
            .expect("url")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let post = |origin: String| {
            reqwest::Client::new()
                .post(format!("{}/checkout", app.base))
                .header("origin", origin)
                .form(&form)
                .send()
        };
        let forged = post("https://evil.example".into()).await.expect("send");
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "{}", app.name);
        let own = post(app.base.clone()).await.expect("send");
        assert_eq!(own.status(), StatusCode::OK, "{}", app.name);
        app.stop().await;
    }
}
