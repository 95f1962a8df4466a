//! Groups: shared settings for their members (enabled, home template,
//! may change their own password, IP lists, permissions).

use super::access::{Proposed, keep_an_owner, require_owner_for_group};
use super::accounts::{validate_group_name, validate_home};
use super::{ACCOUNTS, Actor, Auth, AuthError, DEFAULT_HOME_TEMPLATE, GROUPS, Group, retain_of};
use crate::audit::{self, Event};
use crate::store::Read;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The group with an empty (or blank) home template replaced by the
/// default one.
fn with_default_home(mut group: Group) -> Group {
    if group.home_template.trim().is_empty() {
        group.home_template = DEFAULT_HOME_TEMPLATE.into();
    }
    group
}

/// A new group with default settings.
pub fn new_group(name: &str) -> Group {
    Group {
        name: name.to_string(),
        enabled: true,
        home_template: DEFAULT_HOME_TEMPLATE.into(),
        may_change_password: true,
        ip_allow: Vec::new(),
        ip_deny: Vec::new(),
        read_only: false,
        no_delete: false,
        created_at: 0,
    }
}

/// Changes to a group's settings; `None` leaves a setting as it is. Every
/// front end (REST, web UI, command line, control socket) builds one and
/// hands it to [`Auth::change_group`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChange {
    /// Members can log in.
    pub enabled: Option<bool>,
    /// Home folder template (empty: the default).
    pub home_template: Option<String>,
    /// Members may change their own password.
    pub may_change_password: Option<bool>,
    /// Allowed source networks (empty: any).
    pub ip_allow: Option<Vec<IpNet>>,
    /// Refused source networks.
    pub ip_deny: Option<Vec<IpNet>>,
    /// Members' files are read-only.
    pub read_only: Option<bool>,
    /// Members may not delete.
    pub no_delete: Option<bool>,
}

impl GroupChange {
    /// Every setting of `group` (a whole form).
    pub fn replacing(group: Group) -> Self {
        Self {
            enabled: Some(group.enabled),
            home_template: Some(group.home_template),
            may_change_password: Some(group.may_change_password),
            ip_allow: Some(group.ip_allow),
            ip_deny: Some(group.ip_deny),
            read_only: Some(group.read_only),
            no_delete: Some(group.no_delete),
        }
    }

    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Writes the settings given into `group`.
    pub fn apply(self, group: &mut Group) {
        let GroupChange {
            enabled,
            home_template,
            may_change_password,
            ip_allow,
            ip_deny,
            read_only,
            no_delete,
        } = self;
        if let Some(v) = enabled {
            group.enabled = v;
        }
        if let Some(v) = home_template {
            group.home_template = v;
        }
        if let Some(v) = may_change_password {
            group.may_change_password = v;
        }
        if let Some(v) = ip_allow {
            group.ip_allow = v;
        }
        if let Some(v) = ip_deny {
            group.ip_deny = v;
        }
        if let Some(v) = read_only {
            group.read_only = v;
        }
        if let Some(v) = no_delete {
            group.no_delete = v;
        }
    }
}

impl Auth {
    /// Creates a group. An empty home template means the default
    /// ([`DEFAULT_HOME_TEMPLATE`]).
    pub fn create_group(&self, actor: &Actor, group: Group) -> Result<(), AuthError> {
        actor.require_admin()?;
        validate_group_name(&group.name)?;
        let group = with_default_home(group);
        validate_home(&group.home_template)?;
        let now = self.now();
        self.store.write(|tx| {
            if tx.get(GROUPS, &group.name)?.is_some() {
                return Err(AuthError::Exists {
                    what: "group",
                    name: group.name.clone(),
                });
            }
            tx.put(
                GROUPS,
                &group.name,
                &Group {
                    created_at: now,
                    ..group.clone()
                },
            )?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::GroupCreated,
                actor.entry(None, format!("group {}", group.name)),
                retain,
            )?;
            Ok(())
        })
    }

    /// Replaces a group's settings. An empty home template means the
    /// default ([`DEFAULT_HOME_TEMPLATE`]).
    pub fn update_group(&self, actor: &Actor, group: Group) -> Result<(), AuthError> {
        let name = group.name.clone();
        self.change_group(actor, &name, GroupChange::replacing(group))
            .map(|_| ())
    }

    /// Changes some of a group's settings, read and written in one store
    /// transaction (two administrators editing different settings at once
    /// both keep their change). Returns the group as saved.
    pub fn change_group(
        &self,
        actor: &Actor,
        name: &str,
        change: GroupChange,
    ) -> Result<Group, AuthError> {
        actor.require_admin()?;
        if let Some(t) = &change.home_template
            && !t.trim().is_empty()
        {
            validate_home(t)?;
        }
        let now = self.now();
        let (group, members) = self.store.write(|tx| {
            let old = tx.get(GROUPS, name)?.ok_or_else(|| AuthError::NotFound {
                what: "group",
                name: name.to_string(),
            })?;
            require_owner_for_group(tx, actor, name)?;
            let mut group = old.clone();
            change.apply(&mut group);
            let group = with_default_home(group);
            keep_an_owner(tx, Proposed::Group(&group))?;
            tx.put(GROUPS, name, &group)?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::GroupChanged,
                actor.entry(None, format!("group {name}")),
                retain,
            )?;
            let members = tx
                .all(ACCOUNTS)?
                .into_iter()
                .filter(|(_, a)| a.group.as_deref() == Some(name))
                .map(|(member, _)| member)
                .collect::<Vec<_>>();
            Ok::<_, AuthError>((group, members))
        })?;
        // The members' sessions end (their rights may have changed); nobody
        // else's do.
        for member in members {
            self.credentials_changed(&member, &format!("group {name} changed"));
        }
        Ok(group)
    }

    /// Removes a group that has no members.
    pub fn remove_group(&self, actor: &Actor, name: &str) -> Result<(), AuthError> {
        actor.require_admin()?;
        let now = self.now();
        self.store.write(|tx| {
            require_owner_for_group(tx, actor, name)?;
            if !tx.remove(GROUPS, name)? {
                return Err(AuthError::NotFound {
                    what: "group",
                    name: name.to_string(),
                });
            }
            let members = tx
                .all(ACCOUNTS)?
                .into_iter()
                .filter(|(_, a)| a.group.as_deref() == Some(name))
                .count();
            if members > 0 {
                return Err(AuthError::Forbidden(format!(
                    "group {name:?} still has {members} member(s); move them first"
                )));
            }
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::GroupRemoved,
                actor.entry(None, format!("group {name}")),
                retain,
            )?;
            Ok::<_, AuthError>(())
        })?;
        // Only a group without members is removed: no session changes.
        Ok(())
    }

    /// Every group, in name order, for the core's own decisions (private
    /// to the core); a front end reads them through [`Auth::groups_for`].
    pub(super) fn groups(&self) -> Result<Vec<Group>, AuthError> {
        Ok(self
            .store
            .read(|r| r.all(GROUPS))?
            .into_iter()
            .map(|(_, g)| g)
            .collect())
    }

    /// Every group, in name order, as an administrator sees them.
    pub fn groups_for(&self, actor: &Actor) -> Result<Vec<Group>, AuthError> {
        actor.require_admin()?;
        self.groups()
    }

    /// One group, as an administrator sees it.
    pub fn group(&self, actor: &Actor, name: &str) -> Result<Group, AuthError> {
        actor.require_admin()?;
        self.store
            .read(|r| r.get(GROUPS, name))?
            .ok_or_else(|| AuthError::NotFound {
                what: "group",
                name: name.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_change_touches_only_what_it_names_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let auth = crate::auth::test_core(dir.path(), ManualClock::new(1_000), None);
        let me = Actor::cli();
        let mut staff = new_group("staff");
        staff.home_template = "staff/${USER}".into();
        auth.create_group(&me, staff).unwrap();
        // Two administrators each change one setting: both changes stay.
        auth.change_group(
            &me,
            "staff",
            GroupChange {
                read_only: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
        let saved = auth
            .change_group(
                &me,
                "staff",
                GroupChange {
                    ip_allow: Some(vec!["10.0.0.0/8".parse().unwrap()]),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(saved.read_only);
        assert_eq!(saved.ip_allow, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert_eq!(saved.home_template, "staff/${USER}");
        assert_eq!(saved.created_at, 1_000);
        assert_eq!(auth.group(&me, "staff").unwrap(), saved);
        // A bad template changes nothing; an empty one means the default.
        let bad = GroupChange {
            home_template: Some("../x".into()),
            read_only: Some(false),
            ..Default::default()
        };
        assert!(auth.change_group(&me, "staff", bad).is_err());
        assert_eq!(auth.group(&me, "staff").unwrap(), saved);
        let reset = GroupChange {
            home_template: Some(" ".into()),
            ..Default::default()
        };
        let saved = auth.change_group(&me, "staff", reset).unwrap();
        assert_eq!(saved.home_template, DEFAULT_HOME_TEMPLATE);
        // No such group, and a user may not change groups.
        assert!(matches!(
            auth.change_group(&me, "nope", GroupChange::default()),
            Err(AuthError::NotFound { .. })
        ));
        let user = Actor {
            account: Some(("u".into(), crate::auth::Role::User)),
            protocol: "https",
            address: None,
            access_token: None,
        };
        assert!(matches!(
            auth.change_group(&user, "staff", GroupChange::default()),
            Err(AuthError::Forbidden(_))
        ));
    }
}
