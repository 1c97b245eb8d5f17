//! Warm-path token verification: HS256, RS256 and ES256, with and without the
//! verified-token cache. Run with `cargo bench -p paywall-jwt --bench verify`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use paywall_jwt::{JwtResolver, Key};
use serde_json::json;

const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";

fn token(key: &EncodingKey, alg: Algorithm) -> String {
    let claims = json!({
        "sub": "bench-user", "email": "bench@example.com",
        "iss": "https://idp.bench/", "aud": "https://api.bench",
        "exp": paywall_jwt::unix_now() + 3600,
    });
    jsonwebtoken::encode(&Header::new(alg), &claims, key).expect("sign")
}

fn resolver(key: Key, alg: Algorithm, cached: bool) -> JwtResolver {
    let builder = JwtResolver::builder()
        .key(key)
        .algorithms([alg])
        .issuer("https://idp.bench/")
        .audience("https://api.bench");
    let builder = if cached {
        builder
    } else {
        builder.without_token_cache()
    };
    builder.build().expect("resolver")
}

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let rsa_private = include_bytes!("../crates/paywall-jwt/tests/keys/rsa1.pem");
    let rsa_public = include_bytes!("../crates/paywall-jwt/tests/keys/rsa1.pub.pem");
    let ec_private = include_bytes!("../crates/paywall-jwt/tests/keys/ec256.pem");
    let ec_public = include_bytes!("../crates/paywall-jwt/tests/keys/ec256.pub.pem");
    let cases = [
        (
            "HS256",
            Algorithm::HS256,
            EncodingKey::from_secret(SECRET.as_bytes()),
            Key::hmac(SECRET),
        ),
        (
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(rsa_private).expect("rsa"),
            Key::rsa_pem(rsa_public).expect("rsa"),
        ),
        (
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(ec_private).expect("ec"),
            Key::ec_pem(ec_public).expect("ec"),
        ),
    ];
    let mut group = c.benchmark_group("verify");
    group.measurement_time(Duration::from_secs(3));
    for (name, alg, signing, key) in cases {
        let token = token(&signing, alg);
        for cached in [false, true] {
            let resolver = resolver(key.clone(), alg, cached);
            let label = format!("{name}/{}", if cached { "cached" } else { "uncached" });
            group.bench_function(label, |b| {
                b.to_async(&runtime)
                    .iter(|| async { resolver.verify(&token).await.expect("valid") })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
