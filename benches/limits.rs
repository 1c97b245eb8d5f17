//! What the ledger costs per request: a limits check as a customer's history grows (the
//! ledger reads one per-period total, so a customer with 100,000 recorded events costs
//! what a new one does), and recording usage in the recorder's batches of 500, in
//! memory (the quickstart's default) and in a WAL file. Run with
//! `cargo bench -p paywall-local --bench limits`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use paywall::backend::{BillingBackend, Outcome, UsageEvent};
use paywall::{CustomerRef, Identity};
use paywall_local::{LocalBackend, Product};

const PRODUCT: &str = "prd_bench";

async fn customer_with_history(events: u64) -> (LocalBackend, CustomerRef) {
    customer_in(LocalBackend::builder(), events).await
}

async fn customer_in(
    builder: paywall_local::LocalBackendBuilder,
    events: u64,
) -> (LocalBackend, CustomerRef) {
    let backend = builder
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
        let chunk = batch(
            &customer,
            &product,
            &meter,
            (next + 1000).min(events) - next,
        );
        next += chunk.len() as u64;
        backend.record(&chunk).await.expect("record");
    }
    (backend, customer)
}

/// `n` events as the engine makes them (a fresh key each).
fn batch(customer: &CustomerRef, product: &Arc<str>, meter: &Arc<str>, n: u64) -> Vec<UsageEvent> {
    (0..n)
        .map(|_| UsageEvent {
            idempotency_key: UsageEvent::new_key(SystemTime::now()),
            customer: customer.clone(),
            product: Arc::clone(product),
            meter: Arc::clone(meter),
            units: 1,
            outcome: Outcome::Success,
            timestamp: SystemTime::now(),
            duration: None,
        })
        .collect()
}

/// Recording a batch of 500 new events into a ledger already holding 100,000.
fn record(c: &mut Criterion) {
    const BATCH: u64 = 500;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("record");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(criterion::Throughput::Elements(BATCH));
    let ledgers = [
        ("memory", LocalBackend::builder()),
        (
            "wal_file",
            LocalBackend::builder().path(dir.path().join("ledger.db")),
        ),
    ];
    for (name, builder) in ledgers {
        let (backend, customer) = runtime.block_on(customer_in(builder, 100_000));
        let (product, meter): (Arc<str>, Arc<str>) = (PRODUCT.into(), "requests".into());
        group.bench_function(format!("batch_of_500/{name}"), |b| {
            b.iter_batched(
                || batch(&customer, &product, &meter, BATCH),
                |events| runtime.block_on(backend.record(&events)).expect("record"),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
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

criterion_group!(benches, limits, record);
criterion_main!(benches);
