//! The status screen and the connect menu: what the technician reads out
//! to the owner (the setup URL, the claim code, the fingerprints).

use std::path::Path;

use super::{Console, network};
use crate::admin::{Answer, Request, Sealing, StatusReport};
use crate::clock::format_utc;

impl Console {
    // ---- Status ------------------------------------------------------

    pub(super) fn status(&mut self) {
        let Some(Answer::Status(core)) = self.call(Request::Status) else {
            return;
        };
        let mut lines = vec![String::new(), "Status".to_string()];
        let row = |k: &str, v: String| format!("  {k:<12} {v}");
        lines.push(row(
            "version",
            format!("coffer {}", env!("CARGO_PKG_VERSION")),
        ));
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "?".into());
        lines.push(row(
            "host",
            format!(
                "{host}, up {}",
                system_uptime().unwrap_or_else(|| "?".into())
            ),
        ));
        lines.push(row(
            "server",
            match &core.server {
                Some(s) => format!("running, pid {}, since {}", s.pid, format_utc(s.started_at)),
                None => "not running".into(),
            },
        ));
        if let Some(s) = &core.server {
            for l in &s.listening {
                lines.push(row("listening", l.clone()));
            }
        }
        for i in network::interfaces() {
            if i.addresses.is_empty() {
                continue;
            }
            lines.push(row(
                "address",
                format!(
                    "{} {}{}",
                    i.name,
                    i.addresses.join(" "),
                    if i.up { "" } else { " (down)" }
                ),
            ));
        }
        lines.push(row(
            "claim",
            match (&core.owner, &core.claim_code) {
                (Some(o), _) => format!("claimed by {o}"),
                (None, Some(code)) => format!(
                    "UNCLAIMED: open https://<address above>:{}/setup and enter the claim code {code}",
                    core.server
                        .as_ref()
                        .and_then(|s| s.https_port)
                        .unwrap_or(8443)
                ),
                (None, None) => "UNCLAIMED: start the server for a claim code, or use `coffer setup`".into(),
            },
        ));
        lines.push(row("sealing", sealing_line(&core)));
        lines.push(row(
            "store",
            match &core.store {
                Some(store) => format!(
                    "{} KiB, schema {}, {} accounts",
                    store.bytes.div_ceil(1024),
                    store.schema_version,
                    core.accounts()
                ),
                None => "none yet (the box was never started, or was reset)".into(),
            },
        ));
        lines.push(row("free space", free_space(&self.link.data_dir)));
        for (alg, fp) in &core.host_keys {
            lines.push(row("host key", format!("{alg} {fp}")));
        }
        if core.host_keys.is_empty() {
            lines.push(row("host key", "none yet (made on the first start)".into()));
        }
        lines.push(row(
            "TLS",
            match &core.certificate {
                Some(c) => format!("certificate SHA-256 {}", c.fingerprint),
                None => "no certificate yet (made on the first start)".into(),
            },
        ));
        lines.push(row("update", update_slot()));
        self.term.say(&lines.join("\n"));
    }

    // ---- Connect -----------------------------------------------------

    /// What the technician reads out to the owner: where to open the web
    /// UI, the claim code of an unclaimed box, and the fingerprints to
    /// check the first connection against.
    pub(super) fn connect_menu(&mut self) {
        loop {
            let choice = self.choose(
                "Connect",
                &[
                    ("1", "Show the setup URL", ""),
                    ("2", "Show the claim code", ""),
                    ("3", "Show the certificate fingerprint", ""),
                    ("4", "Show the SSH host key fingerprints", ""),
                    ("b", "Back", ""),
                ],
            );
            if choice == "b" {
                return;
            }
            let Some(Answer::Status(report)) = self.call(Request::Status) else {
                return;
            };
            let text = match choice {
                "1" => setup_urls(&report),
                "2" => claim_code(&report),
                "3" => match &report.certificate {
                    Some(c) => format!(
                        "HTTPS certificate, SHA-256 fingerprint (the browser shows the same):\n{}",
                        in_halves(&c.fingerprint)
                    ),
                    None => "No HTTPS certificate yet: the server makes one when it first starts."
                        .into(),
                },
                _ => {
                    if report.host_keys.is_empty() {
                        "No SSH host key yet: the server makes them when it first starts.".into()
                    } else {
                        let mut text =
                            "SSH host keys (an SSH client shows these on the first connection):"
                                .to_string();
                        for (alg, fp) in &report.host_keys {
                            text.push_str(&format!("\n  {alg} {fp}"));
                        }
                        text
                    }
                }
            };
            self.term.say(&text);
        }
    }
}

fn system_uptime() -> Option<String> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs = text.split('.').next()?.parse::<u64>().ok()?;
    Some(format!(
        "{} d {} h {} min",
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60
    ))
}

fn free_space(dir: &Path) -> String {
    let probe = if dir.exists() { dir } else { Path::new("/") };
    match nix::sys::statvfs::statvfs(probe) {
        Ok(s) => {
            let unit = s.fragment_size();
            let free = s.blocks_available().saturating_mul(unit);
            let total = s.blocks().saturating_mul(unit);
            format!("{} of {} free", size(free), size(total))
        }
        Err(e) => format!("unknown ({e})"),
    }
}

fn size(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB {
        format!("{}.{} GiB", bytes / GIB, bytes % GIB * 10 / GIB)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

/// The running slot from the kernel command line (`rauc.slot=`).
fn update_slot() -> String {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    match cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
    {
        Some(slot) => format!("slot {slot}; last update: not recorded in this release"),
        None => "no update slot (no RAUC on this system)".into(),
    }
}

/// How the data key is protected, in one line for the status screen.
fn sealing_line(report: &StatusReport) -> String {
    match &report.sealing {
        Sealing::Sealed(seal) => match seal.backend {
            crate::seal::Backend::Tpm => "TPM 2.0 seals the data key".into(),
            crate::seal::Backend::KeyFile => {
                "key file, NO TPM: secrets rest on file permissions".into()
            }
        },
        Sealing::Error(e) => format!("ERROR: {e}"),
        Sealing::NoKeyYet => "no data key yet".into(),
    }
}

/// The web UI's address on every interface that has one: the setup page of
/// an unclaimed box, else the sign-in page.
fn setup_urls(report: &StatusReport) -> String {
    let port = report.server.as_ref().and_then(|s| s.https_port);
    let path = if report.owner.is_some() { "" } else { "/setup" };
    let mut urls = Vec::new();
    for i in network::interfaces() {
        if i.name == "lo" || !i.up {
            continue;
        }
        for a in &i.addresses {
            let host = a.split('/').next().unwrap_or(a);
            let host = if host.contains(':') {
                if host.starts_with("fe80") {
                    continue; // a link-local address needs a zone no browser takes
                }
                format!("[{host}]")
            } else {
                host.to_string()
            };
            urls.push(format!("  https://{host}:{}{path}", port.unwrap_or(8443)));
        }
    }
    let mut text = if report.owner.is_some() {
        "This box is claimed; its web UI (sign in) is at:".to_string()
    } else {
        "Open the setup page from a computer on the same network:".to_string()
    };
    if urls.is_empty() {
        text.push_str("\n  (no network address yet: set one in the Network menu)");
    }
    for u in urls {
        text.push('\n');
        text.push_str(&u);
    }
    if port.is_none() {
        text.push_str("\nThe server is not running: the address works once it runs (port 8443 unless configured otherwise).");
    }
    text
}

/// The claim code of an unclaimed box, or why there is none.
fn claim_code(report: &StatusReport) -> String {
    match (&report.owner, &report.claim_code) {
        (Some(owner), _) => format!("This box is claimed by {owner}: there is no claim code."),
        (None, Some(code)) => format!(
            "Claim code: {code}\nType it on the setup page (Show the setup URL) to create the owner account."
        ),
        (None, None) => {
            "No claim code yet: start the server, or claim the box with `coffer setup`.".into()
        }
    }
}

/// A colon-separated fingerprint as lines of 16 bytes, indented, so a
/// SHA-256 one reads as two lines on an 80-column screen; a line that goes
/// on ends with its colon.
fn in_halves(fingerprint: &str) -> String {
    let bytes: Vec<&str> = fingerprint.split(':').collect();
    bytes
        .chunks(16)
        .map(|c| format!("  {}", c.join(":")))
        .collect::<Vec<_>>()
        .join(":\n")
}
