//! From a parsed command to an administrative request: the command line's
//! own checks of shape (booleans, networks, dates, protocols), with errors
//! that name the option.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail};

use crate::admin::{Expiry, Request};
use crate::audit::Event;
use crate::auth::accounts::{AccountChange, parse_nets};
use crate::auth::password::HashCost;
use crate::auth::{GroupChange, Protocol, Role};
use crate::clock::parse_utc;

use super::args::{
    Command, GroupCommand, GroupSettings, KeyCommand, MfaCommand, PinCommand, PolicyCommand,
    TokenCommand, UserCommand, UserSet,
};

/// The request a command makes. `None`: the command is not an
/// administrative request (`serve`, `console`, the file servers).
pub fn of(command: &Command) -> anyhow::Result<Option<Request>> {
    Ok(Some(match command {
        Command::Serve { .. }
        | Command::Console { .. }
        | Command::SftpServer(_)
        | Command::ScpServer(_) => return Ok(None),
        Command::Setup {
            admin,
            password_file,
            hash_cost,
        } => {
            if let Some(c) = hash_cost {
                c.parse::<HashCost>()
                    .map_err(|e| anyhow!("--hash-cost: {e}"))?;
            }
            Request::Claim {
                admin: admin.clone(),
                password: password_file.secret()?,
                hash_cost: hash_cost.clone(),
            }
        }
        Command::Status { .. } => Request::Status,
        Command::User(cmd) => user(cmd)?,
        Command::Group(cmd) => group(cmd)?,
        Command::Mfa(cmd) => match cmd {
            MfaCommand::Enroll { name, config } => Request::StartTotp {
                name: name.clone(),
                config: config.clone(),
            },
            MfaCommand::Confirm { name, code } => Request::ConfirmTotp {
                name: name.clone(),
                code: code.clone(),
            },
            MfaCommand::Reset { name } => Request::ResetMfa { name: name.clone() },
            MfaCommand::RecoveryCodes { name } => Request::NewRecoveryCodes { name: name.clone() },
        },
        Command::Token(cmd) => match cmd {
            TokenCommand::Add {
                name,
                label,
                expires,
                scope,
            } => Request::CreateToken {
                name: name.clone(),
                label: label.clone(),
                expires: expires.as_deref().map(parse_expiry).transpose()?,
                scope: scope
                    .as_deref()
                    .map(parse_scope)
                    .transpose()?
                    .unwrap_or_default(),
            },
            TokenCommand::List { name, .. } => Request::ListTokens { name: name.clone() },
            TokenCommand::Revoke { id } => Request::RevokeToken { id: id.clone() },
        },
        Command::Unlock { name, address } => match (name, address) {
            (_, Some(text)) => Request::UnlockAddress {
                address: crate::address::parse(text).map_err(|e| anyhow!("--address: {e}"))?,
            },
            (Some(name), None) => Request::Unlock { name: name.clone() },
            (None, None) => bail!("name an account or --address ADDR"),
        },
        Command::Policy(PolicyCommand::Show { .. }) => Request::ShowPolicy,
        Command::Policy(PolicyCommand::Set { settings }) => Request::SetPolicy {
            changes: settings
                .iter()
                .map(|s| {
                    s.split_once('=')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .ok_or_else(|| anyhow!("{s:?}: expected KEY=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        },
        Command::Audit {
            limit,
            user,
            event,
            since,
            ..
        } => Request::Audit {
            account: user.clone(),
            events: event
                .iter()
                .map(|e| {
                    Event::parse(e).ok_or_else(|| {
                        anyhow!("--event: {e:?} is not an event id or name (docs/security-model.md lists them)")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            since: since
                .as_deref()
                .map(|s| {
                    parse_utc(s).ok_or_else(|| anyhow!("--since: {s:?} is not a date (YYYY-MM-DD)"))
                })
                .transpose()?,
            limit: *limit,
        },
        Command::ConsolePin(PinCommand::Set { pin_file }) => Request::SetPin {
            pin: pin_file.secret()?,
        },
        Command::ConsolePin(PinCommand::Clear) => Request::ClearPin,
    }))
}

fn user(cmd: &UserCommand) -> anyhow::Result<Request> {
    Ok(match cmd {
        UserCommand::Add {
            name,
            role,
            group,
            password_file,
            home,
            keys,
        } => Request::CreateAccount {
            name: name.clone(),
            role: role.parse().map_err(|e| anyhow!("--role: {e}"))?,
            group: group.clone(),
            password: password_file.as_ref().map(|p| p.secret()).transpose()?,
            home: home.clone(),
            keys: keys.clone(),
        },
        UserCommand::List { .. } => Request::ListAccounts,
        UserCommand::Show { name, .. } | UserCommand::Key(KeyCommand::List { name }) => {
            Request::ShowAccount { name: name.clone() }
        }
        UserCommand::Disable { name } | UserCommand::Enable { name } => Request::ChangeAccount {
            name: name.clone(),
            change: AccountChange {
                disabled: Some(matches!(cmd, UserCommand::Disable { .. })),
                ..Default::default()
            },
        },
        UserCommand::Remove { name } => Request::RemoveAccount { name: name.clone() },
        UserCommand::Rename { name, new_name } => Request::RenameAccount {
            name: name.clone(),
            new_name: new_name.clone(),
        },
        UserCommand::Password {
            name,
            password_file,
        } => Request::SetPassword {
            name: name.clone(),
            password: password_file.secret()?,
        },
        UserCommand::Set(s) => {
            let change = account_change(s)?;
            if change.is_empty() {
                bail!("nothing to change: give at least one option (see coffer user set --help)");
            }
            Request::ChangeAccount {
                name: s.name.clone(),
                change,
            }
        }
        UserCommand::Key(KeyCommand::Add { name, key }) => Request::AddKey {
            name: name.clone(),
            key: key.clone(),
        },
        UserCommand::Key(KeyCommand::Remove { name, key }) => Request::RemoveKey {
            name: name.clone(),
            key: key.clone(),
        },
    })
}

fn account_change(s: &UserSet) -> anyhow::Result<AccountChange> {
    Ok(AccountChange {
        role: s
            .role
            .as_deref()
            .map(|r| r.parse::<Role>().map_err(|e| anyhow!("--role: {e}")))
            .transpose()?,
        group: s.group.clone().map(|g| (g != "none").then_some(g)),
        home: s.home.clone().map(|h| (h != "default").then_some(h)),
        ip_allow: nets("ip-allow", &s.ip_allow)?,
        ip_deny: nets("ip-deny", &s.ip_deny)?,
        read_only: opt_bool("read-only", &s.read_only)?,
        no_delete: opt_bool("no-delete", &s.no_delete)?,
        may_change_password: match s.may_change_password.as_deref() {
            None => None,
            Some("group") => Some(None),
            Some(v) => Some(Some(parse_bool("may-change-password", v)?)),
        },
        mfa_exempt: opt_bool("mfa-exempt", &s.mfa_exempt)?,
        mfa_skip: opt_bool("mfa-skip", &s.mfa_skip)?,
        disabled: None,
    })
}

fn group(cmd: &GroupCommand) -> anyhow::Result<Request> {
    Ok(match cmd {
        GroupCommand::Add { name, settings } => Request::CreateGroup {
            name: name.clone(),
            settings: group_change(settings)?,
        },
        GroupCommand::Set { name, settings } => {
            let change = group_change(settings)?;
            if change.is_empty() {
                bail!("nothing to change: give at least one option (see coffer group set --help)");
            }
            Request::ChangeGroup {
                name: name.clone(),
                change,
            }
        }
        GroupCommand::List { .. } => Request::ListGroups,
        GroupCommand::Remove { name } => Request::RemoveGroup { name: name.clone() },
    })
}

fn group_change(s: &GroupSettings) -> anyhow::Result<GroupChange> {
    Ok(GroupChange {
        enabled: opt_bool("enabled", &s.enabled)?,
        home_template: s.home_template.clone(),
        may_change_password: opt_bool("may-change-password", &s.may_change_password)?,
        ip_allow: nets("ip-allow", &s.ip_allow)?,
        ip_deny: nets("ip-deny", &s.ip_deny)?,
        read_only: opt_bool("read-only", &s.read_only)?,
        no_delete: opt_bool("no-delete", &s.no_delete)?,
    })
}

fn nets(flag: &str, v: &Option<String>) -> anyhow::Result<Option<Vec<ipnet::IpNet>>> {
    v.as_deref()
        .map(parse_nets)
        .transpose()
        .map_err(|e| anyhow!("--{flag}: {e}"))
}

fn parse_bool(flag: &str, v: &str) -> anyhow::Result<bool> {
    match v {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => bail!("--{flag}: {v:?} is not true or false"),
    }
}

fn opt_bool(flag: &str, v: &Option<String>) -> anyhow::Result<Option<bool>> {
    v.as_deref().map(|v| parse_bool(flag, v)).transpose()
}

fn parse_scope(text: &str) -> anyhow::Result<BTreeSet<Protocol>> {
    text.split(',')
        .map(|p| {
            p.trim()
                .parse::<Protocol>()
                .map_err(|e| anyhow!("--scope: {e}"))
        })
        .collect()
}

fn parse_expiry(text: &str) -> anyhow::Result<Expiry> {
    if let Some(ts) = parse_utc(text) {
        return Ok(Expiry::At(ts));
    }
    match crate::auth::policy::parse_duration(text) {
        Some(secs) if secs > 0 => Ok(Expiry::In(secs)),
        _ => bail!("--expires: {text:?} is neither a date (YYYY-MM-DD) nor a duration (30d, 12h)"),
    }
}
