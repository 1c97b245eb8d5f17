//! The `actix-quickstart` binary itself: starts on a free port, prints a working sample
//! token, and on SIGTERM stops gracefully after flushing usage.

#[path = "../../sigterm.rs"]
mod sigterm;

#[tokio::test]
async fn actix_quickstart_binary_serves_and_flushes_on_sigterm() {
    sigterm::serves_and_flushes_on_sigterm(env!("CARGO_BIN_EXE_actix-quickstart")).await;
}
