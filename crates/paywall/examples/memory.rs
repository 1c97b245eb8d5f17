//! Resident memory per cached user: fills the engine's caches with N distinct users
//! (customer + budget each) against a backend that answers at once, and prints the
//! growth of resident memory per user.
//!
//! `cargo run --release -p paywall --example memory -- 100000`

use std::time::Duration;

use paywall::{
    BackendError, BillingBackend, Charge, CustomerRef, Identity, IdentityError, IdentityResolver,
    Limits, Paywall, UsageEvent,
};

struct Instant;

impl BillingBackend for Instant {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        // A reference as long as SolvaPay's and the embedded ledger's (cus_ + 20).
        Ok(CustomerRef::new(format!(
            "cus_{:020}",
            hash(&identity.external_ref) % 10u64.pow(19)
        )))
    }
    async fn check_limits(
        &self,
        _: &CustomerRef,
        _: &str,
        _: &str,
    ) -> Result<Limits, BackendError> {
        Ok(Limits::remaining(1_000))
    }
    async fn record_usage(&self, _: &[UsageEvent]) -> Result<(), BackendError> {
        Ok(())
    }
}

fn hash(text: &str) -> u64 {
    text.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    })
}

struct Nobody;

impl IdentityResolver for Nobody {
    async fn resolve(&self, _: &http::request::Parts) -> Result<Option<Identity>, IdentityError> {
        Ok(None)
    }
}

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
    let paywall = Paywall::builder(Nobody, Instant)
        .max_customers(users * 2)
        .max_budgets(users * 2)
        .limits_ttl(Duration::from_secs(3600))
        .build()?;
    let route = paywall.route(Charge::new("prd_memory"))?;
    // Warm the allocator and the caches' fixed structures with a first user.
    drop(
        paywall
            .admit_identity(&Identity::new("user-warmup"), &route)
            .await,
    );
    let before = resident();
    for i in 0..users {
        // External references as long as a typical IdP subject (auth0|24 hex).
        let identity = Identity::new(format!("auth0|{i:024x}"));
        drop(paywall.admit_identity(&identity, &route).await);
    }
    let after = resident();
    let cached = format!("{paywall:?}");
    println!("users: {users}");
    println!(
        "resident before: {} KiB, after: {} KiB",
        before / 1024,
        after / 1024
    );
    println!(
        "per cached user: {} bytes",
        (after.saturating_sub(before)) / users.max(1)
    );
    println!("{cached}");
    Ok(())
}
