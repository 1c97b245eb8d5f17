//! The `axum-quickstart` binary itself: starts on a free port, prints a working sample
//! token, and on SIGTERM stops gracefully after flushing usage.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn read_until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    pattern: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("stdout line");
        let found = line.contains(pattern);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("`{pattern}` never printed; got {seen:?}");
}

#[tokio::test]
async fn axum_quickstart_binary_serves_and_flushes_on_sigterm() {
    serves_and_flushes_on_sigterm(env!("CARGO_BIN_EXE_axum-quickstart")).await;
}

#[tokio::test]
async fn actix_quickstart_binary_serves_and_flushes_on_sigterm() {
    serves_and_flushes_on_sigterm(env!("CARGO_BIN_EXE_actix-quickstart")).await;
}

async fn serves_and_flushes_on_sigterm(binary: &str) {
    let mut child = Command::new(binary)
        .env("PORT", "0")
        .env("PAYWALL_FREE_UNITS", "2")
        .env_remove("PAYWALL_JWT_SECRET")
        .env_remove("PAYWALL_DB")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let head = read_until(&mut lines, "try: curl");
    let base = head[0]
        .split_whitespace()
        .last()
        .expect("listening line")
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let token_line = head
        .iter()
        .position(|l| l.contains("sample token"))
        .expect("sample token line");
    let token = head[token_line + 1].trim().to_owned();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client
            .get(format!("{base}/api/hello"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 402]);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let tail = read_until(&mut lines, "stopped");
    assert!(
        tail.iter()
            .any(|l| l.contains("2 usage events recorded, 0 pending")),
        "{tail:?}"
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
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
