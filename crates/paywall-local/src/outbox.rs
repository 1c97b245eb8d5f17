//! The durable usage outbox in SQLite: [`SqliteOutbox`].

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use paywall::backend::{Outcome, UsageEvent};
use paywall::recorder::{Outbox, OutboxError};
use paywall::CustomerRef;
use rusqlite::{params, Connection, TransactionBehavior};

use crate::ledger::{millis, to_i64};
use crate::LocalError;

/// Usage events waiting for the billing backend's acknowledgement, in a SQLite file
/// (WAL, so a write is durable once it returns, even if the process is then killed).
///
/// ```
/// # fn main() -> Result<(), paywall_local::LocalError> {
/// let dir = std::env::temp_dir().join(format!("outbox-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).ok();
/// let outbox = paywall_local::SqliteOutbox::open(dir.join("outbox.db"))?;
/// // paywall::Paywall::builder(resolver, backend).outbox(outbox).build()?
/// # let _ = outbox;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteOutbox {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteOutbox {
    /// Opens (or creates) the outbox file. Blocking: call it at start-up.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LocalError> {
        let conn = Connection::open(path)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS outbox (
                idempotency_key TEXT PRIMARY KEY,
                customer_ref    TEXT NOT NULL,
                product_ref     TEXT NOT NULL,
                meter           TEXT NOT NULL,
                units           INTEGER NOT NULL,
                outcome         TEXT NOT NULL,
                occurred_at     INTEGER NOT NULL,
                duration_ms     INTEGER,
                stored_at       INTEGER NOT NULL
            );",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, OutboxError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|_| OutboxError("the outbox task did not complete".into()))?
        .map_err(|err| OutboxError(err.to_string()))
    }

    /// How many events are waiting.
    pub async fn len(&self) -> Result<u64, OutboxError> {
        self.run(|conn| {
            conn.prepare_cached("SELECT COUNT(*) FROM outbox")?
                .query_row([], |row| row.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// Whether no event is waiting.
    pub async fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.len().await? == 0)
    }
}

impl Outbox for SqliteOutbox {
    async fn store(&self, event: &UsageEvent) -> Result<(), OutboxError> {
        let event = event.clone();
        self.run(move |conn| insert(conn, &event)).await
    }

    async fn remove(&self, keys: &[String]) -> Result<(), OutboxError> {
        let keys = keys.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            delete(&tx, &keys)?;
            tx.commit()
        })
        .await
    }

    /// One transaction: the sum is stored and its events gone, or nothing changed.
    async fn replace(&self, keys: &[String], event: &UsageEvent) -> Result<(), OutboxError> {
        let keys = keys.to_vec();
        let event = event.clone();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            insert(&tx, &event)?;
            delete(&tx, &keys)?;
            tx.commit()
        })
        .await
    }

    async fn pending(&self) -> Result<Vec<UsageEvent>, OutboxError> {
        self.run(|conn| {
            let mut query = conn.prepare_cached(
                "SELECT idempotency_key, customer_ref, product_ref, meter, units, outcome,
                        occurred_at, duration_ms
                 FROM outbox ORDER BY stored_at, rowid",
            )?;
            let rows = query.query_map([], |row| {
                let outcome = match row.get::<_, String>(5)?.as_str() {
                    "paywall" => Outcome::Paywall,
                    "fail" => Outcome::Fail,
                    _ => Outcome::Success,
                };
                let occurred: i64 = row.get(6)?;
                let duration: Option<i64> = row.get(7)?;
                Ok(UsageEvent {
                    idempotency_key: row.get(0)?,
                    customer: CustomerRef::new(row.get::<_, String>(1)?),
                    product: row.get::<_, String>(2)?.into(),
                    meter: row.get::<_, String>(3)?.into(),
                    units: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    outcome,
                    timestamp: UNIX_EPOCH
                        + Duration::from_millis(u64::try_from(occurred).unwrap_or(0)),
                    duration: duration
                        .and_then(|d| u64::try_from(d).ok())
                        .map(Duration::from_millis),
                })
            })?;
            rows.collect()
        })
        .await
    }
}

/// Stores `event` unless its key is stored already.
fn insert(conn: &Connection, event: &UsageEvent) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox(idempotency_key, customer_ref, product_ref, meter, units,
                                      outcome, occurred_at, duration_ms, stored_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        event.idempotency_key,
        event.customer.as_str(),
        &*event.product,
        &*event.meter,
        to_i64(event.units),
        event.outcome.as_str(),
        millis(event.timestamp),
        event
            .duration
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        crate::ledger::now_ms(),
    ])
    .map(drop)
}

/// Forgets the events stored under `keys`.
fn delete(conn: &Connection, keys: &[String]) -> Result<(), rusqlite::Error> {
    let mut delete = conn.prepare_cached("DELETE FROM outbox WHERE idempotency_key = ?1")?;
    for key in keys {
        delete.execute([key])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn event(key: &str) -> UsageEvent {
        UsageEvent {
            idempotency_key: key.into(),
            customer: CustomerRef::new("cus_1"),
            product: "prd_a".into(),
            meter: "requests".into(),
            units: 2,
            outcome: Outcome::Success,
            timestamp: SystemTime::now(),
            duration: Some(Duration::from_millis(7)),
        }
    }

    #[tokio::test]
    async fn stores_survive_reopening_and_removal_is_by_key() {
        let dir = std::env::temp_dir().join(format!(
            "paywall-outbox-{}",
            crate::ledger::new_reference("t")
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("outbox.db");
        {
            let outbox = SqliteOutbox::open(&path).expect("open");
            for key in ["k1", "k2", "k3"] {
                outbox.store(&event(key)).await.expect("store");
            }
            outbox
                .store(&event("k1"))
                .await
                .expect("a second store of a key is ignored");
            outbox.remove(&["k2".to_owned()]).await.expect("remove");
        }
        let outbox = SqliteOutbox::open(&path).expect("reopen");
        let pending = outbox.pending().await.expect("pending");
        let keys: Vec<_> = pending.iter().map(|e| e.idempotency_key.as_str()).collect();
        assert_eq!(keys, ["k1", "k3"]);
        assert_eq!(pending[0].units, 2);
        assert_eq!(pending[0].duration, Some(Duration::from_millis(7)));
        assert_eq!(outbox.len().await.expect("len"), 2);
        let mut sum = event("k4");
        sum.units = 4;
        outbox
            .replace(&["k1".to_owned(), "k3".to_owned()], &sum)
            .await
            .expect("replace");
        let pending = outbox.pending().await.expect("pending");
        assert_eq!(pending.len(), 1, "the sum in place of its events");
        assert_eq!(
            (pending[0].idempotency_key.as_str(), pending[0].units),
            ("k4", 4)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
