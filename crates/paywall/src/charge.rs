//! What a protected route costs: [`Charge`].

use std::sync::Arc;

use crate::error::ConfigError;
use crate::policy::FailPolicy;

/// The largest number of units one request may cost (SolvaPay's bound on an event).
pub const MAX_UNITS: u64 = 100_000;
const MAX_UNITS_PLUS_ONE: u64 = MAX_UNITS + 1;

/// How a route is priced: a fixed number of units per admitted request, or what each
/// request consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Price {
    /// This many units per admitted request (1 to [`MAX_UNITS`]).
    PerRequest(u64),
    /// What each request consumed: admission holds nothing, the handler reserves an
    /// upper bound and reports what it used through the request's
    /// [`Usage`](crate::Usage), settled when the response body ends.
    ByConsumption,
}

impl Price {
    /// The units an admission holds: the fixed price, or nothing for a route priced by
    /// consumption (its handler reserves them).
    pub(crate) fn at_admission(self) -> u64 {
        match self {
            Self::PerRequest(units) => units,
            Self::ByConsumption => 0,
        }
    }
}

/// What one protected route charges: a product, a meter, a [`Price`], and optionally
/// its own [`FailPolicy`].
///
/// ```
/// use paywall::{Charge, FailPolicy};
///
/// let search = Charge::new("prd_search").meter("queries").units(5);
/// let health = Charge::new("prd_search").fail_policy(FailPolicy::Open);
/// # let _ = (search, health);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    pub(crate) product: String,
    pub(crate) meter: String,
    pub(crate) price: Price,
    pub(crate) fail_policy: Option<FailPolicy>,
}

impl Charge {
    /// One unit of `product` on the `requests` meter per admitted request.
    pub fn new(product: impl Into<String>) -> Self {
        Self {
            product: product.into(),
            meter: "requests".to_owned(),
            price: Price::PerRequest(1),
            fail_policy: None,
        }
    }

    /// The meter the units are counted on (default `requests`).
    pub fn meter(mut self, meter: impl Into<String>) -> Self {
        self.meter = meter.into();
        self
    }

    /// Units per admitted request (default 1, at most [`MAX_UNITS`]). On a charge priced
    /// [by consumption](Self::by_consumption), whether set before or after, it is not
    /// used.
    pub fn units(mut self, units: u64) -> Self {
        if let Price::PerRequest(_) = self.price {
            self.price = Price::PerRequest(units);
        }
        self
    }

    /// Prices the route by what each request consumed instead of a fixed number of
    /// units: admission holds nothing, the handler reserves an upper bound and reports
    /// what it used through the request's [`Usage`](crate::Usage), and the amount is
    /// settled when the response body ends ([`Price::ByConsumption`]). A number of
    /// [`units`](Self::units) set on the same charge is not used.
    ///
    /// ```
    /// use paywall::Charge;
    ///
    /// let completions = Charge::new("prd_llm").meter("tokens").by_consumption();
    /// # let _ = completions;
    /// ```
    pub fn by_consumption(mut self) -> Self {
        self.price = Price::ByConsumption;
        self
    }

    /// Overrides the paywall's fail policy for this route.
    pub fn fail_policy(mut self, policy: FailPolicy) -> Self {
        self.fail_policy = Some(policy);
        self
    }

    /// The product reference.
    pub fn product(&self) -> &str {
        &self.product
    }

    /// How the route is priced.
    pub fn price(&self) -> Price {
        self.price
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !is_reference(&self.product) {
            return Err(ConfigError::InvalidProduct(self.product.clone()));
        }
        if !is_reference(&self.meter) {
            return Err(ConfigError::InvalidMeter(self.meter.clone()));
        }
        if let Price::PerRequest(units @ (0 | MAX_UNITS_PLUS_ONE..)) = self.price {
            return Err(ConfigError::InvalidUnits(units));
        }
        Ok(())
    }
}

/// A product or meter name: 1 to 128 visible ASCII characters, no spaces or quotes.
fn is_reference(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A charge as the engine uses it: validated, interned, cheap to share.
#[derive(Clone, Debug)]
pub(crate) struct RouteCharge {
    pub(crate) product: Arc<str>,
    pub(crate) meter: Arc<str>,
    pub(crate) price: Price,
    pub(crate) fail_policy: FailPolicy,
    /// Interned (product, meter) pair: the budget key's second half.
    pub(crate) meter_id: u32,
    /// The route's last `RateLimit-Policy` value.
    pub(crate) quota_policy: crate::quota::PolicyCache,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_bad_products_meters_and_costs() {
        assert!(Charge::new("prd_ok").validate().is_ok());
        assert_eq!(
            Charge::new("").validate(),
            Err(ConfigError::InvalidProduct(String::new()))
        );
        assert!(matches!(
            Charge::new("prd with space").validate(),
            Err(ConfigError::InvalidProduct(_))
        ));
        assert!(matches!(
            Charge::new("prd_ok").meter("").validate(),
            Err(ConfigError::InvalidMeter(_))
        ));
        assert_eq!(
            Charge::new("prd_ok").units(0).validate(),
            Err(ConfigError::InvalidUnits(0))
        );
        assert_eq!(
            Charge::new("prd_ok").units(MAX_UNITS + 1).validate(),
            Err(ConfigError::InvalidUnits(MAX_UNITS + 1))
        );
    }
}
