//! Who may log in from where: the IP lists of accounts and groups, and the
//! rule that the box always keeps an owner who can log in.

use std::net::IpAddr;

use ipnet::IpNet;

use super::accounts::MAX_NETS;
use super::{ACCOUNTS, Account, Actor, AuthError, GROUPS, Group, Role};
use crate::store::Read;

/// Parses a list of CIDR networks (`10.0.0.0/8,192.168.1.7`); `none` is empty.
pub fn parse_nets(text: &str) -> Result<Vec<IpNet>, AuthError> {
    if text.trim().is_empty() || text.trim() == "none" {
        return Ok(Vec::new());
    }
    let nets = text
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    AuthError::Invalid(format!(
                        "{s:?} is not an address or network like 192.168.1.0/24"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if nets.len() > MAX_NETS {
        return Err(AuthError::Invalid(format!(
            "at most {MAX_NETS} networks per list"
        )));
    }
    Ok(nets)
}

fn contains(nets: &[IpNet], addr: IpAddr) -> bool {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&addr))
}

/// Whether `addr` may log in to `account` (account and group lists). A deny
/// entry wins; an allow list, when one applies, must match.
pub fn address_allowed(account: &Account, group: Option<&Group>, addr: IpAddr) -> bool {
    if contains(&account.ip_deny, addr) || group.is_some_and(|g| contains(&g.ip_deny, addr)) {
        return false;
    }
    let allow = if !account.ip_allow.is_empty() {
        &account.ip_allow
    } else {
        match group {
            Some(g) => &g.ip_allow,
            None => &account.ip_allow,
        }
    };
    allow.is_empty() || contains(allow, addr)
}

/// The start of IPv4-mapped IPv6 addresses (`::ffff:0:0/96`), where the
/// IPv4 space sits in the one number line of [`admits_some_address`]
/// ([`contains`] compares a mapped address as IPv4).
const MAPPED_V4: u128 = 0xffff_0000_0000;

/// The addresses a list entry matches, as inclusive ranges on one number
/// line: IPv4 inside `::ffff:0:0/96`, IPv6 outside it.
fn spans(net: &IpNet) -> Vec<(u128, u128)> {
    match net {
        IpNet::V4(n) => vec![(
            MAPPED_V4 + u128::from(u32::from(n.network())),
            MAPPED_V4 + u128::from(u32::from(n.broadcast())),
        )],
        IpNet::V6(n) => {
            let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
            let (ma, mb) = (MAPPED_V4, MAPPED_V4 + u128::from(u32::MAX));
            if b < ma || a > mb {
                return vec![(a, b)];
            }
            let mut out = Vec::new();
            if a < ma {
                out.push((a, ma - 1));
            }
            if b > mb {
                out.push((mb + 1, b));
            }
            out
        }
    }
}

/// Whether at least one address may log in to `account` under its own and
/// its group's IP lists ([`address_allowed`]): a change that leaves none
/// shuts the account out from everywhere.
pub fn admits_some_address(account: &Account, group: Option<&Group>) -> bool {
    let allow_list = if !account.ip_allow.is_empty() {
        &account.ip_allow
    } else {
        group.map_or(&account.ip_allow, |g| &g.ip_allow)
    };
    let allowed: Vec<(u128, u128)> = if allow_list.is_empty() {
        vec![(0, u128::MAX)]
    } else {
        allow_list.iter().flat_map(spans).collect()
    };
    let mut denied: Vec<(u128, u128)> = account
        .ip_deny
        .iter()
        .chain(group.map_or(&[][..], |g| &g.ip_deny[..]))
        .flat_map(spans)
        .collect();
    denied.sort_unstable();
    allowed.iter().any(|&(a, b)| {
        // Walk the denied ranges from `a`: a gap before `b` is an address.
        let mut next = a;
        for &(s, e) in &denied {
            if e < next {
                continue;
            }
            if s > next {
                return true;
            }
            match e.checked_add(1) {
                Some(n) => next = n,
                None => return false,
            }
            if next > b {
                return false;
            }
        }
        next <= b
    })
}

/// Whether `account` is a system_admin that can log in: enabled, not in a
/// disabled group, and admitted from some address.
fn owner_can_log_in(account: &Account, group: Option<&Group>) -> bool {
    account.role == Role::SystemAdmin
        && !account.disabled
        && group.is_none_or(|g| g.enabled)
        && admits_some_address(account, group)
}

/// A change, as [`keep_an_owner`] weighs it.
pub(super) enum Proposed<'a> {
    /// The account will look like this.
    Account(&'a Account),
    /// The account will be gone.
    Removed(&'a str),
    /// The group will look like this.
    Group(&'a Group),
}

/// Refuses a change after which no system_admin could log in any more
/// (disabled, removed, demoted, in a disabled group, or shut out of every
/// address by IP lists), by whatever path it comes. A box that had no such
/// account before the change is not made worse by it, and is let be.
pub(super) fn keep_an_owner(r: &impl Read, proposed: Proposed<'_>) -> Result<(), AuthError> {
    let mut accounts: std::collections::BTreeMap<String, Account> =
        r.all(ACCOUNTS)?.into_iter().collect();
    let mut groups: std::collections::BTreeMap<String, Group> =
        r.all(GROUPS)?.into_iter().collect();
    let usable = |accounts: &std::collections::BTreeMap<String, Account>,
                  groups: &std::collections::BTreeMap<String, Group>| {
        accounts
            .values()
            .filter(|a| owner_can_log_in(a, a.group.as_ref().and_then(|g| groups.get(g))))
            .count()
    };
    if usable(&accounts, &groups) == 0 {
        return Ok(());
    }
    match proposed {
        Proposed::Account(a) => {
            accounts.insert(a.name.clone(), a.clone());
        }
        Proposed::Removed(name) => {
            accounts.remove(name);
        }
        Proposed::Group(g) => {
            groups.insert(g.name.clone(), g.clone());
        }
    }
    if usable(&accounts, &groups) == 0 {
        return Err(AuthError::Forbidden(
            "this is the last enabled system_admin that can log in; the change would disable, \
             remove, demote or shut it out (account, group or IP lists): create or enable \
             another one first"
                .into(),
        ));
    }
    Ok(())
}

/// Refuses an actor who is not a system_admin when the group has one as a
/// member: the group's settings are the owner's settings.
pub(super) fn require_owner_for_group(
    r: &impl Read,
    actor: &Actor,
    group: &str,
) -> Result<(), AuthError> {
    let has_owner = r
        .all(ACCOUNTS)?
        .into_iter()
        .any(|(_, a)| a.group.as_deref() == Some(group) && a.role == Role::SystemAdmin);
    if has_owner && actor.require_owner().is_err() {
        return Err(AuthError::Forbidden(format!(
            "group {group:?} has a system_admin as a member: only a system_admin may change or remove it"
        )));
    }
    Ok(())
}
