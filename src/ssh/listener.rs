//! The accept loop and the life of one connection.
//!
//! Limits that keep the owner able to log in during a flood:
//! - at most `max_connections` connections (default 1024); beyond that, new
//!   ones are closed;
//! - at most [`MAX_UNAUTHENTICATED_PER_ADDRESS`] (10) unauthenticated
//!   connections per source address (an IPv6 /64 counts as one address,
//!   [`peer_key`]), and `max_unauthenticated` (default 64) in all: when all
//!   are taken, the oldest connection of the address that holds the most is
//!   dropped to make room, so a flood from some addresses cannot crowd out a
//!   newcomer from another; a connection leaves this count once logged in;
//! - a login grace time, after which an unauthenticated connection is closed;
//! - the accept loop survives accept errors (EMFILE) with a short pause.
//!
//! Each connection lives on one thread: the accept loop hands it to one of
//! a few single-threaded runtimes (one per core, in turn), and everything
//! the connection runs (russh's session, the SFTP reader and writer) stays
//! on that thread. On the multi-threaded runtime those tasks woke each
//! other across threads for every packet; on one thread a 1 GiB download
//! costs about 15% less server CPU (benches/RESULTS.md), and connections
//! still spread over every core.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;

use super::handler::Connection;
use crate::address::peer_key;
use crate::auth::Auth;
use crate::auth::live::{Connections, SessionHolder};

/// Limits of the SSH front end.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections not logged in.
    pub max_unauthenticated: usize,
    /// Time allowed to log in.
    pub login_grace_time: Duration,
    /// Authentication attempts per connection.
    pub max_auth_attempts: usize,
    /// Delay before a failure is answered.
    pub failure_delay: Duration,
    /// Channels per connection.
    pub max_channels: usize,
    /// Channels open at once in the process (part of the memory budget:
    /// `files::budget`).
    pub max_open_channels: usize,
    /// Idle connections close after this long.
    pub idle_timeout: Duration,
    /// SSH window.
    pub window_size: u32,
    /// Largest SSH packet.
    pub max_packet: u32,
    /// Offer an RSA host key too.
    pub rsa_host_key: bool,
}

/// Unauthenticated connections one address (an IPv4 address or an IPv6
/// /64) may hold; beyond it, its new connections are closed at once.
pub const MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 10;

/// What every connection shares.
pub struct Shared {
    /// The core.
    pub auth: Arc<Auth>,
    /// russh's configuration (keys, algorithms, windows).
    pub config: Arc<russh::server::Config>,
    /// Limits.
    pub limits: Limits,
    /// Bounds the number of connections.
    connections: Arc<Semaphore>,
    /// Bounds the number of channels open in the process, of every kind:
    /// each may hold packets its queue took (`files::budget`).
    pub channel_slots: Arc<Semaphore>,
    /// Connections that have not logged in yet.
    preauth: Mutex<PreAuth>,
    /// Time in-flight sessions get after a shutdown request.
    shutdown_grace: Duration,
    /// Logged-in connections, which a change of their account's credentials
    /// disconnects (the core holds it weakly: [`Auth::hold_sessions`]).
    pub live: Arc<Connections>,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        auth: Arc<Auth>,
        config: russh::server::Config,
        limits: Limits,
        shutdown_grace: Duration,
    ) -> Self {
        let live = Connections::new("ssh");
        auth.hold_sessions(Arc::downgrade(&live) as std::sync::Weak<dyn SessionHolder>);
        Self {
            live,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            channel_slots: Arc::new(Semaphore::new(limits.max_open_channels)),
            auth,
            config: Arc::new(config),
            limits,
            preauth: Mutex::new(PreAuth::default()),
            shutdown_grace,
        }
    }
}

#[derive(Default)]
struct PreAuth {
    next_id: u64,
    /// id -> (address, eviction signal)
    waiting: HashMap<u64, (IpAddr, oneshot::Sender<()>)>,
}

impl PreAuth {
    fn count(&self, addr: IpAddr) -> usize {
        self.waiting.values().filter(|(a, _)| *a == addr).count()
    }

    /// Admits a new unauthenticated connection, evicting one when full.
    fn admit(&mut self, addr: IpAddr, limit: usize) -> Option<(u64, oneshot::Receiver<()>)> {
        let addr = peer_key(addr);
        let mine = self.count(addr);
        if mine >= MAX_UNAUTHENTICATED_PER_ADDRESS.min(limit) {
            return None;
        }
        if self.waiting.len() >= limit {
            // The address holding the most slots gives up its oldest one, if it
            // holds more than the newcomer's address would.
            let mut per: HashMap<IpAddr, usize> = HashMap::new();
            for (a, _) in self.waiting.values() {
                *per.entry(*a).or_default() += 1;
            }
            let (heavy, n) = per.into_iter().max_by_key(|(_, n)| *n)?;
            if n <= mine + 1 {
                return None;
            }
            let oldest = self
                .waiting
                .iter()
                .filter(|(_, (a, _))| *a == heavy)
                .map(|(id, _)| *id)
                .min()?;
            if let Some((_, evict)) = self.waiting.remove(&oldest) {
                let _ = evict.send(());
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(id, (addr, tx));
        Some((id, rx))
    }

    fn leave(&mut self, id: u64) {
        self.waiting.remove(&id);
    }
}

/// Single-threaded runtimes that connections are handed to in turn.
struct ConnectionThreads {
    handles: Vec<tokio::runtime::Handle>,
    next: usize,
    /// Dropping these lets the threads end.
    _stop: Vec<oneshot::Sender<()>>,
}

impl ConnectionThreads {
    /// One thread per core; none when threads cannot be started (the
    /// connections then run on the caller's runtime).
    fn start() -> Self {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        let mut threads = ConnectionThreads {
            handles: Vec::new(),
            next: 0,
            _stop: Vec::new(),
        };
        for i in 0..count {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("coffer-ssh")
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a connection runtime");
                    break;
                }
            };
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let started = std::thread::Builder::new()
                .name(format!("coffer-ssh-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                });
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start a connection thread");
                break;
            }
            threads.handles.push(handle);
            threads._stop.push(stop);
        }
        threads
    }

    /// The runtime for the next connection.
    fn pick(&mut self) -> Option<&tokio::runtime::Handle> {
        let count = self.handles.len();
        if count == 0 {
            return None;
        }
        self.next = (self.next + 1) % count;
        self.handles.get(self.next)
    }
}

/// Serves SSH on `listener` until `shutdown` turns true; then stops
/// accepting, closes unauthenticated connections at once, gives logged-in
/// sessions `shutdown_grace` to finish, and cuts the rest.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    let mut threads = ConnectionThreads::start();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: wait for descriptors to come free.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                    tracing::warn!(peer = %peer, "too many connections; closed");
                    continue;
                };
                let admitted = shared
                    .preauth
                    .lock()
                    .map(|mut p| p.admit(peer.ip(), shared.limits.max_unauthenticated))
                    .ok()
                    .flatten();
                let Some((id, evicted)) = admitted else {
                    tracing::warn!(peer = %peer, "too many connections waiting to log in; closed");
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                // Everything the connection logs (audit events included)
                // carries its session id and peer address (with port).
                let span = tracing::info_span!("ssh", session_id = id, peer = %peer);
                let target = threads.pick().cloned();
                // The socket moves to the chosen thread's own reactor.
                let socket = match socket.into_std() {
                    Ok(socket) => socket,
                    Err(e) => {
                        tracing::warn!(peer = %peer, error = %e, "cannot hand the connection over; closed");
                        continue;
                    }
                };
                let run = tracing::Instrument::instrument(async move {
                    match tokio::net::TcpStream::from_std(socket) {
                        Ok(socket) => {
                            connection(socket, peer, shared.clone(), id, evicted, shutdown).await;
                        }
                        Err(e) => {
                            tracing::warn!(peer = %peer, error = %e, "cannot take the connection over; closed");
                        }
                    }
                    if let Ok(mut p) = shared.preauth.lock() {
                        p.leave(id);
                    }
                    drop(permit);
                }, span);
                match &target {
                    Some(handle) => tasks.spawn_on(run, handle),
                    None => tasks.spawn(run),
                };
            }
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let deadline = shared.shutdown_grace + Duration::from_secs(2);
    if tokio::time::timeout(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("sessions did not end in time; cutting them");
        tasks.abort_all();
    }
}

async fn connection(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    id: u64,
    mut evicted: oneshot::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (authed_tx, mut authed) = watch::channel(false);
    // Fired when a change of the account's credentials ends the session.
    let (revoke_tx, mut revoked) = oneshot::channel::<()>();
    let handler = Connection::new(shared.clone(), peer, authed_tx, revoke_tx);
    let grace = tokio::time::sleep(shared.limits.login_grace_time);
    tokio::pin!(grace);
    let running = tokio::select! {
        r = russh::server::run_stream(shared.config.clone(), socket, handler) => match r {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "connection ended before the key exchange");
                return;
            }
        },
        _ = &mut grace => {
            tracing::info!(peer = %peer, "login grace time exceeded before the key exchange");
            return;
        }
        _ = &mut evicted => {
            tracing::info!(peer = %peer, "dropped a stalled connection to make room");
            return;
        }
        _ = shutdown.changed() => return,
    };
    let handle = running.handle();
    tokio::pin!(running);
    let mut cut_at: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut watching_login = true;
    let mut watching_revocation = true;
    loop {
        let logged_in = *authed.borrow();
        tokio::select! {
            result = &mut running => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended");
                }
                return;
            }
            _ = &mut grace, if !logged_in => {
                tracing::info!(peer = %peer, "login grace time exceeded");
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "login grace time exceeded".into(), String::new()).await;
                return;
            }
            _ = &mut evicted, if !logged_in => {
                tracing::info!(peer = %peer, "dropped a stalled connection to make room");
                let _ = handle.disconnect(russh::Disconnect::TooManyConnections, "too many connections waiting to log in".into(), String::new()).await;
                return;
            }
            changed = authed.changed(), if !logged_in && watching_login => {
                if changed.is_err() {
                    watching_login = false;
                } else if *authed.borrow()
                    && let Ok(mut p) = shared.preauth.lock()
                {
                    p.leave(id);
                }
            }
            ended = &mut revoked, if watching_revocation => {
                // An error only says the registration went away unused.
                watching_revocation = false;
                if ended.is_ok() {
                    tracing::info!(peer = %peer, "account credentials changed; disconnected");
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, "the account's credentials changed; log in again".into(), String::new()).await;
                    return;
                }
            }
            _ = shutdown.changed(), if cut_at.is_none() => {
                if !logged_in {
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, "server shutting down".into(), String::new()).await;
                    return;
                }
                cut_at = Some(Box::pin(tokio::time::sleep(shared.shutdown_grace)));
            }
            _ = async { if let Some(c) = cut_at.as_mut() { c.await } }, if cut_at.is_some() => {
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "server shutting down".into(), String::new()).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flooding_address_gives_way_to_a_newcomer() {
        let mut p = PreAuth::default();
        let mut receivers = Vec::new();
        for i in 0..10 {
            for a in ["10.0.0.1", "10.0.0.2"] {
                receivers.push(p.admit(ip(a), 20).unwrap_or_else(|| panic!("{a} #{i}")));
            }
        }
        assert!(p.admit(ip("10.0.0.1"), 20).is_none(), "per-address cap");
        let (_, _) = p
            .admit(ip("192.0.2.7"), 20)
            .expect("a newcomer evicts a flooder");
        assert_eq!(p.waiting.len(), 20);
        let evicted = receivers
            .iter_mut()
            .filter_map(|(_, rx)| rx.try_recv().ok())
            .count();
        assert_eq!(evicted, 1);
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let mut p = PreAuth::default();
        let mut held = Vec::new();
        for i in 0..MAX_UNAUTHENTICATED_PER_ADDRESS {
            held.push(
                p.admit(ip(&format!("2001:db8:0:1::{:x}", i + 1)), 64)
                    .unwrap(),
            );
        }
        assert!(p.admit(ip("2001:db8:0:1:ffff::1"), 64).is_none());
        assert!(p.admit(ip("2001:db8:0:2::1"), 64).is_some());
    }
}
