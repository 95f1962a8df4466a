//! A software TPM (`swtpm`) in a child process, for tests.
//!
//! Test code only: the library's own TPM tests (`seal::swtpm_process`) and
//! the integration tests (`tests/it`) each compile this file; the service
//! is built without it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a start is retried when another process took the ports meanwhile.
const START_ATTEMPTS: usize = 8;
/// How long to wait for a started swtpm to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a software TPM could not be started.
#[derive(Debug)]
pub struct SwtpmError(String);

impl fmt::Display for SwtpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SwtpmError {}

/// A running `swtpm` with its own state; killed, and its state removed when it
/// owns it, on drop.
pub struct Swtpm {
    child: Child,
    port: u16,
    state_dir: PathBuf,
    owns_state: bool,
}

impl Swtpm {
    /// Starts a software TPM with fresh state in a new temporary directory: a
    /// new TPM, with its own seeds, that no other [`Swtpm`] shares.
    ///
    /// Fails with "swtpm is not installed: run tests/run, which installs it" when
    /// the binary is missing.
    pub fn start() -> Result<Swtpm, SwtpmError> {
        let state_dir = fresh_state_dir()?;
        match Self::start_in(&state_dir) {
            Ok(mut swtpm) => {
                swtpm.owns_state = true;
                Ok(swtpm)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&state_dir);
                Err(e)
            }
        }
    }

    /// Starts a software TPM on the state kept in `state_dir` (created by a
    /// previous run, or empty for a new TPM). The directory is left in place on
    /// drop, so a second start on it is the same TPM after a reboot.
    pub fn start_in(state_dir: &Path) -> Result<Swtpm, SwtpmError> {
        Self::start_program("swtpm", state_dir)
    }

    fn start_program(program: &str, state_dir: &Path) -> Result<Swtpm, SwtpmError> {
        let mut last = SwtpmError("swtpm did not start".into());
        for _ in 0..START_ATTEMPTS {
            let port = free_port_pair()?;
            match spawn(program, state_dir, port) {
                Ok(child) => match wait_ready(child, port, state_dir) {
                    Ok(child) => {
                        return Ok(Swtpm {
                            child,
                            port,
                            state_dir: state_dir.to_path_buf(),
                            owns_state: false,
                        });
                    }
                    // Most likely another process took one of the ports between
                    // the probe and the start: try other ports.
                    Err(e) => last = e,
                },
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// The TCTI string that reaches this TPM, e.g.
    /// `swtpm:host=127.0.0.1,port=2321`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The directory holding the TPM's state.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_state {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

fn fresh_state_dir() -> Result<PathBuf, SwtpmError> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| SwtpmError(format!("random source: {e}")))?;
    let dir = std::env::temp_dir().join(format!(
        "coffer-swtpm-{}-{}",
        std::process::id(),
        data_encoding::HEXLOWER.encode(&suffix)
    ));
    std::fs::create_dir(&dir)
        .map_err(|e| SwtpmError(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// A port P such that P and P + 1 were both free a moment ago (swtpm serves the
/// TPM on P and its control channel on P + 1).
fn free_port_pair() -> Result<u16, SwtpmError> {
    for _ in 0..64 {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| SwtpmError(format!("cannot find a free port: {e}")))?;
        let Some(control) = first.port().checked_add(1) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, control)).is_ok() {
            return Ok(first.port());
        }
    }
    Err(SwtpmError("cannot find two adjacent free ports".into()))
}

fn spawn(program: &str, state_dir: &Path, port: u16) -> Result<Child, SwtpmError> {
    let control = port.saturating_add(1);
    Command::new(program)
        .arg("socket")
        .arg("--tpm2")
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={control},bindaddr=127.0.0.1"))
        .arg("--tpmstate")
        .arg(format!("dir={}", state_dir.display()))
        .arg("--log")
        .arg(format!("file={}", state_dir.join("swtpm.log").display()))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SwtpmError("swtpm is not installed: run tests/run, which installs it".into())
            } else {
                SwtpmError(format!("cannot start swtpm: {e}"))
            }
        })
}

// Waiting for a child process is a front-end wait, not a rule about time.
#[allow(clippy::disallowed_methods)]
fn wait_ready(mut child: Child, port: u16, state_dir: &Path) -> Result<Child, SwtpmError> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(state_dir.join("swtpm.log")).unwrap_or_default();
            return Err(SwtpmError(format!(
                "swtpm exited ({status}) on port {port}: {}",
                log.trim()
            )));
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SwtpmError(format!(
                "swtpm did not accept connections on port {port} within {} s",
                READY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_fails_with_the_install_hint() {
        let dir = fresh_state_dir().unwrap();
        let err = Swtpm::start_program("swtpm-not-installed-here", &dir)
            .err()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            err.to_string(),
            "swtpm is not installed: run tests/run, which installs it"
        );
    }

    #[test]
    fn start_serves_a_tpm_and_drop_stops_it() {
        let swtpm = Swtpm::start().unwrap_or_else(|e| panic!("{e}"));
        let port = swtpm.port;
        let state = swtpm.state_dir().to_path_buf();
        assert_eq!(swtpm.tcti(), format!("swtpm:host=127.0.0.1,port={port}"));
        assert!(state.is_dir());
        drop(swtpm);
        assert!(!state.exists());
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }
}
