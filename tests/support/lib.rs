//! Shared pieces of the end-to-end tests: a counting billing backend with switchable
//! faults, a fault wrapper around the real SQLite backend, tokens, and an echo handler.
//!
//! ```
//! use paywall_tests::{protected, status_of, test_paywall, TestBackend};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let backend = TestBackend::with_allowance(1);
//! let paywall = test_paywall(&backend);
//! let service = protected(&paywall);
//! assert_eq!(status_of(&service, "alice").await, http::StatusCode::OK);
//! assert_eq!(status_of(&service, "alice").await, http::StatusCode::PAYMENT_REQUIRED);
//! assert_eq!(backend.ensure_calls(), 1);
//! # }
//! ```

#![allow(missing_docs)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use paywall::{BackendError, BillingBackend, Customer, CustomerRef, Identity, Limits, UsageEvent};
use paywall_jwt::{Hs256Signer, JwtResolver};
use serde_json::{json, Value};
use tower::{service_fn, Service};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const PRODUCT: &str = "prd_test";

pub fn resolver() -> JwtResolver {
    JwtResolver::hs256(SECRET).build().expect("resolver")
}

pub fn token(sub: &str) -> String {
    Hs256Signer::new(SECRET)
        .token_for(sub, Duration::from_secs(3600))
        .expect("sign")
}

pub fn bearer(sub: &str) -> String {
    format!("Bearer {}", token(sub))
}

/// A request to the echo service for `sub`.
pub fn request(sub: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/api/echo")
        .header("authorization", bearer(sub))
        .body(Full::default())
        .expect("request")
}

/// The handler behind the layer: answers what it saw. `x-test-status` sets its status.
pub fn echo_service() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + 'static {
    service_fn(|request: Request<Full<Bytes>>| async move {
        let status = request
            .headers()
            .get("x-test-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok())
            .and_then(|v| StatusCode::from_u16(v).ok())
            .unwrap_or(StatusCode::OK);
        let refs: Vec<&str> = request
            .headers()
            .get_all("x-customer-ref")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let customer = request.extensions().get::<Customer>();
        let body = json!({
            "customerRefHeaders": refs,
            "extension": customer.map(|c| c.reference().as_str()),
            "externalRef": customer.map(|c| c.external_ref()),
        });
        let mut response = Response::new(Full::from(body.to_string()));
        *response.status_mut() = status;
        Ok(response)
    })
}

pub async fn json_body(response: Response<Full<Bytes>>) -> (StatusCode, http::HeaderMap, Value) {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, value)
}

/// An in-memory billing backend that counts its calls and fails on demand.
#[derive(Clone, Default)]
pub struct TestBackend {
    pub state: Arc<TestState>,
}

#[derive(Default)]
pub struct TestState {
    pub allowance: AtomicU64,
    pub delay_ms: AtomicU64,
    pub ensure_calls: AtomicUsize,
    pub limits_calls: AtomicUsize,
    pub usage_calls: AtomicUsize,
    pub ensure_down: AtomicBool,
    pub limits_down: AtomicBool,
    /// The next N usage calls fail transiently before writing anything.
    pub usage_failures: AtomicUsize,
    pub checkout_url: Mutex<Option<String>>,
    /// Recorded events by idempotency key.
    pub recorded: Mutex<HashMap<String, UsageEvent>>,
    /// The keys of every usage call, in order.
    pub attempts: Mutex<Vec<Vec<String>>>,
}

impl TestBackend {
    pub fn with_allowance(units: u64) -> Self {
        let backend = Self::default();
        backend.state.allowance.store(units, Ordering::SeqCst);
        backend
    }

    pub fn delay(self, delay: Duration) -> Self {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
        self
    }

    pub fn ensure_calls(&self) -> usize {
        self.state.ensure_calls.load(Ordering::SeqCst)
    }

    pub fn limits_calls(&self) -> usize {
        self.state.limits_calls.load(Ordering::SeqCst)
    }

    pub fn recorded_units(&self) -> u64 {
        self.state
            .recorded
            .lock()
            .expect("lock")
            .values()
            .map(|e| e.units)
            .sum()
    }

    async fn pause(&self) {
        let delay = self.state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
}

impl BillingBackend for TestBackend {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        self.state.ensure_calls.fetch_add(1, Ordering::SeqCst);
        self.pause().await;
        if self.state.ensure_down.load(Ordering::SeqCst) {
            return Err(BackendError::unavailable(
                "connection refused (internal detail)",
            ));
        }
        Ok(CustomerRef::new(format!("cus_{}", identity.external_ref)))
    }

    async fn check_limits(
        &self,
        customer: &CustomerRef,
        _: &str,
        _: &str,
    ) -> Result<Limits, BackendError> {
        self.state.limits_calls.fetch_add(1, Ordering::SeqCst);
        self.pause().await;
        if self.state.limits_down.load(Ordering::SeqCst) {
            return Err(BackendError::unavailable(
                "upstream exploded: stack trace here",
            ));
        }
        let used: u64 = self
            .state
            .recorded
            .lock()
            .expect("lock")
            .values()
            .filter(|e| e.customer == *customer)
            .map(|e| e.units)
            .sum();
        let remaining = self
            .state
            .allowance
            .load(Ordering::SeqCst)
            .saturating_sub(used);
        Ok(Limits {
            checkout_url: self.state.checkout_url.lock().expect("lock").clone(),
            plan: Some("pln_free".into()),
            ..Limits::remaining(remaining)
        })
    }

    async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        self.state.usage_calls.fetch_add(1, Ordering::SeqCst);
        self.state
            .attempts
            .lock()
            .expect("lock")
            .push(events.iter().map(|e| e.idempotency_key.clone()).collect());
        let failing = self
            .state
            .usage_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(BackendError::Unavailable {
                message: "503 from usage endpoint".into(),
                retry_after: None,
            });
        }
        let mut recorded = self.state.recorded.lock().expect("lock");
        for event in events {
            recorded
                .entry(event.idempotency_key.clone())
                .or_insert_with(|| event.clone());
        }
        Ok(())
    }
}

/// Wraps a backend so that usage calls fail in two ways: before writing (the request
/// never arrived) and after writing (the acknowledgement was lost), per a schedule.
#[derive(Clone)]
pub struct LossyAcks<B> {
    pub inner: B,
    pub calls: Arc<AtomicUsize>,
    /// Call numbers (0-based) modulo `period` that fail before writing.
    pub fail_before: Vec<usize>,
    /// Call numbers modulo `period` that write, then report a failure.
    pub fail_after: Vec<usize>,
    pub period: usize,
}

impl<B: BillingBackend> BillingBackend for LossyAcks<B> {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        self.inner.ensure_customer(identity).await
    }

    async fn check_limits(
        &self,
        c: &CustomerRef,
        p: &str,
        m: &str,
    ) -> Result<Limits, BackendError> {
        self.inner.check_limits(c, p, m).await
    }

    async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) % self.period.max(1);
        if self.fail_before.contains(&call) {
            return Err(BackendError::Unavailable {
                message: "429".into(),
                retry_after: Some(Duration::from_millis(5)),
            });
        }
        self.inner.record_usage(events).await?;
        if self.fail_after.contains(&call) {
            return Err(BackendError::unavailable("connection reset after write"));
        }
        Ok(())
    }
}

/// A recorder configuration with fast retries, for tests.
pub fn fast_recorder() -> paywall::RecorderConfig {
    paywall::RecorderConfig {
        flush_interval: Duration::from_millis(10),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        ..paywall::RecorderConfig::default()
    }
}

/// A paywall builder over `backend` with the test resolver and fast retries.
pub fn builder<B: BillingBackend + Clone>(backend: &B) -> paywall::PaywallBuilder {
    paywall::Paywall::builder(resolver(), backend.clone()).recorder(fast_recorder())
}

/// A paywall over `backend` with the defaults of [`builder`].
pub fn test_paywall<B: BillingBackend + Clone>(backend: &B) -> paywall::Paywall {
    builder(backend).build().expect("paywall")
}

/// The echo service behind `paywall`, charging one unit of [`PRODUCT`].
pub fn protected(
    paywall: &paywall::Paywall,
) -> paywall::PaywallService<
    impl Service<
            Request<Full<Bytes>>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static,
> {
    use tower::Layer;
    paywall
        .layer(paywall::Charge::new(PRODUCT))
        .expect("layer")
        .layer(echo_service())
}

/// The status `service` answers a request of `sub` with.
pub async fn status_of<S>(service: &S, sub: &str) -> StatusCode
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone,
{
    use tower::ServiceExt;
    match service.clone().oneshot(request(sub)).await {
        Ok(response) => response.status(),
        Err(never) => match never {},
    }
}

/// An axum app served on 127.0.0.1 for the length of a test.
pub struct Served {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Serves `router` on `listener` until [`stop`](Self::stop).
    pub fn start(listener: tokio::net::TcpListener, router: axum::Router) -> Self {
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            base,
            stop: Some(stop),
            handle,
        }
    }

    /// Stops accepting and waits for open requests to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.handle).await;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A listener on a free loopback port.
pub async fn loopback() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// The secret key the dev server and its clients share in tests.
pub const DEV_KEY: &str = "sk_test_paywall_dev_key";
/// The webhook signing secret in tests.
pub const WEBHOOK_SECRET: &str = "whsec_paywall_test_secret";

/// A dev server over a fresh in-memory ledger selling `product` with `free_units`.
pub fn dev_server(
    listener: tokio::net::TcpListener,
    product: &str,
    free_units: u64,
    webhook_url: Option<String>,
) -> (Served, paywall_local::LocalBackend) {
    let ledger = paywall_local::LocalBackend::builder()
        .product(paywall_local::Product::new(product).free_units(free_units))
        .open()
        .expect("ledger");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = paywall_local::dev_server::DevServerConfig::new(DEV_KEY, base);
    if let Some(url) = webhook_url {
        config = config.webhook(paywall_local::dev_server::WebhookTarget {
            url,
            secret: WEBHOOK_SECRET.into(),
        });
    }
    let served = Served::start(
        listener,
        paywall_local::dev_server::router(ledger.clone(), config),
    );
    (served, ledger)
}

/// A SolvaPay configuration for tests: the dev key, short timeouts and backoff.
pub fn solvapay_config(base: &str) -> paywall_solvapay::SolvaPayConfig {
    paywall_solvapay::SolvaPayConfig::new(DEV_KEY)
        .base_url(base)
        .request_timeout(Duration::from_millis(500))
        .deadline(Duration::from_secs(3))
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
}

/// Test key pairs (see `crates/paywall-jwt/tests/keys/README.md`).
pub mod keys {
    use jsonwebtoken::{Algorithm, EncodingKey};

    macro_rules! pem {
        ($name:literal) => {
            include_bytes!(concat!("../../crates/paywall-jwt/tests/keys/", $name))
        };
    }

    /// A signing key, its algorithm and the matching public PEM.
    pub struct Pair {
        pub encoding: EncodingKey,
        pub alg: Algorithm,
        pub public_pem: &'static [u8],
    }

    fn pair(private: &[u8], public_pem: &'static [u8], alg: Algorithm) -> Pair {
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private),
            _ => EncodingKey::from_rsa_pem(private),
        }
        .expect("test key");
        Pair {
            encoding,
            alg,
            public_pem,
        }
    }

    pub fn rsa1() -> Pair {
        pair(pem!("rsa1.pem"), pem!("rsa1.pub.pem"), Algorithm::RS256)
    }
    pub fn rsa2() -> Pair {
        pair(pem!("rsa2.pem"), pem!("rsa2.pub.pem"), Algorithm::RS256)
    }
    pub fn ec256() -> Pair {
        pair(pem!("ec256.pem"), pem!("ec256.pub.pem"), Algorithm::ES256)
    }
    pub fn ec384() -> Pair {
        pair(pem!("ec384.pem"), pem!("ec384.pub.pem"), Algorithm::ES384)
    }
    pub fn ed25519() -> Pair {
        pair(
            pem!("ed25519.pem"),
            pem!("ed25519.pub.pem"),
            Algorithm::EdDSA,
        )
    }
}

/// Signs `claims` with `key` using `alg`, naming `kid` in the header.
pub fn sign_jwt(
    key: &jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// Standard claims for `sub`, valid for 10 minutes, with `iss` and `aud`.
pub fn claims_for(sub: &str, issuer: &str, audience: &str) -> Value {
    let now = paywall_jwt::unix_now();
    json!({ "sub": sub, "iss": issuer, "aud": audience, "iat": now, "exp": now + 600 })
}

/// An identity provider on 127.0.0.1: OIDC discovery and a JWKS whose keys, outage and
/// `Cache-Control` the test controls; it counts JWKS fetches.
#[derive(Clone)]
pub struct Idp {
    pub issuer: String,
    pub jwks_url: String,
    state: Arc<IdpState>,
}

#[derive(Default)]
struct IdpState {
    jwks: Mutex<Value>,
    down: AtomicBool,
    max_age: Mutex<Option<u64>>,
    fetches: AtomicUsize,
    issuer: Mutex<String>,
}

impl Idp {
    pub fn start() -> (Self, Served) {
        use axum::extract::State;
        use axum::response::IntoResponse;
        let std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(std).expect("listener");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(IdpState::default());
        *state.issuer.lock().expect("lock") = base.clone();
        *state.jwks.lock().expect("lock") = json!({ "keys": [] });
        async fn discovery(State(state): State<Arc<IdpState>>) -> axum::response::Response {
            if state.down.load(Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let issuer = state.issuer.lock().expect("lock").clone();
            axum::Json(json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json") }))
                .into_response()
        }
        async fn jwks(State(state): State<Arc<IdpState>>) -> axum::response::Response {
            state.fetches.fetch_add(1, Ordering::SeqCst);
            if state.down.load(Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let body = state.jwks.lock().expect("lock").clone();
            let mut response = axum::Json(body).into_response();
            if let Some(age) = *state.max_age.lock().expect("lock") {
                if let Ok(value) = http::HeaderValue::from_str(&format!("public, max-age={age}")) {
                    response
                        .headers_mut()
                        .insert(http::header::CACHE_CONTROL, value);
                }
            }
            response
        }
        let router = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(discovery),
            )
            .route("/jwks.json", axum::routing::get(jwks))
            .route("/.well-known/jwks.json", axum::routing::get(jwks))
            .with_state(state.clone());
        let served = Served::start(listener, router);
        let idp = Self {
            issuer: base.clone(),
            jwks_url: format!("{base}/jwks.json"),
            state,
        };
        (idp, served)
    }

    /// Serves these keys, by `kid`.
    pub fn set_keys(&self, keys: &[(&str, &keys::Pair)]) {
        let jwks: Vec<Value> = keys
            .iter()
            .map(|(kid, pair)| {
                let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&pair.encoding, pair.alg)
                    .expect("jwk");
                jwk.common.key_id = Some((*kid).to_owned());
                serde_json::to_value(jwk).expect("jwk json")
            })
            .collect();
        *self.state.jwks.lock().expect("lock") = json!({ "keys": jwks });
    }

    /// Serves a raw JWKS document.
    pub fn set_raw(&self, jwks: Value) {
        *self.state.jwks.lock().expect("lock") = jwks;
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn set_max_age(&self, secs: Option<u64>) {
        *self.state.max_age.lock().expect("lock") = secs;
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the JWKS has been fetched `n` times.
    pub async fn wait_for_fetches(&self, n: usize) {
        for _ in 0..200 {
            if self.fetches() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the JWKS was fetched {} times, expected {n}",
            self.fetches()
        );
    }
}

/// The actix quickstart served on its own thread and actix system, for tests. Build the
/// app in the test's runtime (its usage recorder lives there), then start it here.
pub struct ActixServed {
    pub base: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ActixServed {
    pub fn start(
        listener: std::net::TcpListener,
        app: paywall_examples::actix_quickstart::ActixQuickstart,
    ) -> Self {
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server =
                    paywall_examples::actix_quickstart::start(listener, app, 2).expect("start");
                let _ = tx.send(server.handle());
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("the actix server started");
        Self {
            base,
            handle,
            thread: Some(thread),
        }
    }

    /// Stops gracefully (open requests finish) and waits for the thread.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// A std listener on a free loopback port (actix takes std listeners).
pub fn std_loopback() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind")
}

/// A real `redis-server` on a free loopback port, without persistence, for the length
/// of a test. It can be killed and started again on the same port.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts `redis-server` and waits until it answers `PING`.
    pub fn start() -> Self {
        let port = std_loopback().local_addr().expect("addr").port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server with SIGKILL (its data is lost: there is no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and waits for `PING`.
    pub fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) the server: it keeps its connections but
    /// answers nothing while paused.
    pub fn pause(&self, paused: bool) {
        if let Some(child) = &self.child {
            let status = std::process::Command::new("kill")
                .arg(if paused { "-STOP" } else { "-CONT" })
                .arg(child.id().to_string())
                .status()
                .expect("kill");
            assert!(status.success());
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// A plain client for inspecting keys.
    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server ignores SIGKILL's cleanup until resumed; resume first.
            let _ = std::process::Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}
