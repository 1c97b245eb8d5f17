//! Forged and malformed tokens, each its own test: every one is answered 401 with
//! `WWW-Authenticate`, never a 5xx, through the tower layer; and the same matrix through
//! the axum quickstart over a real socket.

use std::time::Duration;

use base64::Engine;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey};
use paywall::Paywall;
use paywall_examples::config::QuickstartConfig;
use paywall_jwt::JwtResolver;
use paywall_tests::*;
use quickstart_axum as quickstart;
use serde_json::{json, Value};
use tower::ServiceExt;

const AUD: &str = "https://api.matrix";
const KID: &str = "k1";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(idp: &Idp) -> Value {
    claims_for("victim", &idp.issuer, AUD)
}

fn rs256(claims: &Value, kid: &str) -> String {
    sign_jwt(&keys::rsa1().encoding, Algorithm::RS256, Some(kid), claims)
}

/// Signs arbitrary header and payload bytes with RS256, as a real key would.
fn raw_rs256(header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &keys::rsa1().encoding, Algorithm::RS256)
            .expect("sign");
    format!("{message}.{signature}")
}

fn with(idp: &Idp, change: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims(idp);
    change(&mut claims);
    rs256(&claims, KID)
}

/// The `Authorization` values a forged request sends.
fn forged(case: &str, idp: &Idp) -> Vec<String> {
    let bearer = |token: String| vec![format!("Bearer {token}")];
    let now = paywall_jwt::unix_now();
    match case {
        "alg_none" => {
            let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
            bearer(format!(
                "{header}.{}.",
                b64(claims(idp).to_string().as_bytes())
            ))
        }
        "hs256_signed_with_the_rsa_public_key" => {
            let secret = EncodingKey::from_secret(keys::rsa1().public_pem);
            bearer(sign_jwt(&secret, Algorithm::HS256, Some(KID), &claims(idp)))
        }
        "wrong_signature" => {
            let good = rs256(&claims(idp), KID);
            let other = sign_jwt(
                &keys::rsa2().encoding,
                Algorithm::RS256,
                Some(KID),
                &claims(idp),
            );
            let (head, _) = good.rsplit_once('.').expect("three parts");
            let (_, signature) = other.rsplit_once('.').expect("three parts");
            bearer(format!("{head}.{signature}"))
        }
        "expired" => bearer(with(idp, |c| c["exp"] = json!(now - 3600))),
        "nbf_in_the_future" => bearer(with(idp, |c| c["nbf"] = json!(now + 3600))),
        "wrong_issuer" => bearer(with(idp, |c| c["iss"] = json!("https://evil.example/"))),
        "wrong_audience" => bearer(with(idp, |c| c["aud"] = json!("https://other.api"))),
        "missing_aud" => bearer(with(idp, |c| {
            c.as_object_mut().map(|m| m.remove("aud"));
        })),
        "unknown_kid" => bearer(rs256(&claims(idp), "not-a-known-kid")),
        "not_three_segments" => bearer("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0".into()),
        "bad_base64" => bearer("%%%.***.@@@".into()),
        "header_not_json" => bearer(raw_rs256(b"not json", claims(idp).to_string().as_bytes())),
        "payload_not_json" => bearer(raw_rs256(
            format!(r#"{{"alg":"RS256","kid":"{KID}"}}"#).as_bytes(),
            b"not json",
        )),
        "oversized" => bearer(with(idp, |c| c["pad"] = json!("x".repeat(20_000)))),
        "missing_sub" => bearer(with(idp, |c| {
            c.as_object_mut().map(|m| m.remove("sub"));
        })),
        "empty_sub" => bearer(with(idp, |c| c["sub"] = json!(""))),
        "non_string_sub" => bearer(with(idp, |c| c["sub"] = json!(12345))),
        "two_authorization_headers" => {
            let good = rs256(&claims(idp), KID);
            vec![format!("Bearer {good}"), format!("Bearer {good}")]
        }
        other => panic!("unknown case {other}"),
    }
}

const CASES: &[&str] = &[
    "alg_none",
    "hs256_signed_with_the_rsa_public_key",
    "wrong_signature",
    "expired",
    "nbf_in_the_future",
    "wrong_issuer",
    "wrong_audience",
    "missing_aud",
    "unknown_kid",
    "not_three_segments",
    "bad_base64",
    "header_not_json",
    "payload_not_json",
    "oversized",
    "missing_sub",
    "empty_sub",
    "non_string_sub",
    "two_authorization_headers",
];

async fn idp() -> (Idp, Served) {
    let (idp, served) = Idp::start();
    idp.set_keys(&[(KID, &keys::rsa1())]);
    (idp, served)
}

fn resolver(idp: &Idp) -> JwtResolver {
    JwtResolver::jwks(idp.jwks_url.as_str())
        .issuer(idp.issuer.as_str())
        .audience(AUD)
        .leeway(Duration::from_secs(5))
        .build()
        .expect("resolver")
}

fn request(values: &[String]) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut builder = http::Request::builder().uri("/api/echo");
    for value in values {
        builder = builder.header("authorization", value.as_str());
    }
    builder
        .body(http_body_util::Full::default())
        .expect("request")
}

async fn assert_rejected(case: &str) {
    let (idp, _server) = idp().await;
    let backend = MemoryBackend::with_allowance(100);
    let paywall = Paywall::builder(resolver(&idp), backend.clone())
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    // The valid token passes: the rejection below is the forgery's doing.
    let good = vec![format!("Bearer {}", rs256(&claims(&idp), KID))];
    assert_eq!(
        service
            .clone()
            .oneshot(request(&good))
            .await
            .expect("ok")
            .status(),
        StatusCode::OK
    );
    let (status, headers, body) = read_json(
        service
            .oneshot(request(&forged(case, &idp)))
            .await
            .expect("ok"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(
        headers["www-authenticate"], "Bearer error=\"invalid_token\"",
        "{case}"
    );
    assert_eq!(body["kind"], "unauthenticated", "{case}");
    assert_eq!(
        backend.ensure_calls(),
        1,
        "{case}: the forged caller never reached billing"
    );
}

macro_rules! matrix {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                assert_rejected(stringify!($case)).await;
            }
        )*
        #[test]
        fn every_case_has_its_test() {
            let named = [$(stringify!($case)),*];
            assert_eq!(named.as_slice(), CASES);
        }
    };
}

matrix!(
    alg_none,
    hs256_signed_with_the_rsa_public_key,
    wrong_signature,
    expired,
    nbf_in_the_future,
    wrong_issuer,
    wrong_audience,
    missing_aud,
    unknown_kid,
    not_three_segments,
    bad_base64,
    header_not_json,
    payload_not_json,
    oversized,
    missing_sub,
    empty_sub,
    non_string_sub,
    two_authorization_headers,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_through_the_axum_quickstart_over_a_real_socket() {
    let (idp, _server) = idp().await;
    let listener = loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = QuickstartConfig {
        jwks_url: Some(idp.jwks_url.clone()),
        jwt_issuer: Some(idp.issuer.clone()),
        jwt_audience: Some(AUD.into()),
        ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
    };
    let app = quickstart::build(&config, &base).expect("build");
    assert!(
        app.sample_token.is_none(),
        "with a JWKS the IdP issues tokens"
    );
    let served = Served::start(listener, app.router.clone());
    let client = reqwest::Client::new();
    let send = |values: Vec<String>| {
        let mut request = client.get(format!("{base}/api/hello"));
        for value in values {
            request = request.header("authorization", value);
        }
        request.send()
    };
    let ok = send(vec![format!("Bearer {}", rs256(&claims(&idp), KID))])
        .await
        .expect("send");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.json::<Value>().await.expect("json")["externalRef"],
        "victim"
    );
    for case in CASES {
        let response = send(forged(case, &idp)).await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{case}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["kind"], "unauthenticated", "{case}");
    }
    served.stop().await;
}
