//! The embedded backend's pages in a real browser (Debian's chromium, driven by
//! playwright-core from npm; `tests/node/browser.mjs`), on both quickstarts: a customer
//! pays the checkout a link names and cancels from the portal, while a site on another
//! origin can neither frame the checkout nor post its form.

use http::{Method, StatusCode};
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
