//! The embedded backend as SolvaPay's SDKs see it: the catalogue (merchant, products,
//! plans) in the shapes of SolvaPay's generated types, plan activation, reactivating
//! a cancelled purchase within its period, and the [`AccountCall`]s of SolvaPay's
//! React components. Card payments are not simulated: those calls are
//! [`BackendError::Unsupported`] (the local checkout and portal take payments here).

use paywall::backend::{AccountCall, BackendError};
use paywall::CustomerRef;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

use crate::directory::{self, PurchaseRecord};
use crate::{ledger, LocalBackend, LocalError, Plan};

/// A product the ledger sells, with its plans (cheapest first: the free plan).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatalogueProduct {
    /// `prd_…`.
    pub reference: String,
    /// Display name.
    pub name: String,
    /// Its plans, cheapest first.
    pub plans: Vec<Plan>,
}

impl CatalogueProduct {
    /// As SolvaPay's `Product`.
    pub fn to_json(&self) -> Value {
        json!({
            "reference": self.reference,
            "name": self.name,
            "status": "active",
            "plans": self.plans.iter().map(plan_json).collect::<Vec<_>>(),
        })
    }

    /// The plans as SolvaPay's `Plan[]`.
    pub fn plans_json(&self) -> Value {
        Value::Array(self.plans.iter().map(plan_json).collect())
    }
}

/// A plan as SolvaPay's `Plan`: price in minor units of USD, the units per period as
/// its `limit`, free plans the default.
fn plan_json(plan: &Plan) -> Value {
    let free = plan.price_cents == 0;
    let mut json = json!({
        "type": "recurring",
        "reference": plan.reference,
        "name": plan.name,
        "price": plan.price_cents,
        "currency": "USD",
        "limit": plan.units,
        "freeUnits": if free { plan.units } else { 0 },
        "requiresPayment": !free,
        "default": free,
        "isActive": true,
        "status": "active",
    });
    let cycle = match plan.period.as_secs() {
        86_400 => Some("daily"),
        604_800 => Some("weekly"),
        2_592_000 => Some("monthly"),
        31_536_000 => Some("yearly"),
        _ => None,
    };
    if let (Some(cycle), Value::Object(fields)) = (cycle, &mut json) {
        fields.insert("billingCycle".into(), json!(cycle));
    }
    json
}

fn catalogue_in(
    conn: &Connection,
    only: Option<&str>,
) -> Result<Vec<CatalogueProduct>, LocalError> {
    let mut products = conn
        .prepare_cached("SELECT reference, name FROM products ORDER BY rowid")?
        .query_map([], |row| {
            Ok(CatalogueProduct {
                reference: row.get(0)?,
                name: row.get(1)?,
                plans: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    products.retain(|p| only.is_none_or(|only| p.reference == only));
    let mut plans = conn.prepare_cached(
        "SELECT reference, name, units, period_secs, price_cents FROM plans
         WHERE product_ref = ?1 ORDER BY price_cents, reference",
    )?;
    for product in &mut products {
        product.plans = plans
            .query_map([&product.reference], ledger::plan_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(products)
}

impl LocalBackend {
    /// Every product the ledger sells, with its plans.
    pub async fn catalogue(&self) -> Result<Vec<CatalogueProduct>, LocalError> {
        self.run(|conn| catalogue_in(conn, None)).await
    }

    /// One product with its plans; [`LocalError::NotFound`] when the ledger does not
    /// sell it.
    pub async fn catalogue_product(&self, product: &str) -> Result<CatalogueProduct, LocalError> {
        let product = product.to_owned();
        self.run(move |conn| {
            catalogue_in(conn, Some(&product))?
                .pop()
                .ok_or_else(|| LocalError::NotFound(format!("product {product}")))
        })
        .await
    }

    /// The merchant as SolvaPay's `Merchant`.
    pub fn merchant_json(&self) -> Value {
        json!({
            "displayName": self.inner.merchant,
            "legalName": self.inner.merchant,
            "defaultCurrency": "USD",
        })
    }

    /// Reactivates `customer`'s cancelled purchase `purchase` while its period lasts
    /// and no other purchase of the product is active; [`LocalError::NotFound`]
    /// otherwise.
    pub async fn reactivate_purchase_of(
        &self,
        customer: &str,
        purchase: &str,
    ) -> Result<PurchaseRecord, LocalError> {
        let (customer, purchase) = (customer.to_owned(), purchase.to_owned());
        self.run(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE purchases SET status = 'active', cancelled_at = NULL
                     WHERE reference = ?1 AND customer_ref = ?2 AND status = 'cancelled'
                       AND started_at + 1000 * (SELECT period_secs FROM plans
                                                WHERE plans.reference = purchases.plan_ref) > ?3
                       AND NOT EXISTS (SELECT 1 FROM purchases AS other
                                       WHERE other.customer_ref = ?2
                                         AND other.product_ref = purchases.product_ref
                                         AND other.status = 'active')",
                )?
                .execute(params![purchase, customer, ledger::now_ms()])?;
            if changed == 0 {
                return Err(LocalError::NotFound(format!(
                    "cancelled purchase {purchase}"
                )));
            }
            directory::find_by(conn, directory::Column::Reference, &customer)?
                .and_then(|record| {
                    record
                        .purchases
                        .into_iter()
                        .find(|p| p.reference == purchase)
                })
                .ok_or_else(|| LocalError::NotFound(format!("purchase {purchase}")))
        })
        .await
    }

    /// Activates `plan` of `product` for `customer` as SolvaPay's
    /// `ActivatePlanResponseDto`: the free plan needs nothing (`already_active` while
    /// no paid purchase is active), a paid plan is `already_active` when bought and
    /// `payment_required` (with a checkout link) otherwise, an unknown plan `invalid`.
    pub async fn activate_plan(
        &self,
        customer: &str,
        product: &str,
        plan: &str,
    ) -> Result<Value, LocalError> {
        let offer = self.catalogue_product(product).await?;
        let Some(chosen) = offer.plans.iter().find(|p| p.reference == plan) else {
            return Ok(json!({ "status": "invalid", "message": "No such plan." }));
        };
        let active = self
            .purchases_of(customer)
            .await?
            .into_iter()
            .find(|p| p.product_ref == product && p.status == "active");
        let answer = match (chosen.price_cents, active) {
            (0, None) => json!({ "status": "already_active" }),
            (0, Some(paid)) => json!({
                "status": "invalid",
                "message": "Cancel the paid purchase to return to the free plan.",
                "purchaseRef": paid.reference,
            }),
            (_, Some(paid)) if paid.plan_ref == plan => {
                json!({ "status": "already_active", "purchaseRef": paid.reference })
            }
            _ => {
                let link = self
                    .checkout_link(customer, product, Some(plan), None)
                    .await?;
                json!({ "status": "payment_required", "checkoutUrl": link })
            }
        };
        Ok(answer)
    }

    pub(crate) async fn answer_call(
        &self,
        customer: &CustomerRef,
        call: &AccountCall,
    ) -> Result<Value, BackendError> {
        let answer = match call {
            AccountCall::Merchant => self.merchant_json(),
            AccountCall::Product { product } => self.catalogue_product(product).await?.to_json(),
            AccountCall::Plans { product } => self.catalogue_product(product).await?.plans_json(),
            AccountCall::ActivatePlan { product, plan } => {
                self.activate_plan(customer.as_str(), product, plan).await?
            }
            AccountCall::Reactivate { purchase } => {
                let record = self
                    .reactivate_purchase_of(customer.as_str(), purchase)
                    .await?;
                json!({ "reference": record.reference, "status": record.status })
            }
            other => return Err(BackendError::Unsupported(other.what())),
        };
        Ok(answer)
    }
}
