//! Budgets shared by several paywall instances, through Redis.
//!
//! ```no_run
//! use std::time::Duration;
//! use paywall::{Charge, Paywall};
//! use paywall_local::LocalBackend;
//! use paywall_redis::RedisBudgets;
//! # use paywall::{Identity, IdentityError, IdentityResolver};
//! # struct UserHeader;
//! # impl IdentityResolver for UserHeader {
//! #     async fn resolve(&self, p: &http::request::Parts) -> Result<Option<Identity>, IdentityError> {
//! #         Ok(p.headers.get("x-user").and_then(|v| v.to_str().ok()).map(Identity::new))
//! #     }
//! # }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Every replica points at the same Redis and the same billing backend.
//! let budgets = RedisBudgets::builder("redis://127.0.0.1:6379/")
//!     .timeout(Duration::from_millis(250))
//!     .build()?;
//! let backend = LocalBackend::builder().path("paywall.db").open()?;
//! let paywall = Paywall::builder(UserHeader, backend)
//!     .shared_budgets(budgets)
//!     .build()?;
//! let layer = paywall.layer(Charge::new("prd_quickstart"))?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! Each (customer, product, meter) budget is one Redis hash; every change to it is a
//! Lua script, so decisions are atomic on the server. Instances **lease** units: a
//! request the local spare cannot cover asks Redis for its units plus a prefetch (at
//! most [`LeaseConfig::units`](paywall::shared::LeaseConfig::units), and at most a quarter of
//! what is left), and later requests are admitted from the spare in-process, with no
//! round trip. A busy budget leases ahead of need, off the request path, and while it
//! stays hot each such lease asks for twice the last (up to
//! [`LeaseConfig::max_units`](paywall::shared::LeaseConfig::max_units), still at most
//! a quarter of what is left), so a hot budget calls Redis rarely. Spare units go back
//! to Redis once the budget is idle, and its leases start small again.
//!
//! * **Bound on over-admission: none while Redis keeps its data.** A lease is granted
//!   only while `acknowledged + leased + need <= remaining_at_refresh +
//!   acknowledged_before_refresh`, the engine's single-process rule applied to all
//!   instances; units admitted but not yet acknowledged by the backend stay counted as
//!   leased. If Redis loses its data (a restart without persistence), units admitted
//!   and not yet acknowledged at that moment, plus spare units held by instances until
//!   they notice (within one heartbeat), may be admitted a second time.
//! * **Under-admission** is limited to spare units other instances hold: a quarter of
//!   what was left per lease, given back after the budget is idle for
//!   [`LeaseConfig::idle`](paywall::shared::LeaseConfig::idle).
//! * **One refresher at a time.** When a budget's limits TTL has passed, the lease that
//!   notices takes a short lock and that instance asks the billing backend; the others
//!   keep leasing from the known budget meanwhile. A budget missing from Redis is
//!   refreshed by whichever instances need it first (the first answer is kept: a
//!   refresh that held the lock but finds the budget created or recreated meanwhile
//!   installs nothing, since its answer may already count units leased from it).
//! * **Instances that stop.** Each instance session renews its membership in a sorted
//!   set every [heartbeat](RedisBudgetsBuilder::heartbeat); a refresh forgets the leases
//!   of sessions that expired. An instance cut off from Redis stops using its spare
//!   units after the [lease TTL](RedisBudgetsBuilder::lease_ttl), before its session
//!   can expire, and starts a new session when it notices it was forgotten.
//! * **Redis unreachable.** Every call is bounded by [`timeout`](RedisBudgetsBuilder::timeout).
//!   The engine then falls back per [`SharedFallback`](paywall::shared::SharedFallback) (by
//!   default to its local budget), logs the transition once, and tries Redis again
//!   after [`LeaseConfig::retry`](paywall::shared::LeaseConfig::retry).
//! * **Calls that time out** may still run once Redis gets to them. The instance sends
//!   what such a call settled again with its next call on that budget, together with
//!   the lost call's token; the script counts it once and takes back what the lost
//!   call granted, so a slow Redis strands no units and counts no acknowledgement
//!   twice. Units a lost call gave back are not admitted from again.
//!
//! # On a Redis Cluster
//!
//! [`RedisBudgets::cluster`] (or `PAYWALL_REDIS_CLUSTER_URLS` for
//! [`RedisBudgets::from_env`]) takes seed nodes. Every key one budget's scripts touch
//! shares the hash tag `{customer:product:meter}`, so each script runs on one shard and
//! budgets of different customers spread over the shards. The session set is then the
//! budget's own: each lease and settlement renews the instance's membership in it, and
//! a refresh that forgets an expired instance's lease leaves a tombstone that tells the
//! instance so at its next call (on one server, the heartbeat's re-added membership
//! tells it). MOVED and ASK are followed and the topology refreshed by the cluster
//! connection; a script missing on a promoted replica (NOSCRIPT) is loaded on every
//! primary and run again. While no primary answers for a budget's slot, its calls time
//! out and the engine applies its fallback, as with one Redis that is down; once a
//! replica is promoted, service resumes without a restart.
//!
//! **What a failover keeps.** Replication is asynchronous: a budget whose writes reached
//! the replica before its primary died keeps exactly what was spent and leased (no unit
//! lost, none granted twice). What the replica had not received when the primary
//! crashed is lost: leases granted in that moment (each at most a quarter of what was
//! left, or the units one request needed), which may then be granted again, and
//! acknowledgements, which the next refresh from the billing backend restores.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod conn;
mod info;
mod scripts;
mod store;

pub use builder::RedisBudgetsBuilder;
pub use store::{RedisBudgets, RedisBudgetsError, REDIS_CLUSTER_URLS_ENV, REDIS_URL_ENV};
