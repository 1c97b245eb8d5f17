//! Configuring the client: [`SolvaPayConfig`] and the redacted [`SecretKey`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use paywall::backend::Backoff;

/// SolvaPay's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.solvapay.com";

/// A SolvaPay secret key (`sk_...`). Never printed: its `Debug` and `Display` say
/// `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Arc<str>);

impl SecretKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(Arc::from(key.into()))
    }

    /// The key itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The client could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `SOLVAPAY_SECRET_KEY` is unset or empty.
    #[error("SOLVAPAY_SECRET_KEY is not set")]
    MissingKey,
    /// The key has characters that cannot go in a header.
    #[error("the SolvaPay secret key has characters that cannot be sent in a header")]
    InvalidKey,
    /// The base URL is not an absolute http(s) URL.
    #[error("invalid SolvaPay base URL {0:?}: expected an absolute http or https URL")]
    InvalidBaseUrl(String),
    /// A timeout or attempt count is zero.
    #[error("invalid setting {0}: must be greater than zero")]
    InvalidSetting(&'static str),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// How to reach SolvaPay and how hard to try.
///
/// ```
/// use std::time::Duration;
/// use paywall_solvapay::SolvaPayConfig;
///
/// let config = SolvaPayConfig::new("sk_test_123")
///     .base_url("http://127.0.0.1:4000")
///     .request_timeout(Duration::from_secs(2))
///     .deadline(Duration::from_secs(5))
///     .max_attempts(3);
/// assert!(!format!("{config:?}").contains("sk_test_123"));
/// ```
#[derive(Clone, Debug)]
pub struct SolvaPayConfig {
    pub(crate) key: SecretKey,
    pub(crate) base_url: String,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) deadline: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
}

impl SolvaPayConfig {
    /// The production API with `secret_key`: 5 s per request, 15 s per call in all,
    /// at most 4 attempts, backoff from 100 ms to 5 s.
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            key: SecretKey::new(secret_key),
            base_url: DEFAULT_BASE_URL.to_owned(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(15),
            max_attempts: 4,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }

    /// From `SOLVAPAY_SECRET_KEY` (required) and `SOLVAPAY_API_BASE_URL` (optional), the
    /// names SolvaPay's own SDK reads.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let key = lookup("SOLVAPAY_SECRET_KEY")
            .filter(|key| !key.is_empty())
            .ok_or(ConfigError::MissingKey)?;
        let mut config = Self::new(key);
        if let Some(url) = lookup("SOLVAPAY_API_BASE_URL").filter(|url| !url.is_empty()) {
            config.base_url = url;
        }
        Ok(config)
    }

    /// Another API base URL (a sandbox, the local dev server).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Longest wait for one HTTP exchange.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Longest wait to open a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest time one call may take, retries and waits included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Most attempts per call (1 = no retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Retry delays: full jitter from `initial`, doubling up to `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff::new(initial, max);
        self
    }

    pub(crate) fn validate(&self) -> Result<url::Url, ConfigError> {
        if self.key.expose().is_empty() {
            return Err(ConfigError::MissingKey);
        }
        if http::HeaderValue::from_str(&format!("Bearer {}", self.key.expose())).is_err() {
            return Err(ConfigError::InvalidKey);
        }
        for (name, value) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("deadline", self.deadline),
        ] {
            if value.is_zero() {
                return Err(ConfigError::InvalidSetting(name));
            }
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::InvalidSetting("max_attempts"));
        }
        let url = url::Url::parse(&self.base_url)
            .map_err(|_| ConfigError::InvalidBaseUrl(self.base_url.clone()))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(ConfigError::InvalidBaseUrl(self.base_url.clone()));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_match_solvapays_sdk() {
        let config = SolvaPayConfig::from_lookup(|name| match name {
            "SOLVAPAY_SECRET_KEY" => Some("sk_live_secret".into()),
            "SOLVAPAY_API_BASE_URL" => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .expect("config");
        assert_eq!(config.base_url, "http://127.0.0.1:9");
        assert_eq!(config.key.expose(), "sk_live_secret");
        assert!(!format!("{config:?}").contains("sk_live_secret"));
        assert_eq!(
            SolvaPayConfig::from_lookup(|_| None).err(),
            Some(ConfigError::MissingKey)
        );
        let default = SolvaPayConfig::from_lookup(|name| {
            (name == "SOLVAPAY_SECRET_KEY").then(|| "sk".into())
        })
        .expect("config");
        assert_eq!(default.base_url, DEFAULT_BASE_URL);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(
            SolvaPayConfig::new("sk")
                .base_url("ftp://x")
                .validate()
                .err(),
            Some(ConfigError::InvalidBaseUrl("ftp://x".into()))
        );
        assert_eq!(
            SolvaPayConfig::new("sk\nx").validate().err(),
            Some(ConfigError::InvalidKey)
        );
        assert_eq!(
            SolvaPayConfig::new("sk").max_attempts(0).validate().err(),
            Some(ConfigError::InvalidSetting("max_attempts"))
        );
    }
}
