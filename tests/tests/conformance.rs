//! One list of scenarios, run against `axum-quickstart` and `actix-quickstart` over real
//! sockets: the same status, the same body bytes (once the per-instance base URL and
//! customer reference are written as placeholders) and the same paywall headers.

use std::time::Duration;

use paywall_examples::config::QuickstartConfig;
use paywall_jwt::Hs256Signer;
use paywall_tests::*;
use reqwest::StatusCode;
use serde_json::json;

/// A request and the status both servers must answer it with.
struct Scenario {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<&'static str>,
    status: u16,
}

impl Scenario {
    fn new(
        name: &'static str,
        method: reqwest::Method,
        path: String,
        headers: Vec<(&'static str, String)>,
        body: Option<&'static str>,
        status: u16,
    ) -> Self {
        Self {
            name,
            method,
            path,
            headers,
            body,
            status,
        }
    }
}

async fn customer_of(server: &App, sub: &str) -> String {
    let (seen, _) = send(
        server,
        reqwest::Method::GET,
        "/api/hello",
        &[("authorization", bearer(sub))],
        None,
    )
    .await;
    let body: serde_json::Value = serde_json::from_str(&seen.body).expect("json");
    body["customerRef"].as_str().expect("customer").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_answers_from_axum_and_actix() {
    let servers = both_apps(quickstart_config(3)).await;
    let expired = Hs256Signer::new(SECRET)
        .sign(&json!({ "sub": "x", "exp": paywall_jwt::unix_now() - 3600 }))
        .expect("sign");
    let scenarios = [
        Scenario::new(
            "public route",
            reqwest::Method::GET,
            "/health".into(),
            vec![],
            None,
            200,
        ),
        Scenario::new(
            "no token",
            reqwest::Method::GET,
            "/api/hello".into(),
            vec![],
            None,
            401,
        ),
        Scenario::new(
            "garbage token",
            reqwest::Method::GET,
            "/api/hello".into(),
            vec![("authorization", "Bearer garbage".into())],
            None,
            401,
        ),
        Scenario::new(
            "basic scheme",
            reqwest::Method::GET,
            "/api/hello".into(),
            vec![("authorization", "Basic Zm9vOmJhcg==".into())],
            None,
            401,
        ),
        Scenario::new(
            "expired token",
            reqwest::Method::GET,
            "/api/hello".into(),
            vec![("authorization", format!("Bearer {expired}"))],
            None,
            401,
        ),
        Scenario::new(
            "two authorization headers",
            reqwest::Method::GET,
            "/api/hello".into(),
            vec![
                ("authorization", bearer("a")),
                ("authorization", bearer("b")),
            ],
            None,
            401,
        ),
        Scenario::new(
            "unknown path",
            reqwest::Method::GET,
            "/nope".into(),
            vec![],
            None,
            404,
        ),
        Scenario::new(
            "wrong method",
            reqwest::Method::DELETE,
            "/api/hello".into(),
            vec![("authorization", bearer("conf"))],
            None,
            405,
        ),
        Scenario::new(
            "checkout of an unknown session",
            reqwest::Method::GET,
            "/checkout/cs_unknown".into(),
            vec![],
            None,
            404,
        ),
        Scenario::new(
            "checkout paying an unknown session",
            reqwest::Method::POST,
            "/checkout/cs_nobody".into(),
            vec![],
            None,
            404,
        ),
        Scenario::new(
            "checkout of a malformed session",
            reqwest::Method::GET,
            "/checkout/cs%20%3Cscript%3E".into(),
            vec![],
            None,
            404,
        ),
    ];
    for Scenario {
        name,
        method,
        path,
        headers,
        body,
        status,
    } in scenarios
    {
        let mut seen = Vec::new();
        for server in &servers {
            seen.push(normalize(
                send(server, method.clone(), &path, &headers, body).await.0,
                server,
                &[],
            ));
        }
        let seen: [Seen; 2] = seen.try_into().expect("two");
        assert_same(name, &seen, status);
        if status == 401 {
            // RFC 6750 §3.1: no error code without (bearer) credentials.
            let challenge = if matches!(name, "no token" | "basic scheme") {
                "Bearer"
            } else {
                "Bearer error=\"invalid_token\""
            };
            assert_eq!(
                seen[0].www_authenticate.as_deref(),
                Some(challenge),
                "{name}"
            );
            assert_eq!(
                seen[0].content_type.as_deref(),
                Some("application/problem+json"),
                "{name}"
            );
        }
    }

    // Allowed, spoofed header stripped, then 402 with every field, then the checkout.
    let customers = [
        customer_of(&servers[0], "conf").await,
        customer_of(&servers[1], "conf").await,
    ];
    let mut seen = Vec::new();
    for (server, customer) in servers.iter().zip(&customers) {
        let headers = [
            ("authorization", bearer("conf")),
            ("x-customer-ref", "cus_victim".to_owned()),
        ];
        let (answer, _) = send(server, reqwest::Method::GET, "/api/hello", &headers, None).await;
        assert!(
            answer.body.contains(customer.as_str()) && !answer.body.contains("cus_victim"),
            "{}: {}",
            server.name,
            answer.body
        );
        seen.push(normalize(answer, server, &[customer]));
    }
    assert_same(
        "allowed, spoofed x-customer-ref stripped",
        &seen.try_into().expect("two"),
        200,
    );
    let mut seen = Vec::new();
    let mut raw = Vec::new();
    for (server, customer) in servers.iter().zip(&customers) {
        let _ = send(
            server,
            reqwest::Method::GET,
            "/api/hello",
            &[("authorization", bearer("conf"))],
            None,
        )
        .await;
        let (answer, body) = send(
            server,
            reqwest::Method::GET,
            "/api/hello",
            &[("authorization", bearer("conf"))],
            None,
        )
        .await;
        raw.push(body);
        seen.push(normalize(answer, server, &[customer]));
    }
    let seen: [Seen; 2] = seen.try_into().expect("two");
    assert_same("402 with every field", &seen, 402);
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/problem+json")
    );
    assert!(seen[0].retry_after.is_some());
    let body: serde_json::Value = serde_json::from_str(&raw[0]).expect("json");
    for field in [
        "success",
        "error",
        "kind",
        "product",
        "checkoutUrl",
        "message",
        "type",
        "title",
        "status",
        "detail",
    ] {
        assert!(body.get(field).is_some(), "402 has {field}");
    }

    let mut pages = Vec::new();
    let mut links = Vec::new();
    for ((server, customer), body) in servers.iter().zip(&customers).zip(&raw) {
        let body: serde_json::Value = serde_json::from_str(body).expect("json");
        let checkout = body["checkoutUrl"]
            .as_str()
            .expect("checkoutUrl")
            .to_owned();
        assert!(checkout.starts_with(&server.base), "{checkout}");
        pages.push(normalize(
            send(server, reqwest::Method::GET, &checkout, &[], None)
                .await
                .0,
            server,
            &[customer],
        ));
        links.push(checkout);
    }
    assert_same("checkout page", &pages.try_into().expect("two"), 200);
    let mut paid = Vec::new();
    for ((server, customer), checkout) in servers.iter().zip(&customers).zip(&links) {
        paid.push(normalize(
            send(server, reqwest::Method::POST, checkout, &[], None)
                .await
                .0,
            server,
            &[customer],
        ));
    }
    assert_same("checkout paid", &paid.try_into().expect("two"), 200);
    let mut unlocked = Vec::new();
    for (server, customer) in servers.iter().zip(&customers) {
        let (answer, _) = send(
            server,
            reqwest::Method::GET,
            "/api/hello",
            &[("authorization", bearer("conf"))],
            None,
        )
        .await;
        unlocked.push(normalize(answer, server, &[customer]));
    }
    assert_same(
        "unlocked after paying",
        &unlocked.try_into().expect("two"),
        200,
    );

    for server in servers {
        let paywall = server.paywall.clone();
        server.stop().await;
        assert!(paywall
            .shutdown(Duration::from_secs(10))
            .await
            .is_complete());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_admission_and_an_exact_ledger_on_both() {
    let servers = both_apps(quickstart_config(5)).await;
    for server in servers {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let auth = bearer("burst-user");
        let url = format!("{}/api/hello", server.base);
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let request = client.get(&url).header("authorization", &auth);
            tasks.push(tokio::spawn(async move {
                request.send().await.map(|r| r.status())
            }));
        }
        let (mut ok, mut payment) = (0, 0);
        for task in tasks {
            match task.await.expect("join").expect("send") {
                StatusCode::OK => ok += 1,
                StatusCode::PAYMENT_REQUIRED => payment += 1,
                other => panic!("{}: unexpected {other}", server.name),
            }
        }
        assert_eq!((ok, payment), (5, 195), "{}", server.name);
        let paywall = server.paywall.clone();
        let local = server.local.clone().expect("embedded backend");
        let name = server.name;
        server.stop().await;
        assert!(paywall
            .shutdown(Duration::from_secs(10))
            .await
            .is_complete());
        assert_eq!(
            recorded(&local, None).await.1,
            5,
            "{name}: the admitted successes billed, a unit each"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_503_when_the_backend_is_down_on_both() {
    let dead = std_loopback();
    let base = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead); // nothing listens there now
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&base).max_attempts(1)),
        ..quickstart_config(5)
    };
    let servers = both_apps(config).await;
    let mut seen = Vec::new();
    for server in &servers {
        seen.push(normalize(
            send(
                server,
                reqwest::Method::GET,
                "/api/hello",
                &[("authorization", bearer("x"))],
                None,
            )
            .await
            .0,
            server,
            &[],
        ));
    }
    let seen: [Seen; 2] = seen.try_into().expect("two");
    assert_same("backend down, fail-closed", &seen, 503);
    assert!(seen[0].retry_after.is_some());
    assert!(seen[0].body.contains("billing_unavailable"));
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_fields_count_down_to_zero_identically_on_both() {
    let servers = both_apps(quickstart_config(3)).await;
    let mut seen: Vec<Vec<Seen>> = Vec::new();
    let mut resets = Vec::new();
    for server in &servers {
        let auth = [("authorization", bearer("counter"))];
        let customer = customer_of(server, "counter").await;
        let mut answers = Vec::new();
        // customer_of spent one unit: 2 left.
        for _ in 0..3 {
            let (answer, _) = send(server, reqwest::Method::GET, "/api/hello", &auth, None).await;
            resets.push(reset_seconds(answer.ratelimit.as_deref()).expect("t"));
            answers.push(normalize(answer, server, &[&customer]));
        }
        seen.push(answers);
    }
    let (low, high) = (resets.iter().min(), resets.iter().max());
    assert!(
        high.zip(low).is_some_and(|(h, l)| h - l <= 5),
        "resets {resets:?}"
    );
    let axum = &seen[0];
    let left: Vec<(u16, Option<&str>)> = axum
        .iter()
        .map(|s| {
            (
                s.status,
                s.ratelimit.as_deref().and_then(|v| v.split(';').nth(1)),
            )
        })
        .collect();
    assert_eq!(
        left,
        [(200, Some("r=1")), (200, Some("r=0")), (402, Some("r=0"))]
    );
    for answer in axum {
        let value = answer.ratelimit.as_deref().unwrap_or("");
        assert!(value.starts_with("\"prd_quickstart\";r="), "{value}");
        assert!(value.contains(";t="), "the reset is known: {value}");
        let policy = answer.ratelimit_policy.as_deref().unwrap_or("");
        assert!(policy.starts_with("\"prd_quickstart\";q=3;w="), "{policy}");
    }
    assert_eq!(seen[0], seen[1], "axum and actix differ");
    for server in servers {
        server.stop().await;
    }
}
