//! Customers and checkout sessions as a provider's API exposes them: lookups, creation
//! with conflicts, updates, sessions that end in a purchase. Used by the dev server.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::ledger::{self, new_reference, now_ms};
use crate::{LocalError, Plan};

/// A customer with its purchases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRecord {
    /// `cus_...`.
    pub reference: String,
    /// The application's id.
    pub external_ref: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Purchases, newest first.
    pub purchases: Vec<PurchaseRecord>,
}

/// A purchase of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseRecord {
    /// `pur_...`.
    pub reference: String,
    /// The product.
    pub product_ref: String,
    /// The product's name.
    pub product_name: String,
    /// The plan.
    pub plan_ref: String,
    /// `active` or `replaced`.
    pub status: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Price in cents.
    pub price_cents: u64,
    /// Unix milliseconds, when cancelled.
    pub cancelled_at: Option<i64>,
}

/// How to find a customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// By `cus_...`.
    Reference(&'a str),
    /// By the application's id.
    ExternalRef(&'a str),
    /// By email.
    Email(&'a str),
}

/// Fields to change on a customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerPatch {
    /// New email.
    pub email: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New external reference.
    pub external_ref: Option<String>,
}

/// A checkout session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub id: String,
    /// The customer.
    pub customer_ref: String,
    /// The product.
    pub product_ref: String,
    /// The plan it sells.
    pub plan_ref: String,
    /// Where to send the customer afterwards.
    pub return_url: Option<String>,
    /// `open` or `complete`.
    pub status: String,
    /// The purchase, once complete.
    pub purchase_ref: Option<String>,
}

impl Lookup<'_> {
    /// The column searched and the value sought.
    pub(crate) fn parts(self) -> (Column, String) {
        match self {
            Lookup::Reference(v) => (Column::Reference, v.to_owned()),
            Lookup::ExternalRef(v) => (Column::ExternalRef, v.to_owned()),
            Lookup::Email(v) => (Column::Email, v.to_owned()),
        }
    }
}

/// A unique column of `customers`, with its statements spelled out (fixed text, so
/// the connection's statement cache prepares each once).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Column {
    Reference,
    ExternalRef,
    Email,
}

impl Column {
    fn select_customer(self) -> &'static str {
        match self {
            Column::Reference => {
                "SELECT reference, external_ref, email, name FROM customers WHERE reference = ?1"
            }
            Column::ExternalRef => {
                "SELECT reference, external_ref, email, name FROM customers WHERE external_ref = ?1"
            }
            Column::Email => {
                "SELECT reference, external_ref, email, name FROM customers WHERE email = ?1"
            }
        }
    }

    fn select_reference(self) -> &'static str {
        match self {
            Column::Reference => "SELECT reference FROM customers WHERE reference = ?1",
            Column::ExternalRef => "SELECT reference FROM customers WHERE external_ref = ?1",
            Column::Email => "SELECT reference FROM customers WHERE email = ?1",
        }
    }
}

pub(crate) fn find(
    conn: &Connection,
    lookup: Lookup<'_>,
) -> Result<Option<CustomerRecord>, LocalError> {
    let (column, value) = lookup.parts();
    find_by(conn, column, &value)
}

/// The customer whose `column` is `value`, with its purchases.
pub(crate) fn find_by(
    conn: &Connection,
    column: Column,
    value: &str,
) -> Result<Option<CustomerRecord>, LocalError> {
    let found = conn
        .prepare_cached(column.select_customer())?
        .query_row([value], |row| {
            Ok(CustomerRecord {
                reference: row.get(0)?,
                external_ref: row.get(1)?,
                email: row.get(2)?,
                name: row.get(3)?,
                purchases: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut customer) = found else {
        return Ok(None);
    };
    let mut query = conn.prepare_cached(
        "SELECT u.reference, u.product_ref, p.name, u.plan_ref, u.status, u.started_at, l.price_cents,
                u.cancelled_at
         FROM purchases u JOIN products p ON p.reference = u.product_ref
                          JOIN plans l ON l.reference = u.plan_ref
         WHERE u.customer_ref = ?1 ORDER BY u.started_at DESC",
    )?;
    customer.purchases = query
        .query_map([&customer.reference], |row| {
            Ok(PurchaseRecord {
                reference: row.get(0)?,
                product_ref: row.get(1)?,
                product_name: row.get(2)?,
                plan_ref: row.get(3)?,
                status: row.get(4)?,
                started_at: row.get(5)?,
                price_cents: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
                cancelled_at: row.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(customer))
}

fn conflicts(
    conn: &Connection,
    reference: Option<&str>,
    email: Option<&str>,
    external_ref: Option<&str>,
) -> Result<(), LocalError> {
    let owner = |column: Column, value: &str| -> Result<Option<String>, LocalError> {
        Ok(conn
            .prepare_cached(column.select_reference())?
            .query_row([value], |row| row.get(0))
            .optional()?)
    };
    if let Some(email) = email {
        if owner(Column::Email, email)?.is_some_and(|o| Some(o.as_str()) != reference) {
            return Err(LocalError::Conflict(format!(
                "a customer with email {email} already exists"
            )));
        }
    }
    if let Some(external_ref) = external_ref {
        if owner(Column::ExternalRef, external_ref)?.is_some_and(|o| Some(o.as_str()) != reference)
        {
            return Err(LocalError::Conflict(format!(
                "a customer with externalRef {external_ref} already exists"
            )));
        }
    }
    Ok(())
}

pub(crate) fn create(
    conn: &mut Connection,
    email: &str,
    name: Option<&str>,
    external_ref: Option<&str>,
) -> Result<CustomerRecord, LocalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    conflicts(&tx, None, Some(email), external_ref)?;
    let reference = new_reference("cus");
    tx.prepare_cached("INSERT INTO customers(reference, external_ref, email, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![reference, external_ref, email, name, now_ms()],
    )?;
    tx.commit()?;
    find(conn, Lookup::Reference(&reference))?
        .ok_or_else(|| LocalError::NotFound(format!("customer {reference}")))
}

pub(crate) fn update(
    conn: &mut Connection,
    reference: &str,
    patch: &CustomerPatch,
) -> Result<CustomerRecord, LocalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    ledger::require_customer(&tx, reference)?;
    conflicts(
        &tx,
        Some(reference),
        patch.email.as_deref(),
        patch.external_ref.as_deref(),
    )?;
    tx.prepare_cached(
        "UPDATE customers SET email = COALESCE(?2, email), name = COALESCE(?3, name),
                              external_ref = COALESCE(?4, external_ref)
         WHERE reference = ?1",
    )?
    .execute(params![
        reference,
        patch.email,
        patch.name,
        patch.external_ref
    ])?;
    tx.commit()?;
    find(conn, Lookup::Reference(reference))?
        .ok_or_else(|| LocalError::NotFound(format!("customer {reference}")))
}

/// Reuses the customer's open session for the product and plan, or opens one.
/// The id of `customer`'s open session for `product`'s paid plan (no return URL), as a
/// limits check links it: found with reads alone when it is open already (every limits
/// check after the first), opened in a write transaction otherwise.
pub(crate) fn open_session_id(
    conn: &mut Connection,
    customer: &str,
    product: &str,
) -> Result<String, LocalError> {
    let plan = ledger::paid_plan(conn, product)?.reference;
    let open: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM checkout_sessions WHERE customer_ref = ?1 AND product_ref = ?2
               AND plan_ref = ?3 AND status = 'open' AND return_url IS NULL",
        )?
        .query_row(params![customer, product, plan], |row| row.get(0))
        .optional()?;
    match open {
        Some(id) => Ok(id),
        None => Ok(open_session(conn, customer, product, Some(&plan), None)?.id),
    }
}

pub(crate) fn open_session(
    conn: &mut Connection,
    customer: &str,
    product: &str,
    plan: Option<&str>,
    return_url: Option<&str>,
) -> Result<SessionRecord, LocalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    ledger::require_customer(&tx, customer)?;
    let plan = match plan {
        Some(plan) => tx
            .prepare_cached("SELECT reference FROM plans WHERE reference = ?1 AND product_ref = ?2 AND is_free = 0")?.query_row(params![plan, product],
                |row| row.get::<_, String>(0),
            )
            .optional()?
            .ok_or_else(|| LocalError::NotFound(format!("paid plan {plan} of product {product}")))?,
        None => ledger::paid_plan(&tx, product)?.reference,
    };
    let open: Option<String> = tx
        .prepare_cached(
            "SELECT id FROM checkout_sessions WHERE customer_ref = ?1 AND product_ref = ?2
               AND plan_ref = ?3 AND status = 'open' AND return_url IS ?4",
        )?
        .query_row(params![customer, product, plan, return_url], |row| {
            row.get(0)
        })
        .optional()?;
    let id = match open {
        Some(id) => id,
        None => {
            let id = new_reference("cs");
            tx.prepare_cached("INSERT INTO checkout_sessions(id, customer_ref, product_ref, plan_ref, return_url, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6)")?.execute(params![id, customer, product, plan, return_url, now_ms()],
            )?;
            id
        }
    };
    tx.commit()?;
    session(conn, &id)?.ok_or_else(|| LocalError::NotFound(format!("checkout session {id}")))
}

pub(crate) fn session(conn: &Connection, id: &str) -> Result<Option<SessionRecord>, LocalError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, customer_ref, product_ref, plan_ref, return_url, status, purchase_ref
             FROM checkout_sessions WHERE id = ?1",
        )?
        .query_row([id], |row| {
            Ok(SessionRecord {
                id: row.get(0)?,
                customer_ref: row.get(1)?,
                product_ref: row.get(2)?,
                plan_ref: row.get(3)?,
                return_url: row.get(4)?,
                status: row.get(5)?,
                purchase_ref: row.get(6)?,
            })
        })
        .optional()?)
}

/// Pays a session: buys its plan. Paying a completed session again changes nothing.
/// Returns the session, the plan and whether this call made the purchase.
pub(crate) fn complete(
    conn: &mut Connection,
    id: &str,
) -> Result<(SessionRecord, Plan, bool), LocalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current =
        session(&tx, id)?.ok_or_else(|| LocalError::NotFound(format!("checkout session {id}")))?;
    let bought = current.status != "complete";
    let plan = if bought {
        let (plan, purchase) =
            ledger::purchase_in(&tx, &current.customer_ref, &current.product_ref)?;
        tx.prepare_cached(
            "UPDATE checkout_sessions SET status = 'complete', purchase_ref = ?2 WHERE id = ?1",
        )?
        .execute(params![id, purchase])?;
        plan
    } else {
        ledger::paid_plan(&tx, &current.product_ref)?
    };
    let done =
        session(&tx, id)?.ok_or_else(|| LocalError::NotFound(format!("checkout session {id}")))?;
    tx.commit()?;
    Ok((done, plan, bought))
}
