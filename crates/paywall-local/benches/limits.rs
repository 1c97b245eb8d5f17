//! What a limits check costs as a customer's history grows. The ledger reads one
//! per-period total, so a customer with 100,000 recorded events costs what a new one
//! does. Run with `cargo bench -p paywall-local --bench limits`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use paywall::{BillingBackend, CustomerRef, Identity, Outcome, UsageEvent};
use paywall_local::{LocalBackend, Product};

const PRODUCT: &str = "prd_bench";

async fn customer_with_history(events: u64) -> (LocalBackend, CustomerRef) {
    let backend = LocalBackend::builder()
        .product(Product::new(PRODUCT).free_units(u64::MAX / 4))
        .open()
        .expect("ledger");
    let customer = backend
        .ensure_customer(&Identity::new("bench-user"))
        .await
        .expect("customer");
    let (product, meter): (Arc<str>, Arc<str>) = (PRODUCT.into(), "requests".into());
    let mut next = 0;
    while next < events {
        let chunk: Vec<UsageEvent> = (next..(next + 1000).min(events))
            .map(|i| UsageEvent {
                idempotency_key: format!("history-{i}"),
                customer: customer.clone(),
                product: Arc::clone(&product),
                meter: Arc::clone(&meter),
                units: 1,
                outcome: Outcome::Success,
                timestamp: SystemTime::now(),
                duration: None,
            })
            .collect();
        next += chunk.len() as u64;
        backend.record(&chunk).await.expect("record");
    }
    (backend, customer)
}

fn limits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("limits");
    group.measurement_time(Duration::from_secs(3));
    for events in [0, 100_000] {
        let (backend, customer) = runtime.block_on(customer_with_history(events));
        group.bench_function(format!("check/{events}_events"), |b| {
            b.to_async(&runtime).iter(|| async {
                backend
                    .check_limits(&customer, PRODUCT, "requests")
                    .await
                    .expect("limits")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, limits);
criterion_main!(benches);
