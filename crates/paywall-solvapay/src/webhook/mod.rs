//! Webhook verification: `SV-Signature: t=<unix seconds>,v1=<hex>`, an HMAC-SHA256
//! keyed with the whole secret (`whsec_...`) over `"<t>.<raw body>"`.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`WebhookVerifier`]: the signature, its freshness, replays, bodies in flight |
//! | `event.rs` | [`WebhookEvent`]: SolvaPay's envelope and the customer it is about |
//! | `handle.rs` | [`handle`]: the endpoint, independent of the web framework |

mod event;
mod handle;

pub use event::{WebhookEvent, ALLOWANCE_EVENTS};
pub use handle::{handle, refused, too_large, Handled};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "sv-signature";
/// The event id header.
pub const EVENT_ID_HEADER: &str = "sv-event-id";
/// The per-attempt delivery id header.
pub const DELIVERY_HEADER: &str = "sv-delivery";
/// Signatures older or newer than this are refused by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No `SV-Signature` header.
    #[error("missing SV-Signature header")]
    MissingSignature,
    /// The header is not `t=<seconds>,v1=<hex>`.
    #[error("malformed SV-Signature header")]
    MalformedSignature,
    /// The timestamp is outside the tolerance.
    #[error("the signature's timestamp is outside the tolerance")]
    StaleTimestamp,
    /// No `v1` signature matches.
    #[error("signature mismatch")]
    BadSignature,
    /// The signed body is not an event envelope.
    #[error("invalid event payload: {0}")]
    InvalidPayload(String),
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed with `secret`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// A complete `SV-Signature` header value for `body` at `timestamp`.
pub fn signature_header(secret: &str, timestamp: u64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

fn mac(secret: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    // The key is configuration, never request data, and HMAC takes keys of any length:
    // `new_from_slice` only fails for MACs with fixed-size keys.
    #[allow(clippy::expect_used)]
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Verifies webhook deliveries.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use paywall_solvapay::webhook::WebhookVerifier;
///
/// let body = br#"{"id":"evt_1","type":"customer.created"}"#;
/// let verifier = WebhookVerifier::new("whsec_test_secret")
///     .clock(|| UNIX_EPOCH + Duration::from_secs(1740000000));
/// let header = "t=1740000000,v1=272a54ce354be453f5b9a494af6a3f70e0cc98f74eabc2ca83bf53e700fb6476";
/// let event = verifier.verify_event(Some(header), body)?;
/// assert_eq!(event.kind, "customer.created");
/// # Ok::<(), paywall_solvapay::webhook::WebhookError>(())
/// ```
#[derive(Clone)]
pub struct WebhookVerifier {
    secret: Arc<str>,
    tolerance: Duration,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
    /// Bodies read at once, shared by every clone.
    intake: Arc<tokio::sync::Semaphore>,
    /// Event ids handled within twice the tolerance: a replay changes nothing.
    seen: moka::sync::Cache<String, ()>,
}

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("secret", &"[redacted]")
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl WebhookVerifier {
    /// A verifier for `secret` (the whole string, `whsec_` prefix included), with a
    /// 300 s tolerance and the system clock.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: Arc::from(secret.into()),
            tolerance: DEFAULT_TOLERANCE,
            clock: Arc::new(SystemTime::now),
            intake: Arc::new(tokio::sync::Semaphore::new(MAX_WEBHOOKS_IN_FLIGHT)),
            seen: seen_ids(DEFAULT_TOLERANCE),
        }
    }

    /// How many webhook bodies are read at once, at most (default
    /// [`MAX_WEBHOOKS_IN_FLIGHT`]): anyone can send a well-formed `SV-Signature` with a
    /// current time, and the body is read before the signature can be checked.
    pub fn in_flight(mut self, bodies: usize) -> Self {
        self.intake = Arc::new(tokio::sync::Semaphore::new(bodies.max(1)));
        self
    }

    /// A place to read one delivery's body, or the 503 to answer at once when as many
    /// bodies as allowed are being read (SolvaPay delivers again later). Hold the place
    /// until the body is read and handled.
    pub fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Handled> {
        Arc::clone(&self.intake)
            .try_acquire_owned()
            .map_err(|_| Handled {
                status: 503,
                body: paywall::adapter::error_body(
                    "Service Unavailable",
                    "busy",
                    "Too many webhook deliveries are being read at once; retry later.",
                ),
            })
    }

    /// Largest accepted difference between the signature's time and now.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self.seen = seen_ids(tolerance);
        self
    }

    /// The clock to compare timestamps with (tests inject a fixed one).
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// What can be checked before the body is read: the `SV-Signature` header is
    /// present, well formed, and its timestamp within the tolerance. Endpoints call it
    /// first, so an unsigned or replayed request costs no body buffering.
    pub fn precheck(&self, header: Option<&str>) -> Result<(), WebhookError> {
        self.fresh(header).map(drop)
    }

    fn fresh(&self, header: Option<&str>) -> Result<(u64, Vec<Vec<u8>>), WebhookError> {
        let header = header.ok_or(WebhookError::MissingSignature)?;
        let (timestamp, signatures) = parse_header(header)?;
        let now = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now.abs_diff(timestamp) > self.tolerance.as_secs() {
            return Err(WebhookError::StaleTimestamp);
        }
        Ok((timestamp, signatures))
    }

    /// Checks `header` (the `SV-Signature` value) against the raw `body`.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), WebhookError> {
        let (timestamp, signatures) = self.fresh(header)?;
        let expected = mac(&self.secret, timestamp, body);
        // verify_slice compares in constant time.
        if signatures
            .iter()
            .any(|signature| expected.clone().verify_slice(signature).is_ok())
        {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }

    /// Verifies, then parses the event envelope.
    pub fn verify_event(
        &self,
        header: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        self.verify(header, body)?;
        serde_json::from_slice(body).map_err(|err| WebhookError::InvalidPayload(err.to_string()))
    }
}

/// The event ids remembered: a delivery is verified only within `tolerance` of its
/// signing time, so an id need not be remembered longer than twice that.
fn seen_ids(tolerance: Duration) -> moka::sync::Cache<String, ()> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(tolerance.saturating_mul(2).max(Duration::from_secs(1)))
        .build()
}

/// How many webhook bodies are read at once by default (see
/// [`WebhookVerifier::in_flight`]); a delivery past it is answered 503, `Retry-After: 1`.
pub const MAX_WEBHOOKS_IN_FLIGHT: usize = 32;

/// The largest webhook body accepted; larger ones are refused before being read.
pub const MAX_WEBHOOK_BYTES: u64 = 64 * 1024;

fn parse_header(header: &str) -> Result<(u64, Vec<Vec<u8>>), WebhookError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(WebhookError::MalformedSignature)?;
        match name {
            "t" => {
                if timestamp.is_some()
                    || value.is_empty()
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(WebhookError::MalformedSignature);
                }
                timestamp = Some(
                    value
                        .parse()
                        .map_err(|_| WebhookError::MalformedSignature)?,
                );
            }
            "v1" => {
                let bytes = hex::decode(value).map_err(|_| WebhookError::MalformedSignature)?;
                if bytes.len() != 32 {
                    return Err(WebhookError::MalformedSignature);
                }
                signatures.push(bytes);
            }
            _ => {} // other schemes are ignored
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Ok((timestamp, signatures)),
        _ => Err(WebhookError::MalformedSignature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.created"}"#;
    const T: u64 = 1740000000;
    const VECTOR: &str = "272a54ce354be453f5b9a494af6a3f70e0cc98f74eabc2ca83bf53e700fb6476";

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(SECRET).clock(|| UNIX_EPOCH + Duration::from_secs(T + 10))
    }

    #[test]
    fn the_contract_test_vector() {
        assert_eq!(sign(SECRET, T, BODY), VECTOR);
        let header = format!("t={T},v1={VECTOR}");
        assert_eq!(verifier().verify(Some(&header), BODY), Ok(()));
        let event = verifier().verify_event(Some(&header), BODY).expect("event");
        assert_eq!(
            (event.id.as_str(), event.kind.as_str()),
            ("evt_1", "customer.created")
        );
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let header = signature_header("whsec_other", T, BODY);
        assert_eq!(
            verifier().verify(Some(&header), BODY),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let old = signature_header(SECRET, T - 301, BODY);
        assert_eq!(
            verifier().verify(Some(&old), BODY),
            Err(WebhookError::StaleTimestamp)
        );
        let future = signature_header(SECRET, T + 400, BODY);
        assert_eq!(
            verifier().verify(Some(&future), BODY),
            Err(WebhookError::StaleTimestamp)
        );
        let within = signature_header(SECRET, T - 200, BODY);
        assert_eq!(verifier().verify(Some(&within), BODY), Ok(()));
        let strict = verifier().tolerance(Duration::from_secs(5));
        assert_eq!(
            strict.verify(Some(&within), BODY),
            Err(WebhookError::StaleTimestamp)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in [
            "",
            "t=1740000000",
            &format!("v1={VECTOR}"),
            &format!("t=abc,v1={VECTOR}"),
            &format!("t=-1,v1={VECTOR}"),
            "t=1740000000,v1=zz",
            "t=1740000000,v1=abcd",
            &format!("t={T},t={T},v1={VECTOR}"),
            "garbage",
        ] {
            assert_eq!(
                verifier().verify(Some(header), BODY),
                Err(WebhookError::MalformedSignature),
                "{header:?}"
            );
        }
        assert_eq!(
            verifier().verify(None, BODY),
            Err(WebhookError::MissingSignature)
        );
    }

    #[test]
    fn uppercase_hex_and_unknown_schemes_are_tolerated() {
        // Found by fuzzing: the same signature bytes in uppercase hex, next to an
        // unknown scheme, after leading whitespace.
        let header = format!(
            "\n\nt={T},v1={},@v1={}",
            VECTOR.to_uppercase(),
            "00".repeat(32)
        );
        assert_eq!(verifier().verify(Some(&header), BODY), Ok(()));
    }

    #[test]
    fn a_body_changed_by_one_byte_is_refused() {
        let header = format!("t={T},v1={VECTOR}");
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            verifier().verify(Some(&header), &body),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn any_matching_v1_is_accepted_and_debug_hides_the_secret() {
        let header = format!("t={T},v1={},v1={VECTOR}", "00".repeat(32));
        assert_eq!(verifier().verify(Some(&header), BODY), Ok(()));
        assert!(!format!("{:?}", verifier()).contains("test_secret"));
    }
}
