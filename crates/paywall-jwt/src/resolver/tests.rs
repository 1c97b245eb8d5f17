//! The resolver's checks on tokens signed here: claims, algorithms, issuer and
//! audience, validity times and sizes, secrets.

use super::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn exp() -> u64 {
    crate::unix_now() + 600
}

fn sign(alg: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn verifies_sub_email_and_name() {
    let resolver = JwtResolver::hs256(SECRET).build().expect("build");
    let token = sign(
        Algorithm::HS256,
        &json!({ "sub": "u1", "email": "u1@example.com", "name": "U One", "exp": exp() }),
    );
    let identity = resolver.verify(&token).await.expect("valid");
    assert_eq!(
        identity,
        Identity::new("u1")
            .with_email("u1@example.com")
            .with_name("U One")
    );
}

#[tokio::test]
async fn the_algorithm_is_pinned_by_configuration() {
    let resolver = JwtResolver::hs256(SECRET).build().expect("build");
    let hs384 = sign(Algorithm::HS384, &json!({ "sub": "u1", "exp": exp() }));
    assert!(
        resolver.verify(&hs384).await.is_err(),
        "a token choosing another algorithm is refused"
    );
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(format!(r#"{{"sub":"u1","exp":{}}}"#, exp()).as_bytes());
    assert!(
        resolver
            .verify(&format!("{header}.{payload}."))
            .await
            .is_err(),
        "alg none is refused"
    );
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let resolver = JwtResolver::hs256(SECRET)
        .issuer("https://idp.example/")
        .audience("api")
        .build()
        .expect("build");
    let good = sign(
        Algorithm::HS256,
        &json!({ "sub": "u", "exp": exp(), "iss": "https://idp.example/", "aud": "api" }),
    );
    assert!(resolver.verify(&good).await.is_ok());
    let wrong_iss = sign(
        Algorithm::HS256,
        &json!({ "sub": "u", "exp": exp(), "iss": "https://evil/", "aud": "api" }),
    );
    assert!(resolver.verify(&wrong_iss).await.is_err());
    let wrong_aud = sign(
        Algorithm::HS256,
        &json!({ "sub": "u", "exp": exp(), "iss": "https://idp.example/", "aud": "other" }),
    );
    assert!(resolver.verify(&wrong_aud).await.is_err());
    let no_aud = sign(
        Algorithm::HS256,
        &json!({ "sub": "u", "exp": exp(), "iss": "https://idp.example/" }),
    );
    assert!(
        resolver.verify(&no_aud).await.is_err(),
        "aud is required once an audience is configured"
    );
}

#[tokio::test]
async fn not_yet_valid_and_oversized_tokens_are_refused() {
    let resolver = JwtResolver::hs256(SECRET)
        .leeway(Duration::ZERO)
        .max_token_len(512)
        .build()
        .expect("build");
    let nbf = sign(
        Algorithm::HS256,
        &json!({ "sub": "u", "exp": exp(), "nbf": crate::unix_now() + 300 }),
    );
    assert!(resolver.verify(&nbf).await.is_err());
    let big = sign(
        Algorithm::HS256,
        &json!({ "sub": "u", "exp": exp(), "pad": "x".repeat(1000) }),
    );
    assert!(
        matches!(resolver.verify(&big).await, Err(IdentityError::Invalid(reason)) if reason.contains("longer"))
    );
}

#[tokio::test]
async fn short_secrets_are_refused_and_debug_never_shows_the_key() {
    assert_eq!(
        JwtResolver::hs256("short").build().err(),
        Some(JwtConfigError::SecretTooShort)
    );
    let resolver = JwtResolver::hs256(SECRET).build().expect("build");
    let debug = format!(
        "{resolver:?} {:?} {:?}",
        JwtResolver::hs256(SECRET),
        crate::Hs256Signer::new(SECRET)
    );
    assert!(!debug.contains("0123456789abcdef"), "{debug}");
    let bytes: Vec<String> = SECRET.bytes().map(|b| b.to_string()).collect();
    assert!(
        !debug.contains(&bytes[..4].join(", ")),
        "key bytes leaked: {debug}"
    );
}
