//! The warm decision with budgets shared through a real `redis-server` on loopback,
//! next to the same decision with local budgets, in one run. Needs `redis-server`.
//! Run with `cargo bench -p paywall-tests --bench shared`.
//!
//! * `local`: no shared store (the baseline);
//! * `redis/lease16`: the default lease of up to 16 units, so about one Redis round
//!   trip per 16 admissions (each lease also settles acknowledgements);
//! * `redis/lease1`: a lease per admission, one Redis round trip each (what a design
//!   without leases costs).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::StatusCode;
use paywall::shared::LeaseConfig;
use paywall::test_util::MemoryBackend;
use paywall::{Charge, Identity, Paywall};
use paywall_redis::RedisBudgets;
use paywall_tests::{resolver, RedisServer};

fn shared(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let redis = RedisServer::start();
    let mut group = c.benchmark_group("shared_decision");
    group.measurement_time(Duration::from_secs(5));
    for (name, lease) in [
        ("local", None),
        ("redis/lease16", Some(16)),
        ("redis/lease1", Some(1)),
    ] {
        let paywall = runtime.block_on(async {
            let mut builder = Paywall::builder(resolver(), MemoryBackend::unlimited())
                .limits_ttl(Duration::from_secs(3600));
            if let Some(units) = lease {
                let store = RedisBudgets::builder(redis.url())
                    .prefix(format!("bench{units}"))
                    .build()
                    .expect("store");
                builder = builder.shared_budgets(store).leases(LeaseConfig {
                    units,
                    max_units: units,
                    ..LeaseConfig::default()
                });
            }
            builder.build().expect("paywall")
        });
        let route = paywall.route(Charge::new("prd_bench")).expect("route");
        let identity = Identity::new("bench-user");
        runtime.block_on(async {
            let admission = paywall
                .admit_identity(&identity, &route)
                .await
                .expect("warm-up");
            admission.finish(StatusCode::OK).await;
        });
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let admission = paywall
                    .admit_identity(&identity, &route)
                    .await
                    .expect("admitted");
                admission.finish(StatusCode::OK).await;
            })
        });
        runtime.block_on(paywall.shutdown(Duration::from_secs(10)));
    }
    group.finish();
}

criterion_group!(benches, shared);
criterion_main!(benches);
