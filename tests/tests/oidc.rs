//! Identity against a certified OpenID provider (`oidc-provider` from npm, see
//! `support/oidc.rs`): RFC 9068 access tokens (`typ: at+jwt`) from the
//! client-credentials grant, signed RS256, PS256, ES256, ES384 and EdDSA, through both
//! quickstarts configured by discovery (`PAYWALL_OIDC_ISSUER`) or by JWKS URL; key
//! rotation, withdrawal and replacement; keys the provider marks for encryption or for
//! another algorithm; expiry; the provider down at start then up; start-up checks.

use std::time::Duration;

use http::StatusCode;
use paywall::IdentityError;
use paywall_examples::config::QuickstartConfig;
use paywall_examples::startup;
use paywall_jwt::{JwtResolver, JwtResolverBuilder};
use paywall_tests::oidc::{ALGORITHMS, AUDIENCE};
use paywall_tests::*;
use quickstart_axum as quickstart;
use serde_json::{json, Value};

/// The quickstart configuration for tokens of `provider`, by discovery.
fn oidc_config(issuer: &str) -> QuickstartConfig {
    QuickstartConfig {
        jwt_secret: None,
        oidc_issuer: Some(issuer.to_owned()),
        jwt_audience: Some(AUDIENCE.into()),
        ..quickstart_config(1000)
    }
}

/// `GET /api/hello` with `token` (none when empty): status, `WWW-Authenticate`,
/// `Retry-After`, body.
async fn hello(app: &App, token: &str) -> (StatusCode, Option<String>, Option<u64>, Value) {
    let headers = if token.is_empty() {
        Vec::new()
    } else {
        vec![("authorization", format!("Bearer {token}"))]
    };
    let (seen, body) = send(app, reqwest::Method::GET, "/api/hello", &headers, None).await;
    (
        StatusCode::from_u16(seen.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        seen.www_authenticate,
        seen.retry_after,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

async fn assert_admitted(app: &App, token: &str, sub: &str) {
    let (status, _, _, body) = hello(app, token).await;
    assert_eq!(status, StatusCode::OK, "{}: {body}", app.name);
    assert_eq!(body["externalRef"], sub, "{}", app.name);
}

async fn assert_refused(app: &App, token: &str, case: &str) {
    let (status, challenge, _, body) = hello(app, token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{} {case}: {body}",
        app.name
    );
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer error=\"invalid_token\""),
        "{} {case}",
        app.name
    );
    assert_eq!(body["kind"], "unauthenticated", "{} {case}", app.name);
}

fn resolver(provider: &OidcProvider) -> JwtResolverBuilder {
    JwtResolver::oidc(provider.issuer.as_str()).audience(AUDIENCE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_the_provider_signs_with_is_accepted_by_discovery_on_both_adapters() {
    let provider = OidcProvider::start();
    let apps = both_apps(oidc_config(&provider.issuer)).await;
    for (client, alg) in (1..).zip(ALGORITHMS) {
        let token = provider.token(client, alg).await;
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 tokens");
        for app in &apps {
            assert_admitted(app, &token, &format!("client-{client}")).await;
        }
    }
    // Minted by the same provider for another API: refused.
    let other = provider.token_for(9, "https://other.test/RS256").await;
    for app in &apps {
        assert_refused(app, &other, "another audience").await;
        let (status, challenge, _, _) = hello(app, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer"),
            "no credentials, no error"
        );
    }
    for app in apps {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_with_an_algorithm_list_accepts_only_those() {
    let provider = OidcProvider::start();
    let config = QuickstartConfig {
        oidc_issuer: None,
        jwks_url: Some(provider.jwks_url()),
        jwt_issuer: Some(provider.issuer.clone()),
        jwt_algorithms: vec![paywall_jwt::Algorithm::PS256, paywall_jwt::Algorithm::EdDSA],
        ..oidc_config(&provider.issuer)
    };
    let apps = both_apps(config).await;
    let (ps256, eddsa, rs256) = (
        provider.token(1, "PS256").await,
        provider.token(2, "EdDSA").await,
        provider.token(3, "RS256").await,
    );
    for app in &apps {
        assert_admitted(app, &ps256, "client-1").await;
        assert_admitted(app, &eddsa, "client-2").await;
        assert_refused(app, &rs256, "an algorithm not in PAYWALL_JWT_ALGORITHMS").await;
    }
    for app in apps {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_accepted_on_its_first_request_and_a_withdrawn_one_refused() {
    let provider = OidcProvider::start();
    let before = provider.token(1, "RS256").await;
    let old_kid = OidcProvider::kid_of(&before);
    let apps = both_apps(oidc_config(&provider.issuer)).await;
    for app in &apps {
        assert_admitted(app, &before, "client-1").await;
    }
    // Right after start-up the provider rotates: the first token of the new key is
    // served (one fetch), never answered 401.
    let new_kid = provider.rotate("RS256").await;
    let rotated = provider.token(2, "RS256").await;
    assert_eq!(OidcProvider::kid_of(&rotated), new_kid);
    for app in &apps {
        assert_admitted(app, &rotated, "client-2").await;
    }
    // The old key is withdrawn and another rotation follows: once the resolver has
    // seen the old key gone, tokens it signed are refused, even cached ones.
    provider.withdraw(&old_kid).await;
    provider.rotate("RS256").await;
    let latest = provider.token(3, "RS256").await;
    for app in &apps {
        assert_admitted(app, &latest, "client-3").await;
        assert_refused(app, &before, "a withdrawn key").await;
    }
    for app in apps {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_key_material_invalidates_tokens_verified_before() {
    let provider = OidcProvider::start();
    let resolver = resolver(&provider).build().expect("resolver");
    let token = provider.token(1, "ES256").await;
    assert!(resolver.verify(&token).await.is_ok(), "verified and cached");
    provider.replace(&OidcProvider::kid_of(&token)).await;
    // Any fetch shows the change: here, the one a newly rotated key causes.
    provider.rotate("RS256").await;
    let rotated = provider.token(2, "RS256").await;
    assert!(resolver.verify(&rotated).await.is_ok());
    assert!(
        matches!(
            resolver.verify(&token).await,
            Err(IdentityError::Invalid(_))
        ),
        "the cached token is checked again against the new material"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_keys_and_keys_of_another_algorithm_never_verify() {
    let provider = OidcProvider::start();
    let apps = both_apps(oidc_config(&provider.issuer)).await;
    let ps256_kid = OidcProvider::kid_of(&provider.token(1, "PS256").await);
    let control = provider
        .sign(&ps256_kid, "PS256", provider.claims("control"))
        .await;
    let with_enc_key = provider
        .sign("enc-1", "RS256", provider.claims("mallory"))
        .await;
    let alg_mismatch = provider
        .sign(&ps256_kid, "RS256", provider.claims("mallory"))
        .await;
    let expired = provider
        .sign(
            &ps256_kid,
            "PS256",
            json!({ "sub": "late", "iss": provider.issuer, "aud": AUDIENCE, "exp": paywall_jwt::unix_now() - 120 }),
        )
        .await;
    let wrong_issuer = provider
        .sign(
            &ps256_kid,
            "PS256",
            json!({ "sub": "x", "iss": "https://evil.test", "aud": AUDIENCE, "exp": paywall_jwt::unix_now() + 60 }),
        )
        .await;
    for app in &apps {
        assert_admitted(app, &control, "control").await;
        assert_refused(app, &with_enc_key, "signed with a `use: enc` key").await;
        assert_refused(app, &alg_mismatch, "RS256 with a key declared PS256").await;
        assert_refused(app, &expired, "expired").await;
        assert_refused(app, &wrong_issuer, "another issuer").await;
    }
    for app in apps {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refused_once_it_expires() {
    let provider = OidcProvider::start();
    let resolver = resolver(&provider)
        .leeway(Duration::ZERO)
        .build()
        .expect("resolver");
    let token = provider
        .token_for(1, &format!("{AUDIENCE}/EdDSA/short"))
        .await;
    assert_eq!(
        resolver.verify(&token).await.expect("valid").external_ref,
        "client-1"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        matches!(
            resolver.verify(&token).await,
            Err(IdentityError::Invalid(_))
        ),
        "expired, even though it was cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_at_start_is_503_with_a_retry_after_that_holds() {
    let port = std_loopback().local_addr().expect("addr").port();
    let issuer = format!("http://127.0.0.1:{port}");
    let apps = both_apps(oidc_config(&issuer)).await;
    // Any RS256 token: no key can be fetched to check it.
    let unverifiable = sign_jwt(
        &keys::rsa1().encoding,
        jsonwebtoken::Algorithm::RS256,
        Some("k"),
        &claims_for("x", &issuer, AUDIENCE),
    );
    for app in &apps {
        let (status, _, retry_after, body) = hello(app, &unverifiable).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}: {body}",
            app.name
        );
        assert_eq!(body["kind"], "identity_unavailable");
        let wait = retry_after.expect("Retry-After");
        assert!((1..=10).contains(&wait), "{}: Retry-After {wait}", app.name);
    }
    // The provider comes up. A request now is served, or told how long to wait; the
    // retry after exactly that long is served.
    let provider = OidcProvider::start_on(port);
    let token = provider.token(1, "ES384").await;
    for app in &apps {
        let (status, _, retry_after, body) = hello(app, &token).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let wait = retry_after.expect("Retry-After");
            assert!(wait <= 10, "{}: Retry-After {wait}", app.name);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        } else {
            assert_eq!(status, StatusCode::OK, "{}: {body}", app.name);
        }
        assert_admitted(app, &token, "client-1").await;
    }
    for app in apps {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_stops_on_an_answer_that_is_not_a_key_set_and_starts_without_a_provider() {
    let provider = OidcProvider::start();
    let config = |jwks_url: String| QuickstartConfig {
        oidc_issuer: None,
        jwks_url: Some(jwks_url),
        jwt_issuer: Some(provider.issuer.clone()),
        ..oidc_config(&provider.issuer)
    };
    let base = "http://127.0.0.1:9";
    // The discovery document instead of the JWKS, and a 404.
    for wrong in [
        format!("{}/.well-known/openid-configuration", provider.issuer),
        format!("{}/no-such-path", provider.issuer),
    ] {
        let app = quickstart::build(&config(wrong.clone()), base).expect("build");
        let jwt = app.jwt.as_deref().expect("a JWT resolver");
        let err = jwt.preload().await.expect_err("not a key set");
        assert!(!err.is_transient(), "{wrong}: {err}");
        assert!(err.to_string().contains(&wrong), "names the URL: {err}");
        assert!(startup::preload_keys("test", Some(jwt)).await.is_err());
    }
    // The real JWKS: five signing keys (the encryption key is skipped).
    let app = quickstart::build(&config(provider.jwks_url()), base).expect("build");
    assert_eq!(app.jwt.as_deref().expect("jwt").preload().await, Ok(5));
    // Nothing listening: start anyway.
    let port = std_loopback().local_addr().expect("addr").port();
    let app =
        quickstart::build(&config(format!("http://127.0.0.1:{port}/jwks")), base).expect("build");
    let jwt = app.jwt.as_deref().expect("jwt");
    let err = jwt.preload().await.expect_err("unreachable");
    assert!(err.is_transient(), "{err}");
    assert!(startup::preload_keys("test", Some(jwt)).await.is_ok());
    // Discovery of an issuer whose document names another issuer is refused.
    let liar = JwtResolver::oidc(format!("{}/", provider.issuer).replace("127.0.0.1", "localhost"))
        .audience(AUDIENCE)
        .build()
        .expect("resolver");
    assert!(matches!(
        liar.preload().await,
        Err(paywall_jwt::JwksError::Discovery { .. })
    ));
}
