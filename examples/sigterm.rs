//! A quickstart binary end to end: it starts on a free port, prints a working sample
//! token, admits exactly its free units, and on SIGTERM stops after flushing usage.
//! Included by each quickstart package's `tests/binary.rs` with its own binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn read_until(
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

/// Runs `binary` with 2 free units: 200, 200, 402, then SIGTERM flushes both events.
pub async fn serves_and_flushes_on_sigterm(binary: &str) {
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
