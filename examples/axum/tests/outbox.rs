//! The durable outbox: a quickstart killed with SIGKILL under load, restarted on the
//! same outbox file, leaves the ledger with every admitted success exactly once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use paywall::recorder::Outbox;
use paywall_dev_server::DevServerConfig;
use paywall_jwt::Hs256Signer;
use paywall_local::{LocalBackend, Product, SqliteOutbox};

const SECRET: &str = "outbox-test-secret-outbox-test-secret-0123";
const KEY: &str = "sk_test_outbox";

/// Refuses usage while `blocked`, so events can only wait in the outbox.
async fn gate(State(blocked): State<Arc<AtomicBool>>, request: Request, next: Next) -> Response {
    if blocked.load(Ordering::SeqCst) && request.uri().path().starts_with("/v1/sdk/usages") {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    next.run(request).await
}

fn start_quickstart(dev: &str, outbox: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-quickstart"))
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .env("PAYWALL_JWT_SECRET", SECRET)
        .env("SOLVAPAY_SECRET_KEY", KEY)
        .env("SOLVAPAY_API_BASE_URL", dev)
        .env("PAYWALL_OUTBOX", outbox)
        .env_remove("SOLVAPAY_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let base = first
        .split_whitespace()
        .last()
        .expect("listening line")
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

async fn wait_until(
    what: &str,
    mut done: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool>>>,
) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_usage_and_counts_none_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    let outbox_path = dir.path().join("outbox.db");
    let ledger = LocalBackend::builder()
        .product(Product::new("prd_quickstart").free_units(1_000_000))
        .open()
        .expect("ledger");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dev = format!("http://{}", listener.local_addr().expect("addr"));
    let blocked = Arc::new(AtomicBool::new(true));
    let router =
        paywall_dev_server::router(ledger.clone(), DevServerConfig::new(KEY, dev.as_str()))
            .layer(middleware::from_fn_with_state(blocked.clone(), gate));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let (mut child, base) = start_quickstart(&dev, &outbox_path);
    let token = Hs256Signer::new(SECRET)
        .token_for("killed-user", Duration::from_secs(600))
        .expect("sign");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let ok = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    const WORKERS: usize = 4;
    for _ in 0..WORKERS {
        let (client, url, token, ok, stop) = (
            client.clone(),
            format!("{base}/api/hello"),
            token.clone(),
            ok.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(response) if response.status() == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => panic!("unexpected {}", response.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    // Mid-load: kill without any chance to flush.
    let outbox = SqliteOutbox::open(&outbox_path).expect("outbox");
    wait_until("load", || {
        let ok = ok.clone();
        Box::pin(async move { ok.load(Ordering::SeqCst) >= 200 })
    })
    .await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("worker");
    }
    let admitted = ok.load(Ordering::SeqCst);
    assert!(
        ledger.ledger(None).await.expect("ledger").is_empty(),
        "nothing could be recorded yet"
    );
    // The quickstart adds a batch's usage up, and a sum replaces its events in the
    // outbox before it is sent: what the outbox holds is counted in units, not rows.
    let held = outbox.pending().await.expect("pending");
    let waiting = held.iter().map(|event| event.units).sum::<u64>() as usize;
    assert!(
        waiting >= admitted,
        "every answered request was stored first ({waiting} units < {admitted})"
    );

    // The backend comes back; a new process replays the outbox.
    blocked.store(false, Ordering::SeqCst);
    let (mut child, _base) = start_quickstart(&dev, &outbox_path);
    wait_until("the replay", || {
        let outbox = outbox.clone();
        Box::pin(async move { outbox.is_empty().await.unwrap_or(false) })
    })
    .await;
    let rows = ledger.ledger(None).await.expect("ledger");
    let units = rows.iter().map(|r| r.units).sum::<u64>() as usize;
    assert!(
        units >= admitted && units <= admitted + WORKERS,
        "{units} units recorded for {admitted} answered successes (at most {WORKERS} more were in flight)"
    );
    assert_eq!(units, waiting, "exactly what the outbox held, once");
    let pending = outbox.pending().await.expect("pending");
    assert!(pending.is_empty());

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    server.abort();
}
