//! Instructions per warm request, for machines too noisy to time a change of a few
//! hundred nanoseconds: `benches/instructions.sh` runs this under Valgrind's callgrind
//! twice per path, with two request counts, and divides the difference in instructions
//! by the difference in requests (start-up and warm-up cancel out).
//!
//! ```sh
//! bash benches/instructions.sh                     # this build's paths
//! BEFORE=/tmp/instructions-before bash benches/instructions.sh   # and an earlier build's
//! ```
//!
//! By itself (`PATH_NAME=quickstart REQUESTS=1000`) it only runs the requests: the
//! handler alone (`bare`), the paywall with the library's defaults and an HS256 token
//! (`hs256`), or with the quickstarts' settings (`quickstart`). The backend answers at
//! once and keeps nothing; every request yields once, as in a server, so that the usage
//! recorder's worker runs (and is counted) when its batch is due.

use paywall::test_util::TEST_PRODUCT;
use paywall::Charge;
use paywall_jwt::JwtResolver;
use paywall_tests::{token, SECRET};
use tower::{service_fn, Layer};

#[path = "warm.rs"]
mod warm;
use warm::{drive, hello, paywall};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u64 = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let path = std::env::var("PATH_NAME").unwrap_or_else(|_| "quickstart".into());
    let bearer = ("authorization", format!("Bearer {}", token("bench-user")));
    let quickstart = match path.as_str() {
        "bare" => return drive(&service_fn(hello), &bearer, n).await,
        "hs256" => false,
        "quickstart" => true,
        other => return eprintln!("instructions: unknown PATH_NAME {other}"),
    };
    let Some(paywall) = JwtResolver::hs256(SECRET)
        .build()
        .ok()
        .and_then(|jwt| paywall(jwt, quickstart))
    else {
        return eprintln!("instructions: cannot build the paywall");
    };
    let Ok(layer) = paywall.layer(Charge::new(TEST_PRODUCT)) else {
        return eprintln!("instructions: bad charge");
    };
    let service = layer.layer(service_fn(hello));
    drive(&service, &bearer, n).await;
    paywall.flush().await;
}
