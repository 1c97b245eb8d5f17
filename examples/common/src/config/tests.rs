//! The quickstart settings' unit tests: defaults, errors naming their variable, and
//! what each setting implies.

use super::*;

#[test]
fn env_defaults_and_errors() {
    let config = QuickstartConfig::from_lookup(|_| None).expect("defaults");
    assert_eq!(config.port, 3000);
    assert_eq!(config.product, "prd_quickstart");
    assert_eq!(config.free_units, 5);
    assert!(config.jwt_secret.is_none() && config.db.is_none());

    let bad_port = QuickstartConfig::from_lookup(|name| (name == "PORT").then(|| "http".into()));
    assert!(matches!(
        bad_port,
        Err(QuickstartError::Env { var: "PORT", .. })
    ));
    let bad_units =
        QuickstartConfig::from_lookup(|name| (name == "PAYWALL_FREE_UNITS").then(|| "-1".into()));
    assert!(matches!(
        bad_units,
        Err(QuickstartError::Env {
            var: "PAYWALL_FREE_UNITS",
            ..
        })
    ));
}

#[test]
fn one_redis_or_a_cluster_not_both() {
    let both = QuickstartConfig::from_lookup(|name| match name {
        "PAYWALL_REDIS_URL" => Some("redis://127.0.0.1:6379".into()),
        "PAYWALL_REDIS_CLUSTER_URLS" => Some("redis://127.0.0.1:7000".into()),
        _ => None,
    });
    let Err(err) = both else {
        panic!("both set must fail");
    };
    let message = err.to_string();
    assert!(
        message.contains("PAYWALL_REDIS_URL") && message.contains("PAYWALL_REDIS_CLUSTER_URLS"),
        "{message}"
    );
    let cluster = QuickstartConfig::from_lookup(|name| {
        (name == "PAYWALL_REDIS_CLUSTER_URLS")
            .then(|| " redis://127.0.0.1:7000, redis://127.0.0.1:7001 ,".into())
    })
    .expect("a cluster");
    assert_eq!(
        cluster.redis_cluster_urls,
        ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
    );
}

#[test]
fn a_jwks_or_oidc_issuer_requires_issuer_and_audience() {
    fn with(vars: &[(&str, &str)]) -> Result<QuickstartConfig, QuickstartError> {
        QuickstartConfig::from_lookup(|name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }
    let missing = |result: Result<QuickstartConfig, QuickstartError>| match result {
        Err(QuickstartError::Env { var, .. }) => Some(var),
        _ => None,
    };
    let jwks = ("PAYWALL_JWKS_URL", "https://idp.example/jwks");
    let issuer = ("PAYWALL_JWT_ISSUER", "https://idp.example/");
    let audience = ("PAYWALL_JWT_AUDIENCE", "api");
    let oidc = ("PAYWALL_OIDC_ISSUER", "https://idp.example");
    assert_eq!(missing(with(&[jwks])), Some("PAYWALL_JWT_ISSUER"));
    assert_eq!(missing(with(&[jwks, issuer])), Some("PAYWALL_JWT_AUDIENCE"));
    assert!(with(&[jwks, issuer, audience]).is_ok());
    assert_eq!(missing(with(&[oidc])), Some("PAYWALL_JWT_AUDIENCE"));
    assert!(with(&[oidc, audience]).is_ok());
    assert_eq!(
        missing(with(&[jwks, oidc, issuer, audience])),
        Some("PAYWALL_OIDC_ISSUER")
    );
    let algs = with(&[oidc, audience, ("PAYWALL_JWT_ALGORITHMS", "PS256, EdDSA")]);
    assert_eq!(
        algs.map(|c| c.jwt_algorithms).ok(),
        Some(vec![Algorithm::PS256, Algorithm::EdDSA])
    );
    for bad in ["HS256", "RS256,RS257", ","] {
        let vars = [("PAYWALL_JWT_ALGORITHMS", bad)];
        assert_eq!(
            missing(with(&vars)),
            Some("PAYWALL_JWT_ALGORITHMS"),
            "{bad}"
        );
    }
}

#[test]
fn max_customers_is_a_positive_count() {
    let with = |value: &str| {
        QuickstartConfig::from_lookup(|name| {
            (name == "PAYWALL_MAX_CUSTOMERS").then(|| value.to_owned())
        })
    };
    assert_eq!(with("").map(|c| c.cache_capacity()).ok(), Some(100_000));
    assert_eq!(
        with("250000").map(|c| c.cache_capacity()).ok(),
        Some(250_000)
    );
    for bad in ["0", "-1", "1e6", "many"] {
        assert!(
            matches!(
                with(bad),
                Err(QuickstartError::Env {
                    var: "PAYWALL_MAX_CUSTOMERS",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert_eq!(QuickstartConfig::default().cache_capacity(), 100_000);
}

#[test]
fn budgets_are_trusted_longer_only_on_a_ledger_no_one_else_writes() {
    let with = |vars: &[(&str, &str)]| {
        QuickstartConfig::from_lookup(|name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .map(|config| {
            let own = config.budget_ttl() == OWN_LEDGER_LIMITS_TTL;
            assert_eq!(config.owns_its_ledger(), own);
            config.budget_ttl()
        })
        .ok()
    };
    assert_eq!(with(&[]), Some(OWN_LEDGER_LIMITS_TTL), "in-memory ledger");
    assert_eq!(
        with(&[("PAYWALL_OUTBOX", "/tmp/o.db")]),
        Some(OWN_LEDGER_LIMITS_TTL)
    );
    for shared in [
        ("PAYWALL_DB", "/tmp/ledger.db"),
        ("PAYWALL_REDIS_URL", "redis://127.0.0.1:6379"),
        ("PAYWALL_REDIS_CLUSTER_URLS", "redis://127.0.0.1:7000"),
        ("SOLVAPAY_SECRET_KEY", "sk_sandbox_test"),
    ] {
        assert_eq!(with(&[shared]), Some(SHARED_LIMITS_TTL), "{}", shared.0);
    }
    let set = QuickstartConfig {
        limits_ttl: Duration::from_secs(5),
        ..QuickstartConfig::default()
    };
    assert_eq!(set.budget_ttl(), Duration::from_secs(5), "set explicitly");
}

#[test]
fn debug_never_shows_the_secret() {
    let config = QuickstartConfig {
        jwt_secret: Some("super-secret-value-that-must-not-leak".into()),
        ..QuickstartConfig::default()
    };
    assert!(!format!("{config:?}").contains("super-secret"));
}
