//! What SolvaPay's SDKs read besides customers and usage: the catalogue
//! (`/v1/sdk/merchant`, `/v1/sdk/products…`, plans), plan activation
//! (`/v1/sdk/activate`) and reactivating a cancelled purchase, from the embedded
//! ledger. Card payments (payment intents, saved payment methods, auto-recharge) need
//! a card processor: those routes answer 501 with a JSON error naming what is not
//! simulated.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paywall_local::LocalError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{api_error, bad_json, ledger_error};
use crate::purchases::announce;
use crate::Shared;

/// `GET /v1/sdk/merchant`.
pub(crate) async fn merchant(State(dev): State<Shared>) -> Response {
    Json(dev.ledger.merchant_json()).into_response()
}

/// `GET /v1/sdk/products` → `{products: [...]}`.
pub(crate) async fn products(State(dev): State<Shared>) -> Response {
    match dev.ledger.catalogue().await {
        Ok(products) => {
            let products: Vec<Value> = products.iter().map(|p| p.to_json()).collect();
            Json(json!({ "products": products })).into_response()
        }
        Err(err) => ledger_error(err),
    }
}

/// `GET /v1/sdk/products/{productRef}`.
pub(crate) async fn product(State(dev): State<Shared>, Path(product): Path<String>) -> Response {
    match dev.ledger.catalogue_product(&product).await {
        Ok(product) => Json(product.to_json()).into_response(),
        Err(err) => ledger_error(err),
    }
}

/// `GET /v1/sdk/products/{productRef}/plans` → `{plans: [...]}`.
pub(crate) async fn plans(State(dev): State<Shared>, Path(product): Path<String>) -> Response {
    match dev.ledger.catalogue_product(&product).await {
        Ok(product) => Json(json!({ "plans": product.plans_json() })).into_response(),
        Err(err) => ledger_error(err),
    }
}

/// `ActivatePlanDto`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Activate {
    customer_ref: String,
    product_ref: String,
    plan_ref: String,
}

/// `POST /v1/sdk/activate` → `ActivatePlanResponseDto`.
pub(crate) async fn activate(
    State(dev): State<Shared>,
    body: Result<Json<Activate>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match dev
        .ledger
        .activate_plan(&body.customer_ref, &body.product_ref, &body.plan_ref)
        .await
    {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => ledger_error(err),
    }
}

/// `POST /v1/sdk/purchases/{purchaseRef}/reactivate` → the purchase, and a
/// `purchase.reactivated` webhook; 404 unless it is cancelled within its period.
pub(crate) async fn reactivate(
    State(dev): State<Shared>,
    Path(purchase): Path<String>,
) -> Response {
    let owner = match dev.ledger.purchase_owner(&purchase).await {
        Ok(Some(owner)) => owner,
        Ok(None) => return ledger_error(LocalError::NotFound(format!("Purchase {purchase}"))),
        Err(err) => return ledger_error(err),
    };
    match dev.ledger.reactivate_purchase_of(&owner, &purchase).await {
        Ok(record) => {
            Json(announce(&dev, &owner, &record, "purchase.reactivated").await).into_response()
        }
        Err(err) => ledger_error(err),
    }
}

/// Payment intents, saved payment methods and auto-recharge: 501, naming what is not
/// simulated.
pub(crate) async fn not_simulated() -> Response {
    api_error(
        StatusCode::NOT_IMPLEMENTED,
        "Card payments are not simulated by the dev server (payment intents, saved payment \
         methods, auto-recharge): use its hosted checkout (checkout sessions) instead",
    )
}

/// Catalogue management, credits, user info and platform config: 501, naming what is
/// not simulated.
pub(crate) async fn not_managed() -> Response {
    api_error(
        StatusCode::NOT_IMPLEMENTED,
        "Managing products and plans, assigning credits, user info and platform config are \
         not simulated by the dev server: its catalogue is the ledger's products",
    )
}
