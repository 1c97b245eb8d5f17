//! Resident memory per cached user: fills the engine's caches with N distinct users
//! against an in-memory backend that keeps nothing per user, in two steps so that the
//! growth splits into its parts: first each user's customer entry alone
//! (`Paywall::identify`: resolve and ensure, no route), then each user's budget (one
//! admission on a route). Customer references are `cus_<externalRef>`.
//!
//! `cargo run --release -p paywall --example memory -- 100000`

use std::time::Duration;

use paywall::test_util::{HeaderResolver, MemoryBackend};
use paywall::{Charge, Identity, Paywall};

/// Resident set size in bytes, from /proc/self/statm.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let users: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::unlimited())
        .max_customers(users * 2)
        .limits_ttl(Duration::from_secs(3600))
        .build()?;
    let route = paywall.route(Charge::new("prd_memory"))?;
    // Warm the allocator and the caches' fixed structures with a first user.
    drop(
        paywall
            .admit_identity(&Identity::new("user-warmup"), &route)
            .await,
    );
    // External references as long as a typical IdP subject (auth0|24 hex).
    let identities: Vec<Identity> = (0..users)
        .map(|i| Identity::new(format!("auth0|{i:024x}")))
        .collect();
    let before = resident();
    for identity in &identities {
        let (parts, ()) = http::Request::builder()
            .header("x-user", identity.external_ref.as_str())
            .body(())?
            .into_parts();
        drop(paywall.identify(&parts).await);
    }
    let customers = resident();
    for identity in &identities {
        drop(paywall.admit_identity(identity, &route).await);
    }
    let after = resident();
    let cached = format!("{paywall:?}");
    // Then, the cache library's own share (measured last: memory freed earlier would
    // be reused and hide growth): an entry with a key and a value of 8 bytes each,
    // built like the engine's customer cache.
    let baseline = resident();
    let bare: moka::future::Cache<u64, u64> = moka::future::Cache::builder()
        .max_capacity(users * 2)
        .time_to_live(Duration::from_secs(3600))
        .build();
    for i in 0..users {
        bare.insert(i, i).await;
    }
    bare.run_pending_tasks().await;
    let per_bare_entry = resident().saturating_sub(baseline) / users.max(1);

    let per_user = |from: u64, to: u64| to.saturating_sub(from) / users.max(1);
    println!("users: {users}");
    println!(
        "resident before: {} KiB, with customers: {} KiB, with budgets too: {} KiB",
        before / 1024,
        customers / 1024,
        after / 1024
    );
    println!(
        "per cached user: {} bytes (customer entry {} + budget {})",
        per_user(before, after),
        per_user(before, customers),
        per_user(customers, after)
    );
    println!("a bare moka entry (u64 key and value, same settings): {per_bare_entry} bytes");
    println!("{cached}");
    Ok(())
}
