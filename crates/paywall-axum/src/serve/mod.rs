//! [`serve`]: axum's server with the limits a public API needs, which `axum::serve`
//! does not set: a deadline for a connection's first byte and for each request's header
//! section (against clients that connect and send nothing, or headers a byte at a
//! time), an idle timeout for every connection, HTTP/1 and HTTP/2 alike (HTTP/2 pings
//! too), a deadline for each whole request body, and a cap on open connections kept under the process's
//! file-descriptor limit, each slot released when its connection closes or idles out;
//! with graceful shutdown.

mod body;
mod idle;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, warn};

/// How long slow or idle clients may hold the server.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    /// A client must send its first byte, and each request's whole header section,
    /// within this time, also when a kept-alive connection waits for its next request
    /// (default 10 s). An HTTP/2 peer must answer a ping within it too.
    pub header_read_timeout: Duration,
    /// A connection that reads and writes nothing for this long is closed, gracefully
    /// (in-flight requests finish), whatever its protocol (default 60 s).
    pub idle_timeout: Duration,
    /// How often an HTTP/2 connection is pinged (default 20 s).
    pub http2_keep_alive_interval: Duration,
    /// A request body must have arrived whole within this time from the request's
    /// arrival, however steadily it trickles (default 30 s).
    pub body_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog (default: the
    /// process's file-descriptor limit less 64, at most 10,000; 1,024 when unknown).
    pub max_connections: usize,
    /// At shutdown, how long open connections may finish (default 30 s).
    pub shutdown_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_keep_alive_interval: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Below the soft limit on open files, leaving room for the process's own files and
/// its connections to the billing backend.
fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<usize>().ok())
        });
    match soft {
        Some(files) => files.saturating_sub(64).clamp(16, 10_000),
        None => 1024,
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes, then lets
/// open connections finish (at most `limits.shutdown_timeout`).
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// use paywall_axum::{ServeLimits, serve, shutdown_signal};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// serve(listener, app, ServeLimits::default(), shutdown_signal()).await?;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let app = body::Deadline {
        router,
        timeout: limits.body_timeout,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.http2_keep_alive_interval))
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let max_connections = limits.max_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, say: wait a moment rather than spin.
                warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (builder, app, limits, stop) = (
            Arc::clone(&builder),
            app.clone(),
            limits.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            // A client that sends nothing never reaches hyper (whose protocol detection
            // would wait for it forever): its first byte is due like its headers.
            let mut first = [0u8; 1];
            match tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => {
                    debug!("connection closed before its first byte");
                    drop(slot);
                    return;
                }
            }
            let (stream, activity) = idle::Watched::new(stream);
            let service = TowerToHyperService::new(app);
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            idle::drive(connection, activity, &limits, stop).await;
            drop(slot);
        });
    }
    let _ = stopping.send(true);
    // Every connection holds a slot until it ends: all slots back means all closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        warn!("open connections did not finish within the shutdown timeout");
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM: pass it to `axum::serve(..).with_graceful_shutdown`,
/// then call [`Paywall::shutdown`](paywall::Paywall::shutdown) to flush usage.
///
/// ```no_run
/// # async fn run(app: axum::Router, paywall: paywall::Paywall) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app)
///     .with_graceful_shutdown(paywall_axum::shutdown_signal())
///     .await?;
/// paywall.shutdown(std::time::Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
