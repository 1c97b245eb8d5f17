//! The recovery tools: free tools an agent calls when it meets the payment gate, so
//! that it can hand its user a link instead of giving up. `upgrade` opens a checkout
//! for the caller; `manage_account` gives the caller's portal link, plan and what is
//! left. They act for the caller of the HTTP request's token only (through the
//! paywall's [`BillingRoutes`], whose rules hold: customer references in the
//! arguments change nothing, nothing is charged).
//!
//! There is no `topup` tool: neither billing backend of this workspace sells credits
//! through the paywall.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use paywall::BillingRoutes;
use rmcp::handler::server::router::tool::{ToolRoute, ToolRouter};
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, JsonObject, Tool};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{json, Map, Value};

/// The name of the checkout tool.
pub const UPGRADE: &str = "upgrade";
/// The name of the account tool.
pub const MANAGE_ACCOUNT: &str = "manage_account";

/// Which recovery tool.
#[derive(Clone, Copy)]
enum Which {
    Upgrade,
    ManageAccount,
}

/// What the recovery tools act with: the billing routes of the priced products.
#[derive(Clone, Debug)]
pub(crate) struct Recovery {
    routes: BillingRoutes,
    /// The products the server sells, in the order the tools were priced.
    products: Arc<[String]>,
}

impl Recovery {
    pub(crate) fn new(routes: BillingRoutes, products: Vec<String>) -> Self {
        Self {
            routes,
            products: products.into(),
        }
    }

    /// The two tools as routes of any server's tool router.
    pub(crate) fn router<S: Send + Sync + 'static>(&self) -> ToolRouter<S> {
        let mut router = ToolRouter::new();
        for which in [Which::Upgrade, Which::ManageAccount] {
            let recovery = self.clone();
            let tool = match which {
                Which::Upgrade => upgrade_tool(&self.products),
                Which::ManageAccount => account_tool(&self.products),
            };
            router.add_route(ToolRoute::new_dyn(
                tool,
                move |context: ToolCallContext<'_, S>| {
                    let recovery = recovery.clone();
                    Box::pin(async move {
                        let arguments = context.arguments.unwrap_or_default();
                        let context = &context.request_context;
                        match which {
                            Which::Upgrade => recovery.upgrade(context, &arguments).await,
                            Which::ManageAccount => {
                                recovery.manage_account(context, &arguments).await
                            }
                        }
                        .map(CallToolResponse::from)
                    })
                },
            ));
        }
        router
    }

    /// `upgrade {product?, plan?}`: a checkout link for the caller.
    async fn upgrade(
        &self,
        context: &RequestContext<RoleServer>,
        arguments: &JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let product = match self.product(arguments) {
            Ok(product) => product,
            Err(result) => return Ok(result),
        };
        let plan = match optional_string(arguments, "plan") {
            Ok(plan) => plan,
            Err(result) => return Ok(result),
        };
        let mut body = json!({ "product": product });
        if let Some(plan) = &plan {
            body["plan"] = json!(plan);
        }
        let answer = self.call(context, Method::POST, "/checkout", &body).await?;
        let url = match &answer {
            Answer::Ok(value) => value["checkoutUrl"].as_str().map(str::to_owned),
            Answer::Failed { .. } => None,
        };
        let Some(url) = url else {
            return Ok(failure(&answer));
        };
        let mut structured = json!({ "checkoutUrl": url, "product": product });
        if let Some(plan) = plan {
            structured["plan"] = json!(plan);
        }
        let text = format!("To upgrade {product}, open this checkout link: {url}");
        Ok(result(text, structured))
    }

    /// `manage_account {product?}`: the caller's portal link, plan and what is left.
    async fn manage_account(
        &self,
        context: &RequestContext<RoleServer>,
        arguments: &JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let product = match self.product(arguments) {
            Ok(product) => product,
            Err(result) => return Ok(result),
        };
        let state = match self.call(context, Method::GET, "/", &Value::Null).await? {
            Answer::Ok(state) => state,
            failed => return Ok(failure(&failed)),
        };
        let entry = state["products"]
            .as_array()
            .and_then(|products| products.iter().find(|p| p["product"] == product))
            .cloned()
            .unwrap_or(Value::Null);
        // A backend without a portal still tells the plan and what is left.
        let portal = match self
            .call(context, Method::POST, "/portal", &json!({}))
            .await?
        {
            Answer::Ok(portal) => portal["url"].as_str().map(str::to_owned),
            Answer::Failed { status, .. } if status == StatusCode::NOT_IMPLEMENTED => None,
            failed => return Ok(failure(&failed)),
        };
        let structured = json!({
            "customerUrl": portal,
            "product": product,
            "plan": entry["plan"],
            "remaining": entry["remaining"],
        });
        let mut text = format!(
            "Plan for {product}: {}; {} units left.",
            entry["plan"].as_str().unwrap_or("none"),
            entry["remaining"]
        );
        if let Some(url) = &portal {
            text.push_str(&format!(" Manage the account here: {url}"));
        }
        Ok(result(text, structured))
    }

    /// The `product` argument, or the first product sold; a tool error naming an
    /// unknown one.
    fn product(&self, arguments: &JsonObject) -> Result<String, CallToolResult> {
        let product = match optional_string(arguments, "product")? {
            Some(product) => product,
            None => match self.products.first() {
                Some(product) => product.clone(),
                None => return Err(error_result("This server sells no product.")),
            },
        };
        if self.products.contains(&product) {
            Ok(product)
        } else {
            Err(error_result(&format!(
                "Unknown product {product:?}: this server sells {}.",
                self.products.join(", ")
            )))
        }
    }

    /// One billing route for the caller of the request's token.
    async fn call(
        &self,
        context: &RequestContext<RoleServer>,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Answer, ErrorData> {
        let Some(parts) = context.extensions.get::<http::request::Parts>() else {
            return Err(ErrorData::internal_error(
                "the MCP service is not behind ToolPaywall::layer: no HTTP request",
                None,
            ));
        };
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        Ok(Answer::of(
            self.routes.handle(&method, path, parts, &body).await,
        ))
    }
}

/// A billing route's answer.
enum Answer {
    Ok(Value),
    Failed {
        status: StatusCode,
        body: Value,
        /// The answer's `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
}

impl Answer {
    fn of(response: Response<Bytes>) -> Self {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        if status.is_success() {
            Answer::Ok(body)
        } else {
            Answer::Failed {
                status,
                body,
                retry_after,
            }
        }
    }
}

/// A failed billing route as a tool error the model can act on: the paywall's
/// message, and for an outage `{kind: "billing_unavailable", retryAfter}`.
fn failure(answer: &Answer) -> CallToolResult {
    let Answer::Failed {
        status,
        body,
        retry_after,
    } = answer
    else {
        return error_result("The billing provider gave no usable answer.");
    };
    let message = body["message"]
        .as_str()
        .unwrap_or("The billing provider refused the request.");
    let mut result = error_result(message);
    if *status == StatusCode::SERVICE_UNAVAILABLE {
        result.structured_content = Some(json!({
            "kind": body["kind"],
            "retryAfter": retry_after,
        }));
    }
    result
}

fn result(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

fn error_result(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_owned())])
}

/// A string argument, absent or `null` being `None`; another type is a tool error.
fn optional_string(arguments: &JsonObject, name: &str) -> Result<Option<String>, CallToolResult> {
    match arguments.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(error_result(&format!("`{name}` must be a string."))),
    }
}

fn schema(properties: Value) -> Arc<JsonObject> {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), properties);
    Arc::new(schema)
}

fn upgrade_tool(products: &[String]) -> Tool {
    Tool::new(
        UPGRADE,
        format!(
            "Get a checkout link to buy or upgrade a plan when a tool answered payment_required. \
             Free. Products: {}.",
            products.join(", ")
        ),
        schema(json!({
            "product": { "type": "string", "description": "The product to buy (default: the first one)." },
            "plan": { "type": "string", "description": "A plan of that product (default: the product's paid plan)." },
        })),
    )
}

fn account_tool(products: &[String]) -> Tool {
    Tool::new(
        MANAGE_ACCOUNT,
        format!(
            "The caller's plan, what is left, and a link to manage the account (cancel, \
             invoices). Free. Products: {}.",
            products.join(", ")
        ),
        schema(json!({
            "product": { "type": "string", "description": "The product (default: the first one)." },
        })),
    )
}
