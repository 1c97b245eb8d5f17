//! `/v1/sdk/purchases`: a customer's purchases and cancelling one, in SolvaPay's
//! `SdkPurchaseResponse` shape.

use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paywall_local::LocalError;
use paywall_local::{Lookup, PurchaseRecord};
use serde_json::{json, Value};

use crate::error::{api_error, ledger_error};
use crate::Shared;

fn rfc3339(ms: i64) -> Value {
    u64::try_from(ms).map_or(Value::Null, |ms| {
        Value::from(
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string(),
        )
    })
}

pub(crate) fn purchase_json(customer: &str, email: Option<&str>, p: &PurchaseRecord) -> Value {
    json!({
        "reference": p.reference,
        "customerRef": customer,
        "customerEmail": email.unwrap_or_default(),
        "productRef": p.product_ref,
        "productName": p.product_name,
        "status": p.status,
        "amount": p.price_cents,
        "currency": "USD",
        "startDate": rfc3339(p.started_at),
        "cancelledAt": p.cancelled_at.map_or(Value::Null, rfc3339),
        "isRecurring": true,
        "createdAt": rfc3339(p.started_at),
        "planSnapshot": { "reference": p.plan_ref },
    })
}

/// `GET /v1/sdk/purchases/customer/{customerRef}` → `{purchases: [...]}`, 404.
pub(crate) async fn of_customer(
    State(dev): State<Shared>,
    Path(customer): Path<String>,
) -> Response {
    match dev.ledger.find_customer(Lookup::Reference(&customer)).await {
        Ok(Some(record)) => {
            let purchases: Vec<Value> = record
                .purchases
                .iter()
                .map(|p| purchase_json(&record.reference, record.email.as_deref(), p))
                .collect();
            Json(json!({ "purchases": purchases })).into_response()
        }
        Ok(None) => api_error(
            StatusCode::NOT_FOUND,
            format!("Customer with reference {customer} not found"),
        ),
        Err(err) => ledger_error(err),
    }
}

/// `POST /v1/sdk/purchases/{purchaseRef}/cancel` → `{success, purchase}`, 404 when no
/// active purchase has that reference.
pub(crate) async fn cancel(State(dev): State<Shared>, Path(purchase): Path<String>) -> Response {
    let owner = match dev.ledger.purchase_owner(&purchase).await {
        Ok(Some(owner)) => owner,
        Ok(None) => {
            return api_error(
                StatusCode::NOT_FOUND,
                format!("Purchase {purchase} not found"),
            )
        }
        Err(err) => return ledger_error(err),
    };
    match dev.ledger.cancel_purchase_of(&owner, &purchase).await {
        Ok(record) => {
            let purchase = announce(&dev, &owner, &record, "purchase.cancelled").await;
            Json(json!({ "success": true, "purchase": purchase })).into_response()
        }
        Err(LocalError::NotFound(_)) => api_error(
            StatusCode::NOT_FOUND,
            format!("Purchase {purchase} is not active"),
        ),
        Err(err) => ledger_error(err),
    }
}

/// `record` of `owner` in SolvaPay's shape, sent as a `kind` webhook too.
pub(crate) async fn announce(
    dev: &crate::Dev,
    owner: &str,
    record: &PurchaseRecord,
    kind: &str,
) -> Value {
    let email = dev
        .ledger
        .find_customer(Lookup::Reference(owner))
        .await
        .ok()
        .flatten()
        .and_then(|c| c.email);
    let purchase = purchase_json(owner, email.as_deref(), record);
    crate::webhooks::deliver(dev, kind, purchase.clone());
    purchase
}
