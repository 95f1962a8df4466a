//! The login flow, driven as a front end would, with an injected clock.

use coffer::audit::Event;
use coffer::auth::accounts::{AccountChange, new_group, parse_nets};
use coffer::auth::flow::{DenyReason, Login, Step};
use coffer::auth::{Actor, Method, Protocol, Role};

use crate::harness::*;

#[test]
fn password_login_without_mfa_is_granted_with_session_details() {
    let b = Box::new();
    b.user("bob", Role::User);
    let s = granted(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        PASSWORD,
    ));
    assert_eq!(s.account, "bob");
    assert_eq!(s.role, Role::User);
    assert_eq!(s.home.as_str(), "bob");
    assert!(s.permissions.write && s.permissions.delete);
    assert_eq!(b.events()[0], Event::LoginGranted);
}

#[test]
fn unknown_user_and_wrong_password_get_the_same_answer() {
    let b = Box::new();
    b.user("bob", Role::User);
    let wrong = denied(b.login("bob", "192.0.2.10", Protocol::Ssh, Method::Password, "nope"));
    let ghost = denied(b.login(
        "ghost",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        PASSWORD,
    ));
    assert_eq!(wrong.reason, DenyReason::InvalidCredentials);
    assert_eq!(wrong, ghost);
    assert_eq!(b.events()[..2], [Event::LoginFailed, Event::LoginFailed]);
}

#[test]
fn totp_login_replay_skew_and_malformed_codes() {
    let b = Box::new();
    b.user("bob", Role::User);
    let seed = b.enrol("bob");
    b.clock.advance(60);
    let ask = need_code(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    assert_eq!(ask.prompt(), "Authentication code:");
    let code = b.code(&seed);
    let s = granted(ask.code(&b.auth, &code));
    assert_eq!(s.second_factor, Some(coffer::auth::mfa::SecondFactor::Totp));

    // The same code again: replayed.
    let ask = need_code(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    let d = denied(ask.code(&b.auth, &code));
    assert_eq!(d.reason, DenyReason::CodeReplayed);
    assert!(d.message.contains("already used"), "{}", d.message);
    assert_eq!(b.events()[0], Event::CodeReplayed);

    // A code two steps old: wrong.
    b.clock.advance(30);
    let old = params().code_at_step(&seed, b.clock_step() - 2);
    let ask = need_code(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    assert_eq!(
        denied(ask.code(&b.auth, &old)).reason,
        DenyReason::WrongCode
    );

    // Malformed codes say what a code looks like.
    for bad in ["12345", "12a456", "123 456", "abcdef"] {
        let ask = need_code(b.login(
            "bob",
            "192.0.2.11",
            Protocol::Ssh,
            Method::KeyboardInteractive,
            PASSWORD,
        ));
        let d = denied(ask.code(&b.auth, bad));
        assert_eq!(d.reason, DenyReason::MalformedCode, "{bad:?}");
        assert!(d.message.contains("6 digits"), "{}", d.message);
        b.auth.unlock(&Actor::cli(), "bob").unwrap();
    }

    // One step ahead (client clock fast) is accepted once.
    let ahead = params().code_at_step(&seed, b.clock_step() + 1);
    let ask = need_code(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    granted(ask.code(&b.auth, &ahead));
    // And now the current step (earlier than the accepted one) is refused as a replay.
    let now = b.code(&seed);
    let ask = need_code(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    assert_eq!(
        denied(ask.code(&b.auth, &now)).reason,
        DenyReason::CodeReplayed
    );
}

#[test]
fn two_logins_racing_with_one_code_only_one_wins() {
    let b = Box::new();
    b.user("bob", Role::User);
    let seed = b.enrol("bob");
    b.clock.advance(60);
    let code = b.code(&seed);
    let first = need_code(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    let second = need_code(b.login("bob", "192.0.2.10", Protocol::Https, Method::Form, PASSWORD));
    let results = std::thread::scope(|s| {
        let a = s.spawn(|| first.code(&b.auth, &code));
        let c = s.spawn(|| second.code(&b.auth, &code));
        [a.join().unwrap(), c.join().unwrap()]
    });
    let wins = results
        .iter()
        .filter(|r| matches!(r, Step::Granted(_)))
        .count();
    assert_eq!(wins, 1, "{results:?}");
}

#[test]
fn password_method_cannot_carry_a_code() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.enrol("bob");
    let d = denied(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        PASSWORD,
    ));
    assert_eq!(d.reason, DenyReason::CodeUnsupported);
    assert!(d.message.contains("keyboard-interactive"), "{}", d.message);
    assert_eq!(b.events()[0], Event::CodeUnsupported);
}

#[test]
fn recovery_codes_work_once_in_place_of_a_code() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.enrol("bob");
    let codes = b
        .auth
        .regenerate_recovery_codes(&Actor::cli(), "bob", None)
        .unwrap();
    let first = codes.0[0].to_string();
    let ask = need_code(b.login("bob", "192.0.2.10", Protocol::Https, Method::Form, PASSWORD));
    let s = granted(ask.code(&b.auth, &first.to_uppercase()));
    assert_eq!(
        s.second_factor,
        Some(coffer::auth::mfa::SecondFactor::RecoveryCode)
    );
    assert!(b.events().contains(&Event::RecoveryCodeUsed));
    let ask = need_code(b.login("bob", "192.0.2.10", Protocol::Https, Method::Form, PASSWORD));
    assert_eq!(
        denied(ask.code(&b.auth, &first)).reason,
        DenyReason::WrongCode
    );
    let view = b.auth.account(&Actor::cli(), "bob").unwrap();
    assert_eq!(view.mfa.recovery_codes_left, 9);
}

#[test]
fn access_tokens_skip_the_code_until_revoked_or_expired() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.enrol("bob");
    let t = b
        .auth
        .create_token(
            &Actor::cli(),
            "bob",
            "backup job",
            Some(T0 + 3600),
            Default::default(),
        )
        .unwrap();
    let s = granted(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        &t.value,
    ));
    assert_eq!(s.token.as_deref(), Some(t.info.id.as_str()));
    assert!(s.second_factor.is_none());
    assert!(b.events().contains(&Event::TokenUsed));

    // Another account's name with bob's token: refused.
    b.user("eve", Role::User);
    let d = denied(b.login(
        "eve",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        &t.value,
    ));
    assert_eq!(d.reason, DenyReason::TokenRefused);

    // Expired.
    b.clock.advance(3600);
    let d = denied(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        &t.value,
    ));
    assert_eq!(d.reason, DenyReason::TokenRefused);

    // Revoked.
    let t2 = b
        .auth
        .create_token(&Actor::cli(), "bob", "rclone", None, Default::default())
        .unwrap();
    granted(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        &t2.value,
    ));
    b.auth.revoke_token(&Actor::cli(), &t2.info.id).unwrap();
    let d = denied(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        &t2.value,
    ));
    assert_eq!(d.reason, DenyReason::TokenRefused);
    assert!(b.events().contains(&Event::TokenRevoked));

    // Scope.
    let scope = [Protocol::Https].into_iter().collect();
    let t3 = b
        .auth
        .create_token(&Actor::cli(), "bob", "web only", None, scope)
        .unwrap();
    let d = denied(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        &t3.value,
    ));
    assert_eq!(d.reason, DenyReason::TokenRefused);
    granted(b.login("bob", "192.0.2.10", Protocol::Https, Method::Api, &t3.value));
}

#[test]
fn tokens_are_revocable_by_their_owner_or_an_admin_only() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.user("eve", Role::User);
    b.user("ada", Role::Admin);
    let t = b
        .auth
        .create_token(&Actor::cli(), "bob", "ci", None, Default::default())
        .unwrap();
    let as_user = |name: &str, role| Actor {
        account: Some((name.to_string(), role)),
        protocol: "https",
        address: Some(ip("192.0.2.1")),
        access_token: None,
    };
    assert!(
        b.auth
            .revoke_token(&as_user("eve", Role::User), &t.info.id)
            .is_err()
    );
    b.auth
        .revoke_token(&as_user("ada", Role::Admin), &t.info.id)
        .unwrap();
    let t = b
        .auth
        .create_token(&Actor::cli(), "bob", "ci", None, Default::default())
        .unwrap();
    b.auth
        .revoke_token(&as_user("bob", Role::User), &t.info.id)
        .unwrap();
}

#[test]
fn lockout_with_an_injected_clock() {
    let b = Box::new();
    b.user("bob", Role::User);
    let attacker = "203.0.113.66";
    for _ in 0..5 {
        denied(b.login("bob", attacker, Protocol::Ssh, Method::Password, "wrong"));
    }
    assert!(b.events().contains(&Event::AccountLocked));
    // The 6th attempt inside the window is refused, even with the right password.
    match b.login("bob", attacker, Protocol::Ssh, Method::Password, PASSWORD) {
        Step::Locked(l) => {
            assert_eq!(l.retry_after, 300);
            assert_eq!(
                l.message(),
                "Too many failed attempts; try again in 5 minutes."
            );
        }
        other => panic!("expected a lock, got {other:?}"),
    }
    assert_eq!(b.events()[0], Event::LoginWhileLocked);
    // Another address still logs in.
    granted(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        PASSWORD,
    ));
    // The lock lifts after its duration.
    b.clock.advance(299);
    assert!(matches!(
        b.login("bob", attacker, Protocol::Ssh, Method::Password, PASSWORD),
        Step::Locked(_)
    ));
    b.clock.advance(1);
    granted(b.login("bob", attacker, Protocol::Ssh, Method::Password, PASSWORD));
    // An admin unlock clears a fresh lock at once.
    for _ in 0..5 {
        denied(b.login("bob", attacker, Protocol::Ssh, Method::Password, "wrong"));
    }
    assert!(matches!(
        b.login("bob", attacker, Protocol::Ssh, Method::Password, PASSWORD),
        Step::Locked(_)
    ));
    assert_eq!(
        b.auth.account(&Actor::cli(), "bob").unwrap().locked.len(),
        1
    );
    b.auth.unlock(&Actor::cli(), "bob").unwrap();
    assert!(b.events().contains(&Event::AccountUnlocked));
    granted(b.login("bob", attacker, Protocol::Ssh, Method::Password, PASSWORD));
}

#[test]
fn wrong_codes_count_towards_the_lock() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.enrol("bob");
    for _ in 0..5 {
        let ask = need_code(b.login(
            "bob",
            "203.0.113.5",
            Protocol::Ssh,
            Method::KeyboardInteractive,
            PASSWORD,
        ));
        denied(ask.code(&b.auth, "000000"));
    }
    assert!(matches!(
        b.login(
            "bob",
            "203.0.113.5",
            Protocol::Ssh,
            Method::KeyboardInteractive,
            PASSWORD
        ),
        Step::Locked(_)
    ));
}

#[test]
fn an_address_spraying_many_names_is_locked_for_all() {
    let b = Box::new();
    let sprayer = "198.51.100.7";
    for i in 0..20 {
        denied(b.login(
            &format!("guess{i}"),
            sprayer,
            Protocol::Ssh,
            Method::Password,
            "123456",
        ));
    }
    assert!(matches!(
        b.login("owner", sprayer, Protocol::Https, Method::Form, PASSWORD),
        Step::Locked(_)
    ));
    granted(b.login(
        "owner",
        "192.0.2.1",
        Protocol::Https,
        Method::Form,
        PASSWORD,
    ));
}

#[test]
fn code_step_expires() {
    let b = Box::new();
    b.user("bob", Role::User);
    let seed = b.enrol("bob");
    let ask = need_code(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    b.clock.advance(301);
    assert_eq!(
        denied(ask.code(&b.auth, &b.code(&seed))).reason,
        DenyReason::Expired
    );
}

#[test]
fn ip_filters_disabled_accounts_and_groups() {
    let b = Box::new();
    b.user("bob", Role::User);
    let cli = Actor::cli();
    let change = AccountChange {
        ip_allow: Some(parse_nets("10.0.0.0/8").unwrap()),
        ..Default::default()
    };
    b.auth.update_account(&cli, "bob", change).unwrap();
    let d = denied(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        PASSWORD,
    ));
    assert_eq!(d.reason, DenyReason::AddressBlocked);
    assert_eq!(b.events()[0], Event::AddressBlocked);
    granted(b.login("bob", "10.1.2.3", Protocol::Ssh, Method::Password, PASSWORD));

    let mut g = new_group("staff");
    g.ip_deny = parse_nets("10.1.0.0/16").unwrap();
    b.auth.create_group(&cli, g.clone()).unwrap();
    let change = AccountChange {
        group: Some(Some("staff".into())),
        ..Default::default()
    };
    b.auth.update_account(&cli, "bob", change).unwrap();
    assert_eq!(
        denied(b.login("bob", "10.1.2.3", Protocol::Ssh, Method::Password, PASSWORD)).reason,
        DenyReason::AddressBlocked
    );
    granted(b.login("bob", "10.2.0.1", Protocol::Ssh, Method::Password, PASSWORD));

    g.enabled = false;
    b.auth.update_group(&cli, g).unwrap();
    assert_eq!(
        denied(b.login("bob", "10.2.0.1", Protocol::Ssh, Method::Password, PASSWORD)).reason,
        DenyReason::Disabled
    );

    let change = AccountChange {
        disabled: Some(true),
        ..Default::default()
    };
    let err = b.auth.update_account(&cli, "owner", change).unwrap_err();
    assert!(
        err.to_string().contains("last enabled system_admin"),
        "{err}"
    );
}

#[test]
fn disabled_account_cannot_log_in_and_blocked_attempts_do_not_reveal_the_password() {
    let b = Box::new();
    b.user("bob", Role::User);
    let change = AccountChange {
        disabled: Some(true),
        ..Default::default()
    };
    b.auth.update_account(&Actor::cli(), "bob", change).unwrap();
    let right = denied(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        PASSWORD,
    ));
    let wrong = denied(b.login("bob", "192.0.2.10", Protocol::Ssh, Method::Password, "nope"));
    assert_eq!(right.reason, DenyReason::Disabled);
    assert_eq!(right.message, wrong.message);
}

#[test]
fn public_key_logins() {
    let b = Box::new();
    b.user("bob", Role::User);
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop";
    b.auth.add_public_key(&Actor::cli(), "bob", line).unwrap();
    let blob = data_encoding::BASE64
        .decode(line.split(' ').nth(1).unwrap().as_bytes())
        .unwrap();
    assert!(b.auth.key_is_authorized("bob", &blob).unwrap());
    assert!(!b.auth.key_is_authorized("owner", &blob).unwrap());
    let login = || Login::new("bob", ip("192.0.2.10"), Protocol::Ssh);
    granted(login().public_key(&b.auth, &blob));
    // Enrolled, and the policy demands key + code: partial success, then the code.
    let seed = b.enrol("bob");
    b.policy(&[("mfa.ssh_key_is_enough", "false")]);
    b.clock.advance(30);
    let ask = need_code(login().public_key(&b.auth, &blob));
    granted(ask.code(&b.auth, &b.code(&seed)));
    // A key that is not the account's.
    assert_eq!(
        denied(login().public_key(&b.auth, b"not a key")).reason,
        DenyReason::InvalidCredentials
    );
}

/// What the flow must answer, for the policy matrix.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Want {
    /// Granted with no code and no offer.
    Grant,
    /// Granted, and offered enrolment.
    Offer,
    /// Asks for a code.
    Code,
    /// Must enrol first (web).
    Enrol,
    /// Refused: must enrol, which this protocol cannot do.
    Refuse,
}

#[test]
fn policy_matrix_asks_for_a_code_exactly_when_it_should() {
    #[derive(Debug, Clone, Copy)]
    enum Setting {
        Allowed,
        Required,
        Exempt,
        SkipPermanently,
    }
    let mut cases = 0;
    for role in Role::ALL {
        for setting in [
            Setting::Allowed,
            Setting::Required,
            Setting::Exempt,
            Setting::SkipPermanently,
        ] {
            for protocol in Protocol::ALL {
                for enrolled in [false, true] {
                    for mfa_protocols in ["ssh,https,ftps", "https"] {
                        let b = Box::new();
                        let name = "member";
                        b.user(name, role);
                        let required = matches!(setting, Setting::Required | Setting::Exempt);
                        let role_name = role.to_string();
                        b.policy(&[
                            (
                                "mfa.required_for",
                                if required { &role_name } else { "none" },
                            ),
                            ("mfa.protocols", mfa_protocols),
                        ]);
                        let change = AccountChange {
                            mfa_exempt: Some(matches!(setting, Setting::Exempt)),
                            mfa_skip: Some(matches!(setting, Setting::SkipPermanently)),
                            ..Default::default()
                        };
                        b.auth.update_account(&Actor::cli(), name, change).unwrap();
                        if enrolled {
                            b.enrol(name);
                        }
                        let applies = mfa_protocols.contains(protocol.as_str());
                        let want = if !applies {
                            Want::Grant
                        } else if enrolled {
                            Want::Code
                        } else {
                            match setting {
                                Setting::Required if protocol == Protocol::Https => Want::Enrol,
                                Setting::Required => Want::Refuse,
                                Setting::Allowed if protocol == Protocol::Https => Want::Offer,
                                Setting::Allowed | Setting::Exempt | Setting::SkipPermanently => {
                                    Want::Grant
                                }
                            }
                        };
                        let method = match protocol {
                            Protocol::Ssh => Method::KeyboardInteractive,
                            _ => Method::Form,
                        };
                        let got = match b.login(name, "192.0.2.10", protocol, method, PASSWORD) {
                            Step::Granted(s) if s.offer_enrolment => Want::Offer,
                            Step::Granted(_) => Want::Grant,
                            Step::NeedCode(_) => Want::Code,
                            Step::MustEnrol(_) => Want::Enrol,
                            Step::Denied(d) if d.reason == DenyReason::EnrolmentRequired => {
                                Want::Refuse
                            }
                            other => panic!("unexpected {other:?}"),
                        };
                        assert_eq!(
                            got, want,
                            "role {role}, {setting:?}, {protocol}, enrolled {enrolled}, mfa.protocols {mfa_protocols}"
                        );
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 3 * 4 * 3 * 2 * 2);
}

#[test]
fn must_enrol_on_the_web_then_granted_with_recovery_codes() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.policy(&[("mfa.required_for", "user")]);
    let enrol = match b.login("bob", "192.0.2.10", Protocol::Https, Method::Form, PASSWORD) {
        Step::MustEnrol(e) => e,
        other => panic!("{other:?}"),
    };
    let start = enrol.start(&b.auth).unwrap();
    assert!(
        start
            .otpauth_uri
            .starts_with("otpauth://totp/Coffer:bob?secret=")
    );
    let seed = data_encoding::BASE32_NOPAD
        .decode(start.secret.as_bytes())
        .unwrap();
    let (enrol, err) = enrol.confirm(&b.auth, "000000").unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
    let (session, codes) = enrol.confirm(&b.auth, &b.code(&seed)).unwrap();
    assert_eq!(session.account, "bob");
    assert_eq!(codes.0.len(), 10);
    // The confirming code cannot be replayed for a login.
    let ask = need_code(b.login("bob", "192.0.2.10", Protocol::Https, Method::Form, PASSWORD));
    assert_eq!(
        denied(ask.code(&b.auth, &b.code(&seed))).reason,
        DenyReason::CodeReplayed
    );
}

#[test]
fn users_cannot_administer_and_admins_cannot_touch_the_owner() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.user("ada", Role::Admin);
    let bob = Actor {
        account: Some(("bob".into(), Role::User)),
        protocol: "https",
        address: None,
        access_token: None,
    };
    let ada = Actor {
        account: Some(("ada".into(), Role::Admin)),
        protocol: "https",
        address: None,
        access_token: None,
    };
    assert!(b.auth.accounts(&bob).is_err());
    assert!(b.auth.unlock(&bob, "ada").is_err());
    assert!(
        b.auth
            .set_policy(&ada, &[("mfa.allowed".into(), "false".into())])
            .is_err()
    );
    assert!(b.auth.mfa_reset(&ada, "owner", None).is_err());
    let promote = AccountChange {
        role: Some(Role::SystemAdmin),
        ..Default::default()
    };
    assert!(b.auth.update_account(&ada, "bob", promote).is_err());
    // bob may choose "don't ask again" for himself, but nothing else.
    let skip = AccountChange {
        mfa_skip: Some(true),
        ..Default::default()
    };
    b.auth.update_account(&bob, "bob", skip).unwrap();
    assert!(b.events().contains(&Event::EnrolmentSkipped));
    let exempt = AccountChange {
        mfa_exempt: Some(true),
        ..Default::default()
    };
    assert!(b.auth.update_account(&bob, "bob", exempt).is_err());
}

#[test]
fn password_changes_follow_policy_and_history() {
    let b = Box::new();
    b.user("bob", Role::User);
    let bob = Actor {
        account: Some(("bob".into(), Role::User)),
        protocol: "https",
        address: None,
        access_token: None,
    };
    let err = b
        .auth
        .set_password(&bob, "bob", "short", Some(PASSWORD))
        .unwrap_err();
    assert!(err.to_string().contains("at least 11 characters"), "{err}");
    let err = b
        .auth
        .set_password(&bob, "bob", PASSWORD, Some(PASSWORD))
        .unwrap_err();
    assert!(err.to_string().contains("last 5 passwords"), "{err}");
    let err = b
        .auth
        .set_password(&bob, "bob", "another-good-passphrase-7", Some("wrong"))
        .unwrap_err();
    assert!(err.to_string().contains("current password"), "{err}");
    b.auth
        .set_password(&bob, "bob", "another-good-passphrase-7", Some(PASSWORD))
        .unwrap();
    granted(b.login(
        "bob",
        "192.0.2.10",
        Protocol::Https,
        Method::Form,
        "another-good-passphrase-7",
    ));
    denied(b.login("bob", "192.0.2.10", Protocol::Https, Method::Form, PASSWORD));
    // Back to the first one: still in the history.
    let err = b
        .auth
        .set_password(&Actor::cli(), "bob", PASSWORD, None)
        .unwrap_err();
    assert!(err.to_string().contains("last 5 passwords"), "{err}");
    // The group may forbid changing one's own password.
    let mut g = new_group("kiosk");
    g.may_change_password = false;
    b.auth.create_group(&Actor::cli(), g).unwrap();
    let change = AccountChange {
        group: Some(Some("kiosk".into())),
        ..Default::default()
    };
    b.auth.update_account(&Actor::cli(), "bob", change).unwrap();
    let err = b
        .auth
        .set_password(
            &bob,
            "bob",
            "third-good-passphrase-55",
            Some("another-good-passphrase-7"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("may not change"), "{err}");
}

#[test]
fn home_folder_template_and_permissions_from_the_group() {
    let b = Box::new();
    let mut g = new_group("guests");
    g.home_template = "guests/${USER}".into();
    g.read_only = true;
    b.auth.create_group(&Actor::cli(), g).unwrap();
    b.auth
        .create_account(
            &Actor::cli(),
            coffer::auth::accounts::NewAccount {
                name: "joe@acme".into(),
                role: Role::User,
                group: Some("guests".into()),
                password: Some(zeroize::Zeroizing::new(PASSWORD.into())),
                home: None,
                public_keys: vec![],
            },
        )
        .unwrap();
    let s = granted(b.login(
        "joe@acme",
        "192.0.2.10",
        Protocol::Ssh,
        Method::Password,
        PASSWORD,
    ));
    assert_eq!(s.home.as_str(), "guests/joe@acme");
    assert!(!s.permissions.write && !s.permissions.delete);
}

#[test]
fn account_names_are_checked_and_unique_regardless_of_case() {
    let b = Box::new();
    b.user("alice", Role::User);
    let new = |name: &str| coffer::auth::accounts::NewAccount {
        name: name.into(),
        role: Role::User,
        group: None,
        password: Some(zeroize::Zeroizing::new(PASSWORD.into())),
        home: None,
        public_keys: vec![],
    };
    let err = b
        .auth
        .create_account(&Actor::cli(), new("Alice"))
        .unwrap_err();
    assert!(
        matches!(&err, coffer::auth::AuthError::Exists { name, .. } if name == "alice"),
        "{err}"
    );
    assert!(
        err.to_string().contains("\"alice\" already exists"),
        "{err}"
    );
    // Names whose folder would be the data dir or the files root.
    for bad in ["..", "**", "//", ".:", "*", "/", "?", ".alice", "ACME\\joe"] {
        let err = b.auth.create_account(&Actor::cli(), new(bad)).unwrap_err();
        assert!(
            matches!(err, coffer::auth::AuthError::Invalid(_)),
            "{bad:?}: {err}"
        );
    }
    // An administrator's own home for an account is checked as well.
    let mut escaping = new("bob");
    escaping.home = Some("../..".into());
    assert!(b.auth.create_account(&Actor::cli(), escaping).is_err());
}

#[test]
fn a_token_used_many_times_a_minute_is_recorded_once_a_minute() {
    let b = Box::new();
    b.user("bob", Role::User);
    let t = b
        .auth
        .create_token(&Actor::cli(), "bob", "sync", None, Default::default())
        .unwrap();
    let uses = |b: &Box| {
        b.events()
            .iter()
            .filter(|e| **e == Event::TokenUsed)
            .count()
    };
    let last_used = |b: &Box| {
        b.auth
            .tokens(&Actor::cli(), Some("bob"))
            .unwrap()
            .into_iter()
            .find(|i| i.id == t.info.id)
            .and_then(|i| i.last_used)
    };
    for _ in 0..50 {
        granted(b.login("bob", "192.0.2.10", Protocol::Https, Method::Api, &t.value));
        b.clock.advance(1);
    }
    // 50 requests in 50 s: one use on record, at the first.
    assert_eq!(uses(&b), 1);
    assert_eq!(last_used(&b), Some(T0));
    b.clock.advance(10);
    granted(b.login("bob", "192.0.2.10", Protocol::Https, Method::Api, &t.value));
    assert_eq!(uses(&b), 2);
    assert_eq!(last_used(&b), Some(T0 + 60));
    // A failure from an address is still cleared by the next use from there.
    denied(b.login(
        "bob",
        "192.0.2.11",
        Protocol::Https,
        Method::Api,
        "wrong password",
    ));
    granted(b.login("bob", "192.0.2.11", Protocol::Https, Method::Api, &t.value));
    assert_eq!(uses(&b), 3);
}

fn locked(step: Step) -> coffer::auth::flow::Locked {
    match step {
        Step::Locked(l) => l,
        other => panic!("expected a lock, got {other:?}"),
    }
}

#[test]
fn wrong_codes_spread_over_many_addresses_lock_code_entry_for_the_account() {
    let b = Box::new();
    b.user("bob", Role::User);
    let seed = b.enrol("bob");
    let codes = b
        .auth
        .regenerate_recovery_codes(&Actor::cli(), "bob", None)
        .unwrap();
    b.clock.advance(60);
    // Ten wrong codes, each from its own address: no address gets near its
    // own limit of five.
    for i in 0..10 {
        let from = format!("2001:db8:{i}::1");
        let ask = need_code(b.login(
            "bob",
            &from,
            Protocol::Ssh,
            Method::KeyboardInteractive,
            PASSWORD,
        ));
        assert_eq!(
            denied(ask.code(&b.auth, "000000")).reason,
            DenyReason::WrongCode
        );
    }
    assert!(b.events().contains(&Event::CodeEntryLocked));
    let view = b.auth.account(&Actor::cli(), "bob").unwrap();
    assert_eq!(view.code_entry_locked_until, Some(T0 + 60 + 900));
    assert!(view.locked.is_empty());
    let locks = b.auth.locks(&Actor::cli()).unwrap();
    assert_eq!(locks.code_entry, vec![("bob".to_string(), T0 + 60 + 900)]);

    // From a fresh address the password is still asked and checked (the
    // answer to it does not change), but no code is looked at: neither
    // the right one nor a recovery code.
    let fresh = "192.0.2.44";
    let ask = need_code(b.login(
        "bob",
        fresh,
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    let l = locked(ask.code(&b.auth, &b.code(&seed)));
    assert_eq!(l.retry_after, 900);
    assert_eq!(b.events()[0], Event::LoginWhileLocked);
    let ask = need_code(b.login("bob", fresh, Protocol::Https, Method::Form, PASSWORD));
    locked(ask.code(&b.auth, codes.0[0].as_ref()));
    // A wrong password from there is refused as before.
    assert_eq!(
        denied(b.login(
            "bob",
            fresh,
            Protocol::Ssh,
            Method::KeyboardInteractive,
            "wrong"
        ))
        .reason,
        DenyReason::InvalidCredentials
    );
    // Other accounts are untouched.
    granted(b.login("owner", fresh, Protocol::Https, Method::Form, PASSWORD));

    // The owner clears it with `unlock NAME`.
    b.auth.unlock(&Actor::cli(), "bob").unwrap();
    assert_eq!(
        b.auth
            .account(&Actor::cli(), "bob")
            .unwrap()
            .code_entry_locked_until,
        None
    );
    let ask = need_code(b.login(
        "bob",
        fresh,
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    granted(ask.code(&b.auth, &b.code(&seed)));

    // Without an unlock it lifts after 15 minutes.
    for i in 0..10 {
        let from = format!("198.51.100.{}", i + 1);
        let ask = need_code(b.login(
            "bob",
            &from,
            Protocol::Ssh,
            Method::KeyboardInteractive,
            PASSWORD,
        ));
        denied(ask.code(&b.auth, "000000"));
    }
    b.clock.advance(899);
    let ask = need_code(b.login(
        "bob",
        fresh,
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    locked(ask.code(&b.auth, &b.code(&seed)));
    b.clock.advance(1);
    let ask = need_code(b.login(
        "bob",
        fresh,
        Protocol::Ssh,
        Method::KeyboardInteractive,
        PASSWORD,
    ));
    granted(ask.code(&b.auth, &b.code(&seed)));
}

#[test]
fn unknown_names_get_the_same_answers_as_real_ones_until_locked() {
    let b = Box::new();
    b.user("bob", Role::User);
    let answers = |name: &str, from: &str| -> Vec<String> {
        (0..7)
            .map(
                |_| match b.login(name, from, Protocol::Https, Method::Form, "wrong guess 1") {
                    Step::Denied(d) => format!("denied: {}", d.message),
                    Step::Locked(l) => format!("locked: {}", l.message()),
                    other => panic!("{other:?}"),
                },
            )
            .collect()
    };
    let real = answers("bob", "203.0.113.1");
    let ghost = answers("ghost", "203.0.113.2");
    assert_eq!(real, ghost);
    assert!(real[4].starts_with("denied"), "{real:?}");
    assert!(real[5].starts_with("locked"), "{real:?}");
    // Counted per (name, address): the other address is not locked for ghost.
    assert!(matches!(
        b.login("ghost", "203.0.113.1", Protocol::Https, Method::Form, "x"),
        Step::Denied(_)
    ));
}

#[test]
fn an_address_lock_is_listed_and_cleared_only_by_unlocking_the_address() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.user("ada", Role::Admin);
    let sprayer = "2001:db8:5:6::9";
    for i in 0..20 {
        denied(b.login(
            &format!("guess{i}"),
            sprayer,
            Protocol::Ssh,
            Method::Password,
            "123456",
        ));
    }
    // Another address inside the same /64 is the same address.
    let neighbour = "2001:db8:5:6:ffff::1";
    locked(b.login("bob", neighbour, Protocol::Ssh, Method::Password, PASSWORD));
    let locks = b.auth.locks(&Actor::cli()).unwrap();
    assert_eq!(
        locks.addresses,
        vec![("2001:db8:5:6::/64".to_string(), T0 + 300)]
    );
    // Unlocking an account does not lift it.
    b.auth.unlock(&Actor::cli(), "bob").unwrap();
    locked(b.login("bob", neighbour, Protocol::Ssh, Method::Password, PASSWORD));
    // A user may not unlock an address; an admin may.
    let bob = Actor {
        account: Some(("bob".into(), Role::User)),
        protocol: "https",
        address: None,
        access_token: None,
    };
    assert!(b.auth.unlock_address(&bob, ip(neighbour)).is_err());
    assert!(b.auth.locks(&bob).is_err());
    let ada = Actor {
        account: Some(("ada".into(), Role::Admin)),
        protocol: "https",
        address: None,
        access_token: None,
    };
    assert!(b.auth.unlock_address(&ada, ip(neighbour)).unwrap() > 0);
    assert_eq!(b.events()[0], Event::AddressUnlocked);
    assert!(b.auth.locks(&ada).unwrap().addresses.is_empty());
    granted(b.login("bob", neighbour, Protocol::Ssh, Method::Password, PASSWORD));
}

#[test]
fn users_are_refused_alike_for_other_accounts_that_exist_or_not() {
    let b = Box::new();
    b.user("bob", Role::User);
    let bob = Actor {
        account: Some(("bob".into(), Role::User)),
        protocol: "https",
        address: None,
        access_token: None,
    };
    let forbidden =
        |r: Result<coffer::auth::accounts::AccountView, coffer::auth::AuthError>| match r {
            Err(coffer::auth::AuthError::Forbidden(m)) => m,
            other => panic!("expected forbidden, got {other:?}"),
        };
    assert_eq!(
        forbidden(b.auth.account(&bob, "owner")),
        forbidden(b.auth.account(&bob, "nobody"))
    );
    assert!(matches!(
        b.auth.unlock(&bob, "nobody"),
        Err(coffer::auth::AuthError::Forbidden(_))
    ));
    assert!(matches!(
        b.auth.tokens(&bob, Some("nobody")),
        Err(coffer::auth::AuthError::Forbidden(_))
    ));
    b.auth.account(&bob, "bob").unwrap();
    assert!(matches!(
        b.auth.account(&Actor::cli(), "nobody"),
        Err(coffer::auth::AuthError::NotFound { .. })
    ));
}
