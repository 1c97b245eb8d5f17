//! The account calls behind the billing routes (`paywall::BillingRoutes`): checkout
//! sessions with the caller's idempotency key, customer sessions (the portal),
//! purchases and cancelling one, and credit balances. Answers are read liberally, as
//! everywhere in this crate: only the fields shown are needed.

use std::time::SystemTime;

use paywall::backend::{BackendError, CheckoutRequest, Credits, Purchase};
use paywall::CustomerRef;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::SolvaPayClient;
use crate::wire::{self, lenient};
use crate::SolvaPayBackend;

/// `SdkPurchaseResponse`, the fields shown.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePurchase {
    #[serde(default, deserialize_with = "lenient::string")]
    reference: String,
    #[serde(default, deserialize_with = "lenient::string")]
    customer_ref: String,
    #[serde(default, deserialize_with = "lenient::string")]
    product_ref: String,
    #[serde(default, deserialize_with = "lenient::string")]
    status: String,
    #[serde(default, deserialize_with = "lenient::option")]
    start_date: Option<String>,
    #[serde(default, deserialize_with = "lenient::option")]
    cancelled_at: Option<String>,
    #[serde(default, deserialize_with = "lenient::option")]
    plan_snapshot: Option<serde_json::Value>,
    /// Minor units (SolvaPay's normalised amount).
    #[serde(default, deserialize_with = "lenient::option")]
    amount: Option<u64>,
    #[serde(default, deserialize_with = "lenient::option")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "lenient::option")]
    product_name: Option<String>,
}

#[derive(Default, Deserialize)]
struct Purchases {
    #[serde(default, deserialize_with = "lenient::list")]
    purchases: Option<Vec<WirePurchase>>,
}

#[derive(Default, Deserialize)]
struct Cancelled {
    #[serde(default, deserialize_with = "lenient::option")]
    purchase: Option<WirePurchase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerSession {
    customer_url: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Balance {
    #[serde(default, deserialize_with = "lenient::option")]
    credits: Option<i64>,
    #[serde(default, deserialize_with = "lenient::option")]
    credits_per_minor_unit: Option<u64>,
    #[serde(default, deserialize_with = "lenient::option")]
    display_currency: Option<String>,
}

fn time(text: Option<&str>) -> Option<SystemTime> {
    text.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
}

fn purchase(wire: WirePurchase) -> Purchase {
    let plan = wire
        .plan_snapshot
        .as_ref()
        .and_then(|plan| plan.get("reference").or_else(|| plan.get("name")))
        .and_then(|name| name.as_str())
        .map(str::to_owned);
    let mut purchase = Purchase::new(wire.reference, wire.product_ref, wire.status).with_times(
        time(wire.start_date.as_deref()),
        time(wire.cancelled_at.as_deref()),
    );
    if let Some(plan) = plan {
        purchase = purchase.with_plan(plan);
    }
    if let Some(amount) = wire.amount {
        purchase = purchase.with_amount(amount, wire.currency.unwrap_or_else(|| "USD".into()));
    }
    if let Some(name) = wire.product_name {
        purchase = purchase.with_product_name(name);
    }
    purchase
}

impl SolvaPayClient {
    async fn purchases_of(&self, customer: &str) -> Result<Vec<WirePurchase>, BackendError> {
        let answer: Purchases = self
            .call::<()>(
                Method::GET,
                self.url(&["v1", "sdk", "purchases", "customer", customer]),
                None,
                None,
            )
            .await?
            .json()?;
        Ok(answer.purchases.unwrap_or_default())
    }
}

impl SolvaPayBackend {
    pub(crate) async fn open_checkout(
        &self,
        customer: &CustomerRef,
        request: &CheckoutRequest,
    ) -> Result<String, BackendError> {
        let body = wire::CreateCheckoutSession {
            customer_ref: customer.to_string(),
            product_ref: Some(request.product.clone()),
            plan_ref: request.plan.clone(),
            return_url: request.return_url.clone(),
        };
        let client = self.client();
        let session: wire::CheckoutSession = client
            .call(
                Method::POST,
                client.url(&["v1", "sdk", "checkout-sessions"]),
                Some(&body),
                Some(&request.idempotency_key),
            )
            .await?
            .json()?;
        Some(session.checkout_url)
            .filter(|url| !url.is_empty())
            .ok_or_else(|| BackendError::unavailable("the checkout session has no checkoutUrl"))
    }

    pub(crate) async fn open_portal(&self, customer: &CustomerRef) -> Result<String, BackendError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Create<'a> {
            customer_ref: &'a str,
        }
        let client = self.client();
        let session: CustomerSession = client
            .call(
                Method::POST,
                client.url(&["v1", "sdk", "customers", "customer-sessions"]),
                Some(&Create {
                    customer_ref: customer.as_str(),
                }),
                None,
            )
            .await?
            .json()?;
        Ok(session.customer_url)
    }

    pub(crate) async fn list_purchases(
        &self,
        customer: &CustomerRef,
    ) -> Result<Vec<Purchase>, BackendError> {
        let purchases = self.client().purchases_of(customer.as_str()).await?;
        Ok(purchases
            .into_iter()
            .filter(|p| p.customer_ref.is_empty() || p.customer_ref == customer.as_str())
            .map(purchase)
            .collect())
    }

    pub(crate) async fn cancel(
        &self,
        customer: &CustomerRef,
        reference: &str,
    ) -> Result<Purchase, BackendError> {
        let client = self.client();
        // The customer's own purchases only, whatever SolvaPay would allow.
        let own = client.purchases_of(customer.as_str()).await?;
        let Some(current) = own.into_iter().find(|p| p.reference == reference) else {
            return Err(BackendError::NotFound(format!("purchase {reference}")));
        };
        #[derive(Serialize)]
        struct Cancel {
            reason: &'static str,
        }
        let answer: Cancelled = client
            .call(
                Method::POST,
                client.url(&["v1", "sdk", "purchases", reference, "cancel"]),
                Some(&Cancel {
                    reason: "cancelled by the customer",
                }),
                None,
            )
            .await?
            .json()
            .unwrap_or_default();
        Ok(purchase(answer.purchase.unwrap_or(WirePurchase {
            status: "cancelled".into(),
            ..current
        })))
    }

    pub(crate) async fn balance(
        &self,
        customer: &CustomerRef,
    ) -> Result<Option<Credits>, BackendError> {
        let client = self.client();
        let balance: Balance = client
            .call::<()>(
                Method::GET,
                client.url(&["v1", "sdk", "customers", customer.as_str(), "balance"]),
                None,
                None,
            )
            .await?
            .json()?;
        Ok(balance.credits.map(|credits| {
            let mut out = Credits::new(credits);
            out.currency = balance.display_currency;
            out.per_minor_unit = balance.credits_per_minor_unit;
            out
        }))
    }
}
