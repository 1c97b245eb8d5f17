//! The routes of SolvaPay's React components through SolvaPay's API (the dev server),
//! both adapters: the catalogue, activation, checkout, cancel and reactivate forwarded
//! for the caller's customer only, and the card-payment routes forwarded and answered
//! 501 `unsupported` (the dev server simulates no card processor).

use std::time::Duration;

use paywall_examples::config::QuickstartConfig;
use paywall_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_solvapay_the_calls_are_forwarded_for_the_callers_customer() {
    let (dev, _ledger) = dev_server(loopback().await, "prd_quickstart", 3, None);
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        limits_ttl: Duration::from_millis(200),
        ..quickstart_config(3)
    };
    for app in both_apps(config).await {
        let (alice, bob) = (
            format!("rs-alice-{}", app.name),
            format!("rs-bob-{}", app.name),
        );
        let get = Method::GET;
        let post = Method::POST;
        let merchant = ok(&app, get.clone(), "merchant", &alice, None).await;
        assert!(merchant["displayName"].is_string(), "{merchant}");
        let plans = ok(
            &app,
            get.clone(),
            "list-plans?productRef=prd_quickstart",
            &alice,
            None,
        )
        .await;
        let plans = plans["plans"].as_array().cloned().unwrap_or_default();
        let paid = plans
            .iter()
            .find(|p| p["requiresPayment"] == true)
            .expect("paid plan")
            .clone();
        let product = ok(
            &app,
            get.clone(),
            "get-product?productRef=prd_quickstart",
            &alice,
            None,
        )
        .await;
        assert_eq!(product["reference"], "prd_quickstart");
        let balance = ok(&app, get.clone(), "customer-balance", &alice, None).await;
        assert_eq!(balance["displayExchangeRate"], 1, "{balance}");

        let activation = ok(
            &app,
            post.clone(),
            "activate-plan",
            &alice,
            Some(json!({"productRef": "prd_quickstart", "planRef": paid["reference"]})),
        )
        .await;
        assert_eq!(activation["status"], "payment_required", "{activation}");

        let session = ok(
            &app,
            post.clone(),
            "create-checkout-session",
            &alice,
            Some(json!({})),
        )
        .await;
        let url = session["checkoutUrl"].as_str().expect("checkoutUrl");
        assert!(
            url.starts_with(&format!("{}/checkout/cs_", dev.base)),
            "{url}"
        );
        pay_locally(url).await;
        tokio::time::sleep(Duration::from_millis(300)).await; // past the limits TTL
        let bought = ok(&app, get.clone(), "check-purchase", &alice, None).await;
        let info = &bought["purchases"][0];
        assert!(info["amount"].as_u64() > Some(0), "{bought}");
        assert!(info["productName"].is_string(), "{bought}");
        let by_ref = json!({ "purchaseRef": info["reference"] });
        let (status, _) = react(
            &app,
            post.clone(),
            "cancel-renewal",
            &bob,
            Some(by_ref.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        ok(
            &app,
            post.clone(),
            "cancel-renewal",
            &alice,
            Some(by_ref.clone()),
        )
        .await;
        let (status, _) = react(
            &app,
            post.clone(),
            "reactivate-renewal",
            &bob,
            Some(by_ref.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let reactivated = ok(
            &app,
            post.clone(),
            "reactivate-renewal",
            &alice,
            Some(by_ref),
        )
        .await;
        assert_eq!(reactivated["status"], "active", "{reactivated}");

        // The dev server takes no card: forwarded, and answered 501 `unsupported`.
        money_routes_are_unsupported(&app, &alice).await;
        app.stop().await;
    }
    // What the dev server does not simulate is a clear JSON error, never "no route".
    for (method, path) in [
        (Method::POST, "/v1/sdk/payment-intents"),
        (Method::POST, "/v1/sdk/user-info"),
        (Method::POST, "/v1/sdk/products"),
        (Method::GET, "/v1/sdk/platform-config"),
    ] {
        let answer = reqwest::Client::new()
            .request(method, format!("{}{path}", dev.base))
            .bearer_auth(DEV_KEY)
            .json(&json!({}))
            .send()
            .await
            .expect("dev server");
        assert_eq!(answer.status(), StatusCode::NOT_IMPLEMENTED, "{path}");
        let body: serde_json::Value = answer.json().await.expect("json");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("not simulated")),
            "{path}: {body}"
        );
    }
    dev.stop().await;
}
