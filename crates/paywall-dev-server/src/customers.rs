//! `/v1/sdk/customers`: find, get, create and update customers.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paywall_local::{CustomerPatch, CustomerRecord, Lookup};
use paywall_solvapay::wire;

use crate::error::{api_error, bad_json, ledger_error};
use crate::Shared;

pub(crate) fn customer_json(record: CustomerRecord) -> wire::Customer {
    wire::Customer {
        name: Some(record.name.unwrap_or_default()),
        email: Some(record.email.unwrap_or_default()),
        external_ref: record.external_ref,
        purchases: Some(
            record
                .purchases
                .into_iter()
                .map(|p| wire::PurchaseInfo {
                    reference: p.reference,
                    product_ref: Some(p.product_ref),
                    product_name: Some(p.product_name),
                    status: p.status,
                    start_date: u64::try_from(p.started_at).ok().map(|ms| {
                        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms))
                            .to_string()
                    }),
                    amount: Some(p.price_cents),
                    currency: Some("USD".into()),
                })
                .collect(),
        ),
        reference: record.reference,
    }
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && !domain.contains('@')
}

pub(crate) async fn find(
    State(dev): State<Shared>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return api_error(StatusCode::BAD_REQUEST, "Malformed query string");
    };
    let given: Vec<_> = ["reference", "externalRef", "email"]
        .into_iter()
        .filter_map(|name| {
            query
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| (name, v.as_str()))
        })
        .collect();
    let lookup = match given.as_slice() {
        [("reference", v)] => Lookup::Reference(v),
        [("externalRef", v)] => Lookup::ExternalRef(v),
        [("email", v)] => Lookup::Email(v),
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "Must provide exactly one of reference, externalRef, or email",
            )
        }
    };
    match dev.ledger.find_customer(lookup).await {
        Ok(Some(record)) => Json(customer_json(record)).into_response(),
        Ok(None) => api_error(StatusCode::NOT_FOUND, "Customer not found"),
        Err(err) => ledger_error(err),
    }
}

pub(crate) async fn get(State(dev): State<Shared>, Path(reference): Path<String>) -> Response {
    match dev
        .ledger
        .find_customer(Lookup::Reference(&reference))
        .await
    {
        Ok(Some(record)) => Json(customer_json(record)).into_response(),
        Ok(None) => api_error(
            StatusCode::NOT_FOUND,
            format!("Customer with reference {reference} not found"),
        ),
        Err(err) => ledger_error(err),
    }
}

pub(crate) async fn create(
    State(dev): State<Shared>,
    body: Result<Json<wire::CreateCustomer>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    if !valid_email(&request.email) {
        return api_error(StatusCode::BAD_REQUEST, "Invalid email format");
    }
    let external_ref = request.external_ref.as_deref().filter(|r| !r.is_empty());
    match dev
        .ledger
        .create_customer(&request.email, request.name.as_deref(), external_ref)
        .await
    {
        Ok(record) => {
            let customer = customer_json(record);
            announce(&dev, "customer.created", &customer);
            (StatusCode::CREATED, Json(customer)).into_response()
        }
        Err(err) => ledger_error(err),
    }
}

/// Sends the customer event, its object as SolvaPay's `CustomerWebhookObject`.
fn announce(dev: &crate::Dev, kind: &str, customer: &wire::Customer) {
    if let Ok(mut object) = serde_json::to_value(customer) {
        object["id"] = serde_json::json!(customer.reference);
        object["product"] = serde_json::Value::Null;
        crate::webhooks::deliver(dev, kind, object);
    }
}

pub(crate) async fn update(
    State(dev): State<Shared>,
    Path(reference): Path<String>,
    body: Result<Json<wire::UpdateCustomer>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    if request
        .email
        .as_deref()
        .is_some_and(|email| !valid_email(email))
    {
        return api_error(StatusCode::BAD_REQUEST, "Invalid email format");
    }
    let patch = CustomerPatch {
        email: request.email,
        name: request.name,
        external_ref: request.external_ref.filter(|r| !r.is_empty()),
    };
    match dev.ledger.update_customer(&reference, patch).await {
        Ok(record) => {
            let customer = customer_json(record);
            announce(&dev, "customer.updated", &customer);
            Json(customer).into_response()
        }
        Err(err) => ledger_error(err),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_email;

    #[test]
    fn email_validation() {
        for ok in ["a@b.co", "user-1-1700000000000@auto-created.local"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a b@c.d", "a@b@c.d", "a@.b", "a@b.",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
