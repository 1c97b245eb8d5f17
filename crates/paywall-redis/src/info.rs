//! The backend's last answer, stored with the budget for 402 bodies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paywall::backend::Limits;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Info {
    within_limits: bool,
    remaining: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkout_url: Option<String>,
    #[serde(default)]
    activation_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirmation_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resets_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowance: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period_ms: Option<u64>,
}

pub(crate) fn encode(limits: &Limits) -> String {
    let info = Info {
        within_limits: limits.within_limits,
        remaining: limits.remaining,
        checkout_url: limits.checkout_url.clone(),
        activation_required: limits.activation_required,
        confirmation_url: limits.confirmation_url.clone(),
        plan: limits.plan.clone(),
        resets_at_ms: limits
            .resets_at
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .and_then(|since| u64::try_from(since.as_millis()).ok()),
        allowance: limits.allowance,
        period_ms: limits
            .period
            .and_then(|period| u64::try_from(period.as_millis()).ok()),
    };
    serde_json::to_string(&info).unwrap_or_default()
}

pub(crate) fn decode(text: &str) -> Option<Limits> {
    let info: Info = serde_json::from_str(text).ok()?;
    Some(Limits {
        within_limits: info.within_limits,
        remaining: info.remaining,
        checkout_url: info.checkout_url,
        activation_required: info.activation_required,
        confirmation_url: info.confirmation_url,
        plan: info.plan,
        resets_at: info
            .resets_at_ms
            .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))),
        allowance: info.allowance,
        period: info.period_ms.map(Duration::from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_survive_the_round_trip_to_millisecond_precision() {
        let limits = Limits {
            within_limits: false,
            remaining: 0,
            checkout_url: Some("https://pay.example/c/1".into()),
            activation_required: true,
            confirmation_url: Some("https://pay.example/a/1".into()),
            plan: Some("pln_free".into()),
            resets_at: Some(UNIX_EPOCH + Duration::from_millis(1_800_000_000_123)),
            allowance: Some(5),
            period: Some(Duration::from_secs(86_400)),
        };
        assert_eq!(decode(&encode(&limits)), Some(limits));
        assert_eq!(decode("not json"), None);
    }
}
