//! Checkout links for 402s that have none: [`CheckoutLinks`].

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tracing::warn;

use crate::backend::DynBackend;
use crate::charge::RouteCharge;
use crate::customer::{Customer, CustomerRef};

/// How long a 402 waits for a checkout link before it is answered without one.
const CHECKOUT_LINK_TIMEOUT: Duration = Duration::from_secs(3);

/// Checkout links for 402s that have none: asked of the backend once for concurrent
/// 402s of a customer and product, kept briefly.
pub(in crate::engine) struct CheckoutLinks {
    links: Cache<(CustomerRef, Arc<str>), Arc<str>>,
}

impl CheckoutLinks {
    /// At most `capacity` links, each kept a minute.
    pub(in crate::engine) fn new(capacity: u64) -> Self {
        Self {
            links: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// Where `customer` can pay for the route's product, or `None` (the 402 omits the
    /// link) when the backend has none, fails or is slow.
    pub(in crate::engine) async fn get(
        &self,
        customer: &Customer,
        route: &RouteCharge,
        backend: &dyn DynBackend,
    ) -> Option<String> {
        let key = (customer.reference().clone(), Arc::clone(&route.product));
        let link = self
            .links
            .try_get_with(key, async {
                let asked = backend.checkout_url_boxed(customer.reference(), &route.product);
                match tokio::time::timeout(CHECKOUT_LINK_TIMEOUT, asked).await {
                    Ok(Ok(Some(url))) if !url.is_empty() => Ok(Arc::<str>::from(url)),
                    Ok(Ok(_)) => Err(()),
                    Ok(Err(err)) => {
                        warn!(error = %err, customer = %customer.reference(), "no checkout link for a 402");
                        Err(())
                    }
                    Err(_) => {
                        warn!(customer = %customer.reference(), "checkout link timed out; the 402 has none");
                        Err(())
                    }
                }
            })
            .await;
        link.ok().map(|url| url.to_string())
    }
}
