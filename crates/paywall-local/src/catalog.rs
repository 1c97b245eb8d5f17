//! What the embedded backend sells: [`Product`]s with a free and a paid [`Plan`], and a
//! customer's [`Allowance`].

use std::time::Duration;

use paywall::backend::Limits;

/// A plan of a product: units per period at a price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The plan reference (`pln_...`).
    pub reference: String,
    /// Display name.
    pub name: String,
    /// Units per period.
    pub units: u64,
    /// Length of a period.
    pub period: Duration,
    /// Price per period in cents (0 for the free plan).
    pub price_cents: u64,
}

/// A product with its free plan (every customer's default) and one paid plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    pub(crate) reference: String,
    pub(crate) name: String,
    pub(crate) free_plan: Plan,
    pub(crate) paid_plan: Plan,
}

const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

impl Product {
    /// A product with 5 free units and a paid plan of 1,000 units (9.00 per period),
    /// periods of 30 days.
    pub fn new(reference: impl Into<String>) -> Self {
        let reference = reference.into();
        Self {
            name: reference.clone(),
            free_plan: Plan {
                reference: format!("pln_{reference}_free"),
                name: "Free".into(),
                units: 5,
                period: MONTH,
                price_cents: 0,
            },
            paid_plan: Plan {
                reference: format!("pln_{reference}_pro"),
                name: "Pro".into(),
                units: 1000,
                period: MONTH,
                price_cents: 900,
            },
            reference,
        }
    }

    /// Display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Units per period on the free plan.
    pub fn free_units(mut self, units: u64) -> Self {
        self.free_plan.units = units;
        self
    }

    /// Units per period on the paid plan.
    pub fn paid_units(mut self, units: u64) -> Self {
        self.paid_plan.units = units;
        self
    }

    /// Price of the paid plan, in cents per period (at least 1).
    pub fn price_cents(mut self, cents: u64) -> Self {
        self.paid_plan.price_cents = cents.max(1);
        self
    }

    /// Length of a period, for both plans.
    pub fn period(mut self, period: Duration) -> Self {
        self.free_plan.period = period;
        self.paid_plan.period = period;
        self
    }
}

/// A customer's allowance for one product and meter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// What a limits check answers (no checkout URL: the caller adds its own).
    pub limits: Limits,
    /// Whether the customer is on the product's free plan (has bought nothing).
    pub on_free_plan: bool,
}

impl Allowance {
    /// Whether a limits answer should point to a checkout: the customer is on the free
    /// plan, or has used up the paid one.
    pub fn offers_checkout(&self) -> bool {
        self.on_free_plan || self.limits.remaining == 0
    }
}
