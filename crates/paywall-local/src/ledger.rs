//! The synchronous ledger operations. Each runs on one connection, inside a transaction
//! where it must be atomic; [`LocalBackend`](crate::LocalBackend) runs them on Tokio's
//! blocking pool.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paywall::{Identity, UsageEvent};
use rand::distr::Alphanumeric;
use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::{LocalError, Plan, Product};

pub(crate) fn now_ms() -> i64 {
    millis(SystemTime::now())
}

pub(crate) fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `prefix_` followed by 20 random alphanumerics.
pub(crate) fn new_reference(prefix: &str) -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    format!("{prefix}_{suffix}")
}

/// Inserts or updates a product and its plans.
pub(crate) fn upsert_product(conn: &mut Connection, product: &Product) -> Result<(), LocalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO products(reference, name) VALUES (?1, ?2)
         ON CONFLICT(reference) DO UPDATE SET name = excluded.name",
        params![product.reference, product.name],
    )?;
    for plan in [&product.free_plan, &product.paid_plan] {
        tx.execute(
            "INSERT INTO plans(reference, product_ref, name, units, period_secs, price_cents, is_free)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(reference) DO UPDATE SET name = excluded.name, units = excluded.units,
                 period_secs = excluded.period_secs, price_cents = excluded.price_cents,
                 is_free = excluded.is_free",
            params![
                plan.reference,
                product.reference,
                plan.name,
                to_i64(plan.units),
                to_i64(plan.period.as_secs().max(1)),
                to_i64(plan.price_cents),
                plan.price_cents == 0,
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Find-or-create by external reference; atomic (one immediate transaction).
pub(crate) fn ensure_customer(
    conn: &mut Connection,
    identity: &Identity,
) -> Result<String, LocalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT reference FROM customers WHERE external_ref = ?1",
            [&identity.external_ref],
            |row| row.get(0),
        )
        .optional()?;
    let reference = match existing {
        Some(reference) => reference,
        None => {
            let reference = new_reference("cus");
            // An email already held by another customer is not stored twice.
            let email = match &identity.email {
                Some(email) if !email_taken(&tx, email)? => Some(email),
                _ => None,
            };
            tx.execute(
                "INSERT INTO customers(reference, external_ref, email, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    reference,
                    identity.external_ref,
                    email,
                    identity.name,
                    now_ms()
                ],
            )?;
            reference
        }
    };
    tx.commit()?;
    Ok(reference)
}

pub(crate) fn email_taken(conn: &Connection, email: &str) -> Result<bool, LocalError> {
    Ok(conn
        .query_row("SELECT 1 FROM customers WHERE email = ?1", [email], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

/// What `check_limits` needs from the ledger.
pub(crate) struct Allowance {
    pub(crate) plan: String,
    pub(crate) units: u64,
    pub(crate) used: u64,
    pub(crate) period_end_ms: i64,
    pub(crate) period_ms: i64,
    pub(crate) is_free: bool,
}

/// The allowance period `customer` is in for `product` at `now`: its plan, the
/// plan's units, and the period's bounds.
struct Period {
    plan: String,
    units: i64,
    start: i64,
    end: i64,
    is_free: bool,
}

fn period(
    conn: &Connection,
    customer: &str,
    product: &str,
    now: i64,
) -> Result<Period, LocalError> {
    let purchased: Option<(String, i64, i64, i64)> = conn
        .query_row(
            "SELECT p.reference, p.units, p.period_secs, u.started_at
             FROM purchases u JOIN plans p ON p.reference = u.plan_ref
             WHERE u.customer_ref = ?1 AND u.product_ref = ?2 AND u.status = 'active'
             ORDER BY u.started_at DESC LIMIT 1",
            params![customer, product],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let (plan, units, period_secs, anchor, is_free) = match purchased {
        Some((plan, units, period, started)) => (plan, units, period, started, false),
        None => {
            let (plan, units, period): (String, i64, i64) = conn
                .query_row(
                    "SELECT reference, units, period_secs FROM plans
                     WHERE product_ref = ?1 AND is_free = 1 LIMIT 1",
                    [product],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?
                .ok_or_else(|| LocalError::NotFound(format!("product {product}")))?;
            // Free periods are fixed windows counted from the Unix epoch; a purchase
            // starts a fresh period of its own when it is made.
            (plan, units, period, 0, true)
        }
    };
    let period_ms = period_secs.max(1).saturating_mul(1000);
    let elapsed = now.saturating_sub(anchor).max(0);
    let period_start = anchor + (elapsed / period_ms) * period_ms;
    Ok(Period {
        plan,
        units,
        start: period_start,
        end: period_start.saturating_add(period_ms),
        is_free,
    })
}

/// Units used in the period starting at `start`: one row of `usage_totals`, filled
/// from the events the first time the period is asked about.
fn used(
    conn: &Connection,
    customer: &str,
    product: &str,
    meter: &str,
    start: i64,
) -> Result<i64, LocalError> {
    let total: Option<i64> = conn
        .prepare_cached(
            "SELECT units FROM usage_totals
             WHERE customer_ref = ?1 AND product_ref = ?2 AND meter = ?3 AND period_start = ?4",
        )?
        .query_row(params![customer, product, meter, start], |row| row.get(0))
        .optional()?;
    if let Some(total) = total {
        return Ok(total);
    }
    let total: i64 = conn.query_row(
        "SELECT COALESCE(SUM(units), 0) FROM usage_events
         WHERE customer_ref = ?1 AND product_ref = ?2 AND meter = ?3
           AND outcome = 'success' AND occurred_at >= ?4",
        params![customer, product, meter, start],
        |row| row.get(0),
    )?;
    conn.execute(
        "INSERT INTO usage_totals(customer_ref, product_ref, meter, period_start, units)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![customer, product, meter, start, total],
    )?;
    Ok(total)
}

pub(crate) fn allowance(
    conn: &Connection,
    customer: &str,
    product: &str,
    meter: &str,
    now: i64,
) -> Result<Allowance, LocalError> {
    require_customer(conn, customer)?;
    let period = period(conn, customer, product, now)?;
    let used = used(conn, customer, product, meter, period.start)?;
    Ok(Allowance {
        plan: period.plan,
        units: u64::try_from(period.units).unwrap_or(0),
        used: u64::try_from(used).unwrap_or(0),
        period_end_ms: period.end,
        period_ms: period.end.saturating_sub(period.start),
        is_free: period.is_free,
    })
}

/// (customer, product, meter) of a usage event.
type MeterKey<'a> = (&'a str, &'a str, &'a str);

/// Inserts events, ignoring those whose idempotency key is already recorded.
/// Returns, per event, whether it was new.
pub(crate) fn record_usage(
    conn: &mut Connection,
    events: &[UsageEvent],
) -> Result<Vec<bool>, LocalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut inserted = Vec::with_capacity(events.len());
    // The current period of each (customer, product, meter) of the batch, its total
    // row made to exist before the events land (so it is not counted twice).
    let now = now_ms();
    let mut periods: HashMap<MeterKey<'_>, Option<i64>> = HashMap::new();
    for event in events {
        let key = (event.customer.as_str(), &*event.product, &*event.meter);
        if periods.contains_key(&key) {
            continue;
        }
        let current = match period(&tx, key.0, key.1, now) {
            Ok(period) => {
                used(&tx, key.0, key.1, key.2, period.start)?;
                Some(period.start)
            }
            // An unknown product has no allowance to count against.
            Err(LocalError::NotFound(_)) => None,
            Err(err) => return Err(err),
        };
        periods.insert(key, current);
    }
    {
        let mut add = tx.prepare_cached(
            "UPDATE usage_totals SET units = units + ?5
             WHERE customer_ref = ?1 AND product_ref = ?2 AND meter = ?3 AND period_start = ?4",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO usage_events(idempotency_key, customer_ref, product_ref, meter, units,
                                      outcome, occurred_at, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(idempotency_key) DO NOTHING",
        )?;
        let recorded_at = now;
        for event in events {
            let occurred = millis(event.timestamp);
            let new = 1
                == insert.execute(params![
                    event.idempotency_key,
                    event.customer.as_str(),
                    &*event.product,
                    &*event.meter,
                    to_i64(event.units),
                    event.outcome.as_str(),
                    occurred,
                    recorded_at,
                ])?;
            let key = (event.customer.as_str(), &*event.product, &*event.meter);
            if let Some(Some(start)) = periods.get(&key) {
                if new && event.outcome == paywall::Outcome::Success && occurred >= *start {
                    add.execute(params![key.0, key.1, key.2, start, to_i64(event.units)])?;
                }
            }
            inserted.push(new);
        }
    }
    tx.commit()?;
    Ok(inserted)
}

/// Moves the customer to the product's paid plan, starting a new period now.
pub(crate) fn purchase(
    conn: &mut Connection,
    customer: &str,
    product: &str,
) -> Result<(Plan, String), LocalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let bought = purchase_in(&tx, customer, product)?;
    tx.commit()?;
    Ok(bought)
}

/// Buys the paid plan inside the caller's transaction; returns it and the purchase.
pub(crate) fn purchase_in(
    tx: &Connection,
    customer: &str,
    product: &str,
) -> Result<(Plan, String), LocalError> {
    require_customer(tx, customer)?;
    let plan = paid_plan(tx, product)?;
    tx.execute(
        "UPDATE purchases SET status = 'replaced'
         WHERE customer_ref = ?1 AND product_ref = ?2 AND status = 'active'",
        params![customer, product],
    )?;
    let reference = new_reference("pur");
    tx.execute(
        "INSERT INTO purchases(reference, customer_ref, product_ref, plan_ref, status, started_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5)",
        params![reference, customer, product, plan.reference, now_ms()],
    )?;
    Ok((plan, reference))
}

pub(crate) fn require_customer(conn: &Connection, customer: &str) -> Result<(), LocalError> {
    conn.query_row(
        "SELECT 1 FROM customers WHERE reference = ?1",
        [customer],
        |_| Ok(()),
    )
    .optional()?
    .ok_or_else(|| LocalError::NotFound(format!("customer {customer}")))
}

pub(crate) fn paid_plan(conn: &Connection, product: &str) -> Result<Plan, LocalError> {
    conn.query_row(
        "SELECT reference, name, units, period_secs, price_cents FROM plans
         WHERE product_ref = ?1 AND is_free = 0 ORDER BY price_cents LIMIT 1",
        [product],
        |row| {
            Ok(Plan {
                reference: row.get(0)?,
                name: row.get(1)?,
                units: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                period: Duration::from_secs(u64::try_from(row.get::<_, i64>(3)?).unwrap_or(1)),
                price_cents: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
            })
        },
    )
    .optional()?
    .ok_or_else(|| LocalError::NotFound(format!("a paid plan for product {product}")))
}

/// One row of the usage ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRow {
    /// The event's idempotency key.
    pub idempotency_key: String,
    /// The billed customer.
    pub customer_ref: String,
    /// The product.
    pub product_ref: String,
    /// The meter.
    pub meter: String,
    /// Units consumed.
    pub units: u64,
    /// `success`, `paywall` or `fail`.
    pub outcome: String,
}

pub(crate) fn ledger(
    conn: &Connection,
    customer: Option<&str>,
) -> Result<Vec<LedgerRow>, LocalError> {
    let mut query = conn.prepare(
        "SELECT idempotency_key, customer_ref, product_ref, meter, units, outcome
         FROM usage_events WHERE ?1 IS NULL OR customer_ref = ?1 ORDER BY id",
    )?;
    let rows = query.query_map([customer], |row| {
        Ok(LedgerRow {
            idempotency_key: row.get(0)?,
            customer_ref: row.get(1)?,
            product_ref: row.get(2)?,
            meter: row.get(3)?,
            units: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
            outcome: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn customer_by_external_ref(
    conn: &Connection,
    external_ref: &str,
) -> Result<Option<String>, LocalError> {
    Ok(conn
        .query_row(
            "SELECT reference FROM customers WHERE external_ref = ?1",
            [external_ref],
            |row| row.get(0),
        )
        .optional()?)
}

pub(crate) fn count_customers(conn: &Connection) -> Result<u64, LocalError> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM customers", [], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
