//! How the ledger keeps usage: aggregated counters and a compact set of idempotency
//! keys, instead of one row per event.
//!
//! Per event, recording costs one insert into `usage_keys` (the key as 16 bytes when it
//! is a UUID, as the engine makes them) and one append to its age index; the units go
//! into counters summed per batch: `usage_totals` (units of the current allowance
//! period, what a limits check reads) and `usage_daily` (units and events per customer,
//! product, meter, outcome and UTC day: the history the portal and
//! [`LocalBackend::ledger`](crate::LocalBackend::ledger) show). Each customer's
//! allowance period is looked up once and then reused across batches (`periods.rs`),
//! so a batch costs, per customer and meter, the counters' two upserts and, per event,
//! the key insert.
//!
//! **Exactly once.** A key is remembered for the replay horizon
//! ([`LocalBackendBuilder::replay_horizon`](crate::LocalBackendBuilder::replay_horizon),
//! 30 days by default) after the later of when it was recorded and when its event
//! occurred, and pruned after that. An event whose own timestamp is older than the
//! horizon is not counted (its key may already be pruned, so counting it could count it
//! twice): it is logged and reported as not new, never billed twice.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use paywall::backend::{Outcome, UsageEvent};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tracing::warn;

use crate::ledger::{millis, now_ms, to_i64};
use crate::periods::Periods;
use crate::LocalError;

const DAY_MS: i64 = 24 * 3600 * 1000;
/// Prune the key set at most this often (or once per horizon, if shorter).
const PRUNE_EVERY_MS: i64 = 3600 * 1000;

/// The stored form of an idempotency key. A canonical (lowercase, hyphenated) UUID is
/// its 16 bytes; any other key is `0xFF` followed by its UTF-8 bytes (and one more
/// `0xFF` if that would make 16 bytes), so the two forms never collide: `0xFF` never
/// occurs in UTF-8.
pub(crate) fn stored_key(key: &str) -> Vec<u8> {
    if key.len() == 36 {
        if let Ok(uuid) = uuid::Uuid::try_parse(key) {
            let mut canonical = [0u8; 36];
            if uuid.hyphenated().encode_lower(&mut canonical).as_bytes() == key.as_bytes() {
                return uuid.as_bytes().to_vec();
            }
        }
    }
    let mut stored = Vec::with_capacity(key.len() + 2);
    stored.push(0xFF);
    stored.extend_from_slice(key.as_bytes());
    if stored.len() == 16 {
        stored.push(0xFF);
    }
    stored
}

/// (customer, product, meter) of a usage event.
type MeterKey<'a> = (&'a str, &'a str, &'a str);
/// (customer, product, meter, outcome, day) of a daily counter.
type DayKey<'a> = (&'a str, &'a str, &'a str, &'static str, i64);

/// Records `events`, ignoring those whose key is already recorded and those older than
/// `horizon_ms`. Returns, per event, whether it was new. One immediate transaction.
pub(crate) fn record_usage(
    conn: &mut Connection,
    periods: &mut Periods,
    events: &[UsageEvent],
    horizon_ms: i64,
) -> Result<Vec<bool>, LocalError> {
    let now = now_ms();
    let oldest = now.saturating_sub(horizon_ms);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    periods.sync(&tx)?;
    let mut inserted = Vec::with_capacity(events.len());
    // The current period of each (customer, product, meter) of the batch and the
    // success units that land in it.
    let mut totals: HashMap<MeterKey<'_>, Option<(i64, i64)>> = HashMap::new();
    let mut days: HashMap<DayKey<'_>, (i64, i64)> = HashMap::new();
    let mut too_old = 0usize;
    {
        let mut remember = tx.prepare_cached(
            "INSERT INTO usage_keys(key, seen_at) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
        )?;
        for event in events {
            let occurred = millis(event.timestamp);
            if occurred < oldest {
                too_old += 1;
                inserted.push(false);
                continue;
            }
            let key = stored_key(&event.idempotency_key);
            let new = 1 == remember.execute(params![key, occurred.max(now)])?;
            inserted.push(new);
            if !new {
                continue;
            }
            let units = to_i64(event.units);
            let meter = (event.customer.as_str(), &*event.product, &*event.meter);
            let day = occurred.min(now).div_euclid(DAY_MS);
            let counter = days
                .entry((meter.0, meter.1, meter.2, event.outcome.as_str(), day))
                .or_default();
            counter.0 = counter.0.saturating_add(units);
            counter.1 += 1;
            if event.outcome != Outcome::Success {
                continue;
            }
            let current = match totals.entry(meter) {
                Entry::Occupied(known) => known.into_mut(),
                // An unknown product has no allowance to count against (`None`).
                Entry::Vacant(new) => new.insert(
                    periods
                        .start(&tx, meter.0, meter.1, now)?
                        .map(|start| (start, 0)),
                ),
            };
            // An event stamped in the future counts as now.
            if let Some((start, total)) = current {
                if occurred.min(now) >= *start {
                    *total = total.saturating_add(units);
                }
            }
        }
    }
    add_counters(&tx, &totals, &days)?;
    prune(&tx, now, oldest, horizon_ms.min(PRUNE_EVERY_MS))?;
    tx.commit()?;
    if too_old > 0 {
        warn!(
            events = too_old,
            horizon_days = horizon_ms / DAY_MS,
            "usage events older than the replay horizon were not counted"
        );
    }
    Ok(inserted)
}

fn add_counters(
    tx: &Transaction<'_>,
    totals: &HashMap<MeterKey<'_>, Option<(i64, i64)>>,
    days: &HashMap<DayKey<'_>, (i64, i64)>,
) -> Result<(), LocalError> {
    // A period's first row starts from what the per-event table of schema 4 holds for
    // it (nothing, for a ledger created since), as `ledger::used` fills it.
    let mut add = tx.prepare_cached(
        "INSERT INTO usage_totals(customer_ref, product_ref, meter, period_start, units)
         VALUES (?1, ?2, ?3, ?4, ?5 + (
             SELECT COALESCE(SUM(units), 0) FROM usage_events_v4
             WHERE customer_ref = ?1 AND product_ref = ?2 AND meter = ?3
               AND outcome = 'success' AND occurred_at >= ?4))
         ON CONFLICT DO UPDATE SET units = units + ?5",
    )?;
    for (key, period) in totals {
        if let Some((start, units)) = period.filter(|(_, units)| *units != 0) {
            add.execute(params![key.0, key.1, key.2, start, units])?;
        }
    }
    let mut daily = tx.prepare_cached(
        "INSERT INTO usage_daily(customer_ref, product_ref, meter, outcome, day, units, events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT DO UPDATE SET units = units + excluded.units,
                                   events = events + excluded.events",
    )?;
    for (key, (units, events)) in days {
        daily.execute(params![key.0, key.1, key.2, key.3, key.4, units, events])?;
    }
    Ok(())
}

/// Forgets keys past the horizon, at most once every `every_ms` (the last run is kept
/// in the database, so a restart does not prune again at once).
fn prune(tx: &Transaction<'_>, now: i64, oldest: i64, every_ms: i64) -> Result<(), LocalError> {
    let last: Option<i64> = tx
        .prepare_cached("SELECT value FROM ledger_meta WHERE name = 'keys_pruned_at'")?
        .query_row([], |row| row.get(0))
        .optional()?;
    if last.is_some_and(|last| now.saturating_sub(last) < every_ms) {
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM usage_keys WHERE seen_at < ?1")?
        .execute([oldest])?;
    tx.prepare_cached(
        "INSERT INTO ledger_meta(name, value) VALUES ('keys_pruned_at', ?1)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
    )?
    .execute([now])?;
    Ok(())
}

/// Whether an event with this idempotency key is recorded (within the horizon).
pub(crate) fn is_recorded(conn: &Connection, key: &str) -> Result<bool, LocalError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM usage_keys WHERE key = ?1")?
        .query_row([stored_key(key)], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Usage recorded for one customer, product, meter and outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRow {
    /// The billed customer.
    pub customer_ref: String,
    /// The product.
    pub product_ref: String,
    /// The meter.
    pub meter: String,
    /// `success`, `paywall` or `fail`.
    pub outcome: String,
    /// Units consumed, summed over the events.
    pub units: u64,
    /// How many events were recorded.
    pub events: u64,
}

pub(crate) fn ledger(
    conn: &Connection,
    customer: Option<&str>,
) -> Result<Vec<LedgerRow>, LocalError> {
    let mut query = conn.prepare_cached(
        "SELECT customer_ref, product_ref, meter, outcome, SUM(units), SUM(events)
         FROM usage_daily WHERE ?1 IS NULL OR customer_ref = ?1
         GROUP BY customer_ref, product_ref, meter, outcome
         ORDER BY customer_ref, product_ref, meter, outcome",
    )?;
    let rows = query.query_map([customer], |row| {
        Ok(LedgerRow {
            customer_ref: row.get(0)?,
            product_ref: row.get(1)?,
            meter: row.get(2)?,
            outcome: row.get(3)?,
            units: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
            events: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Schema 5's data step: the keys of the per-event table of schema 4 into the key set.
pub(crate) fn migrate_keys(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut read =
        tx.prepare("SELECT idempotency_key, MAX(recorded_at, occurred_at) FROM usage_events_v4")?;
    let mut write =
        tx.prepare("INSERT INTO usage_keys(key, seen_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let seen: i64 = row.get(1)?;
        write.execute(params![stored_key(&key), seen])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use paywall::backend::{BillingBackend, Outcome, UsageEvent};
    use paywall::{CustomerRef, Identity};
    use rusqlite::{params, Connection};

    use super::stored_key;
    use crate::{ledger, schema, LocalBackend, Product};

    fn event(customer: &CustomerRef, key: &str, at: SystemTime) -> UsageEvent {
        UsageEvent {
            idempotency_key: key.into(),
            customer: customer.clone(),
            product: "prd_a".into(),
            meter: "requests".into(),
            units: 1,
            outcome: Outcome::Success,
            timestamp: at,
            duration: None,
        }
    }

    async fn remaining(backend: &LocalBackend, customer: &CustomerRef) -> u64 {
        let limits = backend.check_limits(customer, "prd_a", "requests").await;
        limits.expect("limits").remaining
    }

    #[tokio::test]
    async fn a_schema_4_ledger_keeps_its_usage_and_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ledger.db");
        let uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let customer = {
            let mut conn = Connection::open(&path).expect("open");
            schema::migrate_to(&mut conn, 4).expect("schema 4");
            ledger::upsert_product(&mut conn, &Product::new("prd_a").free_units(10))
                .expect("product");
            let customer =
                ledger::ensure_customer(&mut conn, &Identity::new("u")).expect("customer");
            let at = ledger::now_ms() - 1000;
            for key in [uuid, "k1", "k2"] {
                conn.execute(
                    "INSERT INTO usage_events(idempotency_key, customer_ref, product_ref, meter,
                         units, outcome, occurred_at, recorded_at)
                     VALUES (?1, ?2, 'prd_a', 'requests', 1, 'success', ?3, ?3)",
                    params![key, customer, at],
                )
                .expect("v4 event");
            }
            CustomerRef::new(customer)
        };
        let backend = LocalBackend::builder()
            .path(&path)
            .product(Product::new("prd_a").free_units(10))
            .open()
            .expect("migrated to 5");
        let rows = backend.ledger(None).await.expect("ledger");
        assert_eq!((rows.len(), rows[0].events, rows[0].units), (1, 3, 3));
        // Replays of the old events are recognised; a new one counts once, on top of
        // the old events (the period's counter is made by this batch, from them).
        let now = SystemTime::now();
        let replays: Vec<_> = [uuid, "k1", "k2", "k3"]
            .iter()
            .map(|key| event(&customer, key, now))
            .collect();
        assert_eq!(backend.record(&replays).await.expect("record"), 1);
        assert_eq!(remaining(&backend, &customer).await, 6);
        assert_eq!(backend.ledger(None).await.expect("ledger")[0].events, 4);
    }

    #[tokio::test]
    async fn keys_are_forgotten_after_the_horizon_and_late_events_are_never_counted() {
        let backend = LocalBackend::builder()
            .product(Product::new("prd_a").free_units(10))
            .replay_horizon(Duration::from_millis(300))
            .open()
            .expect("ledger");
        let customer = backend
            .ensure_customer(&Identity::new("u"))
            .await
            .expect("customer");
        let first = event(&customer, "k1", SystemTime::now());
        assert_eq!(
            backend
                .record(std::slice::from_ref(&first))
                .await
                .expect("k1"),
            1
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The next batch prunes k1 ...
        let second = event(&customer, "k2", SystemTime::now());
        assert_eq!(backend.record(&[second]).await.expect("k2"), 1);
        assert!(!backend.is_recorded("k1").await.expect("k1 pruned"));
        assert!(backend.is_recorded("k2").await.expect("k2 kept"));
        // ... and a replay of it, now older than the horizon, is not counted again.
        assert_eq!(backend.record(&[first]).await.expect("late replay"), 0);
        let old = event(&customer, "k3", SystemTime::now() - Duration::from_secs(1));
        assert_eq!(backend.record(&[old]).await.expect("late event"), 0);
        assert_eq!(remaining(&backend, &customer).await, 8);
    }

    #[test]
    fn uuid_keys_are_sixteen_bytes_and_never_collide_with_others() {
        let uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(stored_key(uuid).len(), 16);
        // Not canonical: kept as text, so a differently written key stays distinct.
        assert_eq!(stored_key(&uuid.to_uppercase()).len(), 37);
        assert_ne!(stored_key(&uuid.to_uppercase()), stored_key(uuid));
        // 15 bytes of text would make 16 with the marker: padded to 17.
        assert_eq!(stored_key("fifteen-bytes-k").len(), 17);
        assert_eq!(stored_key("k").len(), 2);
        assert_ne!(stored_key("a"), stored_key("a\u{0}"));
    }
}
