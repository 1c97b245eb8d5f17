//! JWT identity against an identity provider served over HTTP on 127.0.0.1: the Auth0
//! preset, every algorithm, symmetric keys refused from a JWKS, the verified-token
//! cache, claim mapping, cookies, several issuers. Key fetching is in `jwks.rs`.

use std::time::Duration;

use http::StatusCode;
use jsonwebtoken::Algorithm;
use paywall::{IdentityError, IdentityResolver, Paywall};
use paywall_jwt::{JwtResolver, Key, TokenSource};
use paywall_tests::idp::AUDIENCE as AUD;
use paywall_tests::*;
use serde_json::json;
use tower::{Layer, ServiceExt};

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
        .dangerously_accept_any_issuer()
        .dangerously_accept_any_audience()
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
        .dangerously_accept_any_issuer()
        .dangerously_accept_any_audience()
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
            .issuer("https://idp.test/")
            .audience(AUD)
            .algorithms([Algorithm::HS256])
            .build(),
        Err(paywall_jwt::JwtConfigError::SymmetricWithJwks(_))
    ));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_issuers_the_external_ref_is_namespaced_by_issuer() {
    // One multi-tenant provider: the same JWKS for two tenant issuers, one resolver each.
    let (idp, _server) = Idp::start();
    let signer = keys::rsa1();
    idp.set_keys(&[("k1", &signer)]);
    let (first, second) = ("https://tenant-a.test/", "https://tenant-b.test/");
    let tenant = |iss: &str| {
        JwtResolver::jwks(idp.jwks_url.as_str())
            .issuer(iss)
            .audience(AUD)
            .build()
            .expect("resolver")
    };
    let resolver = JwtResolver::per_issuer([tenant(first), tenant(second)]).expect("per issuer");
    let from = |iss: &str| {
        sign_jwt(
            &signer.encoding,
            Algorithm::RS256,
            Some("k1"),
            &claims_for("same-sub", iss, AUD),
        )
    };
    let a = resolver.verify(&from(first)).await.expect("a").external_ref;
    let b = resolver
        .verify(&from(second))
        .await
        .expect("b")
        .external_ref;
    assert_eq!(a, "https://tenant-a.test/|same-sub");
    assert_eq!(b, "https://tenant-b.test/|same-sub");
    // Verified once, answered without a future, namespaced alike; another issuer's
    // token is refused there too.
    assert!(matches!(
        resolver.resolve_now(&bearing(&from(second))),
        Some(Ok(Some(identity))) if identity.external_ref == b
    ));
    assert!(matches!(
        resolver.resolve_now(&bearing(&from("https://tenant-c.test/"))),
        Some(Err(IdentityError::Invalid(_)))
    ));
    assert!(resolver
        .verify(&from("https://tenant-c.test/"))
        .await
        .is_err());
    // One issuer: the claim alone, as before.
    let single = idp.resolver();
    assert_eq!(
        single
            .verify(&idp.token(&signer, "k1", "same-sub"))
            .await
            .expect("single")
            .external_ref,
        "same-sub"
    );
    // One builder with two issuers would let one issuer's keys sign for the other.
    assert!(matches!(
        JwtResolver::jwks(idp.jwks_url.as_str())
            .issuer(first)
            .issuer(second)
            .audience(AUD)
            .build(),
        Err(paywall_jwt::JwtConfigError::SeveralIssuers)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_issuers_key_cannot_sign_for_another_issuers_users() {
    // Two providers, each with its own keys.
    let (idp_a, _a) = Idp::start();
    let (idp_b, _b) = Idp::start();
    let (key_a, key_b) = (keys::rsa1(), keys::rsa2());
    idp_a.set_keys(&[("a1", &key_a)]);
    idp_b.set_keys(&[("b1", &key_b)]);
    let (iss_a, iss_b) = ("https://a.test/", "https://b.test/");
    let resolver = JwtResolver::per_issuer([
        JwtResolver::jwks(idp_a.jwks_url.as_str())
            .issuer(iss_a)
            .audience(AUD)
            .build()
            .expect("a"),
        JwtResolver::jwks(idp_b.jwks_url.as_str())
            .issuer(iss_b)
            .audience(AUD)
            .build()
            .expect("b"),
    ])
    .expect("per issuer");
    let signed = |pair: &keys::Pair, kid: &str, iss: &str, sub: &str| {
        sign_jwt(
            &pair.encoding,
            Algorithm::RS256,
            Some(kid),
            &claims_for(sub, iss, AUD),
        )
    };
    let victim = resolver
        .verify(&signed(&key_b, "b1", iss_b, "victim"))
        .await
        .expect("B's own token");
    assert_eq!(victim.external_ref, "https://b.test/|victim");
    // A's key, claiming to be B (with B's kid or A's): refused, never B's victim.
    for kid in ["a1", "b1"] {
        let forged = signed(&key_a, kid, iss_b, "victim");
        let refused = resolver.verify(&forged).await;
        assert!(
            matches!(refused, Err(paywall::IdentityError::Invalid(_))),
            "{kid}: {refused:?}"
        );
    }
}
