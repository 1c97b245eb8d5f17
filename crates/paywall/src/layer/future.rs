//! [`ResponseFuture`]: what [`PaywallService`](super::PaywallService) returns. A warm
//! request was decided in `call`, so its future is the inner service's future and the
//! admission to settle with its status; a refusal decided there is its response. A
//! decision that has to wait (a new caller, ensuring a customer, a refresh, a 402's
//! checkout link) is one boxed future, which ends with the inner service called, and
//! then the request goes on as a warm one. Storing usage in an outbox before the
//! response goes out is the one wait after the handler, boxed too.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;

use crate::body::PaywallBody;
use crate::engine::Admission;

/// A decision that waits: the inner service's future and the admission, or the
/// refusal's response.
pub(super) type Deciding<F> =
    Pin<Box<dyn Future<Output = Result<(F, Admission), Response<Bytes>>> + Send>>;

/// The response once its usage is stored in the outbox.
type Finishing<B, E> = Pin<Box<dyn Future<Output = Result<Response<PaywallBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of [`PaywallService`](super::PaywallService).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        /// Deciding, in a box.
        Deciding { future: Deciding<F> },
        /// Admitted: the inner service's future; then the admission is settled with
        /// the response's status (dropped unsettled, it gives its units back).
        Admitted {
            #[pin]
            inner: F,
            admission: Option<Admission>,
        },
        /// Refused in `call`: the response to send.
        Refused { response: Option<Response<Bytes>> },
        /// Storing the admitted request's usage in the outbox.
        Finishing { future: Finishing<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(super) fn admitted(inner: F, admission: Admission) -> Self {
        Self {
            state: State::Admitted {
                inner,
                admission: Some(admission),
            },
        }
    }

    pub(super) fn refused(response: Response<Bytes>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    pub(super) fn deciding(future: Deciding<F>) -> Self {
        Self {
            state: State::Deciding { future },
        }
    }

    /// The size of the boxed decision, when this request waits for one.
    #[cfg(test)]
    pub(super) fn boxed_size(&self) -> Option<usize> {
        match &self.state {
            State::Deciding { future } => Some(std::mem::size_of_val(&**future)),
            _ => None,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Send + 'static,
    E: 'static,
{
    type Output = Result<Response<PaywallBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Deciding { future } => match ready!(future.as_mut().poll(cx)) {
                    Ok((inner, admission)) => state.set(State::Admitted {
                        inner,
                        admission: Some(admission),
                    }),
                    Err(refusal) => return Poll::Ready(Ok(refusal.map(PaywallBody::full))),
                },
                StateProj::Admitted { inner, admission } => {
                    let result = ready!(inner.poll(cx));
                    // On error the admission is dropped here and its units given back.
                    let admission = admission.take();
                    let mut response = result?;
                    let Some(admission) = admission else {
                        // Polled again after completing: the inner future has answered.
                        return Poll::Ready(Ok(response.map(|body| PaywallBody::new(body, None))));
                    };
                    admission.apply_quota(response.headers_mut());
                    match admission.finish_head_now(response.status()) {
                        Ok(settlement) => {
                            return Poll::Ready(Ok(
                                response.map(|body| PaywallBody::new(body, settlement))
                            ));
                        }
                        Err(admission) => {
                            // Its usage is stored in the outbox before the response goes.
                            let response = response.map(|body| PaywallBody::new(body, None));
                            let future: Finishing<B, E> = Box::pin(async move {
                                admission.store_and_record().await;
                                Ok(response)
                            });
                            state.set(State::Finishing { future });
                        }
                    }
                }
                StateProj::Refused { response } => {
                    // As any future's, polling after completion is a caller's bug.
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(PaywallBody::full)));
                }
                StateProj::Finishing { future } => return future.as_mut().poll(cx),
            }
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Deciding { .. } => "deciding",
            State::Admitted { .. } => "admitted",
            State::Refused { .. } => "refused",
            State::Finishing { .. } => "finishing",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
