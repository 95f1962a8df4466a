//! The logs and power menus: audit events, the server's log, reboot and
//! factory reset.

use std::fmt::Write as _;
use std::process::Command as Process;

use super::term::ChangeGuard;
use super::{Console, run_command, shorten};
use crate::admin::{Answer, Request};
use crate::audit::Event;
use crate::clock::format_utc;

impl Console {
    // ---- Logs --------------------------------------------------------

    pub(super) fn logs_menu(&mut self) {
        loop {
            match self.choose(
                "Logs",
                &[
                    ("1", "Last audit events", ""),
                    ("2", "Last log lines of the server", ""),
                    ("b", "Back", ""),
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

    pub(super) fn power_menu(&mut self) {
        loop {
            match self.choose(
                "Power",
                &[
                    ("1", "Reboot", ""),
                    ("2", "Factory reset", ""),
                    ("b", "Back", ""),
                ],
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
