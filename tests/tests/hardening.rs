//! Hostile input over a raw socket: non-UTF-8 and oversized header values, absurd
//! `Content-Length`, truncated bodies. Every answer is a clear 4xx (JSON where the
//! application answers), never a 5xx, a panic or a hang, and the server keeps serving.

use std::time::Duration;

use paywall_examples::config::QuickstartConfig;
use paywall_tests::*;
use quickstart_axum as quickstart;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn raw(base: &str, request: &[u8]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    // Read until the answer is complete (head + Content-Length bytes) or the server
    // closes: a server may answer early and keep waiting for a body it will not read.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => panic!(
                "no complete answer in time: {}",
                String::from_utf8_lossy(&answer)
            ),
        }
        if complete(&answer) {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    body.len() >= length
}

fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn app() -> (Served, quickstart::Quickstart) {
    let listener = loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = QuickstartConfig {
        jwt_secret: Some(SECRET.into()),
        ..QuickstartConfig::from_lookup(|_| None).expect("defaults")
    };
    let app = quickstart::build(&config, &base).expect("build");
    (Served::start(listener, app.router.clone()), app)
}

async fn still_serving(base: &str) {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/hello"))
        .bearer_auth(token("survivor"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_utf8_authorization_header_is_401() {
    let (server, _app) = app().await;
    let answer = raw(&server.base, b"GET /api/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xfd\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status(&answer), 401, "{answer}");
    assert!(answer.contains("\"kind\":\"unauthenticated\""));
    still_serving(&server.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_token_is_401_before_parsing() {
    let (server, _app) = app().await;
    let request = format!(
        "GET /api/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = raw(&server.base, request.as_bytes()).await;
    assert_eq!(status(&answer), 401, "{}", &answer[..answer.len().min(300)]);
    still_serving(&server.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_section_past_the_servers_limit_is_refused_cleanly() {
    let (server, _app) = app().await;
    let mut request = String::from("GET /api/hello HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        request.push_str(&format!("X-Padding-{i}: {}\r\n", "p".repeat(4096)));
    }
    request.push_str("Connection: close\r\n\r\n");
    let answer = raw(&server.base, request.as_bytes()).await;
    let code = status(&answer);
    // hyper refuses with 431, or closes the connection without an answer.
    assert!(
        code == 431 || code == 0,
        "{}",
        &answer[..answer.len().min(300)]
    );
    still_serving(&server.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_content_length_is_refused_by_hyper() {
    let (server, _app) = app().await;
    let answer = raw(
        &server.base,
        b"POST /checkout/cs_x HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\nConnection: close\r\n\r\ncustomer=a",
    )
    .await;
    assert_eq!(status(&answer), 431, "{answer}");
    still_serving(&server.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_declared_body_is_413_json_without_reading_it() {
    let (server, _app) = app().await;
    let answer = raw(
        &server.base,
        b"POST /checkout/cs_x HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\ncustomer=a",
    )
    .await;
    assert_eq!(status(&answer), 413, "{answer}");
    assert!(
        answer.contains("\"success\":false"),
        "a JSON body: {answer}"
    );
    still_serving(&server.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_does_not_hang_the_server() {
    let (server, _app) = app().await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /checkout/cs_x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\ncustomer=",
        )
        .await
        .expect("write");
    drop(stream); // the client goes away mid-body
    still_serving(&server.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_server_answers_oversized_json_with_413_json() {
    let (dev, _ledger) = dev_server(loopback().await, PRODUCT, 5, None);
    let request = format!(
        "POST /v1/sdk/usages/bulk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEV_KEY}\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\nConnection: close\r\n\r\n{{\"events\": ["
    );
    let answer = raw(&dev.base, request.as_bytes()).await;
    assert_eq!(status(&answer), 413, "{answer}");
    assert!(answer.contains("\"statusCode\":413"), "{answer}");
}
