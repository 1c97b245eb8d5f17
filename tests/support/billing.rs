//! One call to the billing routes (and those of SolvaPay's React components) of an
//! app over real sockets, checking that the provider's secret key never leaks into an
//! answer.

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

/// One call to `/api/<route>` as `@solvapay/react`'s transport makes it.
pub async fn react(
    app: &App,
    method: Method,
    route: &str,
    sub: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, body) =
        billing_call(app, method, &format!("/api/{route}"), Some(sub), body).await;
    (status, body)
}

/// A call that must answer 200: its body.
pub async fn ok(app: &App, method: Method, route: &str, sub: &str, body: Option<Value>) -> Value {
    let (status, answer) = react(app, method, route, sub, body).await;
    assert_eq!(status, StatusCode::OK, "{} {route}: {answer}", app.name);
    answer
}

/// The routes that move money: 501 `unsupported` where the backend takes no card.
pub const MONEY: [(&str, &str, &str); 8] = [
    (
        "POST",
        "create-payment-intent",
        r#"{"productRef":"prd_quickstart"}"#,
    ),
    (
        "POST",
        "process-payment",
        r#"{"paymentIntentId":"pi_1","productRef":"prd_quickstart"}"#,
    ),
    (
        "POST",
        "create-topup-payment-intent",
        r#"{"amount":500,"currency":"USD"}"#,
    ),
    (
        "POST",
        "process-topup-payment",
        r#"{"paymentIntentId":"pi_1"}"#,
    ),
    (
        "POST",
        "attach-business-details",
        r#"{"paymentIntentId":"pi_1","isBusiness":true,"customerRef":"cus_other"}"#,
    ),
    ("GET", "payment-method", ""),
    ("GET", "auto-recharge", ""),
    ("DELETE", "auto-recharge", ""),
];

pub async fn money_routes_are_unsupported(app: &App, sub: &str) {
    for (method, route, body) in MONEY {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let body = (!body.is_empty()).then(|| serde_json::from_str(body).expect("json"));
        let (status, answer) = react(app, method, route, sub, body).await;
        assert_eq!(
            status,
            StatusCode::NOT_IMPLEMENTED,
            "{} {route}: {answer}",
            app.name
        );
        assert_eq!(answer["kind"], "unsupported", "{route}: {answer}");
    }
}
