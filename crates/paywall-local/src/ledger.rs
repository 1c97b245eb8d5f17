//! The synchronous ledger operations. Each runs on one connection, inside a transaction
//! where it must be atomic; [`LocalBackend`](crate::LocalBackend) runs them on Tokio's
//! blocking pool.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paywall::Identity;
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
    tx.prepare_cached(
        "INSERT INTO products(reference, name) VALUES (?1, ?2)
         ON CONFLICT(reference) DO UPDATE SET name = excluded.name",
    )?
    .execute(params![product.reference, product.name])?;
    for plan in [&product.free_plan, &product.paid_plan] {
        tx.prepare_cached("INSERT INTO plans(reference, product_ref, name, units, period_secs, price_cents, is_free)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(reference) DO UPDATE SET name = excluded.name, units = excluded.units,
                 period_secs = excluded.period_secs, price_cents = excluded.price_cents,
                 is_free = excluded.is_free")?.execute(params![
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
        .prepare_cached("SELECT reference FROM customers WHERE external_ref = ?1")?
        .query_row([&identity.external_ref], |row| row.get(0))
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
            tx.prepare_cached(
                "INSERT INTO customers(reference, external_ref, email, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                reference,
                identity.external_ref,
                email,
                identity.name,
                now_ms()
            ])?;
            reference
        }
    };
    tx.commit()?;
    Ok(reference)
}

pub(crate) fn email_taken(conn: &Connection, email: &str) -> Result<bool, LocalError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM customers WHERE email = ?1")?
        .query_row([email], |_| Ok(()))
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
pub(crate) struct Period {
    pub(crate) plan: String,
    pub(crate) units: i64,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) is_free: bool,
}

pub(crate) fn period(
    conn: &Connection,
    customer: &str,
    product: &str,
    now: i64,
) -> Result<Period, LocalError> {
    let purchased: Option<(String, i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT p.reference, p.units, p.period_secs, u.started_at
             FROM purchases u JOIN plans p ON p.reference = u.plan_ref
             WHERE u.customer_ref = ?1 AND u.product_ref = ?2 AND u.status = 'active'
             ORDER BY u.started_at DESC LIMIT 1",
        )?
        .query_row(params![customer, product], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let (plan, units, period_secs, anchor, is_free) = match purchased {
        Some((plan, units, period, started)) => (plan, units, period, started, false),
        None => {
            let (plan, units, period): (String, i64, i64) = conn
                .prepare_cached(
                    "SELECT reference, units, period_secs FROM plans
                     WHERE product_ref = ?1 AND is_free = 1 LIMIT 1",
                )?
                .query_row([product], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
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

/// Units used in the period starting at `start`: one row of `usage_totals`, made the
/// first time the period is asked about (before any usage is added to it), from the
/// per-event table schema 4 and earlier kept (usage recorded since goes to the row).
pub(crate) fn used(
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
    let total: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(units), 0) FROM usage_events_v4
         WHERE customer_ref = ?1 AND product_ref = ?2 AND meter = ?3
           AND outcome = 'success' AND occurred_at >= ?4",
        )?
        .query_row(params![customer, product, meter, start], |row| row.get(0))?;
    conn.prepare_cached(
        "INSERT INTO usage_totals(customer_ref, product_ref, meter, period_start, units)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![customer, product, meter, start, total])?;
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
    tx.prepare_cached(
        "UPDATE purchases SET status = 'replaced'
         WHERE customer_ref = ?1 AND product_ref = ?2 AND status = 'active'",
    )?
    .execute(params![customer, product])?;
    let reference = new_reference("pur");
    tx.prepare_cached(
        "INSERT INTO purchases(reference, customer_ref, product_ref, plan_ref, status, started_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5)",
    )?
    .execute(params![
        reference,
        customer,
        product,
        plan.reference,
        now_ms()
    ])?;
    Ok((plan, reference))
}

pub(crate) fn require_customer(conn: &Connection, customer: &str) -> Result<(), LocalError> {
    conn.prepare_cached("SELECT 1 FROM customers WHERE reference = ?1")?
        .query_row([customer], |_| Ok(()))
        .optional()?
        .ok_or_else(|| LocalError::NotFound(format!("customer {customer}")))
}

/// A plan from a row of `reference, name, units, period_secs, price_cents`.
pub(crate) fn plan_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Plan> {
    Ok(Plan {
        reference: row.get(0)?,
        name: row.get(1)?,
        units: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
        period: Duration::from_secs(u64::try_from(row.get::<_, i64>(3)?).unwrap_or(1)),
        price_cents: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
    })
}

pub(crate) fn paid_plan(conn: &Connection, product: &str) -> Result<Plan, LocalError> {
    conn.prepare_cached(
        "SELECT reference, name, units, period_secs, price_cents FROM plans
         WHERE product_ref = ?1 AND is_free = 0 ORDER BY price_cents LIMIT 1",
    )?
    .query_row([product], plan_from_row)
    .optional()?
    .ok_or_else(|| LocalError::NotFound(format!("a paid plan for product {product}")))
}

pub(crate) fn customer_by_external_ref(
    conn: &Connection,
    external_ref: &str,
) -> Result<Option<String>, LocalError> {
    Ok(conn
        .prepare_cached("SELECT reference FROM customers WHERE external_ref = ?1")?
        .query_row([external_ref], |row| row.get(0))
        .optional()?)
}

pub(crate) fn count_customers(conn: &Connection) -> Result<u64, LocalError> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM customers")?
        .query_row([], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
