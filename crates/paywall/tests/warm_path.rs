//! The layer decides a warm request inside `Service::call` when the identity resolver
//! answers at once (`HeaderResolver` does, as `paywall-jwt` does for a verified token),
//! and in its boxed future when it does not. Both must answer every request the same:
//! the same statuses, the same customer marks, the same units charged and given back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::Full;
use paywall::{Charge, Identity, IdentityError, IdentityResolver, Paywall, Recall};
use serde_json::json;
use tower::{Layer, ServiceExt};

mod common;
use common::*;

/// `HeaderResolver` answering only through its future, after a yield: a resolver
/// without `resolve_now`, as an application's own may be.
struct Waits(HeaderResolver);

/// `HeaderResolver` keeping the identity of each caller it has seen, with a `Recall`,
/// and answering clones of it: as `paywall-jwt` does for each token it has verified.
#[derive(Clone, Default)]
struct Remembers(Arc<Mutex<HashMap<String, Identity>>>);

impl Remembers {
    fn kept(&self, identity: Identity) -> Identity {
        let mut kept = self.0.lock().expect("lock");
        kept.entry(identity.external_ref.clone())
            .or_insert_with(|| identity.with_recall(Recall::new()))
            .clone()
    }
}

impl IdentityResolver for Remembers {
    async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        Ok(HeaderResolver::new()
            .resolve(parts)
            .await?
            .map(|id| self.kept(id)))
    }

    fn resolve_now(&self, parts: &Parts) -> Option<Result<Option<Identity>, IdentityError>> {
        let resolved = HeaderResolver::new().resolve_now(parts)?;
        Some(resolved.map(|identity| identity.map(|id| self.kept(id))))
    }
}

impl IdentityResolver for Waits {
    async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        tokio::task::yield_now().await;
        self.0.resolve(parts).await
    }
}

fn with_header(name: &str, value: &str) -> Request<Full<bytes::Bytes>> {
    let mut request = request("alice");
    request.headers_mut().insert(
        name.parse::<http::HeaderName>().expect("name"),
        value.parse().expect("value"),
    );
    request
}

/// What a caller sees over one budget of 4 units: each step's status, and the units
/// the backend was told of.
async fn walk(paywall: Paywall, backend: &MemoryBackend) -> (Vec<StatusCode>, u64) {
    let service = protected(&paywall);
    let mut seen = Vec::new();
    // Cold, then warm with a forged x-customer-ref: marked with alice's own.
    seen.push(status_of(&service, "alice").await);
    let response = call(&service, with_header("x-customer-ref", "cus_victim")).await;
    let (answered, _, body) = read_json(response).await;
    assert_eq!(body["customerRefHeaders"], json!(["cus_alice"]));
    assert_eq!(body["extension"], "cus_alice");
    seen.push(answered);
    // A failing handler and an abandoned request give their units back.
    seen.push(status(&service, with_header("x-test-status", "503")).await);
    let slow = tower::service_fn(never_answers);
    let slow = paywall
        .layer(Charge::new(PRODUCT))
        .expect("layer")
        .layer(slow);
    let abandoned = tokio::time::timeout(Duration::from_millis(50), slow.oneshot(request("alice")));
    assert!(abandoned.await.is_err(), "the slow handler never answers");
    // Two units left, then 402; bad or missing credentials are 401.
    for _ in 0..3 {
        seen.push(status_of(&service, "alice").await);
    }
    seen.push(status(&service, with_header("x-user", "")).await);
    seen.push(status(&service, Request::new(Full::<bytes::Bytes>::default())).await);
    let report = paywall.flush().await;
    assert_eq!(report.pending, 0, "{report:?}");
    (seen, backend.recorded_units())
}

#[tokio::test]
async fn a_warm_request_is_answered_alike_with_or_without_waiting() {
    let expected = vec![
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::PAYMENT_REQUIRED,
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
    ];
    let at_once = MemoryBackend::with_allowance(4);
    let paywall = test_paywall(&at_once);
    assert_eq!(walk(paywall, &at_once).await, (expected.clone(), 4));

    let waiting = MemoryBackend::with_allowance(4);
    let paywall = Paywall::builder(Waits(HeaderResolver::new()), waiting.clone())
        .recorder(fast_recorder())
        .build()
        .expect("paywall");
    assert_eq!(walk(paywall, &waiting).await, (expected.clone(), 4));

    let recalled = MemoryBackend::with_allowance(4);
    let paywall = Paywall::builder(Remembers::default(), recalled.clone())
        .recorder(fast_recorder())
        .build()
        .expect("paywall");
    assert_eq!(walk(paywall, &recalled).await, (expected, 4));
    assert_eq!(
        (
            at_once.ensure_calls(),
            waiting.ensure_calls(),
            recalled.ensure_calls()
        ),
        (1, 1, 1),
        "one customer ensured, whichever path"
    );
}

/// A customer remembered with a credential is used only while the paywall's cache
/// holds it: forgotten, or past its time to live, it is ensured again.
#[tokio::test]
async fn a_remembered_customer_is_not_used_once_the_cache_lets_it_go() {
    let backend = MemoryBackend::unlimited();
    let paywall = Paywall::builder(Remembers::default(), backend.clone())
        .customer_ttl(Duration::from_millis(300))
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for _ in 0..20 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    assert_eq!(backend.ensure_calls(), 1);

    paywall.forget_external_ref("alice").await;
    for _ in 0..20 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    assert_eq!(
        backend.ensure_calls(),
        2,
        "ensured again once, after forgetting"
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    assert_eq!(backend.ensure_calls(), 3, "ensured again once expired");
}

/// One resolver serving two paywalls (two products on two backends, say): each finds
/// its own customer and charges its own budget, whatever the other remembered.
#[tokio::test]
async fn paywalls_sharing_a_resolver_keep_their_own_customers() {
    let resolver = Remembers::default();
    let first = MemoryBackend::with_allowance(3);
    let second = MemoryBackend::with_allowance(5);
    let paywalls = [&first, &second].map(|backend| {
        Paywall::builder(resolver.clone(), backend.clone())
            .recorder(fast_recorder())
            .build()
            .expect("paywall")
    });
    let services = paywalls.each_ref().map(protected);
    for _ in 0..2 {
        for service in &services {
            assert_eq!(status_of(service, "alice").await, StatusCode::OK);
        }
    }
    admitted_then_refused(&services[0], "alice", 1).await;
    admitted_then_refused(&services[1], "alice", 3).await;
    for paywall in &paywalls {
        assert_eq!(paywall.flush().await.pending, 0);
    }
    assert_eq!((first.ensure_calls(), second.ensure_calls()), (1, 1));
    assert_eq!((first.recorded_units(), second.recorded_units()), (3, 5));
}

/// A resolver that waits is still asked once per request: the path that does not
/// wait never decides for it.
#[tokio::test]
async fn a_resolver_without_an_answer_now_is_awaited_every_time() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counting(HeaderResolver, Arc<AtomicUsize>);
    impl IdentityResolver for Counting {
        async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.resolve(parts).await
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let backend = MemoryBackend::with_allowance(10);
    let paywall = Paywall::builder(
        Counting(HeaderResolver::new(), Arc::clone(&calls)),
        backend.clone(),
    )
    .build()
    .expect("paywall");
    let service = protected(&paywall);
    for _ in 0..5 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 5);
}

/// A resolver that hands one `Recall` to every caller: each is still billed as
/// themselves.
#[tokio::test]
async fn a_recall_shared_between_callers_never_mixes_them() {
    struct OneRecall(Recall);
    impl IdentityResolver for OneRecall {
        async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
            let identity = HeaderResolver::new().resolve(parts).await?;
            Ok(identity.map(|id| id.with_recall(self.0.clone())))
        }
    }
    let backend = MemoryBackend::unlimited();
    let paywall = Paywall::builder(OneRecall(Recall::new()), backend.clone())
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for user in ["alice", "bob", "alice", "bob"] {
        let (answered, _, body) = read_json(call(&service, request(user)).await).await;
        assert_eq!(answered, StatusCode::OK);
        assert_eq!(body["extension"], format!("cus_{user}"));
    }
}
