//! `POST /api/generate`, priced by the tokens it streams, over real sockets on both
//! quickstarts: charged what was produced, exact under concurrency (one instance, and
//! three sharing Redis), a client that leaves pays for what it read, bad requests
//! reserve nothing, and a shutdown mid-stream records what was streamed once.

use std::time::Duration;

use paywall_examples::config::QuickstartConfig;
use paywall_tests::*;
use quickstart_axum as quickstart;
use serde_json::{json, Value};

fn config(free_units: u64, delay_ms: u64) -> QuickstartConfig {
    QuickstartConfig {
        generate_delay: Duration::from_millis(delay_ms),
        ..quickstart_config(free_units)
    }
}

async fn generate(base: &str, sub: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/generate"))
        .header("authorization", bearer(sub))
        .json(&body)
        .send()
        .await
        .expect("send")
}

/// Status and the number of token events of a whole answer.
async fn tokens_of(base: &str, sub: &str, body: Value) -> (u16, usize) {
    let response = generate(base, sub, body).await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    if status == 200 {
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
    (status, text.matches("data: {\"token\"").count())
}

/// Units of the `tokens` meter in a ledger.
async fn tokens_recorded(ledger: &paywall_local::LocalBackend) -> u64 {
    let rows = ledger.ledger(None).await.expect("ledger");
    rows.iter()
        .filter(|r| r.meter == "tokens")
        .map(|r| r.units)
        .sum()
}

async fn ten_streams_of_thirty(bases: &[String]) -> (usize, usize) {
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let base = bases[i % bases.len()].clone();
            tokio::spawn(async move {
                tokens_of(&base, "ada", json!({"max_tokens": 30, "tokens": 30})).await
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("join") {
            (200, 30) => ok += 1,
            (402, 0) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_charged_the_tokens_it_produced_on_both() {
    for app in both_apps(config(100, 1)).await {
        let (status, tokens) =
            tokens_of(&app.base, "ada", json!({"max_tokens": 30, "tokens": 20})).await;
        assert_eq!((status, tokens), (200, 20), "{}", app.name);
        let answer = generate(
            &app.base,
            "ada",
            json!({"max_tokens": 10, "tokens": 4, "stream": false}),
        )
        .await;
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.json::<Value>().await.expect("json"),
            json!({"tokens": 4})
        );
        app.paywall.flush().await;
        let ledger = app.local.clone().expect("embedded");
        assert_eq!(tokens_recorded(&ledger).await, 24, "{}", app.name);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_streams_with_a_hundred_units_admit_three_on_both() {
    for app in both_apps(config(100, 1)).await {
        let (ok, refused) = ten_streams_of_thirty(std::slice::from_ref(&app.base)).await;
        assert_eq!((ok, refused), (3, 7), "{}", app.name);
        app.paywall.flush().await;
        assert_eq!(
            tokens_recorded(app.local.as_ref().expect("embedded")).await,
            90
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_through_the_solvapay_dev_server() {
    let (dev, ledger) = dev_server(loopback().await, "prd_quickstart", 100, None);
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        ..config(100, 1)
    };
    let [axum, actix] = both_apps(config).await;
    let (status, tokens) =
        tokens_of(&axum.base, "ada", json!({"max_tokens": 30, "tokens": 20})).await;
    assert_eq!((status, tokens), (200, 20));
    axum.paywall.flush().await;
    assert_eq!(tokens_recorded(&ledger).await, 20);
    let (ok, refused) = ten_streams_of_thirty(std::slice::from_ref(&actix.base)).await;
    assert_eq!((ok, refused), (2, 8), "80 left after the first 20");
    actix.paywall.flush().await;
    assert_eq!(tokens_recorded(&ledger).await, 80);
    let (status, body) = {
        let response = generate(&actix.base, "ada", json!({"max_tokens": 30})).await;
        (
            response.status(),
            response.json::<Value>().await.expect("json"),
        )
    };
    assert_eq!(status, 402);
    assert_eq!(body["remaining"], 20);
    assert!(body["checkoutUrl"]
        .as_str()
        .is_some_and(|u| u.starts_with(&dev.base)));
    axum.stop().await;
    actix.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_sharing_redis_admit_three_streams_of_thirty() {
    let redis = RedisServer::start();
    let (dev, ledger) = dev_server(loopback().await, "prd_quickstart", 100, None);
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        redis_url: Some(redis.url()),
        ..config(100, 1)
    };
    let mut apps = Vec::new();
    for _ in 0..3 {
        let listener = loopback().await;
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = quickstart::build(&config, &base).expect("build");
        let paywall = app.paywall.clone();
        apps.push((base, paywall, Served::start(listener, app.router.clone())));
    }
    let bases: Vec<String> = apps.iter().map(|(base, _, _)| base.clone()).collect();
    assert_eq!(ten_streams_of_thirty(&bases).await, (3, 7));
    for (_, paywall, served) in apps {
        paywall.flush().await;
        served.stop().await;
        paywall.shutdown(Duration::from_secs(5)).await;
    }
    assert_eq!(tokens_recorded(&ledger).await, 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_pays_for_what_it_read_on_both() {
    for app in both_apps(config(100, 20)).await {
        let mut response = generate(&app.base, "ada", json!({"max_tokens": 100})).await;
        assert_eq!(response.status(), 200);
        let mut seen = String::new();
        while seen.matches("data: {\"token\"").count() < 10 {
            let chunk = response.chunk().await.expect("chunk").expect("more");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        drop(response); // the client goes away
                        // The server notices at its next write (within a token's delay or two).
        let ledger = app.local.clone().expect("embedded");
        let mut recorded = 0;
        for _ in 0..100 {
            app.paywall.flush().await;
            recorded = tokens_recorded(&ledger).await;
            if recorded > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            (10..=12).contains(&recorded),
            "{}: {recorded} units",
            app.name
        );
        let (status, tokens) =
            tokens_of(&app.base, "ada", json!({"max_tokens": 80, "tokens": 1})).await;
        assert_eq!(
            (status, tokens),
            (200, 1),
            "{}: the rest was released",
            app.name
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_json_and_reserve_nothing_on_both() {
    for app in both_apps(config(100, 1)).await {
        let client = reqwest::Client::new();
        let post = |body: &'static str, content_type: &'static str| {
            client
                .post(format!("{}/api/generate", app.base))
                .header("authorization", bearer("ada"))
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        for (body, content_type) in [
            ("{\"max_tokens\": 0}", "application/json"),
            ("{\"max_tokens\": 4097}", "application/json"),
            ("{\"tokens\": 3}", "application/json"),
            ("{\"max_tokens\": ", "application/json"),
            ("max_tokens=3", "application/x-www-form-urlencoded"),
            ("{\"max_tokens\": 3}", "text/plain"),
        ] {
            let response = post(body, content_type).await.expect("send");
            assert_eq!(response.status(), 400, "{} {body}", app.name);
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "as every other error"
            );
            let answer: Value = response.json().await.expect("json");
            assert_eq!(answer["kind"], "bad_request", "{answer}");
            assert_eq!(answer["status"], 400, "{answer}");
            assert_eq!(answer["detail"], answer["message"], "{answer}");
        }
        let unauthenticated = reqwest::Client::new()
            .post(format!("{}/api/generate", app.base))
            .json(&json!({"max_tokens": 3}))
            .send()
            .await
            .expect("send");
        assert_eq!(unauthenticated.status(), 401);
        // Nothing was held: all 100 can still be reserved.
        let (status, tokens) =
            tokens_of(&app.base, "ada", json!({"max_tokens": 100, "tokens": 2})).await;
        assert_eq!((status, tokens), (200, 2), "{}", app.name);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_mid_stream_records_what_was_streamed_once() {
    let config = config(100, 20);
    let listener = loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = quickstart::build(&config, &base).expect("build");
    let (paywall, ledger) = (app.paywall.clone(), app.local.clone().expect("embedded"));
    let served = Served::start(listener, app.router.clone());
    let mut response = generate(&base, "ada", json!({"max_tokens": 100})).await;
    let mut seen = String::new();
    while seen.matches("data: {\"token\"").count() < 5 {
        let chunk = response.chunk().await.expect("chunk").expect("more");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The server is asked to stop while the stream runs; the client then leaves too.
    let stopping = tokio::spawn(served.stop());
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(response);
    stopping.await.expect("stopped");
    let report = paywall.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_complete());
    let (events, units) = recorded(&ledger, None).await;
    assert_eq!(events, 1, "one usage event for the stream");
    assert!((5..=9).contains(&units), "{units} units");
}
