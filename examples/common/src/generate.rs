//! `POST /api/generate`, the quickstarts' route priced by consumption (meter `tokens`):
//! a stand-in for an LLM completion. Both apps share this: the request's parsing, the
//! stream of tokens, and the answers, so axum and actix answer the same bytes.
//!
//! Body `{"max_tokens": M, "tokens": N, "stream": true}`: `M` (1 to 4096) units are
//! reserved, `min(N, M)` tokens produced (N defaults to M), one every
//! `PAYWALL_GENERATE_DELAY_MS`; streamed as server-sent events (`data: {"token": i}`,
//! then `data: [DONE]`) or answered as `{"tokens": n}` with `"stream": false`. The
//! caller is charged the tokens actually written.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use paywall::Usage;
use serde::Deserialize;
use serde_json::{json, Value};

/// The most tokens one request may reserve.
pub const MAX_TOKENS: u64 = 4096;

/// The largest request body read.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// A parsed `/api/generate` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generate {
    /// Units reserved (and the most tokens produced).
    pub max_tokens: u64,
    /// Tokens produced, at most `max_tokens`.
    pub tokens: u64,
    /// Server-sent events, or one JSON answer.
    pub stream: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    max_tokens: Option<u64>,
    tokens: Option<u64>,
    stream: Option<bool>,
}

/// A 400 body (`application/problem+json`, like every other error of the quickstarts).
pub fn bad_request(message: &str) -> Value {
    paywall::adapter::problem_body(http::StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Parses the request, or says (as a 400 body) what is wrong with it. Nothing is
/// reserved for a request refused here.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Generate, Value> {
    let json = content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(bad_request(
            "Send a JSON body with Content-Type: application/json.",
        ));
    }
    let body: Body = serde_json::from_slice(body).map_err(|_| {
        bad_request(
            "The body must be a JSON object {\"max_tokens\": 1-4096, \"tokens\": n, \"stream\": bool}.",
        )
    })?;
    let max_tokens = match body.max_tokens {
        Some(max) if (1..=MAX_TOKENS).contains(&max) => max,
        _ => return Err(bad_request("max_tokens is required, from 1 to 4096.")),
    };
    Ok(Generate {
        max_tokens,
        tokens: body.tokens.unwrap_or(max_tokens).min(max_tokens),
        stream: body.stream.unwrap_or(true),
    })
}

/// The body of a request declared larger than [`MAX_BODY_BYTES`] (413).
pub fn too_large_body() -> Value {
    paywall::adapter::problem_body(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "Request bodies of /api/generate are limited to 64 KiB.",
    )
}

/// The event stream: one `data: {"token": i}` event every `delay`, each reported to
/// `usage` as it is produced, then `data: [DONE]`.
pub fn events(usage: Usage, tokens: u64, delay: Duration) -> impl Stream<Item = Bytes> + Send {
    futures_util::stream::unfold(0u64, move |sent| {
        let usage = usage.clone();
        async move {
            if sent > tokens {
                return None;
            }
            tokio::time::sleep(delay).await;
            if sent == tokens {
                return Some((Bytes::from_static(b"data: [DONE]\n\n"), sent + 1));
            }
            usage.add(1);
            let event = format!("data: {{\"token\": {sent}}}\n\n");
            Some((Bytes::from(event), sent + 1))
        }
    })
}

/// The non-streamed answer, after producing the tokens.
pub async fn complete(usage: &Usage, tokens: u64, delay: Duration) -> Value {
    tokio::time::sleep(delay.saturating_mul(u32::try_from(tokens).unwrap_or(u32::MAX))).await;
    usage.set(tokens);
    json!({ "tokens": tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_accepts_the_contract_and_refuses_the_rest() {
        let json = Some("application/json");
        let ok = parse(json, br#"{"max_tokens": 30, "tokens": 20}"#).expect("valid");
        assert_eq!(
            ok,
            Generate {
                max_tokens: 30,
                tokens: 20,
                stream: true
            }
        );
        let capped = parse(
            Some("application/json; charset=utf-8"),
            br#"{"max_tokens": 5, "tokens": 9, "stream": false}"#,
        );
        assert_eq!(
            capped,
            Ok(Generate {
                max_tokens: 5,
                tokens: 5,
                stream: false
            })
        );
        assert_eq!(
            parse(json, br#"{"max_tokens": 8}"#).map(|g| g.tokens),
            Ok(8)
        );
        for bad in [
            &br#"{"tokens": 3}"#[..],
            br#"{"max_tokens": 0}"#,
            br#"{"max_tokens": 4097}"#,
            br#"{"max_tokens": -1}"#,
            br#"{"max_tokens": "7"}"#,
            br#"[1]"#,
            b"not json",
            br#"{"max_tokens": 3, "extra": 1}"#,
        ] {
            let err = parse(json, bad).expect_err("refused");
            assert_eq!(err["kind"], "bad_request");
        }
        assert!(parse(Some("text/plain"), br#"{"max_tokens": 3}"#).is_err());
        assert!(parse(None, br#"{"max_tokens": 3}"#).is_err());
    }
}
