//! The usage endpoint refusing under full load: latency before, during and after the
//! outage, and whether every admitted request is billed once it recovers.
//!
//! ```sh
//! cargo bench -p paywall-benches --bench outage                  # 10 s up, 60 s down, 10 s up
//! OUTAGE_SECS=20 PHASE_SECS=5 USERS=500 cargo bench -p paywall-benches --bench outage
//! ```
//!
//! A paywall with the default recorder (a 10,000-event queue) in front of an axum
//! handler, served on 127.0.0.1 and loaded by 32 keep-alive connections of `USERS`
//! users round robin. The billing backend (the in-memory test backend) refuses every
//! usage call during the outage, transiently, so the recorder retries and its queue
//! fills in well under a second. Printed: req/s, p50, p99 and max latency per phase, and
//! the units the backend counted against the requests answered 200.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use paywall::test_util::{HeaderResolver, MemoryBackend, TEST_PRODUCT};
use paywall::{Charge, Paywall};

const CONNECTIONS: usize = 32;
const PHASES: [&str; 3] = ["before (up)", "outage (usage refused)", "after (recovered)"];

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// Latencies in microseconds, per phase, of the requests answered 200.
type Seen = [Vec<u32>; 3];

async fn connection(
    base: String,
    users: usize,
    first: usize,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap_or_default();
    let mut seen: Seen = Default::default();
    let mut user = first;
    while !stop.load(Ordering::Relaxed) {
        user = (user + CONNECTIONS) % users;
        let at = phase.load(Ordering::Relaxed) as usize;
        let started = Instant::now();
        let answer = client
            .get(format!("{base}/api/hello"))
            .header("x-user", format!("user-{user}"))
            .send()
            .await;
        let took = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        if let Ok(answer) = answer {
            let ok = answer.status().is_success();
            let _ = answer.bytes().await;
            if ok {
                seen[at].push(took);
            }
        }
    }
    seen
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let outage = env_secs("OUTAGE_SECS", 60);
    let phase_len = env_secs("PHASE_SECS", 10);
    let users: usize = std::env::var("USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let backend = MemoryBackend::with_allowance(u64::MAX / 4);
    let paywall = match Paywall::builder(HeaderResolver::new(), backend.clone()).build() {
        Ok(paywall) => paywall,
        Err(err) => return eprintln!("outage: {err}"),
    };
    let layer = match paywall.layer(Charge::new(TEST_PRODUCT)) {
        Ok(layer) => layer,
        Err(err) => return eprintln!("outage: {err}"),
    };
    let app = axum::Router::new()
        .route("/api/hello", get(|| async { "hello" }))
        .layer(layer);
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(err) => return eprintln!("outage: cannot bind: {err}"),
    };
    let base = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(err) => return eprintln!("outage: {err}"),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });

    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            tokio::spawn(connection(
                base.clone(),
                users,
                i,
                phase.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut lengths = [phase_len, outage, phase_len];
    tokio::time::sleep(phase_len).await;
    backend.fail_next_usage_calls(usize::MAX);
    phase.store(1, Ordering::Relaxed);
    let down = Instant::now();
    tokio::time::sleep(outage).await;
    lengths[1] = down.elapsed();
    backend.fail_next_usage_calls(0);
    phase.store(2, Ordering::Relaxed);
    tokio::time::sleep(phase_len).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen: Seen = Default::default();
    for task in load {
        if let Ok(part) = task.await {
            for (all, mine) in seen.iter_mut().zip(part) {
                all.extend(mine);
            }
        }
    }
    let report = paywall.shutdown(Duration::from_secs(60)).await;

    println!("| phase | seconds | req/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for ((name, mut latencies), length) in PHASES.iter().zip(seen.clone()).zip(lengths) {
        latencies.sort_unstable();
        println!(
            "| {name} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} |",
            length.as_secs_f64(),
            latencies.len() as f64 / length.as_secs_f64(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
        );
    }
    let admitted: usize = seen.iter().map(Vec::len).sum();
    let billed = backend.recorded_units();
    println!();
    println!(
        "admitted (200): {admitted}; billed units: {billed}; usage events the backend stored: {}; \
         recorder: {} recorded, {} pending; every admitted request billed once: {}",
        backend.recorded_events().len(),
        report.recorded,
        report.pending,
        if billed == admitted as u64 {
            "yes"
        } else {
            "NO"
        },
    );
    println!("{CONNECTIONS} connections, {users} users round robin, default RecorderConfig (capacity 10,000)");
}
