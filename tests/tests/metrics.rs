//! `/metrics` on both quickstarts counts exactly what was decided. Its own test binary:
//! the Prometheus recorder is process-wide, and no other test may add to its counts.

use paywall_tests::*;

/// The value of one sample line of the Prometheus text format.
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn page(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_decision_once_on_both() {
    let client = reqwest::Client::new();
    let mut expected = 0.0;
    for app in both_apps(quickstart_config(1)).await {
        let hello = |token: Option<String>| {
            let mut request = client.get(format!("{}/api/hello", app.base));
            if let Some(token) = token {
                request = request.header("authorization", token);
            }
            request.send()
        };
        let user = |n: u32| Some(bearer(&format!("{}-user-{n}", app.name)));
        for n in 0..3 {
            assert_eq!(hello(user(n)).await.expect("send").status(), 200);
        }
        assert_eq!(hello(None).await.expect("send").status(), 401);
        assert_eq!(
            hello(Some("Bearer forged".into()))
                .await
                .expect("send")
                .status(),
            401
        );
        assert_eq!(hello(user(0)).await.expect("send").status(), 402);
        expected += 1.0;
        app.paywall.flush().await;
        let page = page(&app.base).await;
        let decisions = |outcome: &str| {
            sample(
                &page,
                &format!("paywall_decisions_total{{outcome=\"{outcome}\"}}"),
            )
        };
        assert_eq!(
            decisions("admitted"),
            3.0 * expected,
            "{}:\n{page}",
            app.name
        );
        assert_eq!(decisions("unauthenticated"), 2.0 * expected, "{}", app.name);
        assert_eq!(decisions("payment_required"), expected, "{}", app.name);
        assert_eq!(decisions("unavailable"), 0.0);
        let calls = |call: &str| {
            sample(
                &page,
                &format!("paywall_backend_calls_total{{call=\"{call}\",result=\"ok\"}}"),
            )
        };
        assert_eq!(calls("ensure_customer"), 3.0 * expected, "{page}");
        assert!(calls("record_usage") >= expected);
        assert_eq!(
            sample(&page, "paywall_usage_events_total{result=\"recorded\"}"),
            3.0 * expected
        );
        assert_eq!(sample(&page, "paywall_usage_pending"), 0.0);
        assert!(
            page.contains("paywall_backend_call_duration_seconds_bucket"),
            "a histogram"
        );
        app.stop().await;
    }
}
