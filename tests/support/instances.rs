//! Quickstart instances that share budgets, and bursts of requests across them: what
//! the Redis and Redis Cluster tests drive.

use std::time::Duration;

use paywall::Paywall;
use paywall_examples::config::QuickstartConfig;
use quickstart_axum as quickstart;
use reqwest::StatusCode;
use serde_json::Value;

use crate::jwt::{token, SECRET};
use crate::net::{loopback, Served};
use crate::servers::{solvapay_config, WEBHOOK_SECRET};

/// A quickstart instance served on loopback.
pub struct Instance {
    pub base: String,
    pub served: Served,
    pub paywall: Paywall,
}

/// Where an instance shares its budgets.
pub enum Shared {
    /// Nowhere: its own budgets.
    Nothing,
    /// One Redis, by URL.
    Redis(String),
    /// A Redis Cluster, by its seed nodes.
    Cluster(Vec<String>),
}

impl Instance {
    /// An instance billing through the dev server at `dev`, sharing budgets through
    /// `redis` (a URL), receiving webhooks when `webhook`.
    pub async fn start(dev: &str, redis: Option<String>, webhook: bool) -> Self {
        Self::sharing(dev, redis.map_or(Shared::Nothing, Shared::Redis), webhook).await
    }

    /// An instance billing through the dev server at `dev`, sharing budgets as
    /// `shared` says.
    pub async fn sharing(dev: &str, shared: Shared, webhook: bool) -> Self {
        let listener = loopback().await;
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (redis_url, redis_cluster_urls) = match shared {
            Shared::Nothing => (None, Vec::new()),
            Shared::Redis(url) => (Some(url), Vec::new()),
            Shared::Cluster(seeds) => (None, seeds),
        };
        let config = QuickstartConfig {
            jwt_secret: Some(SECRET.into()),
            solvapay: Some(solvapay_config(dev)),
            webhook_secret: webhook.then(|| WEBHOOK_SECRET.into()),
            redis_url,
            redis_cluster_urls,
            // Only the shared store (and webhooks) make budgets move within a test.
            limits_ttl: Duration::from_secs(3600),
            ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
        };
        let app = quickstart::build(&config, &base).expect("build");
        let served = Served::start(listener, app.router.clone());
        Self {
            base,
            served,
            paywall: app.paywall,
        }
    }

    pub async fn stop(self) {
        self.served.stop().await;
        let report = self.paywall.shutdown(Duration::from_secs(10)).await;
        assert!(report.is_complete(), "{report:?}");
    }
}

/// A client that keeps enough connections for bursts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

/// `GET /api/hello` as `sub`: the status and JSON body; panics on a hang.
pub async fn hello(client: &reqwest::Client, base: &str, sub: &str) -> (StatusCode, Value) {
    match client
        .get(format!("{base}/api/hello"))
        .bearer_auth(token(sub))
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(err) => panic!("request failed (a hang or a dropped connection): {err}"),
    }
}

/// Sends `total` concurrent requests for `sub`, spread round-robin over `bases`.
pub async fn burst(bases: &[String], sub: &str, total: usize) -> Vec<(StatusCode, Value)> {
    let client = client();
    let tasks: Vec<_> = (0..total)
        .map(|i| {
            let client = client.clone();
            let base = bases[i % bases.len()].clone();
            let sub = sub.to_owned();
            tokio::spawn(async move { hello(&client, &base, &sub).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(total);
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

/// How many answers have `status`.
pub fn count(answers: &[(StatusCode, Value)], status: StatusCode) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

/// Units the ledger recorded, all customers.
pub async fn ledger_units(ledger: &paywall_local::LocalBackend) -> u64 {
    crate::backend::recorded(ledger, None).await.1
}
