//! The server's link to the operating system, from start to stop.
//!
//! [`Service`] ties the system box ([`crate::system`]) to the server's
//! life: [`Service::start`] before the store is opened,
//! [`Service::drop_privileges`] once the listeners and the store are open,
//! [`Service::ready`] once the listeners accept, and [`Service::stopping`]
//! on the way out.
//!
//! **Reload (SIGHUP).** The configuration file is read again and checked;
//! a file with an error is reported and the running configuration stays.
//! `log_level` takes effect at once (unless `RUST_LOG` decides). Everything
//! else (listen addresses, data dir, seal, limits, `[service]`, `[console]`)
//! needs a restart: a changed key is named in the log as such. Policy,
//! accounts and other settings in the store are always live and need no
//! reload.
//!
//! A failure is a [`ServiceError`]: the system box's or the
//! configuration's own error, passed on as it is.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::config::{ConfigError, FileConfig, ServeConfig};
use crate::system::notify::Notifier;
use crate::system::privilege::{Identity, Plan};
use crate::system::{SystemError, factory, health, logging, modes, privilege};

/// Why the server's life in the operating system failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration (read again on SIGHUP) is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A step of the system box failed (data dir, privileges, log).
    #[error(transparent)]
    System(#[from] SystemError),
    /// The SFTP listener ended without a stop being asked for.
    #[error("the SFTP listener stopped unexpectedly")]
    ListenerStopped,
}

/// The server's link to the operating system, from start to stop.
pub struct Service {
    notifier: Arc<Notifier>,
    hangup: Option<Signal>,
    plan: Plan,
}

/// What [`Service::ready`] needs to watch the running server.
pub struct Running {
    /// The core and the listener task.
    pub watched: health::Watched,
    /// Turns true when the server stops.
    pub stop: watch::Receiver<bool>,
    /// The configuration the server runs with (for reloads).
    pub config: ServeConfig,
    /// The status line while serving, e.g. `Serving SFTP on 0.0.0.0:2022`.
    pub status: String,
}

impl Service {
    /// Before anything is opened: reads the notification socket, takes over
    /// SIGHUP (so an early one cannot kill the server), finishes a factory
    /// reset that a power cut interrupted, checks the data dir's modes and
    /// decides the privilege drop (a root server that may not stay root is
    /// refused here, before any file is created).
    pub fn start(config: &ServeConfig) -> Result<Service, ServiceError> {
        let notifier = Arc::new(Notifier::from_env());
        notifier.status("Starting: checking the data dir");
        let hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reloads are not possible");
                None
            }
        };
        let plan = privilege::plan(&config.service)?;
        factory::finish_pending(&config.data_dir, &config.files_root)?;
        modes::check_data_dir(&config.data_dir)?;
        Ok(Service {
            notifier,
            hangup,
            plan,
        })
    }

    /// A status line for `systemctl status`.
    pub fn status(&self, text: &str) {
        self.notifier.status(text);
    }

    /// The notifier, for parts of the server that report progress.
    pub fn notifier(&self) -> Arc<Notifier> {
        self.notifier.clone()
    }

    /// Once the listeners are bound and the store, data key and host keys
    /// are open: when running as root, hands the data dir and the files
    /// root to the service account and drops to it (see [`privilege`]).
    pub fn drop_privileges(&self, config: &ServeConfig) -> Result<Identity, ServiceError> {
        if let Plan::DropTo { uid, gid, .. } = &self.plan {
            privilege::hand_over(&config.data_dir, &config.files_root, *uid, *gid)?;
        }
        Ok(privilege::carry_out(&self.plan)?)
    }

    /// The listeners accept: sends `READY=1`, and starts the health check,
    /// the reload handler and (debug builds) the test wedge.
    pub fn ready(&mut self, running: Running) {
        let Running {
            watched,
            stop,
            config,
            status,
        } = running;
        if let Some((what, after)) = health::test_wedge() {
            let copy = health::Watched {
                auth: watched.auth.clone(),
                listener: watched.listener.clone(),
            };
            tokio::spawn(health::wedge(what, after, copy));
        }
        tokio::spawn(health::watch(
            self.notifier.clone(),
            watched,
            stop.clone(),
            status.clone(),
        ));
        if let Some(hangup) = self.hangup.take() {
            tokio::spawn(reload_on_hangup(
                hangup,
                self.notifier.clone(),
                config,
                status.clone(),
                stop,
            ));
        }
        if let Some(t) = self.notifier.watchdog_timeout() {
            tracing::info!(
                timeout_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
                "watchdog armed: keep-alives at half the timeout while healthy"
            );
        }
        self.notifier.ready(&status);
    }

    /// The SFTP listener task ended. When no stop was asked for, the
    /// listener died: with a watchdog armed the server stays up without
    /// keep-alives (the watchdog restarts it, with a core dump for the
    /// post-mortem); without one it fails, so an init script sees it.
    pub async fn listener_ended(
        &self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), ServiceError> {
        if *stop.borrow() {
            return Ok(());
        }
        tracing::error!("the SFTP listener stopped unexpectedly");
        if self.notifier.watchdog_timeout().is_none() {
            return Err(ServiceError::ListenerStopped);
        }
        self.notifier
            .status("Unhealthy: the SFTP listener stopped; waiting for the watchdog");
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Sends `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.notifier.stopping(status);
    }
}

async fn reload_on_hangup(
    mut hangup: Signal,
    notifier: Arc<Notifier>,
    mut running: ServeConfig,
    status: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            got = hangup.recv() => if got.is_none() { return },
            _ = stop.changed() => return,
        }
        notifier.reloading();
        tracing::info!("SIGHUP: reading the configuration again");
        match reload(&running) {
            Ok((applied, notes)) => {
                running = applied;
                for note in notes {
                    tracing::info!("reload: {note}");
                }
            }
            Err(e) => tracing::error!(
                error = %format!("{e:#}"),
                "reload failed; the running configuration stays"
            ),
        }
        notifier.ready(&status);
    }
}

/// Reads the configuration again and applies what can change while running
/// (the log level). Returns the configuration now in force and notes for
/// the log: what changed, and what waits for a restart.
pub fn reload(running: &ServeConfig) -> Result<(ServeConfig, Vec<String>), ServiceError> {
    let source = &running.source;
    let file = match &source.file {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let new = file.resolve(&source.flags, source.default_data_dir.clone())?;
    let mut applied = running.clone();
    let mut notes = Vec::new();
    if new.log_level != running.log_level {
        if logging::set_level(&new.log_level)? {
            notes.push(format!("log_level is now {:?}", new.log_level));
        } else {
            notes.push("log_level changed, but RUST_LOG decides the level".into());
        }
        applied.log_level = new.log_level.clone();
    }
    for key in restart_only_changes(running, &new) {
        notes.push(format!("{key} changed: it takes effect after a restart"));
    }
    if notes.is_empty() {
        notes.push("nothing changed".into());
    }
    Ok((applied, notes))
}

/// The `[https]` settings other than `listen` (reported on its own).
fn https_but_listen(c: &ServeConfig) -> String {
    let mut https = c.https.clone();
    https.listen = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    format!("{https:?}")
}

/// Keys whose new value needs a restart.
fn restart_only_changes(a: &ServeConfig, b: &ServeConfig) -> Vec<&'static str> {
    let pairs: [(&'static str, String, String); 12] = [
        (
            "data_dir",
            format!("{:?}", a.data_dir),
            format!("{:?}", b.data_dir),
        ),
        (
            "files_root",
            format!("{:?}", a.files_root),
            format!("{:?}", b.files_root),
        ),
        (
            "log_target",
            format!("{:?}", a.log_target),
            format!("{:?}", b.log_target),
        ),
        ("seal", format!("{:?}", a.seal), format!("{:?}", b.seal)),
        (
            "sftp.listen",
            a.sftp_listen.to_string(),
            b.sftp_listen.to_string(),
        ),
        (
            "https.listen",
            a.https_listen.to_string(),
            b.https_listen.to_string(),
        ),
        ("sftp", format!("{:?}", a.sftp), format!("{:?}", b.sftp)),
        ("https", https_but_listen(a), https_but_listen(b)),
        (
            "auth",
            format!("{} {:?}", a.max_concurrent_hashes, a.code_timeout),
            format!("{} {:?}", b.max_concurrent_hashes, b.code_timeout),
        ),
        (
            "shutdown.grace",
            format!("{:?}", a.shutdown_grace),
            format!("{:?}", b.shutdown_grace),
        ),
        (
            "service",
            format!("{:?}", a.service),
            format!("{:?}", b.service),
        ),
        (
            "console",
            format!("{:?}", a.console),
            format!("{:?}", b.console),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, x, y)| x != y)
        .map(|(k, _, _)| k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    #[test]
    fn reload_applies_the_level_and_names_what_waits_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.toml");
        std::fs::write(&path, "log_level = \"info\"\n").unwrap();
        let flags = Overrides {
            config: Some(path.clone()),
            ..Default::default()
        };
        let running = FileConfig::load(&path)
            .unwrap()
            .resolve(&flags, "d".into())
            .unwrap();
        std::fs::write(
            &path,
            "log_level = \"debug\"\n[sftp]\nlisten = \"127.0.0.1:2222\"\n",
        )
        .unwrap();
        let (applied, notes) = reload(&running).unwrap();
        assert_eq!(applied.log_level, "debug");
        assert_eq!(applied.sftp_listen, running.sftp_listen);
        assert!(
            notes.iter().any(|n| n.contains("sftp.listen changed")),
            "{notes:?}"
        );
        std::fs::write(&path, "[https]\nmin_body_rate = 10\n").unwrap();
        let (_, notes) = reload(&running).unwrap();
        assert!(
            notes.iter().any(|n| n.starts_with("https changed")),
            "{notes:?}"
        );
        std::fs::write(&path, "[sftp]\nlisen = 1\n").unwrap();
        assert!(reload(&running).is_err());
    }
}
