//! What the in-process per-request benches (`allocs`, `instructions`) share: a billing
//! backend that answers at once and keeps nothing, a handler, warm requests, and the
//! paywall with the library's defaults or the quickstarts' settings.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use paywall::backend::{BackendError, BillingBackend, Limits, UsageEvent};
use paywall::recorder::RecorderConfig;
use paywall::{CustomerRef, Identity, IdentityResolver, Paywall};
use tower::{Service, ServiceExt};

/// Everyone is a customer with unlimited allowance; usage is acknowledged and dropped.
pub struct Discard;

impl BillingBackend for Discard {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        Ok(CustomerRef::new(format!("cus_{}", identity.external_ref)))
    }
    async fn check_limits(
        &self,
        _: &CustomerRef,
        _: &str,
        _: &str,
    ) -> Result<Limits, BackendError> {
        Ok(Limits::remaining(u64::MAX / 2))
    }
    async fn record_usage(&self, _events: &[UsageEvent]) -> Result<(), BackendError> {
        Ok(())
    }
}

/// The handler: a static `hello` with a `content-type`, as every framework's responses
/// have (so the quota fields go into a header table that exists, not one they create),
/// the same with and without the paywall.
pub async fn hello<B>(_: Request<B>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// A request carrying the credentials `auth` (a header's name and value).
pub fn request(auth: &(&'static str, String)) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/api/echo")
        .header(auth.0, auth.1.as_str())
        .body(Full::default())
        .unwrap_or_default()
}

/// `n` calls of `service`, each followed by a yield, as a server's connection task
/// yields between requests: the usage recorder's worker runs when its batch is due,
/// inside the measured calls, not after them.
pub async fn drive<S>(service: &S, auth: &(&'static str, String), n: u64)
where
    S: Service<Request<Full<Bytes>>> + Clone,
    S::Error: std::fmt::Debug,
{
    for _ in 0..n {
        let _ = service.clone().oneshot(request(auth)).await;
        tokio::task::yield_now().await;
    }
}

/// The paywall with the library's defaults, or with the quickstarts' settings
/// (`RateLimit` fields on every response, usage added up per batch).
pub fn paywall<R: IdentityResolver>(resolver: R, quickstart: bool) -> Option<Paywall> {
    let builder = Paywall::builder(resolver, Discard).limits_ttl(Duration::from_secs(3600));
    let builder = if quickstart {
        builder.ratelimit_headers(true).recorder(RecorderConfig {
            coalesce: true,
            ..RecorderConfig::default()
        })
    } else {
        builder
    };
    builder.build().ok()
}
