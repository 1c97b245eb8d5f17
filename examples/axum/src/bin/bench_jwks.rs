//! Benchmark helper: serves a JWKS with the test RSA key at `/jwks.json` on `PORT` and
//! prints an RS256 token for `demo-user` signed with it (`token: <jwt>`). The key is
//! the repository's test key: never use it for anything real.

use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use paywall_examples::startup;

const PRIVATE: &[u8] = include_bytes!("../../../../crates/paywall-jwt/tests/keys/rsa1.pem");

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3999);
    let Ok(key) = EncodingKey::from_rsa_pem(PRIVATE) else {
        eprintln!("bench-jwks: unreadable test key");
        return std::process::ExitCode::from(2);
    };
    let Ok(mut jwk) = Jwk::from_encoding_key(&key, Algorithm::RS256) else {
        eprintln!("bench-jwks: cannot derive the JWK");
        return std::process::ExitCode::from(2);
    };
    jwk.common.key_id = Some("bench".into());
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    let claims = serde_json::json!({ "sub": "demo-user", "iss": "bench-issuer", "aud": "bench-api",
                                     "exp": paywall_jwt::unix_now() + 24 * 3600 });
    let Ok(token) = jsonwebtoken::encode(&header, &claims, &key) else {
        eprintln!("bench-jwks: cannot sign");
        return std::process::ExitCode::from(2);
    };
    let (listener, base) = match startup::listen("bench-jwks", port).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let jwks = serde_json::json!({ "keys": [jwk] });
    let app = Router::new().route("/jwks.json", get(move || async move { Json(jwks.clone()) }));
    println!("bench-jwks listening on {base}");
    println!("token: {token}");
    match axum::serve(listener, app).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::from(1),
    }
}
