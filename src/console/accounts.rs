//! The accounts menu: locks, unlocking, and the owner's rescue.

use super::term::ChangeGuard;
use super::{Console, shorten};
use crate::admin::{AdminError, Answer, Request};
use crate::clock::format_utc;

impl Console {
    // ---- Accounts ----------------------------------------------------

    pub(super) fn accounts_menu(&mut self) {
        loop {
            match self.choose(
                "Accounts",
                &[
                    ("1", "List locked accounts", ""),
                    ("2", "Unlock an account", ""),
                    ("3", "Reset the owner's password and two-factor login", ""),
                    ("4", "Unlock an address (for every account)", ""),
                    ("b", "Back", ""),
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
}

/// Eight random digits shown on screen for physical presence.
fn presence_code() -> Option<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| char::from(b'0' + x % 10)).collect())
}
