//! A SolvaPay-compatible server written from the published OpenAPI file, not from our
//! client: it answers in the documented shapes (with `name: null` for customers created
//! without one, as SolvaPay does), and a test can bend any answer: a field removed,
//! `null`, of the wrong type, unknown fields added, an endpoint refusing or failing.
//! It counts the calls of each operation, so tests can assert backend economy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::net::{loopback, Served};

/// SolvaPay's published OpenAPI file, kept in the repository
/// (`tests/contracts/solvapay-openapi.json`, with `SOLVAPAY.md` beside it).
pub fn openapi() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contracts/solvapay-openapi.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/contracts/solvapay-openapi.json");
    serde_json::from_str(&text).expect("OpenAPI JSON")
}

/// An answer type of the API, named as in the OpenAPI file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// `CustomerResponse` (find, create, update).
    Customer,
    /// `LimitResponse`.
    Limits,
    /// `CreateCheckoutSessionResponse`.
    Checkout,
    /// The bulk usage answer (left open by the schema).
    Usage,
    /// `SdkPurchaseResponse` (a customer's purchases, a cancelled purchase).
    Purchase,
    /// `CreateCustomerSessionResponse`.
    CustomerSession,
    /// The balance answer (given by example in the file).
    Balance,
}

/// How one answer is bent.
#[derive(Clone, Debug, PartialEq)]
pub enum Bend {
    /// The field is left out.
    Absent(String),
    /// The field is `null`.
    Null(String),
    /// The field has this value (of the wrong type).
    Value(String, Value),
    /// Unknown fields are added.
    Extras,
}

/// One customer of the server.
#[derive(Clone, Debug)]
pub struct ContractCustomer {
    pub reference: String,
    pub external_ref: Option<String>,
    pub email: String,
    pub name: Option<String>,
}

#[derive(Default)]
struct Books {
    customers: Mutex<Vec<ContractCustomer>>,
    allowance: AtomicU64,
    recorded: Mutex<HashMap<String, (String, u64)>>,
    bends: Mutex<Vec<(Answer, Bend)>>,
    activation: AtomicBool,
    /// Usage calls fail 2 of every 5 (500, then 429), before writing.
    flaky_usage: AtomicBool,
    /// The next usage call answers 429 with this `Retry-After` (seconds).
    retry_after_once: AtomicU64,
    /// A usage batch naming this customer is refused whole (404).
    deleted_customer: Mutex<Option<String>>,
    /// Creating a customer whose externalRef is longer than this is refused (400).
    max_external_ref: AtomicUsize,
    calls: Mutex<HashMap<&'static str, usize>>,
    usage_calls: AtomicUsize,
    /// Purchases cancelled (each customer has one, `pur_<customer>`).
    cancelled: Mutex<Vec<String>>,
}

type Shared = Arc<Books>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The server, on a loopback port for the length of a test.
pub struct ContractServer {
    pub base: String,
    state: Shared,
    _served: Served,
}

impl ContractServer {
    /// Every customer gets `allowance` units.
    pub async fn start(allowance: u64) -> Self {
        let state = Shared::default();
        state.allowance.store(allowance, Ordering::SeqCst);
        state.max_external_ref.store(usize::MAX, Ordering::SeqCst);
        let router = Router::new()
            .route("/v1/sdk/customers", get(find).post(create))
            .route(
                "/v1/sdk/customers/{reference}",
                axum::routing::patch(update),
            )
            .route("/v1/sdk/limits", post(limits))
            .route("/v1/sdk/usages/bulk", post(usage))
            .route("/v1/sdk/checkout-sessions", post(checkout))
            .route(
                "/v1/sdk/purchases/customer/{customer}",
                get(account::purchases),
            )
            .route("/v1/sdk/purchases/{purchase}/cancel", post(account::cancel))
            .route(
                "/v1/sdk/customers/customer-sessions",
                post(account::customer_session),
            )
            .route(
                "/v1/sdk/customers/{reference}/balance",
                get(account::balance),
            )
            .with_state(Arc::clone(&state));
        let listener = loopback().await;
        let served = Served::start(listener, router);
        Self {
            base: served.base.clone(),
            state,
            _served: served,
        }
    }

    /// Bends every later answer of type `answer`.
    pub fn bend(&self, answer: Answer, bend: Bend) {
        lock(&self.state.bends).push((answer, bend));
    }

    /// Limits answers say an activation is required.
    pub fn require_activation(&self) {
        self.state.activation.store(true, Ordering::SeqCst);
    }

    /// 2 of every 5 usage calls fail before writing (a 500, then a 429).
    pub fn flaky_usage(&self) {
        self.state.flaky_usage.store(true, Ordering::SeqCst);
    }

    /// The next usage call answers 429 with `Retry-After: secs`.
    pub fn retry_after_once(&self, secs: u64) {
        self.state.retry_after_once.store(secs, Ordering::SeqCst);
    }

    /// Usage batches naming `customer` are refused whole, as for a deleted customer.
    pub fn delete_customer(&self, customer: &str) {
        *lock(&self.state.deleted_customer) = Some(customer.to_owned());
    }

    /// Customers whose externalRef is longer than `len` are refused (400).
    pub fn refuse_external_refs_longer_than(&self, len: usize) {
        self.state.max_external_ref.store(len, Ordering::SeqCst);
    }

    /// Adds a customer, as if created before the application used the paywall.
    pub fn add_customer(&self, external_ref: Option<&str>, email: &str) -> String {
        let mut customers = lock(&self.state.customers);
        let reference = format!("cus_contract{}", customers.len() + 1);
        customers.push(ContractCustomer {
            reference: reference.clone(),
            external_ref: external_ref.map(str::to_owned),
            email: email.to_owned(),
            name: None,
        });
        reference
    }

    /// The customers, as stored.
    pub fn customers(&self) -> Vec<ContractCustomer> {
        lock(&self.state.customers).clone()
    }

    /// Units recorded for `customer` (once per idempotency key).
    pub fn recorded_units(&self, customer: &str) -> u64 {
        lock(&self.state.recorded)
            .values()
            .filter(|(c, _)| c == customer)
            .map(|(_, units)| units)
            .sum()
    }

    /// Calls of an operation so far: `find`, `create`, `update`, `limits`, `usage`,
    /// `checkout`.
    pub fn calls(&self, operation: &str) -> usize {
        lock(&self.state.calls).get(operation).copied().unwrap_or(0)
    }
}

impl Books {
    fn count(&self, operation: &'static str) {
        *lock(&self.calls).entry(operation).or_insert(0) += 1;
    }

    /// `value` with every bend of `answer` applied.
    fn bent(&self, answer: Answer, mut value: Value) -> Value {
        if let Value::Object(map) = &mut value {
            for (kind, bend) in lock(&self.bends).iter() {
                if *kind != answer {
                    continue;
                }
                match bend {
                    Bend::Absent(field) => {
                        map.remove(field);
                    }
                    Bend::Null(field) => {
                        map.insert(field.clone(), Value::Null);
                    }
                    Bend::Value(field, v) => {
                        map.insert(field.clone(), v.clone());
                    }
                    Bend::Extras => {
                        map.insert("unknownField".into(), json!({"nested": [1, 2]}));
                        map.insert("x-vendor".into(), json!("extra"));
                    }
                }
            }
        }
        value
    }

    fn customer_json(&self, customer: &ContractCustomer) -> Value {
        let value = json!({
            "reference": customer.reference,
            "name": customer.name,
            "email": customer.email,
            "externalRef": customer.external_ref,
            "purchases": [],
        });
        self.bent(Answer::Customer, value)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "statusCode": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    });
    (status, Json(body)).into_response()
}

async fn find(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    state.count("find");
    let customers = lock(&state.customers).clone();
    let found = customers.iter().find(|c| {
        query
            .get("externalRef")
            .is_some_and(|r| c.external_ref.as_deref() == Some(r.as_str()))
            || query.get("email").is_some_and(|e| &c.email == e)
    });
    match found {
        Some(customer) => Json(state.customer_json(customer)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Customer not found"),
    }
}

async fn create(State(state): State<Shared>, Json(body): Json<Map<String, Value>>) -> Response {
    state.count("create");
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(email) = text("email") else {
        return error(StatusCode::BAD_REQUEST, "email is required");
    };
    let external_ref = text("externalRef");
    let max = state.max_external_ref.load(Ordering::SeqCst);
    if external_ref.as_ref().is_some_and(|r| r.len() > max) || email.len() > 254 {
        return error(StatusCode::BAD_REQUEST, "email must be an email");
    }
    let mut customers = lock(&state.customers);
    if customers.iter().any(|c| c.email == email) {
        return error(
            StatusCode::CONFLICT,
            "Customer with this email already exists",
        );
    }
    let customer = ContractCustomer {
        reference: format!("cus_contract{}", customers.len() + 1),
        external_ref,
        email,
        name: text("name"),
    };
    customers.push(customer.clone());
    drop(customers);
    (StatusCode::CREATED, Json(state.customer_json(&customer))).into_response()
}

async fn update(
    State(state): State<Shared>,
    axum::extract::Path(reference): axum::extract::Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    state.count("update");
    let mut customers = lock(&state.customers);
    let Some(customer) = customers.iter_mut().find(|c| c.reference == reference) else {
        return error(StatusCode::NOT_FOUND, "Customer not found");
    };
    if let Some(external_ref) = body.get("externalRef").and_then(Value::as_str) {
        customer.external_ref = Some(external_ref.to_owned());
    }
    let customer = customer.clone();
    drop(customers);
    Json(state.customer_json(&customer)).into_response()
}

async fn limits(State(state): State<Shared>, Json(body): Json<Map<String, Value>>) -> Response {
    state.count("limits");
    let customer = body
        .get("customerRef")
        .and_then(Value::as_str)
        .unwrap_or("");
    if state.activation.load(Ordering::SeqCst) {
        let value = json!({
            "withinLimits": false,
            "remaining": 0,
            "activationRequired": true,
            "confirmationUrl": "https://pay.contract.test/confirm",
        });
        return Json(state.bent(Answer::Limits, value)).into_response();
    }
    let used: u64 = lock(&state.recorded)
        .values()
        .filter(|(c, _)| c == customer)
        .map(|(_, units)| units)
        .sum();
    let remaining = state.allowance.load(Ordering::SeqCst).saturating_sub(used);
    // As SolvaPay: no checkout link while units are left.
    let value = json!({
        "withinLimits": remaining > 0,
        "remaining": remaining,
        "meterName": body.get("meterName").cloned().unwrap_or(Value::Null),
        "product": {"reference": body.get("productRef").cloned().unwrap_or(Value::Null), "name": "Contract"},
        "plans": [],
    });
    Json(state.bent(Answer::Limits, value)).into_response()
}

async fn usage(State(state): State<Shared>, Json(body): Json<Map<String, Value>>) -> Response {
    state.count("usage");
    let call = state.usage_calls.fetch_add(1, Ordering::SeqCst);
    let once = state.retry_after_once.swap(0, Ordering::SeqCst);
    if once > 0 {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", once.into());
        return (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response();
    }
    if state.flaky_usage.load(Ordering::SeqCst) {
        match call % 5 {
            0 => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            2 => return error(StatusCode::TOO_MANY_REQUESTS, "rate limited"),
            _ => {}
        }
    }
    let events = body
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let deleted = lock(&state.deleted_customer).clone();
    if events.iter().any(|e| {
        e.get("customerRef").and_then(Value::as_str) == deleted.as_deref() && deleted.is_some()
    }) {
        return error(StatusCode::NOT_FOUND, "Customer not found");
    }
    let mut recorded = lock(&state.recorded);
    let mut results = Vec::new();
    for event in &events {
        let key = event
            .get("idempotencyKey")
            .and_then(Value::as_str)
            .unwrap_or("");
        let customer = event
            .get("customerRef")
            .and_then(Value::as_str)
            .unwrap_or("");
        let units = event.get("units").and_then(Value::as_u64).unwrap_or(1);
        let new = !recorded.contains_key(key);
        if new {
            recorded.insert(key.to_owned(), (customer.to_owned(), units));
        }
        results.push(json!({"reference": format!("usage_{key}"), "duplicate": !new}));
    }
    drop(recorded);
    let value = json!({"success": true, "inserted": results.len(), "results": results});
    Json(state.bent(Answer::Usage, value)).into_response()
}

async fn checkout(State(state): State<Shared>, Json(body): Json<Map<String, Value>>) -> Response {
    state.count("checkout");
    let customer = body
        .get("customerRef")
        .and_then(Value::as_str)
        .unwrap_or("");
    let id = format!("cs_{}", customer);
    let value = json!({
        "sessionId": id,
        "checkoutUrl": format!("https://pay.contract.test/checkout/{id}"),
    });
    (
        StatusCode::CREATED,
        Json(state.bent(Answer::Checkout, value)),
    )
        .into_response()
}

mod account;
pub mod schema;
