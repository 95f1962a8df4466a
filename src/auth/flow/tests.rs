use super::*;
use crate::audit;
use crate::auth::accounts::{NewAccount, new_group};
use crate::auth::{ACCOUNTS, Actor, AuthError, PASSWORDS};
use crate::clock::ManualClock;
use crate::files::HomeError;
use crate::store::Read;

const PASSWORD: &str = "correct-horse-battery-staple-9";

fn auth(dir: &std::path::Path) -> Auth {
    let clock = ManualClock::new(1_800_000_000);
    let auth = crate::auth::test_core(dir, clock, Some(("owner", PASSWORD)));
    std::fs::create_dir_all(&auth.options.files_root).unwrap();
    auth
}

fn user(auth: &Auth, name: &str, group: Option<&str>, home: Option<&str>) {
    auth.create_account(
        &Actor::cli(),
        NewAccount {
            name: name.into(),
            role: Role::User,
            group: group.map(Into::into),
            password: Some(zeroize::Zeroizing::new(PASSWORD.into())),
            home: home.map(Into::into),
            public_keys: vec![],
        },
    )
    .unwrap();
}

fn login(auth: &Auth, name: &str, password: &str) -> Step {
    Login::new(name, "192.0.2.7".parse().unwrap(), Protocol::Ssh).password(
        auth,
        Method::Password,
        password,
    )
}

fn last_event(auth: &Auth) -> (Event, String) {
    let log = auth
        .audit_log(&Actor::cli(), &audit::Filter::default())
        .unwrap();
    let r = log.first().unwrap();
    (r.event, r.detail.clone())
}

fn denied(step: Step) -> Denied {
    match step {
        Step::Denied(d) => d,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Writes an account under `legacy`, copied from `template`, straight
/// into the store: what a store from before the name rule may hold.
fn plant_legacy(auth: &Auth, template: &str, legacy: &str) {
    auth.store
        .write(|tx| {
            let mut a: Account = tx.get(ACCOUNTS, template)?.unwrap();
            a.name = legacy.to_string();
            tx.put(ACCOUNTS, legacy, &a)?;
            let p = tx.get(PASSWORDS, template)?.unwrap();
            tx.put(PASSWORDS, legacy, &p)?;
            Ok::<_, AuthError>(())
        })
        .unwrap();
}

#[test]
fn a_stored_name_outside_the_alphabet_is_refused_login_with_its_own_event() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth(dir.path());
    user(&auth, "template", None, None);
    for legacy in ["..", "**", ".:", "*", "/", "ACME\\joe", "ünï"] {
        plant_legacy(&auth, "template", legacy);
        // The store still reads it: administrators see it.
        auth.account(&Actor::cli(), legacy).unwrap();
        let d = denied(login(&auth, legacy, PASSWORD));
        assert_eq!(d.reason, DenyReason::NameRefused, "{legacy:?}");
        assert!(d.message.contains("rename"), "{}", d.message);
        let (event, detail) = last_event(&auth);
        assert_eq!(event, Event::LoginNameRefused, "{legacy:?}");
        assert!(detail.contains("rename the account"), "{detail}");
        // A wrong password learns nothing more than for anyone else.
        let d = denied(login(&auth, legacy, "wrong password here"));
        assert_eq!(d.reason, DenyReason::InvalidCredentials);
    }
    // Nothing was created outside the files root on the way.
    assert!(!dir.path().join("files").join("..").join("secrets").exists());
}

#[test]
fn a_stored_home_that_escapes_after_substitution_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth(dir.path());
    user(&auth, "bob", None, None);
    auth.store
        .write(|tx| {
            let mut a: Account = tx.get(ACCOUNTS, "bob")?.unwrap();
            a.home = Some("../..".into());
            tx.put(ACCOUNTS, "bob", &a)?;
            Ok::<_, AuthError>(())
        })
        .unwrap();
    let d = denied(login(&auth, "bob", PASSWORD));
    assert_eq!(d.reason, DenyReason::HomeRefused);
    assert_eq!(last_event(&auth).0, Event::HomeRefused);
}

#[test]
fn a_link_on_the_path_of_a_home_refuses_login_and_session_with_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth(dir.path());
    let files = auth.options.files_root.clone();
    let mut team = new_group("team");
    team.home_template = "team/${USER}".into();
    auth.create_group(&Actor::cli(), team).unwrap();
    user(&auth, "manager", None, Some("team"));
    user(&auth, "bob", Some("team"), None);
    user(&auth, "carol", Some("team"), None);

    // The manager (whose home holds the team's) plants a link where
    // bob's home will be.
    std::fs::create_dir_all(files.join("team")).unwrap();
    std::os::unix::fs::symlink("../..", files.join("team/bob")).unwrap();
    let d = denied(login(&auth, "bob", PASSWORD));
    assert_eq!(d.reason, DenyReason::HomeRefused);
    let (event, detail) = last_event(&auth);
    assert_eq!(event, Event::HomeRefused);
    assert!(detail.contains("symbolic link"), "{detail}");

    // Carol logs in; the link is planted after the login: the session's
    // home does not open, and that is audited too.
    let Step::Granted(s) = login(&auth, "carol", PASSWORD) else {
        panic!("carol");
    };
    assert_eq!(s.home.as_str(), "team/carol");
    std::os::unix::fs::symlink("../..", files.join("team/carol")).unwrap();
    let err = auth.open_home(&s).unwrap_err();
    assert!(matches!(err, HomeError::Link { .. }), "{err}");
    assert!(err.to_string().contains("\"team/carol\""), "{err}");
    assert_eq!(last_event(&auth).0, Event::HomeRefused);

    // A link higher up (the group's folder itself) is refused the same.
    std::fs::remove_file(files.join("team/carol")).unwrap();
    std::fs::rename(files.join("team"), files.join("team-moved")).unwrap();
    std::os::unix::fs::symlink("team-moved", files.join("team")).unwrap();
    let err = auth.open_home(&s).unwrap_err();
    assert!(
        matches!(&err, HomeError::Link { part, .. } if part == "team"),
        "{err}"
    );

    // Without links the home is created and opened.
    std::fs::remove_file(files.join("team")).unwrap();
    let root = auth.open_home(&s).unwrap();
    assert_eq!(root.account(), "carol");
    assert!(files.join("team/carol").is_dir());
}
