//! The full warm path through the tower layer with real tokens: HS256 and RS256, with and
//! without the verified-token cache, against a backend that answers at once.
//! Run with `cargo bench -p paywall-tests --bench full_path`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey};
use paywall::{Charge, Paywall};
use paywall_jwt::{JwtResolver, Key};
use paywall_tests::{keys, sign_jwt, MemoryBackend, SECRET};
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};

fn full_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let claims = json!({ "sub": "bench-user", "exp": paywall_jwt::unix_now() + 3600 });
    let rsa = keys::rsa1();
    let cases = [
        (
            "HS256",
            Key::hmac(SECRET),
            Algorithm::HS256,
            sign_jwt(
                &EncodingKey::from_secret(SECRET.as_bytes()),
                Algorithm::HS256,
                None,
                &claims,
            ),
        ),
        (
            "RS256",
            Key::rsa_pem(rsa.public_pem).expect("rsa"),
            Algorithm::RS256,
            sign_jwt(&rsa.encoding, Algorithm::RS256, None, &claims),
        ),
    ];
    let mut group = c.benchmark_group("full_path");
    group.measurement_time(Duration::from_secs(3));
    for (name, key, alg, token) in cases {
        for cached in [false, true] {
            let builder = JwtResolver::builder().key(key.clone()).algorithms([alg]);
            let resolver = if cached {
                builder
            } else {
                builder.without_token_cache()
            }
            .build()
            .expect("resolver");
            let (paywall, service) = runtime.block_on(async {
                let paywall = Paywall::builder(resolver, MemoryBackend::unlimited())
                    .limits_ttl(Duration::from_secs(3600))
                    .build()
                    .expect("paywall");
                let service = paywall
                    .layer(Charge::new("prd_bench"))
                    .expect("layer")
                    .layer(service_fn(|_: Request<Full<Bytes>>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                    }));
                (paywall, service)
            });
            let bearer = format!("Bearer {token}");
            let label = format!("{name}/{}", if cached { "cached" } else { "uncached" });
            group.bench_function(label, |b| {
                b.to_async(&runtime).iter(|| async {
                    let request = Request::builder()
                        .header("authorization", bearer.as_str())
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    service.clone().oneshot(request).await.expect("infallible")
                })
            });
            runtime.block_on(paywall.shutdown(Duration::from_secs(5)));
        }
    }
    group.finish();
}

criterion_group!(benches, full_path);
criterion_main!(benches);
