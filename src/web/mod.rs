//! The HTTPS front end: setup wizard, web UI and REST API.
//!
//! A thin translator, like the SSH side: it turns HTTP requests into calls
//! on the auth core and the confined file tree, and core errors into HTTP
//! answers ([`error`]). Nothing here decides policy.
//!
//! - [`tls`]: the certificate (self-signed on first start, replaceable).
//! - [`session`]: cookie and bearer sessions, CSRF tokens, rotation.
//! - [`api`]: the REST API under `/api/v1` and its OpenAPI document.
//! - [`ui`]: the server-rendered pages (maud), one stylesheet and one small
//!   script, all inside the binary.
//! - `transfer`: streaming upload and download shared by both.
//! - [`slow_clients`]: the share of connections each address may hold, and
//!   the pace a request body must keep.
//!
//! Every response carries the security headers (HSTS, a CSP without inline
//! script, frame-ancestors none, no referrer, nosniff, no-store). Bodies are
//! limited to [`Settings::max_body`] except file uploads, which stream to
//! disk. What one client can hold is bounded (defaults in brackets):
//! connections in all (256) and per address (16; an IPv6 /64 is one
//! address), the TLS handshake (10 s), each request head counted from the
//! end of the previous answer, so also the idle time between requests
//! (10 s), and each request body: its first byte within 10 s of the server
//! asking for it, then at least 1 KiB/s averaged over 10 s, or `408` and
//! the connection closes.

pub mod api;
mod archive;
mod certinfo;
pub mod error;
mod extract;
mod limiter;
pub mod session;
pub mod slow_clients;
pub mod tls;
mod transfer;
pub mod ui;
mod uploads;
mod zip;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::auth::Auth;
use crate::clock::Timestamp;
use crate::seal::SealStatus;

pub use limiter::RateLimiter;

/// Default time allowed for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time allowed for a request head, counted from the handshake or
/// from the end of the previous answer (so also the longest idle time
/// between two requests on one connection).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Default pace of a request body: the first byte within 10 s of the
/// server asking for it, then at least 1 KiB/s averaged over 10 s.
pub const BODY_PACE: slow_clients::Pace = slow_clients::Pace {
    window: Duration::from_secs(10),
    min_rate: 1024,
};

/// Default share of the connections one address (an IPv4 address or an
/// IPv6 /64) may hold: 16 of the default 256.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 16;

/// Where the interactive API viewer's files are looked for by default
/// (`[https] apidoc_dir`; `tools/install-apidoc` puts them there).
pub const DEFAULT_APIDOC_DIR: &str = "/usr/share/coffer/apidoc";

/// Default chunk of the file page's resumable uploads: 8 MiB (over Wi-Fi a
/// dropped connection costs at most this much).
pub const UPLOAD_CHUNK: u64 = 8 * 1024 * 1024;

/// Settings of the HTTPS front end (from `[https]`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// A plain-HTTP port that only redirects to HTTPS (off when `None`).
    pub redirect_listen: Option<SocketAddr>,
    /// Session timeouts and caps.
    pub sessions: session::Limits,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections one address (an IPv4 address or an IPv6 /64) holds
    /// at once; beyond it, that address's new connections are closed.
    pub max_connections_per_address: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a request head, from the handshake or the end of
    /// the previous answer (the idle timeout between requests).
    pub request_timeout: Duration,
    /// How fast a request body must arrive.
    pub body_pace: slow_clients::Pace,
    /// Largest request body other than a file upload.
    pub max_body: usize,
    /// Largest file upload (0: no limit but the disk).
    pub max_upload: u64,
    /// Chunk size of the file page's resumable uploads; larger files go up
    /// in chunks of this size, smaller ones in one request.
    pub upload_chunk: u64,
    /// Login, claim and code attempts per source address per minute.
    pub login_rate: u32,
    /// Extra names for the self-signed certificate.
    pub host_names: Vec<String>,
    /// The directory of the interactive API viewer's files (Swagger UI);
    /// without them `/api` shows the server-rendered reference.
    pub apidoc_dir: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            redirect_listen: None,
            sessions: session::Limits::default(),
            max_connections: 256,
            max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            body_pace: BODY_PACE,
            max_body: 64 * 1024,
            max_upload: 0,
            upload_chunk: UPLOAD_CHUNK,
            login_rate: 30,
            host_names: Vec::new(),
            apidoc_dir: PathBuf::from(DEFAULT_APIDOC_DIR),
        }
    }
}

/// What the system page and `GET /api/v1/system` show of the server.
#[derive(Clone, Debug)]
pub struct SystemFacts {
    /// When the server started.
    pub started_at: Timestamp,
    /// Listening addresses, e.g. `sftp 0.0.0.0:2022`.
    pub listening: Vec<String>,
    /// How the data key is protected.
    pub seal: SealStatus,
    /// Whether the serial console is set up, and its state, in words.
    pub console: String,
}

/// How long a connection that made room by eviction waits for the slot.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// The state every handler shares.
#[derive(Debug)]
pub struct Web {
    /// The core.
    pub auth: Arc<Auth>,
    /// Sessions.
    pub sessions: session::Sessions,
    /// The certificate.
    pub certs: Arc<tls::Certificates>,
    /// Attempts per address.
    pub limiter: RateLimiter,
    /// Settings.
    pub settings: Settings,
    /// Facts for the system page.
    pub facts: SystemFacts,
    /// Resumable uploads in progress.
    pub uploads: uploads::Uploads,
}

/// The peer's address, put in every request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Web {
    /// The shared state.
    pub fn new(
        auth: Arc<Auth>,
        certs: Arc<tls::Certificates>,
        settings: Settings,
        facts: SystemFacts,
    ) -> Arc<Self> {
        Arc::new(Self {
            sessions: session::Sessions::new(settings.sessions.clone()).with_rng(auth.rng()),
            limiter: RateLimiter::new(settings.login_rate, 60),
            auth,
            certs,
            settings,
            facts,
            uploads: uploads::Uploads::default(),
        })
    }

    /// The current time, from the core's clock.
    pub fn now(&self) -> Timestamp {
        self.auth.now()
    }
}

/// The whole application: pages, API, assets, with the security headers.
pub fn router(web: Arc<Web>) -> Router {
    let max_body = web.settings.max_body;
    Router::new()
        .merge(ui::routes())
        .nest("/api/v1", api::routes().router)
        .fallback(ui::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(security_headers))
        .with_state(web)
}

/// The headers every answer carries.
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let is_viewer = request.uri().path().starts_with(ui::VIEWER_PREFIX);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // The viewer's files name their version in the URL and say how long
    // they keep (`ui::viewer`); every other answer's is chosen here.
    let own_cache = is_viewer && headers.contains_key(header::CACHE_CONTROL);
    // A handler's own, stricter policy (file previews) stays.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    );
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    if is_asset {
        set(header::CACHE_CONTROL, "public, max-age=3600");
    } else if !own_cache {
        set(header::CACHE_CONTROL, "no-store");
    }
    response
}

/// Serves HTTPS on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    web: Arc<Web>,
    tls: Arc<rustls::ServerConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(web.clone());
    let settings = &web.settings;
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let shares = slow_clients::Shares::new(settings.max_connections_per_address);
    let (handshake_timeout, request_timeout, pace) = (
        settings.handshake_timeout,
        settings.request_timeout,
        settings.body_pace,
    );
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "HTTPS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Beyond its address's share, or over the cap, the newest
        // connection is closed at once. The share comes first, so an
        // address over its share never takes one of the cap's slots.
        let Some(mut share) = shares.take(peer.ip()) else {
            tracing::debug!(peer = %peer, "HTTPS connection over its address's share; closed");
            drop(stream);
            continue;
        };
        // Over the cap, the address holding the most connections gives up
        // its oldest one, if it holds more than this one's address; the
        // newcomer then waits briefly for the slot it freed.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if shares.evict_for(peer.ip()) => None,
            Err(_) => {
                tracing::debug!(peer = %peer, "too many HTTPS connections; closed");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = stop.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            let permit = match permit {
                Some(permit) => permit,
                None => match tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    _ => return,
                },
            };
            let mut evicted = share.evicted();
            let _held = (permit, share);
            let tls = tokio::select! {
                tls = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)) => tls,
                _ = &mut evicted => return,
            };
            let Ok(Ok(tls)) = tls else {
                return;
            };
            let service = hyper::service::service_fn(
                move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(Peer(peer));
                    let too_slow = Arc::new(AtomicBool::new(false));
                    let request = request.map(|body| {
                        axum::body::Body::new(slow_clients::PacedBody::new(
                            body,
                            pace,
                            too_slow.clone(),
                        ))
                    });
                    let app = app.clone();
                    async move {
                        use tower::ServiceExt as _;
                        let response = app.oneshot(request).await;
                        if too_slow.load(Ordering::Relaxed) {
                            tracing::info!(peer = %peer, "request body arrived too slowly; closing the connection");
                            return Ok(slow_clients::too_slow_response());
                        }
                        response
                    }
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(request_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = &mut evicted => {
                    tracing::debug!(peer = %peer, "HTTPS connection closed to make room for another address");
                }
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                }
            }
        });
    }
}

/// Serves plain HTTP that only redirects to the HTTPS port. Each connection
/// lives at most 30 s; the defaults of the HTTPS port bound how many there
/// are, in all and per address.
pub async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    mut stop: watch::Receiver<bool>,
) {
    let defaults = Settings::default();
    let slots = Arc::new(Semaphore::new(defaults.max_connections));
    let shares = slow_clients::Shares::new(defaults.max_connections_per_address);
    let request_timeout = defaults.request_timeout;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(share) = shares.take(peer.ip()) else {
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        tokio::spawn(async move {
            let _held = (permit, share);
            let service = hyper::service::service_fn(
                move |request: Request<hyper::body::Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(redirect_to_https(&request, https_port))
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(request_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
        });
    }
}

/// A 301 to the same host and path on the HTTPS port.
fn redirect_to_https<B>(request: &Request<B>, https_port: u16) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_without_port)
        .filter(|h| valid_host(h))
        .unwrap_or("localhost");
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = axum::http::StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6] or [v6]:port
        return host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Host names and addresses only: letters, digits, dots, dashes, colons and
/// brackets, so a crafted Host header cannot inject into the Location.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The source address of a request.
pub fn peer_ip(request_peer: Option<&Peer>) -> IpAddr {
    request_peer.map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_host_and_path_and_refuse_crafted_hosts() {
        let request = |host: &str| {
            Request::builder()
                .uri("/files?path=%2Fa")
                .header(header::HOST, host)
                .body(())
                .unwrap()
        };
        let location = |r: Response| r.headers()[header::LOCATION].to_str().unwrap().to_string();
        assert_eq!(
            location(redirect_to_https(&request("box.local:8080"), 8443)),
            "https://box.local:8443/files?path=%2Fa"
        );
        assert_eq!(
            location(redirect_to_https(&request("box.local"), 443)),
            "https://box.local/files?path=%2Fa"
        );
        assert_eq!(
            location(redirect_to_https(&request("[::1]:80"), 8443)),
            "https://[::1]:8443/files?path=%2Fa"
        );
        assert_eq!(
            location(redirect_to_https(&request("evil.com/x?"), 8443)),
            "https://localhost:8443/files?path=%2Fa"
        );
    }
}
