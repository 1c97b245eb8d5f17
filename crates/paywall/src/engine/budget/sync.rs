//! What one budget has settled with the shared store: the generation its spare units
//! came from, the acknowledgements reported, and units given back by a call that got
//! no answer. Guarded by the budget's gate (one store call at a time per budget).

/// What this budget has settled with the shared store; guarded by the budget's gate.
#[derive(Debug, Default)]
pub(crate) struct LeaseSync {
    /// The shared budget's generation the spare units came from.
    pub(crate) generation: u64,
    /// Acknowledged units already reported to the store.
    pub(crate) acked_pushed: u64,
    /// Spare units given back by a call that got no answer, under the session they
    /// were leased in: the store may have taken them, so they are not admitted from
    /// again but given back with the next call (which the store counts once).
    pending_back: (u64, u64),
}

impl LeaseSync {
    /// The units to give back again under `session` (none from another session: those
    /// are void).
    pub(crate) fn take_pending(&mut self, session: u64) -> u64 {
        let (under, units) = std::mem::take(&mut self.pending_back);
        if under == session {
            units
        } else {
            0
        }
    }

    /// A call giving back `units` under `session` got no answer.
    pub(crate) fn hold_back(&mut self, session: Option<u64>, units: u64) {
        if let Some(session) = session.filter(|_| units > 0) {
            self.pending_back = (session, units);
        }
    }

    /// Whether units wait to be given back.
    pub(crate) fn holds_back(&self) -> bool {
        self.pending_back.1 > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_held_back_go_back_once_and_only_under_their_session() {
        let mut sync = LeaseSync::default();
        sync.hold_back(None, 4);
        assert!(!sync.holds_back(), "nothing was leased without a session");
        sync.hold_back(Some(1), 4);
        assert!(sync.holds_back());
        assert_eq!(sync.take_pending(1), 4);
        assert_eq!(sync.take_pending(1), 0, "given back once");
        sync.hold_back(Some(1), 3);
        assert_eq!(sync.take_pending(2), 0, "void under a new session");
        assert!(!sync.holds_back());
    }
}
