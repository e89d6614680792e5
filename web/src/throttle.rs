//! Sign-in throttling: too many failed sign-ins lock a user name or an address for a while.
//!
//! Failures are counted per user name (lower-cased, whether or not the user
//! exists, so a lock says nothing about which names are real) and per client
//! address. An address may fail [`ADDRESS_FACTOR`] times as often as a name
//! before it is locked, so one office behind a NAT is not shut out by one
//! person's typos, while guessing many names from one place is still slowed.
//! IPv6 clients are counted per /64, the block one subscriber usually holds;
//! IPv4-mapped IPv6 addresses count as their IPv4 address.
//!
//! A success clears the user name's count but not the address's, so an
//! attacker who owns one account cannot reset their address by signing in.
//!
//! Memory is bounded: counters older than their window are dropped, and at
//! [`MAX_ENTRIES`] the least recently failed counter is evicted (unlocked ones first).
//!
//! Failure modes: none; a poisoned lock is recovered because every update
//! leaves the table consistent.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How many times more failures an address may have than a user name.
pub const ADDRESS_FACTOR: u32 = 4;
/// The most counters kept at once.
pub const MAX_ENTRIES: usize = 10_000;
/// Longer user names are counted by this many characters (bounds memory).
const MAX_NAME_CHARS: usize = 128;

/// When to lock, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one user name within `window` that lock it.
    pub max_failures: u32,
    /// The span over which failures add up; a quiet window starts the count afresh.
    pub window: Duration,
    /// How long a lock lasts.
    pub lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// What is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockedBy {
    User,
    Address,
}

/// A refused sign-in attempt: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
    pub by: LockedBy,
}

impl fmt::Display for Locked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let minutes = self.retry_after.as_secs().div_ceil(60).max(1);
        let plural = if minutes == 1 { "" } else { "s" };
        write!(
            f,
            "too many failed sign-ins; try again in {minutes} minute{plural}"
        )
    }
}

impl std::error::Error for Locked {}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug)]
struct Counter {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

impl Counter {
    fn locked_at(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Neither locked nor within its counting window: forgetting it changes nothing.
    fn stale(&self, policy: &ThrottlePolicy, now: Instant) -> bool {
        self.locked_at(now).is_none()
            && now.saturating_duration_since(self.window_start) >= policy.window
    }
}

/// Counts failed sign-ins and says when to refuse one. Thread-safe.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    table: Mutex<HashMap<Key, Counter>>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<Key, Counter>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err` if `user` or `ip` is locked now. Call before checking the password.
    pub fn check(&self, user: &str, ip: IpAddr, now: Instant) -> Result<(), Locked> {
        let table = self.table();
        let locked = |key: Key, by| {
            table
                .get(&key)
                .and_then(|c| c.locked_at(now))
                .map(|retry_after| Locked { retry_after, by })
        };
        match locked(user_key(user), LockedBy::User)
            .or_else(|| locked(address_key(ip), LockedBy::Address))
        {
            Some(locked) => Err(locked),
            None => Ok(()),
        }
    }

    /// Records a failed sign-in of `user` from `ip`.
    pub fn failure(&self, user: &str, ip: IpAddr, now: Instant) {
        let limit = self.policy.max_failures.max(1);
        let mut table = self.table();
        self.count(&mut table, user_key(user), limit, now);
        self.count(
            &mut table,
            address_key(ip),
            limit.saturating_mul(ADDRESS_FACTOR),
            now,
        );
    }

    /// Records a successful sign-in: the user name's count starts afresh.
    /// The address keeps its count (see the module docs).
    pub fn success(&self, user: &str, _ip: IpAddr) {
        self.table().remove(&user_key(user));
    }

    fn count(&self, table: &mut HashMap<Key, Counter>, key: Key, limit: u32, now: Instant) {
        if !table.contains_key(&key) && table.len() >= MAX_ENTRIES {
            self.make_room(table, now);
        }
        let counter = table.entry(key).or_insert(Counter {
            failures: 0,
            window_start: now,
            locked_until: None,
            last_failure: now,
        });
        let lock_over = counter.locked_until.is_some_and(|until| until <= now);
        if lock_over || now.saturating_duration_since(counter.window_start) >= self.policy.window {
            counter.failures = 0;
            counter.window_start = now;
            counter.locked_until = None;
        }
        counter.last_failure = counter.last_failure.max(now);
        counter.failures = counter.failures.saturating_add(1);
        if counter.failures >= limit && counter.locked_until.is_none() {
            counter.locked_until = Some(now + self.policy.lockout);
        }
    }

    fn make_room(&self, table: &mut HashMap<Key, Counter>, now: Instant) {
        table.retain(|_, c| !c.stale(&self.policy, now));
        if table.len() < MAX_ENTRIES {
            return;
        }
        let victim = table
            .iter()
            .min_by_key(|(_, c)| (c.locked_at(now).is_some(), c.last_failure))
            .map(|(key, _)| key.clone());
        if let Some(victim) = victim {
            table.remove(&victim);
        }
    }

    /// How many counters are kept (for the status page and tests).
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn user_key(user: &str) -> Key {
    Key::User(
        user.trim()
            .to_lowercase()
            .chars()
            .take(MAX_NAME_CHARS)
            .collect(),
    )
}

fn address_key(ip: IpAddr) -> Key {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
        v4 => v4,
    };
    Key::Address(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MIN: Duration = Duration::from_secs(60);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn locks_a_user_after_five_failures() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let t0 = Instant::now();
        for i in 0..4 {
            t.failure("Ada", ip(i), t0 + i as u32 * MIN);
            assert!(t.check("ada", ip(99), t0 + 5 * MIN).is_ok());
        }
        t.failure("ADA", ip(4), t0 + 5 * MIN);
        let locked = t.check("ada", ip(99), t0 + 6 * MIN).unwrap_err();
        assert_eq!(locked.by, LockedBy::User);
        assert_eq!(locked.retry_after, 14 * MIN);
        assert_eq!(
            locked.to_string(),
            "too many failed sign-ins; try again in 14 minutes"
        );
        assert!(
            t.check("bob", ip(99), t0 + 6 * MIN).is_ok(),
            "other names are not locked"
        );
        assert!(
            t.check("ada", ip(99), t0 + 20 * MIN).is_ok(),
            "the lock ends"
        );
        // After the lock, the count starts afresh.
        t.failure("ada", ip(1), t0 + 21 * MIN);
        assert!(t.check("ada", ip(1), t0 + 21 * MIN).is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let t0 = Instant::now();
        for i in 0..4 {
            t.failure("ada", ip(1), t0 + i * MIN);
        }
        t.failure("ada", ip(1), t0 + 16 * MIN);
        assert!(t.check("ada", ip(1), t0 + 16 * MIN).is_ok());
    }

    #[test]
    fn success_clears_the_user_but_not_the_address() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let t0 = Instant::now();
        for _ in 0..4 {
            t.failure("ada", ip(1), t0);
        }
        t.success("ada", ip(1));
        t.failure("ada", ip(1), t0);
        assert!(t.check("ada", ip(1), t0).is_ok());
        // The address has 5 of its 20; 15 more (spread over names) lock it.
        for i in 0..15 {
            t.failure(&format!("user{i}"), ip(1), t0);
        }
        let locked = t.check("someone", ip(1), t0).unwrap_err();
        assert_eq!(locked.by, LockedBy::Address);
        assert!(t.check("someone", ip(2), t0).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let t0 = Instant::now();
        for i in 0..20u16 {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, i, i, i);
            t.failure(&format!("u{i}"), IpAddr::V6(addr), t0);
        }
        let same_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        let other_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(t.check("x", same_64, t0).is_err());
        assert!(t.check("x", other_64, t0).is_ok());

        for i in 0..20 {
            t.failure(&format!("v{i}"), ip(7), t0);
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(t.check("x", mapped, t0).unwrap_err().by, LockedBy::Address);
    }

    #[test]
    fn memory_is_bounded_and_locks_survive_eviction_longest() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            t.failure("victim", ip(1), t0);
        }
        for i in 0..(MAX_ENTRIES as u32 + 500) {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.failure("", addr, t0 + MIN);
        }
        assert!(t.len() <= MAX_ENTRIES);
        assert!(
            t.check("victim", ip(200), t0 + MIN).is_err(),
            "locked entries go last"
        );

        // Stale entries are dropped before anything live is evicted.
        t.failure("fresh", ip(3), t0 + 40 * MIN);
        assert!(t.len() < 10, "{}", t.len());
    }
}
