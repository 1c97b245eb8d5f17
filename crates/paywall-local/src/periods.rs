//! The allowance periods recording usage last found, per customer and product, so
//! that a batch of usage does not look up every customer's purchase and plan again.
//!
//! A period is reused while it has not ended and `ledger_meta.plans_version` is
//! unchanged: triggers (schema 6) bump that version on every write to `purchases` or
//! `plans`, from this connection or any other, so a purchase, a cancellation or a
//! changed plan is seen by the next batch. Reading the version costs one indexed row per
//! batch, against two queries per customer per batch without it.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use crate::ledger::period;
use crate::LocalError;

/// Customers remembered at most (until purchases or plans change).
const MAX_REMEMBERED: usize = 65_536;

/// What is remembered of one customer and product: the period's bounds, or `None`
/// when the product has no allowance (an unknown product) at this version.
type Remembered = Option<(i64, i64)>;

/// The periods found at one `plans_version`, by customer and product.
#[derive(Debug)]
pub(crate) struct Periods {
    version: Option<i64>,
    by_customer: HashMap<String, HashMap<String, Remembered>>,
    /// Customers remembered at most.
    limit: usize,
}

impl Default for Periods {
    fn default() -> Self {
        Self::with_limit(MAX_REMEMBERED)
    }
}

impl Periods {
    fn with_limit(limit: usize) -> Self {
        Self {
            version: None,
            by_customer: HashMap::new(),
            limit,
        }
    }

    /// Forgets everything when the purchases or plans changed since the last call.
    /// Called once per batch, inside its transaction.
    pub(crate) fn sync(&mut self, conn: &Connection) -> Result<(), LocalError> {
        let version: i64 = conn
            .prepare_cached("SELECT value FROM ledger_meta WHERE name = 'plans_version'")?
            .query_row([], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        if self.version != Some(version) {
            self.by_customer.clear();
            self.version = Some(version);
        }
        Ok(())
    }

    /// When the period of `customer` and `product` containing `now` started, or `None`
    /// when the product is unknown (no allowance to count against).
    pub(crate) fn start(
        &mut self,
        conn: &Connection,
        customer: &str,
        product: &str,
        now: i64,
    ) -> Result<Option<i64>, LocalError> {
        let known = self
            .by_customer
            .get(customer)
            .and_then(|products| products.get(product));
        match known {
            Some(None) => return Ok(None),
            Some(Some((start, end))) if *start <= now && now < *end => return Ok(Some(*start)),
            _ => {}
        }
        let found = match period(conn, customer, product, now) {
            Ok(period) => Some((period.start, period.end)),
            Err(LocalError::NotFound(_)) => None,
            Err(err) => return Err(err),
        };
        let full = self.by_customer.len() >= self.limit;
        match self.by_customer.get_mut(customer) {
            Some(products) => match products.get_mut(product) {
                Some(known) => *known = found,
                None => {
                    products.insert(product.to_owned(), found);
                }
            },
            // Full: those remembered stay (starting over would make every customer a
            // miss when more of them take turns than fit), the others are looked up.
            None if full => {}
            None => {
                self.by_customer.insert(
                    customer.to_owned(),
                    HashMap::from([(product.to_owned(), found)]),
                );
            }
        }
        Ok(found.map(|(start, _)| start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_full_those_remembered_stay() {
        let conn = ledger();
        let mut periods = Periods::with_limit(2);
        periods.sync(&conn).expect("sync");
        for customer in ["cus_a", "cus_b", "cus_c", "cus_a", "cus_b", "cus_c"] {
            assert_eq!(
                periods.start(&conn, customer, "prd", 5_000).expect("free"),
                Some(0)
            );
        }
        assert_eq!(periods.by_customer.len(), 2);
        assert!(periods.by_customer.contains_key("cus_a"));
        assert!(periods.by_customer.contains_key("cus_b"));
        assert!(!periods.by_customer.contains_key("cus_c"));
    }

    fn ledger() -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(&mut conn).expect("migrate");
        conn.execute_batch(
            "INSERT INTO customers(reference, created_at) VALUES ('cus_a', 0);
             INSERT INTO products(reference, name) VALUES ('prd', 'P');
             INSERT INTO plans VALUES ('pln_free', 'prd', 'Free', 3, 86400, 0, 1);
             INSERT INTO plans VALUES ('pln_paid', 'prd', 'Paid', 9, 3600, 900, 0);",
        )
        .expect("seed");
        conn
    }

    #[test]
    fn a_purchase_made_on_another_connection_is_seen_by_the_next_batch() {
        let conn = ledger();
        let mut periods = Periods::default();
        let now = 86_400_000 * 10 + 5_000;
        periods.sync(&conn).expect("sync");
        assert_eq!(
            periods.start(&conn, "cus_a", "prd", now).expect("free"),
            Some(86_400_000 * 10),
            "the free plan's daily window"
        );
        assert_eq!(
            periods.start(&conn, "cus_a", "nope", now).expect("unknown"),
            None
        );
        // Written behind the cache's back, as another process would: the trigger bumps
        // the version, so the next batch finds the purchase's own period.
        conn.execute(
            "INSERT INTO purchases(reference, customer_ref, product_ref, plan_ref, status, started_at)
             VALUES ('pur_1', 'cus_a', 'prd', 'pln_paid', 'active', ?1)",
            [now - 1_000],
        )
        .expect("purchase");
        assert_eq!(
            periods
                .start(&conn, "cus_a", "prd", now)
                .expect("stale until synced"),
            Some(86_400_000 * 10)
        );
        periods.sync(&conn).expect("sync");
        assert_eq!(
            periods.start(&conn, "cus_a", "prd", now).expect("paid"),
            Some(now - 1_000)
        );
        // A period that ended is looked up again without any write.
        assert_eq!(
            periods
                .start(&conn, "cus_a", "prd", now - 1_000 + 3_600_000)
                .expect("next hour"),
            Some(now - 1_000 + 3_600_000)
        );
        conn.execute("UPDATE purchases SET status = 'cancelled'", [])
            .expect("cancel");
        periods.sync(&conn).expect("sync");
        assert_eq!(
            periods
                .start(&conn, "cus_a", "prd", now)
                .expect("free again"),
            Some(86_400_000 * 10)
        );
    }
}
