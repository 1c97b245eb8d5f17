//! `cargo run --release --bin mcp-quickstart`: an MCP server over streamable HTTP at
//! `/mcp` whose tools are priced one by one, on the embedded backend (or SolvaPay).
//! Same environment variables as `axum-quickstart`.

use std::process::ExitCode;

use paywall_examples::{config, mcp, quickstart, startup};

const NAME: &str = "mcp-quickstart";

#[tokio::main]
async fn main() -> ExitCode {
    startup::init_logging();
    let config = match config::load(NAME) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let (listener, base_url) = match startup::listen(NAME, config.port).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let app = match mcp::build(&config, &base_url) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("{NAME}: {err}");
            return ExitCode::from(2);
        }
    };
    println!("{NAME} listening on {base_url}");
    if let Err(code) = startup::preload_keys(NAME, app.jwt.as_deref()).await {
        return code;
    }
    startup::print_backend(&config, app.local.as_ref(), &base_url);
    println!("  MCP endpoint: {base_url}/mcp (streamable HTTP); tools: echo (free), summarize (2 units), generate (per token)");
    if let Some(token) = &app.sample_token {
        println!("  sample token (sub=demo-user, valid 24 h):\n    {token}");
        println!("  send it as `Authorization: Bearer <token>` from your MCP client");
    }
    if app.generated_secret {
        println!("  PAYWALL_JWT_SECRET is unset: generated a random secret for this run");
    }
    quickstart::serve(NAME, listener, app).await
}
