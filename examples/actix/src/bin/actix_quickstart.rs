//! `cargo run --release --bin actix-quickstart`: the same application as
//! `axum-quickstart` (same variables, routes and answers), on actix-web.

use std::process::ExitCode;
use std::time::Duration;

use paywall_examples::config;
use paywall_examples::startup;
use quickstart_actix as actix_quickstart;

const NAME: &str = "actix-quickstart";

#[actix_web::main]
async fn main() -> ExitCode {
    startup::init_logging();
    let config = match config::load(NAME) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let listener = match std::net::TcpListener::bind(("127.0.0.1", config.port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("{NAME}: cannot listen on 127.0.0.1:{}: {err}", config.port);
            return ExitCode::from(1);
        }
    };
    let base_url = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(err) => {
            eprintln!("{NAME}: {err}");
            return ExitCode::from(1);
        }
    };
    let app = match actix_quickstart::build(&config, &base_url) {
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
    let paywall = app.paywall.clone();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // actix stops gracefully on Ctrl-C and SIGTERM by itself.
    let served = match actix_quickstart::start(listener, app, workers) {
        Ok(server) => server.await,
        Err(err) => Err(err),
    };
    println!("{NAME}: shutting down, flushing usage");
    let report = paywall.shutdown(Duration::from_secs(10)).await;
    println!(
        "{NAME} stopped: {} usage events recorded, {} pending",
        report.recorded, report.pending
    );
    match served {
        Ok(()) if report.is_complete() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
        Err(err) => {
            eprintln!("{NAME}: server error: {err}");
            ExitCode::from(1)
        }
    }
}
