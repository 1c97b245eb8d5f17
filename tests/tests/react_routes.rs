//! The routes of SolvaPay's React components (`paywall::ReactRoutes`, mounted at `/api`
//! by both quickstarts), checked against the shapes `@solvapay/react`'s default HTTP
//! transport and hooks read (solvapay/solvapay-sdk, `packages/react/src/transport/`,
//! `packages/react/src/types/`): `PurchaseInfo` with the `amount` `hasPaidPurchase`
//! reads, `TransportBalanceResult`, `TransportLimitsResult`, `GetUsageResult`,
//! `{plans, productRef}`, `ActivatePlanResponseDto`. On the embedded backend and
//! through SolvaPay's API (the dev server), both adapters, real sockets; CORS
//! preflights as a browser sends them; the caller is always the token's. Through
//! SolvaPay: `react_routes_solvapay.rs`.

use paywall_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_react_components_routes_on_the_embedded_backend() {
    for app in both_apps(quickstart_config(5)).await {
        let (alice, bob) = (
            format!("r-alice-{}", app.name),
            format!("r-bob-{}", app.name),
        );
        let get = Method::GET;
        let post = Method::POST;

        let purchase = ok(&app, get.clone(), "check-purchase", &alice, None).await;
        assert!(purchase["customerRef"]
            .as_str()
            .is_some_and(|c| c.starts_with("cus_")));
        assert_eq!(purchase["purchases"], json!([]));
        let balance = ok(&app, get.clone(), "customer-balance", &alice, None).await;
        for field in [
            "credits",
            "displayCurrency",
            "creditsPerMinorUnit",
            "displayExchangeRate",
        ] {
            assert!(!balance[field].is_null(), "{field}: {balance}");
        }

        // Limits and usage move with every admitted request, per meter.
        let limits = ok(
            &app,
            get.clone(),
            "limits?productRef=prd_quickstart",
            &alice,
            None,
        )
        .await;
        assert_eq!(
            limits,
            json!({"withinLimits": true, "remaining": 5, "meterName": "requests",
                   "activationRequired": false, "plan": limits["plan"], "allowance": 5}),
        );
        let hello = reqwest::Client::new()
            .get(format!("{}/api/hello", app.base))
            .bearer_auth(token(&alice))
            .send()
            .await
            .expect("hello");
        assert_eq!(hello.status(), StatusCode::OK);
        let limits = ok(
            &app,
            get.clone(),
            "limits?productRef=prd_quickstart&meterName=requests",
            &alice,
            None,
        )
        .await;
        assert_eq!(limits["remaining"], 4);
        let tokens = ok(
            &app,
            get.clone(),
            "limits?productRef=prd_quickstart&meterName=tokens",
            &alice,
            None,
        )
        .await;
        assert_eq!(tokens["meterName"], "tokens");
        let usage = ok(&app, get.clone(), "usage", &alice, None).await;
        assert_eq!(
            (
                usage["meterRef"].clone(),
                usage["total"].clone(),
                usage["used"].clone(),
                usage["remaining"].clone(),
                usage["percentUsed"].clone()
            ),
            (json!("requests"), json!(5), json!(1), json!(4), json!(20.0)),
            "{usage}"
        );
        for (route, status) in [
            ("limits", StatusCode::BAD_REQUEST),
            ("limits?productRef=prd_other", StatusCode::NOT_FOUND),
            (
                "limits?productRef=prd_quickstart&meterName=nope",
                StatusCode::NOT_FOUND,
            ),
            ("get-product?productRef=prd_other", StatusCode::NOT_FOUND),
            ("list-plans", StatusCode::BAD_REQUEST),
        ] {
            assert_eq!(
                react(&app, get.clone(), route, &alice, None).await.0,
                status,
                "{route}"
            );
        }

        // The catalogue.
        let merchant = ok(&app, get.clone(), "merchant", &alice, None).await;
        assert!(merchant["displayName"].is_string() && merchant["legalName"].is_string());
        let product = ok(
            &app,
            get.clone(),
            "get-product?productRef=prd_quickstart",
            &alice,
            None,
        )
        .await;
        assert_eq!(product["reference"], "prd_quickstart");
        let plans = ok(
            &app,
            get.clone(),
            "list-plans?productRef=prd_quickstart",
            &alice,
            None,
        )
        .await;
        assert_eq!(plans["productRef"], "prd_quickstart");
        let plans = plans["plans"].as_array().cloned().unwrap_or_default();
        assert_eq!(plans.len(), 2, "{plans:?}");
        let free = plans
            .iter()
            .find(|p| p["requiresPayment"] == false)
            .expect("free plan");
        let paid = plans
            .iter()
            .find(|p| p["requiresPayment"] == true)
            .expect("paid plan");
        assert_eq!(free["limit"], 5);
        assert!(paid["price"].as_u64() > Some(0));

        // Activation: the free plan is already active, the paid one needs a payment.
        let activate =
            |plan: &Value| json!({"productRef": "prd_quickstart", "planRef": plan["reference"]});
        let answer = ok(
            &app,
            post.clone(),
            "activate-plan",
            &alice,
            Some(activate(free)),
        )
        .await;
        assert_eq!(answer["status"], "already_active");
        let answer = ok(
            &app,
            post.clone(),
            "activate-plan",
            &alice,
            Some(activate(paid)),
        )
        .await;
        assert_eq!(answer["status"], "payment_required");
        assert!(answer["checkoutUrl"]
            .as_str()
            .is_some_and(|u| u.contains("/checkout/cs_")));

        // Checkout (a customer named in the body is dropped) → pay → a paid purchase.
        let session = ok(
            &app,
            post.clone(),
            "create-checkout-session",
            &alice,
            Some(json!({"planRef": paid["reference"], "customerRef": "cus_someone_else"})),
        )
        .await;
        pay_locally(session["checkoutUrl"].as_str().expect("checkoutUrl")).await;
        let bought = ok(&app, get.clone(), "check-purchase", &alice, None).await;
        let info = &bought["purchases"][0];
        assert_eq!(info["status"], "active", "{bought}");
        assert!(
            info["amount"].as_u64() > Some(0),
            "hasPaidPurchase reads amount: {bought}"
        );
        for field in ["reference", "productName", "startDate", "currency"] {
            assert!(info[field].is_string(), "{field}: {bought}");
        }
        assert_eq!(info["planSnapshot"]["reference"], paid["reference"]);
        let limits = ok(
            &app,
            get.clone(),
            "limits?productRef=prd_quickstart",
            &alice,
            None,
        )
        .await;
        assert!(limits["remaining"].as_u64() > Some(5), "{limits}");
        let portal = ok(&app, post.clone(), "create-customer-session", &alice, None).await;
        assert!(portal["customerUrl"]
            .as_str()
            .is_some_and(|u| u.contains("/portal/")));

        // Cancel and reactivate: the owner only.
        let reference = info["reference"].clone();
        let by_ref = json!({ "purchaseRef": reference });
        let (status, _) = react(
            &app,
            post.clone(),
            "cancel-renewal",
            &bob,
            Some(by_ref.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let cancelled = ok(
            &app,
            post.clone(),
            "cancel-renewal",
            &alice,
            Some(by_ref.clone()),
        )
        .await;
        assert_eq!(cancelled["status"], "cancelled");
        assert_eq!(
            ok(&app, get.clone(), "check-purchase", &alice, None).await["purchases"],
            json!([])
        );
        let (status, _) = react(
            &app,
            post.clone(),
            "reactivate-renewal",
            &bob,
            Some(by_ref.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let reactivated = ok(
            &app,
            post.clone(),
            "reactivate-renewal",
            &alice,
            Some(by_ref.clone()),
        )
        .await;
        assert_eq!(reactivated["status"], "active");
        let limits = ok(
            &app,
            get.clone(),
            "limits?productRef=prd_quickstart",
            &alice,
            None,
        )
        .await;
        assert!(
            limits["remaining"].as_u64() > Some(5),
            "paid again at once: {limits}"
        );

        money_routes_are_unsupported(&app, &alice).await;

        // Bad input: unknown members, wrong types, wrong methods, no token.
        for (route, body) in [
            (
                "cancel-renewal",
                json!({"purchaseRef": reference, "extra": 1}),
            ),
            ("cancel-renewal", json!({"purchaseRef": "../admin"})),
            ("activate-plan", json!({"productRef": "prd_quickstart"})),
            ("create-checkout-session", json!({"productRef": 7})),
            (
                "create-checkout-session",
                json!({"returnUrl": "javascript:alert(1)"}),
            ),
            ("create-topup-payment-intent", json!({"amount": -5})),
        ] {
            let (status, answer) =
                react(&app, post.clone(), route, &alice, Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{route} {body}: {answer}");
            assert_eq!(answer["kind"], "bad_request");
        }
        let (status, answer) = react(&app, get.clone(), "cancel-renewal", &alice, None).await;
        assert_eq!(
            (status, answer["kind"].clone()),
            (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed"))
        );
        let (status, _, answer) =
            billing_call(&app, get.clone(), "/api/check-purchase", None, None).await;
        assert_eq!(
            (status, answer["kind"].clone()),
            (StatusCode::UNAUTHORIZED, json!("unauthenticated"))
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_for_the_allowed_origins_only() {
    // `quickstart_config` allows https://app.example.
    for app in both_apps(quickstart_config(5)).await {
        let client = reqwest::Client::new();
        let preflight = |origin: &'static str| {
            client
                .request(
                    Method::OPTIONS,
                    format!("{}/api/create-checkout-session", app.base),
                )
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type",
                )
                .send()
        };
        let allowed = preflight("https://app.example").await.expect("preflight");
        assert!(
            allowed.status().is_success(),
            "{}: {}",
            app.name,
            allowed.status()
        );
        let header = |response: &reqwest::Response, name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase)
        };
        assert_eq!(
            header(&allowed, "access-control-allow-origin").as_deref(),
            Some("https://app.example")
        );
        assert!(header(&allowed, "access-control-allow-headers")
            .is_some_and(|h| h.contains("authorization")));
        assert!(
            header(&allowed, "access-control-allow-methods").is_some_and(|m| m.contains("post"))
        );
        let foreign = preflight("https://evil.example").await.expect("preflight");
        assert_eq!(
            header(&foreign, "access-control-allow-origin"),
            None,
            "{}",
            app.name
        );

        let answer = client
            .get(format!("{}/api/check-purchase", app.base))
            .header("origin", "https://app.example")
            .bearer_auth(token("cors-user"))
            .send()
            .await
            .expect("get");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(
            header(&answer, "access-control-allow-origin").as_deref(),
            Some("https://app.example")
        );
        // The app's own routes under /api stay its own (no CORS added to them).
        let hello = client
            .get(format!("{}/api/hello", app.base))
            .header("origin", "https://app.example")
            .bearer_auth(token("cors-user"))
            .send()
            .await
            .expect("hello");
        assert_eq!(hello.status(), StatusCode::OK);
        assert_eq!(header(&hello, "access-control-allow-origin"), None);
        app.stop().await;
    }
}
