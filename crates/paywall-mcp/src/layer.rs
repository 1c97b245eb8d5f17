//! The HTTP side: [`IdentifyLayer`] resolves the caller of every request to the MCP
//! endpoint once, before the MCP transport sees it, and answers refusals in HTTP (401
//! with `WWW-Authenticate`, so MCP clients' OAuth discovery works; 403; 503 with
//! `Retry-After`). Nothing is charged here: tool calls are priced one by one by
//! [`ToolPaywall::call_tool`](crate::ToolPaywall::call_tool).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use paywall::Paywall;
use tower::{Layer, Service};

/// Identifies callers in front of an MCP transport (rmcp's `StreamableHttpService`).
#[derive(Clone, Debug)]
pub struct IdentifyLayer {
    paywall: Paywall,
}

impl IdentifyLayer {
    pub(crate) fn new(paywall: Paywall) -> Self {
        Self { paywall }
    }
}

impl<S> Layer<S> for IdentifyLayer {
    type Service = Identify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Identify {
            inner,
            paywall: self.paywall.clone(),
        }
    }
}

/// The service [`IdentifyLayer`] makes: the request goes on with the caller's
/// [`Identity`](paywall::Identity) and [`Customer`](paywall::Customer) extensions (which
/// rmcp hands to tools inside the request's `http::request::Parts`), or is answered by
/// the paywall.
#[derive(Clone, Debug)]
pub struct Identify<S> {
    inner: S,
    paywall: Paywall,
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
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match paywall.identify_head(&mut parts).await {
                Ok(()) => {
                    let response = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(response.map(Either::Left))
                }
                Err(refusal) => Ok(refusal.map(|body| Either::Right(Full::new(body)))),
            }
        })
    }
}
