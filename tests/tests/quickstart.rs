//! The quickstart's router over a real socket, with a SQLite file ledger, driven by an
//! HTTP client: free allowance → 402 → local checkout → allowed again.

use std::time::Duration;

use paywall_examples::config::QuickstartConfig;
use paywall_jwt::Hs256Signer;
use paywall_tests::{recorded, SECRET};
use quickstart_axum::{self as quickstart, Quickstart};
use reqwest::StatusCode;
use serde_json::Value;

struct Running {
    base: String,
    app: Quickstart,
    server: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(free_units: u64) -> Running {
    let dir = tempfile::tempdir().expect("tmp");
    let config = QuickstartConfig {
        jwt_secret: Some(SECRET.into()),
        free_units,
        db: Some(dir.path().join("ledger.db")),
        ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = quickstart::build(&config, &base).expect("build");
    let router = app.router.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    Running {
        base,
        app,
        server,
        stop,
        _dir: dir,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn token(sub: &str) -> String {
    Hs256Signer::new(SECRET)
        .token_for(sub, Duration::from_secs(600))
        .expect("sign")
}

async fn hello(
    client: &reqwest::Client,
    base: &str,
    sub: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = client
        .get(format!("{base}/api/hello"))
        .bearer_auth(token(sub))
        .send()
        .await
        .expect("send");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_allowance_then_402_then_checkout_then_allowed_again() {
    let running = start(3).await;
    let client = client();
    let base = running.base.as_str();

    let (status, _, first) = hello(&client, base, "user-e2e").await;
    assert_eq!(status, StatusCode::OK);
    let customer = first["customerRef"]
        .as_str()
        .expect("customerRef")
        .to_owned();
    assert!(customer.starts_with("cus_"), "{customer}");
    assert_eq!(first["externalRef"], "user-e2e");
    for _ in 0..2 {
        let (status, _, body) = hello(&client, base, "user-e2e").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["customerRef"],
            customer.as_str(),
            "the same customer every time"
        );
    }

    let (status, headers, body) = hello(&client, base, "user-e2e").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        headers.get("retry-after").is_some(),
        "the ledger knows when the period resets"
    );
    assert_eq!(body["kind"], "payment_required");
    assert_eq!(body["product"], "prd_quickstart");
    let checkout = body["checkoutUrl"]
        .as_str()
        .expect("checkoutUrl")
        .to_owned();
    assert!(
        checkout.starts_with(&format!("{base}/checkout/cs_")),
        "{checkout}"
    );
    assert!(
        !checkout.contains(&customer),
        "the link names a session, not the customer"
    );

    // The checkout page, then "paying" that session (nothing else can be paid).
    let page = client.get(&checkout).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("<form") && html.contains(&customer));
    let forged = client
        .post(format!("{base}/checkout"))
        .form(&[
            ("customer", customer.as_str()),
            ("product", "prd_quickstart"),
        ])
        .send()
        .await
        .expect("forged");
    assert!(
        forged.status().is_client_error(),
        "a form naming a customer buys nothing: {}",
        forged.status()
    );
    let guessed = client
        .post(format!("{base}/checkout/cs_00000000000000000000"))
        .send()
        .await
        .expect("guessed");
    assert_eq!(guessed.status(), StatusCode::NOT_FOUND);
    let paid = client.post(&checkout).send().await.expect("pay");
    assert_eq!(paid.status(), StatusCode::OK);
    assert!(paid
        .text()
        .await
        .expect("html")
        .contains("Payment received"));
    let again = client.post(&checkout).send().await.expect("pay again");
    assert_eq!(again.status(), StatusCode::OK);
    assert!(
        again.text().await.expect("html").contains("Already paid"),
        "a session pays once"
    );

    // Unlocked at once, not after the cache TTL.
    let (status, _, body) = hello(&client, base, "user-e2e").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["customerRef"], customer.as_str());

    let _ = running.stop.send(());
    running.server.await.expect("server");
    let report = running.app.paywall.shutdown(Duration::from_secs(10)).await;
    assert!(report.is_complete());
    let local = running.app.local.as_ref().expect("embedded backend");
    assert_eq!(
        recorded(local, Some(&customer)).await.1,
        4,
        "3 free + 1 paid request, a unit each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_spoofed_and_public_requests() {
    let running = start(5).await;
    let client = client();
    let base = running.base.as_str();

    let health = client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.expect("json")["status"], "ok");

    for auth in [None, Some("Bearer nonsense"), Some("Basic Zm9vOmJhcg==")] {
        let mut request = client.get(format!("{base}/api/hello"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = match auth {
            Some("Bearer nonsense") => "Bearer error=\"invalid_token\"",
            _ => "Bearer", // RFC 6750 §3.1: no bearer credentials, no error code
        };
        assert_eq!(response.headers()["www-authenticate"], challenge);
        assert_eq!(
            response.json::<Value>().await.expect("json")["kind"],
            "unauthenticated"
        );
    }

    let spoofed = client
        .get(format!("{base}/api/hello"))
        .bearer_auth(token("mallory"))
        .header("x-customer-ref", "cus_victim")
        .send()
        .await
        .expect("send");
    assert_eq!(spoofed.status(), StatusCode::OK);
    let body: Value = spoofed.json().await.expect("json");
    assert_ne!(body["customerRef"], "cus_victim");
    assert_eq!(body["externalRef"], "mallory");

    let missing = client
        .get(format!("{base}/nope"))
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json::<Value>().await.expect("json")["kind"],
        "not_found"
    );

    let bad_form = client
        .post(format!("{base}/checkout"))
        .form(&[("customer", "cus_nobody"), ("product", "prd_quickstart")])
        .send()
        .await
        .expect("send");
    assert_eq!(bad_form.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        bad_form.json::<Value>().await.expect("json")["kind"],
        "not_found"
    );

    let _ = running.stop.send(());
    running.server.await.expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_identity_resolver_supplies_email_and_name_for_the_customer() {
    use paywall::Identity;
    use paywall_examples::custom_identity::ApiKeys;

    let keys = ApiKeys::default();
    keys.insert(
        "ak_test_acme",
        Identity::new("acct_acme")
            .with_email("billing@acme.example")
            .with_name("Acme"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = QuickstartConfig::from_lookup(|_| None).expect("defaults");
    let app = quickstart::build_with(&config, &base, keys.clone()).expect("build");
    let served = paywall_tests::Served::start(listener, app.router.clone());
    let client = client();
    let call = |key: Option<&'static str>| {
        let mut request = client.get(format!("{base}/api/hello"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.send()
    };
    let ok = call(Some("ak_test_acme")).await.expect("send");
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.expect("json");
    assert_eq!(body["externalRef"], "acct_acme");
    assert_eq!(
        call(Some("ak_unknown")).await.expect("send").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(None).await.expect("send").status(),
        StatusCode::UNAUTHORIZED
    );
    keys.revoke("ak_test_acme");
    assert_eq!(
        call(Some("ak_test_acme")).await.expect("send").status(),
        StatusCode::UNAUTHORIZED
    );

    let local = app.local.as_ref().expect("embedded backend");
    let customer = local
        .find_customer(paywall_local::Lookup::ExternalRef("acct_acme"))
        .await
        .expect("ledger")
        .expect("customer");
    assert_eq!(customer.email.as_deref(), Some("billing@acme.example"));
    assert_eq!(customer.name.as_deref(), Some("Acme"));
    served.stop().await;
}
