//! The paywall's embedded billing backend: a SQLite ledger (customers, products, plans,
//! purchases, usage) in a file or in memory, and a local checkout where "paying" moves a
//! customer to a paid plan, so the whole paywall loop runs with no billing account.
//!
//! ```
//! use paywall::backend::BillingBackend;
//! use paywall::Identity;
//! use paywall_local::{LocalBackend, Product};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = LocalBackend::builder()
//!     .product(Product::new("prd_quickstart").free_units(5))
//!     .checkout_url("http://127.0.0.1:3000/checkout")
//!     .open()?; // in memory; `.path("ledger.db")` for a file
//!
//! let customer = backend.ensure_customer(&Identity::new("user-1")).await?;
//! assert!(customer.as_str().starts_with("cus_"));
//! let limits = backend.check_limits(&customer, "prd_quickstart", "requests").await?;
//! assert_eq!(limits.remaining, 5);
//!
//! backend.purchase(customer.as_str(), "prd_quickstart").await?; // the checkout's "pay"
//! let limits = backend.check_limits(&customer, "prd_quickstart", "requests").await?;
//! assert_eq!(limits.remaining, 1000);
//! # Ok(())
//! # }
//! ```
//!
//! Every SQLite call runs on Tokio's blocking pool, never on the async workers. Usage is
//! kept as counters plus the set of idempotency keys recorded within the replay horizon,
//! so a replayed usage event is ignored and a request costs one small insert (see
//! [`LocalBackendBuilder::replay_horizon`]); ensure-customer runs in one immediate transaction, so concurrent calls for one
//! external reference create one customer.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
mod backend;
mod builder;
mod catalog;
#[cfg(feature = "checkout")]
#[cfg_attr(docsrs, doc(cfg(feature = "checkout")))]
pub mod checkout;
mod directory;
mod error;
mod ledger;
mod outbox;
mod periods;
#[cfg(feature = "checkout")]
#[cfg_attr(docsrs, doc(cfg(feature = "checkout")))]
pub mod portal;
mod schema;
mod sdk;
mod usage;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use paywall::backend::{Limits, UsageEvent};
use rusqlite::Connection;

pub use account::{MAX_PORTAL_SESSIONS_PER_CUSTOMER, PORTAL_SESSION_TTL};
pub use builder::LocalBackendBuilder;
pub use catalog::{Allowance, Plan, Product};
pub use directory::{CustomerPatch, CustomerRecord, Lookup, PurchaseRecord, SessionRecord};
pub use error::LocalError;
pub use outbox::SqliteOutbox;
pub use schema::SCHEMA_VERSION;
pub use sdk::CatalogueProduct;
pub use usage::LedgerRow;

pub(crate) struct Inner {
    pub(crate) conn: Mutex<Connection>,
    pub(crate) checkout_url: Option<String>,
    pub(crate) portal_url: Option<String>,
    /// The open portal sessions, by session and by customer.
    pub(crate) portal_sessions: account::PortalSessions,
    pub(crate) path: Option<PathBuf>,
    /// The merchant's display name.
    pub(crate) merchant: String,
    /// How long idempotency keys are remembered, in milliseconds.
    pub(crate) replay_horizon_ms: i64,
    /// The allowance periods recording usage found (locked after `conn`).
    pub(crate) periods: Mutex<periods::Periods>,
}

/// The embedded billing backend. Cheap to clone; clones share one ledger.
#[derive(Clone)]
pub struct LocalBackend {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBackend")
            .field("path", &self.inner.path)
            .field("checkout_url", &self.inner.checkout_url)
            .finish()
    }
}

impl LocalBackend {
    /// Starts configuring a backend.
    pub fn builder() -> LocalBackendBuilder {
        LocalBackendBuilder::default()
    }

    async fn run<T, F>(&self, f: F) -> Result<T, LocalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, LocalError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .conn
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|_| LocalError::TaskFailed)?
    }

    /// A checkout link for `customer` and `product`, when a checkout is configured:
    /// `<checkout url>/<session>`, the customer's open session for the product's paid
    /// plan (or `plan`, a paid plan of it) and `return_url`, opened if there is none.
    /// The session id is the link's secret: the page pays that session only.
    pub async fn checkout_link(
        &self,
        customer: &str,
        product: &str,
        plan: Option<&str>,
        return_url: Option<&str>,
    ) -> Result<Option<String>, LocalError> {
        let Some(base) = self.inner.checkout_url.as_ref() else {
            return Ok(None);
        };
        let session = self
            .open_checkout_session(customer, product, plan, return_url)
            .await?;
        Ok(Some(session_link(base, &session.id)))
    }

    /// Moves `customer` to `product`'s paid plan, starting a new period now: what the
    /// local checkout's "pay" button does.
    pub async fn purchase(&self, customer: &str, product: &str) -> Result<Plan, LocalError> {
        let (customer, product) = (customer.to_owned(), product.to_owned());
        self.run(move |conn| ledger::purchase(conn, &customer, &product))
            .await
            .map(|(plan, _)| plan)
    }

    /// The references of the products the ledger sells, in order of creation.
    pub async fn products(&self) -> Result<Vec<String>, LocalError> {
        self.run(|conn| {
            let mut query = conn.prepare_cached("SELECT reference FROM products ORDER BY rowid")?;
            let rows = query.query_map([], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The paid plan a checkout for `product` would buy.
    pub async fn paid_plan(&self, product: &str) -> Result<Plan, LocalError> {
        let product = product.to_owned();
        self.run(move |conn| ledger::paid_plan(conn, &product))
            .await
    }

    /// Usage recorded, optionally for one customer: one row per customer, product,
    /// meter and outcome, with its units and number of events.
    pub async fn ledger(&self, customer: Option<&str>) -> Result<Vec<LedgerRow>, LocalError> {
        let customer = customer.map(str::to_owned);
        self.run(move |conn| usage::ledger(conn, customer.as_deref()))
            .await
    }

    /// Whether an event with this idempotency key is recorded (keys are remembered for
    /// the replay horizon, see [`LocalBackendBuilder::replay_horizon`]).
    pub async fn is_recorded(&self, idempotency_key: &str) -> Result<bool, LocalError> {
        let key = idempotency_key.to_owned();
        self.run(move |conn| usage::is_recorded(conn, &key)).await
    }

    /// The customer reference of `external_ref`, if one exists.
    pub async fn customer_by_external_ref(
        &self,
        external_ref: &str,
    ) -> Result<Option<String>, LocalError> {
        let external_ref = external_ref.to_owned();
        self.run(move |conn| ledger::customer_by_external_ref(conn, &external_ref))
            .await
    }

    /// How many customers exist.
    pub async fn customer_count(&self) -> Result<u64, LocalError> {
        self.run(|conn| ledger::count_customers(conn)).await
    }

    /// Finds a customer with its purchases.
    pub async fn find_customer(
        &self,
        lookup: Lookup<'_>,
    ) -> Result<Option<CustomerRecord>, LocalError> {
        let (column, value) = lookup.parts();
        self.run(move |conn| directory::find_by(conn, column, &value))
            .await
    }

    /// Creates a customer; [`LocalError::Conflict`] when the email or external reference
    /// is taken.
    pub async fn create_customer(
        &self,
        email: &str,
        name: Option<&str>,
        external_ref: Option<&str>,
    ) -> Result<CustomerRecord, LocalError> {
        let (email, name, external_ref) = (
            email.to_owned(),
            name.map(str::to_owned),
            external_ref.map(str::to_owned),
        );
        self.run(move |conn| {
            directory::create(conn, &email, name.as_deref(), external_ref.as_deref())
        })
        .await
    }

    /// Updates a customer; [`LocalError::Conflict`] when the new email or external
    /// reference belongs to another customer.
    pub async fn update_customer(
        &self,
        reference: &str,
        patch: CustomerPatch,
    ) -> Result<CustomerRecord, LocalError> {
        let reference = reference.to_owned();
        self.run(move |conn| directory::update(conn, &reference, &patch))
            .await
    }

    /// The customer's open checkout session for the product (and plan), or a new one.
    pub async fn open_checkout_session(
        &self,
        customer: &str,
        product: &str,
        plan: Option<&str>,
        return_url: Option<&str>,
    ) -> Result<SessionRecord, LocalError> {
        let (customer, product) = (customer.to_owned(), product.to_owned());
        let (plan, return_url) = (plan.map(str::to_owned), return_url.map(str::to_owned));
        self.run(move |conn| {
            directory::open_session(
                conn,
                &customer,
                &product,
                plan.as_deref(),
                return_url.as_deref(),
            )
        })
        .await
    }

    /// A checkout session.
    pub async fn checkout_session(&self, id: &str) -> Result<Option<SessionRecord>, LocalError> {
        let id = id.to_owned();
        self.run(move |conn| directory::session(conn, &id)).await
    }

    /// Pays a checkout session: buys its plan (once). Returns the session, the plan, and
    /// whether this call made the purchase.
    pub async fn complete_checkout_session(
        &self,
        id: &str,
    ) -> Result<(SessionRecord, Plan, bool), LocalError> {
        let id = id.to_owned();
        self.run(move |conn| directory::complete(conn, &id)).await
    }

    /// The customer's allowance for a product and meter, as a limits check sees it.
    pub async fn allowance(
        &self,
        customer: &str,
        product: &str,
        meter: &str,
    ) -> Result<Allowance, LocalError> {
        let (c, p, m) = (customer.to_owned(), product.to_owned(), meter.to_owned());
        let allowance = self
            .run(move |conn| ledger::allowance(conn, &c, &p, &m, ledger::now_ms()))
            .await?;
        Ok(Allowance::from_ledger(allowance))
    }

    /// The allowance with its checkout link when it offers one (and a checkout is
    /// configured): one call on the ledger's connection, reads alone once the
    /// customer's session is open.
    pub(crate) async fn allowance_with_link(
        &self,
        customer: &str,
        product: &str,
        meter: &str,
    ) -> Result<Limits, LocalError> {
        let (c, p, m) = (customer.to_owned(), product.to_owned(), meter.to_owned());
        let links = self.inner.checkout_url.is_some();
        let (allowance, session) = self
            .run(move |conn| {
                let allowance =
                    Allowance::from_ledger(ledger::allowance(conn, &c, &p, &m, ledger::now_ms())?);
                let session = if links && allowance.offers_checkout() {
                    Some(directory::open_session_id(conn, &c, &p)?)
                } else {
                    None
                };
                Ok((allowance, session))
            })
            .await?;
        let mut limits = allowance.limits;
        if let (Some(base), Some(session)) = (self.inner.checkout_url.as_ref(), session) {
            limits.checkout_url = Some(session_link(base, &session));
        }
        Ok(limits)
    }
}

/// `<checkout url>/<session id>`.
fn session_link(base: &str, session: &str) -> String {
    format!("{}/{session}", base.trim_end_matches('/'))
}

impl Allowance {
    fn from_ledger(allowance: ledger::Allowance) -> Self {
        let remaining = allowance.units.saturating_sub(allowance.used);
        let allowance_units = allowance.units;
        Allowance {
            limits: Limits {
                within_limits: remaining > 0,
                remaining,
                checkout_url: None,
                activation_required: false,
                confirmation_url: None,
                plan: Some(allowance.plan),
                resets_at: u64::try_from(allowance.period_end_ms)
                    .ok()
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                allowance: Some(allowance_units),
                period: u64::try_from(allowance.period_ms)
                    .ok()
                    .map(Duration::from_millis),
            },
            on_free_plan: allowance.is_free,
        }
    }
}

impl LocalBackend {
    /// Records usage and returns how many events were new (replays are ignored).
    pub async fn record(&self, events: &[UsageEvent]) -> Result<usize, LocalError> {
        let inserted = self.record_each(events).await?;
        Ok(inserted.into_iter().filter(|new| *new).count())
    }

    /// Records usage and returns, per event, whether it was new (`false`: a replay).
    pub async fn record_each(&self, events: &[UsageEvent]) -> Result<Vec<bool>, LocalError> {
        let events = events.to_vec();
        let horizon = self.inner.replay_horizon_ms;
        let inner = Arc::clone(&self.inner);
        self.run(move |conn| {
            // After a panic mid-batch, start over rather than trust what was found.
            let mut periods = inner.periods.lock().unwrap_or_else(|poisoned| {
                let mut periods = poisoned.into_inner();
                *periods = periods::Periods::default();
                periods
            });
            usage::record_usage(conn, &mut periods, &events, horizon)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
