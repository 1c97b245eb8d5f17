//! The paywall's own cost, in process: the warm decision with the identity already
//! resolved, the same plus committing usage, the whole tower layer with a header
//! resolver (no crypto), a request priced by consumption (reserve, 20 reports,
//! settle), and the cold path against a backend that answers at once.
//! Run with `cargo bench -p paywall --bench engine`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use paywall::test_util::{HeaderResolver, MemoryBackend};
use paywall::{Charge, Identity, Paywall};
use tower::{service_fn, Layer, ServiceExt};

fn engine(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let paywall = runtime.block_on(async {
        Paywall::builder(HeaderResolver::new(), MemoryBackend::unlimited())
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

    // Priced by consumption: reserve 30, report 20 one by one, settle (10 given back).
    let metered = paywall
        .route(Charge::new("prd_bench").meter("tokens").by_consumption())
        .expect("route");
    group.bench_function("consumption/reserve+report+settle/warm", |b| {
        b.to_async(&runtime).iter(|| async {
            let admission = paywall
                .admit_identity(&identity, &metered)
                .await
                .expect("admitted");
            let usage = admission.usage().cloned().expect("usage");
            usage.reserve(30).await.expect("reserved");
            for _ in 0..20 {
                usage.add(1);
            }
            admission.finish(StatusCode::OK).await
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
