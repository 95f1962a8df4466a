//! The service manager's notification protocol (`sd_notify`), spoken directly.
//!
//! systemd passes `NOTIFY_SOCKET` to a `Type=notify` service: a Unix datagram
//! socket, either a path (`/run/systemd/notify`) or a name in the abstract
//! namespace (`@/org/freedesktop/systemd1/notify/...`). Each message is one
//! datagram of newline-separated `KEY=VALUE` assignments: `READY=1` once the
//! service accepts work, `STATUS=...` for `systemctl status`, `WATCHDOG=1`
//! keep-alives, `RELOADING=1` and `STOPPING=1`. With `WatchdogSec=` set,
//! systemd also passes `WATCHDOG_USEC` (and `WATCHDOG_PID`); a keep-alive is
//! due at least that often, and is sent at half the interval.
//!
//! Without `NOTIFY_SOCKET` every call is a no-op, so the server behaves the
//! same from a terminal, an init script or a test.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, and whether a watchdog is armed.
#[derive(Debug)]
pub struct Notifier {
    /// The socket and the manager's address; `None` when not run by a
    /// service manager (or the address was unusable).
    target: Option<(UnixDatagram, SocketAddr)>,
    /// The manager's watchdog timeout, when one is armed for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self {
            target: None,
            watchdog: None,
        }
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Self::from_parts(
            socket.as_deref(),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        )
    }

    /// Builds a notifier from the variables' values; `own_pid` is compared
    /// with `WATCHDOG_PID` (a watchdog meant for another process is ignored).
    pub fn from_parts(
        notify_socket: Option<&OsStr>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        own_pid: u32,
    ) -> Self {
        let target = notify_socket.and_then(|s| match address(s) {
            Ok(addr) => match UnixDatagram::unbound() {
                Ok(sock) => Some((sock, addr)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create a socket for service notifications");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is unusable; no service notifications");
                None
            }
        });
        let for_us = watchdog_pid
            .map(str::trim)
            .is_none_or(|p| p.parse::<u32>().ok() == Some(own_pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        Self { target, watchdog }
    }

    /// Whether a service manager listens.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog timeout the manager set, if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.is_active())
    }

    /// How often keep-alives are sent: half the watchdog timeout.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.watchdog_timeout().map(|t| t / 2)
    }

    /// Sends raw assignments (`KEY=VALUE` lines). Failures are logged once
    /// per call and otherwise ignored: a service manager that went away must
    /// not stop the service.
    pub fn send(&self, state: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            tracing::debug!(error = %e, "service notification not delivered");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A status line for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// One watchdog keep-alive.
    pub fn keepalive(&self) {
        self.send("WATCHDOG=1");
    }

    /// `RELOADING=1` with the monotonic time systemd 253+ expects.
    pub fn reloading(&self) {
        let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| {
                u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000
                    + u64::try_from(t.tv_nsec()).unwrap_or(0) / 1000
            })
            .unwrap_or(0);
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=Reloading the configuration"
        ));
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }
}

/// A status text as one line (a newline would start a new assignment).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect()
}

/// Parses `NOTIFY_SOCKET`: an absolute path, or `@name` in the abstract namespace.
fn address(value: &OsStr) -> io::Result<SocketAddr> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(value)),
        Some(b'@') => SocketAddr::from_abstract_name(bytes.get(1..).unwrap_or_default()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{:?} is neither an absolute path nor an abstract name (@...)",
                value.to_string_lossy()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn path_socket_gets_ready_status_and_keepalives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_parts(Some(path.as_os_str()), Some("4000000"), None, 1);
        assert!(n.is_active());
        assert_eq!(n.keepalive_interval(), Some(Duration::from_secs(2)));
        n.ready("Serving\nSFTP");
        assert_eq!(receive(&listener), "READY=1\nSTATUS=Serving SFTP");
        n.keepalive();
        assert_eq!(receive(&listener), "WATCHDOG=1");
        n.reloading();
        assert!(receive(&listener).starts_with("RELOADING=1\nMONOTONIC_USEC="));
    }

    #[test]
    fn abstract_socket_is_reached() {
        let name = format!("coffer-test-notify-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let value = format!("@{name}");
        let n = Notifier::from_parts(Some(OsStr::new(&value)), None, None, 1);
        n.status("hello");
        assert_eq!(receive(&listener), "STATUS=hello");
        assert_eq!(n.keepalive_interval(), None);
    }

    #[test]
    fn watchdog_for_another_process_or_without_socket_is_ignored() {
        let n = Notifier::from_parts(None, Some("1000000"), None, 7);
        assert_eq!(n.watchdog_timeout(), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let _l = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_parts(Some(path.as_os_str()), Some("1000000"), Some("8"), 7);
        assert_eq!(n.watchdog_timeout(), None);
        let n = Notifier::from_parts(Some(path.as_os_str()), Some("1000000"), Some("7"), 7);
        assert_eq!(n.watchdog_timeout(), Some(Duration::from_secs(1)));
        let bad = Notifier::from_parts(Some(OsStr::new("relative")), None, None, 7);
        assert!(!bad.is_active());
        bad.ready("nothing happens");
    }
}
