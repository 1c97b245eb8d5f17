//! Where the token is read from: [`TokenSource`].

use http::header::AUTHORIZATION;
use http::request::Parts;
use paywall::IdentityError;

/// Default bound on a token's length: longer tokens are refused before any parsing.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The `Authorization` scheme of a bearer token, with the space that ends it.
const BEARER: &str = "bearer ";

/// Where a request carries its token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (the default). Exactly one such header is accepted.
    #[default]
    AuthorizationBearer,
    /// A cookie with this name (for browser sessions). Exactly one such cookie is accepted.
    Cookie(String),
    /// Another header with this name, holding the token (a `Bearer ` prefix is allowed).
    Header(http::HeaderName),
}

impl TokenSource {
    /// The token of a request: `Ok(None)` when there is none (for `Authorization`, also
    /// when it uses another scheme, such as `Basic`: RFC 6750 §3.1 treats both as "no
    /// credentials"), an error when the header is ambiguous, not visible ASCII, empty or
    /// longer than `max_len`.
    pub fn extract<'a>(
        &self,
        parts: &'a Parts,
        max_len: usize,
    ) -> Result<Option<&'a str>, IdentityError> {
        match self {
            TokenSource::AuthorizationBearer => {
                let mut values = parts.headers.get_all(AUTHORIZATION).iter();
                let Some(value) = values.next() else {
                    return Ok(None);
                };
                if values.next().is_some() {
                    return Err(invalid("more than one Authorization header"));
                }
                if value.len() > max_len + BEARER.len() {
                    return Err(invalid("token longer than the maximum"));
                }
                let value = value
                    .to_str()
                    .map_err(|_| invalid("Authorization header is not visible ASCII"))?;
                // The scheme is the text before the first space: read where it must
                // end rather than searched for, on every request.
                let token = match value.get(..BEARER.len()) {
                    Some(scheme) if scheme.eq_ignore_ascii_case(BEARER) => &value[BEARER.len()..],
                    _ if value.eq_ignore_ascii_case(BEARER.trim_end()) => "",
                    _ => return Ok(None), // another scheme: no bearer credentials
                };
                let token = token.trim();
                if token.is_empty() {
                    return Err(invalid("empty bearer token"));
                }
                if token.len() > max_len {
                    return Err(invalid("token longer than the maximum"));
                }
                Ok(Some(token))
            }
            TokenSource::Cookie(name) => {
                let mut found = None;
                for header in parts.headers.get_all(http::header::COOKIE) {
                    let header = header
                        .to_str()
                        .map_err(|_| invalid("Cookie header is not visible ASCII"))?;
                    for cookie in cookie::Cookie::split_parse(header).flatten() {
                        if cookie.name() != name {
                            continue;
                        }
                        if found.is_some() {
                            return Err(invalid("the token cookie is sent more than once"));
                        }
                        // Parsed from the header text, the raw value borrows from it.
                        found = Some(
                            cookie
                                .value_raw()
                                .ok_or_else(|| invalid("unreadable token cookie"))?,
                        );
                    }
                }
                bounded(found, max_len)
            }
            TokenSource::Header(name) => {
                let mut values = parts.headers.get_all(name).iter();
                let Some(value) = values.next() else {
                    return Ok(None);
                };
                if values.next().is_some() {
                    return Err(invalid("the token header is sent more than once"));
                }
                let value = value
                    .to_str()
                    .map_err(|_| invalid("token header is not visible ASCII"))?;
                let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
                bounded(Some(token), max_len)
            }
        }
    }
}

fn bounded(token: Option<&str>, max_len: usize) -> Result<Option<&str>, IdentityError> {
    match token {
        None => Ok(None),
        Some("") => Err(invalid("empty token")),
        Some(token) if token.len() > max_len => Err(invalid("token longer than the maximum")),
        Some(token) => Ok(Some(token)),
    }
}

fn invalid(reason: &str) -> IdentityError {
    IdentityError::Invalid(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(values: &[&[u8]]) -> Parts {
        let mut builder = http::Request::builder();
        for value in values {
            builder = builder.header(
                AUTHORIZATION,
                http::HeaderValue::from_bytes(value).expect("header"),
            );
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn bearer_extraction() {
        let source = TokenSource::AuthorizationBearer;
        assert_eq!(source.extract(&parts(&[]), 100).ok(), Some(None));
        assert_eq!(
            source.extract(&parts(&[b"Bearer abc"]), 100).ok(),
            Some(Some("abc"))
        );
        assert_eq!(
            source.extract(&parts(&[b"bearer abc"]), 100).ok(),
            Some(Some("abc"))
        );
        for other_scheme in [&b"Basic abc"[..], b"Bearerabc", b"Digest"] {
            assert_eq!(
                source.extract(&parts(&[other_scheme]), 100).ok(),
                Some(None)
            );
        }
        // Not visible ASCII: bytes that are not UTF-8, and UTF-8 that is not ASCII.
        for bad in [
            &b"Bearer"[..],
            b"Bearer   ",
            b"Bearer \xff\xfe",
            b"Bearer t\xc3\xa9",
        ] {
            assert!(source.extract(&parts(&[bad]), 100).is_err(), "{bad:?}");
        }
        assert!(source
            .extract(&parts(&[b"Bearer a", b"Bearer b"]), 100)
            .is_err());
        assert!(source.extract(&parts(&[b"Bearer abcdef"]), 3).is_err());
    }

    #[test]
    fn cookie_and_header_extraction() {
        let request = |headers: &[(&str, &str)]| {
            let mut builder = http::Request::builder();
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(()).expect("request").into_parts().0
        };
        let cookie = TokenSource::Cookie("session".into());
        let found = request(&[("cookie", "a=1; session=tok; b=2")]);
        assert_eq!(cookie.extract(&found, 100).ok(), Some(Some("tok")));
        let split = request(&[("cookie", "a=1"), ("cookie", "session=tok")]);
        assert_eq!(cookie.extract(&split, 100).ok(), Some(Some("tok")));
        assert_eq!(
            cookie.extract(&request(&[("cookie", "a=1")]), 100).ok(),
            Some(None)
        );
        assert!(cookie
            .extract(&request(&[("cookie", "session=a; session=b")]), 100)
            .is_err());
        assert!(cookie
            .extract(&request(&[("cookie", "session=")]), 100)
            .is_err());
        let header = TokenSource::Header(http::HeaderName::from_static("x-token"));
        assert_eq!(
            header
                .extract(&request(&[("x-token", "Bearer t")]), 100)
                .ok(),
            Some(Some("t"))
        );
        assert_eq!(
            header.extract(&request(&[("x-token", "t")]), 100).ok(),
            Some(Some("t"))
        );
        assert!(header
            .extract(&request(&[("x-token", "a"), ("x-token", "b")]), 100)
            .is_err());
    }
}
