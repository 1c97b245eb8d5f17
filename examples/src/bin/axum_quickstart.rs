//! `cargo run --release --bin axum-quickstart`: the paywall in front of an axum app, on
//! the embedded backend (or SolvaPay). See the README for the environment variables.

use std::process::ExitCode;

use paywall_examples::quickstart;

const NAME: &str = "axum-quickstart";

#[tokio::main]
async fn main() -> ExitCode {
    quickstart::init_logging();
    let config = match quickstart::config_or_exit(NAME) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let (listener, base_url) = match quickstart::listen(NAME, config.port).await {
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
    quickstart::print_backend(&config, app.local.as_ref(), &base_url);
    quickstart::print_identity(
        &config,
        app.sample_token.as_deref(),
        app.generated_secret,
        &base_url,
    );
    quickstart::serve(NAME, listener, app).await
}
