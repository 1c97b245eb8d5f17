//! [`PaywallBody`]: the body of every response through the tower layer. It passes the
//! handler's body through untouched, carries the paywall's own rejections, and, on a
//! route priced by consumption, settles the request's usage when the body ends or is
//! dropped (a client that disconnects mid-stream pays for what it received).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::engine::Settlement;

pin_project! {
    /// The response body of [`PaywallService`](crate::layer::PaywallService).
    pub struct PaywallBody<B> {
        #[pin]
        inner: Option<B>,
        rejection: Option<Bytes>,
        settlement: Option<Settlement>,
    }
}

impl<B> PaywallBody<B> {
    /// The handler's body, settling `settlement` (if any) when it ends or is dropped.
    pub fn new(body: B, settlement: Option<Settlement>) -> Self {
        Self {
            inner: Some(body),
            rejection: None,
            settlement,
        }
    }

    /// A body of the paywall's own (a rejection).
    pub fn full(bytes: Bytes) -> Self {
        Self {
            inner: None,
            rejection: Some(bytes),
            settlement: None,
        }
    }
}

impl<B> std::fmt::Debug for PaywallBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaywallBody")
            .field("rejection", &self.rejection.is_some())
            .field("settles", &self.settlement.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Body for PaywallBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(
                this.rejection
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            );
        };
        let frame = std::task::ready!(inner.poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            // The end, or an error: settle now rather than when the body is dropped.
            if let Some(settlement) = this.settlement.take() {
                settlement.complete();
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.rejection.as_ref().is_none_or(Bytes::is_empty),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(self.rejection.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
