//! Tokens: the shared HS256 secret and its resolver, test key pairs of every
//! algorithm, and signing helpers.

use std::time::Duration;

use paywall_jwt::{Hs256Signer, JwtResolver};
use serde_json::{json, Value};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

pub fn resolver() -> JwtResolver {
    JwtResolver::hs256(SECRET).build().expect("resolver")
}

pub fn token(sub: &str) -> String {
    Hs256Signer::new(SECRET)
        .token_for(sub, Duration::from_secs(3600))
        .expect("sign")
}

pub fn bearer(sub: &str) -> String {
    format!("Bearer {}", token(sub))
}

/// The head of a request bearing `token`, for a resolver's `resolve_now`.
pub fn bearing(token: &str) -> http::request::Parts {
    let request = http::Request::builder()
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .expect("request");
    request.into_parts().0
}

/// Test key pairs (see `crates/paywall-jwt/tests/keys/README.md`).
pub mod keys {
    use jsonwebtoken::{Algorithm, EncodingKey};

    macro_rules! pem {
        ($name:literal) => {
            include_bytes!(concat!("../../crates/paywall-jwt/tests/keys/", $name))
        };
    }

    /// A signing key, its algorithm and the matching public PEM.
    pub struct Pair {
        pub encoding: EncodingKey,
        pub alg: Algorithm,
        pub public_pem: &'static [u8],
    }

    fn pair(private: &[u8], public_pem: &'static [u8], alg: Algorithm) -> Pair {
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private),
            _ => EncodingKey::from_rsa_pem(private),
        }
        .expect("test key");
        Pair {
            encoding,
            alg,
            public_pem,
        }
    }

    pub fn rsa1() -> Pair {
        pair(pem!("rsa1.pem"), pem!("rsa1.pub.pem"), Algorithm::RS256)
    }
    pub fn rsa2() -> Pair {
        pair(pem!("rsa2.pem"), pem!("rsa2.pub.pem"), Algorithm::RS256)
    }
    pub fn ec256() -> Pair {
        pair(pem!("ec256.pem"), pem!("ec256.pub.pem"), Algorithm::ES256)
    }
    pub fn ec384() -> Pair {
        pair(pem!("ec384.pem"), pem!("ec384.pub.pem"), Algorithm::ES384)
    }
    pub fn ed25519() -> Pair {
        pair(
            pem!("ed25519.pem"),
            pem!("ed25519.pub.pem"),
            Algorithm::EdDSA,
        )
    }
}

/// Signs `claims` with `key` using `alg`, naming `kid` in the header.
pub fn sign_jwt(
    key: &jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// Standard claims for `sub`, valid for 10 minutes, with `iss` and `aud`.
pub fn claims_for(sub: &str, issuer: &str, audience: &str) -> Value {
    let now = paywall_jwt::unix_now();
    json!({ "sub": sub, "iss": issuer, "aud": audience, "iat": now, "exp": now + 600 })
}
