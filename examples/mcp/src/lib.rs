//! `mcp-quickstart`: an MCP server (rmcp, streamable HTTP at `/mcp`) whose tools are
//! priced one by one through `paywall-mcp`, with the quickstart's identity and billing
//! (the same environment variables).
//!
//! | tool | price |
//! |---|---|
//! | `echo {text}` | free |
//! | `summarize {text}` | 2 units of `PAYWALL_PRODUCT` (an empty text fails: `isError: true`, units given back) |
//! | `generate {max_tokens, tokens}` | per token produced (meter `tokens`): reserves `max_tokens`, settles to what it produced |
//! | `upgrade {product?, plan?}`, `manage_account {product?}` | free: a checkout link; the caller's portal link, plan and what is left |
//!
//! `GET /health`, `GET /metrics`, the local checkout (embedded backend) and
//! `POST /webhooks/solvapay` (with `SOLVAPAY_WEBHOOK_SECRET`) are served beside it, as in
//! the HTTP quickstarts. With tokens from an issuer (`PAYWALL_OIDC_ISSUER` or
//! `PAYWALL_JWT_ISSUER`), the server describes itself as an OAuth protected resource
//! (RFC 9728) at `/.well-known/oauth-protected-resource[/mcp]`, and every 401 names that
//! document, so MCP clients find their authorization server on their own.

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::{Json, Router};
use paywall::{Charge, IdentityResolver, Usage};
use paywall_local::checkout;
use paywall_mcp::{ProtectedResource, ToolPaywall};
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
            tool_router: Self::tool_router() + prices.recovery_router(),
            prices,
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
    let resource = protected_resource(config, base_url)?;
    let mut prices = ToolPaywall::builder(&paywall)
        .free("echo")
        .tool("summarize", Charge::new(&config.product).units(2))
        .tool(
            "generate",
            Charge::new(&config.product)
                .meter("tokens")
                .by_consumption(),
        )
        .recovery_tools();
    if let Some(resource) = &resource {
        prices = prices.protected_resource(resource.clone());
    }
    let prices = prices.build()?;
    let tools = Tools::new(prices.clone());
    // The transport forgets unused sessions when the paywall does.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(paywall_mcp::SessionLimits::default().idle);
    let mcp = StreamableHttpService::new(
        move || Ok(tools.clone()),
        sessions.into(),
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
    if let Some(resource) = &resource {
        for path in resource.metadata_paths() {
            router = router.route_service(&path, resource.service());
        }
    }
    if let Some(local) = &local {
        router = router.merge(checkout::router(local.clone(), Some(paywall.clone())));
    }
    if let Some(secret) = &config.webhook_secret {
        router = router.merge(paywall_solvapay::axum_handler::router(
            paywall_solvapay::webhook::WebhookVerifier::new(secret.as_str()),
            paywall.clone(),
        ));
    }
    Ok(Quickstart::new(router, paywall, local))
}

/// The server as an OAuth protected resource, when its tokens come from an issuer
/// (`PAYWALL_OIDC_ISSUER` or `PAYWALL_JWT_ISSUER`); with an HS256 secret and no issuer
/// there is no authorization server to name. The resource is `PAYWALL_MCP_RESOURCE`,
/// else `PAYWALL_JWT_AUDIENCE` when it is an http(s) URL, else `<base_url>/mcp`.
pub fn protected_resource(
    config: &QuickstartConfig,
    base_url: &str,
) -> Result<Option<ProtectedResource>, QuickstartError> {
    let Some(issuer) = config.oidc_issuer.as_ref().or(config.jwt_issuer.as_ref()) else {
        return Ok(None);
    };
    let is_url = |value: &&String| value.starts_with("https://") || value.starts_with("http://");
    let (var, resource) = match (
        &config.mcp_resource,
        config.jwt_audience.as_ref().filter(is_url),
    ) {
        (Some(resource), _) => ("PAYWALL_MCP_RESOURCE", resource.clone()),
        (None, Some(audience)) => ("PAYWALL_JWT_AUDIENCE", audience.clone()),
        (None, None) => ("PAYWALL_MCP_RESOURCE", format!("{base_url}/mcp")),
    };
    ProtectedResource::new(resource, [issuer.clone()])
        .map(Some)
        .map_err(|err| QuickstartError::Env {
            var,
            reason: err.to_string(),
        })
}
