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
use crate::sessions::{Refused, Sessions, SESSION_HEADER};

/// Identifies callers in front of an MCP transport (rmcp's `StreamableHttpService`),
/// and binds each MCP session to the identity that opened it.
#[derive(Clone, Debug)]
pub struct IdentifyLayer {
    paywall: Paywall,
    resource: Option<Arc<ProtectedResource>>,
    sessions: Arc<Sessions>,
}

impl IdentifyLayer {
    pub(crate) fn new(
        paywall: Paywall,
        resource: Option<Arc<ProtectedResource>>,
        sessions: Arc<Sessions>,
    ) -> Self {
        Self {
            paywall,
            resource,
            sessions,
        }
    }
}

impl<S> Layer<S> for IdentifyLayer {
    type Service = Identify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Identify {
            inner,
            paywall: self.paywall.clone(),
            resource: self.resource.clone(),
            sessions: Arc::clone(&self.sessions),
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
    sessions: Arc<Sessions>,
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
        let sessions = Arc::clone(&self.sessions);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            if let Err(mut refusal) = paywall.authenticate_head(&mut parts).await {
                if let Some(resource) = &resource {
                    name_metadata(&mut refusal, resource);
                }
                return Ok(refusal.map(|body| Either::Right(Full::new(body))));
            }
            let caller = parts
                .extensions
                .get::<paywall::Identity>()
                .map(|identity| identity.external_ref.clone())
                .unwrap_or_default();
            let session = parts
                .headers
                .get(SESSION_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let method = parts.method.clone();
            let opening = match &session {
                Some(id) => {
                    if let Err(refused) = sessions.check(id, &caller) {
                        return Ok(session_refusal(refused));
                    }
                    false
                }
                None if method == http::Method::POST => {
                    if let Err(refused) = sessions.reserve(&caller) {
                        return Ok(session_refusal(refused));
                    }
                    true
                }
                None => false,
            };
            let response = inner.call(Request::from_parts(parts, body)).await;
            if opening {
                let opened = response.as_ref().ok().and_then(|response| {
                    response
                        .headers()
                        .get(SESSION_HEADER)
                        .and_then(|value| value.to_str().ok())
                        .filter(|_| response.status().is_success())
                });
                match opened {
                    Some(id) => sessions.opened(id, &caller),
                    None => sessions.not_opened(&caller),
                }
            }
            if let (Some(id), Ok(response)) = (&session, &response) {
                if method == http::Method::DELETE && response.status().is_success() {
                    sessions.closed(id);
                }
            }
            Ok(response?.map(Either::Left))
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

/// A session request refused: 404 for a session that is not the caller's (the answer
/// after which MCP clients open a new one), 429 or 503 for one session too many.
fn session_refusal<B>(refused: Refused) -> Answer<B> {
    let (status, kind, message) = match refused {
        Refused::NotFound => (
            StatusCode::NOT_FOUND,
            "session_not_found",
            "No such session for this caller: open a new one.",
        ),
        Refused::TooManyOfCaller => (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sessions",
            "This caller holds as many MCP sessions as it may: close one (DELETE) or let one expire.",
        ),
        Refused::TooMany => (
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_sessions",
            "The server holds as many MCP sessions as it may: retry later.",
        ),
    };
    let body = paywall::adapter::problem_body(status, kind, message).to_string();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(paywall::adapter::PROBLEM_JSON),
    );
    if status != StatusCode::NOT_FOUND {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    response
}
