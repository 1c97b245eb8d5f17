//! The dev server counts fractional usage exactly, as SolvaPay does: a running total per
//! customer, product and meter, never a rounded event (four events of 0.25 are one
//! unit; ten of 0.1 are one), and a replayed event, across calls or within one bulk
//! call, adds nothing.

use paywall_tests::*;
use serde_json::{json, Value};

async fn post(base: &str, path: &str, body: Value) -> Value {
    let answer = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(DEV_KEY)
        .json(&body)
        .send()
        .await
        .expect("dev server");
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.expect("json")
}

#[tokio::test]
async fn fractional_units_add_up_exactly_and_replays_add_nothing() {
    let (dev, ledger) = dev_server(loopback().await, "prd_frac", 5, None);
    let base = dev.base.as_str();
    let customer = post(
        base,
        "/v1/sdk/customers",
        json!({ "email": "frac@example.com", "externalRef": "frac", "metadata": {} }),
    )
    .await;
    let customer = customer["reference"]
        .as_str()
        .expect("reference")
        .to_owned();
    let event = |key: String, units: f64| json!({ "customerRef": customer, "productRef": "prd_frac", "units": units, "idempotencyKey": key });

    for i in 0..3 {
        post(base, "/v1/sdk/usages", event(format!("q{i}"), 0.25)).await;
    }
    assert_eq!(
        recorded(&ledger, Some(&customer)).await,
        (3, 0),
        "0.75 is no whole unit yet"
    );
    post(base, "/v1/sdk/usages", event("q2".into(), 0.25)).await; // a replay
    assert_eq!(recorded(&ledger, Some(&customer)).await, (3, 0));
    post(base, "/v1/sdk/usages", event("q3".into(), 0.25)).await;
    assert_eq!(
        recorded(&ledger, Some(&customer)).await,
        (4, 1),
        "four quarters are one unit"
    );

    // Ten tenths in one bulk call, one of them sent twice: one more unit, exactly.
    let mut events: Vec<Value> = (0..10).map(|i| event(format!("t{i}"), 0.1)).collect();
    events.push(event("t9".into(), 0.1));
    let bulk = post(base, "/v1/sdk/usages/bulk", json!({ "events": events })).await;
    assert_eq!(bulk["results"][10]["status"], "duplicate", "{bulk}");
    assert_eq!(recorded(&ledger, Some(&customer)).await, (14, 2));

    // Whole units are counted as before.
    post(base, "/v1/sdk/usages", event("w".into(), 3.0)).await;
    assert_eq!(recorded(&ledger, Some(&customer)).await.1, 5);
    dev.stop().await;
}
