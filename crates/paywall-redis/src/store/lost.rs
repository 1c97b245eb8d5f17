//! Calls on a budget whose answer never came (a timeout, a dropped connection): they
//! may have run on Redis. Their tokens go with this instance's next call on the same
//! budget, whose script then counts what they settled once and takes back what they
//! granted (see the scripts' prelude).

use std::collections::HashMap;
use std::sync::Mutex;

/// The most lost calls remembered per budget; beyond that the oldest is forgotten (its
/// settlement, if it ran, may then count twice: fewer units admitted, never more).
const KEEP: usize = 8;

/// Lost calls by budget key.
#[derive(Debug, Default)]
pub(crate) struct LostCalls {
    by_budget: Mutex<HashMap<String, Vec<String>>>,
}

impl LostCalls {
    /// The tokens of the calls lost on `key` since its last answered call,
    /// comma-separated (empty: none).
    pub(crate) fn tokens(&self, key: &str) -> String {
        self.with(|lost| lost.get(key).map(|tokens| tokens.join(",")))
            .unwrap_or_default()
    }

    /// The call `token` on `key` got no answer.
    pub(crate) fn lost(&self, key: &str, token: String) {
        self.with(|lost| {
            let tokens = lost.entry(key.to_owned()).or_default();
            if tokens.len() == KEEP {
                tokens.remove(0);
            }
            tokens.push(token);
        });
    }

    /// A call on `key` was answered, having settled the lost ones.
    pub(crate) fn answered(&self, key: &str, had_lost: bool) {
        if had_lost {
            self.with(|lost| lost.remove(key));
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Vec<String>>) -> T) -> T {
        let mut lost = self
            .by_budget
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_tokens_go_with_the_next_call_until_one_is_answered() {
        let calls = LostCalls::default();
        assert_eq!(calls.tokens("b"), "");
        calls.lost("b", "t1".into());
        calls.lost("b", "t2".into());
        calls.lost("other", "t3".into());
        assert_eq!(calls.tokens("b"), "t1,t2");
        calls.answered("b", true);
        assert_eq!(calls.tokens("b"), "");
        assert_eq!(calls.tokens("other"), "t3");
        for n in 0..10 {
            calls.lost("other", format!("u{n}"));
        }
        assert_eq!(calls.tokens("other").split(',').count(), KEEP);
        assert!(calls.tokens("other").ends_with("u9"));
    }
}
