//! What one slow or greedy client can hold of the HTTPS port.
//!
//! Together with the deadlines in [`super::serve`] (the TLS handshake, then
//! each request head, counted from the end of the previous answer so they
//! also end idle connections), two limits keep a client that opens many
//! connections, or sends slowly, from taking the port from everyone else:
//!
//! - [`Shares`]: connections per source address. An address (an IPv4
//!   address or an IPv6 /64, [`peer_key`]) holds at most its share of the
//!   connection cap; beyond it, its new connections are closed at once, so
//!   one address cannot fill the cap and others still get in. When many
//!   addresses together fill the cap, a newcomer makes the address holding
//!   the most connections close its oldest one, if that address holds more
//!   than the newcomer's ([`Shares::evict_for`]).
//! - [`PacedBody`]: a request body must start within a window (10 s by
//!   default) of the server asking for it, and then arrive at a minimum rate
//!   (1 KiB/s by default) averaged over windows of the same length. A body
//!   that falls behind ends its request with `408` and the connection
//!   closes. Time the server spends between two reads of the body (writing
//!   to disk, hashing a password) is not counted against the client, so a
//!   slow disk never cuts a legitimate upload.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::error::ApiError;
use crate::address::peer_key;

/// How many connections each source address holds.
#[derive(Debug)]
pub struct Shares {
    /// Most connections one address may hold.
    per_address: usize,
    table: Mutex<Table>,
}

/// The connections held, by address group and in the order they came; an
/// address's entry leaves with its last connection, so the table is never
/// larger than the connection cap.
#[derive(Debug, Default)]
struct Table {
    held: HashMap<IpAddr, usize>,
    /// id -> (address group, eviction signal; taken once sent).
    open: BTreeMap<u64, (IpAddr, Option<oneshot::Sender<()>>)>,
    next_id: u64,
}

impl Shares {
    /// At most `per_address` connections for each address.
    pub fn new(per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            per_address: per_address.max(1),
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more connection from `address`, or `None` when the address
    /// already holds its share. The share is given back when the returned
    /// [`Share`] drops; its [`Share::evicted`] fires if [`Shares::evict_for`]
    /// picks it.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Option<Share> {
        let key = peer_key(address);
        let mut table = self.table();
        let count = table.held.entry(key).or_insert(0);
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        let id = table.next_id;
        table.next_id += 1;
        let (tx, rx) = oneshot::channel();
        table.open.insert(id, (key, Some(tx)));
        Some(Share {
            shares: self.clone(),
            key,
            id,
            evicted: Some(rx),
        })
    }

    /// When the connection cap is full and `address` wants in: the address
    /// holding the most connections is told to close its oldest one, if it
    /// holds more than `address` would with the newcomer (as the SSH port
    /// does with connections not logged in). False if no one holds more, so
    /// a crowd of addresses at their share cannot keep a new one out, and
    /// the newcomer never takes a slot from an address no larger than its
    /// own.
    pub fn evict_for(&self, address: IpAddr) -> bool {
        let key = peer_key(address);
        let mut table = self.table();
        // The newcomer's share is already counted.
        let mine = table.held.get(&key).copied().unwrap_or(0);
        // Connections not already told to close, by address.
        let mut live: HashMap<IpAddr, usize> = HashMap::new();
        for (a, signal) in table.open.values() {
            if signal.is_some() {
                *live.entry(*a).or_default() += 1;
            }
        }
        let Some((heavy, n)) = live.into_iter().max_by_key(|&(_, n)| n) else {
            return false;
        };
        if n <= mine {
            return false;
        }
        let oldest = table
            .open
            .iter_mut()
            .find(|(_, (a, signal))| *a == heavy && signal.is_some())
            .and_then(|(_, (_, signal))| signal.take());
        match oldest {
            Some(signal) => {
                let _ = signal.send(());
                true
            }
            None => false,
        }
    }

    /// Connections `address` holds now.
    #[cfg(test)]
    fn held_by(&self, address: IpAddr) -> usize {
        self.table()
            .held
            .get(&peer_key(address))
            .copied()
            .unwrap_or(0)
    }
}

/// One connection's place in its address's share.
#[derive(Debug)]
pub struct Share {
    shares: Arc<Shares>,
    key: IpAddr,
    id: u64,
    evicted: Option<oneshot::Receiver<()>>,
}

impl Share {
    /// Fires when the connection is to close to make room for another
    /// address ([`Shares::evict_for`]); taken once.
    pub fn evicted(&mut self) -> oneshot::Receiver<()> {
        self.evicted.take().unwrap_or_else(|| oneshot::channel().1)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut table = self.shares.table();
        table.open.remove(&self.id);
        if let Some(count) = table.held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.held.remove(&self.key);
            }
        }
    }
}

/// How fast a request body must arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Time to the first byte once the server asks for the body, and the
    /// window over which the rate is averaged.
    pub window: Duration,
    /// Bytes per second, at least, in each window (at least one byte per
    /// window when 0).
    pub min_rate: u64,
}

impl Pace {
    /// Bytes owed in each window after the first byte.
    fn quota(&self) -> u64 {
        let millis = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        (self.min_rate.saturating_mul(millis) / 1000).max(1)
    }
}

/// The pace of one body, as a state machine fed with times (tested without
/// waiting).
#[derive(Debug)]
struct Meter {
    pace: Pace,
    /// When the client is too slow unless `owed` bytes arrived; `None` until
    /// the server first waits for the body.
    deadline: Option<Instant>,
    /// Bytes still owed before `deadline`: 1 for the first byte, then the
    /// window's quota.
    owed: u64,
    /// When the last piece was handed to the server: until the server asks
    /// again, the time is the server's.
    handed_at: Option<Instant>,
}

impl Meter {
    fn new(pace: Pace) -> Self {
        Self {
            pace,
            deadline: None,
            owed: 1,
            handed_at: None,
        }
    }

    /// The server waits for more of the body at `now`, and nothing is there:
    /// the time by which it must arrive.
    fn waiting(&mut self, now: Instant) -> Instant {
        let deadline = match (self.deadline, self.handed_at.take()) {
            (None, _) => now + self.pace.window,
            (Some(d), Some(handed)) => d + now.saturating_duration_since(handed),
            (Some(d), None) => d,
        };
        self.deadline = Some(deadline);
        deadline
    }

    /// `bytes` arrived and are handed to the server at `now`.
    fn arrived(&mut self, bytes: u64, now: Instant) {
        self.owed = self.owed.saturating_sub(bytes);
        if self.owed == 0 {
            self.owed = self.pace.quota();
            self.deadline = Some(now + self.pace.window);
        }
        self.handed_at = Some(now);
    }
}

/// The error a body ends with when it arrives too slowly.
#[derive(Debug)]
pub struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for TooSlow {}

/// A request body that must keep up its [`Pace`]. When it falls behind, it
/// ends with [`TooSlow`] and raises `too_slow`, so the connection can answer
/// [`too_slow_response`] whatever the handler made of the error.
pub struct PacedBody<B> {
    inner: B,
    meter: Meter,
    timer: Option<Pin<Box<Sleep>>>,
    too_slow: Arc<AtomicBool>,
}

impl<B> PacedBody<B> {
    /// Wraps `inner`; `too_slow` turns true if it falls behind `pace`.
    pub fn new(inner: B, pace: Pace, too_slow: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            meter: Meter::new(pace),
            timer: None,
            too_slow,
        }
    }
}

impl<B> Body for PacedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.too_slow.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(TooSlow.into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let bytes = u64::try_from(data.len()).unwrap_or(u64::MAX);
                    if bytes > 0 {
                        this.meter.arrived(bytes, Instant::now());
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.meter.waiting(Instant::now());
                let timer = match &mut this.timer {
                    Some(timer) => {
                        if timer.deadline() != deadline {
                            timer.as_mut().reset(deadline);
                        }
                        timer
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                if timer.as_mut().poll(cx).is_ready() {
                    this.too_slow.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(TooSlow.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `408 request_timeout`, closing the connection: the answer to a request
/// whose body fell behind.
pub fn too_slow_response() -> Response {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "The request body arrived too slowly; send the request again.",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Pace = Pace {
        window: Duration::from_secs(10),
        min_rate: 1024,
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_address_holds_its_share_and_gives_it_back() {
        let shares = Shares::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = shares.take(a).unwrap();
        let _second = shares.take(a).unwrap();
        assert!(shares.take(a).is_none());
        let _other = shares.take(b).unwrap();
        drop(first);
        let _again = shares.take(a).unwrap();
        assert_eq!(shares.held_by(a), 2);
    }

    #[test]
    fn an_ipv6_64_holds_one_share() {
        let shares = Shares::new(2);
        let _x = shares.take("2001:db8:0:1::1".parse().unwrap()).unwrap();
        let _y = shares.take("2001:db8:0:1::2".parse().unwrap()).unwrap();
        assert!(
            shares
                .take("2001:db8:0:1:ffff::3".parse().unwrap())
                .is_none()
        );
        assert!(shares.take("2001:db8:0:2::1".parse().unwrap()).is_some());
        drop((_x, _y));
        assert!(shares.table().held.len() <= 1);
    }

    #[test]
    fn a_full_port_makes_room_from_the_heaviest_address_only() {
        let shares = Shares::new(4);
        let heavy: IpAddr = "192.0.2.1".parse().unwrap();
        let light: IpAddr = "192.0.2.2".parse().unwrap();
        let newcomer: IpAddr = "192.0.2.3".parse().unwrap();
        let mut held: Vec<Share> = (0..3).map(|_| shares.take(heavy).unwrap()).collect();
        let mut small = shares.take(light).unwrap();
        let _new = shares.take(newcomer).unwrap();
        // The heavy address's oldest connection is told to close ...
        assert!(shares.evict_for(newcomer));
        assert!(held[0].evicted().try_recv().is_ok());
        assert!(held[1].evicted().try_recv().is_err());
        // ... and only while it holds more than the newcomer's address.
        assert!(shares.evict_for(newcomer));
        assert!(!shares.evict_for(newcomer));
        assert!(small.evicted().try_recv().is_err());
        // A newcomer as large as everyone else gets nothing.
        let even = Shares::new(1);
        let _a = even.take(heavy).unwrap();
        let _b = even.take(light).unwrap();
        assert!(!even.evict_for(light));
    }

    #[test]
    fn the_first_byte_is_due_one_window_after_the_server_asks() {
        let t0 = Instant::now();
        let mut m = Meter::new(PACE);
        assert_eq!(m.waiting(t0 + secs(3)), t0 + secs(13));
        // Asking again does not move the deadline.
        assert_eq!(m.waiting(t0 + secs(8)), t0 + secs(13));
    }

    #[test]
    fn after_the_first_byte_each_window_owes_its_quota() {
        let t0 = Instant::now();
        let mut m = Meter::new(PACE);
        m.waiting(t0);
        m.arrived(1, t0 + secs(1));
        // The window's quota is 10 KiB: 5 KiB do not open a new window.
        assert_eq!(m.waiting(t0 + secs(1)), t0 + secs(11));
        m.arrived(5 * 1024, t0 + secs(5));
        assert_eq!(m.waiting(t0 + secs(5)), t0 + secs(11));
        m.arrived(5 * 1024, t0 + secs(9));
        assert_eq!(m.waiting(t0 + secs(9)), t0 + secs(19));
    }

    #[test]
    fn time_the_server_spends_between_reads_is_not_the_clients() {
        let t0 = Instant::now();
        let mut m = Meter::new(PACE);
        m.waiting(t0);
        m.arrived(100, t0 + secs(2));
        // The server works for 30 s before it asks again.
        assert_eq!(m.waiting(t0 + secs(32)), t0 + secs(42));
        // Counted once.
        assert_eq!(m.waiting(t0 + secs(33)), t0 + secs(42));
    }

    #[test]
    fn a_zero_rate_still_wants_a_byte_per_window() {
        let pace = Pace {
            window: secs(10),
            min_rate: 0,
        };
        assert_eq!(pace.quota(), 1);
        assert_eq!(PACE.quota(), 10 * 1024);
    }

    /// A body fed through a channel, as a client would send it.
    struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_stalled_body_ends_with_too_slow_and_raises_the_flag() {
        use http_body_util::BodyExt as _;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let body = Fed(rx);
        let flag = Arc::new(AtomicBool::new(false));
        let pace = Pace {
            window: Duration::from_millis(100),
            min_rate: 1024,
        };
        let mut paced = PacedBody::new(body, pace, flag.clone());
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        let first = paced.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"a"));
        let err = paced.frame().await.unwrap().unwrap_err();
        assert!(err.is::<TooSlow>());
        assert!(flag.load(Ordering::Relaxed));
        drop(tx);
    }
}
