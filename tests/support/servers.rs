//! Real servers for the tests: the SolvaPay dev server, the actix quickstart on its own
//! system, and `redis-server`.

use std::time::Duration;

use crate::net::{std_loopback, Served};

/// The secret key the dev server and its clients share in tests.
pub const DEV_KEY: &str = "sk_test_paywall_dev_key";
/// The webhook signing secret in tests.
pub const WEBHOOK_SECRET: &str = "whsec_paywall_test_secret";

/// A dev server over a fresh in-memory ledger selling `product` with `free_units`.
pub fn dev_server(
    listener: tokio::net::TcpListener,
    product: &str,
    free_units: u64,
    webhook_url: Option<String>,
) -> (Served, paywall_local::LocalBackend) {
    let ledger = paywall_local::LocalBackend::builder()
        .product(paywall_local::Product::new(product).free_units(free_units))
        .open()
        .expect("ledger");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = paywall_dev_server::DevServerConfig::new(DEV_KEY, base);
    if let Some(url) = webhook_url {
        config = config.webhook(paywall_dev_server::WebhookTarget {
            url,
            secret: WEBHOOK_SECRET.into(),
        });
    }
    let served = Served::start(listener, paywall_dev_server::router(ledger.clone(), config));
    (served, ledger)
}

/// A SolvaPay configuration for tests: the dev key, short timeouts and backoff.
pub fn solvapay_config(base: &str) -> paywall_solvapay::SolvaPayConfig {
    paywall_solvapay::SolvaPayConfig::new(DEV_KEY)
        .base_url(base)
        .request_timeout(Duration::from_millis(500))
        .deadline(Duration::from_secs(3))
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
}

/// The actix quickstart served on its own thread and actix system, for tests. Build the
/// app in the test's runtime (its usage recorder lives there), then start it here.
pub struct ActixServed {
    pub base: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ActixServed {
    pub fn start(listener: std::net::TcpListener, app: quickstart_actix::ActixQuickstart) -> Self {
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = quickstart_actix::start(listener, app, 2).expect("start");
                let _ = tx.send(server.handle());
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("the actix server started");
        Self {
            base,
            handle,
            thread: Some(thread),
        }
    }

    /// Stops gracefully (open requests finish) and waits for the thread.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// A real `redis-server` on a free loopback port, without persistence, for the length
/// of a test. It can be killed and started again on the same port.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts `redis-server` and waits until it answers `PING`.
    pub fn start() -> Self {
        let port = std_loopback().local_addr().expect("addr").port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server with SIGKILL (its data is lost: there is no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and waits for `PING`.
    pub fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) the server: it keeps its connections but
    /// answers nothing while paused.
    pub fn pause(&self, paused: bool) {
        if let Some(child) = &self.child {
            let status = std::process::Command::new("kill")
                .arg(if paused { "-STOP" } else { "-CONT" })
                .arg(child.id().to_string())
                .status()
                .expect("kill");
            assert!(status.success());
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// A plain client for inspecting keys.
    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server ignores SIGKILL's cleanup until resumed; resume first.
            let _ = std::process::Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}
