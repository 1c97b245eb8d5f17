//! The paywall's own cost, in process: the warm decision with the identity already
//! resolved, the same plus committing usage, the whole tower layer with a header
//! resolver (no crypto), and the cold path against a backend that answers at once.
//! Run with `cargo bench -p paywall --bench engine`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use paywall::{
    BackendError, BillingBackend, Charge, CustomerRef, Identity, IdentityError, IdentityResolver,
    Limits, Paywall, UsageEvent,
};
use tower::{service_fn, Layer, ServiceExt};

/// Answers at once: every customer has an allowance that never runs out in a bench.
struct Instant;

impl BillingBackend for Instant {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        Ok(CustomerRef::new(format!("cus_{}", identity.external_ref)))
    }
    async fn check_limits(
        &self,
        _: &CustomerRef,
        _: &str,
        _: &str,
    ) -> Result<Limits, BackendError> {
        Ok(Limits::remaining(u64::MAX / 4))
    }
    async fn record_usage(&self, _: &[UsageEvent]) -> Result<(), BackendError> {
        Ok(())
    }
}

/// The caller is named by a header: no crypto.
struct UserHeader;

impl IdentityResolver for UserHeader {
    async fn resolve(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<Identity>, IdentityError> {
        Ok(parts
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(Identity::new))
    }
}

fn engine(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let paywall = runtime.block_on(async {
        Paywall::builder(UserHeader, Instant)
            .limits_ttl(Duration::from_secs(3600))
            .build()
            .expect("paywall")
    });
    let route = paywall.route(Charge::new("prd_bench")).expect("route");
    let identity = Identity::new("warm-user");
    runtime.block_on(async {
        drop(
            paywall
                .admit_identity(&identity, &route)
                .await
                .expect("warm up"),
        );
    });

    let mut group = c.benchmark_group("engine");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("decision/warm", |b| {
        b.to_async(&runtime).iter(|| async {
            // Admitted, then dropped: the reserved unit is given back.
            drop(
                paywall
                    .admit_identity(&identity, &route)
                    .await
                    .expect("admitted"),
            )
        })
    });
    group.bench_function("decision+commit/warm", |b| {
        b.to_async(&runtime).iter(|| async {
            let admission = paywall
                .admit_identity(&identity, &route)
                .await
                .expect("admitted");
            admission.finish(StatusCode::OK).await
        })
    });

    let service = paywall
        .layer(Charge::new("prd_bench"))
        .expect("layer")
        .layer(service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
        }));
    group.bench_function("layer/warm", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::builder()
                .header("x-user", "warm-user")
                .body(Full::new(Bytes::new()))
                .expect("request");
            service.clone().oneshot(request).await.expect("infallible")
        })
    });

    let counter = AtomicU64::new(0);
    group.bench_function("decision/cold", |b| {
        b.to_async(&runtime).iter(|| async {
            let fresh = Identity::new(format!("cold-{}", counter.fetch_add(1, Ordering::Relaxed)));
            drop(
                paywall
                    .admit_identity(&fresh, &route)
                    .await
                    .expect("admitted"),
            )
        })
    });
    group.finish();
    runtime.block_on(paywall.shutdown(Duration::from_secs(5)));
}

criterion_group!(benches, engine);
criterion_main!(benches);
