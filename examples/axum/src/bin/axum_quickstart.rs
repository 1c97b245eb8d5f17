//! `cargo run --release --bin axum-quickstart`: the paywall in front of an axum app, on
//! the embedded backend (or SolvaPay). See the README for the environment variables.

use std::process::ExitCode;

use paywall_examples::startup;
use quickstart_axum as quickstart;

#[tokio::main]
async fn main() -> ExitCode {
    quickstart::run(
        "axum-quickstart",
        quickstart::build,
        |config, app, base_url| {
            startup::print_identity(
                config,
                app.sample_token.as_deref(),
                app.generated_secret,
                base_url,
            );
        },
    )
    .await
}
