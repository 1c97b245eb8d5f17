//! Unit tests of [`LocalBackend`](crate::LocalBackend) as a billing backend: customers,
//! limits and checkout links, replayed usage, errors.

use super::*;
use paywall::backend::{BackendError, BillingBackend, Outcome};
use paywall::{CustomerRef, Identity};
use std::time::SystemTime;

fn backend() -> LocalBackend {
    LocalBackend::builder()
        .product(Product::new("prd_a").free_units(3).paid_units(10))
        .checkout_url("http://127.0.0.1:9/checkout")
        .open()
        .expect("open in memory")
}

fn event(customer: &CustomerRef, key: &str) -> UsageEvent {
    UsageEvent {
        idempotency_key: key.into(),
        customer: customer.clone(),
        product: "prd_a".into(),
        meter: "requests".into(),
        units: 1,
        outcome: Outcome::Success,
        // Admitted a moment ago, before any purchase the test makes.
        timestamp: SystemTime::now() - Duration::from_secs(1),
        duration: None,
    }
}

#[tokio::test]
async fn ensure_customer_is_idempotent_and_concurrent_safe() {
    let backend = backend();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            backend.ensure_customer(&Identity::new("same-user")).await
        }));
    }
    let mut refs = Vec::new();
    for task in tasks {
        refs.push(task.await.expect("join").expect("ensure"));
    }
    assert!(refs.iter().all(|r| r == &refs[0]));
    assert_eq!(backend.customer_count().await.expect("count"), 1);
}

#[tokio::test]
async fn replayed_events_are_ignored_and_usage_reduces_remaining() {
    let backend = backend();
    let customer = backend
        .ensure_customer(&Identity::new("u"))
        .await
        .expect("ensure");
    let events = [event(&customer, "k1"), event(&customer, "k2")];
    assert_eq!(backend.record(&events).await.expect("record"), 2);
    assert_eq!(backend.record(&events).await.expect("replay"), 0);
    let rows = backend.ledger(None).await.expect("ledger");
    assert_eq!((rows.len(), rows[0].events, rows[0].units), (1, 2, 2));
    assert!(backend.is_recorded("k1").await.expect("key"));
    assert!(!backend.is_recorded("k3").await.expect("key"));
    let limits = backend
        .check_limits(&customer, "prd_a", "requests")
        .await
        .expect("limits");
    assert_eq!(limits.remaining, 1);
    assert!(limits.within_limits);
    assert_eq!(limits.plan.as_deref(), Some("pln_prd_a_free"));
    let url = limits.checkout_url.expect("checkout url");
    let id = url
        .strip_prefix("http://127.0.0.1:9/checkout/")
        .expect("a session link");
    let session = backend.checkout_session(id).await.expect("read");
    let session = session.expect("the link names a session");
    assert_eq!(
        (session.customer_ref.as_str(), session.status.as_str()),
        (customer.as_str(), "open")
    );
    assert!(
        !url.contains(customer.as_str()),
        "the link is not the customer's name"
    );
    let again = backend
        .check_limits(&customer, "prd_a", "requests")
        .await
        .expect("limits");
    assert_eq!(
        again.checkout_url.as_deref(),
        Some(url.as_str()),
        "one open session"
    );
}

#[tokio::test]
async fn unknown_customer_or_product_is_not_found() {
    let backend = backend();
    let customer = backend
        .ensure_customer(&Identity::new("u"))
        .await
        .expect("ensure");
    let err = backend
        .check_limits(&customer, "prd_missing", "requests")
        .await;
    assert!(matches!(err, Err(BackendError::NotFound(_))));
    let err = backend
        .check_limits(&CustomerRef::new("cus_nobody"), "prd_a", "requests")
        .await;
    assert!(matches!(err, Err(BackendError::NotFound(_))));
    assert!(matches!(
        backend.purchase("cus_nobody", "prd_a").await,
        Err(LocalError::NotFound(_))
    ));
}

#[tokio::test]
async fn purchase_moves_the_customer_to_the_paid_plan() {
    let backend = backend();
    let customer = backend
        .ensure_customer(&Identity::new("u"))
        .await
        .expect("ensure");
    let events: Vec<_> = (0..3).map(|i| event(&customer, &format!("k{i}"))).collect();
    backend.record(&events).await.expect("record");
    let limits = backend
        .check_limits(&customer, "prd_a", "requests")
        .await
        .expect("limits");
    assert!(!limits.within_limits);
    let plan = backend
        .purchase(customer.as_str(), "prd_a")
        .await
        .expect("purchase");
    assert_eq!(plan.units, 10);
    let limits = backend
        .check_limits(&customer, "prd_a", "requests")
        .await
        .expect("limits");
    assert_eq!(limits.remaining, 10);
    assert_eq!(limits.plan.as_deref(), Some("pln_prd_a_pro"));
    // Usage after the purchase counts in the paid plan's new period, though the free
    // period was the one found for this customer before.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let events: Vec<_> = (3..7)
        .map(|i| UsageEvent {
            timestamp: SystemTime::now(),
            ..event(&customer, &format!("k{i}"))
        })
        .collect();
    backend.record(&events).await.expect("record");
    let limits = backend
        .check_limits(&customer, "prd_a", "requests")
        .await
        .expect("limits");
    assert_eq!(limits.remaining, 6);
}

#[tokio::test]
async fn a_file_ledger_survives_reopening() {
    let dir = std::env::temp_dir().join(format!("paywall-local-{}", ledger::new_reference("t")));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("ledger.db");
    let open = || {
        LocalBackend::builder()
            .path(&path)
            .product(Product::new("prd_a"))
            .open()
            .expect("open file")
    };
    let customer = {
        let backend = open();
        let customer = backend
            .ensure_customer(&Identity::new("u"))
            .await
            .expect("ensure");
        backend
            .record(&[event(&customer, "k")])
            .await
            .expect("record");
        customer
    };
    let backend = open();
    assert_eq!(
        backend
            .ensure_customer(&Identity::new("u"))
            .await
            .expect("ensure"),
        customer
    );
    assert_eq!(backend.ledger(None).await.expect("ledger")[0].events, 1);
    // The key survived too: a replay after the restart is ignored.
    let replay = backend.record(&[event(&customer, "k")]).await;
    assert_eq!(replay.expect("replay"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
