//! The ledger's schema, created and migrated on open (`PRAGMA user_version`).

use rusqlite::{Connection, Transaction};

/// A data step run after a migration's SQL, in the same transaction.
type DataStep = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// Each entry migrates the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: customers, products, plans, purchases, the usage ledger.
    "CREATE TABLE customers (
        reference    TEXT PRIMARY KEY,
        external_ref TEXT UNIQUE,
        email        TEXT,
        name         TEXT,
        created_at   INTEGER NOT NULL
    );
    CREATE TABLE products (
        reference TEXT PRIMARY KEY,
        name      TEXT NOT NULL
    );
    CREATE TABLE plans (
        reference   TEXT PRIMARY KEY,
        product_ref TEXT NOT NULL REFERENCES products(reference),
        name        TEXT NOT NULL,
        units       INTEGER NOT NULL,
        period_secs INTEGER NOT NULL,
        price_cents INTEGER NOT NULL,
        is_free     INTEGER NOT NULL
    );
    CREATE TABLE purchases (
        reference    TEXT PRIMARY KEY,
        customer_ref TEXT NOT NULL REFERENCES customers(reference),
        product_ref  TEXT NOT NULL REFERENCES products(reference),
        plan_ref     TEXT NOT NULL REFERENCES plans(reference),
        status       TEXT NOT NULL,
        started_at   INTEGER NOT NULL
    );
    CREATE INDEX purchases_by_customer ON purchases(customer_ref, product_ref, status);
    CREATE TABLE usage_events (
        id              INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        customer_ref    TEXT NOT NULL,
        product_ref     TEXT NOT NULL,
        meter           TEXT NOT NULL,
        units           INTEGER NOT NULL,
        outcome         TEXT NOT NULL,
        occurred_at     INTEGER NOT NULL,
        recorded_at     INTEGER NOT NULL
    );
    CREATE INDEX usage_by_customer ON usage_events(customer_ref, product_ref, meter, occurred_at);",
    // 2: one customer per email (SolvaPay answers 409), checkout sessions.
    "CREATE UNIQUE INDEX customers_by_email ON customers(email) WHERE email IS NOT NULL;
    CREATE TABLE checkout_sessions (
        id           TEXT PRIMARY KEY,
        customer_ref TEXT NOT NULL REFERENCES customers(reference),
        product_ref  TEXT NOT NULL REFERENCES products(reference),
        plan_ref     TEXT NOT NULL REFERENCES plans(reference),
        return_url   TEXT,
        status       TEXT NOT NULL,
        purchase_ref TEXT,
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX open_sessions ON checkout_sessions(customer_ref, product_ref, status);",
    // 3: units used per allowance period, so a limits check reads one row whatever the
    // history (a period's row is filled from usage_events the first time it is needed).
    "CREATE TABLE usage_totals (
        customer_ref TEXT NOT NULL,
        product_ref  TEXT NOT NULL,
        meter        TEXT NOT NULL,
        period_start INTEGER NOT NULL,
        units        INTEGER NOT NULL,
        PRIMARY KEY (customer_ref, product_ref, meter, period_start)
    ) WITHOUT ROWID;",
    // 4: when a purchase was cancelled (from the billing routes or the local portal).
    "ALTER TABLE purchases ADD COLUMN cancelled_at INTEGER;",
    // 5: usage as counters and a key set (see `usage.rs`) instead of a row per event.
    // The per-event table stays, read-only, for the periods it has no totals row of.
    "CREATE TABLE usage_keys (
        key     BLOB PRIMARY KEY,
        seen_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX usage_keys_by_age ON usage_keys(seen_at);
    CREATE TABLE usage_daily (
        customer_ref TEXT NOT NULL,
        product_ref  TEXT NOT NULL,
        meter        TEXT NOT NULL,
        outcome      TEXT NOT NULL,
        day          INTEGER NOT NULL,
        units        INTEGER NOT NULL,
        events       INTEGER NOT NULL,
        PRIMARY KEY (customer_ref, product_ref, meter, outcome, day)
    ) WITHOUT ROWID;
    INSERT INTO usage_daily(customer_ref, product_ref, meter, outcome, day, units, events)
        SELECT customer_ref, product_ref, meter, outcome, occurred_at / 86400000,
               SUM(units), COUNT(*)
        FROM usage_events GROUP BY 1, 2, 3, 4, 5;
    ALTER TABLE usage_events RENAME TO usage_events_v4;
    CREATE TABLE ledger_meta (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 6: a version of purchases and plans, bumped by every write to either from any
    // connection, so that recording usage can reuse the periods it found (`periods.rs`):
    // the triggers are made by `version_triggers`.
    "",
];

/// The data steps, by the version they migrate to.
const DATA_STEPS: &[(u32, DataStep)] = &[(5, crate::usage::migrate_keys), (6, version_triggers)];

/// Schema 6: after every insert, update or delete on `purchases` or `plans`,
/// `ledger_meta.plans_version` goes up by one.
fn version_triggers(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    for table in ["purchases", "plans"] {
        for (event, name) in [
            ("INSERT", "inserted"),
            ("UPDATE", "updated"),
            ("DELETE", "deleted"),
        ] {
            tx.execute_batch(&format!(
                "CREATE TRIGGER {table}_{name} AFTER {event} ON {table} BEGIN
                     INSERT INTO ledger_meta(name, value) VALUES ('plans_version', 1)
                     ON CONFLICT(name) DO UPDATE SET value = value + 1;
                 END;"
            ))?;
        }
    }
    Ok(())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`SCHEMA_VERSION`], one transaction per step.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), crate::LocalError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Brings the database to `target` (the tests build older databases with it).
pub(crate) fn migrate_to(conn: &mut Connection, target: u32) -> Result<(), crate::LocalError> {
    conn.pragma_update(None, "foreign_keys", true)?;
    let current: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(crate::LocalError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    let steps = MIGRATIONS.iter().enumerate().take(target as usize);
    for (index, sql) in steps.skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        for (_, step) in DATA_STEPS.iter().filter(|(to, _)| *to == index as u32 + 1) {
            step(&tx)?;
        }
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
