//! The rejection builders: any field values give a response with the right status,
//! a parseable JSON body and valid headers, without panicking.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use paywall::{PaymentRequired, Rejection, Unauthenticated};

#[derive(Arbitrary, Debug)]
struct Input {
    kind: u8,
    activation_required: bool,
    product: String,
    checkout_url: Option<String>,
    allowance: Option<u64>,
    confirmation_url: Option<String>,
    plan: Option<String>,
    remaining: u64,
    units: u64,
    retry_after_secs: Option<u64>,
    retry_after_nanos: u32,
}

fuzz_target!(|input: Input| {
    let wait = |secs: u64| Duration::new(secs, input.retry_after_nanos % 1_000_000_000);
    let rejection = match input.kind % 6 {
        0 => Rejection::PaymentRequired(PaymentRequired {
            activation_required: input.activation_required,
            product: input.product,
            checkout_url: input.checkout_url,
            confirmation_url: input.confirmation_url,
            plan: input.plan,
            remaining: input.remaining,
            units: input.units,
            allowance: input.allowance,
            period: None,
            retry_after: input.retry_after_secs.map(wait),
        }),
        1 => Rejection::Unauthenticated(if input.activation_required {
            Unauthenticated::MissingCredentials
        } else {
            Unauthenticated::InvalidCredentials
        }),
        4 => Rejection::CustomerRejected,
        5 => Rejection::CustomerConflict,
        2 => Rejection::BillingUnavailable {
            retry_after: wait(input.retry_after_secs.unwrap_or(0)),
        },
        _ => Rejection::IdentityUnavailable {
            retry_after: wait(input.retry_after_secs.unwrap_or(0)),
        },
    };
    let response = rejection.to_response();
    assert_eq!(response.status(), rejection.status());
    let body: serde_json::Value = serde_json::from_slice(response.body()).expect("JSON body");
    assert_eq!(body["status"], rejection.status().as_u16());
    assert_eq!(body["kind"], rejection.kind());
    assert_ne!(body.get("checkoutUrl"), Some(&serde_json::json!("")), "never an empty link");
    if let Some(retry) = response.headers().get(http::header::RETRY_AFTER) {
        let secs: u64 = retry.to_str().expect("ascii").parse().expect("seconds");
        assert!(secs >= 1);
    }
});
