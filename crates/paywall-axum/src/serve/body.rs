//! A deadline for a whole request body, not per chunk: [`Deadline`] gives every
//! request's body [`DeadlineBody`], which fails once the body has taken longer than the
//! body timeout in all, however steadily it trickles.

use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// The error a body past its deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within its deadline")]
pub(super) struct BodyDeadline;

pin_project! {
    /// A request body that fails once its deadline has passed. The timer is made the
    /// first time the body waits for data: a request whose body is never read, or
    /// arrives whole, costs no timer.
    pub(super) struct DeadlineBody {
        #[pin]
        inner: Incoming,
        deadline: Instant,
        timer: Option<Pin<Box<Sleep>>>,
        expired: bool,
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = *this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            *this.expired = true;
            return Poll::Ready(Some(Err(BodyDeadline.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The router, with every request body under a deadline counted from the request's
/// arrival.
#[derive(Clone)]
pub(super) struct Deadline {
    pub(super) router: Router,
    pub(super) timeout: Duration,
}

impl tower::Service<http::Request<Incoming>> for Deadline {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = <Router as tower::Service<http::Request<DeadlineBody>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<DeadlineBody>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        // As `tokio::time::sleep` does: a timeout past the clock's range is 30 years.
        let now = Instant::now();
        let deadline = now
            .checked_add(self.timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        let request = request.map(|inner| DeadlineBody {
            inner,
            deadline,
            timer: None,
            expired: false,
        });
        self.router.call(request)
    }
}
