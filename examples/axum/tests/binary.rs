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
