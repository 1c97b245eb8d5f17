//! The `axum-quickstart` binary itself: starts on a free port, prints a working sample
//! token, and on SIGTERM stops gracefully after flushing usage.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[path = "../../sigterm.rs"]
mod sigterm;
use sigterm::{read_until, serves_and_flushes_on_sigterm};

#[tokio::test]
async fn axum_quickstart_binary_serves_and_flushes_on_sigterm() {
    serves_and_flushes_on_sigterm(env!("CARGO_BIN_EXE_axum-quickstart")).await;
}

#[test]
fn bad_environment_fails_fast_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_axum-quickstart"))
        .env("PORT", "0")
        .env("PAYWALL_JWT_SECRET", "too-short")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PAYWALL_JWT_SECRET"), "{stderr}");
    assert!(
        !stderr.contains("too-short"),
        "the secret is never printed: {stderr}"
    );
}

#[test]
fn the_auth0_example_requires_its_settings() {
    let output = Command::new(env!("CARGO_BIN_EXE_axum-auth0"))
        .env_remove("AUTH0_DOMAIN")
        .env_remove("AUTH0_AUDIENCE")
        .env("PORT", "0")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AUTH0_DOMAIN") && stderr.contains("AUTH0_AUDIENCE"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_custom_identity_example_serves_its_printed_api_keys() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-custom-identity"))
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .env_remove("SOLVAPAY_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let head = read_until(&mut lines, "acct_globex");
    let line = head
        .iter()
        .find(|l| l.contains("acct_acme:"))
        .expect("acme line");
    let key = line
        .split("x-api-key: ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("key")
        .to_owned();
    let url = line.split_whitespace().last().expect("url").to_owned();
    let response = reqwest::Client::new()
        .get(&url)
        .header("x-api-key", key)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The benchmarks' floor (`bench-floor`) is a measuring stick only while it does the
/// work it stands for: a floor that stopped charging or metering would look cheaper.
/// It answers like the quickstart: the units taken, the `RateLimit` fields, 402 once
/// they are spent, 401 without a valid token.
#[tokio::test]
async fn the_benchmark_floor_charges_like_the_quickstart() {
    let secret = "floor-secret-floor-secret-floor-secret-0123";
    let child = Command::new(env!("CARGO_BIN_EXE_bench-floor"))
        .env("PORT", "0")
        .env("PAYWALL_JWT_SECRET", secret)
        .env("PAYWALL_FREE_UNITS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Stopped however the test ends.
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let head = read_until(&mut BufReader::new(stdout).lines(), "listening on");
    let base = head
        .last()
        .and_then(|line| line.split_whitespace().last())
        .expect("base url")
        .to_owned();
    let url = format!("{base}/api/hello");
    let signer = paywall_jwt::Hs256Signer::new(secret);
    let token = signer
        .token_for("floor-user", std::time::Duration::from_secs(60))
        .expect("token");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        let ratelimit = response
            .headers()
            .get("ratelimit")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        seen.push((response.status().as_u16(), ratelimit));
    }
    assert_eq!(seen[0].0, 200);
    assert!(
        seen[0].1.as_deref().is_some_and(|v| v.contains(";r=1;")),
        "{seen:?}"
    );
    assert!(
        seen[1].1.as_deref().is_some_and(|v| v.contains(";r=0;")),
        "{seen:?}"
    );
    assert_eq!(seen[2].0, 402, "{seen:?}");
    let refused = client.get(&url).bearer_auth(&token).send().await;
    assert_json_error(refused.expect("request"), 402).await;
    let other = paywall_jwt::Hs256Signer::new("another-secret-another-secret-another-0123")
        .token_for("floor-user", std::time::Duration::from_secs(60))
        .expect("token");
    for auth in [None, Some(other)] {
        let mut request = client.get(&url);
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        assert_json_error(request.send().await.expect("request"), 401).await;
    }
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `response` has `status` and a JSON body with an `error` member.
async fn assert_json_error(response: reqwest::Response, status: u16) {
    assert_eq!(response.status().as_u16(), status);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert!(body.get("error").is_some(), "{body}");
}
