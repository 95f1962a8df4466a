//! Renaming an account.
//!
//! Everything keyed by the account's name moves to the new name in one
//! store transaction: the account record (with its group membership and
//! settings), the password, the public keys, the TOTP enrolment (its seeds
//! sealed again: they are bound to the name, see `mfa`), the recovery codes,
//! the access tokens, the lockout records (a rename neither lifts a lock nor
//! leaves one on a name nobody has) and, for the owner, the record of who
//! claimed the box. The new name must pass [`validate_account_name`] and be
//! free regardless of case; the old one may be any name a store holds, so a
//! name from before the alphabet (refused at login, audit event 1009) can
//! be renamed into a usable one.
//!
//! A home folder derived from the name (the default `${USER}` or a group
//! template) follows the name on disk ([`crate::files::rehome`]); a home set
//! explicitly stays where it is. The rename ends the account's sessions
//! and is audited ([`Event::AccountRenamed`]).

use super::accounts::{
    AccountView, HomeFolder, audit_in, home_folder, load_account, load_group, validate_account_name,
};
use super::{
    ACCOUNTS, Account, Actor, Auth, AuthError, GROUPS, PASSWORDS, PUBLIC_KEYS, RECOVERY, TOKENS,
    TOTP, lockout,
};
use crate::audit::{self, Entry, Event};
use crate::files::rehome::{self, MoveError};
use crate::store::{META, Read, StoreError, Table, WriteTx};

/// The home folders a rename moves between: `None` when nothing moves on
/// disk (an explicit home, or the same folder under both names).
type Homes = Option<(HomeFolder, HomeFolder)>;

/// Checks that `actor` may rename `old` to `new` as the store stands, and
/// works out which home folder moves. Run before the folder moves and
/// again inside the transaction.
fn plan(r: &impl Read, actor: &Actor, old: &str, new: &str) -> Result<Homes, AuthError> {
    actor.require_admin()?;
    let account = load_account(r, old)?;
    actor.require_admin_over(&account)?;
    if let Some((taken, _)) = r
        .all(ACCOUNTS)?
        .into_iter()
        .find(|(n, _)| n != old && n.eq_ignore_ascii_case(new))
    {
        return Err(AuthError::Exists {
            what: "account",
            name: taken,
        });
    }
    if account.home.is_some() {
        return Ok(None);
    }
    let group = load_group(r, &account)?;
    let renamed = Account {
        name: new.to_string(),
        ..account.clone()
    };
    let to = home_folder(&renamed, group.as_ref())?;
    // An old home that does not parse (a template from before the checks)
    // was never opened: there is nothing on disk to move.
    let Some(from) = home_folder(&account, group.as_ref())
        .ok()
        .filter(|from| *from != to)
    else {
        return Ok(None);
    };
    if let Some(moved) = rehome::moved_folder(&from, &to).map_err(move_refused)? {
        refuse_if_it_holds_another_home(r, old, &moved)?;
    }
    Ok(Some((from, to)))
}

/// Refuses when the folder that would move holds the home of another
/// account (nested homes: a manager whose home is `team` above members
/// with `team/${USER}`): their files would move away under them.
fn refuse_if_it_holds_another_home(r: &impl Read, old: &str, moved: &str) -> Result<(), AuthError> {
    let groups = r.all(GROUPS)?;
    for (name, other) in r.all(ACCOUNTS)? {
        if name == old {
            continue;
        }
        let group = other
            .group
            .as_ref()
            .and_then(|g| groups.iter().find(|(n, _)| n == g).map(|(_, g)| g));
        let Ok(home) = home_folder(&other, group) else {
            continue;
        };
        let home = home.as_str();
        if home == moved
            || home
                .strip_prefix(moved)
                .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(AuthError::Invalid(format!(
                "the folder {moved:?} that would follow the new name also holds the home of the account {:?}; give one of them a home of its own first",
                audit::clean(&name, audit::MAX_NAME_CHARS)
            )));
        }
    }
    Ok(())
}

/// A refusal of the home folder's move as the core's error.
fn move_refused(e: MoveError) -> AuthError {
    match e {
        MoveError::TargetExists(folder) => AuthError::Exists {
            what: "home folder",
            name: folder,
        },
        e => AuthError::Invalid(format!("the account was not renamed: {e}")),
    }
}

/// Moves the value under `old` in `table` to `new`.
fn move_key<V: serde::Serialize + serde::de::DeserializeOwned>(
    tx: &mut WriteTx,
    table: Table<V>,
    old: &str,
    new: &str,
) -> Result<(), StoreError> {
    if let Some(v) = tx.get(table, old)? {
        tx.remove(table, old)?;
        tx.put(table, new, &v)?;
    }
    Ok(())
}

impl Auth {
    /// Checks what [`Auth::rename_account`] checks before it changes
    /// anything (rights, the new name, that it is free, the home folder's
    /// path), so a request that also changes other settings can refuse
    /// before its first write.
    pub(crate) fn check_rename(
        &self,
        actor: &Actor,
        old: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        actor.may_manage_credentials()?;
        actor.require_admin()?;
        validate_account_name(new)?;
        if old == new {
            return Err(AuthError::Invalid(format!(
                "the account is already named {new:?}"
            )));
        }
        self.store.read(|r| plan(r, actor, old, new)).map(|_| ())
    }

    /// Renames the account `old` to `new`: administrators, and only a
    /// system_admin renames a system_admin. A caller signed in with an
    /// access token may not (a name is what one signs in with). See the
    /// module documentation for what moves.
    ///
    /// The home folder and the store cannot share a transaction, so the
    /// folder moves first (an atomic rename inside its parent that never
    /// replaces anything) and the store's transaction follows; when the
    /// transaction fails (a conflicting change meanwhile, a failing store),
    /// the folder is moved back, so either both change or neither. Should
    /// the move back fail too (the disk went away), the error is logged
    /// with both paths for the operator.
    pub fn rename_account(
        &self,
        actor: &Actor,
        old: &str,
        new: &str,
    ) -> Result<AccountView, AuthError> {
        self.check_rename(actor, old, new)?;
        let homes = self.store.read(|r| plan(r, actor, old, new))?;
        let moved = match &homes {
            Some((from, to)) => self.move_home(actor, old, from, to)?,
            None => None,
        };
        let now = self.now();
        let detail = format!(
            "renamed from {} to {}{}",
            audit::clean(old, audit::MAX_NAME_CHARS),
            audit::clean(new, audit::MAX_NAME_CHARS),
            match &moved {
                Some(m) => format!("; home folder moved to {}", m.home()),
                None => String::new(),
            }
        );
        let written = self.store.write(|tx| {
            if plan(tx, actor, old, new)? != homes {
                return Err(AuthError::Invalid(
                    "the account changed meanwhile; try again".into(),
                ));
            }
            self.move_records(tx, old, new)?;
            audit_in(
                tx,
                now,
                Event::AccountRenamed,
                actor.entry(Some(new), detail.clone()),
            )
        });
        if let Err(e) = written {
            if let Some(m) = moved {
                let home = m.home().to_string();
                if let Err(undo) = m.undo() {
                    tracing::error!(
                        error = %undo,
                        folder = %home,
                        "a rename failed and its home folder could not be moved back"
                    );
                }
            }
            return Err(e);
        }
        self.credentials_changed(old, "account renamed");
        self.account(actor, new)
    }

    /// Moves the home folder for a rename, turning refusals into the
    /// core's errors (a link on the path is audited like at a login).
    fn move_home(
        &self,
        actor: &Actor,
        old: &str,
        from: &HomeFolder,
        to: &HomeFolder,
    ) -> Result<Option<rehome::HomeMove>, AuthError> {
        rehome::move_home(&self.options.files_root, from, to).map_err(|e| {
            if let MoveError::Home(h) = &e
                && h.is_refusal()
            {
                let entry = Entry {
                    method: None,
                    ..actor.entry(Some(old), format!("rename refused: {h}"))
                };
                if let Err(a) = self.audit(Event::HomeRefused, entry) {
                    tracing::error!(error = %a, "could not write an audit event");
                }
            }
            move_refused(e)
        })
    }

    /// Moves every record keyed by the name, inside the rename's
    /// transaction.
    fn move_records(&self, tx: &mut WriteTx, old: &str, new: &str) -> Result<(), AuthError> {
        let mut account = load_account(tx, old)?;
        account.name = new.to_string();
        tx.remove(ACCOUNTS, old)?;
        tx.put(ACCOUNTS, new, &account)?;
        move_key(tx, PASSWORDS, old, new)?;
        move_key(tx, PUBLIC_KEYS, old, new)?;
        move_key(tx, RECOVERY, old, new)?;
        if let Some(mut totp) = tx.get(TOTP, old)? {
            totp.reseal(&self.key, old, new)?;
            tx.remove(TOTP, old)?;
            tx.put(TOTP, new, &totp)?;
        }
        for (id, mut token) in tx.all(TOKENS)? {
            if token.account == old {
                token.account = new.to_string();
                tx.put(TOKENS, &id, &token)?;
            }
        }
        lockout::move_account(tx, old, new)?;
        if tx
            .get(META, "claimed_by")?
            .and_then(|v| v.as_str().map(str::to_string))
            == Some(old.to_string())
        {
            tx.put(META, "claimed_by", &serde_json::json!(new))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::accounts::NewAccount;
    use super::super::flow::{Login, Step};
    use super::super::{Method, Protocol, Role, test_core};
    use super::*;
    use crate::clock::ManualClock;

    const PW: &str = "correct horse battery staple";
    const T0: u64 = 1_795_392_000;

    fn ip() -> IpAddr {
        "192.0.2.9".parse().unwrap()
    }

    fn core() -> (Auth, ManualClock, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let auth = test_core(dir.path(), clock.clone(), Some(("owner", PW)));
        (auth, clock, dir)
    }

    fn add(auth: &Auth, name: &str, role: Role) {
        auth.create_account(
            &Actor::cli(),
            NewAccount {
                name: name.into(),
                role,
                group: None,
                password: Some(zeroize::Zeroizing::new(PW.into())),
                home: None,
                public_keys: vec![],
            },
        )
        .unwrap();
    }

    fn set_home(auth: &Auth, name: &str, home: &str) {
        let change = super::super::accounts::AccountChange {
            home: Some(Some(home.into())),
            ..Default::default()
        };
        auth.update_account(&Actor::cli(), name, change).unwrap();
    }

    fn admin(name: &str, role: Role) -> Actor {
        Actor {
            account: Some((name.into(), role)),
            protocol: "https",
            address: Some(ip()),
            access_token: None,
        }
    }

    /// Enrols TOTP for `name`; returns the seed.
    fn enrol(auth: &Auth, name: &str) -> Vec<u8> {
        let me = admin(name, Role::User);
        let start = auth.totp_start(&me, name, None, None).unwrap();
        let seed = data_encoding::BASE32_NOPAD
            .decode(start.secret.as_bytes())
            .unwrap();
        let params = super::super::totp::Params::from(&super::super::totp::TotpConfig::default());
        let code = params.code_at_step(&seed, params.step(auth.now()));
        auth.totp_confirm(&me, name, &code).unwrap();
        seed
    }

    fn login_with_code(auth: &Auth, name: &str, seed: &[u8], clock: &ManualClock) -> Step {
        clock.advance(30);
        let params = super::super::totp::Params::from(&super::super::totp::TotpConfig::default());
        let code = params.code_at_step(seed, params.step(auth.now()));
        match Login::new(name, ip(), Protocol::Https).password(auth, Method::Api, PW) {
            Step::NeedCode(c) => c.code(auth, &code),
            other => other,
        }
    }

    #[test]
    fn a_seed_sealed_under_the_old_name_gives_valid_codes_after_rename() {
        let (auth, clock, dir) = core();
        add(&auth, "bob", Role::User);
        let seed = enrol(&auth, "bob");
        let token = auth
            .create_token(
                &admin("bob", Role::User),
                "bob",
                "t",
                None,
                Default::default(),
            )
            .unwrap();
        std::fs::create_dir_all(dir.path().join("files/bob")).unwrap();
        std::fs::write(dir.path().join("files/bob/f.txt"), b"hello").unwrap();
        let view = auth.rename_account(&Actor::cli(), "bob", "rob").unwrap();
        assert_eq!(view.account.name, "rob");
        assert!(view.mfa.enrolled && view.has_password && view.tokens == 1);
        assert_eq!(
            view.mfa.recovery_codes_left,
            super::super::mfa::RECOVERY_CODES
        );
        assert!(matches!(
            login_with_code(&auth, "rob", &seed, &clock),
            Step::Granted(_)
        ));
        assert!(!matches!(
            login_with_code(&auth, "bob", &seed, &clock),
            Step::Granted(_)
        ));
        assert_eq!(
            auth.token_account(&token.value).unwrap().as_deref(),
            Some("rob")
        );
        assert_eq!(
            std::fs::read(dir.path().join("files/rob/f.txt")).unwrap(),
            b"hello"
        );
        assert!(!dir.path().join("files/bob").exists());
        let log = auth
            .audit_log(&Actor::cli(), &audit::Filter::default())
            .unwrap();
        let renamed = log
            .iter()
            .find(|r| r.event == Event::AccountRenamed)
            .unwrap();
        assert_eq!(renamed.account.as_deref(), Some("rob"));
        assert!(
            renamed.detail.contains("renamed from bob to rob"),
            "{}",
            renamed.detail
        );
    }

    #[test]
    fn a_taken_name_in_other_case_and_a_bad_new_name_are_refused() {
        let (auth, _clock, dir) = core();
        add(&auth, "bob", Role::User);
        add(&auth, "alice", Role::User);
        std::fs::create_dir_all(dir.path().join("files/bob")).unwrap();
        for taken in ["ALICE", "Owner", "alice"] {
            assert!(matches!(
                auth.rename_account(&Actor::cli(), "bob", taken),
                Err(AuthError::Exists {
                    what: "account",
                    ..
                })
            ));
        }
        for bad in ["**", ".x", "a/b", "", "x y"] {
            assert!(matches!(
                auth.rename_account(&Actor::cli(), "bob", bad),
                Err(AuthError::Invalid(_))
            ));
        }
        // Nothing moved.
        assert!(dir.path().join("files/bob").is_dir());
        // A change of case of one's own name is not a clash.
        auth.rename_account(&Actor::cli(), "bob", "Bob").unwrap();
        assert!(dir.path().join("files/Bob").is_dir());
    }

    #[test]
    fn a_bad_stored_name_renamed_can_log_in() {
        let (auth, _clock, dir) = core();
        add(&auth, "tmp", Role::User);
        // A store from before the alphabet: the name `**`, home `_.`.
        auth.store
            .write(|tx| {
                let mut a = load_account(tx, "tmp")?;
                a.name = "**".into();
                tx.remove(ACCOUNTS, "tmp")?;
                tx.put(ACCOUNTS, "**", &a)?;
                move_key(tx, PASSWORDS, "tmp", "**")?;
                Ok::<_, AuthError>(())
            })
            .unwrap();
        std::fs::create_dir_all(dir.path().join("files/_.")).unwrap();
        std::fs::write(dir.path().join("files/_./kept"), b"1").unwrap();
        assert!(!matches!(
            Login::new("**", ip(), Protocol::Https).password(&auth, Method::Api, PW),
            Step::Granted(_)
        ));
        auth.rename_account(&admin("owner", Role::SystemAdmin), "**", "stars")
            .unwrap();
        assert!(matches!(
            Login::new("stars", ip(), Protocol::Https).password(&auth, Method::Api, PW),
            Step::Granted(_)
        ));
        assert!(dir.path().join("files/stars/kept").exists());
    }

    #[test]
    fn only_a_system_admin_renames_a_system_admin_and_tokens_rename_nothing() {
        let (auth, _clock, _dir) = core();
        add(&auth, "adam", Role::Admin);
        add(&auth, "bob", Role::User);
        let adam = admin("adam", Role::Admin);
        assert!(matches!(
            auth.rename_account(&adam, "owner", "boss"),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(
            auth.rename_account(&admin("bob", Role::User), "bob", "rob"),
            Err(AuthError::Forbidden(_))
        ));
        let token = Actor {
            access_token: Some("t".into()),
            ..admin("owner", Role::SystemAdmin)
        };
        assert!(matches!(
            auth.rename_account(&token, "bob", "rob"),
            Err(AuthError::TokenCannotManageCredentials)
        ));
        auth.rename_account(&adam, "bob", "rob").unwrap();
        // The owner renamed: the box knows its owner by the new name.
        auth.rename_account(&admin("owner", Role::SystemAdmin), "owner", "boss")
            .unwrap();
        assert_eq!(auth.owner(&Actor::cli()).unwrap().as_deref(), Some("boss"));
    }

    #[test]
    fn an_existing_target_folder_or_a_link_refuses_with_nothing_changed() {
        let (auth, _clock, dir) = core();
        add(&auth, "bob", Role::User);
        let files = dir.path().join("files");
        std::fs::create_dir_all(files.join("bob")).unwrap();
        std::fs::create_dir_all(files.join("rob")).unwrap();
        assert!(matches!(
            auth.rename_account(&Actor::cli(), "bob", "rob"),
            Err(AuthError::Exists {
                what: "home folder",
                ..
            })
        ));
        std::os::unix::fs::symlink("/", files.join("eve")).unwrap();
        std::fs::remove_dir(files.join("bob")).unwrap();
        std::os::unix::fs::symlink("/", files.join("bob")).unwrap();
        assert!(matches!(
            auth.rename_account(&Actor::cli(), "bob", "bobby"),
            Err(AuthError::Invalid(_))
        ));
        assert!(auth.account(&Actor::cli(), "bob").is_ok());
        assert!(!files.join("bobby").exists());
        // An explicit home stays where it is.
        set_home(&auth, "bob", "shared/bob");
        let v = auth.rename_account(&Actor::cli(), "bob", "bobby").unwrap();
        assert_eq!(v.home_folder, "shared/bob");
        // A folder that holds another account's home does not move.
        add(&auth, "team", Role::User);
        add(&auth, "carl", Role::User);
        set_home(&auth, "carl", "team/carl");
        std::fs::create_dir_all(files.join("team/carl")).unwrap();
        let err = auth
            .rename_account(&Actor::cli(), "team", "crew")
            .unwrap_err();
        assert!(err.to_string().contains("\"carl\""), "{err}");
        assert!(files.join("team/carl").is_dir() && !files.join("crew").exists());
    }

    #[test]
    fn locks_follow_the_name() {
        let (auth, _clock, _dir) = core();
        add(&auth, "bob", Role::User);
        for _ in 0..5 {
            let _ = Login::new("bob", ip(), Protocol::Https).password(&auth, Method::Api, "wrong");
        }
        assert_eq!(auth.account(&Actor::cli(), "bob").unwrap().locked.len(), 1);
        let v = auth.rename_account(&Actor::cli(), "bob", "rob").unwrap();
        assert_eq!(v.locked.len(), 1, "a rename is not an unlock");
    }
}
