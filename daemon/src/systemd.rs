//! The systemd service protocol (`sd_notify(3)`), spoken by the daemon's main
//! loop: `READY=1` once the store, workers, control socket and console are up,
//! `WATCHDOG=1` while [`Health`] holds, `STATUS=` lines, `STOPPING=1`.
//!
//! Without `NOTIFY_SOCKET` (a terminal, `make run`) every call does nothing.
//! The messages are single datagrams on a Unix socket (a path, or `@name` in
//! the abstract namespace); a lost message is logged, never fatal.
//!
//! Architecture Invariant: watchdog pings come only from the main thread's
//! loop, after a health check. A hung main loop, a dead worker thread or a
//! store that stopped answering all stop the pings, so systemd restarts us.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The notification socket systemd gave us, and the watchdog interval.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. A socket
    /// that cannot be reached is reported once and then ignored.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            match connect(&path.to_string_lossy()) {
                Ok(target) => Some(target),
                Err(err) => {
                    log::warn!(target: "consentry::daemon", "NOTIFY_SOCKET={}: {err}; systemd will not hear that the daemon is ready",
                        path.to_string_lossy());
                    None
                }
            }
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us && target.is_some())
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// A notifier that sends nothing (tests, the one-shot CLI paths).
    pub fn none() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// How often the main loop pings: half the interval systemd asked for.
    pub fn ping_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1");
        }
    }

    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target
            && let Err(err) = socket.send_to_addr(message.as_bytes(), addr)
        {
            log::warn!(target: "consentry::daemon", "cannot notify systemd ({}): {err}",
                message.lines().next().unwrap_or_default());
        }
    }
}

fn connect(path: &str) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    let addr = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None if path.starts_with('/') => SocketAddr::from_pathname(path)?,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "neither an absolute path nor an abstract name (@…)",
            ));
        }
    };
    Ok((UnixDatagram::unbound()?, addr))
}

/// A status line must not start a new assignment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// What the main loop checks before each watchdog ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Why the daemon is not healthy, for the journal and `STATUS=`.
    Failing(String),
}

impl Health {
    /// Healthy when the store answers and none of `threads` has ended
    /// (workers end only at shutdown; a panic inside a job is caught there).
    pub fn check(store_answers: bool, threads: &[std::thread::JoinHandle<()>]) -> Health {
        if !store_answers {
            return Health::Failing("the catalogue does not answer".into());
        }
        let ended: Vec<&str> = threads
            .iter()
            .filter(|t| t.is_finished())
            .map(|t| t.thread().name().unwrap_or("unnamed"))
            .collect();
        if ended.is_empty() {
            Health::Ok
        } else {
            Health::Failing(format!("worker thread(s) ended: {}", ended.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (dir, socket, path.display().to_string())
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn messages_reach_the_socket_as_datagrams() {
        let (_dir, socket, path) = listener();
        let notifier = Notifier {
            target: Some(connect(&path).unwrap()),
            watchdog: Some(Duration::from_secs(10)),
        };
        notifier.ready("serving 1 share\nsecond line");
        assert_eq!(recv(&socket), "READY=1\nSTATUS=serving 1 share second line");
        notifier.watchdog();
        assert_eq!(recv(&socket), "WATCHDOG=1");
        notifier.stopping("bye");
        assert_eq!(recv(&socket), "STOPPING=1\nSTATUS=bye");
        assert_eq!(notifier.ping_every(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn abstract_sockets_are_reached_too() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("consentry-test-{}", std::process::id());
        let socket =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier {
            target: Some(connect(&format!("@{name}")).unwrap()),
            watchdog: None,
        };
        notifier.status("indexing");
        assert_eq!(recv(&socket), "STATUS=indexing");
    }

    #[test]
    fn without_a_watchdog_no_ping_is_sent() {
        let (_dir, socket, path) = listener();
        let notifier = Notifier {
            target: Some(connect(&path).unwrap()),
            watchdog: None,
        };
        notifier.watchdog();
        notifier.status("next");
        assert_eq!(recv(&socket), "STATUS=next", "no WATCHDOG=1 before it");
        assert_eq!(notifier.ping_every(), None);
    }

    #[test]
    fn a_relative_socket_path_is_refused() {
        let err = connect("run/notify").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn health_fails_on_a_silent_store_or_an_ended_thread() {
        let alive = std::thread::Builder::new()
            .name("ingest-1".into())
            .spawn(|| std::thread::sleep(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(
            Health::check(true, std::slice::from_ref(&alive)),
            Health::Ok
        );
        assert_eq!(
            Health::check(false, std::slice::from_ref(&alive)),
            Health::Failing("the catalogue does not answer".into())
        );
        let ended = std::thread::Builder::new()
            .name("watch".into())
            .spawn(|| {})
            .unwrap();
        while !ended.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            Health::check(true, &[alive, ended]),
            Health::Failing("worker thread(s) ended: watch".into())
        );
    }
}
