//! `[console]` in the configuration file.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

use crate::auth::policy::parse_duration;

/// Where systemd-networkd reads `.network` files.
pub const DEFAULT_NETWORK_DIR: &str = "/etc/systemd/network";

/// `[console]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// Directory the network menu writes `.network` files into.
    pub network_dir: Option<PathBuf>,
    /// Command that makes networkd read them again (`networkctl reload`);
    /// an empty list: none.
    pub network_reload_command: Option<Vec<String>>,
    /// Command the power menu runs to reboot.
    pub reboot_command: Option<Vec<String>>,
    /// Command that prints the service's last log lines; the number of lines
    /// is appended.
    pub log_command: Option<Vec<String>>,
    /// The console leaves after this long without input.
    pub idle_timeout: Option<String>,
}

/// The resolved `[console]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// `.network` files go here.
    pub network_dir: PathBuf,
    /// Run after a `.network` file was written (empty: nothing).
    pub network_reload_command: Vec<String>,
    /// Run to reboot.
    pub reboot_command: Vec<String>,
    /// Prints log lines; the count is appended.
    pub log_command: Vec<String>,
    /// Leave after this long without input.
    pub idle_timeout: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            network_dir: PathBuf::from(DEFAULT_NETWORK_DIR),
            network_reload_command: words(&["networkctl", "reload"]),
            reboot_command: words(&["systemctl", "reboot"]),
            log_command: words(&[
                "journalctl",
                "--unit=coffer.service",
                "--no-pager",
                "--output=short-iso",
                "--lines",
            ]),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_string()).collect()
}

impl ConsoleSection {
    /// Fills in the defaults and checks the values.
    pub fn resolve(self) -> Result<ConsoleSettings, ConfigError> {
        let d = ConsoleSettings::default();
        let reboot = self.reboot_command.unwrap_or(d.reboot_command);
        if reboot.first().is_none_or(String::is_empty) {
            return Err(ConfigError::value(
                "console.reboot_command",
                "console.reboot_command must name a program, e.g. [\"systemctl\", \"reboot\"]",
            ));
        }
        let idle = match self.idle_timeout {
            None => d.idle_timeout,
            Some(t) => match parse_duration(&t) {
                Some(s) if (30..=86_400).contains(&s) => Duration::from_secs(s),
                _ => {
                    return Err(ConfigError::value(
                        "console.idle_timeout",
                        format!("console.idle_timeout = {t:?}: expected 30s to 24h, e.g. 10m"),
                    ));
                }
            },
        };
        Ok(ConsoleSettings {
            network_dir: self.network_dir.unwrap_or(d.network_dir),
            network_reload_command: self
                .network_reload_command
                .unwrap_or(d.network_reload_command),
            reboot_command: reboot,
            log_command: self.log_command.unwrap_or(d.log_command),
            idle_timeout: idle,
        })
    }
}
