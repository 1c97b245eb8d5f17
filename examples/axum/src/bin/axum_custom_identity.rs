//! `cargo run --release --bin axum-custom-identity`: the quickstart's routes and billing,
//! with callers identified by API keys from the application's own store instead of JWTs.
//! Two demo accounts get fresh random keys, printed at start.

use std::process::ExitCode;

use paywall::Identity;
use paywall_examples::config;
use paywall_examples::custom_identity::{ApiKeys, API_KEY_HEADER};
use paywall_examples::startup;
use quickstart_axum as quickstart;
use rand::distr::{Alphanumeric, SampleString};

const NAME: &str = "axum-custom-identity";

#[tokio::main]
async fn main() -> ExitCode {
    startup::init_logging();
    let config = match config::load(NAME) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let keys = ApiKeys::default();
    let accounts = [
        ("acct_acme", "billing@acme.example", "Acme Corp"),
        ("acct_globex", "ap@globex.example", "Globex"),
    ];
    let mut issued = Vec::new();
    for (account, email, name) in accounts {
        let key = format!("ak_{}", Alphanumeric.sample_string(&mut rand::rng(), 24));
        keys.insert(
            key.clone(),
            Identity::new(account).with_email(email).with_name(name),
        );
        issued.push((account, key));
    }
    let (listener, base_url) = match startup::listen(NAME, config.port).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let app = match quickstart::build_with(&config, &base_url, keys) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("{NAME}: {err}");
            return ExitCode::from(2);
        }
    };
    println!("{NAME} listening on {base_url}");
    startup::print_backend(&config, app.local.as_ref(), &base_url);
    for (account, key) in &issued {
        println!("  {account}: curl -i -H '{API_KEY_HEADER}: {key}' {base_url}/api/hello");
    }
    quickstart::serve(NAME, listener, app).await
}
