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

async fn state(app: &App, sub: &str) -> Value {
    let (status, _, body) = billing_call(app, Method::GET, "/api/billing", Some(sub), None).await;
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
        let (_, _, mine) = billing_call(&app, Method::GET, &path, Some(&alice), None).await;
        assert_eq!(mine["customerRef"], customer.as_str());
        let (status, _, refused) = billing_call(
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
        let (status, _, checkout) = billing_call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some(&alice),
            Some(json!({ "product": "prd_quickstart", "returnUrl": "https://app.example/done" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{checkout}");
        pay_locally(checkout["checkoutUrl"].as_str().expect("checkoutUrl")).await;
        let paid = state(&app, &alice).await;
        assert_ne!(
            paid["products"][0]["plan"], before["products"][0]["plan"],
            "{paid}"
        );
        assert_ne!(paid["products"][0]["allowance"], 5, "{paid}");
        let (_, _, purchases) = billing_call(
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
        let (status, _, portal) = billing_call(
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
        let (status, _, body) = billing_call(&app, Method::POST, &cancel, Some(&bob), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["kind"], "not_found");
        let (status, _, body) = billing_call(&app, Method::POST, &cancel, Some(&alice), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["purchase"]["status"], "cancelled");
        let after = state(&app, &alice).await;
        assert_eq!(
            after["products"][0]["plan"], before["products"][0]["plan"],
            "{after}"
        );

        // Errors are JSON: no token, unknown product, bad JSON, unknown route.
        let (status, challenge, body) =
            billing_call(&app, Method::GET, "/api/billing", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        assert_eq!(body["kind"], "unauthenticated");
        let (status, _, body) = billing_call(
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
            billing_call(&app, Method::GET, "/api/billing/nope", Some(&alice), None).await;
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

        let (status, _, checkout) = billing_call(
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

        let (_, _, purchases) = billing_call(
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
        let (status, _, portal) = billing_call(
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
        let (status, _, _) = billing_call(&app, Method::POST, &cancel, Some(&bob), None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "never another customer's purchase"
        );
        let (status, _, body) = billing_call(&app, Method::POST, &cancel, Some(&alice), None).await;
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
