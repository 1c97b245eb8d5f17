//! A scriptable identity provider on loopback (discovery and a JWKS).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use crate::jwt::{claims_for, keys, sign_jwt};
use crate::net::Served;

/// The audience of the tokens [`Idp::token`] signs and [`Idp::resolver`] requires.
pub const AUDIENCE: &str = "https://api.test";

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

    /// A resolver for this IdP's JWKS: its issuer, [`AUDIENCE`], RS256 and ES256, the
    /// default fetch budget (2 at once, one more per 30 s).
    pub fn resolver(&self) -> paywall_jwt::JwtResolver {
        paywall_jwt::JwtResolver::jwks(self.jwks_url.as_str())
            .issuer(self.issuer.as_str())
            .audience(AUDIENCE)
            .algorithms([paywall_jwt::Algorithm::RS256, paywall_jwt::Algorithm::ES256])
            .build()
            .expect("resolver")
    }

    /// A token for `sub` signed by `pair` under `kid`, with this issuer and [`AUDIENCE`].
    pub fn token(&self, pair: &keys::Pair, kid: &str, sub: &str) -> String {
        sign_jwt(
            &pair.encoding,
            pair.alg,
            Some(kid),
            &claims_for(sub, &self.issuer, AUDIENCE),
        )
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
