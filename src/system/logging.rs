//! Where the server's log goes: the journal, with structured fields, or a
//! compact human format on standard error.
//!
//! Under systemd the server writes to journald natively (through
//! `tracing-journald`), so every field of an event is its own journal field:
//! `EVENT_ID`, `EVENT`, `ACCOUNT`, `ADDRESS`, `PROTOCOL`, `METHOD` on audit
//! events, `SESSION_ID` and `PEER` on everything an SSH connection logs
//! (`journalctl -u coffer EVENT_ID=1001`). Elsewhere the same events are one
//! compact line each on standard error.
//!
//! `log_target = "auto"` (the default) picks the journal when its socket
//! exists and standard error is the journal stream systemd set up for this
//! service (`JOURNAL_STREAM`), so a developer running `coffer serve` in a
//! terminal of a systemd machine still sees the log.
//!
//! The level is a tracing filter (`info`, `coffer=debug,russh=warn`) from
//! the configuration; `RUST_LOG` wins when set. SIGHUP applies a changed
//! `log_level` without a restart ([`set_level`]).
//!
//! What is never logged: a password, code, recovery code, token or seed. The
//! core logs names, addresses and outcomes only; an end-to-end test greps a
//! whole login, enrolment and token scenario's log for every secret used.

use std::path::Path;
use std::sync::OnceLock;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Registry, reload};

use super::SystemError;

/// The journal's native socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Where the log goes (`log_target` in the configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// The journal when this process's standard error is systemd's journal
    /// stream and the journal socket exists; else standard error.
    #[default]
    Auto,
    /// The journal (an error when its socket is missing).
    Journald,
    /// Standard error, compact lines.
    Stderr,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Target::Auto),
            "journald" => Ok(Target::Journald),
            "stderr" => Ok(Target::Stderr),
            _ => Err(format!("{s:?}: expected auto, journald or stderr")),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Auto => "auto",
            Target::Journald => "journald",
            Target::Stderr => "stderr",
        })
    }
}

static RELOAD: OnceLock<reload::Handle<Targets, Registry>> = OnceLock::new();

/// Checks a filter such as `info` or `coffer=debug,russh=warn`: a default
/// level and `target=level` pairs, comma-separated (tracing's `Targets`
/// syntax; no span or field filters, which would pull in a regex engine).
pub fn parse_filter(level: &str) -> Result<Targets, SystemError> {
    targets(level).map_err(|e| {
        SystemError::setting(
            "log_level",
            format!(
                "log_level = {level:?} is not a log filter ({e}); use e.g. info or coffer=debug"
            ),
        )
    })
}

/// Parses `Targets` syntax, refusing what would parse but not mean what it
/// says: `Targets` takes `coffer[login]=debug` (a span filter elsewhere)
/// as a target of that name, which never matches.
fn targets(text: &str) -> Result<Targets, String> {
    let text = text.trim();
    if let Some(c) = text
        .chars()
        .find(|c| matches!(c, '[' | ']' | '{' | '}' | '"'))
    {
        return Err(format!(
            "{c:?}: span and field filters are not supported, only target=level pairs"
        ));
    }
    if text.contains(char::is_whitespace) {
        return Err("no spaces inside a filter".into());
    }
    text.parse::<Targets>().map_err(|e| e.to_string())
}

/// `RUST_LOG`, when it is set and not blank.
fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// The filter `RUST_LOG` names, when it is set and not blank.
pub fn env_filter() -> Option<Result<Targets, SystemError>> {
    let value = rust_log()?;
    Some(targets(&value).map_err(|e| {
        SystemError::setting(
            "RUST_LOG",
            format!("RUST_LOG = {value:?} is not a log filter ({e})"),
        )
    }))
}

/// Whether `RUST_LOG` decides the level (and a reload leaves it alone).
pub fn rust_log_set() -> bool {
    rust_log().is_some()
}

/// Sets up the server's log. Returns where it goes.
pub fn init(level: &str, target: Target) -> Result<Target, SystemError> {
    let filter = match env_filter() {
        Some(filter) => filter?,
        None => parse_filter(level)?,
    };
    let journal = match target {
        Target::Stderr => false,
        Target::Journald => {
            if !Path::new(JOURNAL_SOCKET).exists() {
                return Err(SystemError::setting(
                    "log_target",
                    format!("log_target = \"journald\", but {JOURNAL_SOCKET} does not exist"),
                ));
            }
            true
        }
        Target::Auto => Path::new(JOURNAL_SOCKET).exists() && stderr_is_journal(),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let used = if journal {
        let layer = tracing_journald::layer()
            .map_err(|e| {
                SystemError::os(format!("cannot log to the journal at {JOURNAL_SOCKET}"), e)
            })?
            .with_field_prefix(None)
            .with_syslog_identifier("coffer".into());
        registry.with(layer).try_init().ok();
        Target::Journald
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        registry.with(layer).try_init().ok();
        Target::Stderr
    };
    let _ = RELOAD.set(handle);
    Ok(used)
}

/// Applies a new level (SIGHUP). Does nothing when `RUST_LOG` decides.
pub fn set_level(level: &str) -> Result<bool, SystemError> {
    if rust_log_set() {
        return Ok(false);
    }
    let filter = parse_filter(level)?;
    let Some(handle) = RELOAD.get() else {
        return Ok(false);
    };
    handle
        .reload(filter)
        .map_err(|e| SystemError::Log(format!("cannot change the log level: {e}")))?;
    Ok(true)
}

/// Whether standard error is the journal stream systemd connected
/// (`JOURNAL_STREAM=DEVICE:INODE` names it).
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let value = value.to_string_lossy();
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(stat.st_dev) && ino.parse::<u64>().ok() == Some(stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_filters_parse() {
        assert_eq!("auto".parse::<Target>().unwrap(), Target::Auto);
        assert_eq!("journald".parse::<Target>().unwrap(), Target::Journald);
        assert!("syslog".parse::<Target>().is_err());
        assert!(parse_filter("coffer=debug,russh=warn").is_ok());
        let err = parse_filter("coffer=loud").unwrap_err();
        assert_eq!(err.key(), Some("log_level"));
        let err = err.to_string();
        assert!(err.contains("log_level"), "{err}");
        // A default level and target pairs; no span or field filters.
        let filter = parse_filter(" warn,coffer::ssh=trace ").unwrap();
        assert!(filter.would_enable("coffer::ssh::files", &tracing::Level::TRACE));
        assert!(!filter.would_enable("russh", &tracing::Level::INFO));
        assert!(filter.would_enable("russh", &tracing::Level::WARN));
        for spans in ["coffer[login]=debug", "[{user=alice}]=trace"] {
            assert!(parse_filter(spans).is_err(), "{spans}");
        }
    }
}
