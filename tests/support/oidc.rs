//! A certified OpenID provider on 127.0.0.1: the `oidc-provider` package from npm, run
//! by node from `tests/node/oidc.mjs` (see that file for its clients, resources and
//! test controls). The package is installed by [`crate::node::install`].

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

/// The audience of the provider's tokens for our API.
pub const AUDIENCE: &str = "https://api.test";

/// The signing algorithms the provider has a key for.
pub const ALGORITHMS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

/// A running provider; killed when dropped.
pub struct OidcProvider {
    child: Child,
    /// `http://127.0.0.1:<port>`: the `iss` of its tokens.
    pub issuer: String,
    http: reqwest::Client,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the provider: the child and its issuer, or what it wrote on stderr when it did
/// not announce itself within 30 s (then it is killed).
fn spawn(port: u16) -> Result<(Child, String), String> {
    let mut child = Command::new("node")
        .arg("oidc.mjs")
        .arg(port.to_string())
        .current_dir(crate::node::dir())
        // Its stdin closing (this process ending, however) stops it.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed (apt-get install nodejs npm)");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (found, issuer) = mpsc::channel();
    std::thread::spawn(move || {
        // Read every line, so the provider never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(issuer) = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["issuer"].as_str().map(str::to_owned))
            {
                let _ = found.send(issuer);
            }
        }
    });
    let said = Arc::new(Mutex::new(String::new()));
    let writer = Arc::clone(&said);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut said = writer.lock().unwrap_or_else(PoisonError::into_inner);
            if said.len() < 8 * 1024 {
                said.push_str(&line);
                said.push('\n');
            }
        }
    });
    match issuer.recv_timeout(Duration::from_secs(30)) {
        Ok(issuer) => Ok((child, issuer)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let said = said.lock().unwrap_or_else(PoisonError::into_inner);
            Err(said.clone())
        }
    }
}

impl OidcProvider {
    /// Starts a provider on a free port.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts a provider on `port` (0: a free one). One that has not announced itself
    /// within 30 s (a loaded machine can hold node back) is started once more; the
    /// second failure says what node wrote on stderr.
    pub fn start_on(port: u16) -> Self {
        crate::node::install();
        let mut said = String::new();
        for _ in 0..2 {
            match spawn(port) {
                Ok((child, issuer)) => {
                    return Self {
                        child,
                        issuer,
                        http: reqwest::Client::new(),
                    }
                }
                Err(stderr) => said = stderr,
            }
        }
        panic!("the provider did not announce its issuer within 30 s; node said: {said}");
    }

    /// Its JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// An access token for `client-<client>` through the client-credentials grant, for
    /// the resource `resource` (e.g. `https://api.test/PS256`).
    pub async fn token_for(&self, client: u32, resource: &str) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(format!("client-{client}"), Some("secret"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "api"),
                ("resource", resource),
            ])
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token answer");
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {answer}"))
            .to_owned()
    }

    /// An access token for our API (`aud` [`AUDIENCE`]) signed with `alg`; its `sub` is
    /// `client-<client>`.
    pub async fn token(&self, client: u32, alg: &str) -> String {
        self.token_for(client, &format!("{AUDIENCE}/{alg}")).await
    }

    async fn control(&self, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.post(format!("{}/test/{path}", self.issuer));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control request");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("control answer")
    }

    /// Publishes a new key for `alg` that signs from now on; returns its `kid`.
    pub async fn rotate(&self, alg: &str) -> String {
        let answer = self.control(&format!("rotate?alg={alg}"), None).await;
        answer["kid"].as_str().expect("kid").to_owned()
    }

    /// Stops publishing the key `kid`.
    pub async fn withdraw(&self, kid: &str) {
        self.control(&format!("withdraw?kid={kid}"), None).await;
    }

    /// New key material under the same `kid`.
    pub async fn replace(&self, kid: &str) {
        self.control(&format!("replace?kid={kid}"), None).await;
    }

    /// `claims` signed with the private half of the published key `kid`, with `alg` in
    /// the header (which may contradict the key's declared `alg` or `use`).
    pub async fn sign(&self, kid: &str, alg: &str, claims: Value) -> String {
        let answer = self
            .control(
                "sign",
                Some(json!({ "kid": kid, "alg": alg, "claims": claims })),
            )
            .await;
        answer["token"].as_str().expect("token").to_owned()
    }

    /// Claims as the provider would issue them for our API, valid for 10 minutes.
    pub fn claims(&self, sub: &str) -> Value {
        json!({
            "sub": sub,
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": paywall_jwt::unix_now(),
            "exp": paywall_jwt::unix_now() + 600,
        })
    }

    /// The `kid` a token's header names.
    pub fn kid_of(token: &str) -> String {
        jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|header| header.kid)
            .expect("a kid")
    }
}
