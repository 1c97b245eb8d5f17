//! Keys fetched from a scriptable identity provider on 127.0.0.1 (fault shapes the
//! certified provider of `oidc.rs` cannot produce): rotation and withdrawal, bursts of
//! forged `kid`s against the fetch budget, outages at start and mid-run with an honest
//! `Retry-After`, discovery, `max-age`, and bounded, checked fetches.

use std::time::Duration;

use http::StatusCode;
use jsonwebtoken::Algorithm;
use paywall::{IdentityError, IdentityResolver, Paywall};
use paywall_jwt::JwtResolver;
use paywall_tests::idp::AUDIENCE as AUD;
use paywall_tests::*;
use serde_json::json;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_new_keys_accepted_after_one_refresh_removed_keys_rejected() {
    let (idp, _server) = Idp::start();
    let (old, new) = (keys::rsa1(), keys::rsa2());
    idp.set_keys(&[("k1", &old)]);
    let resolver = idp.resolver();
    idp.wait_for_fetches(1).await; // the background prefetch
    let old_token = idp.token(&old, "k1", "alice");
    assert_eq!(
        resolver.verify(&old_token).await.expect("k1").external_ref,
        "alice"
    );
    // Verified once, the token is answered without a future too.
    let now = |token: &str| resolver.resolve_now(&bearing(token));
    assert!(
        matches!(now(&old_token), Some(Ok(Some(identity))) if identity.external_ref == "alice")
    );

    // The IdP adds k2 right after start-up; a token signed by it triggers exactly one
    // refresh, at once (the start-up fetch does not count against the budget).
    idp.set_keys(&[("k1", &old), ("k2", &new)]);
    let fetches = idp.fetches();
    assert_eq!(
        resolver
            .verify(&idp.token(&new, "k2", "bob"))
            .await
            .expect("k2")
            .external_ref,
        "bob"
    );
    assert_eq!(idp.fetches(), fetches + 1, "one refresh for the new kid");
    assert!(resolver
        .verify(&idp.token(&new, "k2", "carol"))
        .await
        .is_ok());
    assert_eq!(idp.fetches(), fetches + 1, "known kids cost no fetch");

    // The IdP drops k1. Once a refresh has seen it gone, k1 tokens are refused, even
    // the one already in the verified-token cache.
    idp.set_keys(&[("k2", &new)]);
    let unknown = idp.token(&new, "k-unknown", "mallory");
    assert!(matches!(
        resolver.verify(&unknown).await,
        Err(IdentityError::Invalid(_))
    ));
    // Withdrawn, k1's verified token is no longer answered from the cache, with or
    // without a future.
    assert!(
        now(&old_token).is_none(),
        "a withdrawn key's token is verified anew"
    );
    assert!(matches!(
        resolver.verify(&old_token).await,
        Err(IdentityError::Invalid(_))
    ));
    assert!(
        now(&old_token).is_none(),
        "a refused token is never answered at once"
    );
    assert!(now(&unknown).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_forged_kids_costs_at_most_the_refetch_budget() {
    let (idp, _server) = Idp::start();
    let signer = keys::rsa1();
    idp.set_keys(&[("k1", &signer)]);
    let resolver = std::sync::Arc::new(idp.resolver());
    idp.wait_for_fetches(1).await;
    let before = idp.fetches();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let resolver = resolver.clone();
        let kid = format!("forged-{i}-{}", rand::random::<u64>());
        let forged = idp.token(&signer, &kid, "mallory");
        tasks.push(tokio::spawn(async move { resolver.verify(&forged).await }));
    }
    for task in tasks {
        // 401 once a fetch showed the kid unknown; 503 with a retry time once the
        // budget is spent (a real rotation then waits, it is never told "bad token").
        match task.await.expect("join") {
            Err(IdentityError::Invalid(_)) => {}
            Err(IdentityError::Unavailable {
                retry_after: Some(wait),
                ..
            }) => assert!(wait <= Duration::from_secs(30), "{wait:?}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        idp.fetches() - before <= 2,
        "{} fetches for 1,000 forged kids",
        idp.fetches() - before
    );
    assert!(resolver
        .verify(&idp.token(&signer, "k1", "alice"))
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_at_start_is_503_with_an_honest_retry_after() {
    let (idp, _server) = Idp::start();
    let signer = keys::rsa1();
    idp.set_keys(&[("k1", &signer)]);
    idp.set_down(true);
    let resolver = idp.resolver();
    let paywall = Paywall::builder(resolver, MemoryBackend::with_allowance(10))
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    let good = || {
        http::Request::builder()
            .header(
                "authorization",
                format!("Bearer {}", idp.token(&signer, "k1", "alice")),
            )
            .body(http_body_util::Full::<bytes::Bytes>::default())
            .expect("request")
    };
    let (status, headers, body) =
        read_json(service.clone().oneshot(good()).await.expect("ok")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["kind"], "identity_unavailable");
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .ok()
        .and_then(|secs| secs.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // The provider comes back; a client retrying when told is served.
    idp.set_down(false);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
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
        .without_token_cache()
        .build()
        .expect("resolver");
    assert!(resolver
        .verify(&idp.token(&signer, "k1", "alice"))
        .await
        .is_ok());
    idp.set_down(true);
    let fetches = idp.fetches();
    // An unknown kid makes the resolver try (and fail) to refresh: 503, not 401...
    assert!(matches!(
        resolver.verify(&idp.token(&signer, "k9", "x")).await,
        Err(IdentityError::Unavailable { .. })
    ));
    assert_eq!(idp.fetches(), fetches + 1);
    // ...and the keys it had still verify, every time.
    for sub in ["alice", "bob", "carol"] {
        assert_eq!(
            resolver
                .verify(&idp.token(&signer, "k1", sub))
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
            .verify(&idp.token(&signer, "ec", "oidc-user"))
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
async fn the_jwks_is_refreshed_every_max_age() {
    let (idp, _server) = Idp::start();
    idp.set_keys(&[("k1", &keys::rsa1())]);
    idp.set_max_age(Some(1));
    let _resolver = JwtResolver::jwks(idp.jwks_url.as_str())
        .issuer(idp.issuer.as_str())
        .audience(AUD)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_and_discovery_fetches_are_bounded_and_checked() {
    use axum::response::IntoResponse;
    use axum::routing::get;
    let listener = loopback().await;
    let port = listener.local_addr().expect("addr").port();
    let base = format!("http://127.0.0.1:{port}");
    let big = json!({ "keys": [], "pad": "x".repeat(300 * 1024) });
    let other_host = format!("http://localhost:{port}/big");
    let issuer = base.clone();
    let router = axum::Router::new()
        .route("/big", get(move || async move { axum::Json(big.clone()) }))
        .route(
            "/elsewhere",
            get(move || async move { axum::response::Redirect::temporary(&other_host) }),
        )
        .route(
            "/html",
            get(|| async { "<html>login</html>".into_response() }),
        )
        .route(
            "/plain/.well-known/openid-configuration",
            get(move || {
                let issuer = format!("{issuer}/plain");
                async move {
                    axum::Json(json!({ "issuer": issuer, "jwks_uri": "http://idp.example/jwks" }))
                }
            }),
        )
        .route(
            "/anonymous/.well-known/openid-configuration",
            get(|| async { axum::Json(json!({ "jwks_uri": "https://idp.example/jwks" })) }),
        );
    let served = Served::start(listener, router);
    let preload = |url: String| async move {
        JwtResolver::jwks(url)
            .issuer("https://idp.test/")
            .audience(AUD)
            .build()
            .expect("resolver")
            .preload()
            .await
    };
    assert!(matches!(
        preload(format!("{base}/big")).await,
        Err(paywall_jwt::JwksError::TooLarge { .. })
    ));
    assert!(
        matches!(
            preload(format!("{base}/elsewhere")).await,
            Err(paywall_jwt::JwksError::Status { status: 307, .. })
        ),
        "a redirect to another host is not followed"
    );
    assert!(matches!(
        preload(format!("{base}/html")).await,
        Err(paywall_jwt::JwksError::NotAKeySet { .. })
    ));
    for (path, why) in [
        ("plain", "a plain-http jwks_uri off loopback"),
        ("anonymous", "a document without issuer"),
    ] {
        let resolver = JwtResolver::oidc(format!("{base}/{path}"))
            .audience(AUD)
            .build()
            .expect("resolver");
        assert!(
            matches!(
                resolver.preload().await,
                Err(paywall_jwt::JwksError::Discovery { .. })
            ),
            "{why}"
        );
    }
    // No JWKS without an issuer and an audience, unless waived by name.
    let no_issuer = JwtResolver::jwks(format!("{base}/jwks"))
        .audience(AUD)
        .build();
    assert_eq!(
        no_issuer.err(),
        Some(paywall_jwt::JwtConfigError::MissingIssuer)
    );
    let no_audience = JwtResolver::oidc(base.as_str()).build();
    assert_eq!(
        no_audience.err(),
        Some(paywall_jwt::JwtConfigError::MissingAudience)
    );
    served.stop().await;
}
