//! Budgets shared through a real `redis-server`: several quickstart instances, one
//! Redis, one billing backend (the SolvaPay-compatible dev server over loopback).

use std::sync::Arc;
use std::time::{Duration, Instant};

use paywall::shared::{LeaseConfig, SharedFallback};
use paywall::Paywall;
use paywall_examples::config::QuickstartConfig;
use paywall_redis::RedisBudgets;
use paywall_tests::*;
use quickstart_axum as quickstart;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_sharing_redis_admit_five_of_300_concurrent_requests() {
    let redis = RedisServer::start();
    let (dev, ledger) = dev_server(loopback().await, "prd_quickstart", 5, None);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(&dev.base, Some(redis.url()), false).await);
    }
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();

    let answers = burst(&bases, "shared-user", 300).await;
    assert_eq!(
        count(&answers, StatusCode::OK),
        5,
        "exactly the 5 units left, across the instances"
    );
    assert_eq!(count(&answers, StatusCode::PAYMENT_REQUIRED), 295);
    let refused = answers
        .iter()
        .find(|(s, _)| *s == StatusCode::PAYMENT_REQUIRED)
        .map(|(_, body)| body.clone())
        .expect("a 402");
    assert_eq!(refused["kind"], "payment_required");
    assert_eq!(refused["remaining"], 0);
    assert!(
        refused["checkoutUrl"]
            .as_str()
            .is_some_and(|url| url.starts_with(&format!("{}/checkout/cs_", dev.base))),
        "{refused}"
    );

    for instance in instances {
        instance.stop().await;
    }
    assert_eq!(
        ledger_units(&ledger).await,
        5,
        "the ledger holds what was served"
    );
    dev.stop().await;
}

/// The control: the same three instances without Redis each admit up to the whole
/// remaining allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_instance_admits_the_whole_allowance() {
    let (dev, _ledger) = dev_server(loopback().await, "prd_quickstart", 5, None);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(&dev.base, None, false).await);
    }
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    let answers = burst(&bases, "local-user", 300).await;
    assert!(
        count(&answers, StatusCode::OK) > 5,
        "per-process budgets over-admit: {} admitted",
        count(&answers, StatusCode::OK)
    );
    for instance in instances {
        instance.stop().await;
    }
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_on_one_instance_unlocks_the_customer_on_the_other() {
    let redis = RedisServer::start();
    let a_listener = loopback().await;
    let a_base = format!("http://{}", a_listener.local_addr().expect("addr"));
    let (dev, _ledger) = dev_server(
        loopback().await,
        "prd_quickstart",
        2,
        Some(format!("{a_base}/webhooks/solvapay")),
    );
    let config = QuickstartConfig {
        jwt_secret: Some(SECRET.into()),
        solvapay: Some(solvapay_config(&dev.base)),
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        redis_url: Some(redis.url()),
        limits_ttl: Duration::from_secs(3600),
        ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
    };
    let app = quickstart::build(&config, &a_base).expect("build");
    let a = Instance {
        base: a_base.clone(),
        served: Served::start(a_listener, app.router.clone()),
        paywall: app.paywall,
    };
    let b = Instance::start(&dev.base, Some(redis.url()), false).await;
    let client = client();

    assert_eq!(hello(&client, &a.base, "buyer").await.0, StatusCode::OK);
    assert_eq!(hello(&client, &b.base, "buyer").await.0, StatusCode::OK);
    let (status, body) = hello(&client, &b.base, "buyer").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(
        hello(&client, &a.base, "buyer").await.0,
        StatusCode::PAYMENT_REQUIRED
    );

    let checkout = body["checkoutUrl"]
        .as_str()
        .expect("checkoutUrl")
        .to_owned();
    let paid = client.post(&checkout).send().await.expect("pay");
    assert_eq!(paid.status(), StatusCode::OK);
    // The webhook reaches A only; B sees the purchase through Redis, not its 1 h TTL.
    let started = Instant::now();
    loop {
        let (status, _) = hello(&client, &b.base, "buyer").await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B was not unlocked by the webhook A received"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.stop().await;
    b.stop().await;
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_run_keeps_serving_and_usage_exact() {
    let mut redis = RedisServer::start();
    let (dev, ledger) = dev_server(loopback().await, "prd_quickstart", 1_000_000, None);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(&dev.base, Some(redis.url()), false).await);
    }
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    let mut served = 0usize;
    let mut keys_after_restart = 0usize;
    for round in 0..45 {
        if round == 10 {
            redis.kill();
        }
        if round == 25 {
            redis.restart();
        }
        for sub in ["kill-a", "kill-b", "kill-c"] {
            let answers = burst(&bases, sub, 12).await;
            let ok = count(&answers, StatusCode::OK);
            assert_eq!(
                ok,
                answers.len(),
                "round {round}: the local fallback serves everything: {:?}",
                answers.iter().find(|(s, _)| *s != StatusCode::OK)
            );
            served += ok;
        }
        if round >= 25 {
            let mut conn = redis.client().await;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("paywall:budget:*")
                .query_async(&mut conn)
                .await
                .expect("keys");
            keys_after_restart = keys.len();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        keys_after_restart, 3,
        "the instances went back to the shared budgets after the restart"
    );
    for instance in instances {
        instance.stop().await;
    }
    assert_eq!(
        ledger_units(&ledger).await,
        served as u64,
        "every served request recorded exactly once"
    );
    dev.stop().await;
}

/// A store that waits for Redis as long as a loaded machine may need: the tests of
/// exactness must not fall back to local budgets because the test runner was slow.
fn shared_store(redis: &RedisServer) -> RedisBudgets {
    store_timing_out_after(redis, Duration::from_secs(2))
}

fn store_timing_out_after(redis: &RedisServer, timeout: Duration) -> RedisBudgets {
    RedisBudgets::builder(redis.url())
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .expect("store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_answers_per_policy_within_the_timeout() {
    let redis = RedisServer::start();
    let backend = MemoryBackend::with_allowance(1_000);
    let closed = builder(&backend)
        .shared_budgets(store_timing_out_after(&redis, Duration::from_millis(200)))
        .leases(LeaseConfig {
            fallback: SharedFallback::Closed,
            units: 1,
            ..LeaseConfig::default()
        })
        .build()
        .expect("paywall");
    let local = builder(&backend)
        .shared_budgets(store_timing_out_after(&redis, Duration::from_millis(200)))
        .leases(LeaseConfig {
            units: 1,
            ..LeaseConfig::default()
        })
        .build()
        .expect("paywall");
    let (closed_service, local_service) = (protected(&closed), protected(&local));
    assert_eq!(status_of(&closed_service, "frozen").await, StatusCode::OK);
    assert_eq!(status_of(&local_service, "frozen").await, StatusCode::OK);

    redis.pause(true);
    let started = Instant::now();
    let response = {
        use tower::ServiceExt;
        closed_service
            .clone()
            .oneshot(request("frozen"))
            .await
            .expect("infallible")
    };
    let (status, headers, body) = read_json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(body["kind"], "billing_unavailable", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the 200 ms store timeout, took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(status_of(&local_service, "frozen").await, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2));
    // While the store rests, the fallback answers without waiting on Redis at all.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(status_of(&local_service, "frozen").await, StatusCode::OK);
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    redis.pause(false);
    let started = Instant::now();
    while status_of(&closed_service, "frozen").await != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "closed fallback did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    closed.shutdown(Duration::from_secs(5)).await;
    local.shutdown(Duration::from_secs(5)).await;
}

/// An instance that dies holding leased units: once its session expires, the next
/// refresh gives its spare units back to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_a_dead_instance_return_to_the_pool() {
    let redis = RedisServer::start();
    let backend = MemoryBackend::with_allowance(100);

    // Instance A, on its own runtime, admits one request (leasing spare units), makes
    // sure its usage is recorded, and dies without giving anything back.
    let url = redis.url();
    let a_backend = backend.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let store = RedisBudgets::builder(url)
                .heartbeat(Duration::from_millis(100))
                .lease_ttl(Duration::from_millis(300))
                .timeout(Duration::from_millis(100))
                .session_ttl(Duration::from_millis(800))
                .build()
                .expect("store");
            let a = builder(&a_backend)
                .shared_budgets(store)
                .limits_ttl(Duration::from_millis(300))
                .leases(LeaseConfig {
                    idle: Duration::from_secs(60),
                    ..LeaseConfig::default()
                })
                .build()
                .expect("paywall");
            assert_eq!(status_of(&protected(&a), "heir").await, StatusCode::OK);
            a.flush().await;
            std::mem::forget(a); // no shutdown: nothing is given back
        });
        runtime.shutdown_background();
    })
    .join()
    .expect("instance A");
    assert_eq!(backend.recorded_units(), 1);

    let mut conn = redis.client().await;
    let key = "paywall:budget:cus_heir:prd_test:requests";
    let out: u64 = redis::cmd("HGET")
        .arg(key)
        .arg("out")
        .query_async(&mut conn)
        .await
        .expect("out");
    assert!(out > 1, "A held spare units when it died: {out}");

    // Instance B refreshes often, so it reaps A's session soon after it expires.
    let b = builder(&backend)
        .shared_budgets(shared_store(&redis))
        .limits_ttl(Duration::from_millis(300))
        .build()
        .expect("paywall");
    let service = protected(&b);
    let mut admitted = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) && admitted < 99 {
        match status_of(&service, "heir").await {
            StatusCode::OK => admitted += 1,
            StatusCode::PAYMENT_REQUIRED => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 99, "B admits everything A did not use");
    assert_eq!(
        status_of(&service, "heir").await,
        StatusCode::PAYMENT_REQUIRED
    );
    b.shutdown(Duration::from_secs(5)).await;
    assert_eq!(backend.recorded_units(), 100);
}

/// Many engines leasing from one budget at once never get more than it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_leases_from_many_engines_are_exact() {
    let redis = RedisServer::start();
    let backend = MemoryBackend::with_allowance(50);
    let engines: Vec<Paywall> = (0..6)
        .map(|_| {
            builder(&backend)
                .shared_budgets(shared_store(&redis))
                .build()
                .expect("paywall")
        })
        .collect();
    let services: Vec<_> = engines.iter().map(protected).collect();
    let services = Arc::new(services);
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let services = Arc::clone(&services);
            tokio::spawn(async move { status_of(&services[i % services.len()], "many").await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        if task.await.expect("task") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 50);
    for engine in &engines {
        engine.shutdown(Duration::from_secs(5)).await;
    }
    assert_eq!(backend.recorded_units(), 50);
}

#[tokio::test]
async fn an_unusable_redis_url_is_a_clear_startup_error_without_the_password() {
    let (dev, _ledger) = dev_server(loopback().await, "prd_quickstart", 5, None);
    let config = QuickstartConfig {
        jwt_secret: Some(SECRET.into()),
        solvapay: Some(solvapay_config(&dev.base)),
        redis_url: Some("http://user:hunter2@127.0.0.1:6379/".into()),
        ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
    };
    let err = quickstart::build(&config, "http://127.0.0.1:1").expect_err("not a redis URL");
    let message = err.to_string();
    assert!(message.starts_with("PAYWALL_REDIS_URL:"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!format!("{config:?}").contains("hunter2"));
    dev.stop().await;
}

/// Lua script calls so far, as redis-server itself counts them (`INFO commandstats`).
async fn script_calls(redis: &RedisServer) -> u64 {
    let mut client = redis.client().await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut client)
        .await
        .expect("INFO");
    stats
        .lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| {
            line.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// One hot budget on a real Redis: its leases grow, so 5,000 admissions cost a few
/// dozen script calls (leases of a fixed 16 units would cost over 300), and every
/// admission is still recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_budget_calls_redis_rarely() {
    let redis = RedisServer::start();
    let backend = MemoryBackend::with_allowance(1_000_000);
    let paywall = builder(&backend)
        .shared_budgets(shared_store(&redis))
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    let before = script_calls(&redis).await;
    let mut ok = 0;
    for _ in 0..5_000 {
        if status_of(&service, "hot").await == StatusCode::OK {
            ok += 1;
        }
    }
    let calls = script_calls(&redis).await - before;
    assert_eq!(ok, 5_000);
    assert!(calls < 100, "{calls} script calls for 5,000 admissions");
    paywall.shutdown(Duration::from_secs(5)).await;
    assert_eq!(backend.recorded_units(), 5_000);
}
