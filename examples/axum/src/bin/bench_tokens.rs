//! Benchmark helper: prints HS256 tokens for `user-1` … `user-N`, one per line, signed
//! with the secret the quickstarts read from `PAYWALL_JWT_SECRET`, valid 24 h.
//! `benches/e2e.sh` feeds them to wrk round robin (`USERS=2000`).
//!
//! ```sh
//! bench-tokens <secret> <count> > tokens.txt
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use paywall_jwt::Hs256Signer;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(secret), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: bench-tokens <secret> <count>");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<u32>() else {
        eprintln!("bench-tokens: <count> must be a number, got {count:?}");
        return ExitCode::from(2);
    };
    let signer = Hs256Signer::new(&secret);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for user in 1..=count {
        let Ok(token) = signer.token_for(&format!("user-{user}"), Duration::from_secs(24 * 3600))
        else {
            eprintln!("bench-tokens: cannot sign");
            return ExitCode::from(1);
        };
        if writeln!(out, "{token}").is_err() {
            return ExitCode::from(1);
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
