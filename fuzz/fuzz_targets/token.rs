//! Token parsing: arbitrary bytes as an `Authorization` header value, and as a bare
//! token, through an HS256 resolver with issuer and audience. Must never panic; any
//! answer but a verified identity is an `Invalid` error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use paywall::{IdentityError, IdentityResolver};
use paywall_jwt::JwtResolver;

struct Setup {
    runtime: tokio::runtime::Runtime,
    resolver: JwtResolver,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| Setup {
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime"),
        resolver: JwtResolver::hs256("fuzz-secret-fuzz-secret-fuzz-secret-0123")
            .issuer("https://idp.fuzz/")
            .audience("fuzz-api")
            .build()
            .expect("resolver"),
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        let mut request = http::Request::new(());
        request.headers_mut().insert(http::header::AUTHORIZATION, value);
        let (parts, ()) = request.into_parts();
        let result = setup.runtime.block_on(setup.resolver.resolve(&parts));
        assert!(!matches!(result, Err(IdentityError::Unavailable(_))));
    }
    if let Ok(token) = std::str::from_utf8(data) {
        let result = setup.runtime.block_on(setup.resolver.verify(token));
        assert!(!matches!(result, Err(IdentityError::Unavailable(_))));
    }
});
