//! The lease protocol without Redis: several engines over one in-memory shared store
//! admit exactly the allowance, reclaim what dead or forgotten instances held, fall
//! back when the store is unreachable, and see purchases made through another
//! instance.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::StatusCode;
use paywall::backend::Limits;
use paywall::shared::{
    BudgetId, LeaseAnswer, LeaseConfig, LeaseRequest, RefreshTicket, SharedBudgets, SharedError,
    SharedFallback,
};
use paywall::test_util::MemorySharedInstance;
use paywall::{CustomerRef, Paywall, PaywallBuilder};

mod common;
use common::*;

fn engine(backend: &MemoryBackend, instance: &MemorySharedInstance) -> PaywallBuilder {
    builder(backend).shared_budgets(instance.clone())
}

/// Sequential requests of `user` until `limit`; how many were admitted.
async fn admitted(paywall: &Paywall, user: &str, limit: usize) -> usize {
    let service = protected(paywall);
    let mut ok = 0;
    for _ in 0..limit {
        if status_of(&service, user).await == StatusCode::OK {
            ok += 1;
        }
    }
    ok
}

async fn flush_all(paywalls: &[Paywall]) {
    for paywall in paywalls {
        assert_eq!(paywall.flush().await.pending, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_engines_sharing_a_store_admit_exactly_the_allowance() {
    let backend = MemoryBackend::with_allowance(50);
    let store = MemoryShared::new();
    let paywalls: Vec<Paywall> = (0..6)
        .map(|_| {
            engine(&backend, &store.instance())
                .build()
                .expect("paywall")
        })
        .collect();
    let (ok, payment, other) = storm(&paywalls, "ada", 100).await;
    assert_eq!((ok, payment, other), (50, 550, 0));
    flush_all(&paywalls).await;
    assert_eq!(backend.recorded_units(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_store_each_engine_admits_the_whole_allowance() {
    // The control for the test above: the same storm on per-engine budgets overshoots.
    let backend = MemoryBackend::with_allowance(50);
    let paywalls: Vec<Paywall> = (0..6).map(|_| test_paywall(&backend)).collect();
    let (ok, _, other) = storm(&paywalls, "ada", 100).await;
    assert_eq!(other, 0);
    assert!(ok > 50, "per-engine budgets admitted {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instances_lease_is_reclaimed_at_the_next_refresh() {
    let backend = MemoryBackend::with_allowance(100);
    let store = MemoryShared::new();
    let (dying, survivor) = (store.instance(), store.instance());
    let ttl = Duration::from_millis(200);
    let a = engine(&backend, &dying)
        .leases(LeaseConfig {
            idle: Duration::from_secs(60),
            ..LeaseConfig::default()
        })
        .limits_ttl(ttl)
        .build()
        .expect("paywall");
    let b = engine(&backend, &survivor)
        .limits_ttl(ttl)
        .build()
        .expect("paywall");
    assert_eq!(admitted(&a, "ada", 1).await, 1);
    a.flush().await;
    let held = store.leased("cus_ada", PRODUCT, "requests");
    assert!(held > 1, "the instance leased ahead of need ({held})");
    dying.kill(); // dies holding its spare units, never gives them back
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(admitted(&b, "ada", 150).await, 99);
    b.flush().await;
    assert_eq!(backend.recorded_units(), 100);
    assert_eq!(store.available("cus_ada", PRODUCT, "requests"), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_session_voids_its_spare_units() {
    let backend = MemoryBackend::with_allowance(100);
    let store = MemoryShared::new();
    let (forgotten, other) = (store.instance(), store.instance());
    let ttl = Duration::from_millis(200);
    let idle = LeaseConfig {
        idle: Duration::from_secs(60),
        ..LeaseConfig::default()
    };
    let a = engine(&backend, &forgotten)
        .leases(idle.clone())
        .limits_ttl(ttl)
        .build()
        .expect("paywall");
    let b = engine(&backend, &other)
        .limits_ttl(ttl)
        .build()
        .expect("paywall");
    assert_eq!(admitted(&a, "ada", 1).await, 1);
    a.flush().await;
    // A long partition: the store forgets the session while A still holds spare units.
    forgotten.forget();
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(
        admitted(&b, "ada", 150).await,
        99,
        "B gets A's spare units back"
    );
    assert_eq!(
        admitted(&a, "ada", 20).await,
        0,
        "A does not admit from a lease the store forgot"
    );
    flush_all(&[a, b]).await;
    assert_eq!(backend.recorded_units(), 100);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_falls_back_to_the_local_budget_or_closes() {
    let backend = MemoryBackend::with_allowance(5);
    let store = MemoryShared::new();
    let local = store.instance();
    local.set_reachable(false);
    let a = engine(&backend, &local).build().expect("paywall");
    assert_eq!(admitted(&a, "ada", 8).await, 5, "exact on its own budget");

    let closed = store.instance();
    closed.set_reachable(false);
    let b = engine(&backend, &closed)
        .leases(LeaseConfig {
            fallback: SharedFallback::Closed,
            retry: Duration::from_millis(50),
            ..LeaseConfig::default()
        })
        .build()
        .expect("paywall");
    let response = call(&protected(&b), request("bob")).await;
    let (status, headers, body) = read_json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get(RETRY_AFTER).is_some());
    assert_eq!(body["kind"], "billing_unavailable");
    closed.set_reachable(true);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(status_of(&protected(&b), "bob").await, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_purchase_seen_by_one_instance_unlocks_the_customer_on_every_instance() {
    let backend = MemoryBackend::with_allowance(1);
    let store = MemoryShared::new();
    let quick_return = LeaseConfig {
        idle: Duration::from_millis(20),
        ..LeaseConfig::default()
    };
    let [a, b] = [store.instance(), store.instance()].map(|instance| {
        engine(&backend, &instance)
            .leases(quick_return.clone())
            .limits_ttl(Duration::from_secs(3600))
            .build()
            .expect("paywall")
    });
    assert_eq!(admitted(&a, "ada", 1).await, 1);
    assert_eq!(
        admitted(&b, "ada", 1).await,
        0,
        "the shared budget is spent"
    );
    a.flush().await;
    tokio::time::sleep(Duration::from_millis(100)).await; // A reports its acknowledgement
    backend.set_allowance(3); // the customer buys two more units
    a.invalidate_customer(&CustomerRef::new("cus_ada")).await;
    assert_eq!(
        admitted(&b, "ada", 5).await,
        2,
        "B refreshes within its 1 h TTL"
    );
    b.flush().await;
    assert_eq!(backend.recorded_units(), 3);
}

/// A hot budget leases more at a time: 5,000 requests in a burst cost a few store calls,
/// where leases of a fixed 16 units would cost over 300.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_budget_grows_its_leases_and_calls_the_store_rarely() {
    let backend = MemoryBackend::with_allowance(1_000_000);
    let store = MemoryShared::new();
    let instance = store.instance();
    let paywall = engine(&backend, &instance).build().expect("paywall");
    assert_eq!(admitted(&paywall, "ada", 5_000).await, 5_000);
    let calls = instance.calls();
    assert!(calls < 60, "{calls} store calls for 5,000 admissions");
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 5_000);
}

#[tokio::test(start_paused = true)]
async fn lease_sizes_that_cannot_work_are_refused_at_build() {
    let backend = MemoryBackend::with_allowance(10);
    let instance = MemoryShared::new().instance();
    for (units, max_units) in [(0, 1024), (32, 16)] {
        let built = engine(&backend, &instance)
            .leases(LeaseConfig {
                units,
                max_units,
                ..LeaseConfig::default()
            })
            .build();
        assert!(
            matches!(
                built,
                Err(paywall::ConfigError::InvalidSetting {
                    name: "leases.units/max_units",
                    ..
                })
            ),
            "units {units}, max_units {max_units}"
        );
    }
}

/// A store that asks for a refresh on every lease, as one whose budgets are replaced
/// under every install would: nothing it says means the allowance is spent.
#[derive(Default)]
struct RefreshForever {
    leases: AtomicUsize,
}

impl SharedBudgets for RefreshForever {
    async fn lease(&self, _: BudgetId<'_>, _: LeaseRequest) -> Result<LeaseAnswer, SharedError> {
        self.leases.fetch_add(1, Ordering::Relaxed);
        Ok(LeaseAnswer::Refresh(RefreshTicket {
            acked_before: 0,
            lock: None,
        }))
    }

    async fn install(
        &self,
        _: BudgetId<'_>,
        _: &RefreshTicket,
        _: &Limits,
        _: Duration,
    ) -> Result<(), SharedError> {
        Ok(())
    }

    async fn refresh_failed(
        &self,
        _: BudgetId<'_>,
        _: &RefreshTicket,
        _: Duration,
    ) -> Result<(), SharedError> {
        Ok(())
    }

    async fn settle(&self, _: BudgetId<'_>, _: u64, _: u64) -> Result<(), SharedError> {
        Ok(())
    }

    async fn mark_stale(&self, _: BudgetId<'_>) -> Result<(), SharedError> {
        Ok(())
    }

    fn session(&self) -> Option<u64> {
        Some(1)
    }
}

/// A store that never lets a lease settle is answered with a bounded number of store
/// and backend calls and a 503 that says when to retry, never a 402 (the allowance is
/// not spent) and never a hang.
#[tokio::test]
async fn a_store_that_never_settles_a_lease_is_a_503_after_four_rounds() {
    let backend = MemoryBackend::with_allowance(10);
    let store = Arc::new(RefreshForever::default());
    let paywall = builder(&backend)
        .shared_budgets(Arc::clone(&store))
        .build()
        .expect("paywall");
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        call(&protected(&paywall), request("ada")),
    )
    .await
    .expect("answered without hanging");
    let (status, headers, body) = read_json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        headers.get(RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "the lease configuration's retry"
    );
    assert!(body.get("error").is_some(), "a JSON error body: {body}");
    assert_eq!(store.leases.load(Ordering::Relaxed), 4, "four rounds");
    assert_eq!(backend.limits_calls(), 4, "one backend call per round");
    assert_eq!(
        backend.recorded_units(),
        0,
        "nothing admitted, nothing billed"
    );
}
