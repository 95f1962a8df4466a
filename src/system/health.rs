//! The health check behind the watchdog keep-alives.
//!
//! Every keep-alive interval (half of systemd's `WatchdogSec`, or 30 s when
//! no watchdog is armed) the server checks that its core still works: the
//! store answers a read transaction and can begin (and abort) a write
//! transaction within the interval, and the SFTP accept loop is still
//! running. Only then is `WATCHDOG=1` sent. A store that hangs (a stuck
//! writer, a dead disk) or a listener task that ended stops the keep-alives,
//! and systemd kills and restarts the service when the watchdog fires.
//!
//! The probe runs on a thread of its own, so a probe that never returns
//! cannot stall the runtime; while it hangs, no second probe is started and
//! every check reports the store as not answering.
//!
//! Debug builds (only) honour a test hook, the environment variable
//! `COFFER_TEST_WEDGE=store:SECONDS` or `listener:SECONDS`: after that many
//! seconds the server deliberately wedges its store (a write transaction
//! that never ends) or stops its listener, so a test can watch the
//! keep-alives stop. Release builds ignore it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::notify::Notifier;
use crate::auth::Auth;

/// The check interval when no watchdog is armed.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// What the health check watches.
pub struct Watched {
    /// The core (its store is probed).
    pub auth: Arc<Auth>,
    /// The SFTP accept loop's task.
    pub listener: AbortHandle,
}

/// Probes the core; `Err` says what is wrong, in words for `systemctl status`.
struct Checker {
    watched: Watched,
    in_flight: Arc<AtomicBool>,
    stuck_for: Duration,
}

impl Checker {
    async fn check(&mut self, limit: Duration) -> Result<(), String> {
        self.check_store(limit).await?;
        // Checked last, right before the keep-alive goes out.
        if self.watched.listener.is_finished() {
            return Err("the SFTP listener has stopped".into());
        }
        Ok(())
    }

    async fn check_store(&mut self, limit: Duration) -> Result<(), String> {
        if self.in_flight.load(Ordering::SeqCst) {
            self.stuck_for += limit;
            return Err(format!(
                "the store has not answered for {} s",
                self.stuck_for.as_secs()
            ));
        }
        self.stuck_for = Duration::ZERO;
        self.in_flight.store(true, Ordering::SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let auth = self.watched.auth.clone();
        let in_flight = self.in_flight.clone();
        let spawned = std::thread::Builder::new()
            .name("coffer-health".into())
            .spawn(move || {
                let result = auth.store().probe().map_err(|e| e.to_string());
                in_flight.store(false, Ordering::SeqCst);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            self.in_flight.store(false, Ordering::SeqCst);
            return Err(format!("cannot start the store probe: {e}"));
        }
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!("the store failed: {e}")),
            Ok(Err(_)) => Err("the store probe died".into()),
            Err(_) => {
                self.stuck_for = limit;
                Err(format!(
                    "the store has not answered for {} s",
                    limit.as_secs()
                ))
            }
        }
    }
}

/// Checks health every `interval` until `stop`; sends `WATCHDOG=1` after
/// each healthy check (when a watchdog is armed) and a status line when
/// health changes. `status` is the line shown while healthy.
pub async fn watch(
    notifier: Arc<Notifier>,
    watched: Watched,
    mut stop: watch::Receiver<bool>,
    status: String,
) {
    let interval = notifier.keepalive_interval().unwrap_or(DEFAULT_INTERVAL);
    let limit = interval.max(Duration::from_secs(1));
    let mut checker = Checker {
        watched,
        in_flight: Arc::new(AtomicBool::new(false)),
        stuck_for: Duration::ZERO,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match checker.check(limit).await {
            Ok(()) => {
                if !healthy {
                    tracing::info!("healthy again: watchdog keep-alives resume");
                    notifier.status(&status);
                    healthy = true;
                }
                notifier.keepalive();
            }
            Err(why) => {
                if healthy {
                    tracing::error!(
                        problem = %why,
                        "unhealthy: watchdog keep-alives stopped"
                    );
                    healthy = false;
                }
                notifier.status(&format!("Unhealthy: {why}; watchdog keep-alives stopped"));
            }
        }
    }
}

/// What the test hook wedges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wedge {
    /// Hold a write transaction forever.
    Store,
    /// Stop the SFTP accept loop.
    Listener,
}

/// Reads `COFFER_TEST_WEDGE` (debug builds only; see the module docs).
pub fn test_wedge() -> Option<(Wedge, Duration)> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let value = std::env::var("COFFER_TEST_WEDGE").ok()?;
    let (what, secs) = value.split_once(':')?;
    let secs = secs.trim().parse::<u64>().ok()?;
    let what = match what.trim() {
        "store" => Wedge::Store,
        "listener" => Wedge::Listener,
        _ => return None,
    };
    Some((what, Duration::from_secs(secs)))
}

/// Carries out the test hook after its delay.
pub async fn wedge(what: Wedge, after: Duration, watched: Watched) {
    tokio::time::sleep(after).await;
    tracing::warn!(?what, "COFFER_TEST_WEDGE: wedging the server on purpose");
    match what {
        Wedge::Store => {
            let auth = watched.auth.clone();
            let _ = std::thread::Builder::new()
                .name("coffer-wedge".into())
                .spawn(move || {
                    let _ = auth
                        .store()
                        .write(|_tx| -> Result<(), crate::store::StoreError> {
                            loop {
                                std::thread::park();
                            }
                        });
                });
        }
        Wedge::Listener => watched.listener.abort(),
    }
}
