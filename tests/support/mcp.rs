//! The MCP quickstart served on loopback, and the official MCP client
//! (`@modelcontextprotocol/sdk` from npm, run by node from `tests/node/mcp_client.mjs`)
//! to drive it.

use serde_json::Value;

use crate::net::{loopback, Served};
use crate::node;

/// The MCP quickstart on 127.0.0.1.
pub struct McpApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub paywall: paywall::Paywall,
    /// The ledger usage is recorded in: the embedded backend's, or the dev server's.
    pub local: paywall_local::LocalBackend,
    served: Served,
}

impl McpApp {
    /// Serves the MCP quickstart on the embedded backend with `free_units`.
    pub async fn start(free_units: u64) -> Self {
        let listener = loopback().await;
        Self::start_on(
            listener,
            |_| crate::apps::quickstart_config(free_units),
            None,
        )
        .await
    }

    /// Serves the MCP quickstart on `listener` with the configuration `config_for` its
    /// base URL gives; usage is read from `ledger` (the dev server's) or, when `None`,
    /// from the embedded backend.
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        config_for: impl FnOnce(&str) -> paywall_examples::config::QuickstartConfig,
        ledger: Option<paywall_local::LocalBackend>,
    ) -> Self {
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = quickstart_mcp::build(&config_for(&base), &base).expect("mcp build");
        let local = ledger
            .or_else(|| app.local.clone())
            .expect("a ledger to read usage from");
        let served = Served::start(listener, app.router);
        Self {
            base,
            paywall: app.paywall,
            local,
            served,
        }
    }

    /// The MCP endpoint.
    pub fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// Units recorded in the ledger, all customers, for `meter`.
    pub async fn recorded(&self, meter: &str) -> u64 {
        self.paywall.flush().await;
        self.local
            .ledger(None)
            .await
            .expect("ledger")
            .iter()
            .filter(|row| row.meter == meter && row.outcome == "success")
            .map(|row| row.units)
            .sum()
    }

    pub async fn stop(self) {
        self.served.stop().await;
    }
}

/// Runs the official MCP client against `url` with `scenario` (see
/// `tests/node/mcp_client.mjs`) and returns its report.
pub async fn official_client(url: &str, scenario: Value) -> Value {
    node::report("mcp_client.mjs", vec![url.to_owned(), scenario.to_string()]).await
}
