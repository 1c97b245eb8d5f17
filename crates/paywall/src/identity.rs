//! Who is calling: the [`Identity`] of a request and the [`IdentityResolver`] trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;

use crate::engine::Recall;

/// A boxed, `Send` future: what the type-erased resolver and backend return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The caller of a protected request, as the application knows them.
///
/// `external_ref` is the stable identifier the billing customer is keyed by (a JWT `sub`,
/// an organisation id, an API-key owner). `name` is passed to the billing backend when
/// it creates the customer; `email` is passed only when `email_verified` says the
/// identity provider verified it. An email is an attribute many IdPs let users assert
/// freely: an unverified one must never decide which customer a caller is billed as.
///
/// Two identities are equal when these four fields are; a [`Recall`] attached with
/// [`with_recall`](Self::with_recall) does not take part.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The stable, application-owned id of the caller.
    pub external_ref: String,
    /// The caller's email address, when known.
    pub email: Option<String>,
    /// Whether the identity provider verified `email` (a JWT's `email_verified: true`;
    /// a custom resolver says so explicitly). Unverified emails never reach the
    /// billing backend.
    pub email_verified: bool,
    /// The caller's display name, when known.
    pub name: Option<String>,
    /// Where the paywall remembers this caller's customer, when the resolver keeps
    /// this identity with a verified credential.
    recall: Option<Recall>,
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.external_ref == other.external_ref
            && self.email == other.email
            && self.email_verified == other.email_verified
            && self.name == other.name
    }
}

impl Eq for Identity {}

impl Identity {
    /// An identity with only an external reference.
    pub fn new(external_ref: impl Into<String>) -> Self {
        Self {
            external_ref: external_ref.into(),
            email: None,
            email_verified: false,
            name: None,
            recall: None,
        }
    }

    /// Sets an email address the identity provider has not verified: kept for the
    /// application, never sent to the billing backend.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self.email_verified = false;
        self
    }

    /// Sets an email address the identity provider has verified: the billing backend
    /// may use it to create the customer, or to adopt a customer that has it and no
    /// external reference yet.
    pub fn with_verified_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self.email_verified = true;
        self
    }

    /// The email the billing backend may use: `Some` only when verified.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }

    /// Sets the display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Attaches the [`Recall`] of the credential this identity was verified from: for
    /// resolvers that keep the identity of each credential they have verified, so that
    /// the paywall finds the caller's customer through it.
    pub fn with_recall(mut self, recall: Recall) -> Self {
        self.recall = Some(recall);
        self
    }

    /// The [`Recall`] attached with [`with_recall`](Self::with_recall).
    pub(crate) fn recall(&self) -> Option<&Recall> {
        self.recall.as_ref()
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
    /// could be fetched). Answered 503, with `Retry-After: retry_after` when the
    /// resolver knows when it will try again (the paywall's failure back-off otherwise).
    #[error("identity provider unavailable: {reason}")]
    Unavailable {
        /// Why, for the logs.
        reason: String,
        /// When a retry may succeed, if the resolver knows.
        retry_after: Option<std::time::Duration>,
    },
}

impl IdentityError {
    /// [`IdentityError::Unavailable`] without a known retry time.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        IdentityError::Unavailable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// [`IdentityError::Unavailable`], worth retrying after `retry_after`.
    pub fn unavailable_for(reason: impl Into<String>, retry_after: std::time::Duration) -> Self {
        IdentityError::Unavailable {
            reason: reason.into(),
            retry_after: Some(retry_after),
        }
    }
}

/// Resolves the caller of a request from its head.
///
/// Return `Ok(None)` when the request carries no credentials at all (answered 401),
/// `Err(IdentityError::Invalid)` when it carries bad ones (also 401), and
/// `Err(IdentityError::Unavailable)` when the resolver cannot decide right now (503).
///
/// Any type can implement it: a JWT verifier, a session-cookie lookup, an API-key table.
/// One that caches what it has verified is fastest when it also answers
/// [`resolve_now`](Self::resolve_now) for a cached credential and keeps a [`Recall`]
/// with it ([`Identity::with_recall`]): a warm request is then decided inside the
/// service's `call`, with one cache lookup, the resolver's.
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

    /// The caller, when the resolver can tell without waiting (no credentials, bad
    /// ones, or a token it has already verified): the answer
    /// [`resolve`](Self::resolve) would give. `None`: it cannot tell now, and the
    /// paywall awaits `resolve`.
    ///
    /// Optional (the default is `None`). A resolver that answers here lets the tower
    /// layer decide a warm request inside `Service::call`, without allocating a future
    /// for it.
    fn resolve_now(&self, parts: &Parts) -> Option<Result<Option<Identity>, IdentityError>> {
        let _ = parts;
        None
    }
}

impl<T: IdentityResolver> IdentityResolver for Arc<T> {
    fn resolve(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Option<Identity>, IdentityError>> + Send {
        T::resolve(self, parts)
    }

    fn resolve_now(&self, parts: &Parts) -> Option<Result<Option<Identity>, IdentityError>> {
        T::resolve_now(self, parts)
    }
}

/// The object-safe form of [`IdentityResolver`] the engine stores.
pub(crate) trait DynResolver: Send + Sync {
    fn resolve_boxed<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<Identity>, IdentityError>>;

    fn resolve_now(&self, parts: &Parts) -> Option<Result<Option<Identity>, IdentityError>>;
}

impl<T: IdentityResolver> DynResolver for T {
    fn resolve_boxed<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<Identity>, IdentityError>> {
        Box::pin(self.resolve(parts))
    }

    fn resolve_now(&self, parts: &Parts) -> Option<Result<Option<Identity>, IdentityError>> {
        IdentityResolver::resolve_now(self, parts)
    }
}
