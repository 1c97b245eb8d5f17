//! From verified claims to an [`Identity`]: [`ClaimMapping`].

use std::fmt;
use std::sync::Arc;

use paywall::{Identity, IdentityError};
use serde_json::{Map, Value};

type MapFn = dyn Fn(&Map<String, Value>) -> Result<Identity, String> + Send + Sync;

/// Which claims become the identity. By default `sub` → external reference, `email`
/// and `name` passed on, and the email counted as verified only when the token says
/// `email_verified: true` (the boolean, or the string `"true"` some IdPs send).
///
/// Any top-level string claim can be the external reference, including namespaced
/// custom claims (`https://example.com/user_id`) or an organisation claim (`org_id`) to
/// bill organisations rather than users. A missing, empty or non-string claim is a 401.
/// For anything else (nested claims, numeric ids), [`ClaimMapping::custom`].
#[derive(Clone)]
pub struct ClaimMapping {
    pub(crate) external_ref: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) custom: Option<Arc<MapFn>>,
}

impl fmt::Debug for ClaimMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimMapping")
            .field("external_ref", &self.external_ref)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            external_ref: "sub".into(),
            email: "email".into(),
            name: "name".into(),
            custom: None,
        }
    }
}

impl ClaimMapping {
    /// A mapping computed by `f` from all the verified claims; an `Err` is a 401.
    ///
    /// ```
    /// use paywall::Identity;
    /// use paywall_jwt::ClaimMapping;
    ///
    /// // Bill the tenant, not the user: "tenant" nested under "app_metadata".
    /// let mapping = ClaimMapping::custom(|claims| {
    ///     claims
    ///         .get("app_metadata")
    ///         .and_then(|m| m.get("tenant"))
    ///         .and_then(|t| t.as_str())
    ///         .map(Identity::new)
    ///         .ok_or_else(|| "no tenant".to_owned())
    /// });
    /// # let _ = mapping;
    /// ```
    pub fn custom(
        f: impl Fn(&Map<String, Value>) -> Result<Identity, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            custom: Some(Arc::new(f)),
            ..Self::default()
        }
    }

    pub(crate) fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, IdentityError> {
        if let Some(custom) = &self.custom {
            return custom(claims).map_err(IdentityError::Invalid);
        }
        let external_ref = match claims.get(&self.external_ref) {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::String(_)) => {
                return Err(IdentityError::Invalid(format!(
                    "empty `{}` claim",
                    self.external_ref
                )))
            }
            Some(_) => {
                return Err(IdentityError::Invalid(format!(
                    "`{}` claim is not a string",
                    self.external_ref
                )))
            }
            None => {
                return Err(IdentityError::Invalid(format!(
                    "missing `{}` claim",
                    self.external_ref
                )))
            }
        };
        let text = |name: &str| match claims.get(name) {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            _ => None,
        };
        let email_verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
            || matches!(claims.get("email_verified"), Some(Value::String(v)) if v == "true");
        let mut identity = Identity::new(external_ref);
        identity.email = text(&self.email);
        identity.email_verified = email_verified;
        identity.name = text(&self.name);
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn default_mapping_and_namespaced_claims() {
        let mapping = ClaimMapping::default();
        let identity = mapping
            .identity(&claims(json!({"sub": "u1", "email": "u@x.io", "name": 3})))
            .expect("identity");
        assert_eq!(identity, Identity::new("u1").with_email("u@x.io"));
        assert!(
            !identity.email_verified,
            "no email_verified claim: unverified"
        );
        for (claim, verified) in [
            (json!(true), true),
            (json!("true"), true),
            (json!(false), false),
            (json!("yes"), false),
            (json!(1), false),
        ] {
            let identity = ClaimMapping::default()
                .identity(&claims(
                    json!({"sub": "u1", "email": "u@x.io", "email_verified": claim}),
                ))
                .expect("identity");
            assert_eq!(identity.email_verified, verified, "{claim}");
        }
        let namespaced = ClaimMapping {
            external_ref: "https://example.com/user_id".into(),
            ..ClaimMapping::default()
        };
        let identity = namespaced
            .identity(&claims(
                json!({"sub": "auth0|1", "https://example.com/user_id": "u-42"}),
            ))
            .expect("identity");
        assert_eq!(identity.external_ref, "u-42");
        for bad in [
            json!({}),
            json!({"sub": ""}),
            json!({"sub": 7}),
            json!({"sub": true}),
            json!({"sub": {"a": 1}}),
        ] {
            assert!(mapping.identity(&claims(bad)).is_err());
        }
    }
}
