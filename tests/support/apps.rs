//! Both quickstarts, `axum-quickstart` and `actix-quickstart`, served on loopback from
//! one configuration, for tests that hold them to the same contract.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use paywall_examples::config::QuickstartConfig;
use quickstart_actix as actix_quickstart;
use quickstart_axum as quickstart;

use crate::jwt::SECRET;
use crate::net::{loopback, std_loopback, Served};
use crate::servers::ActixServed;

type Stop = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// One quickstart being served.
pub struct App {
    /// `axum` or `actix`.
    pub name: &'static str,
    pub base: String,
    pub paywall: paywall::Paywall,
    pub local: Option<paywall_local::LocalBackend>,
    stop: Stop,
}

impl App {
    /// Stops serving (open requests finish).
    pub async fn stop(self) {
        (self.stop)().await;
    }
}

/// The test configuration: the shared HS256 secret, `free_units`, budgets trusted
/// for an hour.
pub fn quickstart_config(free_units: u64) -> QuickstartConfig {
    QuickstartConfig {
        jwt_secret: Some(SECRET.into()),
        free_units,
        limits_ttl: Duration::from_secs(3600),
        // The frontend the billing tests return to.
        return_origins: vec!["https://app.example".into()],
        cors_origins: vec!["https://app.example".into()],
        ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
    }
}

/// Both quickstarts on `config`: `[axum, actix]`.
pub async fn both_apps(config: QuickstartConfig) -> [App; 2] {
    let listener = loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = quickstart::build(&config, &base).expect("axum build");
    let (paywall, local) = (app.paywall.clone(), app.local.clone());
    let served = Served::start(listener, app.router.clone());
    let axum = App {
        name: "axum",
        base,
        paywall,
        local,
        stop: Box::new(move || Box::pin(served.stop())),
    };
    let listener = std_loopback();
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = actix_quickstart::build(&config, &base).expect("actix build");
    let (paywall, local) = (app.paywall.clone(), app.local.clone());
    let served = ActixServed::start(listener, app);
    let actix = App {
        name: "actix",
        base,
        paywall,
        local,
        stop: Box::new(move || Box::pin(served.stop())),
    };
    [axum, actix]
}
