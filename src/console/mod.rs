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
//!
//! [`main`] is the `console` command's own entry point: it alone returns
//! `anyhow`, turning the configuration's and the system box's typed errors
//! into one line with `?`, as the command line's top level does.

mod accounts;
pub mod network;
mod power;
mod status;
pub mod term;

use std::process::Command as Process;
use std::time::Instant;

use zeroize::Zeroizing;

use crate::admin::{Answer, Caller, Link, Request};
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

/// A menu entry: the key to type, what it is, and (on the main menu) what
/// it holds.
type Item = (&'static str, &'static str, &'static str);

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
                    ("1", "Status", "version, server, addresses, claim, keys"),
                    ("2", "Network", "interfaces; DHCP or a static address"),
                    ("3", "Accounts", "locks; unlock; reset the owner's login"),
                    ("4", "Logs", "the last audit events; the server's log"),
                    ("5", "Power", "reboot; factory reset"),
                    ("6", "Connect", "setup URL, claim code, fingerprints"),
                    ("q", "Quit", ""),
                ],
            );
            match choice {
                "1" => self.status(),
                "2" => self.network_menu(),
                "3" => self.accounts_menu(),
                "4" => self.logs_menu(),
                "5" => self.power_menu(),
                "6" => self.connect_menu(),
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
        for (key, label, about) in items {
            self.term.say(&if about.is_empty() {
                format!("  {key}  {label}")
            } else {
                format!("  {key}  {label:<10} {about}")
            });
        }
        let keys: Vec<&str> = items.iter().map(|(k, _, _)| *k).collect();
        loop {
            let answer = self.ask("Choice: ").to_ascii_lowercase();
            if let Some((key, _, _)) = items.iter().find(|(k, _, _)| *k == answer) {
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

    // ---- Network -----------------------------------------------------

    fn network_menu(&mut self) {
        loop {
            match self.choose(
                "Network",
                &[
                    ("1", "Show interfaces and addresses", ""),
                    ("2", "Use DHCP on an interface", ""),
                    ("3", "Set a static address on an interface", ""),
                    ("b", "Back", ""),
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

fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        return text.to_string();
    }
    let mut s: String = text.chars().take(39).collect();
    s.push('~');
    s
}
