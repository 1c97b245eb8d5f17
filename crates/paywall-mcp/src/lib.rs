//! Per-tool prices for MCP servers built on [`rmcp`], behind the paywall's identity.
//!
//! Every MCP call goes through one HTTP route (`POST /mcp`), so a route price cannot
//! tell `tools/list` from an expensive tool. This crate prices each **tool call** where
//! it is dispatched, for the caller the paywall identified from the HTTP request (never
//! from the tool's arguments):
//!
//! * [`ToolPaywall::layer`] goes in front of rmcp's `StreamableHttpService`: it
//!   resolves the caller once per HTTP request with the paywall's `IdentityResolver`
//!   and customer cache, and answers 401 (with `WWW-Authenticate`), 403 or 503 in
//!   HTTP;
//! * [`ToolPaywall::call_tool`] wraps the server's tool dispatch: free tools run as
//!   they are; priced ones are admitted first, refused with a tool result MCP clients
//!   understand ([`payment_required`]: `structuredContent.kind` is
//!   `payment_required` or `activation_required`, with a `checkoutUrl`), and settled by
//!   the tool's result (`isError: true` gives the units back). `initialize`,
//!   `tools/list` and every other method are never charged.
//!
//! Each MCP session (`Mcp-Session-Id`) is bound to the identity that opened it: another
//! caller's request naming it, a `DELETE` included, gets a 404; an identity may hold
//! [`SessionLimits::per_identity`] sessions (one more: 429) and the server
//! [`SessionLimits::total`] (503), and unused sessions are forgotten after
//! [`SessionLimits::idle`].
//!
//! The layer only authenticates: the billing backend is first asked at a caller's
//! first priced call, so with billing down a caller with a valid token still connects,
//! lists tools and calls free tools, and a priced tool answers a JSON-RPC error whose
//! `data` is `{"kind": "billing_unavailable", "retryAfter": seconds}` (it never runs
//! free unless the fail policy says so).
//!
//! # Agents that authorize and pay on their own
//!
//! * **Protected resource metadata** (RFC 9728):
//!   [`ToolPaywallBuilder::protected_resource`] describes the server (its canonical MCP
//!   URL, the audience its tokens must carry, and its authorization server). Every 401
//!   then says `WWW-Authenticate: Bearer resource_metadata="…"`, and
//!   [`ProtectedResource::service`] serves the document at
//!   [`ProtectedResource::metadata_paths`], so an MCP client that follows the MCP
//!   authorization spec finds its authorization server, and asks it for a token for
//!   this resource (RFC 8707), by itself.
//! * **Recovery tools**: [`ToolPaywallBuilder::recovery_tools`] adds the free tools
//!   `upgrade {product?, plan?}` (`structuredContent: {checkoutUrl, product, plan?}`,
//!   the link in the text too) and `manage_account {product?}` (`{customerUrl,
//!   product, plan, remaining}`), for the caller of the token only (customer references
//!   in their arguments change nothing); the gate's text names `upgrade`. Add
//!   [`ToolPaywall::recovery_router`] to the server's tool router.
//!
//! ```
//! use paywall::test_util::{HeaderResolver, MemoryBackend};
//! use paywall::{Charge, Paywall};
//! use paywall_mcp::{ProtectedResource, ToolPaywall};
//! use rmcp::handler::server::router::tool::ToolRouter;
//! use rmcp::handler::server::tool::ToolCallContext;
//! use rmcp::handler::server::wrapper::Parameters;
//! use rmcp::model::{CallToolRequestParams, CallToolResponse};
//! use rmcp::service::RequestContext;
//! use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Text {
//!     text: String,
//! }
//!
//! #[derive(Clone)]
//! struct Tools {
//!     prices: ToolPaywall,
//!     tool_router: ToolRouter<Self>, // the tools below, and the recovery tools
//! }
//!
//! #[tool_router]
//! impl Tools {
//!     #[tool(description = "Echo the text (free)")]
//!     fn echo(&self, Parameters(Text { text }): Parameters<Text>) -> String {
//!         text
//!     }
//!
//!     #[tool(description = "Summarize the text (2 units)")]
//!     fn summarize(&self, Parameters(Text { text }): Parameters<Text>) -> String {
//!         text.split_whitespace().take(5).collect::<Vec<_>>().join(" ")
//!     }
//! }
//!
//! #[tool_handler(router = self.tool_router)]
//! impl ServerHandler for Tools {
//!     async fn call_tool(
//!         &self,
//!         request: CallToolRequestParams,
//!         context: RequestContext<RoleServer>,
//!     ) -> Result<CallToolResponse, ErrorData> {
//!         self.prices
//!             .call_tool(request, context, |request, context| {
//!                 self.tool_router.call(ToolCallContext::new(self, request, context))
//!             })
//!             .await
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # let _guard = runtime.enter();
//! let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(5)).build()?;
//! let resource = ProtectedResource::new("https://mcp.example.com/mcp", ["https://idp.example.com"])?;
//! let prices = ToolPaywall::builder(&paywall)
//!     .free("echo")
//!     .tool("summarize", Charge::new("prd_summaries").units(2))
//!     .recovery_tools()
//!     .protected_resource(resource.clone())
//!     .build()?;
//! let tools = Tools {
//!     tool_router: Tools::tool_router() + prices.recovery_router(),
//!     prices: prices.clone(),
//! };
//! assert_eq!(tools.tool_router.list_all().len(), 4); // echo, summarize, upgrade, manage_account
//! // Serve with rmcp's StreamableHttpService behind `prices.layer()`, and the metadata
//! // beside it, e.g. in axum:
//! // let mut app = Router::new()
//! //     .route_service("/mcp", ServiceBuilder::new().layer(prices.layer()).service(mcp));
//! // for path in resource.metadata_paths() {
//! //     app = app.route_service(&path, resource.service());
//! // }
//! # let _ = tools;
//! # Ok(())
//! # }
//! ```
//!
//! Modules: `layer` (the HTTP side), `gate` (prices applied at dispatch), `answer`
//! (the gate result and errors), `resource` (the protected resource metadata),
//! `recovery` (the recovery tools).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod answer;
mod gate;
mod layer;
mod recovery;
mod resource;
mod sessions;

pub use answer::{payment_required, refusal};
pub use gate::{ToolPaywall, ToolPaywallBuilder};
pub use layer::{Identify, IdentifyLayer};
pub use recovery::{MANAGE_ACCOUNT, UPGRADE};
pub use resource::{MetadataService, ProtectedResource, ResourceError, WELL_KNOWN};
pub use sessions::SessionLimits;
