//! [`ConfigError`]: what is wrong with a paywall's or a route's configuration, raised
//! when the paywall or a layer is built, never at the first request.

use crate::charge::MAX_UNITS;

/// The paywall or a route was configured wrongly. Raised when the paywall or a layer is
/// built, never at the first request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The product reference is empty, too long or has characters outside visible ASCII.
    #[error("invalid product reference {0:?}: expected 1 to 128 visible ASCII characters")]
    InvalidProduct(String),
    /// The meter name is empty, too long or has characters outside visible ASCII.
    #[error("invalid meter name {0:?}: expected 1 to 128 visible ASCII characters")]
    InvalidMeter(String),
    /// The cost is zero or above [`MAX_UNITS`].
    #[error("invalid cost of {0} units: expected 1 to {MAX_UNITS}")]
    InvalidUnits(u64),
    /// A setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The builder method.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The paywall was built outside a Tokio runtime (its usage recorder is a task).
    #[error("the paywall must be built inside a Tokio runtime: its usage recorder runs as a task")]
    NoRuntime,
}
