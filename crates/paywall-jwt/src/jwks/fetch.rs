//! One fetch of a key set over HTTP: the client (timeouts, redirects only within the
//! same host), bounded bodies, OIDC discovery checks, and [`JwksError`], which tells a
//! provider that cannot be reached (start anyway, it may come up) from an answer that
//! is not a key set (a misconfiguration: stop at start-up).

use std::time::Duration;

use http::header::CACHE_CONTROL;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::keys::KeySet;

/// The largest JWKS or discovery document read (256 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why keys could not be fetched from a JWKS or discovery endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The endpoint could not be reached (connection refused, DNS, TLS, timeout).
    #[error("{url} is unreachable: {reason}")]
    Unreachable {
        /// The URL fetched.
        url: String,
        /// The cause, down to the TLS or socket error.
        reason: String,
    },
    /// The endpoint answered with an HTTP error (or a redirect to another host, which
    /// is never followed).
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The answer is not a JSON Web Key Set (an HTML page, a discovery document…).
    #[error("{url} did not answer a JSON Web Key Set: {reason}")]
    NotAKeySet {
        /// The URL fetched.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key set holds no key this crate can verify signatures with.
    #[error("{url} holds no usable signing key ({skipped} key(s) skipped)")]
    NoUsableKey {
        /// The URL fetched.
        url: String,
        /// Keys present but unusable (encryption keys, unknown types).
        skipped: usize,
    },
    /// The answer is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("{url} answered more than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge {
        /// The URL fetched.
        url: String,
    },
    /// The OIDC discovery document is not acceptable (no or another `issuer`, a
    /// `jwks_uri` that is not https).
    #[error("OIDC discovery at {url}: {reason}")]
    Discovery {
        /// The discovery URL.
        url: String,
        /// What is wrong with the document.
        reason: String,
    },
}

impl JwksError {
    /// Whether the provider may simply be down for now (unreachable, or a 5xx, 408 or
    /// 429 answer), as opposed to a configuration that can never work.
    pub fn is_transient(&self) -> bool {
        match self {
            JwksError::Unreachable { .. } => true,
            JwksError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

/// A fetched key set and how long it may be cached.
pub(crate) struct Fetched {
    pub(crate) keys: KeySet,
    pub(crate) skipped: usize,
    pub(crate) max_age: Option<Duration>,
}

/// The HTTP client: bounded timeouts, redirects followed only within the same host
/// (at most 3), no cookies.
pub(crate) fn client(connect: Duration, total: Duration) -> Result<reqwest::Client, String> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_host = attempt
            .previous()
            .first()
            .is_some_and(|first| first.host_str() == attempt.url().host_str());
        if same_host && attempt.previous().len() <= 3 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(total)
        .redirect(policy)
        .build()
        .map_err(|err| err.to_string())
}

/// The error and its causes, joined: reqwest's own message ("error sending request")
/// hides the TLS or socket error underneath. The URL is named by the caller.
fn chain(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// GETs `url` and reads at most [`MAX_DOCUMENT_BYTES`] of a successful answer.
async fn get(http: &reqwest::Client, url: &str) -> Result<(http::HeaderMap, Vec<u8>), JwksError> {
    let unreachable = |err: reqwest::Error| JwksError::Unreachable {
        url: url.to_owned(),
        reason: chain(err),
    };
    let mut response = http.get(url).send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(JwksError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let too_large = || JwksError::TooLarge {
        url: url.to_owned(),
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((headers, body))
}

/// Fetches and parses a key set. Members that are not usable keys are skipped; a set
/// with none left is an error.
pub(crate) async fn keys(http: &reqwest::Client, url: &str) -> Result<Fetched, JwksError> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let (headers, body) = get(http, url).await?;
    let set: Set = serde_json::from_slice(&body).map_err(|err| JwksError::NotAKeySet {
        url: url.to_owned(),
        reason: if serde_json::from_slice::<Value>(&body).is_ok() {
            "no `keys` array".to_owned()
        } else {
            format!("not JSON ({err})")
        },
    })?;
    let (keys, skipped) = KeySet::from_jwks(&set.keys);
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey {
            url: url.to_owned(),
            skipped,
        });
    }
    let max_age = headers
        .get(CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .and_then(max_age);
    Ok(Fetched {
        keys,
        skipped,
        max_age,
    })
}

/// Reads `<issuer>/.well-known/openid-configuration` and returns its `jwks_uri`, after
/// checking that the document names `issuer` (OIDC Discovery §4.3; a trailing `/` is
/// tolerated) and that `jwks_uri` is https, or plain http on loopback when the issuer
/// itself is.
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<String, JwksError> {
    #[derive(Deserialize)]
    struct Document {
        issuer: Option<Value>,
        jwks_uri: Option<Value>,
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let refuse = |reason: String| JwksError::Discovery {
        url: url.clone(),
        reason,
    };
    let (_, body) = get(http, &url).await?;
    let document: Document = serde_json::from_slice(&body)
        .map_err(|_| refuse("the answer is not a JSON object".into()))?;
    match document.issuer.as_ref().and_then(Value::as_str) {
        None => return Err(refuse("the document names no `issuer`".into())),
        Some(named) if named.trim_end_matches('/') != issuer.trim_end_matches('/') => {
            return Err(refuse(format!(
                "the document names issuer {named:?}, not {issuer:?}"
            )));
        }
        Some(_) => {}
    }
    let jwks_uri = document
        .jwks_uri
        .as_ref()
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("the document has no `jwks_uri`".into()))?;
    let parsed = Url::parse(jwks_uri)
        .map_err(|_| refuse(format!("`jwks_uri` {jwks_uri:?} is not a URL")))?;
    let issuer_is_local_http =
        Url::parse(issuer).is_ok_and(|issuer| issuer.scheme() == "http" && is_loopback(&issuer));
    let allowed = match parsed.scheme() {
        "https" => true,
        "http" => issuer_is_local_http && is_loopback(&parsed),
        _ => false,
    };
    if !allowed {
        return Err(refuse(format!(
            "`jwks_uri` {jwks_uri:?} must be https (plain http only on loopback, for a loopback issuer)"
        )));
    }
    Ok(jwks_uri.to_owned())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `max-age` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            secs.trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            max_age("max-age=\"60\", must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn only_outages_are_transient() {
        let url = String::from("https://idp.example/jwks");
        assert!(JwksError::Unreachable {
            url: url.clone(),
            reason: "refused".into()
        }
        .is_transient());
        assert!(JwksError::Status {
            url: url.clone(),
            status: 503
        }
        .is_transient());
        assert!(!JwksError::Status {
            url: url.clone(),
            status: 404
        }
        .is_transient());
        assert!(!JwksError::NotAKeySet {
            url,
            reason: "html".into()
        }
        .is_transient());
    }

    #[test]
    fn loopback_hosts() {
        for local in [
            "http://127.0.0.1:8/x",
            "http://[::1]/x",
            "http://localhost/x",
        ] {
            assert!(is_loopback(&Url::parse(local).expect("url")), "{local}");
        }
        assert!(!is_loopback(
            &Url::parse("http://idp.example/x").expect("url")
        ));
    }
}
