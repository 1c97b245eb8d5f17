//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for the MCP endpoint: how an MCP
//! client that follows the MCP authorization spec finds out where to get a token.
//!
//! [`ProtectedResource`] names the server's canonical MCP URL and its authorization
//! servers; [`MetadataService`] serves the document; the identify layer names the
//! document's URL in every 401 (`WWW-Authenticate: Bearer resource_metadata="…"`).

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use tower::Service;

/// The well-known path prefix of protected resource metadata.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A [`ProtectedResource`] could not be described.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// The resource or an authorization server is not an absolute http(s) URL without
    /// a query or fragment.
    #[error("{0:?} is not an absolute http(s) URL without query or fragment")]
    InvalidUrl(String),
}

/// The MCP server as an OAuth protected resource: its canonical URL (the audience its
/// tokens must carry, RFC 8707) and the authorization servers that issue them.
///
/// ```
/// use paywall_mcp::ProtectedResource;
///
/// let resource = ProtectedResource::new("https://mcp.example.com/mcp", ["https://idp.example.com"])?;
/// assert_eq!(
///     resource.metadata_url(),
///     "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
/// );
/// assert_eq!(resource.document()["authorization_servers"][0], "https://idp.example.com");
/// # Ok::<(), paywall_mcp::ResourceError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedResource {
    resource: String,
    authorization_servers: Vec<String>,
    scopes: Vec<String>,
    /// Where the resource's path starts in `resource` (after scheme and authority).
    path_at: usize,
}

impl ProtectedResource {
    /// `resource` is the MCP endpoint's canonical URL (`https://host/mcp`), each
    /// authorization server an issuer URL.
    pub fn new(
        resource: impl Into<String>,
        authorization_servers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ResourceError> {
        let resource = resource.into();
        let path_at =
            path_start(&resource).ok_or_else(|| ResourceError::InvalidUrl(resource.clone()))?;
        let authorization_servers: Vec<String> =
            authorization_servers.into_iter().map(Into::into).collect();
        if let Some(bad) = authorization_servers
            .iter()
            .find(|url| path_start(url).is_none())
        {
            return Err(ResourceError::InvalidUrl(bad.clone()));
        }
        Ok(Self {
            resource,
            authorization_servers,
            scopes: Vec::new(),
            path_at,
        })
    }

    /// The scopes a client may ask for (`scopes_supported`; none by default).
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The canonical URL of the MCP endpoint.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The absolute URL of the metadata document (RFC 9728 §3.1: the well-known path
    /// inserted between the resource's host and its path).
    pub fn metadata_url(&self) -> String {
        let (origin, path) = self.resource.split_at(self.path_at);
        format!("{origin}{WELL_KNOWN}{}", path.trim_end_matches('/'))
    }

    /// The paths this server serves the document at: the one [`metadata_url`]
    /// names, and the bare well-known path (for clients that look there first).
    ///
    /// [`metadata_url`]: Self::metadata_url
    pub fn metadata_paths(&self) -> Vec<String> {
        let path = self.resource[self.path_at..].trim_end_matches('/');
        let mut paths = vec![format!("{WELL_KNOWN}{path}")];
        if !path.is_empty() {
            paths.push(WELL_KNOWN.to_owned());
        }
        paths
    }

    /// The metadata document.
    pub fn document(&self) -> Value {
        let mut document = json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes.is_empty() {
            document["scopes_supported"] = json!(self.scopes);
        }
        document
    }

    /// `challenge` (a `WWW-Authenticate` value of the paywall's 401) naming the
    /// metadata document: `Bearer resource_metadata="…"`, after `error="…"` when the
    /// challenge has one.
    pub(crate) fn challenge(&self, challenge: &str) -> String {
        let parameter = format!("resource_metadata=\"{}\"", self.metadata_url());
        match challenge.trim() {
            "" | "Bearer" => format!("Bearer {parameter}"),
            other => format!("{other}, {parameter}"),
        }
    }

    /// The document served by a tower service, for the paths of
    /// [`metadata_paths`](Self::metadata_paths).
    pub fn service(&self) -> MetadataService {
        MetadataService {
            document: Bytes::from(self.document().to_string()),
        }
    }
}

/// Where the path of an absolute http(s) URL starts, if it is one without a query or
/// fragment.
fn path_start(url: &str) -> Option<usize> {
    let rest = url
        .strip_prefix("https://")
        .map(|rest| (rest, "https://".len()))
        .or_else(|| {
            url.strip_prefix("http://")
                .map(|rest| (rest, "http://".len()))
        });
    let (rest, scheme) = rest?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) || rest.starts_with('/') {
        return None;
    }
    let authority = rest.find('/').unwrap_or(rest.len());
    Some(scheme + authority)
}

/// Serves a [`ProtectedResource`]'s metadata document: `GET` or `HEAD` → 200 JSON
/// (any origin may read it, for browser-based clients such as the MCP Inspector);
/// `OPTIONS` → 204; anything else → 405 JSON.
#[derive(Clone, Debug)]
pub struct MetadataService {
    document: Bytes,
}

impl<B> Service<Request<B>> for MetadataService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (status, body) = match *request.method() {
            Method::GET => (StatusCode::OK, self.document.clone()),
            Method::HEAD => (StatusCode::OK, Bytes::new()),
            Method::OPTIONS => (StatusCode::NO_CONTENT, Bytes::new()),
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                Bytes::from(
                    paywall::adapter::error_body(
                        "Method Not Allowed",
                        "method_not_allowed",
                        "The metadata document is read with GET.",
                    )
                    .to_string(),
                ),
            ),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[test]
    fn urls_follow_rfc_9728() {
        let at_root = ProtectedResource::new("http://127.0.0.1:3000", ["http://idp"]).expect("ok");
        assert_eq!(
            at_root.metadata_url(),
            "http://127.0.0.1:3000/.well-known/oauth-protected-resource"
        );
        assert_eq!(at_root.metadata_paths(), [WELL_KNOWN]);
        let mcp = ProtectedResource::new("http://127.0.0.1:3000/mcp/", ["http://idp"]).expect("ok");
        assert_eq!(
            mcp.metadata_paths(),
            [format!("{WELL_KNOWN}/mcp"), WELL_KNOWN.to_owned()]
        );
        for bad in [
            "mcp",
            "ftp://x/mcp",
            "https://",
            "https:///mcp",
            "https://x/mcp?a=1",
            "https://x/#f",
        ] {
            assert!(
                ProtectedResource::new(bad, ["https://idp"]).is_err(),
                "{bad}"
            );
            assert!(
                ProtectedResource::new("https://x/mcp", [bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn challenges_name_the_document_after_the_error() {
        let resource = ProtectedResource::new("https://x.test/mcp", ["https://idp"]).expect("ok");
        let url = "https://x.test/.well-known/oauth-protected-resource/mcp";
        assert_eq!(
            resource.challenge("Bearer"),
            format!("Bearer resource_metadata=\"{url}\"")
        );
        assert_eq!(
            resource.challenge("Bearer error=\"invalid_token\""),
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{url}\"")
        );
    }

    #[tokio::test]
    async fn the_document_is_served_to_get_only() {
        let resource = ProtectedResource::new("https://x.test/mcp", ["https://idp"])
            .expect("ok")
            .scopes(["mcp"]);
        let get = resource
            .service()
            .oneshot(Request::new(()))
            .await
            .expect("infallible");
        assert_eq!(get.status(), StatusCode::OK);
        assert_eq!(get.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let body = http_body_util::BodyExt::collect(get.into_body())
            .await
            .expect("body")
            .to_bytes();
        let document: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(document["resource"], "https://x.test/mcp");
        assert_eq!(document["bearer_methods_supported"], json!(["header"]));
        assert_eq!(document["scopes_supported"], json!(["mcp"]));
        let post = Request::builder()
            .method(Method::POST)
            .body(())
            .expect("request");
        let refused = resource.service().oneshot(post).await.expect("infallible");
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
