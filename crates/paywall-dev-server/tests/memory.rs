//! The `paywall-dev-server` binary under 300 unauthenticated uploads that stall at
//! 1 MiB − 1 byte: it refuses them before reading their bodies, so its resident memory
//! stays small. Bounded: every client gives up after a few seconds.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

const CLIENTS: usize = 300;
const BODY: usize = 1024 * 1024 - 1;

/// Resident memory of `pid` in KiB, from /proc.
fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn stalled_unauthenticated_uploads_cost_little_memory() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_paywall-dev-server"))
        .env("SOLVAPAY_SECRET_KEY", "sk_test_memory")
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the dev server starts");
    let stdout = server.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("paywall-dev-server listening on http://")
                .map(str::to_owned)
        })
        .expect("the listening address");
    std::thread::sleep(Duration::from_millis(200));
    let before = resident_kib(server.id());

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let Ok(mut stream) = TcpStream::connect(&address) else {
                    return;
                };
                let _ = stream.set_write_timeout(Some(Duration::from_secs(3)));
                let head = format!(
                    "POST /v1/sdk/usages/bulk HTTP/1.1\r\nHost: {address}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    BODY + 1
                );
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let mut sent = 0;
                while sent < BODY {
                    let n = chunk.len().min(BODY - sent);
                    if stream.write_all(&chunk[..n]).is_err() {
                        break; // refused or stalled: the server reads no further
                    }
                    sent += n;
                }
                std::thread::sleep(Duration::from_secs(2)); // hold the connection
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    let during = resident_kib(server.id());
    for client in clients {
        let _ = client.join();
    }
    eprintln!("resident: {before} KiB before, {during} KiB with {CLIENTS} stalled uploads");
    let _ = server.kill();
    let _ = server.wait();
    assert!(before > 0, "resident memory is readable");
    assert!(
        during < 64 * 1024,
        "{during} KiB resident with {CLIENTS} stalled uploads (before: {before} KiB)"
    );
}
