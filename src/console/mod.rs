//! `coffer console`: the field technician's console on a serial line.
//!
//! A plain, line-oriented menu for the person standing at the box when the
//! network or the owner's credentials are gone: status, network settings,
//! account rescue, logs and power. It is a front end like SSH or the command
//! line: every decision (who may be reset, what a reset does, the PIN and
//! its lockout) is the core's ([`crate::auth::console`]); the console only
//! asks, checks the shape of the answers, and shows the results.
//!
//! It works with the server running (operations go over the control socket,
//! see [`crate::admin::Link`]) and without it (the store is opened for each operation
//! and closed again, so a server that systemd restarts meanwhile is not
//! locked out). Network settings, reboots and the log viewer act on the
//! machine directly: the console runs as root from the serial getty, the
//! server does not.
//!
//! Every prompt re-asks after bad input with a one-line reason; an empty
//! answer goes back (or cancels a dialog); nothing is changed before the
//! last answer of a dialog, and a change, once begun, is finished before a
//! Ctrl-C or a hang-up ends the console ([`term`]). When a technician PIN is
//! set (`coffer console-pin set`), it is asked once per console session
//! before the first change.

pub mod network;
pub mod term;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command as Process;
use std::time::Instant;

use zeroize::Zeroizing;

use crate::admin::{AdminError, Answer, Caller, Link, Request, Sealing, StatusReport};
use crate::audit::Event;
use crate::auth::console::PinCheck;
use crate::clock::format_utc;
use crate::config::console::ConsoleSettings;
use crate::config::{FileConfig, Overrides};
use term::{ChangeGuard, Input, Term};

/// A monotonic instant (the console's idle timer; not a rule of the core).
#[allow(clippy::disallowed_methods)] // a front end's timer, not core policy
pub(crate) fn monotonic() -> Instant {
    Instant::now()
}

/// `coffer console`: reads the configuration and runs the console until
/// the technician leaves.
pub fn main(flags: Overrides) -> anyhow::Result<()> {
    term::take_signals();
    // The terminal is the technician's: log lines go to the journal, if any.
    if std::path::Path::new(crate::system::logging::JOURNAL_SOCKET).exists() {
        let _ = crate::system::logging::init("info", crate::system::logging::Target::Journald);
    }
    let file = match &flags.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let config = file.resolve(&flags, crate::config::default_data_dir())?;
    let link = Link {
        data_dir: config.data_dir.clone(),
        files_root: config.files_root.clone(),
        seal: config.seal.clone(),
        caller: Caller::Console,
    };
    if !link.server_running() {
        crate::system::factory::finish_pending(&config.data_dir, &config.files_root)?;
    }
    let mut console = Console {
        term: Term::new(config.console.idle_timeout),
        link,
        settings: config.console,
        pin_ok: false,
    };
    console.run();
    Ok(())
}

/// The console's state for one session.
struct Console {
    term: Term,
    link: Link,
    settings: ConsoleSettings,
    /// The PIN was given (or none is set) in this session.
    pin_ok: bool,
}

/// A menu entry: the key to type and what it does.
type Item = (&'static str, &'static str);

impl Console {
    fn run(&mut self) {
        self.term.say(&format!(
            "Coffer technician console (coffer {})",
            env!("CARGO_PKG_VERSION")
        ));
        self.term.say(if self.link.server_running() {
            "The server is running: changes go through it."
        } else {
            "The server is not running: changes go to the store directly."
        });
        self.term
            .say("Type the key of a menu entry and Enter. q or Ctrl-D leaves.");
        loop {
            let choice = self.choose(
                "Main menu",
                &[
                    ("1", "Status"),
                    ("2", "Network"),
                    ("3", "Accounts"),
                    ("4", "Logs"),
                    ("5", "Power"),
                    ("q", "Quit"),
                ],
            );
            match choice {
                "1" => self.status(),
                "2" => self.network_menu(),
                "3" => self.accounts_menu(),
                "4" => self.logs_menu(),
                "5" => self.power_menu(),
                _ => term::leave("Goodbye."),
            }
        }
    }

    /// Asks for a line; leaves the console on end of input or idleness.
    fn ask(&mut self, prompt: &str) -> String {
        loop {
            match self.term.ask(prompt) {
                Input::Line(l) if l == "\u{1}too-long" => {
                    self.term.say("That line is too long; try again.");
                }
                Input::Line(l) => return l,
                Input::End => term::leave("Leaving the console."),
                Input::Idle => self.idle(),
            }
        }
    }

    fn ask_secret(&mut self, prompt: &str) -> Zeroizing<String> {
        loop {
            match self.term.ask_secret(prompt) {
                Input::Line(l) if l == "\u{1}too-long" => {
                    self.term.say("That line is too long; try again.");
                }
                Input::Line(l) => return Zeroizing::new(l),
                Input::End => term::leave("Leaving the console."),
                Input::Idle => self.idle(),
            }
        }
    }

    fn idle(&mut self) -> ! {
        term::leave(&format!(
            "No input for {} minutes: leaving the console.",
            self.settings.idle_timeout.as_secs().div_ceil(60)
        ))
    }

    /// Shows a menu and returns the key chosen.
    fn choose(&mut self, title: &str, items: &[Item]) -> &'static str {
        self.term.say("");
        self.term.say(title);
        for (key, label) in items {
            self.term.say(&format!("  {key}  {label}"));
        }
        let keys: Vec<&str> = items.iter().map(|(k, _)| *k).collect();
        loop {
            let answer = self.ask("Choice: ").to_ascii_lowercase();
            if let Some((key, _)) = items.iter().find(|(k, _)| *k == answer) {
                return key;
            }
            if answer.is_empty() {
                self.term
                    .say(&format!("Type one of {} and Enter.", keys.join(", ")));
            } else {
                self.term.say(&format!(
                    "{:?} is not on this menu: type one of {}.",
                    shorten(&answer),
                    keys.join(", ")
                ));
            }
        }
    }

    /// Asks yes or no; an empty answer is no.
    fn confirm(&mut self, prompt: &str) -> bool {
        loop {
            match self.ask(prompt).to_ascii_lowercase().as_str() {
                "y" | "yes" => return true,
                "n" | "no" | "" => return false,
                other => self.term.say(&format!(
                    "{:?}: type y for yes or n for no.",
                    shorten(other)
                )),
            }
        }
    }

    /// Asks until `parse` accepts the answer; `None` when the answer is
    /// empty (the technician goes back).
    fn ask_valid<T>(
        &mut self,
        prompt: &str,
        mut parse: impl FnMut(&str) -> Result<T, String>,
    ) -> Option<T> {
        loop {
            let answer = self.ask(prompt);
            if answer.is_empty() {
                return None;
            }
            match parse(&answer) {
                Ok(v) => return Some(v),
                Err(why) => self.term.say(&format!("{why}; try again (Enter: back).")),
            }
        }
    }

    /// Calls the core, showing an error line when it fails.
    fn call(&mut self, request: Request) -> Option<Answer> {
        match self.link.call(request) {
            Ok(a) => Some(a),
            Err(e) => {
                self.term.say(&format!("Failed: {e}"));
                None
            }
        }
    }

    /// Asks for the technician PIN once per session, when one is set.
    fn authorize(&mut self) -> bool {
        if self.pin_ok {
            return true;
        }
        match self.link.call(Request::PinIsSet) {
            Ok(Answer::PinIsSet(false)) => {
                self.pin_ok = true;
                return true;
            }
            Ok(Answer::PinIsSet(true)) => {}
            Ok(_) => return false,
            Err(e) => {
                self.term
                    .say(&format!("Cannot check the technician PIN: {e}"));
                return false;
            }
        }
        loop {
            let pin = self.ask_secret("Technician PIN (Enter: back): ");
            if pin.is_empty() {
                return false;
            }
            match self.call(Request::CheckPin { pin }) {
                Some(Answer::Pin(PinCheck::Accepted | PinCheck::NotSet)) => {
                    self.pin_ok = true;
                    return true;
                }
                Some(Answer::Pin(PinCheck::Wrong { left })) => self.term.say(&format!(
                    "Wrong PIN; {left} more tr{} before PIN checks pause.",
                    if left == 1 { "y" } else { "ies" }
                )),
                Some(Answer::Pin(PinCheck::PausedUntil(t))) => {
                    self.term.say(&format!(
                        "Too many wrong PINs: try again after {}.",
                        format_utc(t)
                    ));
                    return false;
                }
                _ => return false,
            }
        }
    }

    // ---- Status ------------------------------------------------------

    fn status(&mut self) {
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

    // ---- Network -----------------------------------------------------

    fn network_menu(&mut self) {
        loop {
            match self.choose(
                "Network",
                &[
                    ("1", "Show interfaces and addresses"),
                    ("2", "Use DHCP on an interface"),
                    ("3", "Set a static address on an interface"),
                    ("b", "Back"),
                ],
            ) {
                "1" => self.show_interfaces(),
                "2" => self.set_network(false),
                "3" => self.set_network(true),
                _ => return,
            }
        }
    }

    fn show_interfaces(&mut self) {
        let mut lines = vec![String::new(), "Interfaces".to_string()];
        for i in network::interfaces() {
            lines.push(format!(
                "  {:<12} {:<5} {}",
                i.name,
                if i.up { "up" } else { "down" },
                if i.addresses.is_empty() {
                    "-".to_string()
                } else {
                    i.addresses.join(" ")
                }
            ));
        }
        lines.push(format!(
            "  settings in {}",
            self.settings.network_dir.display()
        ));
        self.term.say(&lines.join("\n"));
    }

    fn set_network(&mut self, fixed: bool) {
        if !self.authorize() {
            return;
        }
        let present: Vec<String> = network::interfaces()
            .into_iter()
            .map(|i| i.name)
            .filter(|n| n != "lo")
            .collect();
        self.term
            .say(&format!("Interfaces here: {}", present.join(", ")));
        let Some(interface) = self.ask_valid("Interface (Enter: back): ", |t| {
            network::check_interface(t)?;
            if t == "lo" {
                return Err("lo is the loopback interface; choose another".into());
            }
            Ok(t.to_string())
        }) else {
            return;
        };
        if !present.contains(&interface) {
            self.term.say(&format!(
                "Note: {interface} is not present now; the setting applies when it is."
            ));
        }
        let setting = if fixed {
            let Some(address) = self.ask_valid(
                "Address with prefix, e.g. 192.168.1.20/24 (Enter: back): ",
                network::parse_address,
            ) else {
                return;
            };
            let gateway = loop {
                let t = self.ask("Gateway (Enter: none): ");
                if t.is_empty() {
                    break None;
                }
                match network::parse_gateway(&t, &address) {
                    Ok(g) => break Some(g),
                    Err(why) => self.term.say(&format!("{why}; try again.")),
                }
            };
            let dns = loop {
                let t = self.ask("DNS servers, separated by spaces (Enter: none): ");
                match network::parse_dns(&t) {
                    Ok(d) => break d,
                    Err(why) => self.term.say(&format!("{why}; try again.")),
                }
            };
            network::Setting::Static {
                address,
                gateway,
                dns,
            }
        } else {
            network::Setting::Dhcp
        };
        let path = network::file_for(&self.settings.network_dir, &interface);
        self.term.say(&format!("\n{} will read:", path.display()));
        self.term
            .say(network::render(&interface, &setting).trim_end());
        if !self.confirm("Write it and reload the network? [y/n]: ") {
            self.term.say("Nothing was changed.");
            return;
        }
        let _change = ChangeGuard::begin();
        match network::write(&self.settings.network_dir, &interface, &setting) {
            Ok(p) => self.term.say(&format!("Wrote {}.", p.display())),
            Err(e) => {
                self.term.say(&format!("Failed: {e:#}"));
                return;
            }
        }
        let reload = self.settings.network_reload_command.clone();
        self.term
            .say(&run_command(&reload, &[], "reload the network"));
        let summary = network::summary(&interface, &setting);
        self.call(Request::Record {
            event: Event::NetworkChanged,
            detail: summary,
        });
    }

    // ---- Accounts ----------------------------------------------------

    fn accounts_menu(&mut self) {
        loop {
            match self.choose(
                "Accounts",
                &[
                    ("1", "List locked accounts"),
                    ("2", "Unlock an account"),
                    ("3", "Reset the owner's password and two-factor login"),
                    ("4", "Unlock an address (for every account)"),
                    ("b", "Back"),
                ],
            ) {
                "1" => self.list_locked(),
                "2" => self.unlock(),
                "3" => self.reset_owner(),
                "4" => self.unlock_address(),
                _ => return,
            }
        }
    }

    fn list_locked(&mut self) {
        let Some(Answer::Locks(locked)) = self.call(Request::Locks) else {
            return;
        };
        if locked.is_empty() {
            self.term.say("No account is locked.");
            return;
        }
        self.term.say(&format!(
            "  {:<24} {:<28} {}",
            "ACCOUNT", "FROM ADDRESS", "UNTIL"
        ));
        for (name, address, until) in locked {
            self.term.say(&format!(
                "  {:<24} {:<28} {}",
                shorten(&name),
                address,
                format_utc(until)
            ));
        }
    }

    fn unlock(&mut self) {
        if !self.authorize() {
            return;
        }
        loop {
            let name = self.ask("Account to unlock (Enter: back): ");
            if name.is_empty() {
                return;
            }
            let _change = ChangeGuard::begin();
            match self.link.call(Request::Unlock { name: name.clone() }) {
                Ok(Answer::Unlocked { cleared }) => {
                    self.term.say(&format!(
                        "Unlocked {} ({cleared} lock record(s) cleared).",
                        shorten(&name)
                    ));
                    return;
                }
                Ok(_) => return,
                Err(e) => self.term.say(&format!("{e}; try again (Enter: back).")),
            }
        }
    }

    fn unlock_address(&mut self) {
        if !self.authorize() {
            return;
        }
        loop {
            let address = self.ask("Address to unlock (Enter: back): ");
            if address.is_empty() {
                return;
            }
            let parsed = match crate::address::parse(&address) {
                Ok(a) => a,
                Err(e) => {
                    self.term.say(&format!("{e}; try again (Enter: back)."));
                    continue;
                }
            };
            let _change = ChangeGuard::begin();
            match self.link.call(Request::UnlockAddress { address: parsed }) {
                Ok(Answer::Unlocked { cleared }) => {
                    self.term.say(&format!(
                        "Unlocked {} ({cleared} lock record(s) cleared).",
                        shorten(&address)
                    ));
                    return;
                }
                Ok(_) => return,
                Err(e) => self.term.say(&format!("{e}; try again (Enter: back).")),
            }
        }
    }

    fn reset_owner(&mut self) {
        let owner = match self.call(Request::Status) {
            Some(Answer::Status(s)) => s.owner,
            _ => return,
        };
        let Some(owner) = owner else {
            self.term
                .say("This box has no owner yet: there is nothing to reset.");
            return;
        };
        if !self.authorize() {
            return;
        }
        self.term.say(&format!(
            "\nThis gives {} (the owner) a new password, removes their two-factor\n\
             enrolment and recovery codes, clears their lockouts and enables the\n\
             account. It is recorded in the audit log.",
            shorten(&owner)
        ));
        let Some(code) = presence_code() else {
            self.term
                .say("No randomness is available for the code: nothing was changed.");
            return;
        };
        self.term.say(&format!(
            "To show you are at the box, type this code: {} {}",
            code.get(..4).unwrap_or_default(),
            code.get(4..).unwrap_or_default()
        ));
        let mut wrong = 0;
        loop {
            let typed = self.ask("Code (Enter: cancel): ");
            if typed.is_empty() {
                self.term.say("Cancelled: nothing was changed.");
                return;
            }
            let digits: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
            if crate::auth::ct_eq(&digits, &code) {
                break;
            }
            wrong += 1;
            if wrong >= 3 {
                self.term
                    .say("Three wrong codes: cancelled, nothing was changed.");
                return;
            }
            self.term
                .say("That is not the code shown on the screen; type it again.");
        }
        loop {
            let first = self.ask_secret(&format!("New password for {}: ", shorten(&owner)));
            if first.is_empty() {
                self.term.say("Cancelled: nothing was changed.");
                return;
            }
            let second = self.ask_secret("Type it again: ");
            if !crate::auth::ct_eq(&first, &second) {
                self.term
                    .say("The two passwords differ; type the new password again.");
                continue;
            }
            let _change = ChangeGuard::begin();
            match self.link.call(Request::ResetOwner { password: first }) {
                Ok(Answer::OwnerReset { owner }) => {
                    self.term.say(&format!(
                        "Done: {} has a new password and no two-factor enrolment;\n\
                         they should enrol again after logging in.",
                        shorten(&owner)
                    ));
                    return;
                }
                Ok(_) => return,
                Err(e @ AdminError::PasswordRefused(_)) => {
                    self.term.say(&format!("{e}; choose another."));
                }
                Err(e) => {
                    self.term.say(&format!("Failed: {e}"));
                    return;
                }
            }
        }
    }

    // ---- Logs --------------------------------------------------------

    fn logs_menu(&mut self) {
        loop {
            match self.choose(
                "Logs",
                &[
                    ("1", "Last audit events"),
                    ("2", "Last log lines of the server"),
                    ("b", "Back"),
                ],
            ) {
                "1" => self.audit_tail(),
                "2" => self.log_tail(),
                _ => return,
            }
        }
    }

    fn how_many(&mut self) -> Option<usize> {
        loop {
            let t = self.ask("How many (1-500, Enter: 20): ");
            if t.is_empty() {
                return Some(20);
            }
            match t.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => return Some(n),
                _ => self
                    .term
                    .say(&format!("{:?}: type a number from 1 to 500.", shorten(&t))),
            }
        }
    }

    fn audit_tail(&mut self) {
        let Some(n) = self.how_many() else { return };
        let Some(Answer::Audit(records)) = self.call(Request::Audit {
            account: None,
            events: Vec::new(),
            since: None,
            limit: n.clamp(1, 500),
        }) else {
            return;
        };
        if records.is_empty() {
            self.term.say("No audit events yet.");
        }
        for r in records.iter().rev() {
            let when = format_utc(r.at).replace('T', " ").replace('Z', "");
            self.term.say(&format!(
                "{when} {} {} {} {} {}{}",
                r.id,
                r.event.slug(),
                r.account.as_deref().unwrap_or("-"),
                r.address.map_or_else(|| "-".into(), |a| a.to_string()),
                r.protocol.as_deref().unwrap_or("-"),
                if r.repeated > 0 {
                    format!(" (x{})", r.repeated + 1)
                } else {
                    String::new()
                },
            ));
        }
    }

    fn log_tail(&mut self) {
        let Some(n) = self.how_many() else { return };
        let command = self.settings.log_command.clone();
        let Some((program, args)) = command.split_first() else {
            self.term.say("No log command is configured.");
            return;
        };
        match Process::new(program).args(args).arg(n.to_string()).output() {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(n);
                for l in lines.get(start..).unwrap_or_default() {
                    self.term.say(l);
                }
                if lines.is_empty() {
                    self.term.say("No log lines.");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.term.say(&format!(
                "The journal is not available here ({program} not found)."
            )),
            Err(e) => self.term.say(&format!("Cannot run {program}: {e}")),
        }
    }

    // ---- Power -------------------------------------------------------

    fn power_menu(&mut self) {
        loop {
            match self.choose(
                "Power",
                &[("1", "Reboot"), ("2", "Factory reset"), ("b", "Back")],
            ) {
                "1" => self.reboot(),
                "2" => self.factory_reset(),
                _ => return,
            }
        }
    }

    fn reboot(&mut self) {
        if !self.authorize() {
            return;
        }
        if !self.confirm("Reboot the box now? [y/n]: ") {
            self.term.say("Not rebooting.");
            return;
        }
        let _change = ChangeGuard::begin();
        self.call(Request::Record {
            event: Event::ConsoleReboot,
            detail: "reboot from the console".into(),
        });
        let command = self.settings.reboot_command.clone();
        self.term.say(&run_command(&command, &[], "reboot"));
    }

    fn factory_reset(&mut self) {
        if !self.authorize() {
            return;
        }
        self.term.say(
            "\nA factory reset wipes the store (accounts, passwords, two-factor\n\
             enrolments, tokens, policy, audit log), the data key, the SSH host keys\n\
             and TLS material. The box is then unclaimed. The users' files are kept\n\
             unless you ask for them to go too. This cannot be undone.",
        );
        loop {
            let t = self.ask("Type RESET to go on (Enter: cancel): ");
            if t.is_empty() {
                self.term.say("Cancelled: nothing was changed.");
                return;
            }
            if t == "RESET" {
                break;
            }
            self.term.say("Type RESET in capitals to go on.");
        }
        let mut user_files = false;
        if self.confirm("Delete the users' files too? [y/n]: ") {
            loop {
                let t = self.ask("Type DELETE FILES to confirm (Enter: keep them): ");
                if t.is_empty() {
                    self.term.say("The users' files are kept.");
                    break;
                }
                if t == "DELETE FILES" {
                    user_files = true;
                    break;
                }
                self.term
                    .say("Type DELETE FILES in capitals, or Enter to keep the files.");
            }
        }
        let _change = ChangeGuard::begin();
        let Some(Answer::FactoryReset {
            wiped,
            server_stops,
        }) = self.call(Request::FactoryReset { user_files })
        else {
            return;
        };
        self.pin_ok = false;
        let mut text = format!(
            "Factory reset done: removed {}.",
            if wiped.state.is_empty() {
                "nothing (the data dir was empty)".to_string()
            } else {
                wiped.state.join(", ")
            }
        );
        let _ = write!(
            text,
            "\nThe users' files were {}.",
            if wiped.user_files { "deleted" } else { "kept" }
        );
        if server_stops {
            text.push_str(
                "\nThe server stops now; its service manager starts it again, unclaimed.",
            );
        } else {
            text.push_str("\nThe box is unclaimed; the next server start sets it up anew.");
        }
        self.term.say(&text);
    }
}

/// Runs a configured command; returns a line saying how it went.
fn run_command(command: &[String], extra: &[&str], what: &str) -> String {
    let Some((program, args)) = command.split_first() else {
        return format!("No command is configured to {what}.");
    };
    match Process::new(program).args(args).args(extra).output() {
        Ok(out) if out.status.success() => format!("Done: {}.", command.join(" ")),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            format!(
                "{} failed ({}): {}",
                command.join(" "),
                out.status,
                err.lines().next().unwrap_or("")
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{program} is not available here, so the console cannot {what}.")
        }
        Err(e) => format!("Cannot run {program}: {e}"),
    }
}

/// Eight random digits shown on screen for physical presence.
fn presence_code() -> Option<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| char::from(b'0' + x % 10)).collect())
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        return text.to_string();
    }
    let mut s: String = text.chars().take(39).collect();
    s.push('~');
    s
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
