//! `cargo run --release --bin axum-quickstart`: the paywall in front of an axum app, on
//! the embedded backend (or SolvaPay). See the README for the environment variables.

use std::process::ExitCode;

use paywall_examples::config;
use paywall_examples::quickstart;
use paywall_examples::startup;

const NAME: &str = "axum-quickstart";

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
    let app = match quickstart::build(&config, &base_url) {
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
    startup::print_identity(
        &config,
        app.sample_token.as_deref(),
        app.generated_secret,
        &base_url,
    );
    quickstart::serve(NAME, listener, app).await
}
