//! Where the token is read from: [`TokenSource`].

use http::header::AUTHORIZATION;
use http::request::Parts;
use paywall::IdentityError;

/// Default bound on a token's length: longer tokens are refused before any parsing.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Where a request carries its token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (the default). Exactly one such header is accepted.
    #[default]
    AuthorizationBearer,
}

impl TokenSource {
    /// The token of a request: `Ok(None)` when there is none, an error when the header
    /// is ambiguous, not visible ASCII, not `Bearer`, empty or longer than `max_len`.
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
                if value.len() > max_len + "Bearer ".len() {
                    return Err(invalid("token longer than the maximum"));
                }
                let value = value
                    .to_str()
                    .map_err(|_| invalid("Authorization header is not visible ASCII"))?;
                let (scheme, token) = value
                    .split_once(' ')
                    .ok_or_else(|| invalid("Authorization header is not `Bearer <token>`"))?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(invalid("Authorization scheme is not Bearer"));
                }
                let token = token.trim();
                if token.is_empty() {
                    return Err(invalid("empty bearer token"));
                }
                if token.len() > max_len {
                    return Err(invalid("token longer than the maximum"));
                }
                Ok(Some(token))
            }
        }
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
        for bad in [
            &b"Basic abc"[..],
            b"Bearer",
            b"Bearer   ",
            b"Bearer \xff\xfe",
            b"Bearerabc",
        ] {
            assert!(source.extract(&parts(&[bad]), 100).is_err(), "{bad:?}");
        }
        assert!(source
            .extract(&parts(&[b"Bearer a", b"Bearer b"]), 100)
            .is_err());
        assert!(source.extract(&parts(&[b"Bearer abcdef"]), 3).is_err());
    }
}
