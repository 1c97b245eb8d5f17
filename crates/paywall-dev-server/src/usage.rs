//! `POST /v1/sdk/usages` and `/v1/sdk/usages/bulk`: idempotent on `idempotencyKey`.
//! Fractional `units` are exact: they add up in a running total (in millionths) per
//! customer, product, meter and outcome, and each event debits the whole units its
//! share completes (four events of 0.25 debit one unit). The running total lives in
//! memory: a restart drops the fractions not yet completed.

use std::time::{Duration, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paywall::backend::{Outcome, UsageEvent};
use paywall::CustomerRef;
use paywall_local::Lookup;
use paywall_solvapay::wire;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{api_error, bad_json, ApiError};
use crate::{Dev, Shared};

/// A usage event as clients send it, read as liberally as the schema allows: every
/// field but `customerRef` has a default (`timestamp`: now, as SolvaPay's own SDK
/// omits it), and `units` and `duration` may be any JSON number.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageIn {
    customer_ref: String,
    #[serde(default)]
    action_type: Option<String>,
    #[serde(default)]
    units: Option<f64>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    product_ref: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// `{"events": [...]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct BulkIn {
    events: Vec<UsageIn>,
}

/// Millionths of a unit.
const MICROS: u64 = 1_000_000;

/// What the running totals are kept by.
type FractionKey = (String, String, String, &'static str);

/// The running totals of fractional usage, in millionths of a unit.
#[derive(Default)]
pub(crate) struct Fractions(tokio::sync::Mutex<std::collections::HashMap<FractionKey, u64>>);

/// Validates a usage event and turns it into a ledger event, with its units in
/// millionths when they are not whole.
fn usage_event(usage: UsageIn) -> Result<(UsageEvent, Option<u64>), ApiError> {
    let bad = |message: &str| Err(ApiError::bad_request(message));
    if usage.customer_ref.is_empty() {
        return bad("customerRef must not be empty");
    }
    let units = usage.units.unwrap_or(1.0);
    if !(0.0..=100_000.0).contains(&units) {
        return bad("units must be between 0 and 100000");
    }
    let action = usage.action_type.as_deref().unwrap_or("api_call");
    if ![
        "transaction",
        "api_call",
        "hour",
        "email",
        "storage",
        "custom",
    ]
    .contains(&action)
    {
        return bad(
            "actionType must be one of transaction, api_call, hour, email, storage, custom",
        );
    }
    let outcome = match usage.outcome.as_deref().unwrap_or("success") {
        "success" => Outcome::Success,
        "paywall" => Outcome::Paywall,
        "fail" => Outcome::Fail,
        _ => return bad("outcome must be one of success, paywall, fail"),
    };
    let timestamp = match usage.timestamp.as_deref() {
        None | Some("") => SystemTime::now(),
        Some(text) => match humantime::parse_rfc3339_weak(text) {
            Ok(at) => at,
            Err(_) => return bad("timestamp must be an RFC 3339 date-time"),
        },
    };
    let duration = match usage.duration {
        None => None,
        Some(ms) if ms.is_finite() && ms >= 0.0 => Some(Duration::from_secs_f64(ms / 1000.0)),
        Some(_) => return bad("duration must be a number of milliseconds, at least 0"),
    };
    let key = match usage.idempotency_key {
        Some(key) if key.len() > 256 => {
            return bad("idempotencyKey must be at most 256 characters")
        }
        Some(key) if !key.is_empty() => key,
        _ => UsageEvent::new_key(timestamp),
    };
    let meter = usage
        .metadata
        .as_ref()
        .and_then(|metadata| metadata.get("meterName"))
        .and_then(Value::as_str)
        .unwrap_or("requests");
    let micros = (units.fract() != 0.0).then(|| (units * MICROS as f64).round() as u64);
    let event = UsageEvent {
        idempotency_key: key,
        customer: CustomerRef::new(usage.customer_ref.as_str()),
        product: usage.product_ref.as_deref().unwrap_or("").into(),
        meter: meter.into(),
        // Whole units as they are; fractions are settled in `record`.
        units: if micros.is_some() { 0 } else { units as u64 },
        outcome,
        timestamp,
        duration,
    };
    Ok((event, micros))
}

fn usage_reference(event: &UsageEvent) -> String {
    format!("usage_{}", event.idempotency_key)
}

async fn record(dev: &Dev, usages: Vec<UsageIn>) -> Result<(Vec<UsageEvent>, Vec<bool>), ApiError> {
    let (mut events, micros): (Vec<UsageEvent>, Vec<Option<u64>>) = usages
        .into_iter()
        .map(usage_event)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
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
    if micros.iter().all(Option::is_none) {
        let inserted = dev.ledger.record_each(&events).await?;
        return Ok((events, inserted));
    }
    // Fractions: one batch at a time, each event's share counted once (a key seen
    // before, in the ledger or earlier in this batch, adds nothing), and the totals
    // kept only when the ledger took the batch.
    let mut totals = dev.fractions.0.lock().await;
    let mut updated = totals.clone();
    let mut seen = std::collections::HashSet::new();
    for (event, micros) in events.iter_mut().zip(&micros) {
        let Some(micros) = micros else { continue };
        if !seen.insert(event.idempotency_key.clone())
            || dev.ledger.is_recorded(&event.idempotency_key).await?
        {
            continue;
        }
        let key = (
            event.customer.as_str().to_owned(),
            event.product.to_string(),
            event.meter.to_string(),
            event.outcome.as_str(),
        );
        let total = updated.entry(key).or_insert(0);
        let before = *total / MICROS;
        *total += micros;
        event.units = *total / MICROS - before;
    }
    let inserted = dev.ledger.record_each(&events).await?;
    *totals = updated;
    Ok((events, inserted))
}

pub(crate) async fn single(
    State(dev): State<Shared>,
    body: Result<Json<UsageIn>, JsonRejection>,
) -> Response {
    let Json(usage) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match record(&dev, vec![usage]).await {
        Ok((events, _)) => Json(json!({
            "success": true,
            "reference": events.first().map(usage_reference),
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

pub(crate) async fn bulk(
    State(dev): State<Shared>,
    body: Result<Json<BulkIn>, JsonRejection>,
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
                        "reference": usage_reference(event),
                        "idempotencyKey": event.idempotency_key,
                        "status": if *new { "inserted" } else { "duplicate" },
                    })
                })
                .collect();
            Json(wire::BulkUsageResponse {
                success: Some(true),
                inserted: Some(inserted.iter().filter(|new| **new).count() as u64),
                results: Some(results),
            })
            .into_response()
        }
        Err(err) => err.into_response(),
    }
}
