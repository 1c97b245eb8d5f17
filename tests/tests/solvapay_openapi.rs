//! The SolvaPay backend against a server written from the published OpenAPI file
//! (`support/contract.rs`), not against our own dev server: every answer field the
//! paywall does not act on is removed, `null`ed, given the wrong type, or joined by
//! unknown fields, one at a time, as generated from the schema; then the faults of a
//! hostile caller and a flaky provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use paywall::recorder::RecorderConfig;
use paywall::FailPolicy;
use paywall_jwt::Hs256Signer;
use paywall_solvapay::SolvaPayBackend;
use paywall_tests::*;
use serde_json::{json, Value};

/// A value of another type than `property` declares.
fn wrong_type(property: &Value) -> Value {
    match property.get("type").and_then(Value::as_str) {
        Some("string") => json!(42),
        Some("number") | Some("integer") => json!("seven"),
        Some("boolean") => json!("yes"),
        Some("array") => json!({"not": "a list"}),
        Some("object") => json!([1, 2, 3]),
        _ => json!(true),
    }
}

/// For every property of `schema` except `acted_on`: absent, `null`, wrong type; and
/// unknown extra fields once.
fn bends(spec: &Value, schema: &str, acted_on: &[&str]) -> Vec<Bend> {
    let properties = spec["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{schema} has properties in the OpenAPI file"));
    let mut bends = vec![Bend::Extras];
    for (name, property) in properties {
        if acted_on.contains(&name.as_str()) {
            continue;
        }
        bends.push(Bend::Absent(name.clone()));
        bends.push(Bend::Null(name.clone()));
        bends.push(Bend::Value(name.clone(), wrong_type(property)));
    }
    // Extras alone would make every caller pass on a schema that lost its properties.
    assert!(
        bends.len() >= 4,
        "{schema}: the OpenAPI file gives fields besides {acted_on:?} to bend"
    );
    bends
}

fn paywall_on(server: &ContractServer) -> paywall::PaywallBuilder {
    let backend = SolvaPayBackend::new(solvapay_config(&server.base)).expect("backend");
    builder(&backend)
}

/// A token for `sub` with extra claims (no `name`: customers are created nameless).
fn bearer_with(claims: Value) -> String {
    let mut claims = claims;
    claims["exp"] = json!(paywall_jwt::unix_now() + 600);
    let token = Hs256Signer::new(SECRET).sign(&claims).expect("sign");
    format!("Bearer {token}")
}

fn request_as(authorization: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::builder()
        .uri("/api/echo")
        .header("authorization", authorization)
        .body(Default::default())
        .expect("request")
}

/// Two units: 200, 200, then a 402 with a link to pay; the server holds 2 units.
async fn admits_bills_and_links(answer: Answer, bend: Bend) {
    let server = ContractServer::start(2).await;
    server.bend(answer, bend.clone());
    let paywall = paywall_on(&server).build().expect("paywall");
    let service = protected(&paywall);
    let case = format!("{answer:?} {bend:?}");
    for _ in 0..2 {
        assert_eq!(
            status_of(&service, "nameless").await,
            StatusCode::OK,
            "{case}"
        );
    }
    let (status, _, body) = read_json(call(&service, request("nameless")).await).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{case}");
    let link = body["checkoutUrl"].as_str().unwrap_or("");
    assert!(
        link.starts_with("https://pay.contract.test/"),
        "{case}: {body}"
    );
    assert_eq!(paywall.flush().await.pending, 0, "{case}");
    assert_eq!(server.recorded_units("cus_contract1"), 2, "{case}");
}

#[tokio::test]
async fn every_bend_of_a_customer_answer_still_admits_and_bills() {
    let spec = openapi();
    let all = bends(&spec, "CustomerResponse", &["reference"]);
    assert!(all.len() > 10, "generated from the schema: {}", all.len());
    for bend in all {
        admits_bills_and_links(Answer::Customer, bend).await;
    }
}

#[tokio::test]
async fn every_bend_of_a_limits_answer_still_admits_and_bills() {
    let spec = openapi();
    let all = bends(&spec, "LimitResponse", &["withinLimits", "remaining"]);
    assert!(all.len() > 30, "generated from the schema: {}", all.len());
    for bend in all {
        admits_bills_and_links(Answer::Limits, bend).await;
    }
}

#[tokio::test]
async fn every_bend_of_a_checkout_answer_still_gives_the_402_its_link() {
    let spec = openapi();
    let all = bends(&spec, "CreateCheckoutSessionResponse", &["checkoutUrl"]);
    assert!(all.len() > 3, "generated from the schema: {}", all.len());
    for bend in all {
        admits_bills_and_links(Answer::Checkout, bend).await;
    }
}

#[tokio::test]
async fn every_bend_of_a_usage_answer_still_records_once() {
    // The schema leaves the bulk answer open: bend every field our server sends.
    for field in ["success", "inserted", "results"] {
        for bend in [
            Bend::Absent(field.into()),
            Bend::Null(field.into()),
            Bend::Value(field.into(), json!("?")),
        ] {
            admits_bills_and_links(Answer::Usage, bend).await;
        }
    }
    admits_bills_and_links(Answer::Usage, Bend::Extras).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_first_requests_of_a_nameless_user_with_three_units() {
    let server = ContractServer::start(3).await;
    let paywall = paywall_on(&server).build().expect("paywall");
    let service = protected(&paywall);
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (service, barrier) = (service.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                read_json(call(&service, request("nameless")).await).await
            })
        })
        .collect();
    let (mut ok, mut payment) = (0, 0);
    for task in tasks {
        let (status, _, body) = task.await.expect("join");
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::PAYMENT_REQUIRED => {
                payment += 1;
                let link = body["checkoutUrl"].as_str().unwrap_or("");
                assert!(link.starts_with("https://pay.contract.test/"), "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, payment), (3, 37));
    assert_eq!(server.customers()[0].name, None, "created without a name");
    assert_eq!(
        (
            server.calls("find"),
            server.calls("create"),
            server.calls("limits")
        ),
        (1, 1, 1),
        "one ensure and one limits call for 40 concurrent first requests"
    );
    assert_eq!(
        server.calls("checkout"),
        1,
        "37 402s share one checkout link"
    );
    paywall.flush().await;
    assert_eq!(server.recorded_units("cus_contract1"), 3);
}

#[tokio::test]
async fn activation_required_is_a_402_with_the_confirmation_link() {
    let server = ContractServer::start(0).await;
    server.require_activation();
    let paywall = paywall_on(&server).build().expect("paywall");
    let (status, _, body) = read_json(call(&protected(&paywall), request("ada")).await).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["kind"], "activation_required");
    assert_eq!(body["error"], "Activation required");
    assert_eq!(body["checkoutUrl"], "https://pay.contract.test/confirm");
    assert_eq!(body["confirmationUrl"], "https://pay.contract.test/confirm");
}

#[tokio::test]
async fn usage_equals_admissions_while_two_of_five_usage_calls_fail() {
    let server = ContractServer::start(1_000).await;
    server.flaky_usage();
    let paywall = paywall_on(&server)
        .recorder(RecorderConfig {
            max_batch: 4,
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for i in 0..40 {
        assert_eq!(
            status_of(&service, &format!("user{}", i % 4)).await,
            StatusCode::OK
        );
    }
    assert_eq!(paywall.flush().await.pending, 0);
    let total: u64 = server
        .customers()
        .iter()
        .map(|c| server.recorded_units(&c.reference))
        .sum();
    assert_eq!(total, 40, "every admitted request recorded once");
    assert!(server.calls("usage") > 10, "failures were retried");
}

#[tokio::test]
async fn a_customer_the_provider_refuses_is_403_and_costs_no_more_calls() {
    for policy in [FailPolicy::Closed, FailPolicy::Open, FailPolicy::ServeStale] {
        let server = ContractServer::start(5).await;
        server.refuse_external_refs_longer_than(64);
        let paywall = paywall_on(&server)
            .fail_policy(policy)
            .build()
            .expect("paywall");
        let service = protected(&paywall);
        let sub = "x".repeat(200);
        for _ in 0..50 {
            let (status, _, body) = read_json(call(&service, request(&sub)).await).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{policy:?}");
            assert_eq!(body["kind"], "customer_rejected");
            assert!(
                !body.to_string().contains("email must be"),
                "no provider text"
            );
        }
        let calls = server.calls("find") + server.calls("create");
        assert_eq!(
            calls, 2,
            "{policy:?}: 50 requests cost one find and one create"
        );
        assert_eq!(status_of(&service, "someone-else").await, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_unverified_email_never_reaches_the_provider() {
    let server = ContractServer::start(5).await;
    let victim = server.add_customer(Some("victim"), "victim@example.com");
    let paywall = paywall_on(&server).build().expect("paywall");
    let attacker = bearer_with(json!({"sub": "attacker", "email": "victim@example.com"}));
    let (status, _, body) =
        read_json(call(&protected(&paywall), request_as(&attacker)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(body["extension"], victim.as_str(), "billed as themselves");
    let customers = server.customers();
    assert_eq!(customers[0].external_ref.as_deref(), Some("victim"));
    assert!(customers[1].email.ends_with("@auto-created.local"));
    assert_eq!(server.calls("update"), 0);
}

#[tokio::test]
async fn a_verified_email_of_a_linked_customer_is_a_conflict_never_a_takeover() {
    let server = ContractServer::start(20).await;
    let victim = server.add_customer(Some("victim"), "victim@example.com");
    let paywall = paywall_on(&server).build().expect("paywall");
    let attacker = bearer_with(
        json!({"sub": "attacker", "email": "victim@example.com", "email_verified": true}),
    );
    for _ in 0..20 {
        let response = call(&protected(&paywall), request_as(&attacker)).await;
        let (status, _, body) = read_json(response).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["kind"], "customer_conflict");
        assert!(!body.to_string().contains("victim"), "{body}");
    }
    let customers = server.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].external_ref.as_deref(), Some("victim"));
    assert_eq!(server.calls("update"), 0, "never re-linked");
    assert_eq!(
        server.recorded_units(&victim),
        0,
        "nothing billed to the victim"
    );
    assert_eq!(server.calls("create"), 1, "the refusal is remembered");
}

#[tokio::test]
async fn a_verified_email_adopts_a_customer_that_has_no_external_ref_yet() {
    let server = ContractServer::start(5).await;
    let existing = server.add_customer(None, "early@example.com");
    let paywall = paywall_on(&server).build().expect("paywall");
    let user =
        bearer_with(json!({"sub": "early", "email": "early@example.com", "email_verified": true}));
    let (status, _, body) = read_json(call(&protected(&paywall), request_as(&user)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["extension"], existing.as_str());
    assert_eq!(server.customers()[0].external_ref.as_deref(), Some("early"));
}

#[tokio::test]
async fn a_retry_after_of_an_hour_does_not_stall_metering() {
    let server = ContractServer::start(10).await;
    server.retry_after_once(3600);
    let paywall = paywall_on(&server)
        .recorder(RecorderConfig {
            max_retry_after: Duration::from_millis(200),
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    assert_eq!(status_of(&protected(&paywall), "ada").await, StatusCode::OK);
    let started = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(10), paywall.flush())
        .await
        .expect("metering resumes after the capped wait, not an hour");
    assert_eq!(report.recorded, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "the wait was honoured"
    );
    assert_eq!(server.recorded_units("cus_contract1"), 1);
}

#[tokio::test]
async fn one_refused_event_does_not_take_its_batch_down() {
    let server = ContractServer::start(10).await;
    let paywall = paywall_on(&server)
        .recorder(RecorderConfig {
            max_batch: 100,
            flush_interval: Duration::from_secs(3600),
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for user in ["kept-1", "gone", "kept-2"] {
        for _ in 0..3 {
            assert_eq!(status_of(&service, user).await, StatusCode::OK);
        }
    }
    // The customer is deleted at the provider while still cached here.
    server.delete_customer("cus_contract2");
    let report = paywall.flush().await;
    assert_eq!(
        (report.recorded, report.rejected, report.pending),
        (6, 3, 0)
    );
    assert_eq!(server.recorded_units("cus_contract1"), 3);
    assert_eq!(server.recorded_units("cus_contract3"), 3);
    assert_eq!(server.recorded_units("cus_contract2"), 0);
}

/// The account calls behind the billing routes, against every bend of their answers:
/// purchases are listed and cancelled, the portal link and the balance read, whatever
/// happens to the fields not acted on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bend_of_the_account_answers_still_lists_cancels_and_links() {
    use paywall::backend::BillingBackend;
    use paywall::CustomerRef;
    let spec = openapi();
    let mut cases: Vec<(Answer, Bend)> = Vec::new();
    cases.extend(
        bends(&spec, "SdkPurchaseResponse", &["reference"])
            .into_iter()
            .map(|b| (Answer::Purchase, b)),
    );
    cases.extend(
        bends(&spec, "CreateCustomerSessionResponse", &["customerUrl"])
            .into_iter()
            .map(|b| (Answer::CustomerSession, b)),
    );
    // The balance answer is given by example only: its fields bent by hand.
    for field in [
        "credits",
        "creditsPerMinorUnit",
        "customerRef",
        "displayCurrency",
    ] {
        cases.push((Answer::Balance, Bend::Absent(field.into())));
        cases.push((Answer::Balance, Bend::Null(field.into())));
        cases.push((
            Answer::Balance,
            Bend::Value(field.into(), json!({"odd": true})),
        ));
    }
    assert!(cases.len() > 60, "{} cases", cases.len());
    for (answer, bend) in cases {
        let server = ContractServer::start(2).await;
        server.bend(answer, bend.clone());
        let customer = CustomerRef::new(server.add_customer(Some("acct"), "acct@contract.test"));
        let backend = SolvaPayBackend::new(solvapay_config(&server.base)).expect("backend");
        let case = format!("{answer:?} {bend:?}");
        let purchases = backend.purchases(&customer).await.expect(&case);
        assert_eq!(purchases.len(), 1, "{case}");
        let reference = purchases[0].reference.clone();
        assert_eq!(reference, format!("pur_{customer}"), "{case}");
        backend
            .cancel_purchase(&customer, &reference)
            .await
            .expect(&case);
        let portal = backend.portal_url(&customer).await.expect(&case);
        assert!(portal.starts_with("https://pay.contract.test/"), "{case}");
        let credits = backend.credits(&customer).await.expect(&case);
        if answer != Answer::Balance {
            assert_eq!(credits.map(|c| c.balance), Some(4200), "{case}");
        }
        // Someone else's purchase is not found, whatever the answers look like.
        let other = CustomerRef::new(server.add_customer(Some("other"), "other@contract.test"));
        assert!(
            matches!(
                backend.cancel_purchase(&other, &reference).await,
                Err(paywall::backend::BackendError::NotFound(_))
            ),
            "{case}"
        );
    }
}
