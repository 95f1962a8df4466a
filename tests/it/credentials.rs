//! Changing credentials: what a caller authenticated by an access token is
//! refused, the code that replacing or re-issuing a second factor needs,
//! and the lockout that counts wrong current passwords and codes.

use coffer::audit::{Event, Filter};
use coffer::auth::accounts::AccountChange;
use coffer::auth::totp::CodeError;
use coffer::auth::{Actor, AuthError, Method, Protocol, Role};

use crate::harness::*;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop";

/// `name` acting for itself from 192.0.2.7 over HTTPS, as a password
/// session would.
fn own(name: &str) -> Actor {
    Actor {
        account: Some((name.to_string(), Role::User)),
        protocol: "https",
        address: Some(ip("192.0.2.7")),
        access_token: None,
    }
}

fn is_token_refusal(r: Result<impl std::fmt::Debug, AuthError>) -> bool {
    matches!(r, Err(AuthError::TokenCannotManageCredentials))
}

/// Details of the audit events of `name` with this event, newest first.
fn details(b: &Box, name: &str, event: Event) -> Vec<String> {
    b.auth
        .audit_log(&coffer::auth::Actor::cli(), &Filter::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.event == event && r.account.as_deref() == Some(name))
        .map(|r| r.detail)
        .collect()
}

#[test]
fn a_token_session_manages_no_credential() {
    let b = Box::new();
    b.user("bob", Role::User);
    let narrow = b
        .auth
        .create_token(
            &Actor::cli(),
            "bob",
            "web, one day",
            Some(T0 + 86_400),
            [Protocol::Https].into(),
        )
        .unwrap();
    let session = granted(b.login(
        "bob",
        "192.0.2.7",
        Protocol::Https,
        Method::Api,
        &narrow.value,
    ));
    let by_token = Actor::session(&session);
    assert!(by_token.access_token.is_some());
    assert!(is_token_refusal(by_token.may_manage_credentials()));

    // Tokens: neither minted, listed nor revoked.
    assert!(is_token_refusal(b.auth.create_token(
        &by_token,
        "bob",
        "forever",
        None,
        Default::default()
    )));
    assert!(is_token_refusal(b.auth.tokens(&by_token, Some("bob"))));
    assert!(is_token_refusal(
        b.auth.revoke_token(&by_token, &narrow.info.id)
    ));
    // TOTP and recovery codes.
    assert!(is_token_refusal(
        b.auth.totp_start(&by_token, "bob", None, None)
    ));
    assert!(is_token_refusal(
        b.auth.totp_confirm(&by_token, "bob", "123456")
    ));
    assert!(is_token_refusal(
        b.auth.regenerate_recovery_codes(&by_token, "bob", None)
    ));
    assert!(is_token_refusal(b.auth.mfa_reset(&by_token, "bob", None)));
    // Password and public keys.
    assert!(is_token_refusal(b.auth.set_password(
        &by_token,
        "bob",
        "another-good-passphrase-7",
        Some(PASSWORD)
    )));
    assert!(is_token_refusal(
        b.auth.add_public_key(&by_token, "bob", ED25519)
    ));
    // Nothing was written: one token, no enrolment, the old password.
    assert_eq!(b.auth.tokens(&Actor::cli(), Some("bob")).unwrap().len(), 1);
    assert!(!b.auth.account(&Actor::cli(), "bob").unwrap().mfa.enrolled);
    granted(b.login("bob", "192.0.2.7", Protocol::Https, Method::Form, PASSWORD));
    // The same account logged in with its password may.
    let by_password = granted(b.login("bob", "192.0.2.7", Protocol::Https, Method::Form, PASSWORD));
    let actor = Actor::session(&by_password);
    assert_eq!(actor.access_token, None);
    b.auth
        .create_token(&actor, "bob", "laptop", None, Default::default())
        .unwrap();
}

#[test]
fn an_administrator_token_changes_no_credential_of_another_account() {
    let b = Box::new();
    b.user("bob", Role::User);
    let t = b
        .auth
        .create_token(
            &Actor::cli(),
            "owner",
            "automation",
            None,
            Default::default(),
        )
        .unwrap();
    let session = granted(b.login("owner", "192.0.2.7", Protocol::Https, Method::Api, &t.value));
    let by_token = Actor::session(&session);
    assert!(is_token_refusal(b.auth.create_token(
        &by_token,
        "bob",
        "x",
        None,
        Default::default()
    )));
    assert!(is_token_refusal(b.auth.mfa_reset(&by_token, "bob", None)));
    // A PATCH with a password or keys is refused before any write.
    let change = AccountChange {
        read_only: Some(true),
        ..Default::default()
    };
    assert!(is_token_refusal(b.auth.update_account_fully(
        &by_token,
        "bob",
        change,
        Some("another-good-passphrase-7"),
        None,
        None
    )));
    assert!(
        !b.auth
            .account(&Actor::cli(), "bob")
            .unwrap()
            .account
            .read_only
    );
    // Account settings are no credential.
    let change = AccountChange {
        read_only: Some(true),
        ..Default::default()
    };
    b.auth
        .update_account_fully(&by_token, "bob", change, None, None, None)
        .unwrap();
}

#[test]
fn replacing_totp_needs_a_current_code_used_once() {
    let b = Box::new();
    b.user("bob", Role::User);
    let seed = b.enrol("bob");
    let bob = own("bob");
    // Without a code, with a wrong one: refused, the wrong one audited.
    assert!(matches!(
        b.auth.totp_start(&bob, "bob", None, None),
        Err(AuthError::Invalid(_))
    ));
    let right = b.code(&seed);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert!(matches!(
        b.auth.totp_start(&bob, "bob", None, Some(wrong)),
        Err(AuthError::Code(CodeError::Wrong))
    ));
    assert_eq!(
        details(&b, "bob", Event::CodeRejected),
        ["wrong code (to replace two-factor sign-in)"]
    );
    // The right code starts the replacement; it is audited and consumed.
    b.auth.totp_start(&bob, "bob", None, Some(&right)).unwrap();
    assert_eq!(
        details(&b, "bob", Event::CodeAccepted),
        ["to replace two-factor sign-in"]
    );
    assert!(
        details(&b, "bob", Event::EnrolmentStarted)[0].contains("replaces the active enrolment")
    );
    assert!(matches!(
        b.auth.regenerate_recovery_codes(&bob, "bob", Some(&right)),
        Err(AuthError::Code(CodeError::Replayed))
    ));
    let ask = need_code(b.login("bob", "192.0.2.8", Protocol::Https, Method::Form, PASSWORD));
    denied(ask.code(&b.auth, &right));
    // The local operator and an administrator need no code.
    b.auth.totp_start(&Actor::cli(), "bob", None, None).unwrap();
}

#[test]
fn new_recovery_codes_need_a_code_and_a_recovery_code_is_used_up() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.enrol("bob");
    let bob = own("bob");
    let first = b
        .auth
        .regenerate_recovery_codes(&Actor::cli(), "bob", None)
        .unwrap();
    assert!(matches!(
        b.auth.regenerate_recovery_codes(&bob, "bob", None),
        Err(AuthError::Invalid(_))
    ));
    assert!(matches!(
        b.auth
            .regenerate_recovery_codes(&bob, "bob", Some("aaaa-bbbb-cccc-dddd")),
        Err(AuthError::Code(CodeError::Wrong))
    ));
    let used = first.0[0].to_string();
    let second = b
        .auth
        .regenerate_recovery_codes(&bob, "bob", Some(&used))
        .unwrap();
    assert_eq!(
        details(&b, "bob", Event::RecoveryCodeUsed),
        ["to make new recovery codes"]
    );
    // Used up, and void with the rest of the old set anyway.
    assert!(matches!(
        b.auth.regenerate_recovery_codes(&bob, "bob", Some(&used)),
        Err(AuthError::Code(CodeError::Wrong))
    ));
    b.auth
        .regenerate_recovery_codes(&bob, "bob", Some(&second.0[3]))
        .unwrap();
}

#[test]
fn wrong_current_passwords_lock_like_failed_logins() {
    let b = Box::new();
    b.user("bob", Role::User);
    let bob = own("bob");
    let new = "another-good-passphrase-7";
    for i in 0..5 {
        let err = b
            .auth
            .set_password(&bob, "bob", new, Some("wrong guess"))
            .unwrap_err();
        assert!(matches!(err, AuthError::Forbidden(_)), "guess {i}: {err}");
    }
    assert_eq!(details(&b, "bob", Event::LoginFailed).len(), 5);
    assert!(details(&b, "bob", Event::LoginFailed)[0].contains("wrong current password"));
    assert_eq!(details(&b, "bob", Event::AccountLocked).len(), 1);
    // Locked: even the right password is not checked.
    assert!(matches!(
        b.auth.set_password(&bob, "bob", new, Some(PASSWORD)),
        Err(AuthError::Locked { .. })
    ));
    assert!(!details(&b, "bob", Event::LoginWhileLocked).is_empty());
    // It is the login's lock: that address cannot log in either, others can.
    assert!(matches!(
        b.login(
            "bob",
            "192.0.2.7",
            Protocol::Ssh,
            Method::Password,
            PASSWORD
        ),
        coffer::auth::flow::Step::Locked(_)
    ));
    granted(b.login(
        "bob",
        "192.0.2.99",
        Protocol::Ssh,
        Method::Password,
        PASSWORD,
    ));
    // When the lock lifts, the right password works and clears the count.
    b.clock.advance(301);
    b.auth
        .set_password(&bob, "bob", new, Some(PASSWORD))
        .unwrap();
}

#[test]
fn wrong_codes_to_remove_mfa_lock_like_failed_logins() {
    let b = Box::new();
    b.user("bob", Role::User);
    let seed = b.enrol("bob");
    let bob = own("bob");
    let right = b.code(&seed);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        assert!(matches!(
            b.auth.mfa_reset(&bob, "bob", Some(wrong)),
            Err(AuthError::Code(CodeError::Wrong))
        ));
    }
    assert_eq!(details(&b, "bob", Event::CodeRejected).len(), 5);
    assert!(details(&b, "bob", Event::CodeRejected)[0].contains("remove two-factor sign-in"));
    assert_eq!(details(&b, "bob", Event::AccountLocked).len(), 1);
    assert!(matches!(
        b.auth.mfa_reset(&bob, "bob", Some(&right)),
        Err(AuthError::Locked { .. })
    ));
    assert!(b.auth.account(&Actor::cli(), "bob").unwrap().mfa.enrolled);
    b.clock.advance(301);
    let right = b.code(&seed);
    b.auth.mfa_reset(&bob, "bob", Some(&right)).unwrap();
    assert!(!b.auth.account(&Actor::cli(), "bob").unwrap().mfa.enrolled);
}
