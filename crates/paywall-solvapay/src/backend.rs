//! SolvaPay as the paywall's billing backend: [`SolvaPayBackend`].

use std::time::{SystemTime, UNIX_EPOCH};

use paywall::backend::{BackendError, BillingBackend, Limits, UsageEvent};
use paywall::{CustomerRef, Identity};
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use crate::client::{CustomerLookup, SolvaPayClient};
use crate::config::{ConfigError, SolvaPayConfig};
use crate::error::SolvaPayError;
use crate::wire;

/// The SolvaPay billing backend.
///
/// * `ensure_customer`: find by `externalRef`; else create with the identity's
///   externalRef, name and **verified** email (an identity without one gets
///   `<externalRef>-<millis>@auto-created.local`, as SolvaPay's SDK does); on 409 find
///   by `externalRef` again (a concurrent create won), then, for a verified email only,
///   adopt the customer owning it **when that customer has no externalRef** (PATCH). A
///   customer linked to another externalRef is never re-linked: the caller gets 403
///   `customer_conflict`. SolvaPay refusing the customer (another 4xx) is a 403
///   `customer_rejected`. A transient failure is simply retried later.
/// * `checkout_url` (for 402s whose limits answer had no link):
///   `POST /v1/sdk/checkout-sessions`.
/// * `check_limits`: `POST /v1/sdk/limits` with `includeCheckoutSession: true`.
/// * `record_usage`: `POST /v1/sdk/usages/bulk`, each event with its idempotency key
///   and the meter in `metadata.meterName`.
///
/// ```
/// use paywall_solvapay::{SolvaPayBackend, SolvaPayConfig};
///
/// let backend = SolvaPayBackend::new(SolvaPayConfig::new("sk_test_...").base_url("http://127.0.0.1:4000"))?;
/// # let _ = backend;
/// # Ok::<(), paywall_solvapay::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SolvaPayBackend {
    client: SolvaPayClient,
}

impl SolvaPayBackend {
    /// A backend for `config`.
    pub fn new(config: SolvaPayConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            client: SolvaPayClient::new(config)?,
        })
    }

    /// A backend configured from `SOLVAPAY_SECRET_KEY` and `SOLVAPAY_API_BASE_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(SolvaPayConfig::from_env()?)
    }

    /// The underlying client, for calls the paywall does not make itself (checkout
    /// sessions, customer updates).
    pub fn client(&self) -> &SolvaPayClient {
        &self.client
    }

    async fn ensure(&self, identity: &Identity) -> Result<String, BackendError> {
        let external_ref = identity.external_ref.as_str();
        let by_ref = CustomerLookup::ExternalRef(external_ref);
        if let Some(found) = self.client.find_customer(by_ref).await? {
            return Ok(found.reference);
        }
        // Only an email the IdP verified reaches SolvaPay: it may link customers by
        // email on create, and an unverified email is whatever the caller typed.
        let verified = identity.verified_email();
        let create = wire::CreateCustomer {
            email: verified
                .map(str::to_owned)
                .unwrap_or_else(|| placeholder_email(external_ref)),
            metadata: Map::new(),
            name: identity.name.clone(),
            external_ref: Some(external_ref.to_owned()),
        };
        match self.client.create_customer(&create).await {
            Ok(created) => {
                info!(customer = %created.reference, "SolvaPay customer created");
                Ok(created.reference)
            }
            Err(SolvaPayError::Conflict { body }) => {
                debug!(%body, "customer creation conflicted");
                // A concurrent create for the same externalRef won.
                if let Some(found) = self.client.find_customer(by_ref).await? {
                    return Ok(found.reference);
                }
                self.adopt(external_ref, verified).await
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The email is taken: adopt its customer only when the email is verified and the
    /// customer has no externalRef yet (one created before the paywall, the case
    /// SolvaPay's docs describe). A customer linked to someone else is never re-linked.
    async fn adopt(
        &self,
        external_ref: &str,
        verified: Option<&str>,
    ) -> Result<String, BackendError> {
        let conflict = |why: &str| BackendError::CustomerConflict(why.to_owned());
        let Some(email) = verified else {
            return Err(conflict("the customer's placeholder email is taken"));
        };
        let Some(owner) = self
            .client
            .find_customer(CustomerLookup::Email(email))
            .await?
        else {
            return Err(conflict("the email is taken, but no customer has it"));
        };
        match owner
            .external_ref
            .as_deref()
            .filter(|linked| !linked.is_empty())
        {
            Some(linked) if linked == external_ref => Ok(owner.reference),
            Some(_) => {
                warn!(customer = %owner.reference,
                      "a caller's verified email belongs to a customer linked to another externalRef; not re-linked");
                Err(conflict(
                    "the email belongs to a customer linked to another externalRef",
                ))
            }
            None => {
                let patch = wire::UpdateCustomer {
                    external_ref: Some(external_ref.to_owned()),
                    ..wire::UpdateCustomer::default()
                };
                let linked = self
                    .client
                    .update_customer(&owner.reference, &patch)
                    .await?;
                info!(customer = %linked.reference, "linked externalRef to the existing customer with the verified email");
                Ok(linked.reference)
            }
        }
    }
}

/// The most events SolvaPay accepts in one bulk call (`maxItems` in its schema).
pub const MAX_BULK_EVENTS: usize = 1000;

/// SolvaPay's SDK invents this address for identities without an email.
fn placeholder_email(external_ref: &str) -> String {
    let local: String = external_ref
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{local}-{millis}@auto-created.local")
}

fn plan_name(plan: Option<&Value>) -> Option<String> {
    match plan? {
        Value::String(plan) => Some(plan.clone()),
        Value::Object(plan) => plan
            .get("reference")
            .or_else(|| plan.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

impl BillingBackend for SolvaPayBackend {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        Ok(CustomerRef::new(self.ensure(identity).await?))
    }

    async fn checkout_url(
        &self,
        customer: &CustomerRef,
        product: &str,
    ) -> Result<Option<String>, BackendError> {
        let session = self
            .client
            .create_checkout_session(&wire::CreateCheckoutSession {
                customer_ref: customer.to_string(),
                product_ref: Some(product.to_owned()),
                ..wire::CreateCheckoutSession::default()
            })
            .await?;
        Ok(Some(session.checkout_url).filter(|url| !url.is_empty()))
    }

    async fn checkout_session(
        &self,
        customer: &CustomerRef,
        request: &paywall::backend::CheckoutRequest,
    ) -> Result<String, BackendError> {
        self.open_checkout(customer, request).await
    }

    async fn portal_url(&self, customer: &CustomerRef) -> Result<String, BackendError> {
        self.open_portal(customer).await
    }

    async fn purchases(
        &self,
        customer: &CustomerRef,
    ) -> Result<Vec<paywall::backend::Purchase>, BackendError> {
        self.list_purchases(customer).await
    }

    async fn cancel_purchase(
        &self,
        customer: &CustomerRef,
        purchase: &str,
    ) -> Result<paywall::backend::Purchase, BackendError> {
        self.cancel(customer, purchase).await
    }

    async fn credits(
        &self,
        customer: &CustomerRef,
    ) -> Result<Option<paywall::backend::Credits>, BackendError> {
        self.balance(customer).await
    }

    async fn account_call(
        &self,
        customer: &CustomerRef,
        call: &paywall::backend::AccountCall,
    ) -> Result<serde_json::Value, BackendError> {
        self.forward(customer, call).await
    }

    async fn check_limits(
        &self,
        customer: &CustomerRef,
        product: &str,
        meter: &str,
    ) -> Result<Limits, BackendError> {
        let answer = self
            .client
            .check_limits(&wire::CheckLimits {
                customer_ref: customer.to_string(),
                product_ref: product.to_owned(),
                meter_name: Some(meter.to_owned()),
                include_checkout_session: Some(true),
            })
            .await?;
        let remaining = if answer.remaining.is_finite() && answer.remaining > 0.0 {
            answer.remaining.floor().min(u64::MAX as f64) as u64
        } else {
            0
        };
        Ok(Limits {
            within_limits: answer.within_limits,
            remaining,
            checkout_url: answer.checkout_url.filter(|url| !url.is_empty()),
            activation_required: answer.activation_required.unwrap_or(false),
            confirmation_url: answer.confirmation_url,
            plan: plan_name(answer.plan.as_ref()),
            resets_at: None,
            allowance: None,
            period: None,
        })
    }

    async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        // SolvaPay takes at most 1,000 events per bulk call. Every event carries its key,
        // so when a later chunk fails the recorder may safely send them all again.
        for chunk in events.chunks(MAX_BULK_EVENTS) {
            let chunk: Vec<wire::Usage> = chunk.iter().map(to_wire).collect();
            self.client.record_usage_bulk(&chunk).await?;
        }
        Ok(())
    }
}

/// A usage event as SolvaPay records it.
pub fn to_wire(event: &UsageEvent) -> wire::Usage {
    let mut metadata = Map::new();
    metadata.insert("meterName".into(), Value::String(event.meter.to_string()));
    wire::Usage {
        customer_ref: event.customer.to_string(),
        action_type: "api_call".into(),
        units: event.units,
        outcome: event.outcome.as_str().into(),
        product_ref: Some(event.product.to_string()),
        purchase_ref: None,
        duration: event
            .duration
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        metadata,
        timestamp: humantime::format_rfc3339_millis(event.timestamp).to_string(),
        idempotency_key: Some(event.idempotency_key.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_emails_are_valid_addresses() {
        let email = placeholder_email("auth0|abc def");
        assert!(email.starts_with("auth0-abc-def-"), "{email}");
        assert!(email.ends_with("@auto-created.local"));
    }

    #[test]
    fn plan_names_from_either_shape() {
        assert_eq!(
            plan_name(Some(&Value::from("pln_1"))).as_deref(),
            Some("pln_1")
        );
        assert_eq!(
            plan_name(Some(&serde_json::json!({"reference": "pln_2"}))).as_deref(),
            Some("pln_2")
        );
        assert_eq!(plan_name(Some(&Value::from(3))), None);
    }
}
