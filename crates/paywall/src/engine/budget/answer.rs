//! [`Answer`]: what a budget keeps of the backend's last limits answer, and no more.
//!
//! A budget is kept per (customer, product, meter), so every byte here is paid once per
//! cached user. The units left are the budget's own counters, not this; what stays is
//! what the quota fields read on every admitted response (the reset time, the
//! allowance and its period), inline, and what only a 402 or an account view reads
//! (the links and the plan's name), boxed and absent when the backend sent none.

use std::time::{Duration, SystemTime};

use crate::backend::Limits;

/// The parts of a [`Limits`] answer a budget keeps: 56 bytes inline, where the whole
/// answer took a 160-byte allocation of its own.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    resets_at: Option<SystemTime>,
    period: Option<Duration>,
    /// Units per period, when `has_allowance` (an `Option<u64>` would take 16 bytes).
    allowance: u64,
    has_allowance: bool,
    within_limits: bool,
    activation_required: bool,
    terms: Option<Box<Terms>>,
}

/// The strings of an answer: where to pay or confirm, and the plan's name.
#[derive(Debug)]
struct Terms {
    checkout_url: Option<String>,
    confirmation_url: Option<String>,
    plan: Option<String>,
}

impl From<Limits> for Answer {
    fn from(limits: Limits) -> Self {
        let Limits {
            within_limits,
            remaining: _,
            checkout_url,
            activation_required,
            confirmation_url,
            plan,
            resets_at,
            allowance,
            period,
        } = limits;
        let terms =
            (checkout_url.is_some() || confirmation_url.is_some() || plan.is_some()).then(|| {
                Box::new(Terms {
                    checkout_url,
                    confirmation_url,
                    plan,
                })
            });
        Self {
            resets_at,
            period,
            allowance: allowance.unwrap_or(0),
            has_allowance: allowance.is_some(),
            within_limits,
            activation_required,
            terms,
        }
    }
}

impl Answer {
    /// When the allowance resets, when the backend said.
    pub(crate) fn resets_at(&self) -> Option<SystemTime> {
        self.resets_at
    }

    /// Units per period, when the backend said.
    pub(crate) fn allowance(&self) -> Option<u64> {
        self.has_allowance.then_some(self.allowance)
    }

    /// The period's length, when the backend said.
    pub(crate) fn period(&self) -> Option<Duration> {
        self.period
    }

    pub(crate) fn activation_required(&self) -> bool {
        self.activation_required
    }

    pub(crate) fn checkout_url(&self) -> Option<&str> {
        self.terms.as_ref()?.checkout_url.as_deref()
    }

    pub(crate) fn confirmation_url(&self) -> Option<&str> {
        self.terms.as_ref()?.confirmation_url.as_deref()
    }

    pub(crate) fn plan(&self) -> Option<&str> {
        self.terms.as_ref()?.plan.as_deref()
    }

    /// The answer again, with `remaining` as the budget counts it now.
    pub(crate) fn to_limits(&self, remaining: u64) -> Limits {
        Limits {
            within_limits: self.within_limits,
            remaining,
            checkout_url: self.checkout_url().map(str::to_owned),
            activation_required: self.activation_required,
            confirmation_url: self.confirmation_url().map(str::to_owned),
            plan: self.plan().map(str::to_owned),
            resets_at: self.resets_at,
            allowance: self.allowance(),
            period: self.period,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_keeps_every_field_a_402_or_an_account_view_reads() {
        let limits = Limits {
            within_limits: false,
            remaining: 0,
            checkout_url: Some("https://pay.example/c".into()),
            activation_required: true,
            confirmation_url: Some("https://pay.example/confirm".into()),
            plan: Some("Pro".into()),
            resets_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            allowance: Some(0),
            period: Some(Duration::from_secs(86_400)),
        };
        let answer = Answer::from(limits.clone());
        assert_eq!(answer.to_limits(0), limits);
        assert_eq!(
            answer.allowance(),
            Some(0),
            "an allowance of 0 is an allowance"
        );
        let plain = Answer::from(Limits::remaining(7));
        assert!(plain.terms.is_none(), "nothing boxed without strings");
        assert_eq!(plain.allowance(), None);
        assert_eq!(plain.to_limits(7), Limits::remaining(7));
    }

    #[test]
    fn an_answer_stays_within_56_bytes() {
        assert!(std::mem::size_of::<Answer>() <= 56);
    }
}
