//! SolvaPay webhooks as SolvaPay sends them: the envelope of the official SDK's
//! `WebhookEvent` (`packages/server/src/types/webhook.ts` in solvapay/solvapay-sdk:
//! `{id, type, created, api_version, data: {object, previous_attributes}, livemode,
//! request}`), every one of its `WebhookEventType`s, received by both quickstarts: the
//! events that change what a customer may do refresh that customer at once, every
//! other type is acknowledged and changes nothing, malformed envelopes are 400 and
//! never 500. End to end, the dev server's own envelopes unlock a customer who pays and
//! downgrade one who cancels within a second, across three instances on one Redis.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paywall_examples::config::QuickstartConfig;
use paywall_solvapay::webhook::{signature_header, SIGNATURE_HEADER};
use paywall_tests::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// `WebhookEventType` of the SDK's generated types, all 47.
const EVENT_TYPES: [&str; 47] = [
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "purchase.created",
    "purchase.activated",
    "purchase.updated",
    "purchase.trial_ending",
    "purchase.trial_converted",
    "purchase.suspended",
    "purchase.past_due",
    "purchase.cancellation_scheduled",
    "purchase.cancelled",
    "purchase.reactivated",
    "purchase.expired",
    "purchase.renewed",
    "purchase.renewal_reminder",
    "purchase.refunded",
    "purchase.plan_changed",
    "payment.succeeded",
    "payment.failed",
    "payment.refunded",
    "payment.refund_failed",
    "payment.refund_pending",
    "payment.canceled",
    "payment.disputed",
    "payment.dispute_closed",
    "payout.paid",
    "payout.failed",
    "checkout_session.created",
    "checkout_session.completed",
    "checkout_session.expired",
    "customer.credit.topped_up",
    "customer.credit.low_balance",
    "customer.credit.exhausted",
    "customer.credit.debited",
    "customer.credit.granted",
    "customer.credit.adjusted",
    "customer.credit.auto_topup_failed",
    "usage.charged",
    "usage.recorded",
    "usage.reset",
    "product.created",
    "product.updated",
    "product.archived",
    "plan.created",
    "plan.updated",
    "plan.archived",
];

/// The types the issue names as changing what a customer may do: each must refresh.
const MUST_REFRESH: [&str; 17] = [
    "purchase.created",
    "purchase.activated",
    "purchase.updated",
    "purchase.renewed",
    "purchase.plan_changed",
    "purchase.cancelled",
    "purchase.expired",
    "purchase.suspended",
    "purchase.past_due",
    "purchase.refunded",
    "customer.updated",
    "customer.deleted",
    "customer.credit.topped_up",
    "customer.credit.granted",
    "customer.credit.adjusted",
    "customer.credit.debited",
    "customer.credit.exhausted",
];

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The SDK's envelope for `kind` about `customer`: customers are the object, purchases
/// and everything else name the customer in `customerRef`.
fn envelope(kind: &str, customer: &str) -> Value {
    let object = if kind.starts_with("customer.") && !kind.starts_with("customer.credit.") {
        json!({ "id": customer, "created": now(), "product": null, "reference": customer,
                "name": null, "email": "a@example.com", "status": "active" })
    } else {
        json!({ "reference": "obj_1", "customerRef": customer, "status": "active",
                "productRef": "prd_quickstart", "amount": 1000, "currency": "USD" })
    };
    json!({
        "id": format!("evt_{}", kind.replace('.', "_")),
        "type": kind,
        "created": now(),
        "api_version": "2025-10-01",
        "data": { "object": object, "previous_attributes": null },
        "livemode": false,
        "request": { "id": null, "idempotency_key": null },
    })
}

async fn post_signed(base: &str, body: &str) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{base}/webhooks/solvapay"))
        .header("content-type", "application/json")
        .header(
            SIGNATURE_HEADER,
            signature_header(WEBHOOK_SECRET, now(), body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The customer reference the provider gave `sub` (from the app's billing state).
async fn customer_of(base: &str, sub: &str) -> String {
    let state: Value = client()
        .get(format!("{base}/api/billing"))
        .bearer_auth(token(sub))
        .send()
        .await
        .expect("billing state")
        .json()
        .await
        .expect("json");
    state["customerRef"]
        .as_str()
        .expect("customerRef")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_is_acknowledged_and_those_that_change_allowance_refresh_at_once() {
    let (dev, ledger) = dev_server(loopback().await, "prd_quickstart", 1, None);
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        ..quickstart_config(1)
    };
    for app in both_apps(config).await {
        for kind in EVENT_TYPES {
            // A customer at its limit, who then buys at the provider with no webhook
            // sent: only the envelope tells the app.
            let sub = format!("{}-{kind}", app.name);
            assert_eq!(hello(&client(), &app.base, &sub).await.0, StatusCode::OK);
            let customer = customer_of(&app.base, &sub).await;
            ledger
                .purchase(&customer, "prd_quickstart")
                .await
                .expect("purchase");

            let body = envelope(kind, &customer).to_string();
            let (status, answer) = post_signed(&app.base, &body).await;
            assert_eq!(status, StatusCode::OK, "{} {kind}: {answer}", app.name);
            let after = hello(&client(), &app.base, &sub).await.0;
            let refreshes = paywall_solvapay::webhook::ALLOWANCE_EVENTS.contains(&kind);
            if MUST_REFRESH.contains(&kind) {
                assert!(refreshes, "{kind} changes what a customer may do");
            }
            let expected = if refreshes {
                StatusCode::OK
            } else {
                StatusCode::PAYMENT_REQUIRED
            };
            assert_eq!(after, expected, "{} {kind}", app.name);
            // A replay of the same event id is harmless.
            assert_eq!(post_signed(&app.base, &body).await.0, StatusCode::OK);
        }

        // Malformed envelopes: 400 JSON, never 500.
        for body in [
            "not json",
            "[]",
            r#"{"id": "evt_x"}"#,
            r#"{"type": 5, "data": {}}"#,
            r#"{"type": "purchase.created", "data": {"object": "cus_1"}}"#,
            r#"{"type": "purchase.created", "data": {"object": {"customerRef": 7}}}"#,
        ] {
            let (status, answer) = post_signed(&app.base, body).await;
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::OK,
                "{} {body}: {status}",
                app.name
            );
            assert!(answer.is_object(), "{} {body}: a JSON answer", app.name);
        }
        // Unsigned, stale, tampered: refused.
        let body = envelope("purchase.created", "cus_nobody").to_string();
        let unsigned = client()
            .post(format!("{}/webhooks/solvapay", app.base))
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(unsigned.status(), StatusCode::BAD_REQUEST);
        for header in [
            signature_header(WEBHOOK_SECRET, now() - 301, body.as_bytes()),
            signature_header(WEBHOOK_SECRET, now(), b"{\"tampered\": true}"),
            signature_header("whsec_wrong", now(), body.as_bytes()),
        ] {
            let refused = client()
                .post(format!("{}/webhooks/solvapay", app.base))
                .header(SIGNATURE_HEADER, header)
                .body(body.clone())
                .send()
                .await
                .expect("send");
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{}", app.name);
        }
        app.stop().await;
    }
    dev.stop().await;
}

/// Polls `sub` on every base until each answers `want`, within `limit`.
async fn within(limit: Duration, bases: &[String], sub: &str, want: StatusCode) {
    let started = Instant::now();
    for base in bases {
        loop {
            let status = hello(&client(), base, sub).await.0;
            if status == want {
                break;
            }
            assert!(
                started.elapsed() < limit,
                "{base}: still {status} {limit:?} after the webhook"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_servers_envelopes_unlock_on_payment_and_downgrade_on_cancel_across_instances() {
    let redis = RedisServer::start();
    let a_listener = loopback().await;
    let a_base = format!("http://{}", a_listener.local_addr().expect("addr"));
    let (dev, _ledger) = dev_server(
        loopback().await,
        "prd_quickstart",
        1,
        Some(format!("{a_base}/webhooks/solvapay")),
    );
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        redis_url: Some(redis.url()),
        ..quickstart_config(1)
    };
    let app = quickstart_axum::build(&config, &a_base).expect("build");
    let a = Instance {
        base: a_base.clone(),
        served: Served::start(a_listener, app.router.clone()),
        paywall: app.paywall,
    };
    let b = Instance::start(&dev.base, Some(redis.url()), false).await;
    let c = Instance::start(&dev.base, Some(redis.url()), false).await;
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];

    assert_eq!(
        hello(&client(), &b.base, "subscriber").await.0,
        StatusCode::OK
    );
    let (status, body) = hello(&client(), &c.base, "subscriber").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    let checkout = body["checkoutUrl"]
        .as_str()
        .expect("checkoutUrl")
        .to_owned();
    let paid = client().post(&checkout).send().await.expect("pay");
    assert_eq!(paid.status(), StatusCode::OK);
    within(Duration::from_secs(1), &bases, "subscriber", StatusCode::OK).await;

    // Cancelled at the provider (not through the app): only the webhook tells.
    let purchases: Value = client()
        .get(format!("{}/api/billing/purchases", b.base))
        .bearer_auth(token("subscriber"))
        .send()
        .await
        .expect("purchases")
        .json()
        .await
        .expect("json");
    let reference = purchases["purchases"][0]["reference"]
        .as_str()
        .expect("a purchase")
        .to_owned();
    let cancelled = client()
        .post(format!("{}/v1/sdk/purchases/{reference}/cancel", dev.base))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancelled.status(), StatusCode::OK);
    // The receiving instance at once; the others once the units they leased ahead of
    // need are spent (or given back when idle): a lease's worth, not a limits TTL.
    within(
        Duration::from_secs(1),
        &bases[..1],
        "subscriber",
        StatusCode::PAYMENT_REQUIRED,
    )
    .await;
    within(
        Duration::from_secs(5),
        &bases[1..],
        "subscriber",
        StatusCode::PAYMENT_REQUIRED,
    )
    .await;

    for instance in [a, b, c] {
        instance.stop().await;
    }
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_webhook_bodies_are_read_32_at_a_time_and_the_rest_wait_outside() {
    let (dev, _ledger) = dev_server(loopback().await, "prd_quickstart", 1, None);
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        ..quickstart_config(1)
    };
    for app in both_apps(config).await {
        let addr = app
            .base
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
            .expect("addr");
        // 40 deliveries whose header passes the precheck and whose body stalls.
        let header = signature_header(WEBHOOK_SECRET, now(), b"whatever");
        let busy = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let stalled: Vec<std::net::TcpStream> = (0..40)
                .map(|_| {
                    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
                    let head = format!(
                        "POST /webhooks/solvapay HTTP/1.1\r\nHost: x\r\n{SIGNATURE_HEADER}: {header}\r\n\
                         Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{{\"id\":"
                    );
                    stream.write_all(head.as_bytes()).expect("write");
                    stream
                })
                .collect();
            // The refused ones are answered at once; the others wait for their body.
            std::thread::sleep(Duration::from_millis(700));
            let busy = stalled
                .iter()
                .filter(|stream| {
                    let mut stream = *stream;
                    let _ = stream.set_nonblocking(true);
                    let mut answer = [0u8; 12];
                    matches!(stream.read(&mut answer), Ok(n) if n >= 12)
                        && answer.starts_with(b"HTTP/1.1 503")
                })
                .count();
            drop(stalled);
            busy
        })
        .await
        .expect("stalled deliveries");
        assert_eq!(
            busy, 8,
            "{}: 32 bodies read at once, the other 8 told to retry",
            app.name
        );

        // Once they are gone, a real delivery is read and acknowledged.
        let body = envelope("purchase.created", "cus_nobody").to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, _) = post_signed(&app.base, &body).await;
            if status == StatusCode::OK {
                break;
            }
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{}", app.name);
            assert!(
                Instant::now() < deadline,
                "{}: the places came back",
                app.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        app.stop().await;
    }
    dev.stop().await;
}
