//! Shared pieces of the end-to-end tests, by concern: tokens ([`jwt`]), requests and
//! servers on loopback ([`net`]), fault shapes around a backend ([`backend`]), a
//! SolvaPay-compatible server written from the OpenAPI file whose answers tests bend
//! ([`contract`]), a
//! scriptable identity provider ([`idp`]) for fault shapes, a certified OpenID provider
//! from npm ([`oidc`]), the MCP quickstart and the official MCP client ([`mcp`]), and the real servers the tests start ([`servers`]). The test doubles themselves (in-memory backend, echo handler) are the
//! core's, from `paywall::test_util`.
//!
//! ```
//! use paywall_tests::{protected, status_of, test_paywall, MemoryBackend};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let backend = MemoryBackend::with_allowance(1);
//! let paywall = test_paywall(&backend);
//! let service = protected(&paywall);
//! assert_eq!(status_of(&service, "alice").await, http::StatusCode::OK);
//! assert_eq!(status_of(&service, "alice").await, http::StatusCode::PAYMENT_REQUIRED);
//! assert_eq!(backend.ensure_calls(), 1);
//! # }
//! ```

#![allow(missing_docs)]

pub mod apps;
pub mod backend;
pub mod billing;
pub mod cluster;
pub mod compare;
pub mod contract;
pub mod idp;
pub mod instances;
pub mod jwt;
pub mod mcp;
pub mod net;
pub mod node;
pub mod oidc;
pub mod servers;

pub use apps::{both_apps, quickstart_config, App};
pub use backend::{recorded, CountedLimits, LossyAcks};
pub use billing::{billing_call, money_routes_are_unsupported, ok, react, MONEY};
pub use cluster::RedisCluster;
pub use compare::{assert_same, normalize, reset_seconds, send, Seen};
pub use contract::schema::{assert_valid, request_schema, response_schema, validator};
pub use contract::{openapi, Answer, Bend, ContractServer};
pub use idp::Idp;
pub use instances::{burst, client, count, hello, ledger_units, Instance, Shared};
pub use jwt::{bearer, bearing, claims_for, keys, resolver, sign_jwt, token, SECRET};
pub use mcp::{official_client, McpApp};
pub use net::{
    builder, loopback, pay_locally, request, status_of, std_loopback, test_paywall, Served,
};
pub use oidc::OidcProvider;
pub use paywall::test_util::{
    call, fast_recorder, protected, read_json, EchoService, MemoryBackend, TEST_PRODUCT as PRODUCT,
};
pub use servers::{dev_server, solvapay_config, ActixServed, RedisServer, DEV_KEY, WEBHOOK_SECRET};

/// The workspace README's Rust examples, compiled as doc tests (`cargo test -p
/// paywall-tests --doc`): a README example that no longer compiles fails the suite.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
