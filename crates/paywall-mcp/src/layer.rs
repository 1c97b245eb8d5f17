//! The HTTP side: [`IdentifyLayer`] resolves the caller of every request to the MCP
//! endpoint once, before the MCP transport sees it, and answers refusals in HTTP (401
//! with `WWW-Authenticate`, naming the protected resource metadata when there is one, so
//! MCP clients' OAuth discovery works; 503 with `Retry-After` when the identity provider
//! cannot be reached). The billing backend is not asked here: a caller whose token is
//! valid connects, lists tools and calls free tools while billing is down, and its
//! customer is ensured at its first priced call by
//! [`ToolPaywall::call_tool`](crate::ToolPaywall::call_tool).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use paywall::Paywall;
use tower::{Layer, Service};

use crate::resource::ProtectedResource;

/// Identifies callers in front of an MCP transport (rmcp's `StreamableHttpService`).
#[derive(Clone, Debug)]
pub struct IdentifyLayer {
    paywall: Paywall,
    resource: Option<Arc<ProtectedResource>>,
}

impl IdentifyLayer {
    pub(crate) fn new(paywall: Paywall, resource: Option<Arc<ProtectedResource>>) -> Self {
        Self { paywall, resource }
    }
}

impl<S> Layer<S> for IdentifyLayer {
    type Service = Identify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Identify {
            inner,
            paywall: self.paywall.clone(),
            resource: self.resource.clone(),
        }
    }
}

/// The service [`IdentifyLayer`] makes: the request goes on with the caller's
/// [`Identity`](paywall::Identity) extension (which rmcp hands to tools inside the
/// request's `http::request::Parts`), or is answered by the paywall.
#[derive(Clone, Debug)]
pub struct Identify<S> {
    inner: S,
    paywall: Paywall,
    resource: Option<Arc<ProtectedResource>>,
}

type Answer<B> = Response<Either<B, Full<Bytes>>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Identify<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = Answer<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone is not ready yet; the ready one goes with this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let paywall = self.paywall.clone();
        let resource = self.resource.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match paywall.authenticate_head(&mut parts).await {
                Ok(()) => {
                    let response = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(response.map(Either::Left))
                }
                Err(mut refusal) => {
                    if let Some(resource) = &resource {
                        name_metadata(&mut refusal, resource);
                    }
                    Ok(refusal.map(|body| Either::Right(Full::new(body))))
                }
            }
        })
    }
}

/// Names the protected resource metadata in a 401's challenge (RFC 9728 §5.1).
fn name_metadata(refusal: &mut Response<Bytes>, resource: &ProtectedResource) {
    if refusal.status() != StatusCode::UNAUTHORIZED {
        return;
    }
    let challenge = refusal
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("Bearer");
    if let Ok(value) = HeaderValue::from_str(&resource.challenge(challenge)) {
        refusal.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
}
