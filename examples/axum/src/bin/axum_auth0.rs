//! `cargo run --release --bin axum-auth0`: the quickstart's routes and billing, with
//! callers signed in by Auth0. `AUTH0_DOMAIN` (your tenant or custom domain) and
//! `AUTH0_AUDIENCE` (your API's identifier) are required; the billing variables are
//! the quickstart's.

use std::process::ExitCode;

use paywall_examples::config;
use paywall_examples::startup;
use paywall_jwt::JwtResolver;
use quickstart_axum as quickstart;

const NAME: &str = "axum-auth0";

#[tokio::main]
async fn main() -> ExitCode {
    startup::init_logging();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(domain), Some(audience)) = (var("AUTH0_DOMAIN"), var("AUTH0_AUDIENCE")) else {
        eprintln!("{NAME}: set AUTH0_DOMAIN (e.g. example.eu.auth0.com) and AUTH0_AUDIENCE (your API identifier)");
        return ExitCode::from(2);
    };
    let config = match config::load(NAME) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let resolver = match JwtResolver::auth0(&domain, audience.as_str()).build() {
        Ok(resolver) => std::sync::Arc::new(resolver),
        Err(err) => {
            eprintln!("{NAME}: AUTH0_DOMAIN: {err}");
            return ExitCode::from(2);
        }
    };
    let (listener, base_url) = match startup::listen(NAME, config.port).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let app = match quickstart::build_with(&config, &base_url, std::sync::Arc::clone(&resolver)) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("{NAME}: {err}");
            return ExitCode::from(2);
        }
    };
    println!("{NAME} listening on {base_url}");
    println!("  identity: Auth0 tenant {domain}, audience {audience}");
    if let Err(code) = startup::preload_keys(NAME, Some(&resolver)).await {
        return code;
    }
    startup::print_backend(&config, app.local.as_ref(), &base_url);
    println!(
        "  try: curl -i -H 'Authorization: Bearer <an Auth0 access token>' {base_url}/api/hello"
    );
    quickstart::serve(NAME, listener, app).await
}
