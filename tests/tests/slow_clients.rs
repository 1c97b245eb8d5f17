//! Servers that survive slow clients: with `paywall_axum::serve`, clients that send
//! half a header section, or a body that stalls, are cut off after the limits, and a
//! legitimate request is served meanwhile even when the slow ones fill every slot.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use paywall_axum::{serve, ServeLimits};
use paywall_tests::*;
use quickstart_axum as quickstart;

const SLOW_CLIENTS: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legitimate_request_is_served_while_250_slow_clients_hold_connections() {
    let listener = loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let addr = listener.local_addr().expect("addr");
    let app = quickstart::build(&quickstart_config(5), &base).expect("build");
    let limits = ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(500),
        // Fewer slots than slow clients: without the header timeout nothing else
        // would ever be accepted.
        max_connections: 100,
        ..ServeLimits::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app.router.clone(), limits, async {
        let _ = stopped.await;
    }));

    // Slow clients: half a header section each, then nothing.
    let slow: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..SLOW_CLIENTS)
            .map(|_| {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream
                    .write_all(b"GET /api/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    .expect("write");
                stream
            })
            .collect()
    })
    .await
    .expect("slow clients");

    let started = Instant::now();
    let answer = reqwest::Client::new()
        .get(format!("{base}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("served within 2 s");
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));

    // Every slow client was cut off: its socket reaches EOF or a reset (after a 408,
    // if the server sends one), never a read timeout.
    let closed = tokio::task::spawn_blocking(move || {
        slow.into_iter()
            .filter(|stream| {
                closed_within(
                    &mut stream.try_clone().expect("clone"),
                    Duration::from_secs(3),
                )
            })
            .count()
    })
    .await
    .expect("reads");
    assert_eq!(closed, SLOW_CLIENTS);

    // A body that stalls is cut off too.
    let stalled = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let head = format!(
            "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"max_tokens\"",
            bearer("staller")
        );
        stream.write_all(head.as_bytes()).expect("write");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let started = Instant::now();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    })
    .await
    .expect("stalled body");
    assert!(
        stalled.0 < Duration::from_secs(3),
        "cut off after {:?}",
        stalled.0
    );
    assert!(!stalled.1.starts_with("HTTP/1.1 200"), "{}", stalled.1);

    let _ = stop.send(());
    server.await.expect("join").expect("served");
    app.paywall.shutdown(Duration::from_secs(5)).await;
}

/// Reads `stream` until EOF or a reset: whether the server closed it within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(within));
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) => {
                return !matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

/// Serves the quickstart with `limits` until the returned sender fires.
async fn served_with(
    limits: ServeLimits,
) -> (
    std::net::SocketAddr,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = loopback().await;
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let app = quickstart::build(&quickstart_config(5), &base).expect("build");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app.router.clone(), limits, async {
        let _ = stopped.await;
    }));
    (addr, base, stop, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_are_closed_and_give_their_slot_back() {
    let limits = ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        // Every slot taken by a silent client: only their closing lets anyone in.
        max_connections: 20,
        ..ServeLimits::default()
    };
    let (addr, base, stop, server) = served_with(limits).await;
    let silent: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..20)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect()
    })
    .await
    .expect("silent clients");

    let started = Instant::now();
    let answer = reqwest::Client::new()
        .get(format!("{base}/health"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("served once the silent clients were cut off");
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    let closed = tokio::task::spawn_blocking(move || {
        silent
            .into_iter()
            .filter(|stream| {
                closed_within(
                    &mut stream.try_clone().expect("clone"),
                    Duration::from_secs(3),
                )
            })
            .count()
    })
    .await
    .expect("reads");
    assert_eq!(closed, 20, "every silent connection was closed");
    let _ = stop.send(());
    server.await.expect("join").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_and_gives_its_slot_back() {
    let limits = ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(500),
        max_connections: 1,
        ..ServeLimits::default()
    };
    let (addr, base, stop, server) = served_with(limits).await;
    // HTTP/2 with prior knowledge: the preface and an empty SETTINGS frame, then nothing.
    let mut idle = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .expect("preface");
        stream
    })
    .await
    .expect("h2 client");
    let started = Instant::now();
    let closed =
        tokio::task::spawn_blocking(move || closed_within(&mut idle, Duration::from_secs(5)))
            .await
            .expect("read");
    assert!(closed, "the idle HTTP/2 connection was closed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Its one slot is free again.
    let answer = reqwest::Client::new()
        .get(format!("{base}/health"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("served on the freed slot");
    assert_eq!(answer.status(), 200);
    let _ = stop.send(());
    server.await.expect("join").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_stays_open_past_the_idle_timeout_and_closes_once_idle() {
    let idle_timeout = Duration::from_millis(400);
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(5),
        idle_timeout,
        ..ServeLimits::default()
    };
    let (addr, _base, stop, server) = served_with(limits).await;
    let (answered, idle_for, closed) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
        // A request every 150 ms for three idle timeouts, on one kept-alive connection.
        let mut answered = 0;
        let mut buf = [0u8; 4096];
        for _ in 0..8 {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .expect("request");
            match stream.read(&mut buf) {
                Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200") => answered += 1,
                _ => break,
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        // Then nothing: closed after the idle timeout (at most a quarter more), well
        // before the header timeout.
        let quiet = Instant::now();
        let closed = closed_within(&mut stream, Duration::from_secs(3));
        (answered, quiet.elapsed(), closed)
    })
    .await
    .expect("client");
    assert_eq!(
        answered, 8,
        "every request of the busy connection was answered"
    );
    assert!(closed, "the connection was closed once idle");
    assert!(
        idle_for >= idle_timeout - Duration::from_millis(150) && idle_for < Duration::from_secs(2),
        "closed {idle_for:?} after the last request"
    );
    let _ = stop.send(());
    server.await.expect("join").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_is_cut_off_at_its_deadline_not_per_chunk() {
    let limits = ServeLimits {
        body_timeout: Duration::from_millis(600),
        ..ServeLimits::default()
    };
    let (addr, _base, stop, server) = served_with(limits).await;
    let (elapsed, answer) = trickle(addr).await;
    assert!(
        elapsed < Duration::from_millis(2_000),
        "cut off after {elapsed:?}, not after 40 trickled bytes"
    );
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = stop.send(());
    server.await.expect("join").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_actix_too_a_trickling_body_is_cut_off_at_its_deadline() {
    let listener = std_loopback();
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let mut app = quickstart_actix::build(&quickstart_config(5), &base).expect("actix build");
    app.body_deadline = Duration::from_millis(600);
    let paywall = app.paywall.clone();
    let served = ActixServed::start(listener, app);
    let (elapsed, answer) = trickle(addr).await;
    assert!(
        elapsed < Duration::from_millis(2_000),
        "cut off after {elapsed:?}, not after 40 trickled bytes"
    );
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    served.stop().await;
    paywall.shutdown(Duration::from_secs(5)).await;
}

/// Sends the head of a 1,000-byte `POST /api/generate`, then its body one byte every
/// 100 ms until the server answers or closes: how long that took, and the answer.
async fn trickle(addr: std::net::SocketAddr) -> (Duration, String) {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let head = format!(
            "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
            bearer("trickler")
        );
        stream.write_all(head.as_bytes()).expect("write");
        let started = Instant::now();
        // One byte every 100 ms: each chunk well within any per-chunk timeout.
        for _ in 0..40 {
            if stream.write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            let _ = stream.set_nonblocking(true);
            let mut peek = [0u8; 1];
            let answered = matches!(stream.peek(&mut peek), Ok(n) if n > 0);
            let _ = stream.set_nonblocking(false);
            if answered {
                break;
            }
        }
        let elapsed = started.elapsed();
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (elapsed, String::from_utf8_lossy(&answer).into_owned())
    })
    .await
    .expect("trickler")
}
