//! `mcp-quickstart`: an MCP server (rmcp, streamable HTTP at `/mcp`) whose tools are
//! priced one by one through `paywall-mcp`, with the quickstart's identity and billing
//! (the same environment variables).
//!
//! | tool | price |
//! |---|---|
//! | `echo {text}` | free |
//! | `summarize {text}` | 2 units of `PAYWALL_PRODUCT` (an empty text fails: `isError: true`, units given back) |
//! | `generate {max_tokens, tokens}` | per token produced (meter `tokens`): reserves `max_tokens`, settles to what it produced |
//!
//! `GET /health`, `GET /metrics` and the local checkout (embedded backend) are served
//! beside it, as in the HTTP quickstarts.

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::{Json, Router};
use paywall::{Charge, IdentityResolver, Usage};
use paywall_local::checkout;
use paywall_mcp::ToolPaywall;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use tower::ServiceBuilder;

use paywall_examples::billing::{billing, Billing};
use paywall_examples::config::{QuickstartConfig, QuickstartError};
use paywall_examples::responses::health_body;
use quickstart_axum::Quickstart;

/// The largest `max_tokens` a `generate` call may ask for.
pub const MAX_TOKENS: u64 = 4096;

/// Arguments of `echo` and `summarize`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TextArgs {
    /// The text.
    pub text: String,
}

/// Arguments of `generate`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GenerateArgs {
    /// The most tokens this call may produce (and the units reserved for it).
    pub max_tokens: u64,
    /// How many tokens to produce (at most `max_tokens`).
    pub tokens: u64,
}

/// The MCP server: three tools and their prices.
#[derive(Clone, Debug)]
pub struct Tools {
    prices: ToolPaywall,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    /// Builds the server with its prices.
    pub fn new(prices: ToolPaywall) -> Self {
        Self {
            prices,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Echo the text back. Free.")]
    fn echo(&self, Parameters(TextArgs { text }): Parameters<TextArgs>) -> String {
        text
    }

    #[tool(
        description = "Summarize the text in at most twelve words. Costs 2 units (none when it fails)."
    )]
    fn summarize(&self, Parameters(TextArgs { text }): Parameters<TextArgs>) -> CallToolResult {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            // A failed tool call: its units are given back.
            return CallToolResult::error(vec![ContentBlock::text("nothing to summarize")]);
        }
        let mut summary = words.iter().take(12).copied().collect::<Vec<_>>().join(" ");
        if words.len() > 12 {
            summary.push('…');
        }
        CallToolResult::success(vec![ContentBlock::text(summary)])
    }

    #[tool(
        description = "Generate `tokens` tokens, at most `max_tokens`. Charged per token produced: `max_tokens` units are reserved, the rest given back."
    )]
    async fn generate(
        &self,
        Parameters(args): Parameters<GenerateArgs>,
        rmcp::handler::server::common::Extension(usage): rmcp::handler::server::common::Extension<
            Usage,
        >,
    ) -> Result<CallToolResult, ErrorData> {
        if args.max_tokens == 0 || args.max_tokens > MAX_TOKENS {
            return Err(ErrorData::invalid_params(
                format!("max_tokens must be between 1 and {MAX_TOKENS}"),
                None,
            ));
        }
        if let Err(refused) = usage.reserve(args.max_tokens).await {
            return paywall_mcp::refusal(&refused);
        }
        let produced = args.tokens.min(args.max_tokens);
        let text = (1..=produced)
            .map(|i| format!("token-{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        usage.set(produced);
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.prices
            .call_tool(request, context, |request, context| {
                self.tool_router
                    .call(ToolCallContext::new(self, request, context))
            })
            .await
    }
}

/// Builds the MCP quickstart: the router (`/mcp`, `/health`, `/metrics`, the local
/// checkout) and the engine. Must be called inside a Tokio runtime.
pub fn build(config: &QuickstartConfig, base_url: &str) -> Result<Quickstart, QuickstartError> {
    quickstart_axum::with_jwt(config, |resolver| build_with(config, base_url, resolver))
}

/// The MCP quickstart with another identity resolver.
pub fn build_with(
    config: &QuickstartConfig,
    base_url: &str,
    resolver: impl IdentityResolver,
) -> Result<Quickstart, QuickstartError> {
    let Billing { paywall, local } = billing(config, base_url, resolver)?;
    let prices = ToolPaywall::builder(&paywall)
        .free("echo")
        .tool("summarize", Charge::new(&config.product).units(2))
        .tool(
            "generate",
            Charge::new(&config.product)
                .meter("tokens")
                .by_consumption(),
        )
        .build()?;
    let tools = Tools::new(prices.clone());
    let mcp = StreamableHttpService::new(
        move || Ok(tools.clone()),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let mut router = Router::new()
        .route_service(
            "/mcp",
            ServiceBuilder::new().layer(prices.layer()).service(mcp),
        )
        .route("/health", get(|| async { Json(health_body()) }))
        .route(
            "/metrics",
            get(|| async {
                let page = paywall_examples::startup::metrics_text();
                (
                    [(
                        CONTENT_TYPE,
                        paywall_examples::startup::METRICS_CONTENT_TYPE,
                    )],
                    page,
                )
            }),
        );
    if let Some(local) = &local {
        router = router.merge(checkout::router(local.clone(), Some(paywall.clone())));
    }
    Ok(Quickstart::new(router, paywall, local))
}
