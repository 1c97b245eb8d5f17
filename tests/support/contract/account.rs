//! The account endpoints behind the billing routes, in the documented shapes: every
//! customer has one active purchase, `pur_<customer>`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{error, lock, Answer, Shared};

fn purchase(state: &Shared, customer: &str) -> Value {
    let reference = format!("pur_{customer}");
    let cancelled = lock(&state.cancelled).contains(&reference);
    state.bent(
        Answer::Purchase,
        json!({
            "reference": reference,
            "customerRef": customer,
            "customerEmail": format!("{customer}@contract.test"),
            "productRef": "prd_contract",
            "productName": "Contract product",
            "status": if cancelled { "cancelled" } else { "active" },
            "amount": 1000,
            "currency": "USD",
            "startDate": "2026-11-01T00:00:00Z",
            "cancelledAt": if cancelled { json!("2026-11-22T00:00:00Z") } else { Value::Null },
            "isRecurring": true,
            "createdAt": "2026-11-01T00:00:00Z",
            "planSnapshot": { "reference": "pln_contract" },
        }),
    )
}

fn known(state: &Shared, customer: &str) -> bool {
    lock(&state.customers)
        .iter()
        .any(|c| c.reference == customer)
}

pub(super) async fn purchases(
    State(state): State<Shared>,
    Path(customer): Path<String>,
) -> Response {
    state.count("purchases");
    if !known(&state, &customer) {
        return error(StatusCode::NOT_FOUND, "Customer not found");
    }
    Json(json!({ "purchases": [purchase(&state, &customer)] })).into_response()
}

pub(super) async fn cancel(State(state): State<Shared>, Path(reference): Path<String>) -> Response {
    state.count("cancel");
    let Some(customer) = reference.strip_prefix("pur_").filter(|c| known(&state, c)) else {
        return error(StatusCode::NOT_FOUND, "Purchase not found");
    };
    lock(&state.cancelled).push(reference.clone());
    Json(json!({ "success": true, "purchase": purchase(&state, customer) })).into_response()
}

pub(super) async fn customer_session(
    State(state): State<Shared>,
    Json(body): Json<Value>,
) -> Response {
    state.count("customer_session");
    let customer = body["customerRef"].as_str().unwrap_or_default().to_owned();
    if !known(&state, &customer) {
        return error(StatusCode::NOT_FOUND, "Customer not found");
    }
    let value = json!({
        "sessionId": format!("sess_{customer}"),
        "customerUrl": format!("https://pay.contract.test/customer/{customer}"),
    });
    (
        StatusCode::CREATED,
        Json(state.bent(Answer::CustomerSession, value)),
    )
        .into_response()
}

pub(super) async fn balance(State(state): State<Shared>, Path(customer): Path<String>) -> Response {
    state.count("balance");
    if !known(&state, &customer) {
        return error(StatusCode::NOT_FOUND, "Customer not found");
    }
    let value = json!({
        "credits": 4200,
        "creditsPerMinorUnit": 100,
        "customerRef": customer,
        "displayCurrency": "USD",
    });
    Json(state.bent(Answer::Balance, value)).into_response()
}
