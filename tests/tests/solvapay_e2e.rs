//! Over loopback: quickstart router → engine → SolvaPay client → dev server. A new user
//! goes from free allowance to 402 (with the dev server's checkout URL) to paying at the
//! checkout page, and the signed webhook unlocks them long before the cache TTL.

use std::time::{Duration, Instant};

use paywall_examples::config::QuickstartConfig;
use paywall_local::Lookup;
use paywall_tests::*;
use quickstart_axum as quickstart;
use reqwest::StatusCode;
use serde_json::Value;

async fn hello(client: &reqwest::Client, base: &str, sub: &str) -> (StatusCode, Value) {
    let response = client
        .get(format!("{base}/api/hello"))
        .bearer_auth(token(sub))
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_then_402_then_dev_checkout_then_webhook_unlocks_before_the_ttl() {
    let (app_listener, dev_listener) = (loopback().await, loopback().await);
    let app_base = format!("http://{}", app_listener.local_addr().expect("addr"));
    let (dev, ledger) = dev_server(
        dev_listener,
        "prd_quickstart",
        3,
        Some(format!("{app_base}/webhooks/solvapay")),
    );
    let config = QuickstartConfig {
        jwt_secret: Some(SECRET.into()),
        solvapay: Some(solvapay_config(&dev.base)),
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        // Only the webhook can unlock the customer within this test.
        limits_ttl: Duration::from_secs(3600),
        ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
    };
    let app = quickstart::build(&config, &app_base).expect("build");
    assert!(
        app.local.is_none(),
        "SOLVAPAY_SECRET_KEY selects the SolvaPay backend"
    );
    let served = Served::start(app_listener, app.router.clone());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let mut customer = String::new();
    for _ in 0..3 {
        let (status, body) = hello(&client, &app_base, "user-sp").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        customer = body["customerRef"]
            .as_str()
            .expect("customerRef")
            .to_owned();
    }
    let record = ledger
        .find_customer(Lookup::ExternalRef("user-sp"))
        .await
        .expect("ledger")
        .expect("the dev server has the customer");
    assert_eq!(record.reference, customer);
    assert!(
        record
            .email
            .as_deref()
            .is_some_and(|e| e.ends_with("@auto-created.local")),
        "no email in the token: SolvaPay's placeholder"
    );

    let (status, body) = hello(&client, &app_base, "user-sp").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["kind"], "payment_required");
    let checkout = body["checkoutUrl"]
        .as_str()
        .expect("checkoutUrl")
        .to_owned();
    assert!(
        checkout.starts_with(&format!("{}/checkout/cs_", dev.base)),
        "{checkout}"
    );

    let page = client.get(&checkout).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("<form"));
    let paid = client.post(&checkout).send().await.expect("pay");
    assert_eq!(paid.status(), StatusCode::OK);

    // The webhook arrives within moments; the TTL is an hour.
    let started = Instant::now();
    loop {
        let (status, _) = hello(&client, &app_base, "user-sp").await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not unlocked by the webhook"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    served.stop().await;
    let report = app.paywall.shutdown(Duration::from_secs(10)).await;
    assert!(report.is_complete(), "{report:?}");
    let rows = ledger.ledger(Some(&customer)).await.expect("ledger");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].units, 4, "3 free + 1 paid: {rows:?}");
    assert!(rows
        .iter()
        .all(|r| r.meter == "requests" && r.product_ref == "prd_quickstart"));
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_webhooks_are_refused_and_change_nothing() {
    let app_listener = loopback().await;
    let app_base = format!("http://{}", app_listener.local_addr().expect("addr"));
    let (dev, _ledger) = dev_server(loopback().await, "prd_quickstart", 1, None);
    let config = QuickstartConfig {
        jwt_secret: Some(SECRET.into()),
        solvapay: Some(solvapay_config(&dev.base)),
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        limits_ttl: Duration::from_secs(3600),
        ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
    };
    let app = quickstart::build(&config, &app_base).expect("build");
    let served = Served::start(app_listener, app.router.clone());
    let client = reqwest::Client::new();
    let body = r#"{"id":"evt_x","type":"purchase.created","data":{"customerRef":"cus_x"}}"#;
    let now = paywall_jwt::unix_now();
    for header in [
        None,
        Some("t=1,v1=00".to_owned()),
        Some(paywall_solvapay::webhook::signature_header(
            "whsec_wrong",
            now,
            body.as_bytes(),
        )),
        Some(paywall_solvapay::webhook::signature_header(
            WEBHOOK_SECRET,
            now - 3600,
            body.as_bytes(),
        )),
    ] {
        let mut request = client
            .post(format!("{app_base}/webhooks/solvapay"))
            .body(body);
        if let Some(header) = header {
            request = request.header("sv-signature", header);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["kind"], "invalid_signature");
    }
    let good = paywall_solvapay::webhook::signature_header(WEBHOOK_SECRET, now, body.as_bytes());
    let response = client
        .post(format!("{app_base}/webhooks/solvapay"))
        .header("sv-signature", good)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    served.stop().await;
    dev.stop().await;
}
