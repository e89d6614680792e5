//! Signed-in sessions: random tokens in a `__Host-` cookie, kept in memory.
//!
//! [`Sessions::create`] makes a 32-byte random token (sent once, as the cookie)
//! and a separate 32-byte CSRF token (for forms and `X-CSRF-Token`). Only the
//! SHA-256 of a session token is stored, so a memory dump or a debug print of
//! the table does not yield usable cookies.
//!
//! A session ends when it has been idle for [`SessionLimits::idle`], when it is
//! older than [`SessionLimits::absolute`], when its user signs out, or when
//! [`Sessions::end_user`] signs a user out everywhere (password changed, user
//! disabled). Sessions do not survive a restart of the daemon.
//!
//! Failure modes: an unknown, expired or malformed token is simply `None`. The
//! only panic is a failing operating-system random source in [`Sessions::create`]:
//! without randomness no safe token can be made.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// The session cookie's name. The `__Host-` prefix makes browsers refuse it
/// unless it is `Secure`, has `Path=/` and no `Domain`, so no other host can plant it.
pub const COOKIE: &str = "__Host-consentry";

/// Length of a random token before hex encoding.
const TOKEN_BYTES: usize = 32;

/// How long a session may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ends a session this long after its last request.
    pub idle: Duration,
    /// Ends a session this long after sign-in, however busy.
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 60 * 60),
        }
    }
}

/// What [`Sessions::create`] hands back: the cookie value and the CSRF token.
/// These are the only copies of the token; `Debug` hides both.
#[derive(Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession").finish_non_exhaustive()
    }
}

/// A live session as a request sees it. `Debug` hides the CSRF token.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionView {
    pub user: String,
    pub csrf: String,
    pub created: Instant,
}

impl fmt::Debug for SessionView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionView")
            .field("user", &self.user)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

struct Entry {
    user: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Entry {
    fn expired(&self, limits: &SessionLimits, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) >= limits.idle
            || now.saturating_duration_since(self.created) >= limits.absolute
    }
}

type TokenHash = [u8; 32];

/// The table of live sessions, keyed by the SHA-256 of their tokens. Thread-safe.
pub struct Sessions {
    limits: SessionLimits,
    rng: SystemRandom,
    table: Mutex<HashMap<TokenHash, Entry>>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("limits", &self.limits)
            .field("count", &self.count())
            .finish()
    }
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            rng: SystemRandom::new(),
            table: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    // Every critical section leaves the map consistent, so a panic elsewhere
    // while the lock was held does not make its contents wrong.
    fn table(&self) -> MutexGuard<'_, HashMap<TokenHash, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn random_hex(&self) -> String {
        let mut bytes = [0u8; TOKEN_BYTES];
        // Without randomness there is no safe token; refusing to sign in is the
        // only correct answer, and the OS source does not fail in practice.
        self.rng
            .fill(&mut bytes)
            .expect("the operating system's random source failed");
        hex(&bytes)
    }

    /// Starts a session for `user` and returns its token and CSRF token.
    pub fn create(&self, user: &str, now: Instant) -> NewSession {
        let session = NewSession {
            token: self.random_hex(),
            csrf: self.random_hex(),
        };
        let entry = Entry {
            user: user.to_owned(),
            csrf: session.csrf.clone(),
            created: now,
            last_seen: now,
        };
        self.table().insert(token_hash(&session.token), entry);
        session
    }

    /// The session behind `token`, if it is live; this request counts as activity.
    /// An expired session is removed.
    pub fn get(&self, token: &str, now: Instant) -> Option<SessionView> {
        let key = token_hash(token);
        let mut table = self.table();
        let entry = table.get_mut(&key)?;
        if entry.expired(&self.limits, now) {
            table.remove(&key);
            return None;
        }
        entry.last_seen = entry.last_seen.max(now);
        Some(SessionView {
            user: entry.user.clone(),
            csrf: entry.csrf.clone(),
            created: entry.created,
        })
    }

    /// Ends the session behind `token` (sign out). Unknown tokens are ignored.
    pub fn end(&self, token: &str) {
        self.table().remove(&token_hash(token));
    }

    /// Ends every session of `user` and returns how many there were.
    pub fn end_user(&self, user: &str) -> usize {
        let mut table = self.table();
        let before = table.len();
        table.retain(|_, entry| entry.user != user);
        before - table.len()
    }

    /// Drops every expired session; call it now and then.
    pub fn sweep(&self, now: Instant) {
        let limits = self.limits;
        self.table().retain(|_, entry| !entry.expired(&limits, now));
    }

    /// How many sessions are stored (expired ones count until swept or looked up).
    pub fn count(&self) -> usize {
        self.table().len()
    }
}

fn token_hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The `Set-Cookie` value that stores `token` in the browser until it closes.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The session token from a `Cookie` request header, if it has a non-empty one.
pub fn token_from_cookies(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Whether the CSRF token sent with a request equals the session's, compared in
/// time that does not depend on where they differ.
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    if expected.is_empty() || expected.len() != given.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn sessions() -> Sessions {
        Sessions::new(SessionLimits::default())
    }

    #[test]
    fn create_and_get() {
        let s = sessions();
        let t0 = Instant::now();
        let new = s.create("ada", t0);
        assert_eq!(new.token.len(), 64);
        assert_eq!(new.csrf.len(), 64);
        assert_ne!(new.token, new.csrf);
        assert!(new.token.bytes().all(|b| b.is_ascii_hexdigit()));
        let view = s.get(&new.token, t0 + MIN).unwrap();
        assert_eq!(view.user, "ada");
        assert_eq!(view.csrf, new.csrf);
        assert_eq!(view.created, t0);
        assert!(
            s.get(&new.csrf, t0).is_none(),
            "the CSRF token is not a session token"
        );
        assert!(s.get("", t0).is_none());
        assert_ne!(s.create("ada", t0).token, new.token);
    }

    #[test]
    fn only_the_hash_is_stored() {
        let s = sessions();
        let new = s.create("ada", Instant::now());
        let table = s.table();
        assert!(table.contains_key(&token_hash(&new.token)));
        assert!(!table.keys().any(|k| hex(k) == new.token));
    }

    #[test]
    fn debug_hides_secrets() {
        let s = sessions();
        let t0 = Instant::now();
        let new = s.create("ada", t0);
        let view = s.get(&new.token, t0).unwrap();
        for shown in [format!("{new:?}"), format!("{view:?}"), format!("{s:?}")] {
            assert!(
                !shown.contains(&new.token) && !shown.contains(&new.csrf),
                "{shown}"
            );
        }
    }

    #[test]
    fn idle_timeout_is_refreshed_by_use() {
        let s = sessions();
        let t0 = Instant::now();
        let new = s.create("ada", t0);
        // Used every 20 minutes: stays alive past 30 minutes in total.
        assert!(s.get(&new.token, t0 + 20 * MIN).is_some());
        assert!(s.get(&new.token, t0 + 40 * MIN).is_some());
        // Then 30 idle minutes end it, and it stays gone.
        assert!(s.get(&new.token, t0 + 70 * MIN).is_none());
        assert_eq!(s.count(), 0);
        assert!(s.get(&new.token, t0 + 41 * MIN).is_none());
    }

    #[test]
    fn absolute_timeout_ends_busy_sessions() {
        let s = sessions();
        let t0 = Instant::now();
        let new = s.create("ada", t0);
        let mut t = t0;
        while t < t0 + 12 * 60 * MIN - 10 * MIN {
            t += 10 * MIN;
            assert!(s.get(&new.token, t).is_some(), "at {:?}", t - t0);
        }
        assert!(s.get(&new.token, t0 + 12 * 60 * MIN).is_none());
    }

    #[test]
    fn end_end_user_sweep() {
        let s = sessions();
        let t0 = Instant::now();
        let a1 = s.create("ada", t0);
        let a2 = s.create("ada", t0);
        let b = s.create("bob", t0 + 20 * MIN);
        s.end(&a1.token);
        assert!(s.get(&a1.token, t0).is_none());
        assert!(s.get(&a2.token, t0).is_some());
        let c = s.create("ada", t0);
        assert_eq!(s.end_user("ada"), 2);
        assert!(s.get(&c.token, t0).is_none());
        assert_eq!(s.count(), 1);
        s.create("carol", t0);
        s.sweep(t0 + 45 * MIN);
        assert_eq!(s.count(), 1, "bob was seen at 20 min, carol only at 0");
        assert!(s.get(&b.token, t0 + 45 * MIN).is_some());
    }

    #[test]
    fn cookies() {
        assert_eq!(
            set_cookie("abc"),
            "__Host-consentry=abc; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
        let clear = clear_cookie();
        assert!(clear.starts_with("__Host-consentry=;") && clear.contains("Max-Age=0"));
        for flag in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(clear.contains(flag), "{clear}");
        }
        assert!(!set_cookie("abc").contains("Domain"));
        assert_eq!(token_from_cookies("__Host-consentry=abc"), Some("abc"));
        assert_eq!(
            token_from_cookies("a=1; __Host-consentry=abc ;b=2"),
            Some("abc")
        );
        assert_eq!(
            token_from_cookies("a=1;__Host-consentry=\"abc\""),
            Some("abc")
        );
        assert_eq!(
            token_from_cookies("consentry=abc; x__Host-consentry=d"),
            None
        );
        assert_eq!(token_from_cookies("__Host-consentry=; a=1"), None);
        assert_eq!(token_from_cookies(""), None);
    }

    #[test]
    fn csrf_comparison() {
        assert!(csrf_matches("abcdef", "abcdef"));
        assert!(!csrf_matches("abcdef", "abcdeg"));
        assert!(!csrf_matches("abcdef", "abcde"));
        assert!(!csrf_matches("", ""));
    }
}
