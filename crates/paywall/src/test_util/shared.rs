//! [`MemoryShared`]: the shared-budget protocol in memory, for several engines in one
//! process. It keeps the same books as `paywall-redis`'s scripts (limit, units spent,
//! units leased per instance session, freshness, one refresher at a time), so the
//! engine's lease protocol is tested without a Redis server.
//!
//! Instead of expiring sessions on a clock, the store forgets an instance's session
//! when the test says so ([`MemorySharedInstance::forget`]) or when the instance dies
//! ([`MemorySharedInstance::kill`], or dropping its last handle); the next refresh
//! reclaims the units leased under forgotten sessions.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::Limits;
use crate::shared::{
    BudgetId, LeaseAnswer, LeaseRequest, RefreshTicket, SharedBudgets, SharedError,
};

const UNREGISTERED: u64 = u64::MAX;

/// An in-memory shared budget store. Give each engine its own
/// [`instance`](Self::instance), as each process would have its own Redis client.
#[derive(Clone, Debug)]
pub struct MemoryShared {
    store: Arc<Store>,
}

#[derive(Debug)]
struct Store {
    books: Mutex<Books>,
    origin: Instant,
    lock_ttl: Duration,
    next_instance: AtomicU64,
}

#[derive(Debug, Default)]
struct Books {
    budgets: HashMap<(String, String, String), Entry>,
    /// Live sessions, as `<instance>.<session>`.
    sessions: HashSet<String>,
    /// Refresh locks by budget: token, expiry (store milliseconds), and the budget's
    /// generation when the lock was taken (0: no budget).
    locks: HashMap<(String, String, String), (String, u64, u64)>,
    next_generation: u64,
    next_token: u64,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    limit: u64,
    spent: u64,
    out: u64,
    leased: HashMap<String, u64>,
    fresh_until: u64,
    failed_until: u64,
    info: Limits,
}

impl Default for MemoryShared {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryShared {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            store: Arc::new(Store {
                books: Mutex::new(Books::default()),
                origin: Instant::now(),
                lock_ttl: Duration::from_secs(5),
                next_instance: AtomicU64::new(1),
            }),
        }
    }

    /// A new instance's connection to the store.
    pub fn instance(&self) -> MemorySharedInstance {
        MemorySharedInstance {
            inner: Arc::new(Instance {
                store: Arc::clone(&self.store),
                id: self.store.next_instance.fetch_add(1, Ordering::SeqCst),
                session: AtomicU64::new(0),
                registered: AtomicU64::new(UNREGISTERED),
                reachable: AtomicBool::new(true),
                calls: AtomicUsize::new(0),
            }),
        }
    }

    /// Units of a budget not yet spent or leased, if the store holds it.
    pub fn available(&self, customer: &str, product: &str, meter: &str) -> Option<u64> {
        let books = self.store.books();
        let entry = books.budgets.get(&key(customer, product, meter))?;
        Some(entry.limit.saturating_sub(entry.spent + entry.out))
    }

    /// Units of a budget leased to instances and not yet acknowledged.
    pub fn leased(&self, customer: &str, product: &str, meter: &str) -> u64 {
        let books = self.store.books();
        books
            .budgets
            .get(&key(customer, product, meter))
            .map_or(0, |entry| entry.out)
    }
}

/// One instance's handle on a [`MemoryShared`] store; pass it (or a clone) to
/// [`PaywallBuilder::shared_budgets`](crate::PaywallBuilder::shared_budgets).
#[derive(Clone, Debug)]
pub struct MemorySharedInstance {
    inner: Arc<Instance>,
}

#[derive(Debug)]
struct Instance {
    store: Arc<Store>,
    id: u64,
    session: AtomicU64,
    registered: AtomicU64,
    reachable: AtomicBool,
    calls: AtomicUsize,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let prefix = format!("{}.", self.id);
        self.store
            .books()
            .sessions
            .retain(|m| !m.starts_with(&prefix));
    }
}

impl MemorySharedInstance {
    /// Cuts the instance off the store (every call fails) or reconnects it.
    pub fn set_reachable(&self, reachable: bool) {
        self.inner.reachable.store(reachable, Ordering::SeqCst);
    }

    /// The store forgets this instance's session, as after a long partition: the next
    /// refresh reclaims its leased units, and the instance finds out on its next call.
    pub fn forget(&self) {
        let prefix = format!("{}.", self.inner.id);
        self.inner
            .store
            .books()
            .sessions
            .retain(|m| !m.starts_with(&prefix));
    }

    /// The instance dies: it is forgotten and never reaches the store again.
    pub fn kill(&self) {
        self.set_reachable(false);
        self.forget();
    }

    /// Calls made to the store so far.
    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// Counts the call; fails when cut off.
    fn call(&self) -> Result<(), SharedError> {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        if self.inner.reachable.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(SharedError::Unavailable("cut off from the store".into()))
        }
    }

    fn member(&self, session: u64) -> String {
        format!("{}.{}", self.inner.id, session)
    }

    /// Adds the current session to the live set. A session that had been registered
    /// and is found missing was forgotten: a new session starts, and the old one stays
    /// dead, so every unit leased under it is void (and reclaimed by the next refresh).
    fn register(&self, books: &mut Books) -> u64 {
        let inner = &*self.inner;
        let session = inner.session.load(Ordering::SeqCst);
        let member = self.member(session);
        let joined = books.sessions.insert(member.clone());
        if inner.registered.load(Ordering::SeqCst) != session {
            inner.registered.store(session, Ordering::SeqCst);
        } else if joined {
            books.sessions.remove(&member);
            inner.session.store(session + 1, Ordering::SeqCst);
        }
        session
    }
}

impl Store {
    fn books(&self) -> MutexGuard<'_, Books> {
        self.books
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

fn key(customer: &str, product: &str, meter: &str) -> (String, String, String) {
    (customer.to_owned(), product.to_owned(), meter.to_owned())
}

fn id_key(id: BudgetId<'_>) -> (String, String, String) {
    key(id.customer.as_str(), id.product, id.meter)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Books {
    /// Takes the refresh lock of `key` if it is free; returns the token.
    fn try_lock(&mut self, key: &(String, String, String), now: u64, ttl: u64) -> Option<String> {
        if self
            .locks
            .get(key)
            .is_some_and(|(_, until, _)| *until > now)
        {
            return None;
        }
        self.next_token += 1;
        let token = format!("lock-{}", self.next_token);
        let generation = self.generation(key);
        self.locks.insert(
            key.clone(),
            (token.clone(), now.saturating_add(ttl), generation),
        );
        Some(token)
    }

    fn holds(&self, key: &(String, String, String), ticket: &RefreshTicket, now: u64) -> bool {
        match (&ticket.lock, self.locks.get(key)) {
            (Some(token), Some((held, until, _))) => token == held && *until > now,
            _ => false,
        }
    }

    /// Whether the budget is still the incarnation the held lock was taken on.
    fn locked_generation_is_current(&self, key: &(String, String, String)) -> bool {
        self.locks
            .get(key)
            .is_some_and(|(_, _, generation)| *generation == self.generation(key))
    }

    fn generation(&self, key: &(String, String, String)) -> u64 {
        self.budgets.get(key).map_or(0, |entry| entry.generation)
    }
}

impl Entry {
    /// Settles what `member` owes: acknowledged units become spent, and acknowledged
    /// or returned units stop counting as leased to it.
    fn settle(&mut self, member: &str, acks: u64, give_back: u64) {
        let mine = self.leased.remove(member).unwrap_or(0);
        let settled = mine.min(acks.saturating_add(give_back));
        self.spent = self.spent.saturating_add(acks);
        self.out = self.out.saturating_sub(settled);
        if mine > settled {
            self.leased.insert(member.to_owned(), mine - settled);
        }
    }
}

impl SharedBudgets for MemorySharedInstance {
    async fn lease(
        &self,
        id: BudgetId<'_>,
        request: LeaseRequest,
    ) -> Result<LeaseAnswer, SharedError> {
        self.call()?;
        let store = &self.inner.store;
        let now = store.now_ms();
        let lock_ttl = millis(store.lock_ttl);
        let key = id_key(id);
        let mut books = store.books();
        let session = self.register(&mut books);
        let member = self.member(session);
        if !books.budgets.contains_key(&key) {
            // A prefetch never takes the lock: the request that needs units refreshes.
            let lock = if request.need > 0 {
                books.try_lock(&key, now, lock_ttl)
            } else {
                None
            };
            return Ok(LeaseAnswer::Refresh(RefreshTicket {
                acked_before: 0,
                lock,
            }));
        }
        let (fresh_until, failed_until, spent) = {
            let entry = books.budgets.get_mut(&key).ok_or_else(missing)?;
            entry.settle(&member, request.acks, request.give_back);
            (entry.fresh_until, entry.failed_until, entry.spent)
        };
        if fresh_until <= now && !request.stale_ok {
            if request.need == 0 {
                return Ok(LeaseAnswer::Refresh(RefreshTicket {
                    acked_before: spent,
                    lock: None,
                }));
            }
            if let Some(token) = books.try_lock(&key, now, lock_ttl) {
                return Ok(LeaseAnswer::Refresh(RefreshTicket {
                    acked_before: spent,
                    lock: Some(token),
                }));
            }
            if failed_until > now {
                return Ok(LeaseAnswer::Unavailable {
                    retry_after: Duration::from_millis(failed_until - now),
                });
            }
            // Another instance is refreshing right now: grant from what is known.
        }
        let entry = books.budgets.get_mut(&key).ok_or_else(missing)?;
        let available = entry.limit.saturating_sub(entry.spent + entry.out);
        if available < request.need {
            return Ok(LeaseAnswer::Exhausted {
                remaining: available,
                limits: Some(entry.info.clone()),
            });
        }
        let want = request.want.max(request.need);
        let extra = (want - request.need).min((available - request.need) / 4);
        let granted = request.need + extra;
        entry.out += granted;
        *entry.leased.entry(member).or_insert(0) += granted;
        Ok(LeaseAnswer::Granted {
            units: granted,
            generation: entry.generation,
            session,
        })
    }

    async fn install(
        &self,
        id: BudgetId<'_>,
        ticket: &RefreshTicket,
        limits: &Limits,
        ttl: Duration,
    ) -> Result<(), SharedError> {
        self.call()?;
        let store = &self.inner.store;
        let now = store.now_ms();
        let key = id_key(id);
        let mut books = store.books();
        let owns = books.holds(&key, ticket, now);
        // A budget created or recreated since the lock was taken is another refresh's:
        // this ticket's `acked_before` belongs to the incarnation it saw.
        let holds = owns && books.locked_generation_is_current(&key);
        if owns && !holds {
            books.locks.remove(&key);
        }
        let exists = books.budgets.contains_key(&key);
        if exists && !holds {
            return Ok(()); // another refresh won
        }
        let Books {
            budgets,
            sessions,
            next_generation,
            ..
        } = &mut *books;
        let entry = budgets.entry(key.clone()).or_insert_with(|| {
            *next_generation += 1;
            Entry {
                generation: *next_generation,
                limit: 0,
                spent: 0,
                out: 0,
                leased: HashMap::new(),
                fresh_until: 0,
                failed_until: 0,
                info: Limits::default(),
            }
        });
        // Units leased under forgotten sessions come back.
        let forgotten: Vec<String> = entry
            .leased
            .keys()
            .filter(|member| !sessions.contains(*member))
            .cloned()
            .collect();
        for member in forgotten {
            let units = entry.leased.remove(&member).unwrap_or(0);
            entry.out = entry.out.saturating_sub(units);
        }
        entry.limit = limits.allowed().saturating_add(ticket.acked_before);
        entry.fresh_until = now.saturating_add(millis(ttl));
        entry.failed_until = 0;
        entry.info = limits.clone();
        if holds {
            books.locks.remove(&key);
        }
        Ok(())
    }

    async fn refresh_failed(
        &self,
        id: BudgetId<'_>,
        ticket: &RefreshTicket,
        retry_after: Duration,
    ) -> Result<(), SharedError> {
        self.call()?;
        let store = &self.inner.store;
        let now = store.now_ms();
        let until = now.saturating_add(millis(retry_after));
        let key = id_key(id);
        let mut books = store.books();
        if books.holds(&key, ticket, now) {
            if let Some(lock) = books.locks.get_mut(&key) {
                lock.1 = until;
            }
            if let Some(entry) = books.budgets.get_mut(&key) {
                entry.failed_until = until;
            }
        }
        Ok(())
    }

    async fn settle(&self, id: BudgetId<'_>, acks: u64, give_back: u64) -> Result<(), SharedError> {
        self.call()?;
        let key = id_key(id);
        let mut books = self.inner.store.books();
        let session = self.register(&mut books);
        let member = self.member(session);
        if let Some(entry) = books.budgets.get_mut(&key) {
            entry.settle(&member, acks, give_back);
        }
        Ok(())
    }

    async fn mark_stale(&self, id: BudgetId<'_>) -> Result<(), SharedError> {
        self.call()?;
        if let Some(entry) = self.inner.store.books().budgets.get_mut(&id_key(id)) {
            entry.fresh_until = 0;
        }
        Ok(())
    }

    /// The registered session while the store still knows it: a forgotten instance
    /// notices at once (as if its heartbeat ran on every request).
    fn session(&self) -> Option<u64> {
        let inner = &*self.inner;
        if !inner.reachable.load(Ordering::SeqCst) {
            return None;
        }
        let session = inner.session.load(Ordering::SeqCst);
        if inner.registered.load(Ordering::SeqCst) != session {
            return None;
        }
        let live = inner.store.books().sessions.contains(&self.member(session));
        live.then_some(session)
    }
}

fn missing() -> SharedError {
    SharedError::Unavailable("budget vanished".into())
}
