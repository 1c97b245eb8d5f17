//! Heap allocations per warm request: the paywall layer against the same handler
//! without it (a handler that answers `hello` and reads nothing), counted by dhat's
//! global allocator (every block allocated, by any thread, the usage recorder's
//! background worker included).
//!
//! ```sh
//! cargo bench -p paywall-benches --bench allocs        # REQUESTS=20000 by default
//! DHAT_FILE=/tmp/dhat.json cargo bench -p paywall-benches --bench allocs   # and where
//! ```
//!
//! Each request is followed by a yield, as in a server, so that the recorder's worker
//! takes its batches while the requests run. The billing backend answers at once and
//! keeps nothing, so that the figures are the paywall's own: resolving the caller (a
//! header here; `paywall-jwt`'s token cache in the HS256 line), the cached customer and
//! budget, the quota headers, the usage event and its batch.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use paywall::test_util::{HeaderResolver, TEST_PRODUCT};
use paywall::{Charge, Paywall};
use paywall_jwt::JwtResolver;
use paywall_tests::{token, SECRET};
use tower::{service_fn, Layer, Service};

#[path = "warm.rs"]
mod warm;
use warm::{drive, hello, paywall};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocated blocks and bytes per call of `service`, over `n` warm calls.
async fn per_request<S>(
    service: S,
    auth: &(&'static str, String),
    n: u64,
    paywall: Option<&Paywall>,
) -> (f64, f64)
where
    S: Service<Request<Full<Bytes>>> + Clone,
    S::Error: std::fmt::Debug,
{
    drive(&service, auth, 100).await;
    if let Some(paywall) = paywall {
        paywall.flush().await;
    }
    let before = dhat::HeapStats::get();
    drive(&service, auth, n).await;
    if let Some(paywall) = paywall {
        paywall.flush().await;
    }
    let after = dhat::HeapStats::get();
    (
        (after.total_blocks - before.total_blocks) as f64 / n as f64,
        (after.total_bytes - before.total_bytes) as f64 / n as f64,
    )
}

/// One table row: `paywall`'s layer around the handler, against the handler alone.
async fn row(
    name: &str,
    paywall: Option<Paywall>,
    auth: &(&'static str, String),
    n: u64,
    bare: (f64, f64),
) {
    let Some(paywall) = paywall else {
        return eprintln!("allocs: cannot build the paywall of {name}");
    };
    let Ok(layer) = paywall.layer(Charge::new(TEST_PRODUCT)) else {
        return eprintln!("allocs: bad charge");
    };
    let with = per_request(layer.layer(service_fn(hello)), auth, n, Some(&paywall)).await;
    println!(
        "| {name} | {:.2} (+{:.2}) | {:.0} (+{:.0}) |",
        with.0,
        with.0 - bare.0,
        with.1,
        with.1 - bare.1
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // DHAT_FILE=<path> saves where the blocks were allocated (dhat's viewer, or any
    // JSON reader: `pps` sorted by `tb`); otherwise only the counts are kept.
    let _profiler = match std::env::var("DHAT_FILE") {
        Ok(file) => dhat::Profiler::builder()
            .file_name(file)
            .trim_backtraces(Some(16))
            .build(),
        Err(_) => dhat::Profiler::builder().testing().build(),
    };
    let n: u64 = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let header = ("x-user", "bench-user".to_owned());
    let bearer = ("authorization", format!("Bearer {}", token("bench-user")));

    let bare = per_request(service_fn(hello), &header, n, None).await;
    println!("| path | allocations per request | bytes per request |");
    println!("|---|---|---|");
    println!("| handler alone | {:.2} | {:.0} |", bare.0, bare.1);
    let hs256 = || JwtResolver::hs256(SECRET).build().ok();
    row(
        "paywall, caller from a header",
        paywall(HeaderResolver::new(), false),
        &header,
        n,
        bare,
    )
    .await;
    row(
        "paywall, HS256 token (cached)",
        hs256().and_then(|jwt| paywall(jwt, false)),
        &bearer,
        n,
        bare,
    )
    .await;
    row(
        "paywall, HS256, quickstart settings (RateLimit fields, usage added up)",
        hs256().and_then(|jwt| paywall(jwt, true)),
        &bearer,
        n,
        bare,
    )
    .await;
    println!("\n{n} warm requests each, one user, usage recorded (and dropped by the backend)");
}
