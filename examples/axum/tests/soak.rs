//! Soak (opt-in, not in CI's default run):
//!
//! ```sh
//! cargo test --release -p paywall-examples --test soak -- --ignored --nocapture
//! SOAK_SECS=60 SOAK_CONNECTIONS=100 cargo test --release -p paywall-examples --test soak -- --ignored --nocapture
//! ```
//!
//! Drives `axum-quickstart` (SolvaPay backend) against the dev server for `SOAK_SECS`
//! (default 300) at `SOAK_CONNECTIONS` (default 200) concurrent connections, killing and
//! restarting the dev server twice. Then checks: no 5xx other than the documented 503s,
//! resident memory stable, and ledger rows = admitted successful requests, exactly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paywall_dev_server::DevServerConfig;
use paywall_jwt::Hs256Signer;
use paywall_local::{LocalBackend, Product};

const SECRET: &str = "soak-secret-soak-secret-soak-secret-0123456";
const KEY: &str = "sk_test_soak";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

fn serve_dev(addr: std::net::SocketAddr, ledger: LocalBackend) -> tokio::task::JoinHandle<()> {
    let listener = std::net::TcpListener::bind(addr).expect("bind the dev server's address");
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    let router =
        paywall_dev_server::router(ledger, DevServerConfig::new(KEY, format!("http://{addr}")));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    })
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unavailable: AtomicU64,
    other_5xx: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 5-minute soak; run it explicitly"]
async fn soak() {
    let secs = env_or("SOAK_SECS", 300);
    let connections = env_or("SOAK_CONNECTIONS", 200);
    let ledger = LocalBackend::builder()
        .product(Product::new("prd_quickstart").free_units(1_000_000_000))
        .open()
        .expect("ledger");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut dev = serve_dev(addr, ledger.clone());

    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-quickstart"))
        .env("PORT", "0")
        .env("RUST_LOG", "error")
        .env("PAYWALL_JWT_SECRET", SECRET)
        .env("SOLVAPAY_SECRET_KEY", KEY)
        .env("SOLVAPAY_API_BASE_URL", format!("http://{addr}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let base = first.split_whitespace().last().expect("url").to_owned();
    std::thread::spawn(move || for _ in lines {});
    let pid = child.id();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(connections as usize)
        .build()
        .expect("client");
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..50)
            .map(|i| {
                Hs256Signer::new(SECRET)
                    .token_for(&format!("soak-{i}"), Duration::from_secs(secs + 600))
                    .expect("sign")
            })
            .collect(),
    );
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (client, tally, stop, tokens, url) = (
            client.clone(),
            tally.clone(),
            stop.clone(),
            tokens.clone(),
            format!("{base}/api/hello"),
        );
        workers.push(tokio::spawn(async move {
            let mut n = worker as usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match client
                    .get(&url)
                    .bearer_auth(&tokens[n % tokens.len()])
                    .send()
                    .await
                {
                    Ok(response) => {
                        let counter = match response.status().as_u16() {
                            200 => &tally.ok,
                            503 => &tally.unavailable,
                            500..=599 => &tally.other_5xx,
                            _ => &tally.other,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let _ = response.bytes().await;
                    }
                    Err(_) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let started = Instant::now();
    let run = Duration::from_secs(secs);
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut restarts = 0;
    while started.elapsed() < run {
        tokio::time::sleep(Duration::from_secs(5).min(run)).await;
        let elapsed = started.elapsed().as_secs();
        samples.push((elapsed, rss_kib(pid)));
        let due = (restarts + 1) * secs / 3;
        if restarts < 2 && elapsed >= due {
            dev.abort(); // killed: open connections drop
            let _ = (&mut dev).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            dev = serve_dev(addr, ledger.clone());
            restarts += 1;
            println!("soak: dev server killed and restarted at {elapsed} s");
        }
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().expect("wait");

    let ok = tally.ok.load(Ordering::SeqCst);
    let rows = ledger.ledger(None).await.expect("ledger").len() as u64;
    let warm = samples
        .iter()
        .filter(|(t, _)| *t >= secs / 5)
        .map(|(_, kib)| *kib);
    let baseline = warm.clone().next().unwrap_or(0);
    let peak = warm.max().unwrap_or(0);
    println!(
        "soak: {secs} s at {connections} connections, {restarts} dev server restarts\n  \
         200: {ok}, 503: {}, other 5xx: {}, other: {}, client errors: {}\n  \
         ledger rows: {rows}\n  resident memory: {baseline} KiB after warm-up, peak {peak} KiB afterwards\n  samples: {samples:?}",
        tally.unavailable.load(Ordering::SeqCst),
        tally.other_5xx.load(Ordering::SeqCst),
        tally.other.load(Ordering::SeqCst),
        tally.errors.load(Ordering::SeqCst),
    );
    assert!(
        status.success(),
        "the quickstart stopped cleanly and flushed: {status:?}"
    );
    assert_eq!(restarts, 2);
    assert_eq!(
        tally.other_5xx.load(Ordering::SeqCst),
        0,
        "no 5xx other than 503"
    );
    assert_eq!(tally.other.load(Ordering::SeqCst), 0);
    assert_eq!(rows, ok, "ledger rows = admitted successful requests");
    assert!(
        peak <= baseline + baseline / 2 + 16 * 1024,
        "resident memory stable: {baseline} → {peak} KiB"
    );
}
