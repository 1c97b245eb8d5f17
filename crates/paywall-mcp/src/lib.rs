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
//! ```
//! use paywall::test_util::{HeaderResolver, MemoryBackend};
//! use paywall::{Charge, Paywall};
//! use paywall_mcp::ToolPaywall;
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
//!     tool_router: ToolRouter<Self>,
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
//! let prices = ToolPaywall::builder(&paywall)
//!     .free("echo")
//!     .tool("summarize", Charge::new("prd_summaries").units(2))
//!     .build()?;
//! let tools = Tools { prices: prices.clone(), tool_router: Tools::tool_router() };
//! // Serve with rmcp's StreamableHttpService behind `prices.layer()`, e.g. in axum:
//! // Router::new().route_service("/mcp", ServiceBuilder::new().layer(prices.layer()).service(mcp))
//! # let _ = tools;
//! # Ok(())
//! # }
//! ```
//!
//! Modules: `layer` (the HTTP side), `gate` (prices applied at dispatch), `answer`
//! (the gate result and errors).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod answer;
mod gate;
mod layer;

pub use answer::{payment_required, refusal};
pub use gate::{ToolPaywall, ToolPaywallBuilder};
pub use layer::{Identify, IdentifyLayer};
