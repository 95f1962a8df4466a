//! Least privilege without systemd: a server started as root gives root up.
//!
//! Under systemd the unit starts Coffer as its own user with no capabilities
//! beyond binding low ports, and nothing here happens. Started as root (an
//! init script, a container, a developer's `sudo`), the server opens what
//! needs root first: the listeners (ports below 1024), the store and the TPM.
//! Then it hands the data dir to the service account, and drops to it:
//!
//! 1. `PR_SET_NO_NEW_PRIVS`, so nothing the process runs can gain privileges;
//! 2. `setgroups([gid])`, `setresgid(gid)`, `setresuid(uid)`: the kernel
//!    clears the permitted, effective and ambient capability sets when the
//!    last root uid goes;
//! 3. verification: real, effective and saved ids are the target's, the
//!    supplementary groups are only its group, `setuid(0)` fails, and
//!    `/proc/thread-self/status` shows no capability left (the allowed set
//!    after the drop is empty: the listeners are already bound).
//!
//! The account is `[service] user` (and `group`, default: the user's primary
//! group); without it, `coffer` when that account exists. A server that
//! would stay root refuses to run unless `[service] allow_root = true`
//! (which, without a `user`, keeps root even when `coffer` exists).

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};
use serde::Deserialize;

use super::SystemError;

/// The account a root-started server drops to when none is configured.
pub const DEFAULT_USER: &str = "coffer";

/// `[service]` in the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// The account to drop to when started as root.
    pub user: Option<String>,
    /// Its group (default: the account's primary group).
    pub group: Option<String>,
    /// Keep running as root when started as root (not recommended).
    pub allow_root: Option<bool>,
}

/// The resolved `[service]` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSettings {
    /// `[service] user`; `None`: `coffer` when that account exists.
    pub user: Option<String>,
    /// `[service] group`; `None`: the user's primary group.
    pub group: Option<String>,
    /// `[service] allow_root`.
    pub allow_root: bool,
}

impl ServiceSection {
    /// Resolves the section.
    pub fn resolve(self) -> Result<ServiceSettings, SystemError> {
        for (key, value) in [("service.user", &self.user), ("service.group", &self.group)] {
            if let Some(v) = value
                && (v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_control() || c == ':'))
            {
                return Err(SystemError::setting(
                    key,
                    format!("{key} = {v:?} is not an account or group name"),
                ));
            }
        }
        Ok(ServiceSettings {
            user: self.user,
            group: self.group,
            allow_root: self.allow_root.unwrap_or(false),
        })
    }
}

/// Who the server runs as after [`carry_out`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User name (or the numeric id when the account has no name).
    pub user: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// What [`carry_out`] will do, decided before anything is opened so a
/// refusal comes before any file is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Not root: nothing to drop.
    NotRoot,
    /// Root, and allowed to stay root.
    StayRoot,
    /// Root: drop to this account once the listeners and the store are open.
    DropTo {
        /// Account name.
        user: String,
        /// Its uid.
        uid: Uid,
        /// The group's gid.
        gid: Gid,
    },
}

/// Decides what a server started with this effective uid does.
pub fn plan(settings: &ServiceSettings) -> Result<Plan, SystemError> {
    if !Uid::effective().is_root() {
        return Ok(Plan::NotRoot);
    }
    let named = settings.user.clone();
    if named.is_none() && settings.allow_root {
        return Ok(Plan::StayRoot);
    }
    let user = match named.as_deref() {
        Some(name) => Some(lookup_user(name)?.ok_or_else(|| {
            SystemError::setting(
                "service.user",
                format!("service.user = {name:?}: there is no such account"),
            )
        })?),
        None => lookup_user(DEFAULT_USER)?,
    };
    let Some(user) = user else {
        if settings.allow_root {
            return Ok(Plan::StayRoot);
        }
        return Err(SystemError::setting(
            "service.user",
            format!(
                "coffer serve was started as root and there is no `{DEFAULT_USER}` account to drop to: create one (useradd --system {DEFAULT_USER}), set [service] user = \"NAME\" in the configuration, or set [service] allow_root = true to keep root (not recommended)"
            ),
        ));
    };
    if user.uid.is_root() {
        if settings.allow_root {
            return Ok(Plan::StayRoot);
        }
        return Err(SystemError::setting(
            "service.user",
            format!(
                "service.user = {:?} is root; name an unprivileged account, or set [service] allow_root = true",
                user.name
            ),
        ));
    }
    let gid = match settings.group.as_deref() {
        Some(g) => {
            Group::from_name(g)
                .map_err(|e| SystemError::os(format!("cannot look up the group {g:?}"), e))?
                .ok_or_else(|| {
                    SystemError::setting(
                        "service.group",
                        format!("service.group = {g:?}: there is no such group"),
                    )
                })?
                .gid
        }
        None => user.gid,
    };
    if gid.as_raw() == 0 && !settings.allow_root {
        return Err(SystemError::setting(
            "service.group",
            "the service would keep group root (gid 0); set [service] group to an unprivileged group",
        ));
    }
    Ok(Plan::DropTo {
        user: user.name,
        uid: user.uid,
        gid,
    })
}

fn lookup_user(name: &str) -> Result<Option<User>, SystemError> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    found.map_err(|e| SystemError::os(format!("cannot look up the account {name:?}"), e))
}

/// Gives the data dir, everything in it all the way down, and the files
/// root with what it holds directly to the account. A start as root may
/// have made files deep in the data dir (`tls/cert.pem`, `tls/key.pem`);
/// left to root, the server could not read them after the drop, nor a later
/// start as the account. The files root is not walked: what is below its
/// top level was made by the account itself.
///
/// The account may own these folders already (from an earlier start) and so
/// could swap a folder for a symbolic link while root walks it. The walk is
/// therefore made on descriptors: each folder is opened beneath its parent
/// with `O_NOFOLLOW | O_DIRECTORY` (a link fails the open, and is itself
/// given away, not followed) and each entry is changed with `fchownat`
/// relative to its folder, never by a path that could lead elsewhere.
pub fn hand_over(
    data_dir: &Path,
    files_root: &Path,
    uid: Uid,
    gid: Gid,
) -> Result<(), SystemError> {
    let files_root_id = std::fs::symlink_metadata(files_root)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    for (top, deep) in [(data_dir, true), (files_root, false)] {
        let Ok(meta) = std::fs::symlink_metadata(top) else {
            continue;
        };
        if !meta.is_dir() {
            chown_nofollow(top, uid, gid)?;
            continue;
        }
        let dir = open_folder(rustix::fs::CWD, top)
            .map_err(|e| SystemError::os(format!("cannot open {}", top.display()), e))?;
        give(&dir, None, uid, gid).map_err(|e| given_away(top, uid, e))?;
        walk(&dir, top, deep, files_root_id, uid, gid)?;
    }
    Ok(())
}

/// Opens the folder `name` beneath `parent` without following a link.
fn open_folder<Fd: std::os::fd::AsFd, P: rustix::path::Arg>(
    parent: Fd,
    name: P,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Gives `name` in `dir` (or `dir` itself) to the account, not following a
/// link, unless it is the account's already.
fn give(
    dir: &std::os::fd::OwnedFd,
    name: Option<&std::ffi::CStr>,
    uid: Uid,
    gid: Gid,
) -> rustix::io::Result<()> {
    use rustix::fs::AtFlags;
    let (owner, group) = (
        Some(rustix::fs::Uid::from_raw(uid.as_raw())),
        Some(rustix::fs::Gid::from_raw(gid.as_raw())),
    );
    let st = match name {
        Some(name) => rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?,
        None => rustix::fs::fstat(dir)?,
    };
    if st.st_uid == uid.as_raw() && st.st_gid == gid.as_raw() {
        return Ok(());
    }
    match name {
        Some(name) => rustix::fs::chownat(dir, name, owner, group, AtFlags::SYMLINK_NOFOLLOW),
        None => rustix::fs::fchown(dir, owner, group),
    }
}

/// Gives what `dir` holds to the account, and, if `deep`, what its folders
/// hold, all the way down (but never below the files root).
fn walk(
    dir: &std::os::fd::OwnedFd,
    shown: &Path,
    deep: bool,
    files_root: Option<(u64, u64)>,
    uid: Uid,
    gid: Gid,
) -> Result<(), SystemError> {
    let unreadable =
        |e: rustix::io::Errno| SystemError::os(format!("cannot read {}", shown.display()), e);
    for entry in rustix::fs::Dir::read_from(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let path = shown.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        give(dir, Some(name), uid, gid).map_err(|e| given_away(&path, uid, e))?;
        if !deep || entry.file_type() != rustix::fs::FileType::Directory {
            continue;
        }
        // A folder swapped for a link since it was listed fails to open:
        // it was given away above, as the link it now is.
        let Ok(sub) = open_folder(dir, name) else {
            continue;
        };
        let st = rustix::fs::fstat(&sub).map_err(unreadable)?;
        if Some((st.st_dev, st.st_ino)) == files_root {
            continue;
        }
        walk(&sub, &path, deep, files_root, uid, gid)?;
    }
    Ok(())
}

/// The account could not be given `path`.
fn given_away(path: &Path, uid: Uid, cause: impl Into<std::io::Error>) -> SystemError {
    SystemError::os(
        format!("cannot give {} to uid {uid}", path.display()),
        cause,
    )
}

/// Gives `path` to the account, not following a link at its last part.
fn chown_nofollow(path: &Path, uid: Uid, gid: Gid) -> Result<(), SystemError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| given_away(path, uid, e))?;
    if meta.uid() == uid.as_raw() && meta.gid() == gid.as_raw() {
        return Ok(());
    }
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(uid),
        Some(gid),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| given_away(path, uid, e))
}

/// Carries out `plan`: drops to the account and verifies the drop. Returns
/// who the process is afterwards.
pub fn carry_out(plan: &Plan) -> Result<Identity, SystemError> {
    match plan {
        Plan::NotRoot | Plan::StayRoot => {
            let uid = Uid::effective();
            if uid.is_root() {
                tracing::warn!(
                    "running as root because [service] allow_root = true; an unprivileged account is safer"
                );
            }
            Ok(Identity {
                user: User::from_uid(uid)
                    .ok()
                    .flatten()
                    .map_or_else(|| uid.to_string(), |u| u.name),
                uid: uid.as_raw(),
                gid: Gid::effective().as_raw(),
            })
        }
        Plan::DropTo { user, uid, gid } => {
            drop_to(*uid, *gid)?;
            verify(*uid, *gid)?;
            tracing::info!(user = %user, uid = uid.as_raw(), gid = gid.as_raw(), "dropped root privileges");
            Ok(Identity {
                user: user.clone(),
                uid: uid.as_raw(),
                gid: gid.as_raw(),
            })
        }
    }
}

fn drop_to(uid: Uid, gid: Gid) -> Result<(), SystemError> {
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| SystemError::os("cannot set no_new_privs", e))?;
    nix::unistd::setgroups(&[gid])
        .map_err(|e| SystemError::os("cannot set the supplementary groups", e))?;
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| SystemError::os(format!("cannot change to gid {gid}"), e))?;
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| SystemError::os(format!("cannot change to uid {uid}"), e))?;
    Ok(())
}

/// Fails unless the process is exactly `uid`/`gid` with no capabilities.
fn verify(uid: Uid, gid: Gid) -> Result<(), SystemError> {
    let kept = |text: String| Err(SystemError::PrivilegeKept(text));
    let r = nix::unistd::getresuid().map_err(|e| SystemError::os("getresuid", e))?;
    let g = nix::unistd::getresgid().map_err(|e| SystemError::os("getresgid", e))?;
    if [r.real, r.effective, r.saved] != [uid; 3] || [g.real, g.effective, g.saved] != [gid; 3] {
        return kept(format!(
            "the privilege drop did not take: uids {r:?}, gids {g:?}"
        ));
    }
    let groups = nix::unistd::getgroups().map_err(|e| SystemError::os("getgroups", e))?;
    if groups.iter().any(|&x| x != gid) {
        return kept(format!(
            "supplementary groups remain after the privilege drop: {groups:?}"
        ));
    }
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return kept("the process could become root again after the privilege drop".into());
    }
    let caps = capabilities()?;
    if let Some((set, value)) = caps.iter().find(|(_, v)| *v != 0) {
        return kept(format!(
            "capabilities remain after the privilege drop: {set} = {value:016x}"
        ));
    }
    Ok(())
}

/// The calling thread's capability sets from `/proc/thread-self/status`:
/// `CapInh`, `CapPrm`, `CapEff`, `CapAmb`.
pub fn capabilities() -> Result<Vec<(String, u64)>, SystemError> {
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .map_err(|e| SystemError::os("cannot read /proc/thread-self/status", e))?;
    Ok(parse_capabilities(&status))
}

fn parse_capabilities(status: &str) -> Vec<(String, u64)> {
    status
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k, "CapInh" | "CapPrm" | "CapEff" | "CapAmb")
                .then(|| Some((k.to_string(), u64::from_str_radix(v.trim(), 16).ok()?)))
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (to give files away); skipped otherwise.
    #[test]
    fn the_hand_over_walks_the_data_dir_without_following_links() {
        if !Uid::effective().is_root() {
            return;
        }
        let (uid, gid) = (Uid::from_raw(65_534), Gid::from_raw(65_534));
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(data.join("tls/deeper")).unwrap();
        std::fs::create_dir_all(data.join("files/alice/docs")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(data.join("tls/deeper/key.pem"), "k").unwrap();
        std::fs::write(data.join("files/alice/docs/a.txt"), "a").unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        // Links the account could have planted: to a folder and to a file.
        std::os::unix::fs::symlink(&outside, data.join("tls/evil")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), data.join("evil-file")).unwrap();
        hand_over(&data, &data.join("files"), uid, gid).unwrap();
        let owner = |p: &Path| std::fs::symlink_metadata(p).unwrap().uid();
        // All the way down the data dir ...
        for p in [
            "",
            "tls",
            "tls/deeper",
            "tls/deeper/key.pem",
            "files",
            "files/alice",
        ] {
            assert_eq!(owner(&data.join(p)), 65_534, "{p}");
        }
        // ... the links themselves, never what they lead to ...
        assert_eq!(owner(&data.join("tls/evil")), 65_534);
        assert_eq!(owner(&outside), 0);
        assert_eq!(owner(&outside.join("secret")), 0);
        // ... and only the top level of the files root.
        assert_eq!(owner(&data.join("files/alice/docs")), 0);
        assert_eq!(owner(&data.join("files/alice/docs/a.txt")), 0);
    }

    #[test]
    fn capability_lines_are_read() {
        let caps = parse_capabilities(
            "Name:\tcoffer\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000400\nCapEff:\t0000000000000400\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n",
        );
        assert_eq!(
            caps,
            vec![
                ("CapInh".into(), 0),
                ("CapPrm".into(), 0x400),
                ("CapEff".into(), 0x400),
                ("CapAmb".into(), 0)
            ]
        );
    }

    #[test]
    fn section_rejects_odd_names() {
        let s = ServiceSection {
            user: Some("a:b".into()),
            ..Default::default()
        };
        let err = s.resolve().unwrap_err();
        assert_eq!(err.key(), Some("service.user"));
        assert_eq!(
            err.to_string(),
            "service.user = \"a:b\" is not an account or group name"
        );
        let s = ServiceSection {
            user: Some("coffer".into()),
            group: None,
            allow_root: Some(true),
        };
        assert!(s.resolve().unwrap().allow_root);
    }

    #[test]
    fn a_named_account_that_does_not_exist_is_an_error_for_root() {
        if !Uid::effective().is_root() {
            return;
        }
        let settings = ServiceSettings {
            user: Some("no-such-coffer-account".into()),
            ..Default::default()
        };
        let err = plan(&settings).unwrap_err().to_string();
        assert!(err.contains("no such account"), "{err}");
        let settings = ServiceSettings {
            user: Some("root".into()),
            ..Default::default()
        };
        assert!(
            plan(&settings)
                .unwrap_err()
                .to_string()
                .contains("allow_root")
        );
        let settings = ServiceSettings {
            user: Some("root".into()),
            allow_root: true,
            ..Default::default()
        };
        assert_eq!(plan(&settings).unwrap(), Plan::StayRoot);
    }
}
