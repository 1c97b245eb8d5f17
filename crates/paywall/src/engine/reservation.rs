//! [`Reservation`]: units held in a budget for a request, given back on drop unless
//! committed.

use std::sync::Arc;

use super::Budget;

/// Units held for an admitted request; given back on drop unless committed.
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    units: u64,
    /// Taken from units leased from the shared store (given back to the lease).
    leased: bool,
}

impl Reservation {
    pub(super) fn local(budget: Arc<Budget>, units: u64) -> Self {
        Self {
            budget,
            units,
            leased: false,
        }
    }

    pub(super) fn leased(budget: Arc<Budget>, units: u64) -> Self {
        Self {
            budget,
            units,
            leased: true,
        }
    }

    /// The budget the units are held in.
    pub(super) fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Whether the units come from a lease of the shared store.
    pub(super) fn is_leased(&self) -> bool {
        self.leased
    }

    /// Units still held.
    pub(super) fn units(&self) -> u64 {
        self.units
    }

    /// Keeps the units consumed and hands the budget on, to be acknowledged later.
    pub(super) fn commit(mut self) -> Arc<Budget> {
        self.units = 0; // nothing to give back on drop
        Arc::clone(&self.budget)
    }

    /// Keeps `units` of the held units consumed (at most all of them); the rest are
    /// given back on drop.
    pub(super) fn commit_part(&mut self, units: u64) -> Arc<Budget> {
        self.units = self.units.saturating_sub(units);
        Arc::clone(&self.budget)
    }

    /// Holds up to `units` more from the same budget, as many as are there right now,
    /// without waiting (a local compare-and-swap, or the instance's spare leased units
    /// under `session`). Returns how many were taken.
    pub(super) fn grow_up_to(&mut self, units: u64, session: Option<u64>) -> u64 {
        let mut want = units;
        // A few tries: a concurrent request may take what was there between the look
        // and the compare-and-swap.
        for _ in 0..4 {
            if want == 0 {
                return 0;
            }
            let taken = if self.leased {
                self.budget.try_take_leased(session, want)
            } else {
                self.budget.try_reserve(want)
            };
            if taken {
                self.units += want;
                return want;
            }
            let available = if self.leased {
                if self.budget.lease_is_current(session) {
                    self.budget.spare()
                } else {
                    0
                }
            } else {
                self.budget.remaining()
            };
            want = want.min(available);
        }
        0
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.units > 0 {
            if self.leased {
                self.budget.release_leased(self.units);
            } else {
                self.budget.release(self.units);
            }
        }
    }
}
