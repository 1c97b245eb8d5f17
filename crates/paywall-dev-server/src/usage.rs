//! `POST /v1/sdk/usages` and `/v1/sdk/usages/bulk`: idempotent on `idempotencyKey`.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paywall::{CustomerRef, Outcome, UsageEvent};
use paywall_local::directory::Lookup;
use paywall_solvapay::wire;
use serde_json::{json, Value};

use crate::error::{api_error, bad_json, ApiError};
use crate::{Dev, Shared};

/// Validates a wire usage event and turns it into a ledger event.
fn usage_event(usage: wire::Usage) -> Result<UsageEvent, ApiError> {
    let bad = |message: &str| Err(ApiError::bad_request(message));
    if usage.customer_ref.is_empty() {
        return bad("customerRef must not be empty");
    }
    if usage.units > 100_000 {
        return bad("units must be between 0 and 100000");
    }
    if ![
        "transaction",
        "api_call",
        "hour",
        "email",
        "storage",
        "custom",
    ]
    .contains(&usage.action_type.as_str())
    {
        return bad(
            "actionType must be one of transaction, api_call, hour, email, storage, custom",
        );
    }
    let outcome = match usage.outcome.as_str() {
        "success" => Outcome::Success,
        "paywall" => Outcome::Paywall,
        "fail" => Outcome::Fail,
        _ => return bad("outcome must be one of success, paywall, fail"),
    };
    let Ok(timestamp) = humantime::parse_rfc3339_weak(&usage.timestamp) else {
        return bad("timestamp must be an RFC 3339 date-time");
    };
    let key = match usage.idempotency_key {
        Some(key) if key.len() > 256 => {
            return bad("idempotencyKey must be at most 256 characters")
        }
        Some(key) if !key.is_empty() => key,
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let meter = usage
        .metadata
        .get("meterName")
        .and_then(Value::as_str)
        .unwrap_or("requests");
    Ok(UsageEvent {
        idempotency_key: key,
        customer: CustomerRef::new(usage.customer_ref.as_str()),
        product: usage.product_ref.as_deref().unwrap_or("").into(),
        meter: meter.into(),
        units: usage.units,
        outcome,
        timestamp,
        duration: usage.duration.map(Duration::from_millis),
    })
}

async fn record(
    dev: &Dev,
    usages: Vec<wire::Usage>,
) -> Result<(Vec<UsageEvent>, Vec<bool>), ApiError> {
    let events = usages
        .into_iter()
        .map(usage_event)
        .collect::<Result<Vec<_>, _>>()?;
    let mut customers: Vec<&str> = events.iter().map(|e| e.customer.as_str()).collect();
    customers.sort_unstable();
    customers.dedup();
    for customer in customers {
        if dev
            .ledger
            .find_customer(Lookup::Reference(customer))
            .await?
            .is_none()
        {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("Customer {customer} not found"),
            });
        }
    }
    let inserted = dev.ledger.record_each(&events).await?;
    Ok((events, inserted))
}

pub(crate) async fn single(
    State(dev): State<Shared>,
    body: Result<Json<wire::Usage>, JsonRejection>,
) -> Response {
    let Json(usage) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match record(&dev, vec![usage]).await {
        Ok((events, _)) => Json(json!({
            "success": true,
            "reference": events.first().map(|e| format!("usage_{}", e.idempotency_key)),
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

pub(crate) async fn bulk(
    State(dev): State<Shared>,
    body: Result<Json<wire::BulkUsage>, JsonRejection>,
) -> Response {
    let Json(bulk) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    if bulk.events.is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "events must not be empty");
    }
    match record(&dev, bulk.events).await {
        Ok((events, inserted)) => {
            let results: Vec<Value> = events
                .iter()
                .zip(&inserted)
                .map(|(event, new)| {
                    json!({
                        "idempotencyKey": event.idempotency_key,
                        "status": if *new { "inserted" } else { "duplicate" },
                    })
                })
                .collect();
            Json(wire::BulkUsageResponse {
                success: true,
                inserted: inserted.iter().filter(|new| **new).count() as u64,
                results,
            })
            .into_response()
        }
        Err(err) => err.into_response(),
    }
}
