//! JWT identity against an identity provider served over HTTP on 127.0.0.1: JWKS key
//! rotation, forged-kid bursts, outages, OIDC discovery, the Auth0 preset, every
//! algorithm, `max-age`, and the verified-token cache.

use std::time::Duration;

use http::StatusCode;
use jsonwebtoken::Algorithm;
use paywall::{IdentityError, Paywall};
use paywall_jwt::{JwtResolver, Key, TokenSource};
use paywall_tests::*;
use serde_json::json;
use tower::{Layer, ServiceExt};

const AUD: &str = "https://api.test";

fn jwks_resolver(idp: &Idp, cooldown: Duration) -> JwtResolver {
    JwtResolver::jwks(idp.jwks_url.as_str())
        .issuer(idp.issuer.as_str())
        .audience(AUD)
        .algorithms([Algorithm::RS256, Algorithm::ES256])
        .jwks_cooldown(cooldown)
        .build()
        .expect("resolver")
}

fn token(idp: &Idp, pair: &keys::Pair, kid: &str, sub: &str) -> String {
    sign_jwt(
        &pair.encoding,
        pair.alg,
        Some(kid),
        &claims_for(sub, &idp.issuer, AUD),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_new_keys_accepted_after_one_refresh_removed_keys_rejected() {
    let (idp, _server) = Idp::start();
    let (old, new) = (keys::rsa1(), keys::rsa2());
    idp.set_keys(&[("k1", &old)]);
    let resolver = jwks_resolver(&idp, Duration::from_millis(100));
    idp.wait_for_fetches(1).await; // the background prefetch
    let old_token = token(&idp, &old, "k1", "alice");
    assert_eq!(
        resolver.verify(&old_token).await.expect("k1").external_ref,
        "alice"
    );

    // The IdP adds k2; a token signed by it triggers exactly one refresh.
    idp.set_keys(&[("k1", &old), ("k2", &new)]);
    tokio::time::sleep(Duration::from_millis(150)).await; // past the cooldown
    let fetches = idp.fetches();
    assert_eq!(
        resolver
            .verify(&token(&idp, &new, "k2", "bob"))
            .await
            .expect("k2")
            .external_ref,
        "bob"
    );
    assert_eq!(idp.fetches(), fetches + 1, "one refresh for the new kid");
    assert!(resolver
        .verify(&token(&idp, &new, "k2", "carol"))
        .await
        .is_ok());
    assert_eq!(idp.fetches(), fetches + 1, "known kids cost no fetch");

    // The IdP drops k1. Once a refresh has seen it gone, k1 tokens are refused, even
    // the one already in the verified-token cache.
    idp.set_keys(&[("k2", &new)]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let unknown = token(&idp, &new, "k-unknown", "mallory");
    assert!(matches!(
        resolver.verify(&unknown).await,
        Err(IdentityError::Invalid(_))
    ));
    assert!(matches!(
        resolver.verify(&old_token).await,
        Err(IdentityError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_forged_kids_causes_at_most_one_fetch_per_cooldown() {
    let (idp, _server) = Idp::start();
    let signer = keys::rsa1();
    idp.set_keys(&[("k1", &signer)]);
    let resolver = std::sync::Arc::new(jwks_resolver(&idp, Duration::from_secs(30)));
    idp.wait_for_fetches(1).await;
    let before = idp.fetches();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let resolver = resolver.clone();
        let kid = format!("forged-{i}-{}", rand::random::<u64>());
        let forged = token(&idp, &signer, &kid, "mallory");
        tasks.push(tokio::spawn(async move { resolver.verify(&forged).await }));
    }
    for task in tasks {
        assert!(matches!(
            task.await.expect("join"),
            Err(IdentityError::Invalid(_))
        ));
    }
    assert!(
        idp.fetches() - before <= 1,
        "{} fetches for 1,000 forged kids",
        idp.fetches() - before
    );
    assert!(resolver
        .verify(&token(&idp, &signer, "k1", "alice"))
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_at_start_is_503_until_keys_can_be_fetched() {
    let (idp, _server) = Idp::start();
    let signer = keys::rsa1();
    idp.set_keys(&[("k1", &signer)]);
    idp.set_down(true);
    let resolver = jwks_resolver(&idp, Duration::from_millis(100));
    let paywall = Paywall::builder(resolver, MemoryBackend::with_allowance(10))
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    let good = || {
        http::Request::builder()
            .header(
                "authorization",
                format!("Bearer {}", token(&idp, &signer, "k1", "alice")),
            )
            .body(http_body_util::Full::<bytes::Bytes>::default())
            .expect("request")
    };
    let (status, headers, body) =
        read_json(service.clone().oneshot(good()).await.expect("ok")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_some());
    assert_eq!(body["kind"], "identity_unavailable");
    idp.set_down(false);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        service.clone().oneshot(good()).await.expect("ok").status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_mid_run_keeps_the_cached_keys() {
    let (idp, _server) = Idp::start();
    let signer = keys::rsa1();
    idp.set_keys(&[("k1", &signer)]);
    let resolver = JwtResolver::jwks(idp.jwks_url.as_str())
        .issuer(idp.issuer.as_str())
        .audience(AUD)
        .jwks_cooldown(Duration::from_millis(50))
        .without_token_cache()
        .build()
        .expect("resolver");
    assert!(resolver
        .verify(&token(&idp, &signer, "k1", "alice"))
        .await
        .is_ok());
    idp.set_down(true);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let fetches = idp.fetches();
    // An unknown kid makes the resolver try (and fail) to refresh...
    assert!(resolver
        .verify(&token(&idp, &signer, "k9", "x"))
        .await
        .is_err());
    assert_eq!(idp.fetches(), fetches + 1);
    // ...and the keys it had still verify, every time.
    for sub in ["alice", "bob", "carol"] {
        assert_eq!(
            resolver
                .verify(&token(&idp, &signer, "k1", sub))
                .await
                .expect("cached key")
                .external_ref,
            sub
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_discovery_finds_the_jwks_and_pins_the_issuer() {
    let (idp, _server) = Idp::start();
    let signer = keys::ec256();
    idp.set_keys(&[("ec", &signer)]);
    let resolver = JwtResolver::oidc(idp.issuer.as_str())
        .audience(AUD)
        .algorithms([Algorithm::ES256])
        .build()
        .expect("resolver");
    assert_eq!(
        resolver
            .verify(&token(&idp, &signer, "ec", "oidc-user"))
            .await
            .expect("valid")
            .external_ref,
        "oidc-user"
    );
    let other_issuer = sign_jwt(
        &signer.encoding,
        signer.alg,
        Some("ec"),
        &claims_for("x", "https://evil.example", AUD),
    );
    assert!(resolver.verify(&other_issuer).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth0_preset_uses_the_domain_for_issuer_and_keys() {
    let (idp, _server) = Idp::start();
    let signer = keys::rsa1();
    idp.set_keys(&[("auth0-key", &signer)]);
    let resolver = JwtResolver::auth0(&idp.issuer, AUD)
        .build()
        .expect("resolver");
    let claims = claims_for("auth0|123", &format!("{}/", idp.issuer), AUD);
    let good = sign_jwt(
        &signer.encoding,
        Algorithm::RS256,
        Some("auth0-key"),
        &claims,
    );
    assert_eq!(
        resolver.verify(&good).await.expect("valid").external_ref,
        "auth0|123"
    );
    let no_slash = sign_jwt(
        &signer.encoding,
        Algorithm::RS256,
        Some("auth0-key"),
        &claims_for("x", &idp.issuer, AUD),
    );
    assert!(
        resolver.verify(&no_slash).await.is_err(),
        "Auth0's issuer ends with a slash"
    );
    let es = keys::ec256();
    let wrong_alg = sign_jwt(&es.encoding, Algorithm::ES256, Some("auth0-key"), &claims);
    assert!(
        resolver.verify(&wrong_alg).await.is_err(),
        "the preset allows RS256 only"
    );
}

#[tokio::test]
async fn every_algorithm_with_static_pem_keys() {
    let cases = [
        (
            keys::rsa1(),
            vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        ),
        (keys::ec256(), vec![Algorithm::ES256]),
        (keys::ec384(), vec![Algorithm::ES384]),
        (keys::ed25519(), vec![Algorithm::EdDSA]),
    ];
    for (pair, algorithms) in cases {
        for alg in algorithms {
            let key = match alg {
                Algorithm::ES256 | Algorithm::ES384 => Key::ec_pem(pair.public_pem),
                Algorithm::EdDSA => Key::ed_pem(pair.public_pem),
                _ => Key::rsa_pem(pair.public_pem),
            }
            .expect("public key");
            let resolver = JwtResolver::builder()
                .key(key)
                .algorithms([alg])
                .build()
                .expect("resolver");
            let token = sign_jwt(
                &pair.encoding,
                alg,
                None,
                &json!({ "sub": "u", "exp": paywall_jwt::unix_now() + 60 }),
            );
            assert_eq!(
                resolver.verify(&token).await.expect("valid").external_ref,
                "u",
                "{alg:?}"
            );
        }
    }
    for secret_alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let resolver = JwtResolver::builder()
            .key(Key::hmac(SECRET))
            .algorithms([secret_alg])
            .build()
            .expect("resolver");
        let token = sign_jwt(
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            secret_alg,
            None,
            &json!({ "sub": "h", "exp": paywall_jwt::unix_now() + 60 }),
        );
        assert!(resolver.verify(&token).await.is_ok(), "{secret_alg:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_asymmetric_algorithm_from_a_jwks() {
    let (idp, _server) = Idp::start();
    let (rsa, ec256, ec384, ed) = (keys::rsa1(), keys::ec256(), keys::ec384(), keys::ed25519());
    idp.set_keys(&[
        ("rsa", &rsa),
        ("ec256", &ec256),
        ("ec384", &ec384),
        ("ed", &ed),
    ]);
    let resolver = JwtResolver::jwks(idp.jwks_url.as_str())
        .algorithms([
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ])
        .build()
        .expect("resolver");
    for (kid, pair) in [
        ("rsa", &rsa),
        ("ec256", &ec256),
        ("ec384", &ec384),
        ("ed", &ed),
    ] {
        let token = sign_jwt(
            &pair.encoding,
            pair.alg,
            Some(kid),
            &json!({ "sub": kid, "exp": paywall_jwt::unix_now() + 60 }),
        );
        assert_eq!(
            resolver.verify(&token).await.expect("valid").external_ref,
            kid
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_keys_published_in_a_jwks_are_ignored() {
    let (idp, _server) = Idp::start();
    let rsa = keys::rsa1();
    let mut jwk = serde_json::to_value(
        jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa.encoding, Algorithm::RS256).expect("jwk"),
    )
    .expect("json");
    jwk["kid"] = json!("rsa");
    idp.set_raw(json!({ "keys": [jwk, { "kty": "oct", "kid": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA" }] }));
    let resolver = JwtResolver::jwks(idp.jwks_url.as_str())
        .build()
        .expect("resolver");
    let hs = sign_jwt(
        &jsonwebtoken::EncodingKey::from_secret(b"secret-secret-secret-secret-secret"),
        Algorithm::HS256,
        Some("oct"),
        &json!({ "sub": "x", "exp": paywall_jwt::unix_now() + 60 }),
    );
    assert!(resolver.verify(&hs).await.is_err());
    assert!(matches!(
        JwtResolver::jwks("http://127.0.0.1:1/jwks")
            .algorithms([Algorithm::HS256])
            .build(),
        Err(paywall_jwt::JwtConfigError::SymmetricWithJwks(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_is_refreshed_every_max_age() {
    let (idp, _server) = Idp::start();
    idp.set_keys(&[("k1", &keys::rsa1())]);
    idp.set_max_age(Some(1));
    let _resolver = JwtResolver::jwks(idp.jwks_url.as_str())
        .jwks_refresh_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .expect("resolver");
    idp.wait_for_fetches(1).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(
        idp.fetches() >= 3,
        "fetched {} times in ~2.3 s with max-age=1",
        idp.fetches()
    );
}

#[tokio::test]
async fn a_cached_token_is_never_served_past_its_exp() {
    let resolver = JwtResolver::hs256(SECRET)
        .leeway(Duration::ZERO)
        .build()
        .expect("resolver");
    let token = paywall_jwt::Hs256Signer::new(SECRET)
        .sign(&json!({ "sub": "short", "exp": paywall_jwt::unix_now() + 1 }))
        .expect("sign");
    assert!(resolver.verify(&token).await.is_ok());
    assert!(
        resolver.verify(&token).await.is_ok(),
        "served from the cache"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        resolver.verify(&token).await.is_err(),
        "expired: neither the cache nor verification accepts it"
    );
}

#[tokio::test]
async fn claims_mapping_selects_any_claim() {
    let signer = paywall_jwt::Hs256Signer::new(SECRET);
    let exp = paywall_jwt::unix_now() + 60;
    let org = JwtResolver::hs256(SECRET)
        .external_ref_claim("org_id")
        .email_claim("https://example.com/email")
        .build()
        .expect("resolver");
    let token = signer.sign(&json!({ "sub": "user-1", "org_id": "org_9", "https://example.com/email": "billing@org.io", "exp": exp })).expect("sign");
    let identity = org.verify(&token).await.expect("valid");
    assert_eq!(identity.external_ref, "org_9");
    assert_eq!(identity.email.as_deref(), Some("billing@org.io"));
    let missing = signer
        .sign(&json!({ "sub": "user-1", "exp": exp }))
        .expect("sign");
    assert!(org.verify(&missing).await.is_err(), "no org_id claim: 401");
}

#[tokio::test]
async fn tokens_from_a_cookie_through_the_layer() {
    let resolver = JwtResolver::hs256(SECRET)
        .source(TokenSource::Cookie("session".into()))
        .build()
        .expect("resolver");
    let paywall = Paywall::builder(resolver, MemoryBackend::with_allowance(5))
        .build()
        .expect("paywall");
    let service = paywall
        .layer(paywall::Charge::new(PRODUCT))
        .expect("layer")
        .layer(EchoService);
    let request = http::Request::builder()
        .header(
            "cookie",
            format!(
                "theme=dark; session={}",
                paywall_tests::token("cookie-user")
            ),
        )
        .body(http_body_util::Full::<bytes::Bytes>::default())
        .expect("request");
    let (status, _, body) = read_json(service.clone().oneshot(request).await.expect("ok")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["externalRef"], "cookie-user");
    let bearer_only = service
        .oneshot(paywall_tests::request("x"))
        .await
        .expect("ok");
    assert_eq!(
        bearer_only.status(),
        StatusCode::UNAUTHORIZED,
        "the bearer header is not read"
    );
}
