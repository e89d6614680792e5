//! The HTTP surface of consentry: the mechanics and security of the web console.
//!
//! This crate knows nothing of photos, people or consent. It provides what every
//! console screen needs and is easy to get subtly wrong, and the daemon builds
//! the screens (its warp filters) on top:
//!
//! - [`tls`]: the console's certificate (loaded, or generated self-signed on first
//!   start), the HTTPS accept loop that serves a warp filter, the client address
//!   for each request, and the plain-HTTP port that only redirects to HTTPS;
//! - [`headers`]: security headers (HSTS, CSP, no framing, no caching) on every reply;
//! - [`session`]: sign-in sessions in a `__Host-` cookie, with idle and absolute
//!   time-outs and CSRF tokens;
//! - [`password`]: argon2id password hashes and the password policy;
//! - [`throttle`]: locking a user name or an address after repeated failed sign-ins.
//! - [`assets`]: the console's stylesheet and script, embedded at build time.
//!
//! `web` never depends on `daemon`. It re-exports [`warp`] so that the daemon
//! builds its filters against the very version [`tls::serve`] runs.

pub mod assets;
pub mod headers;
pub mod password;
pub mod session;
pub mod throttle;
pub mod tls;

pub use warp;
