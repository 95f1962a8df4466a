//! What the command line prints for each answer: tables and `key: value`
//! lines for people, `--json` for scripts.

use std::path::Path;

use anyhow::{anyhow, bail};

use crate::admin::{Answer, Sealing, StatusReport};
use crate::auth::accounts::AccountView;
use crate::clock::{Timestamp, format_utc};
use crate::seal::{self, SealStatus};
use crate::store::STORE_FILE;

use super::Output;
use super::args::{
    Command, GroupCommand, KeyCommand, MfaCommand, PinCommand, PolicyCommand, TokenCommand,
    UserCommand,
};

macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out.stdout, $($arg)*);
    }};
}

macro_rules! errln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out.stderr, $($arg)*);
    }};
}

fn print_json(out: &mut Output, value: &impl serde::Serialize) -> anyhow::Result<()> {
    out.stdout.push_str(&serde_json::to_string_pretty(value)?);
    out.stdout.push('\n');
    Ok(())
}

fn unexpected(answer: &Answer) -> anyhow::Error {
    anyhow!("the server gave an answer this command does not expect: {answer:?}")
}

/// Prints `answer` to `command` into `out`. A status whose data key could
/// not be opened is printed, then fails with the reason.
pub fn answer(
    command: &Command,
    answer: Answer,
    data_dir: &Path,
    out: &mut Output,
) -> anyhow::Result<()> {
    match (command, answer) {
        (Command::Setup { .. }, Answer::Claimed { owner, sealing }) => {
            outln!(
                out,
                "claimed by {owner} (system_admin, the owner) in {}",
                data_dir.display()
            );
            outln!(out, "sealing: {sealing}");
        }
        (Command::Status { json }, Answer::Status(report)) => status(&report, *json, out)?,
        (Command::User(cmd), answer) => user(cmd, answer, out)?,
        (Command::Group(cmd), answer) => group(cmd, answer, out)?,
        (Command::Mfa(cmd), answer) => mfa(cmd, answer, out)?,
        (Command::Token(cmd), answer) => token(cmd, answer, out)?,
        (Command::Unlock { name, address }, Answer::Unlocked { cleared }) => match address {
            Some(text) => {
                let address = crate::address::parse(text).map_err(|e| anyhow!("--address: {e}"))?;
                outln!(
                    out,
                    "unlocked address {} ({cleared} lock record(s) cleared)",
                    crate::address::describe(address)
                );
            }
            None => outln!(
                out,
                "unlocked {} ({cleared} lock record(s) cleared)",
                name.as_deref().unwrap_or_default()
            ),
        },
        (Command::Policy(PolicyCommand::Show { json }), Answer::Policy(policy)) => {
            if *json {
                return print_json(out, &policy);
            }
            for (k, v) in policy.entries() {
                outln!(out, "{k} = {v}");
            }
        }
        (Command::Policy(PolicyCommand::Set { settings }), Answer::Policy(policy)) => {
            let entries = policy.entries();
            for s in settings {
                let k = s.split_once('=').map_or(s.as_str(), |(k, _)| k).trim();
                match entries.iter().find(|(key, _)| key == k) {
                    Some((_, v)) => outln!(out, "{k} = {v}"),
                    None => outln!(out, "{k}: removed"),
                }
            }
        }
        (Command::Audit { json, .. }, Answer::Audit(records)) => {
            if *json {
                return print_json(out, &records);
            }
            for r in records {
                outln!(
                    out,
                    "{}  {} {}  account={} address={} protocol={} method={}{}{}",
                    format_utc(r.at),
                    r.id,
                    r.event.slug(),
                    r.account.as_deref().unwrap_or("-"),
                    r.address.map_or_else(|| "-".to_string(), |a| a.to_string()),
                    r.protocol.as_deref().unwrap_or("-"),
                    r.method.as_deref().unwrap_or("-"),
                    if r.detail.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", r.detail)
                    },
                    match (r.repeated, r.last_at) {
                        (0, _) => String::new(),
                        (n, Some(last)) => format!("  (and {n} more until {})", format_utc(last)),
                        (n, None) => format!("  (and {n} more)"),
                    }
                );
            }
        }
        (Command::ConsolePin(PinCommand::Set { .. }), Answer::Done) => {
            outln!(out, "technician PIN set");
        }
        (Command::ConsolePin(PinCommand::Clear), Answer::Done) => {
            outln!(out, "technician PIN removed");
        }
        (_, answer) => return Err(unexpected(&answer)),
    }
    Ok(())
}

fn seal_line(seal: &SealStatus) -> String {
    match seal.backend {
        seal::Backend::Tpm => format!(
            "TPM 2.0: the data key is sealed by the TPM ({})",
            seal.detail
        ),
        seal::Backend::KeyFile => format!(
            "key file, NO TPM: the TOTP seeds are protected only by the permissions of {}",
            seal.detail
        ),
    }
}

fn status(report: &StatusReport, json: bool, out: &mut Output) -> anyhow::Result<()> {
    let Some(store) = &report.store else {
        bail!(
            "no Coffer store in {}: run `coffer setup` (or `coffer serve`) first",
            report.data_dir.display()
        );
    };
    let store_json = serde_json::json!({
        "file": store.file,
        "bytes": store.bytes,
        "schema_version": store.schema_version,
        "schema_version_supported": store.schema_version_supported,
    });
    let mut lines = vec![
        format!("coffer {}", env!("CARGO_PKG_VERSION")),
        format!("data dir:  {}", report.data_dir.display()),
        format!(
            "store:     {} ({} KiB), schema version {} (this coffer: {})",
            STORE_FILE,
            store.bytes.div_ceil(1024),
            store.schema_version,
            store.schema_version_supported
        ),
    ];
    let seal = match &report.sealing {
        Sealing::Sealed(seal) => seal,
        Sealing::Error(error) => {
            // What can be known without the data key, then the failure.
            lines.push(format!("sealing:   ERROR: {error}"));
            lines.push("server:    not running".into());
            if json {
                print_json(
                    out,
                    &serde_json::json!({
                        "version": env!("CARGO_PKG_VERSION"),
                        "data_dir": report.data_dir,
                        "store": store_json,
                        "sealing": { "error": error },
                        "server": null,
                    }),
                )?;
            } else {
                for l in lines {
                    outln!(out, "{l}");
                }
            }
            bail!("{error}");
        }
        Sealing::NoKeyYet => bail!("there is no data key yet"),
    };
    lines.push(format!("sealing:   {}", seal_line(seal)));
    lines.push(format!(
        "claimed:   {}",
        report.owner.as_ref().map_or_else(
            || "no (unclaimed box)".to_string(),
            |o| format!("yes, by {o}")
        )
    ));
    if let Some(code) = &report.claim_code {
        lines.push(format!(
            "claim:     open https://THIS-BOX{}/setup and enter the claim code {code}",
            report
                .server
                .as_ref()
                .and_then(|s| s.https_port)
                .map_or_else(String::new, |p| format!(":{p}"))
        ));
    }
    lines.push(match &report.certificate {
        Some(c) => format!("https:     certificate SHA-256 {}", c.fingerprint),
        None => "https:     no certificate yet (made when the server first starts)".into(),
    });
    let count = |k: &str| report.counts.get(k).copied().unwrap_or(0);
    lines.push(format!(
        "accounts:  {} (groups {}, TOTP enrolments {}, access tokens {})",
        count("accounts"),
        count("groups"),
        count("totp_enrolments"),
        count("access_tokens")
    ));
    for (address, until) in &report.locks.addresses {
        lines.push(format!(
            "locked:    address {address} for all accounts until {} (coffer unlock --address {address})",
            format_utc(*until)
        ));
    }
    for (name, until) in &report.locks.code_entry {
        lines.push(format!(
            "locked:    code entry of {name} (too many wrong codes) until {} (coffer unlock {name})",
            format_utc(*until)
        ));
    }
    lines.push(match &report.server {
        Some(s) => format!(
            "server:    running, pid {}, since {}; {}",
            s.pid,
            format_utc(s.started_at),
            s.listening.join(", ")
        ),
        None => "server:    not running".into(),
    });
    if json {
        return print_json(
            out,
            &serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "data_dir": report.data_dir,
                "store": store_json,
                "sealing": seal,
                "claimed_by": report.owner,
                "claim_code": report.claim_code,
                "certificate": report.certificate,
                "counts": report.counts,
                "locks": report.locks,
                "server": report.server,
            }),
        );
    }
    for l in lines {
        outln!(out, "{l}");
    }
    Ok(())
}

fn account_lines(v: &AccountView, address_locks: &[(String, Timestamp)]) -> Vec<String> {
    let a = &v.account;
    let nets = |n: &[ipnet::IpNet]| {
        if n.is_empty() {
            "-".to_string()
        } else {
            n.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let mut out = vec![
        format!("name:        {}", a.name),
        format!("role:        {}", a.role),
        format!("group:       {}", a.group.as_deref().unwrap_or("-")),
        format!(
            "status:      {}",
            if a.disabled { "disabled" } else { "enabled" }
        ),
        format!("created:     {}", format_utc(a.created_at)),
        format!(
            "last login:  {}",
            a.last_login.as_ref().map_or_else(
                || "never".to_string(),
                |l| format!(
                    "{} from {} ({}, {})",
                    format_utc(l.at),
                    l.address,
                    l.protocol,
                    l.method
                )
            )
        ),
        format!(
            "password:    {}",
            if v.has_password { "set" } else { "none" }
        ),
        format!("home:        {}", v.home_folder),
        format!(
            "permissions: {}",
            match (v.permissions.write, v.permissions.delete) {
                (false, _) => "read-only",
                (true, false) => "read, write (no delete)",
                (true, true) => "read, write, delete",
            }
        ),
        format!("ip allow:    {}", nets(&a.ip_allow)),
        format!("ip deny:     {}", nets(&a.ip_deny)),
        format!(
            "mfa:         {}{}{}{}",
            if v.mfa.enrolled {
                "TOTP enrolled"
            } else if v.mfa.pending {
                "enrolment pending"
            } else {
                "not enrolled"
            },
            if v.mfa.enrolled {
                format!(", {} recovery codes left", v.mfa.recovery_codes_left)
            } else {
                String::new()
            },
            if v.mfa.exempt { ", exempt" } else { "" },
            if v.mfa.skip {
                ", skipped permanently"
            } else {
                ""
            },
        ),
        format!("tokens:      {}", v.tokens),
    ];
    for (addr, until) in &v.locked {
        out.push(format!(
            "locked:      from {addr} until {}",
            format_utc(*until)
        ));
    }
    if let Some(until) = v.code_entry_locked_until {
        out.push(format!(
            "locked:      code entry from every address (too many wrong codes) until {}",
            format_utc(until)
        ));
    }
    for (addr, until) in address_locks {
        out.push(format!(
            "locked:      address {addr} (all accounts) until {}",
            format_utc(*until)
        ));
    }
    for k in &v.public_keys {
        out.push(format!("key:         {k}"));
    }
    out
}

fn user(cmd: &UserCommand, answer: Answer, out: &mut Output) -> anyhow::Result<()> {
    match (cmd, answer) {
        (UserCommand::Add { name, role, .. }, Answer::Done) => {
            outln!(out, "created user {name} ({role})");
        }
        (UserCommand::List { json }, Answer::Accounts(accounts)) => {
            if *json {
                return print_json(out, &accounts);
            }
            outln!(
                out,
                "{:<24} {:<13} {:<12} {:<9} {:<14} {:>4} {:>6}",
                "NAME",
                "ROLE",
                "GROUP",
                "STATUS",
                "MFA",
                "KEYS",
                "TOKENS"
            );
            for v in accounts {
                let a = &v.account;
                let status = if a.disabled {
                    "disabled"
                } else if v.locked.is_empty() && v.code_entry_locked_until.is_none() {
                    "enabled"
                } else {
                    "locked"
                };
                let mfa = if v.mfa.enrolled {
                    "enrolled"
                } else if v.mfa.exempt {
                    "exempt"
                } else {
                    "-"
                };
                outln!(
                    out,
                    "{:<24} {:<13} {:<12} {:<9} {:<14} {:>4} {:>6}",
                    a.name,
                    a.role.to_string(),
                    a.group.as_deref().unwrap_or("-"),
                    status,
                    mfa,
                    v.public_keys.len(),
                    v.tokens
                );
            }
        }
        (
            UserCommand::Show { json, .. },
            Answer::Account {
                view,
                address_locks,
            },
        ) => {
            if *json {
                let mut value = serde_json::to_value(&view)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert(
                        "address_locks".into(),
                        serde_json::to_value(&address_locks)?,
                    );
                }
                return print_json(out, &value);
            }
            for l in account_lines(&view, &address_locks) {
                outln!(out, "{l}");
            }
        }
        (UserCommand::Key(KeyCommand::List { .. }), Answer::Account { view, .. }) => {
            for k in &view.public_keys {
                outln!(out, "{k}");
            }
        }
        (UserCommand::Disable { name }, Answer::Account { .. }) => outln!(out, "disabled {name}"),
        (UserCommand::Enable { name }, Answer::Account { .. }) => outln!(out, "enabled {name}"),
        (UserCommand::Remove { name }, Answer::Done) => outln!(out, "removed {name}"),
        (UserCommand::Rename { name, new_name }, Answer::Account { view, .. }) => outln!(
            out,
            "renamed {name} to {new_name} (home folder {})",
            view.home_folder
        ),
        (UserCommand::Password { name, .. }, Answer::Done) => {
            outln!(out, "password changed for {name}");
        }
        (UserCommand::Set(_), Answer::Account { view, .. }) => {
            for l in account_lines(&view, &[]) {
                outln!(out, "{l}");
            }
        }
        (UserCommand::Key(KeyCommand::Add { name, .. }), Answer::Key(k)) => {
            outln!(out, "added key {} to {name}", k.fingerprint);
        }
        (UserCommand::Key(KeyCommand::Remove { name, .. }), Answer::Key(k)) => {
            outln!(out, "removed key {} from {name}", k.fingerprint);
        }
        (_, answer) => return Err(unexpected(&answer)),
    }
    Ok(())
}

fn group(cmd: &GroupCommand, answer: Answer, out: &mut Output) -> anyhow::Result<()> {
    match (cmd, answer) {
        (GroupCommand::Add { name, .. }, Answer::Group(_)) => {
            outln!(out, "created group {name}");
        }
        (GroupCommand::Set { name, .. }, Answer::Group(_)) => {
            outln!(out, "changed group {name}");
        }
        (GroupCommand::List { json }, Answer::Groups(groups)) => {
            if *json {
                return print_json(out, &groups);
            }
            outln!(
                out,
                "{:<20} {:<8} {:<24} {:<9}",
                "NAME",
                "ENABLED",
                "HOME TEMPLATE",
                "FILES"
            );
            for x in groups {
                let files = if x.read_only {
                    "read-only"
                } else if x.no_delete {
                    "no-delete"
                } else {
                    "full"
                };
                outln!(
                    out,
                    "{:<20} {:<8} {:<24} {:<9}",
                    x.name,
                    x.enabled,
                    x.home_template,
                    files
                );
            }
        }
        (GroupCommand::Remove { name }, Answer::Done) => outln!(out, "removed group {name}"),
        (_, answer) => return Err(unexpected(&answer)),
    }
    Ok(())
}

fn mfa(cmd: &MfaCommand, answer: Answer, out: &mut Output) -> anyhow::Result<()> {
    match (cmd, answer) {
        (MfaCommand::Enroll { name, .. }, Answer::TotpStarted { secret, uri }) => {
            outln!(
                out,
                "Add {name} to an authenticator app with this URI (or type the secret):"
            );
            outln!(out, "secret: {}", secret.as_str());
            outln!(out, "uri:    {}", uri.as_str());
            outln!(out, "Then confirm with: coffer mfa confirm {name} CODE");
        }
        (MfaCommand::Confirm { name, .. }, Answer::RecoveryCodes(codes)) => {
            outln!(
                out,
                "TOTP confirmed for {name}. Recovery codes (each works once; they are not shown again):"
            );
            for c in &codes {
                outln!(out, "{}", c.as_str());
            }
        }
        (MfaCommand::Reset { name }, Answer::Done) => {
            outln!(out, "two-factor authentication removed from {name}");
        }
        (MfaCommand::RecoveryCodes { name }, Answer::RecoveryCodes(codes)) => {
            outln!(
                out,
                "New recovery codes for {name} (the old ones no longer work):"
            );
            for c in &codes {
                outln!(out, "{}", c.as_str());
            }
        }
        (_, answer) => return Err(unexpected(&answer)),
    }
    Ok(())
}

fn token(cmd: &TokenCommand, answer: Answer, out: &mut Output) -> anyhow::Result<()> {
    match (cmd, answer) {
        (TokenCommand::Add { name, .. }, Answer::TokenCreated { value, info }) => {
            outln!(out, "{}", value.as_str());
            errln!(
                out,
                "token {} for {name} ({}); this value is shown only once",
                info.id,
                info.expires_at.map_or_else(
                    || "no expiry".to_string(),
                    |e| format!("expires {}", format_utc(e))
                )
            );
        }
        (TokenCommand::List { json, .. }, Answer::Tokens(tokens)) => {
            if *json {
                return print_json(out, &tokens);
            }
            outln!(
                out,
                "{:<12} {:<16} {:<24} {:<20} {:<20} {:<10}",
                "ID",
                "ACCOUNT",
                "LABEL",
                "EXPIRES",
                "LAST USED",
                "SCOPE"
            );
            for t in tokens {
                outln!(
                    out,
                    "{:<12} {:<16} {:<24} {:<20} {:<20} {:<10}",
                    t.id,
                    t.account,
                    t.label,
                    t.expires_at.map_or_else(|| "never".into(), format_utc)
                        + if t.expired { " (expired)" } else { "" },
                    t.last_used.map_or_else(|| "never".into(), format_utc),
                    if t.scope.is_empty() {
                        "all".to_string()
                    } else {
                        t.scope
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    }
                );
            }
        }
        (TokenCommand::Revoke { .. }, Answer::TokenRevoked(t)) => {
            outln!(out, "revoked token {} ({}) of {}", t.id, t.label, t.account);
        }
        (_, answer) => return Err(unexpected(&answer)),
    }
    Ok(())
}
