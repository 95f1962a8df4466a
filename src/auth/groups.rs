//! Groups: shared settings for their members (enabled, home template,
//! may change their own password, IP lists, permissions).

use super::access::{Proposed, keep_an_owner, require_owner_for_group};
use super::accounts::{validate_group_name, validate_home};
use super::{ACCOUNTS, Actor, Auth, AuthError, DEFAULT_HOME_TEMPLATE, GROUPS, Group, retain_of};
use crate::audit::{self, Event};
use crate::store::Read;

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
        actor.require_admin()?;
        let group = with_default_home(group);
        validate_home(&group.home_template)?;
        let now = self.now();
        let members = self.store.write(|tx| {
            let old = tx
                .get(GROUPS, &group.name)?
                .ok_or_else(|| AuthError::NotFound {
                    what: "group",
                    name: group.name.clone(),
                })?;
            require_owner_for_group(tx, actor, &group.name)?;
            keep_an_owner(tx, Proposed::Group(&group))?;
            tx.put(
                GROUPS,
                &group.name,
                &Group {
                    created_at: old.created_at,
                    ..group.clone()
                },
            )?;
            let retain = retain_of(tx)?;
            audit::append(
                tx,
                now,
                Event::GroupChanged,
                actor.entry(None, format!("group {}", group.name)),
                retain,
            )?;
            Ok::<_, AuthError>(
                tx.all(ACCOUNTS)?
                    .into_iter()
                    .filter(|(_, a)| a.group.as_deref() == Some(group.name.as_str()))
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
        })?;
        // The members' sessions end (their rights may have changed); nobody
        // else's do.
        for name in members {
            self.credentials_changed(&name, &format!("group {} changed", group.name));
        }
        Ok(())
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
