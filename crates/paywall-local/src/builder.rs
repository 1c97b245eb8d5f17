//! [`LocalBackendBuilder`]: where the ledger lives and what it sells, applied on open.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::{ledger, schema, Inner, LocalBackend, LocalError, Product};

/// Configures and opens a [`LocalBackend`].
#[derive(Debug, Default)]
pub struct LocalBackendBuilder {
    path: Option<PathBuf>,
    products: Vec<Product>,
    checkout_url: Option<String>,
    portal_url: Option<String>,
}

impl LocalBackendBuilder {
    /// Keep the ledger in this SQLite file (created if missing). Default: in memory.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Create or update this product and its plans on open.
    pub fn product(mut self, product: Product) -> Self {
        self.products.push(product);
        self
    }

    /// The local checkout page (see [`checkout`]) put in 402 answers, as
    /// `<url>?customer=cus_...&product=prd_...`.
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

    /// Opens the ledger, creating or migrating its schema. Blocking: call it at start-up.
    pub fn open(self) -> Result<LocalBackend, LocalError> {
        let mut conn = match &self.path {
            Some(path) => {
                let conn = Connection::open(path)?;
                conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        for product in &self.products {
            ledger::upsert_product(&mut conn, product)?;
        }
        Ok(LocalBackend {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                portal_url: self.portal_url.or_else(|| {
                    self.checkout_url
                        .as_deref()
                        .and_then(|url| url.strip_suffix(crate::checkout::PATH))
                        .map(|base| format!("{base}{}", crate::portal::PATH))
                }),
                checkout_url: self.checkout_url,
                portal_sessions: Mutex::new(std::collections::HashMap::new()),
                path: self.path,
            }),
        })
    }
}
