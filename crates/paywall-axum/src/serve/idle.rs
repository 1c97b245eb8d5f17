//! A connection's idle clock: [`Watched`] counts its socket's reads and writes, and
//! [`drive`] closes the connection gracefully once that count has not moved for the
//! idle timeout (or the server stops), then for good if the peer does not let go.
//!
//! The count is a plain counter, not a timestamp: a request costs no clock read here.
//! The watcher looks at it a few times per idle timeout, so an idle connection is closed
//! between one and one and a quarter idle timeouts after its last byte, never before.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto::UpgradeableConnection;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use super::ServeLimits;

/// How many times per idle timeout the watcher looks at a connection's activity.
const LOOKS_PER_IDLE_TIMEOUT: u32 = 4;

/// How many reads and writes a connection has made (wrapping).
#[derive(Default)]
pub(super) struct Activity {
    count: AtomicU64,
}

impl Activity {
    /// Only the connection's own task reads and writes its socket: a load and a store,
    /// no read-modify-write.
    fn touch(&self) {
        let count = self.count.load(Ordering::Relaxed);
        self.count.store(count.wrapping_add(1), Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// A TCP stream that notes its activity.
pub(super) struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    pub(super) fn new(stream: TcpStream) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity::default());
        let watched = Self {
            stream,
            activity: Arc::clone(&activity),
        };
        (watched, activity)
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, bytes);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The service every connection serves: the router behind the body deadline.
pub(super) type App = super::body::Deadline;

type Connection = UpgradeableConnection<
    'static,
    TokioIo<Watched>,
    TowerToHyperService<App>,
    hyper_util::rt::TokioExecutor,
>;

/// Serves `connection` until it ends, closing it gracefully when it has been idle for
/// `limits.idle_timeout` or when `stop` turns true, and for good when it has not ended
/// `limits.header_read_timeout` (idle) or `limits.shutdown_timeout` (stop) later.
pub(super) async fn drive(
    connection: Connection,
    activity: Arc<Activity>,
    limits: &ServeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut connection = std::pin::pin!(connection);
    let look_every = (limits.idle_timeout / LOOKS_PER_IDLE_TIMEOUT).max(Duration::from_millis(1));
    // The activity count last seen, and when it was first seen at that value: the
    // connection has been idle at least since then.
    let mut seen = activity.count();
    let mut quiet_since = Instant::now();
    // When a graceful close began, and how long it may take before the socket is dropped.
    let mut closing: Option<(Instant, Duration)> = None;
    loop {
        let tick = match closing {
            Some((since, grace)) => grace.saturating_sub(since.elapsed()),
            None => look_every.min(limits.idle_timeout.saturating_sub(quiet_since.elapsed())),
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    debug!(error = %err, "connection closed with an error");
                }
                return;
            }
            () = tokio::time::sleep(tick) => match closing {
                Some(_) => {
                    debug!("connection dropped: it did not close after a graceful close");
                    return;
                }
                None => {
                    let now = activity.count();
                    if now != seen {
                        seen = now;
                        quiet_since = Instant::now();
                    } else if quiet_since.elapsed() >= limits.idle_timeout {
                        debug!("connection idle: closing it");
                        connection.as_mut().graceful_shutdown();
                        closing = Some((Instant::now(), limits.header_read_timeout));
                    }
                }
            },
            changed = stop.changed(), if closing.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                    closing = Some((Instant::now(), limits.shutdown_timeout));
                }
            }
        }
    }
}
