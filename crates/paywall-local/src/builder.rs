//! [`LocalBackendBuilder`]: where the ledger lives and what it sells, applied on open.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{ledger, schema, Inner, LocalBackend, LocalError, Product};

/// How long idempotency keys are remembered unless configured.
const DEFAULT_REPLAY_HORIZON: Duration = Duration::from_secs(30 * 24 * 3600);

/// Configures and opens a [`LocalBackend`].
#[derive(Debug, Default)]
pub struct LocalBackendBuilder {
    path: Option<PathBuf>,
    products: Vec<Product>,
    checkout_url: Option<String>,
    portal_url: Option<String>,
    replay_horizon: Option<Duration>,
    merchant: Option<String>,
}

impl LocalBackendBuilder {
    /// Keep the ledger in this SQLite file (created if missing). Default: in memory, for
    /// demos and tests: gone at exit, and capped at 1 GiB (SQLite's memdb limit).
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Create or update this product and its plans on open.
    pub fn product(mut self, product: Product) -> Self {
        self.products.push(product);
        self
    }

    /// The local checkout page (see [`checkout`](crate::checkout)) put in 402 answers, as
    /// `<url>/<session>`: a checkout session of that customer and product.
    pub fn checkout_url(mut self, url: impl Into<String>) -> Self {
        self.checkout_url = Some(url.into());
        self
    }

    /// The local customer portal (see [`portal`](crate::portal)), as
    /// `<url>/<session>`. Default: the checkout URL with `/checkout` replaced by
    /// `/portal`.
    pub fn portal_url(mut self, url: impl Into<String>) -> Self {
        self.portal_url = Some(url.into());
        self
    }

    /// The merchant's display name, for SolvaPay's React components (`Paywall` by
    /// default).
    pub fn merchant(mut self, name: impl Into<String>) -> Self {
        self.merchant = Some(name.into());
        self
    }

    /// How long the idempotency key of a recorded usage event is remembered, counted
    /// from when it was recorded (or occurred, if later). A replay within the horizon is
    /// recognised and ignored; an event whose timestamp is older than the horizon is
    /// logged and not counted, so that nothing is ever billed twice. Default: 30 days,
    /// longer than the recorder retries or an outbox waits in any sane deployment.
    pub fn replay_horizon(mut self, horizon: Duration) -> Self {
        self.replay_horizon = Some(horizon);
        self
    }

    /// Opens the ledger, creating or migrating its schema. Blocking: call it at start-up.
    pub fn open(self) -> Result<LocalBackend, LocalError> {
        let mut conn = match &self.path {
            Some(path) => {
                let conn = Connection::open(path)?;
                conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
                conn
            }
            // SQLite's memdb VFS (a private buffer: the name has no leading `/`) rather
            // than `:memory:`, which keeps every page in its page cache and walks it at
            // each commit: the ledger's commits slowed down as it grew (2.9 → 2.1 µs per
            // event in `benches/limits.rs`). memdb caps a database at 1 GiB.
            None => Connection::open_with_flags(
                "file:paywall-ledger?vfs=memdb",
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
        };
        conn.busy_timeout(Duration::from_secs(5))?;
        // Every statement of the ledger is fixed text run through the statement cache,
        // so SQLite parses each once; the cache holds all of them (about 40).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut conn)?;
        for product in &self.products {
            ledger::upsert_product(&mut conn, product)?;
        }
        Ok(LocalBackend {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                portal_url: self
                    .portal_url
                    .or_else(|| local_portal_url(self.checkout_url.as_deref())),
                checkout_url: self.checkout_url,
                portal_sessions: crate::account::PortalSessions::new(),
                periods: Mutex::default(),
                path: self.path,
                merchant: self.merchant.unwrap_or_else(|| "Paywall".into()),
                replay_horizon_ms: i64::try_from(
                    self.replay_horizon
                        .unwrap_or(DEFAULT_REPLAY_HORIZON)
                        .as_millis(),
                )
                .unwrap_or(i64::MAX),
            }),
        })
    }
}

/// The local portal beside the local checkout, when the checkout URL is the local one.
#[cfg(feature = "checkout")]
fn local_portal_url(checkout_url: Option<&str>) -> Option<String> {
    checkout_url
        .and_then(|url| url.strip_suffix(crate::checkout::PATH))
        .map(|base| format!("{base}{}", crate::portal::PATH))
}

/// Without the `checkout` feature there are no local pages to derive a portal from.
#[cfg(not(feature = "checkout"))]
fn local_portal_url(_: Option<&str>) -> Option<String> {
    None
}

/// Statements the ledger's connection keeps prepared: more than it has.
const STATEMENT_CACHE: usize = 64;
