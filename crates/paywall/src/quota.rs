//! [`Quota`]: what a caller has left of a product, sent as the IETF RateLimit header
//! fields (draft-ietf-httpapi-ratelimit-headers) on admitted responses and 402s when
//! [`PaywallBuilder::ratelimit_headers`](crate::PaywallBuilder::ratelimit_headers) is on:
//!
//! * `RateLimit: "<product>";r=<units left after this request>;t=<seconds until reset>`
//!   (`t` only when the reset time is known);
//! * `RateLimit-Policy: "<product>";q=<allowance per period>;w=<period in seconds>`
//!   when the backend tells the allowance (`w` when it tells the period).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::backend::Limits;

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
    pub(crate) fn from_limits(product: &str, remaining: u64, info: &Limits) -> Self {
        Self {
            product: product.to_owned(),
            remaining,
            reset: info
                .resets_at
                .and_then(|at| at.duration_since(SystemTime::now()).ok()),
            allowance: info.allowance,
            period: info.period,
        }
    }

    /// The `RateLimit` value.
    pub fn ratelimit(&self) -> Option<HeaderValue> {
        // One allocation per value: the header takes the string's buffer as it is.
        let mut value = String::with_capacity(self.product.len() + 48);
        let _ = write!(value, "\"{}\";r={}", self.product, self.remaining);
        if let Some(reset) = self.reset {
            let _ = write!(value, ";t={}", seconds(reset));
        }
        HeaderValue::try_from(value).ok()
    }

    /// The `RateLimit-Policy` value, when the allowance is known.
    pub fn policy(&self) -> Option<HeaderValue> {
        let allowance = self.allowance?;
        let mut value = String::with_capacity(self.product.len() + 48);
        let _ = write!(value, "\"{}\";q={allowance}", self.product);
        if let Some(period) = self.period {
            let _ = write!(value, ";w={}", seconds(period));
        }
        HeaderValue::try_from(value).ok()
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
}
