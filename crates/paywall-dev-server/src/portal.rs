//! Customer sessions (`/v1/sdk/customers/customer-sessions`), the page their
//! `customerUrl` opens (the customer's purchases), and credit balances.

use std::time::{Duration, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use paywall_local::Lookup;
use serde::Deserialize;
use serde_json::json;

use crate::checkout::escape;
use crate::customers::customer_json;
use crate::error::{api_error, bad_json, ledger_error};
use crate::Shared;

/// How long a customer session's link works.
const SESSION_TTL: Duration = Duration::from_secs(3600);

/// `CreateCustomerSessionRequest`: only `customerRef` is required.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateSession {
    customer_ref: String,
}

/// A customer session, kept in memory for the dev server's life.
#[derive(Clone, Debug)]
pub(crate) struct CustomerSession {
    customer_ref: String,
    created: SystemTime,
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn customer_url(dev: &crate::Dev, id: &str) -> String {
    format!("{}/portal/{id}", dev.config.public_url)
}

/// `POST /v1/sdk/customers/customer-sessions` → 201 `{sessionId, customerUrl}`.
pub(crate) async fn create(
    State(dev): State<Shared>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match dev
        .ledger
        .find_customer(Lookup::Reference(&request.customer_ref))
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => return api_error(StatusCode::NOT_FOUND, "Customer not found"),
        Err(err) => return ledger_error(err),
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let session = CustomerSession {
        customer_ref: request.customer_ref,
        created: SystemTime::now(),
    };
    dev.sessions().insert(id.clone(), session);
    let body = json!({ "sessionId": id, "customerUrl": customer_url(&dev, &id) });
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `GET /v1/sdk/customers/customer-sessions/{sessionId}`.
pub(crate) async fn get(State(dev): State<Shared>, Path(id): Path<String>) -> Response {
    let Some(session) = dev.sessions().get(&id).cloned() else {
        return api_error(
            StatusCode::NOT_FOUND,
            format!("Customer session not found: {id}"),
        );
    };
    let customer = match dev
        .ledger
        .find_customer(Lookup::Reference(&session.customer_ref))
        .await
    {
        Ok(Some(record)) => customer_json(record),
        Ok(None) => return api_error(StatusCode::NOT_FOUND, "Customer not found"),
        Err(err) => return ledger_error(err),
    };
    let expires = session.created + SESSION_TTL;
    let status = if SystemTime::now() < expires {
        "active"
    } else {
        "expired"
    };
    Json(json!({
        "sessionId": id,
        "status": status,
        "customerUrl": customer_url(&dev, &id),
        "expiresAt": rfc3339(expires),
        "customer": customer,
        "createdAt": rfc3339(session.created),
        "updatedAt": rfc3339(session.created),
    }))
    .into_response()
}

/// `GET /portal/{sessionId}`: the customer's purchases, while the session lasts.
pub(crate) async fn page(State(dev): State<Shared>, Path(id): Path<String>) -> Response {
    let session = dev.sessions().get(&id).cloned();
    let Some(session) = session.filter(|s| SystemTime::now() < s.created + SESSION_TTL) else {
        return api_error(
            StatusCode::NOT_FOUND,
            "Customer session not found or expired",
        );
    };
    let record = match dev
        .ledger
        .find_customer(Lookup::Reference(&session.customer_ref))
        .await
    {
        Ok(Some(record)) => record,
        Ok(None) => return api_error(StatusCode::NOT_FOUND, "Customer not found"),
        Err(err) => return ledger_error(err),
    };
    let purchases: String = record
        .purchases
        .iter()
        .map(|p| {
            format!(
                "<li><code>{}</code>: {} ({})</li>",
                escape(&p.reference),
                escape(&p.product_name),
                escape(&p.status)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your billing</title></head><body>\n\
         <h1>Your billing (paywall dev server)</h1>\n<p>Customer <code>{}</code>.</p>\n<ul>{}</ul>\n</body></html>\n",
        escape(&record.reference),
        if purchases.is_empty() { "<li>No purchases.</li>".to_owned() } else { purchases }
    ))
    .into_response()
}

/// `GET /v1/sdk/customers/{reference}/balance`: the dev server sells no credits.
pub(crate) async fn balance(State(dev): State<Shared>, Path(reference): Path<String>) -> Response {
    match dev
        .ledger
        .find_customer(Lookup::Reference(&reference))
        .await
    {
        Ok(Some(_)) => Json(json!({
            "customerRef": reference,
            "credits": 0,
            "creditsPerMinorUnit": 100,
            "displayCurrency": "USD",
            "displayExchangeRate": 1,
            "display": {
                "amountMajor": 0,
                "currency": "USD",
                "formatted": "$0.00",
                "exchangeRate": 1,
                "rateSource": "parity",
            },
        }))
        .into_response(),
        Ok(None) => api_error(
            StatusCode::NOT_FOUND,
            format!("Customer with reference {reference} not found"),
        ),
        Err(err) => ledger_error(err),
    }
}
