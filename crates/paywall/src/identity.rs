//! Who is calling: the [`Identity`] of a request and the [`IdentityResolver`] trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;

/// A boxed, `Send` future: what the type-erased resolver and backend return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The caller of a protected request, as the application knows them.
///
/// `external_ref` is the stable identifier the billing customer is keyed by (a JWT `sub`,
/// an organisation id, an API-key owner). `email` and `name` are passed to the billing
/// backend when it creates the customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The stable, application-owned id of the caller.
    pub external_ref: String,
    /// The caller's email address, when known.
    pub email: Option<String>,
    /// The caller's display name, when known.
    pub name: Option<String>,
}

impl Identity {
    /// An identity with only an external reference.
    pub fn new(external_ref: impl Into<String>) -> Self {
        Self {
            external_ref: external_ref.into(),
            email: None,
            name: None,
        }
    }

    /// Sets the email address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Why an identity could not be resolved.
///
/// The text of these errors is logged, never sent to the client: the paywall answers
/// [`Invalid`](IdentityError::Invalid) with a generic 401 and
/// [`Unavailable`](IdentityError::Unavailable) with a 503.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Credentials were presented but are not acceptable (bad signature, expired,
    /// malformed, ambiguous). Answered 401.
    #[error("invalid credentials: {0}")]
    Invalid(String),
    /// The identity provider could not be consulted (for example no verification key
    /// could be fetched). Answered 503.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

/// Resolves the caller of a request from its head.
///
/// Return `Ok(None)` when the request carries no credentials at all (answered 401),
/// `Err(IdentityError::Invalid)` when it carries bad ones (also 401), and
/// `Err(IdentityError::Unavailable)` when the resolver cannot decide right now (503).
///
/// Any type can implement it: a JWT verifier, a session-cookie lookup, an API-key table.
///
/// ```
/// use paywall::{Identity, IdentityError, IdentityResolver};
///
/// /// Callers identify with `x-api-key: <owner>` (a toy scheme for the example).
/// struct ApiKeyOwner;
///
/// impl IdentityResolver for ApiKeyOwner {
///     async fn resolve(&self, parts: &http::request::Parts) -> Result<Option<Identity>, IdentityError> {
///         let Some(value) = parts.headers.get("x-api-key") else { return Ok(None) };
///         let owner = value
///             .to_str()
///             .map_err(|_| IdentityError::Invalid("x-api-key is not visible ASCII".into()))?;
///         Ok(Some(Identity::new(owner)))
///     }
/// }
/// ```
pub trait IdentityResolver: Send + Sync + 'static {
    /// Resolves the caller of the request whose head is `parts`.
    fn resolve(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Option<Identity>, IdentityError>> + Send;
}

impl<T: IdentityResolver> IdentityResolver for Arc<T> {
    fn resolve(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Option<Identity>, IdentityError>> + Send {
        T::resolve(self, parts)
    }
}

/// The object-safe form of [`IdentityResolver`] the engine stores.
pub(crate) trait DynResolver: Send + Sync {
    fn resolve_boxed<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<Identity>, IdentityError>>;
}

impl<T: IdentityResolver> DynResolver for T {
    fn resolve_boxed<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<Identity>, IdentityError>> {
        Box::pin(self.resolve(parts))
    }
}
