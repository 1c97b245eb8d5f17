//! `cargo run --release --bin mcp-quickstart`: an MCP server over streamable HTTP at
//! `/mcp` whose tools are priced one by one, on the embedded backend (or SolvaPay).
//! Same environment variables as `axum-quickstart`.

use std::process::ExitCode;

use quickstart_axum as quickstart;
use quickstart_mcp as mcp;

#[tokio::main]
async fn main() -> ExitCode {
    quickstart::run("mcp-quickstart", mcp::build, |_, app, base_url| {
        println!(
            "  MCP endpoint: {base_url}/mcp (streamable HTTP); tools: echo (free), summarize (2 units), generate (per token)"
        );
        if let Some(token) = &app.sample_token {
            println!("  sample token (sub=demo-user, valid 24 h):\n    {token}");
            println!("  send it as `Authorization: Bearer <token>` from your MCP client");
        }
        if app.generated_secret {
            println!("  PAYWALL_JWT_SECRET is unset: generated a random secret for this run");
        }
    })
    .await
}
