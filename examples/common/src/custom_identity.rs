//! An identity resolver that is not JWT at all: API keys looked up in the application's
//! own store, which also knows each caller's email and name for ensure-customer.
//!
//! ```
//! use paywall::{Identity, IdentityResolver};
//! use paywall_examples::custom_identity::ApiKeys;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let keys = ApiKeys::default();
//! keys.insert("ak_live_0123456789abcdef", Identity::new("acct_1").with_email("ops@acme.io").with_name("Acme"));
//! let request = http::Request::builder().header("x-api-key", "ak_live_0123456789abcdef").body(()).unwrap();
//! let identity = keys.resolve(&request.into_parts().0).await.unwrap().unwrap();
//! assert_eq!(identity.email.as_deref(), Some("ops@acme.io"));
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use http::request::Parts;
use paywall::{Identity, IdentityError, IdentityResolver};

/// The header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// API keys → the account they belong to. Cheap to clone (shared store).
#[derive(Clone, Default)]
pub struct ApiKeys {
    store: Arc<RwLock<HashMap<String, Identity>>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.store.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("ApiKeys").field("keys", &count).finish()
    }
}

impl ApiKeys {
    /// Issues `key` to `identity`.
    pub fn insert(&self, key: impl Into<String>, identity: Identity) {
        if let Ok(mut store) = self.store.write() {
            store.insert(key.into(), identity);
        }
    }

    /// Revokes `key`.
    pub fn revoke(&self, key: &str) {
        if let Ok(mut store) = self.store.write() {
            store.remove(key);
        }
    }
}

impl IdentityResolver for ApiKeys {
    async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        let mut values = parts.headers.get_all(API_KEY_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(IdentityError::Invalid("more than one API key".into()));
        }
        let key = value
            .to_str()
            .map_err(|_| IdentityError::Invalid("API key is not visible ASCII".into()))?;
        let store = self
            .store
            .read()
            .map_err(|_| IdentityError::unavailable("the key store is unavailable"))?;
        store
            .get(key)
            .cloned()
            .map(Some)
            .ok_or_else(|| IdentityError::Invalid("unknown API key".into()))
    }
}
