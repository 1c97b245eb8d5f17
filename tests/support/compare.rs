//! Comparing the answers of the two quickstarts (axum and actix) byte for byte, once
//! per-instance values are written as placeholders: what the conformance tests share.

use std::time::Duration;

use crate::apps::App;

/// What a scenario compares.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub status: u16,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<u64>,
    pub ratelimit: Option<String>,
    pub ratelimit_policy: Option<String>,
    pub body: String,
}

/// Sends one request (a body is sent as a form) and reads what is compared, and the
/// raw body.
pub async fn send(
    server: &App,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> (Seen, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}{path}", server.base)
    };
    let mut request = client.request(method, url);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("send");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = response.status().as_u16();
    let (content_type, www_authenticate) = (header("content-type"), header("www-authenticate"));
    let retry_after = header("retry-after").and_then(|v| v.parse().ok());
    let (ratelimit, ratelimit_policy) = (header("ratelimit"), header("ratelimit-policy"));
    let raw = response.text().await.expect("body");
    let seen = Seen {
        status,
        content_type,
        www_authenticate,
        retry_after,
        ratelimit,
        ratelimit_policy,
        body: raw.clone(),
    };
    (seen, raw)
}

/// Writes per-instance values as placeholders.
pub fn normalize(mut seen: Seen, server: &App, customers: &[&str]) -> Seen {
    seen.body = seen.body.replace(&server.base, "{base}");
    for (i, customer) in customers.iter().enumerate() {
        seen.body = seen.body.replace(customer, &format!("{{customer{i}}}"));
    }
    seen.body = without_sessions(&seen.body);
    // Seconds to the period's end, read a moment apart on the two servers: any
    // rounding can straddle a boundary, so only their presence is compared here
    // (`reset_seconds` checks that they agree).
    seen.retry_after = seen.retry_after.map(|_| 0);
    seen.ratelimit = seen.ratelimit.map(|value| match value.split_once(";t=") {
        Some((head, _)) => format!("{head};t=T"),
        None => value,
    });
    seen
}

/// The `t` of a `RateLimit` value.
pub fn reset_seconds(value: Option<&str>) -> Option<u64> {
    value?.split_once(";t=")?.1.parse().ok()
}

/// Both answers are equal, and the first has `status`.
pub fn assert_same(scenario: &str, seen: &[Seen; 2], status: u16) {
    assert_eq!(seen[0].status, status, "{scenario} (axum): {:?}", seen[0]);
    assert_eq!(seen[0], seen[1], "{scenario}: axum and actix differ");
}

/// `text` with every checkout session id (`cs_` and 20 alphanumerics, random per
/// server) replaced by `{session}`.
fn without_sessions(text: &str) -> String {
    const LEN: usize = 20;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("cs_") {
        let id = &rest[at + 3..];
        let run = id.bytes().take_while(u8::is_ascii_alphanumeric).count();
        out.push_str(&rest[..at]);
        if run == LEN {
            out.push_str("{session}");
        } else {
            out.push_str(&rest[at..at + 3 + run]);
        }
        rest = &id[run..];
    }
    out.push_str(rest);
    out
}
