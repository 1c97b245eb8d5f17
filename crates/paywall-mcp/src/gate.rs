//! The tool side: [`ToolPaywall`] knows each tool's price and applies it where the
//! tool call is dispatched, for the caller [`IdentifyLayer`](crate::IdentifyLayer)
//! resolved for the HTTP request.
//!
//! A priced call is admitted like a request to a priced route (same customer and
//! budget caches, same reservation), then dispatched; a result with `isError: true`
//! (or a JSON-RPC error) gives the units back like a failed HTTP response, anything
//! else commits them and records one usage event with its own idempotency key.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use http::StatusCode;
use paywall::{BillingRoutes, Charge, ConfigError, Identity, Paywall, Rejection, Route};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use crate::layer::IdentifyLayer;
use crate::recovery::{Recovery, MANAGE_ACCOUNT, UPGRADE};
use crate::resource::ProtectedResource;
use crate::sessions::{SessionLimits, Sessions};

#[derive(Debug)]
enum Price {
    Free,
    Charged(Route),
}

/// Per-tool prices for an MCP server: build it with [`ToolPaywall::builder`], mount
/// [`layer`](Self::layer) in front of the MCP transport, and call
/// [`call_tool`](Self::call_tool) from the server handler's `call_tool`.
#[derive(Clone, Debug)]
pub struct ToolPaywall {
    paywall: Paywall,
    tools: Arc<HashMap<String, Price>>,
    resource: Option<Arc<ProtectedResource>>,
    recovery: Option<Recovery>,
    sessions: Arc<Sessions>,
}

/// Configures a [`ToolPaywall`]: every tool the server offers is listed, free or with
/// its [`Charge`]. A call to a tool that is not listed is refused (an MCP
/// `invalid_params` error), so a tool added without a price is never given away.
#[derive(Debug)]
pub struct ToolPaywallBuilder {
    paywall: Paywall,
    tools: Vec<(String, Option<Charge>)>,
    resource: Option<ProtectedResource>,
    recovery: bool,
    sessions: SessionLimits,
}

impl ToolPaywallBuilder {
    /// `tool` is free: dispatched without a charge (the caller must still be identified).
    pub fn free(mut self, tool: impl Into<String>) -> Self {
        self.tools.push((tool.into(), None));
        self
    }

    /// `tool` costs `charge` per call: fixed units, or by consumption
    /// ([`Charge::by_consumption`]: the tool reserves and reports through the
    /// [`Usage`](paywall::Usage) extension of its request context).
    pub fn tool(mut self, tool: impl Into<String>, charge: Charge) -> Self {
        self.tools.push((tool.into(), Some(charge)));
        self
    }

    /// Describes the server as an OAuth protected resource (RFC 9728): every 401 of
    /// [`layer`](ToolPaywall::layer) names the metadata document, which the server
    /// serves with [`ProtectedResource::service`] at
    /// [`ProtectedResource::metadata_paths`].
    pub fn protected_resource(mut self, resource: ProtectedResource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// How many MCP sessions callers may hold ([`SessionLimits`]; on by default). A
    /// session is always bound to the identity that opened it.
    pub fn session_limits(mut self, limits: SessionLimits) -> Self {
        self.sessions = limits;
        self
    }

    /// Adds the free recovery tools `upgrade` (a checkout link for the caller) and
    /// `manage_account` (the caller's portal link, plan and what is left), for the
    /// products of the priced tools; the payment gate's text names `upgrade`. Add
    /// [`ToolPaywall::recovery_router`] to the server's tool router.
    pub fn recovery_tools(mut self) -> Self {
        self.recovery = true;
        self
    }

    /// Validates the charges and binds them to the paywall.
    pub fn build(mut self) -> Result<ToolPaywall, ConfigError> {
        let mut tools = HashMap::with_capacity(self.tools.len() + 2);
        let mut sold: Vec<Charge> = Vec::new();
        for (name, charge) in std::mem::take(&mut self.tools) {
            let price = match charge {
                None => Price::Free,
                Some(charge) => {
                    let route = self.paywall.route(charge.clone())?;
                    if !sold.iter().any(|c| c.product() == charge.product()) {
                        sold.push(charge);
                    }
                    Price::Charged(route)
                }
            };
            tools.insert(name, price);
        }
        let recovery = if self.recovery {
            let products = sold.iter().map(|c| c.product().to_owned()).collect();
            let routes = BillingRoutes::new(&self.paywall, sold)?;
            tools.insert(UPGRADE.to_owned(), Price::Free);
            tools.insert(MANAGE_ACCOUNT.to_owned(), Price::Free);
            Some(Recovery::new(routes, products))
        } else {
            None
        };
        Ok(ToolPaywall {
            paywall: self.paywall,
            tools: Arc::new(tools),
            resource: self.resource.map(Arc::new),
            recovery,
            sessions: Arc::new(Sessions::new(self.sessions)),
        })
    }
}

impl ToolPaywall {
    /// Starts listing the tools of a server billed through `paywall`.
    pub fn builder(paywall: &Paywall) -> ToolPaywallBuilder {
        ToolPaywallBuilder {
            paywall: paywall.clone(),
            tools: Vec::new(),
            resource: None,
            recovery: false,
            sessions: SessionLimits::default(),
        }
    }

    /// The HTTP layer to put in front of the MCP transport: it identifies every
    /// request (401, or 503 when the identity provider cannot be reached), naming the
    /// [protected resource metadata](ToolPaywallBuilder::protected_resource) in its
    /// 401s.
    pub fn layer(&self) -> IdentifyLayer {
        IdentifyLayer::new(
            self.paywall.clone(),
            self.resource.clone(),
            Arc::clone(&self.sessions),
        )
    }

    /// The protected resource this server describes, if any.
    pub fn protected_resource(&self) -> Option<&ProtectedResource> {
        self.resource.as_deref()
    }

    /// The recovery tools (`upgrade`, `manage_account`) as routes to add to the
    /// server's own router: `Self::tool_router() + prices.recovery_router()`. Empty
    /// unless the builder's [`recovery_tools`](ToolPaywallBuilder::recovery_tools)
    /// was called.
    pub fn recovery_router<S: Send + Sync + 'static>(&self) -> ToolRouter<S> {
        self.recovery
            .as_ref()
            .map_or_else(ToolRouter::new, Recovery::router)
    }

    /// Applies the tool's price around `dispatch` (the server's own tool dispatch,
    /// such as its `ToolRouter`):
    ///
    /// * a free tool is dispatched as is;
    /// * a priced tool is admitted for the caller first. Refused for payment, the call
    ///   answers the gate result ([`payment_required`](crate::payment_required)) without
    ///   running the tool; refused otherwise, a JSON-RPC error
    ///   ([`refusal`](crate::refusal)). Admitted, the tool runs with the caller's
    ///   [`Customer`](paywall::Customer) (and, priced by consumption, its
    ///   [`Usage`](paywall::Usage)) in the context's extensions, and its result settles
    ///   the units.
    ///
    /// Results that do not complete the call (input required, a task) are not charged.
    pub async fn call_tool<F, Fut>(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
        dispatch: F,
    ) -> Result<CallToolResponse, ErrorData>
    where
        F: FnOnce(CallToolRequestParams, RequestContext<RoleServer>) -> Fut,
        Fut: Future<Output = Result<CallToolResponse, ErrorData>>,
    {
        let route = match self.tools.get(request.name.as_ref()) {
            Some(Price::Free) => return dispatch(request, context).await,
            Some(Price::Charged(route)) => route,
            None => {
                return Err(ErrorData::invalid_params(
                    format!("tool {:?} is not offered", request.name),
                    None,
                ))
            }
        };
        let Some(identity) = caller(&context) else {
            return Err(ErrorData::internal_error(
                "the MCP service is not behind ToolPaywall::layer: no identified caller",
                None,
            ));
        };
        let admission = match self.paywall.admit_identity(&identity, route).await {
            Ok(admission) => admission,
            Err(rejection) => return self.refused(&rejection),
        };
        if let Some(customer) = admission.customer() {
            context.extensions.insert(customer.clone());
        }
        if let Some(usage) = admission.usage() {
            context.extensions.insert(usage.clone());
        }
        let result = dispatch(request, context).await;
        let completed = matches!(
            &result,
            Ok(CallToolResponse::Complete(answer)) if answer.is_error != Some(true)
        );
        let status = if completed {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        admission.finish(status).await;
        result
    }
}

impl ToolPaywall {
    /// The answer to a refused priced call: the gate (naming `upgrade` when the
    /// recovery tools are on), or the JSON-RPC error of [`refusal`](crate::refusal).
    fn refused(&self, rejection: &Rejection) -> Result<CallToolResponse, ErrorData> {
        let mut result = crate::refusal(rejection)?;
        if self.recovery.is_some() && matches!(rejection, Rejection::PaymentRequired(_)) {
            result.content.push(ContentBlock::text(format!(
                "Call the `{UPGRADE}` tool for a checkout link to continue."
            )));
        }
        Ok(CallToolResponse::from(result))
    }
}

/// The caller [`IdentifyLayer`] put in the HTTP request, which rmcp hands to the tool
/// context as `http::request::Parts`.
fn caller(context: &RequestContext<RoleServer>) -> Option<Identity> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Identity>())
        .cloned()
}
