//! `coffer serve`: opens the store and the data key, the listeners and the
//! control socket, then serves until SIGTERM or SIGINT.
//!
//! Start-up order: configuration, store (writer lock), data key, host keys,
//! listeners, control socket; a failure at any step exits with one line
//! naming what failed, before anything is served. Shutdown: stop accepting,
//! close connections that have not logged in, give logged-in sessions the
//! configured grace to finish their transfers, then cut the rest.
//!
//! This is the `serve` command's own entry point: [`run`] and the start-up
//! sequence under it turn the layers' typed errors (configuration, system,
//! store, seal, host keys) into one `anyhow` line with `?`, as the command
//! line's top level does. Nothing below this module returns `anyhow`.

pub mod service;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::admin::{self, Open, ServerInfo, wire};
use crate::auth::{Actor, Options};
use crate::clock::{Clock, SystemClock};
use crate::config::ServeConfig;
use crate::seal;

/// Runs the server on a runtime of its own; returns when it has shut down.
pub fn run(config: ServeConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("coffer")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

fn russh_config(config: &ServeConfig, keys: Vec<russh::keys::PrivateKey>) -> russh::server::Config {
    use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
    use russh::{Preferred, cipher, kex, mac};
    use std::borrow::Cow;
    let limits = &config.sftp;
    russh::server::Config {
        server_id: russh::SshId::Standard(Cow::Borrowed(concat!(
            "SSH-2.0-Coffer_",
            env!("CARGO_PKG_VERSION")
        ))),
        methods: crate::ssh::offered_methods(),
        // Failure delays are applied by the handler, to failures only: russh
        // would also delay a partial success (key, then code).
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys,
        window_size: limits.window_size,
        maximum_packet_size: limits.max_packet,
        // Packets a channel's queue holds while its reader waits: about
        // 128 KiB (2 of the largest), part of each channel's share outside
        // the transfer pools (files::budget; docs/configuration.md,
        // "Memory budget").
        channel_buffer_size: (128 * 1024 / limits.max_packet.max(1) as usize).max(2),
        event_buffer_size: 64,
        max_auth_attempts: limits.max_auth_attempts,
        inactivity_timeout: Some(limits.idle_timeout),
        keepalive_interval: Some(Duration::from_secs(60)),
        keepalive_max: 3,
        nodelay: true,
        preferred: Preferred {
            kex: Cow::Borrowed(&[
                kex::MLKEM768X25519_SHA256,
                kex::CURVE25519,
                kex::CURVE25519_PRE_RFC_8731,
                kex::ECDH_SHA2_NISTP256,
                kex::ECDH_SHA2_NISTP384,
                kex::DH_G16_SHA512,
                kex::DH_G14_SHA256,
                kex::EXTENSION_SUPPORT_AS_SERVER,
                kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
            ]),
            key: Cow::Borrowed(&[
                Algorithm::Ed25519,
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP256,
                },
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP384,
                },
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP521,
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512),
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256),
                },
            ]),
            host_key_certificates: Cow::Borrowed(&[]),
            cipher: Cow::Borrowed(&[
                cipher::AES_128_GCM,
                cipher::CHACHA20_POLY1305,
                cipher::AES_256_GCM,
                cipher::AES_128_CTR,
                cipher::AES_256_CTR,
            ]),
            mac: Cow::Borrowed(&[
                mac::HMAC_SHA256_ETM,
                mac::HMAC_SHA512_ETM,
                mac::HMAC_SHA256,
                mac::HMAC_SHA512,
            ]),
            compression: Cow::Borrowed(&[russh::compression::NONE]),
        },
        ..Default::default()
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let mut service = service::Service::start(&config)?;
    let clock = SystemClock;
    let started_at = clock.now();
    service.status("Starting: opening the store and the data key");
    let options = Options {
        files_root: config.files_root.clone(),
        max_concurrent_hashes: config.max_concurrent_hashes,
        hash_wait: Duration::from_secs(10),
        code_timeout: config.code_timeout.as_secs(),
    };
    let (auth, seal_status) = admin::open(&config.data_dir, &config.seal, Open::Create, options)?;
    let auth = Arc::new(auth);
    match seal_status.backend {
        seal::Backend::Tpm => {
            tracing::info!(detail = %seal_status.detail, "data key sealed by the TPM")
        }
        seal::Backend::KeyFile => tracing::warn!(
            path = %seal_status.detail,
            "no TPM: the data key is kept in a key file, protected only by file permissions"
        ),
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&config.files_root)
        .with_context(|| {
            format!(
                "cannot create the files root {}",
                config.files_root.display()
            )
        })?;

    let host = crate::ssh::load_or_create(&config.data_dir, config.sftp.rsa_host_key)?;
    for (algorithm, fingerprint) in &host.fingerprints {
        tracing::info!(%algorithm, %fingerprint, "host key");
    }
    let listener = tokio::net::TcpListener::bind(config.sftp_listen)
        .await
        .with_context(|| format!("cannot listen on {} for SFTP", config.sftp_listen))?;
    let sftp_addr = listener.local_addr()?;

    let mut names = crate::web::tls::local_names();
    names.extend(config.https.host_names.iter().cloned());
    let certs = Arc::new(
        crate::web::tls::Certificates::load_or_create(&config.data_dir, &names, clock.now())
            .context("cannot set up the HTTPS certificate")?,
    );
    tracing::info!(fingerprint = %certs.info().fingerprint, "HTTPS certificate (SHA-256)");
    let tls = Arc::new(crate::web::tls::server_config(certs.clone())?);
    let https_listener = tokio::net::TcpListener::bind(config.https_listen)
        .await
        .with_context(|| format!("cannot listen on {} for HTTPS", config.https_listen))?;
    let https_addr = https_listener.local_addr()?;
    let redirect_listener = match config.https.redirect_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the HTTP redirect"))?,
        ),
        None => None,
    };

    let mut listening = vec![format!("sftp {sftp_addr}"), format!("https {https_addr}")];
    if let Some(l) = &redirect_listener {
        listening.push(format!("http-redirect {}", l.local_addr()?));
    }
    let info = ServerInfo {
        pid: std::process::id(),
        started_at,
        listening,
        https_port: Some(https_addr.port()),
    };
    let (control_listener, socket_path) = wire::bind(&config.data_dir)?;
    let identity = service.drop_privileges(&config)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let executor = admin::host::executor(admin::host::Host {
        auth: auth.clone(),
        data_dir: config.data_dir.clone(),
        files_root: config.files_root.clone(),
        seal: seal_status.clone(),
        info: info.clone(),
        stop: stop_tx.clone(),
        certs: certs.clone(),
    });
    let control_task = tokio::spawn(wire::serve(control_listener, executor));

    // The server's own log is the local operator's.
    let claim_code = auth.claim_code(&Actor::cli())?;
    if let Some(code) = &claim_code {
        let host = names.first().map_or("localhost", String::as_str);
        tracing::warn!(
            "this box is unclaimed: open https://{host}:{}/setup and enter the claim code {code} \
             (or run `coffer setup --admin NAME --password-file FILE` on the box)",
            https_addr.port()
        );
    }

    let shared = Arc::new(crate::ssh::Shared::new(
        auth.clone(),
        russh_config(&config, host.keys),
        config.sftp.clone(),
        config.shutdown_grace,
    ));
    {
        let stop_tx = stop_tx.clone();
        // Registered here, before the ready line: a task registers only when
        // it first runs, and a SIGTERM before that would end the process
        // without closing connections or removing the control socket.
        let signals = stop_signals();
        tokio::spawn(async move {
            wait_for_signal(signals).await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        });
    }
    {
        // After a burst of logins, the memory it freed goes back to the system.
        let auth = auth.clone();
        tokio::spawn(crate::auth::password::release_after_bursts(move || {
            auth.hashing().settled()
        }));
    }
    let listener_task = tokio::spawn(crate::ssh::serve(listener, shared, stop_rx.clone()));
    let web = crate::web::Web::new(
        auth.clone(),
        certs,
        config.https.clone(),
        crate::web::SystemFacts {
            started_at,
            listening: info.listening.clone(),
            seal: seal_status.clone(),
            console: console_state(&config),
        },
    );
    // A change of credentials ends the web sessions of the account at once.
    auth.hold_sessions(
        Arc::downgrade(&web) as std::sync::Weak<dyn crate::auth::live::SessionHolder>
    );
    let https_task = tokio::spawn(crate::web::serve(https_listener, web, tls, stop_rx.clone()));
    if let Some(l) = redirect_listener {
        tokio::spawn(crate::web::serve_redirect(
            l,
            https_addr.port(),
            stop_rx.clone(),
        ));
    }
    service.ready(service::Running {
        watched: crate::system::health::Watched {
            auth: auth.clone(),
            listener: listener_task.abort_handle(),
        },
        stop: stop_rx.clone(),
        config: config.clone(),
        status: format!(
            "Serving SFTP on {sftp_addr} and HTTPS on {https_addr} as {}; {}",
            identity.user,
            if auth.is_claimed()? {
                "claimed"
            } else {
                "UNCLAIMED: open the setup page"
            }
        ),
    });
    tracing::info!(sftp = %sftp_addr, https = %https_addr, "ready");
    // One line on stdout for scripts and tests: the addresses actually bound.
    // A closed or full stdout must not stop the server: say so and go on.
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, "ready: sftp {sftp_addr} https {https_addr}")
            .and_then(|()| stdout.flush())
        {
            tracing::warn!(error = %e, "cannot write the ready line to stdout");
        }
    }
    let _ = listener_task.await;
    https_task.abort();
    let mut stop_watch = stop_rx;
    let ended = service.listener_ended(&mut stop_watch).await;
    service.stopping("Stopping: closing connections");
    control_task.abort();
    let _ = std::fs::remove_file(&socket_path);
    tracing::info!("stopped");
    Ok(ended?)
}

/// The serial console's state in words, for the system page.
fn console_state(config: &ServeConfig) -> String {
    let tty = std::path::Path::new("/dev/ttyS0");
    let unit = std::path::Path::new("/etc/systemd/system/serial-getty@ttyS0.service.d");
    format!(
        "{}; technician console {}; idle timeout {} s",
        if tty.exists() {
            "serial port ttyS0 present"
        } else {
            "no serial port ttyS0"
        },
        if unit.exists() {
            "enabled on ttyS0"
        } else {
            "available as `coffer console` on any terminal"
        },
        config.console.idle_timeout.as_secs()
    )
}

/// SIGTERM and SIGINT, taken over from their default action at once.
fn stop_signals() -> Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => None,
    }
}

async fn wait_for_signal(
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
) {
    let Some((mut term, mut int)) = signals else {
        tracing::error!("cannot listen for signals; stop the server with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

use std::os::unix::fs::DirBuilderExt;
