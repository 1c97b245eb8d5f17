//! [`Quota`]: what a caller has left of a product, sent as the IETF RateLimit header
//! fields (draft-ietf-httpapi-ratelimit-headers) on admitted responses and 402s when
//! [`PaywallBuilder::ratelimit_headers`](crate::PaywallBuilder::ratelimit_headers) is on:
//!
//! * `RateLimit: "<product>";r=<units left after this request>;t=<seconds until reset>`
//!   (`t` only when the reset time is known);
//! * `RateLimit-Policy: "<product>";q=<allowance per period>;w=<period in seconds>`
//!   when the backend tells the allowance (`w` when it tells the period).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::engine::Answer;

/// The `RateLimit` header.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The `RateLimit-Policy` header.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// What a customer has left of a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// The product (a validated reference: no quotes or backslashes).
    pub product: String,
    /// Units left after this request.
    pub remaining: u64,
    /// Time until the allowance resets, when known.
    pub reset: Option<Duration>,
    /// Units per period, when the backend says.
    pub allowance: Option<u64>,
    /// The period's length, when the backend says.
    pub period: Option<Duration>,
}

/// Whole seconds, rounded up.
fn seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

impl Quota {
    pub(crate) fn from_answer(product: &str, remaining: u64, answer: &Answer) -> Self {
        Self {
            product: product.to_owned(),
            remaining,
            reset: answer
                .resets_at()
                .and_then(|at| at.duration_since(SystemTime::now()).ok()),
            allowance: answer.allowance(),
            period: answer.period(),
        }
    }

    /// The `RateLimit` value.
    pub fn ratelimit(&self) -> Option<HeaderValue> {
        ratelimit_value(&self.product, self.remaining, self.reset)
    }

    /// The `RateLimit-Policy` value, when the allowance is known.
    pub fn policy(&self) -> Option<HeaderValue> {
        policy_value(&self.product, self.allowance?, self.period)
    }

    /// Sets both headers on `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(value) = self.ratelimit() {
            headers.insert(RATELIMIT, value);
        }
        if let Some(value) = self.policy() {
            headers.insert(RATELIMIT_POLICY, value);
        }
    }
}

/// `"<product>";r=<remaining>[;t=<seconds>]`, in one allocation of its exact length:
/// its pieces copied into a buffer on the stack (the numbers written by `itoa`, not
/// through `fmt`: this runs on every admitted response), then into the value once.
pub(crate) fn ratelimit_value(
    product: &str,
    remaining: u64,
    reset: Option<Duration>,
) -> Option<HeaderValue> {
    const CAPACITY: usize = 160;
    let mut remaining_digits = itoa::Buffer::new();
    let mut reset_digits = itoa::Buffer::new();
    let (t, reset) = match reset {
        Some(reset) => (&b";t="[..], reset_digits.format(seconds(reset)).as_bytes()),
        None => (&b""[..], &b""[..]),
    };
    let pieces: [&[u8]; 6] = [
        b"\"",
        product.as_bytes(),
        b"\";r=",
        remaining_digits.format(remaining).as_bytes(),
        t,
        reset,
    ];
    let len: usize = pieces.iter().map(|piece| piece.len()).sum();
    if len > CAPACITY {
        // A product name too long for the stack buffer.
        return HeaderValue::from_bytes(&pieces.concat()).ok();
    }
    let mut buf = [0u8; CAPACITY];
    let mut at = 0;
    for piece in pieces {
        buf[at..at + piece.len()].copy_from_slice(piece);
        at += piece.len();
    }
    HeaderValue::from_bytes(&buf[..len]).ok()
}

/// `"<product>";q=<allowance>[;w=<seconds>]`.
fn policy_value(product: &str, allowance: u64, period: Option<Duration>) -> Option<HeaderValue> {
    let mut value = String::with_capacity(product.len() + 48);
    let _ = write!(value, "\"{product}\";q={allowance}");
    if let Some(period) = period {
        let _ = write!(value, ";w={}", seconds(period));
    }
    HeaderValue::try_from(value).ok()
}

/// A route's last `RateLimit-Policy` value, reused while the allowance and period it
/// was built from stay the same: every customer on one plan shares it, so an admitted
/// response builds no policy string.
#[derive(Default)]
pub(crate) struct PolicyCache(ArcSwapOption<CachedPolicy>);

struct CachedPolicy {
    allowance: u64,
    period: Option<Duration>,
    value: HeaderValue,
}

impl PolicyCache {
    /// The policy value of `product` for this allowance and period.
    pub(crate) fn value(
        &self,
        product: &str,
        allowance: u64,
        period: Option<Duration>,
    ) -> Option<HeaderValue> {
        if let Some(cached) = &*self.0.load() {
            if cached.allowance == allowance && cached.period == period {
                return Some(cached.value.clone());
            }
        }
        let value = policy_value(product, allowance, period)?;
        self.0.store(Some(Arc::new(CachedPolicy {
            allowance,
            period,
            value: value.clone(),
        })));
        Some(value)
    }
}

impl Clone for PolicyCache {
    fn clone(&self) -> Self {
        Self(ArcSwapOption::new(self.0.load_full()))
    }
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCache").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_as_the_draft_writes_them() {
        let quota = Quota {
            product: "prd_x".into(),
            remaining: 4,
            reset: Some(Duration::from_millis(3_599_001)),
            allowance: Some(5),
            period: Some(Duration::from_secs(86_400)),
        };
        let mut headers = HeaderMap::new();
        quota.apply(&mut headers);
        assert_eq!(headers[RATELIMIT], "\"prd_x\";r=4;t=3600");
        assert_eq!(headers[RATELIMIT_POLICY], "\"prd_x\";q=5;w=86400");
        let bare = Quota {
            reset: None,
            allowance: None,
            ..quota
        };
        let mut headers = HeaderMap::new();
        bare.apply(&mut headers);
        assert_eq!(headers[RATELIMIT], "\"prd_x\";r=4");
        assert!(headers.get(RATELIMIT_POLICY).is_none());
    }

    #[test]
    fn a_long_product_name_still_gets_its_field() {
        let product = "p".repeat(400);
        let value = ratelimit_value(&product, 7, Some(Duration::from_secs(60))).expect("value");
        assert_eq!(value, format!("\"{product}\";r=7;t=60").as_str());
        let short = ratelimit_value("prd_x", u64::MAX, None).expect("value");
        assert_eq!(short, format!("\"prd_x\";r={}", u64::MAX).as_str());
    }

    #[test]
    fn a_cached_policy_is_rebuilt_when_the_plan_changes() {
        let cache = PolicyCache::default();
        let day = Some(Duration::from_secs(86_400));
        let value = |allowance, period| cache.value("prd_x", allowance, period);
        assert_eq!(value(5, day).expect("value"), "\"prd_x\";q=5;w=86400");
        assert_eq!(value(5, day), value(5, day));
        assert_eq!(value(100, day).expect("value"), "\"prd_x\";q=100;w=86400");
        assert_eq!(value(100, None).expect("value"), "\"prd_x\";q=100");
        assert_eq!(value(5, day).expect("value"), "\"prd_x\";q=5;w=86400");
    }
}
