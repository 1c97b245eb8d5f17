//! Signed webhook delivery to the configured receiver, with retries, in SolvaPay's
//! envelope: `{id, type, created, api_version, data: {object, previous_attributes},
//! livemode, request: {id, idempotency_key}}` (the official SDK's `WebhookEvent`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paywall_solvapay::webhook::{
    signature_header, DELIVERY_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER,
};
use serde_json::{json, Map, Value};
use tracing::{info, warn};

use crate::Dev;

/// The API version the envelopes say they follow.
const API_VERSION: &str = "2025-10-01";

/// Sends a signed event about `object` to the configured webhook URL in the background,
/// retrying a few times with backoff.
pub(crate) fn deliver(dev: &Dev, kind: &str, object: Value) {
    let Some(target) = dev.config.webhook.clone() else {
        return;
    };
    let http = dev.http.clone();
    let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut envelope = Map::new();
    envelope.insert("id".into(), json!(event_id));
    envelope.insert("type".into(), json!(kind));
    envelope.insert("created".into(), json!(created));
    envelope.insert("api_version".into(), json!(API_VERSION));
    envelope.insert(
        "data".into(),
        json!({ "object": object, "previous_attributes": null }),
    );
    envelope.insert("livemode".into(), json!(false));
    envelope.insert(
        "request".into(),
        json!({ "id": null, "idempotency_key": null }),
    );
    let body = Value::Object(envelope).to_string();
    tokio::spawn(async move {
        for attempt in 0..5u32 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let sent = http
                .post(&target.url)
                .header("content-type", "application/json")
                .header(
                    SIGNATURE_HEADER,
                    signature_header(&target.secret, now, body.as_bytes()),
                )
                .header(EVENT_ID_HEADER, &event_id)
                .header(
                    DELIVERY_HEADER,
                    format!("dlv_{}", uuid::Uuid::new_v4().simple()),
                )
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    info!(event = %event_id, "webhook delivered");
                    return;
                }
                Ok(response) => {
                    warn!(event = %event_id, status = %response.status(), attempt, "webhook refused")
                }
                Err(err) => {
                    warn!(event = %event_id, error = %err.without_url(), attempt, "webhook delivery failed")
                }
            }
            // 200 ms, 400 ms, 800 ms, 1.6 s: a dev tool's receiver is local.
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        warn!(event = %event_id, "webhook abandoned after 5 attempts");
    });
}
