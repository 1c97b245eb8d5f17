//! [`HeaderResolver`]: the caller names themselves in a header. For tests only: any
//! client can claim any identity.

use http::request::Parts;
use http::HeaderName;

use crate::identity::{Identity, IdentityError, IdentityResolver};

/// Resolves the caller from a header (`x-user` by default): absent → no credentials
/// (401), not visible ASCII or empty → invalid credentials (401). An `x-user-email`
/// header, when present, becomes the identity's email.
#[derive(Clone, Debug)]
pub struct HeaderResolver {
    header: HeaderName,
}

impl Default for HeaderResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderResolver {
    /// Reads `x-user`.
    pub fn new() -> Self {
        Self::header(HeaderName::from_static("x-user"))
    }

    /// Reads `header` instead.
    pub fn header(header: HeaderName) -> Self {
        Self { header }
    }
}

impl IdentityResolver for HeaderResolver {
    async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        self.read(parts)
    }

    fn resolve_now(&self, parts: &Parts) -> Option<Result<Option<Identity>, IdentityError>> {
        Some(self.read(parts))
    }
}

impl HeaderResolver {
    /// The caller the header names: nothing here waits.
    fn read(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        let Some(value) = parts.headers.get(&self.header) else {
            return Ok(None);
        };
        let user = value
            .to_str()
            .ok()
            .filter(|user| !user.is_empty())
            .ok_or_else(|| {
                IdentityError::Invalid(format!("{} is not visible ASCII", self.header))
            })?;
        let mut identity = Identity::new(user);
        if let Some(email) = parts
            .headers
            .get("x-user-email")
            .and_then(|v| v.to_str().ok())
        {
            identity = identity.with_email(email);
        }
        Ok(Some(identity))
    }
}
