//! The embedded backend's pages in a real browser (Debian's chromium, driven by
//! playwright-core from npm; `tests/node/browser.mjs`), on both quickstarts: a customer
//! pays the checkout a link names and cancels from the portal, while a site on another
//! origin can neither frame the checkout nor post its form; and a frontend on another
//! origin calls the routes of SolvaPay's React components (`tests/node/react_cors.mjs`)
//! only when that origin is allowed.

use http::{Method, StatusCode};
use paywall_examples::config::QuickstartConfig;
use paywall_tests::*;
use serde_json::{json, Value};

/// The text of `report[field]`.
fn text<'a>(report: &'a Value, field: &str) -> &'a str {
    report[field].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_pays_and_cancels_while_another_site_can_neither_frame_nor_post() {
    for app in both_apps(quickstart_config(1)).await {
        let (status, _, checkout) = billing_call(
            &app,
            Method::POST,
            "/api/billing/checkout",
            Some("shopper"),
            Some(json!({ "product": "prd_quickstart" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{checkout}");
        let link = text(&checkout, "checkoutUrl").to_owned();
        let (status, _, portal) = billing_call(
            &app,
            Method::POST,
            "/api/billing/portal",
            Some("shopper"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{portal}");

        let report = node::report(
            "browser.mjs",
            vec![link.clone(), text(&portal, "url").to_owned()],
        )
        .await;
        let name = &app.name;
        assert!(report.get("error").is_none(), "{name}: {report}");
        assert_eq!(
            report["framedShowsPayButton"], false,
            "{name}: framed: {report}"
        );
        assert_eq!(report["forgedStatus"], 403, "{name}: {report}");
        assert!(
            text(&report, "forgedBody").contains("cross_site"),
            "{name}: {report}"
        );
        assert_eq!(report["pageStatus"], 200, "{name}: {report}");
        let headers = &report["pageHeaders"];
        assert!(
            text(headers, "content-security-policy").contains("frame-ancestors 'none'"),
            "{name}: {headers}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{name}");
        assert_eq!(headers["cache-control"], "no-store", "{name}");
        assert!(
            text(&report, "pageText").contains("Pay"),
            "{name}: {report}"
        );
        assert_eq!(report["paidStatus"], 200, "{name}: {report}");
        assert!(
            text(&report, "paidText").contains("Payment received"),
            "{name}: {report}"
        );
        assert!(
            text(&report, "againText").contains("Already paid"),
            "{name}: {report}"
        );
        assert_eq!(report["portalStatus"], 200, "{name}: {report}");
        assert_eq!(report["cancelStatus"], 200, "{name}: {report}");
        assert!(
            text(&report, "cancelText").contains("cancelled"),
            "{name}: {report}"
        );

        // What the browser did is what the billing state says: one purchase, cancelled.
        let (_, _, purchases) = billing_call(
            &app,
            Method::GET,
            "/api/billing/purchases",
            Some("shopper"),
            None,
        )
        .await;
        let list = purchases["purchases"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            list.len(),
            1,
            "{name}: one purchase, however often Pay was posted: {purchases}"
        );
        assert_ne!(list[0]["status"], "active", "{name}: {purchases}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frontend_on_an_allowed_origin_calls_the_react_routes_and_no_other_can() {
    // A free port for the allowed frontend (the quickstart must know its origin first).
    let port = std_loopback().local_addr().expect("addr").port();
    let config = QuickstartConfig {
        cors_origins: vec![format!("http://127.0.0.1:{port}")],
        ..quickstart_config(5)
    };
    for app in both_apps(config).await {
        let name = &app.name;
        let args = vec![app.base.clone(), token("frontend-user"), port.to_string()];
        let report = node::report("react_cors.mjs", args).await;
        assert!(report.get("error").is_none(), "{name}: {report}");
        let allowed = &report["allowed"];
        assert_eq!(allowed["checkPurchase"]["status"], 200, "{name}: {report}");
        assert!(
            text(&allowed["checkPurchase"]["body"], "customerRef").starts_with("cus_"),
            "{name}: {report}"
        );
        assert_eq!(allowed["checkout"]["status"], 200, "{name}: {report}");
        assert!(
            text(&allowed["checkout"]["body"], "checkoutUrl").contains("/checkout/cs_"),
            "{name}: {report}"
        );
        // Another origin: the browser gives the page nothing (a failed fetch).
        for call in ["checkPurchase", "checkout"] {
            assert!(
                text(&report["other"][call], "error").contains("Failed to fetch"),
                "{name}: {call}: {report}"
            );
        }
        app.stop().await;
    }
}
