//! Configuration of `coffer serve`: a versioned TOML file, overridden by flags.
//!
//! Two layers, as in the style guide: [`FileConfig`] is what the file says
//! (unknown keys are errors, so a typo never silently does nothing), and
//! [`ServeConfig`] is the resolved runtime configuration with every default
//! filled in and every value checked. Durations are written `30s`, `5m`, `1h`.
//! A refusal is a [`ConfigError`] that names the key.

pub mod console;
mod error;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::policy::parse_duration;
use crate::seal::{BackendChoice, SealOptions};
pub use error::ConfigError;

/// Default SFTP address.
pub const DEFAULT_SFTP_LISTEN: &str = "0.0.0.0:2022";
/// Default HTTPS address (web UI and REST API).
pub const DEFAULT_HTTPS_LISTEN: &str = "0.0.0.0:8443";

/// The configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Format version; only 1 exists.
    pub version: Option<u32>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Root of the home folders.
    pub files_root: Option<PathBuf>,
    /// Log filter, e.g. `info` or `coffer=debug` (RUST_LOG wins).
    pub log_level: Option<String>,
    /// Where the log goes: `auto`, `journald` or `stderr`.
    pub log_target: Option<String>,
    /// Sealing of the data key.
    #[serde(default)]
    pub seal: SealSection,
    /// The SSH/SFTP front end.
    #[serde(default)]
    pub sftp: SftpSection,
    /// The HTTPS front end.
    #[serde(default)]
    pub https: HttpsSection,
    /// The authentication core.
    #[serde(default)]
    pub auth: AuthSection,
    /// Shutdown.
    #[serde(default)]
    pub shutdown: ShutdownSection,
    /// The service account a root-started server drops to.
    #[serde(default)]
    pub service: crate::system::privilege::ServiceSection,
    /// The technician console.
    #[serde(default)]
    pub console: console::ConsoleSection,
}

/// `[seal]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealSection {
    /// `auto`, `tpm` or `keyfile`.
    pub backend: Option<String>,
    /// TCTI, e.g. `device:/dev/tpmrm0`.
    pub tcti: Option<String>,
    /// Bind a newly sealed key to PCR 7.
    pub pcr7: Option<bool>,
}

/// `[sftp]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpSection {
    /// Listen address.
    pub listen: Option<String>,
    /// Most connections at once.
    pub max_connections: Option<usize>,
    /// Most connections that have not logged in yet.
    pub max_unauthenticated: Option<usize>,
    /// Time allowed to log in.
    pub login_grace_time: Option<String>,
    /// Authentication attempts per connection.
    pub max_auth_attempts: Option<usize>,
    /// Delay before a failed login is answered.
    pub failure_delay: Option<String>,
    /// Channels (SFTP/SCP sessions) per connection.
    pub max_channels: Option<usize>,
    /// Channels open at once in the whole process.
    pub max_open_channels: Option<usize>,
    /// An idle connection is closed after this long.
    pub idle_timeout: Option<String>,
    /// SSH channel window in bytes.
    pub window_size: Option<u32>,
    /// Largest SSH packet accepted, in bytes.
    pub max_packet: Option<u32>,
    /// Also offer an RSA host key (rsa-sha2-256/512) for old clients.
    pub rsa_host_key: Option<bool>,
}

/// `[https]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsSection {
    /// Listen address.
    pub listen: Option<String>,
    /// A plain-HTTP address that only redirects to HTTPS (off by default).
    pub redirect_listen: Option<String>,
    /// Extra host names for the self-signed certificate.
    pub host_names: Option<Vec<String>>,
    /// A signed-in session ends after this long without a request.
    pub idle_timeout: Option<String>,
    /// A signed-in session ends this long after login.
    pub session_lifetime: Option<String>,
    /// Most HTTPS connections at once.
    pub max_connections: Option<usize>,
    /// Most HTTPS connections one address (an IPv4 address or an IPv6 /64)
    /// holds at once.
    pub max_connections_per_address: Option<usize>,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Option<String>,
    /// Time allowed for a request head, from the handshake or the end of
    /// the previous answer (so also the idle time between requests).
    pub request_timeout: Option<String>,
    /// Time to a request body's first byte, and the window its rate is
    /// averaged over.
    pub body_timeout: Option<String>,
    /// Slowest request body accepted, in bytes per second.
    pub min_body_rate: Option<u64>,
    /// Largest file upload in bytes (0: only the disk limits it).
    pub max_upload: Option<u64>,
    /// Chunk size of the file page's resumable uploads, in bytes.
    pub upload_chunk: Option<u64>,
    /// Login, code and claim attempts per source address per minute.
    pub login_rate: Option<u32>,
    /// The directory holding the interactive API viewer's files.
    pub apidoc_dir: Option<PathBuf>,
}

/// `[auth]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Most password hashes computed at once.
    pub max_concurrent_hashes: Option<usize>,
    /// Time between the first factor and the code.
    pub code_timeout: Option<String>,
}

/// `[shutdown]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSection {
    /// How long in-flight transfers may finish after SIGTERM.
    pub grace: Option<String>,
}

/// Command-line overrides of the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`
    pub config: Option<PathBuf>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--sftp-listen`
    pub sftp_listen: Option<String>,
    /// `--https-listen`
    pub https_listen: Option<String>,
    /// `--files-root`
    pub files_root: Option<PathBuf>,
    /// `--log-level`
    pub log_level: Option<String>,
    /// `--seal` when given explicitly
    pub seal: Option<String>,
    /// `--tcti`
    pub tcti: Option<String>,
    /// `--pcr7`
    pub pcr7: bool,
}

pub use crate::ssh::Limits as SshLimits;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Root of home folders.
    pub files_root: PathBuf,
    /// Log filter.
    pub log_level: String,
    /// Sealing.
    pub seal: SealOptions,
    /// SFTP listen address.
    pub sftp_listen: SocketAddr,
    /// HTTPS listen address.
    pub https_listen: SocketAddr,
    /// The HTTPS front end's settings (its `listen` is `https_listen`).
    pub https: crate::web::Settings,
    /// SSH limits.
    pub sftp: SshLimits,
    /// Concurrent hashes.
    pub max_concurrent_hashes: usize,
    /// Code step timeout.
    pub code_timeout: Duration,
    /// Shutdown grace.
    pub shutdown_grace: Duration,
    /// Where the log goes.
    pub log_target: crate::system::logging::Target,
    /// The service account (`[service]`).
    pub service: crate::system::privilege::ServiceSettings,
    /// The technician console (`[console]`).
    pub console: console::ConsoleSettings,
    /// Where this configuration came from, so SIGHUP can read it again.
    pub source: ConfigSource,
}

/// The file and flags a configuration was resolved from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The configuration file, if one was given.
    pub file: Option<PathBuf>,
    /// The command-line overrides.
    pub flags: Overrides,
    /// The data dir used when neither flag nor file names one.
    pub default_data_dir: PathBuf,
}

fn duration(
    key: &'static str,
    value: Option<&String>,
    default: &str,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let text = value.map_or(default, String::as_str);
    match parse_duration(text) {
        Some(s) if (min..=max).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(ConfigError::value(
            key,
            format!("{key} = {text:?}: expected a duration from {min}s to {max}s, e.g. 30s or 5m"),
        )),
    }
}

fn within<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError::value(
            key,
            format!("{key} = {v}: expected {min} to {max}"),
        ));
    }
    Ok(v)
}

fn address(key: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::value(
            key,
            format!(
                "{key} = {text:?}: expected an address and port such as 0.0.0.0:2022 or [::]:2022"
            ),
        )
    })
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Unreadable {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::parse(&text).map_err(|cause| ConfigError::InFile {
            path: path.to_path_buf(),
            cause: Box::new(cause),
        })
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: FileConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax(e.message().trim().to_string()))?;
        match config.version {
            None | Some(1) => Ok(config),
            Some(v) => Err(ConfigError::Version(v)),
        }
    }

    /// Applies the flags and the defaults, and checks every value.
    pub fn resolve(
        self,
        flags: &Overrides,
        default_data_dir: PathBuf,
    ) -> Result<ServeConfig, ConfigError> {
        let data_dir = flags
            .data_dir
            .clone()
            .or(self.data_dir)
            .unwrap_or_else(|| default_data_dir.clone());
        let files_root = flags
            .files_root
            .clone()
            .or(self.files_root)
            .unwrap_or_else(|| data_dir.join("files"));
        let backend = flags
            .seal
            .clone()
            .or(self.seal.backend)
            .unwrap_or_else(|| "auto".into());
        let seal = SealOptions {
            choice: backend
                .parse::<BackendChoice>()
                .map_err(|e| ConfigError::value("seal.backend", format!("seal.backend: {e}")))?,
            tcti: flags.tcti.clone().or(self.seal.tcti),
            bind_pcr7: flags.pcr7 || self.seal.pcr7.unwrap_or(false),
        };
        let s = &self.sftp;
        let sftp = SshLimits {
            max_connections: within("sftp.max_connections", s.max_connections, 1024, 1, 100_000)?,
            max_unauthenticated: within(
                "sftp.max_unauthenticated",
                s.max_unauthenticated,
                64,
                1,
                10_000,
            )?,
            login_grace_time: duration(
                "sftp.login_grace_time",
                s.login_grace_time.as_ref(),
                "30s",
                1,
                600,
            )?,
            max_auth_attempts: within("sftp.max_auth_attempts", s.max_auth_attempts, 6, 1, 100)?,
            failure_delay: duration_ms("sftp.failure_delay", s.failure_delay.as_ref(), "1s")?,
            max_channels: within("sftp.max_channels", s.max_channels, 8, 1, 256)?,
            max_open_channels: within(
                "sftp.max_open_channels",
                s.max_open_channels,
                512,
                1,
                100_000,
            )?,
            idle_timeout: duration(
                "sftp.idle_timeout",
                s.idle_timeout.as_ref(),
                "15m",
                10,
                7 * 86_400,
            )?,
            // 2 MiB, as OpenSSH: with 8 MiB, eight OpenSSH clients uploading
            // at once spent twice the CPU per GiB (their send buffers grew and
            // shrank), and one upload gained nothing (benches/RESULTS.md).
            window_size: within(
                "sftp.window_size",
                s.window_size,
                2 * 1024 * 1024,
                64 * 1024,
                64 * 1024 * 1024,
            )?,
            max_packet: within("sftp.max_packet", s.max_packet, 65_536, 4096, 262_144)?,
            rsa_host_key: s.rsa_host_key.unwrap_or(true),
        };
        if sftp.max_unauthenticated > sftp.max_connections {
            return Err(ConfigError::value(
                "sftp.max_unauthenticated",
                "sftp.max_unauthenticated must not exceed sftp.max_connections",
            ));
        }
        let sftp_listen = flags
            .sftp_listen
            .clone()
            .or(self.sftp.listen)
            .unwrap_or_else(|| DEFAULT_SFTP_LISTEN.into());
        let https_listen = flags
            .https_listen
            .clone()
            .or(self.https.listen.clone())
            .unwrap_or_else(|| DEFAULT_HTTPS_LISTEN.into());
        let h = &self.https;
        let https_addr = address("https.listen", &https_listen)?;
        let https = crate::web::Settings {
            listen: https_addr,
            redirect_listen: h
                .redirect_listen
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| address("https.redirect_listen", t))
                .transpose()?,
            sessions: crate::web::session::Limits {
                idle: duration(
                    "https.idle_timeout",
                    h.idle_timeout.as_ref(),
                    "30m",
                    60,
                    7 * 86_400,
                )?
                .as_secs(),
                lifetime: duration(
                    "https.session_lifetime",
                    h.session_lifetime.as_ref(),
                    "12h",
                    300,
                    30 * 86_400,
                )?
                .as_secs(),
                ..crate::web::session::Limits::default()
            },
            max_connections: within("https.max_connections", h.max_connections, 256, 1, 100_000)?,
            max_connections_per_address: within(
                "https.max_connections_per_address",
                h.max_connections_per_address,
                crate::web::MAX_CONNECTIONS_PER_ADDRESS,
                1,
                100_000,
            )?,
            handshake_timeout: duration(
                "https.handshake_timeout",
                h.handshake_timeout.as_ref(),
                "10s",
                1,
                600,
            )?,
            request_timeout: duration(
                "https.request_timeout",
                h.request_timeout.as_ref(),
                "10s",
                1,
                3600,
            )?,
            body_pace: crate::web::slow_clients::Pace {
                window: duration("https.body_timeout", h.body_timeout.as_ref(), "10s", 1, 600)?,
                min_rate: within(
                    "https.min_body_rate",
                    h.min_body_rate,
                    crate::web::BODY_PACE.min_rate,
                    0,
                    1 << 30,
                )?,
            },
            max_upload: h.max_upload.unwrap_or(0),
            upload_chunk: within(
                "https.upload_chunk",
                h.upload_chunk,
                crate::web::UPLOAD_CHUNK,
                64 * 1024,
                1 << 30,
            )?,
            login_rate: within("https.login_rate", h.login_rate, 30, 1, 10_000)?,
            host_names: h.host_names.clone().unwrap_or_default(),
            apidoc_dir: h
                .apidoc_dir
                .clone()
                .unwrap_or_else(|| crate::web::DEFAULT_APIDOC_DIR.into()),
            ..crate::web::Settings::default()
        };
        for name in &https.host_names {
            if name.is_empty()
                || name.len() > 253
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:*".contains(&b))
            {
                return Err(ConfigError::value(
                    "https.host_names",
                    format!("https.host_names: {name:?} is not a host name or address"),
                ));
            }
        }
        let source = ConfigSource {
            file: flags.config.clone(),
            flags: flags.clone(),
            default_data_dir,
        };
        let log_level = flags
            .log_level
            .clone()
            .or(self.log_level)
            .unwrap_or_else(|| "info".into());
        crate::system::logging::parse_filter(&log_level)?;
        Ok(ServeConfig {
            data_dir,
            files_root,
            log_level,
            seal,
            sftp_listen: address("sftp.listen", &sftp_listen)?,
            https_listen: https_addr,
            https,
            sftp,
            max_concurrent_hashes: within(
                "auth.max_concurrent_hashes",
                self.auth.max_concurrent_hashes,
                4,
                1,
                64,
            )?,
            code_timeout: duration(
                "auth.code_timeout",
                self.auth.code_timeout.as_ref(),
                "5m",
                30,
                3600,
            )?,
            shutdown_grace: duration(
                "shutdown.grace",
                self.shutdown.grace.as_ref(),
                "10s",
                0,
                3600,
            )?,
            log_target: self
                .log_target
                .as_deref()
                .unwrap_or("auto")
                .parse()
                .map_err(|e| ConfigError::value("log_target", format!("log_target = {e}")))?,
            service: self.service.resolve()?,
            console: self.console.resolve()?,
            source,
        })
    }
}

/// A delay in `ms`, `s` or `m` (failure delays are below a second in tests).
fn duration_ms(
    key: &'static str,
    value: Option<&String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.map_or(default, String::as_str);
    let parsed = match text.strip_suffix("ms") {
        Some(ms) => ms.parse::<u64>().ok().map(Duration::from_millis),
        None => parse_duration(text).map(Duration::from_secs),
    };
    match parsed {
        Some(d) if d <= Duration::from_secs(10) => Ok(d),
        _ => Err(ConfigError::value(
            key,
            format!("{key} = {text:?}: expected a delay up to 10s, e.g. 1s or 250ms"),
        )),
    }
}

/// The data dir when none is given: `$STATE_DIRECTORY` (systemd's, its
/// first entry), else `./coffer-data`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|state| {
            let text = state.to_string_lossy();
            text.split(':')
                .next()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("coffer-data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arithmetic of docs/configuration.md ("Memory budget") with the
    /// default limits: the file transfers' worst case, the argon2 pool and
    /// the process at rest stay below 384 MiB of the unit's 512 MiB.
    #[test]
    fn the_default_limits_fit_the_memory_budget() {
        use crate::files::budget;
        let c = FileConfig::parse("")
            .unwrap()
            .resolve(&Overrides::default(), "d".into())
            .unwrap();
        const MIB: usize = 1024 * 1024;
        let channels = c.sftp.max_open_channels * budget::CHANNEL_OUTSIDE_BYTES;
        let pools = budget::INTAKE_BYTES + budget::WORK_BYTES + budget::KEPT_BYTES;
        // The shipped argon2id cost is m=19456 KiB.
        let hashing = c.max_concurrent_hashes * 19 * MIB;
        // At rest, and 1024 logged-in connections without channels.
        let rest = 37 * MIB + c.sftp.max_connections * 50 * 1024;
        let worst = channels + pools + hashing + rest;
        assert!(worst <= 384 * MIB, "{} MiB", worst / MIB);
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = FileConfig::parse("")
            .unwrap()
            .resolve(&Overrides::default(), "d".into())
            .unwrap();
        assert_eq!(c.sftp_listen.to_string(), "0.0.0.0:2022");
        assert_eq!(c.https_listen.to_string(), "0.0.0.0:8443");
        assert_eq!(c.files_root, PathBuf::from("d/files"));
        assert_eq!(c.sftp.login_grace_time, Duration::from_secs(30));
        assert_eq!(c.https.max_connections, 256);
        assert_eq!(c.https.apidoc_dir, Path::new("/usr/share/coffer/apidoc"));
        assert_eq!(c.https.max_connections_per_address, 16);
        assert_eq!(c.https.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.https.request_timeout, Duration::from_secs(10));
        assert_eq!(c.https.body_pace.window, Duration::from_secs(10));
        assert_eq!(c.https.body_pace.min_rate, 1024);
    }

    #[test]
    fn flags_override_the_file() {
        let file = FileConfig::parse("version = 1\ndata_dir = \"/x\"\n[sftp]\nlisten = \"127.0.0.1:1\"\nfailure_delay = \"250ms\"\n").unwrap();
        let flags = Overrides {
            sftp_listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let c = file.resolve(&flags, "d".into()).unwrap();
        assert_eq!(c.sftp_listen.to_string(), "127.0.0.1:2");
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        assert_eq!(c.sftp.failure_delay, Duration::from_millis(250));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            ("version = 2", "configuration version 1"),
            ("[sftp]\nlisen = \"x\"", "unknown field"),
            ("[sftp]\nlisten = \"nowhere\"", "sftp.listen"),
            ("[sftp]\nmax_connections = 0", "sftp.max_connections"),
            (
                "[sftp]\nlogin_grace_time = \"forever\"",
                "sftp.login_grace_time",
            ),
            ("[seal]\nbackend = \"hsm\"", "seal.backend"),
            (
                "[https]\nmax_connections_per_address = 0",
                "https.max_connections_per_address",
            ),
            ("[https]\nbody_timeout = \"0s\"", "https.body_timeout"),
            ("this is not toml", "expected"),
            (
                "[sftp]\nmax_connections = 1\nmax_unauthenticated = 2",
                "must not exceed",
            ),
        ];
        for (text, want) in cases {
            let err = FileConfig::parse(text)
                .and_then(|f| f.resolve(&Overrides::default(), "d".into()))
                .unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(want), "{text:?}: {msg}");
        }
    }

    fn refusal(text: &str) -> ConfigError {
        FileConfig::parse(text)
            .and_then(|f| f.resolve(&Overrides::default(), "d".into()))
            .unwrap_err()
    }

    #[test]
    fn a_bad_value_is_a_typed_error_that_names_its_key() {
        let cases = [
            ("[sftp]\nmax_connections = 0", "sftp.max_connections"),
            ("[https]\nlisten = \"here\"", "https.listen"),
            ("[https]\nhost_names = [\"a b\"]", "https.host_names"),
            ("[sftp]\nfailure_delay = \"1h\"", "sftp.failure_delay"),
            ("log_target = \"syslog\"", "log_target"),
            ("[console]\nidle_timeout = \"1s\"", "console.idle_timeout"),
            ("[console]\nreboot_command = []", "console.reboot_command"),
            ("version = 3", "version"),
        ];
        for (text, key) in cases {
            let err = refusal(text);
            assert_eq!(err.key(), Some(key), "{text:?}: {err}");
            assert!(err.to_string().contains(key), "{text:?}: {err}");
        }
        // What the system box checks keeps its own type, and its key.
        let err = refusal("log_level = \"coffer=loud\"");
        assert!(matches!(err, ConfigError::System(_)), "{err:?}");
        assert_eq!(err.key(), Some("log_level"));
        let err = refusal("[service]\nuser = \"a:b\"");
        assert_eq!(err.key(), Some("service.user"), "{err}");
        assert!(matches!(
            refusal("[sftp]\nlisen = 1"),
            ConfigError::Syntax(_)
        ));
    }

    #[test]
    fn a_file_names_itself_and_says_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.toml");
        let err = FileConfig::load(&path).unwrap_err();
        assert!(matches!(err, ConfigError::Unreadable { .. }), "{err:?}");
        std::fs::write(&path, "[sftp]\nmax_channels = 0\n").unwrap();
        let err = FileConfig::load(&path)
            .and_then(|f| f.resolve(&Overrides::default(), "d".into()))
            .unwrap_err();
        // Values are checked after loading: the message names the key.
        assert_eq!(err.key(), Some("sftp.max_channels"));
        std::fs::write(&path, "version = 2\n").unwrap();
        let err = FileConfig::load(&path).unwrap_err();
        assert!(matches!(err, ConfigError::InFile { .. }), "{err:?}");
        assert_eq!(err.key(), Some("version"));
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(
            format!("{:#}", anyhow::Error::from(err)),
            format!(
                "in {}: version = 2: this coffer reads configuration version 1",
                path.display()
            )
        );
    }
}
