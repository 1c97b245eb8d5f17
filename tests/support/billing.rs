//! One call to the billing routes of an app over real sockets, checking that the
//! provider's secret key never leaks into an answer.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::apps::App;
use crate::jwt::token;
use crate::servers::DEV_KEY;

/// One billing call: status, `WWW-Authenticate`, body.
pub async fn billing_call(
    app: &App,
    method: Method,
    path: &str,
    sub: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", app.base));
    if let Some(sub) = sub {
        request = request.bearer_auth(token(sub));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    assert!(!text.contains(DEV_KEY), "the secret key leaked: {text}");
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}
