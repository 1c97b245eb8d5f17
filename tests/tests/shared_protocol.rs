//! The shared-budget protocol driven call by call, against the stores the project
//! ships: the in-memory test store, a real `redis-server`, and a real Redis Cluster.
//! Each test plays two instances in an order that concurrency or a slow Redis only
//! produces now and then, and checks the units the store will still lease.

use std::time::Duration;

use paywall::backend::Limits;
use paywall::shared::{BudgetId, LeaseAnswer, LeaseRequest, RefreshTicket, SharedBudgets};
use paywall::test_util::MemoryShared;
use paywall::CustomerRef;
use paywall_redis::RedisBudgets;
use paywall_tests::*;

const TTL: Duration = Duration::from_secs(60);

fn need(units: u64, want: u64) -> LeaseRequest {
    LeaseRequest {
        need: units,
        want,
        ..LeaseRequest::default()
    }
}

async fn ticket<S: SharedBudgets>(store: &S, id: BudgetId<'_>) -> RefreshTicket {
    match store.lease(id, need(1, 16)).await.expect("lease") {
        LeaseAnswer::Refresh(ticket) => ticket,
        other => panic!("expected a refresh, got {other:?}"),
    }
}

async fn granted<S: SharedBudgets>(store: &S, id: BudgetId<'_>, request: LeaseRequest) -> u64 {
    match store.lease(id, request).await.expect("lease") {
        LeaseAnswer::Granted { units, .. } => units,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// Units the store still leases, one at a time, alternating between the instances.
async fn lease_all<S: SharedBudgets>(a: &S, b: &S, id: BudgetId<'_>) -> u64 {
    let mut total = 0;
    for turn in 0..1_000 {
        let store = if turn % 2 == 0 { a } else { b };
        match store.lease(id, need(1, 1)).await.expect("lease") {
            LeaseAnswer::Granted { units, .. } => total += units,
            LeaseAnswer::Exhausted { .. } => return total,
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("the budget never ran out");
}

/// Instance A asks first and gets the refresh lock; B, without it, refreshes and
/// creates the budget, leases 13 units and uses them, and the backend records them.
/// A's answer, asked only now, counts those 13 already: installed over B's budget with
/// A's `acked_before` (0, read before the budget existed) it would count them twice,
/// leaving 24 units leasable instead of 37.
async fn a_late_refresh_does_not_replace_the_budget_created_meanwhile<S: SharedBudgets>(
    a: &S,
    b: &S,
) {
    let customer = CustomerRef::new("cus_race");
    let id = BudgetId {
        customer: &customer,
        product: "prd_race",
        meter: "requests",
    };
    let late = ticket(a, id).await;
    assert!(late.lock.is_some(), "the first to ask refreshes");
    let early = ticket(b, id).await;
    assert!(early.lock.is_none(), "one lock at a time");
    b.install(id, &early, &Limits::remaining(50), TTL)
        .await
        .expect("install");
    let used = granted(b, id, need(1, 16)).await;
    assert_eq!(used, 13, "one unit and a quarter of the rest");
    // B's requests used them and the backend recorded them (its remaining is 37).
    b.settle(id, used, 0).await.expect("settle");
    a.install(id, &late, &Limits::remaining(50 - used), TTL)
        .await
        .expect("install");
    assert_eq!(
        lease_all(a, b, id).await,
        50 - used,
        "every unit the backend allows is leased, once"
    );
    // The lock A held was released: a stale budget is refreshed by the next request.
    a.mark_stale(id).await.expect("mark stale");
    assert!(ticket(b, id).await.lock.is_some());
}

#[tokio::test]
async fn memory_store_a_late_refresh_does_not_replace_the_budget_created_meanwhile() {
    let store = MemoryShared::new();
    a_late_refresh_does_not_replace_the_budget_created_meanwhile(
        &store.instance(),
        &store.instance(),
    )
    .await;
}

#[tokio::test]
async fn redis_a_late_refresh_does_not_replace_the_budget_created_meanwhile() {
    let redis = RedisServer::start();
    let store = || RedisBudgets::builder(redis.url()).build().expect("store");
    a_late_refresh_does_not_replace_the_budget_created_meanwhile(&store(), &store()).await;
}

#[tokio::test]
async fn redis_cluster_a_late_refresh_does_not_replace_the_budget_created_meanwhile() {
    let cluster = RedisCluster::start();
    let store = || {
        RedisBudgets::cluster(cluster.seeds())
            .build()
            .expect("store")
    };
    a_late_refresh_does_not_replace_the_budget_created_meanwhile(&store(), &store()).await;
}

/// Every node stops answering for `PAUSE` (`CLIENT PAUSE`): calls made meanwhile run
/// once it ends, after their callers have timed out.
fn pause(urls: &[String]) {
    for url in urls {
        let mut conn = redis::Client::open(url.as_str())
            .and_then(|client| client.get_connection())
            .expect("connect");
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(PAUSE_MS)
            .arg("ALL")
            .query::<()>(&mut conn)
            .expect("CLIENT PAUSE");
    }
}

const PAUSE_MS: u64 = 1_500;

/// A lease and a settlement whose answers are lost (the store's timeout passes while
/// Redis is paused) still run. The lease's grant, which the instance never learned of,
/// comes back with its next call; the settlement, sent again, counts once.
async fn calls_that_ran_unanswered_count_once(a: &RedisBudgets, b: &RedisBudgets, urls: &[String]) {
    let customer = CustomerRef::new("cus_lost");
    let id = BudgetId {
        customer: &customer,
        product: "prd_lost",
        meter: "requests",
    };
    let first = ticket(a, id).await;
    a.install(id, &first, &Limits::remaining(50), TTL)
        .await
        .expect("install");
    pause(urls);
    assert!(a.lease(id, need(1, 16)).await.is_err(), "no answer in time");
    tokio::time::sleep(Duration::from_millis(PAUSE_MS + 200)).await;
    let got = granted(a, id, need(1, 16)).await;
    assert_eq!(got, 13, "the lost grant came back first");
    // One unit used and recorded, twelve given back: the settlement's answer is lost.
    pause(urls);
    assert!(a.settle(id, 1, got - 1).await.is_err(), "no answer in time");
    tokio::time::sleep(Duration::from_millis(PAUSE_MS + 200)).await;
    a.settle(id, 1, got - 1).await.expect("settle again");
    assert_eq!(
        lease_all(a, b, id).await,
        49,
        "only the one used unit is spent"
    );
}

/// A store whose calls time out long before `PAUSE_MS`.
fn impatient(builder: paywall_redis::RedisBudgetsBuilder) -> RedisBudgets {
    builder
        .timeout(Duration::from_millis(100))
        .build()
        .expect("store")
}

#[tokio::test]
async fn redis_calls_that_ran_unanswered_count_once() {
    let redis = RedisServer::start();
    let store = || impatient(RedisBudgets::builder(redis.url()));
    calls_that_ran_unanswered_count_once(&store(), &store(), &[redis.url()]).await;
}

#[tokio::test]
async fn redis_cluster_calls_that_ran_unanswered_count_once() {
    let cluster = RedisCluster::start();
    let store = || impatient(RedisBudgets::cluster(cluster.seeds()));
    calls_that_ran_unanswered_count_once(&store(), &store(), &cluster.seeds()).await;
}
