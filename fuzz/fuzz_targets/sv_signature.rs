//! The `SV-Signature` header: input split at the first NUL into header and body.
//! Verification must never panic, and must never accept what was not signed.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use paywall_solvapay::webhook::WebhookVerifier;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let verifier = WebhookVerifier::new("whsec_fuzz_secret")
        .clock(|| UNIX_EPOCH + Duration::from_secs(1_740_000_000));
    if verifier.verify(Some(&header), body).is_ok() {
        // Only a correct HMAC passes: recompute and compare.
        let t = header
            .split(',')
            .find_map(|part| part.trim().strip_prefix("t="))
            .and_then(|t| t.parse::<u64>().ok())
            .expect("an accepted header has a timestamp");
        let expected = paywall_solvapay::webhook::sign("whsec_fuzz_secret", t, body);
        // Hex is accepted in either case: the bytes are what is compared.
        assert!(header.to_ascii_lowercase().contains(&expected));
    }
    let _ = verifier.verify_event(Some(&header), body);
});
