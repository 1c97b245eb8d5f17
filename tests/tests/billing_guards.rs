//! The billing routes and the local pages against hostile callers, on both adapters:
//! an unauthenticated caller's body is never read, every page refuses framing and
//! caching, a checkout returns only to an allowed origin, and the pay form refuses a
//! post from another site.

use paywall_examples::config::QuickstartConfig;
use paywall_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_caller_is_answered_before_its_body_is_read() {
    for app in both_apps(quickstart_config(5)).await {
        let addr = app
            .base
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
            .expect("addr");
        let name = app.name;
        // 50 checkouts without a token whose bodies never come: each is a 401 at once.
        let answers = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let streams: Vec<std::net::TcpStream> = (0..50)
                .map(|_| {
                    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
                    stream
                        .write_all(
                            b"POST /api/billing/checkout HTTP/1.1\r\nHost: x\r\n\
                              Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n{",
                        )
                        .expect("write");
                    stream
                })
                .collect();
            streams
                .iter()
                .filter(|stream| {
                    let mut stream = *stream;
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut head = [0u8; 12];
                    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 401")
                })
                .count()
        })
        .await
        .expect("stalled callers");
        assert_eq!(
            answers, 50,
            "{name}: every one answered 401 without its body"
        );
        app.stop().await;
    }
}

/// The security headers of a page at `url`.
async fn assert_page_headers(url: &str) {
    let page = reqwest::Client::new().get(url).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK, "{url}");
    let headers = page.headers();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .is_ok_and(|csp| csp.contains("frame-ancestors 'none'")),
        "{url}"
    );
    assert_eq!(headers["x-frame-options"], "DENY", "{url}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{url}");
    assert_eq!(headers["referrer-policy"], "same-origin", "{url}");
    assert_eq!(headers["cache-control"], "no-store", "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_refuses_framing_sniffing_referrers_and_caches() {
    for app in both_apps(quickstart_config(5)).await {
        let (_, _, checkout) = billing_call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some("framed"),
            Some(json!({ "product": "prd_quickstart" })),
        )
        .await;
        assert_page_headers(checkout["checkoutUrl"].as_str().expect("checkoutUrl")).await;
        let (_, _, portal) = billing_call(
            &app,
            Method::POST,
            "/api/billing/portal",
            Some("framed"),
            None,
        )
        .await;
        assert_page_headers(portal["url"].as_str().expect("portal url")).await;
        app.stop().await;
    }
    // The dev server's checkout page too.
    let (dev, _ledger) = dev_server(loopback().await, "prd_quickstart", 0, None);
    let config = QuickstartConfig {
        solvapay: Some(solvapay_config(&dev.base)),
        ..quickstart_config(0)
    };
    let [axum_app, actix_app] = both_apps(config).await;
    let (_, _, checkout) = billing_call(
        &axum_app,
        Method::POST,
        "/api/billing/checkout",
        Some("framed-at-dev"),
        Some(json!({ "product": "prd_quickstart" })),
    )
    .await;
    assert_page_headers(checkout["checkoutUrl"].as_str().expect("checkoutUrl")).await;
    axum_app.stop().await;
    actix_app.stop().await;
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_returns_only_to_an_allowed_origin() {
    for app in both_apps(quickstart_config(5)).await {
        for (url, allowed) in [
            ("https://app.example/done", true),
            ("https://evil.example/phish", false),
            ("https://app.example.evil.example/", false),
            ("http://app.example/done", false),
        ] {
            let (status, _, body) = billing_call(
                &app,
                Method::POST,
                "/api/billing/checkout",
                Some("returner"),
                Some(json!({ "product": "prd_quickstart", "returnUrl": url })),
            )
            .await;
            let expected = if allowed {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(status, expected, "{} {url}: {body}", app.name);
        }
        app.stop().await;
    }
    // By default, the app's own origin only.
    let own = QuickstartConfig {
        return_origins: Vec::new(),
        cors_origins: Vec::new(),
        ..quickstart_config(5)
    };
    for app in both_apps(own).await {
        let home = format!("{}/done", app.base);
        for (url, expected) in [
            (home.as_str(), StatusCode::OK),
            ("https://app.example/done", StatusCode::BAD_REQUEST),
        ] {
            let (status, _, body) = billing_call(
                &app,
                Method::POST,
                "/api/billing/checkout",
                Some("returner"),
                Some(json!({ "product": "prd_quickstart", "returnUrl": url })),
            )
            .await;
            assert_eq!(status, expected, "{} {url}: {body}", app.name);
        }
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_form_refuses_a_post_from_another_site() {
    for app in both_apps(quickstart_config(5)).await {
        let (_, _, checkout) = billing_call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some("target"),
            Some(json!({ "product": "prd_quickstart" })),
        )
        .await;
        let url = checkout["checkoutUrl"]
            .as_str()
            .expect("checkoutUrl")
            .to_owned();
        let post = |origin: String| {
            reqwest::Client::new()
                .post(&url)
                .header("origin", origin)
                .send()
        };
        let forged = post("https://evil.example".into()).await.expect("send");
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "{}", app.name);
        let own = post(app.base.clone()).await.expect("send");
        assert_eq!(own.status(), StatusCode::OK, "{}", app.name);
        app.stop().await;
    }
}
