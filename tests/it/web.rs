//! The HTTPS front end's state, on the core with a hand-moved clock: session
//! rotation, timeouts, revocation when credentials change, caps, and the
//! first-boot claim code.

use std::sync::Arc;

use coffer::audit::Event;
use coffer::auth::{Actor, Auth, AuthError, Method, Options, Protocol, Role};
use coffer::clock::ManualClock;
use coffer::seal::DataKey;
use coffer::store::{OpenMode, Store};
use coffer::web::session::{Carrier, Found, Limits, Sessions, Stage, Token};

use crate::harness::{Box, CHEAP, PASSWORD, T0, granted, ip};
use coffer::auth::flow::Step;

fn limits() -> Limits {
    Limits {
        idle: 600,
        lifetime: 3600,
        pending: 300,
        max_sessions: 64,
        max_per_account: 3,
        max_anonymous_per_address: 4,
    }
}

fn granted_token(b: &Box, sessions: &Sessions, user: &str) -> Token {
    sessions_after_login(b, sessions, user, PASSWORD)
}

fn now(b: &Box) -> u64 {
    coffer::clock::Clock::now(&b.clock)
}

fn is_granted(found: &Found) -> bool {
    matches!(found, Found::Granted(_))
}

#[test]
fn login_moves_the_session_to_a_new_value_and_the_old_one_is_dead() {
    let b = Box::new();
    let sessions = Sessions::new(limits());
    let (before, _csrf) = sessions.anonymous(ip("10.0.0.1"), "test", now(&b)).unwrap();
    assert!(matches!(
        sessions.find(&b.auth, &before, now(&b)),
        Found::Pending {
            stage: "anonymous",
            ..
        }
    ));
    let taken = sessions.take(&before, now(&b), &b.auth).unwrap();
    assert!(matches!(taken.stage, Stage::Anonymous));
    let session = granted(b.login("owner", "10.0.0.1", Protocol::Https, Method::Form, PASSWORD));
    let after = sessions
        .advance(
            &b.auth,
            Stage::Granted(session),
            Carrier::Cookie,
            ip("10.0.0.1"),
            "test",
            now(&b),
        )
        .unwrap();
    assert_ne!(before, after);
    assert!(matches!(
        sessions.find(&b.auth, &before, now(&b)),
        Found::Nothing
    ));
    assert!(is_granted(&sessions.find(&b.auth, &after, now(&b))));
    assert!(after.expose().starts_with("cws_") && after.expose().len() > 40);
    assert_eq!(format!("{after:?}"), "Token(***)");
}

#[test]
fn sessions_end_when_idle_and_at_their_lifetime() {
    let b = Box::new();
    let sessions = Sessions::new(limits());
    let token = granted_token(&b, &sessions, "owner");
    // Busy: a request every 9 minutes keeps it alive until the lifetime.
    for _ in 0..6 {
        b.clock.advance(540);
        assert!(is_granted(&sessions.find(&b.auth, &token, now(&b))));
    }
    b.clock.advance(540); // 63 minutes after login
    assert!(matches!(
        sessions.find(&b.auth, &token, now(&b)),
        Found::Nothing
    ));
    let idle = granted_token(&b, &sessions, "owner");
    b.clock.advance(601);
    assert!(matches!(
        sessions.find(&b.auth, &idle, now(&b)),
        Found::Nothing
    ));
    assert!(b.events().contains(&Event::SessionEnded));
}

#[test]
fn a_password_change_mfa_change_or_disable_ends_the_accounts_sessions_only() {
    let b = Box::new();
    b.user("alice", Role::User);
    b.user("bob", Role::User);
    let sessions = Sessions::new(limits());
    let alice = granted_token(&b, &sessions, "alice");
    let bob = granted_token(&b, &sessions, "bob");
    b.auth
        .set_password(&Actor::cli(), "alice", "another-long-passphrase-77", None)
        .unwrap();
    assert!(matches!(
        sessions.find(&b.auth, &alice, now(&b)),
        Found::Nothing
    ));
    assert!(is_granted(&sessions.find(&b.auth, &bob, now(&b))));

    b.enrol("bob");
    assert!(matches!(
        sessions.find(&b.auth, &bob, now(&b)),
        Found::Nothing
    ));

    let alice = sessions_after_login(&b, &sessions, "alice", "another-long-passphrase-77");
    b.auth
        .update_account(
            &Actor::cli(),
            "alice",
            coffer::auth::accounts::AccountChange {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(matches!(
        sessions.find(&b.auth, &alice, now(&b)),
        Found::Nothing
    ));
}

fn sessions_after_login(b: &Box, sessions: &Sessions, user: &str, password: &str) -> Token {
    let session = granted(b.login(user, "10.0.0.1", Protocol::Https, Method::Form, password));
    sessions
        .advance(
            &b.auth,
            Stage::Granted(session),
            Carrier::Bearer,
            ip("10.0.0.1"),
            "test",
            now(b),
        )
        .unwrap()
}

#[test]
fn sessions_are_capped_per_account_and_anonymous_ones_per_address() {
    let b = Box::new();
    let sessions = Sessions::new(limits());
    let first = granted_token(&b, &sessions, "owner");
    b.clock.advance(1);
    let later: Vec<Token> = (0..3)
        .map(|_| {
            b.clock.advance(1);
            granted_token(&b, &sessions, "owner")
        })
        .collect();
    assert!(matches!(
        sessions.find(&b.auth, &first, now(&b)),
        Found::Nothing
    ));
    for t in &later {
        assert!(is_granted(&sessions.find(&b.auth, t, now(&b))));
    }
    assert_eq!(sessions.list("owner", None, now(&b), &b.auth).len(), 3);

    let flood: Vec<Token> = (0..20)
        .map(|_| {
            b.clock.advance(1);
            sessions
                .anonymous(ip("192.0.2.9"), "flood", now(&b))
                .unwrap()
                .0
        })
        .collect();
    let alive = flood
        .iter()
        .filter(|t| !matches!(sessions.find(&b.auth, t, now(&b)), Found::Nothing))
        .count();
    assert_eq!(alive, 4);
    // The flood did not touch the signed-in sessions.
    for t in &later {
        assert!(is_granted(&sessions.find(&b.auth, t, now(&b))));
    }
}

#[test]
fn csrf_tokens_are_checked_per_session() {
    let b = Box::new();
    let sessions = Sessions::new(limits());
    let (one, csrf_one) = sessions.anonymous(ip("10.0.0.1"), "a", now(&b)).unwrap();
    let (two, csrf_two) = sessions.anonymous(ip("10.0.0.1"), "b", now(&b)).unwrap();
    assert!(sessions.csrf_ok(&one, &csrf_one));
    assert!(!sessions.csrf_ok(&one, &csrf_two));
    assert!(!sessions.csrf_ok(&two, ""));
    assert!(!sessions.csrf_ok(&Token::presented("cws_unknown"), &csrf_one));
}

#[test]
fn sign_out_by_id_reaches_only_the_owners_sessions() {
    let b = Box::new();
    b.user("alice", Role::User);
    let sessions = Sessions::new(limits());
    let owner = granted_token(&b, &sessions, "owner");
    let alice = granted_token(&b, &sessions, "alice");
    let owner_id = sessions.list("owner", Some(&owner), now(&b), &b.auth)[0]
        .id
        .clone();
    assert!(sessions.list("owner", Some(&owner), now(&b), &b.auth)[0].current);
    assert!(!sessions.end_by_id(&b.auth, "alice", &owner_id));
    assert!(is_granted(&sessions.find(&b.auth, &owner, now(&b))));
    assert!(sessions.end_by_id(&b.auth, "owner", &owner_id));
    assert!(matches!(
        sessions.find(&b.auth, &owner, now(&b)),
        Found::Nothing
    ));
    assert!(sessions.end(&b.auth, &alice, "signed out"));
    assert!(!sessions.end(&b.auth, &alice, "signed out"));
}

fn unclaimed() -> (Auth, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), OpenMode::Create, &coffer::auth::SCHEMA).unwrap();
    let (key, _) = DataKey::generate().unwrap();
    let auth = Auth::new(
        store,
        key,
        Arc::new(ManualClock::new(T0)),
        Options::for_data_dir(dir.path()),
    );
    (auth, dir)
}

fn web_actor() -> Actor {
    Actor {
        account: None,
        protocol: "https",
        address: Some(ip("192.0.2.7")),
        access_token: None,
    }
}

#[test]
fn the_claim_code_is_stable_until_the_claim_and_dead_after_it() {
    let (auth, _dir) = unclaimed();
    let code = auth.claim_code(&Actor::cli()).unwrap().unwrap();
    assert_eq!(auth.claim_code(&Actor::cli()).unwrap().unwrap(), code);
    let cost = Some(CHEAP.parse().unwrap());

    let wrong = auth
        .claim_with_code(&web_actor(), "AAAA-BBBB-CCCC", "owner", PASSWORD, cost)
        .unwrap_err();
    assert!(wrong.to_string().contains("not this box's claim code"));
    assert!(!auth.is_claimed().unwrap());
    let refused = auth
        .audit_log(
            &coffer::auth::Actor::cli(),
            &coffer::audit::Filter::default(),
        )
        .unwrap()
        .into_iter()
        .find(|r| r.event == Event::ClaimRefused)
        .unwrap();
    assert_eq!(refused.address, Some(ip("192.0.2.7")));
    assert!(!refused.detail.contains(&code.to_string()));

    // A weak password is refused and the code survives.
    let weak = auth
        .claim_with_code(&web_actor(), &code.to_string(), "owner", "password", cost)
        .unwrap_err();
    assert!(matches!(weak, AuthError::PasswordRefused(_)), "{weak}");
    assert_eq!(auth.claim_code(&Actor::cli()).unwrap().unwrap(), code);

    let typed = code.to_string().to_lowercase().replace('-', " ");
    auth.claim_with_code(&web_actor(), &typed, "owner", PASSWORD, cost)
        .unwrap();
    assert!(auth.is_claimed().unwrap());
    assert!(auth.claim_code(&Actor::cli()).unwrap().is_none());
    let again = auth
        .claim_with_code(&web_actor(), &code.to_string(), "mallory", PASSWORD, cost)
        .unwrap_err();
    assert!(matches!(again, AuthError::AlreadyClaimed));
}

#[test]
fn claiming_from_the_command_line_kills_the_code_too() {
    let (auth, _dir) = unclaimed();
    let code = auth.claim_code(&Actor::cli()).unwrap().unwrap();
    auth.claim(
        &Actor::cli(),
        "owner",
        PASSWORD,
        Some(CHEAP.parse().unwrap()),
    )
    .unwrap();
    assert!(auth.claim_code(&Actor::cli()).unwrap().is_none());
    assert!(matches!(
        auth.claim_with_code(&web_actor(), &code.to_string(), "x", PASSWORD, None),
        Err(AuthError::AlreadyClaimed)
    ));
}

#[test]
fn the_claim_code_is_not_stored_in_clear() {
    let (auth, dir) = unclaimed();
    let code = auth.claim_code(&Actor::cli()).unwrap().unwrap().to_string();
    drop(auth);
    let raw = std::fs::read(dir.path().join("coffer.redb")).unwrap();
    for needle in [code.clone(), code.replace('-', "")] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the claim code is in the store file"
        );
    }
}

#[test]
fn an_anonymous_flood_from_many_addresses_never_ends_a_login_at_its_code_step() {
    let b = Box::new();
    b.user("bob", Role::User);
    b.enrol("bob");
    let sessions = Sessions::new(limits());
    let signed_in = granted_token(&b, &sessions, "owner");
    let waiting = match b.login("bob", "10.0.0.2", Protocol::Https, Method::Form, PASSWORD) {
        Step::NeedCode(w) => w,
        _ => panic!("bob needs a code"),
    };
    let at_code = sessions
        .advance(
            &b.auth,
            Stage::AwaitCode(waiting),
            Carrier::Cookie,
            ip("10.0.0.2"),
            "bob's browser",
            now(&b),
        )
        .unwrap();
    // Page views from 1,000 addresses of one IPv6 /48, each a new /64:
    // many times the table's 64 places.
    let mut made = 0;
    for i in 0..1000u32 {
        let address = ip(&format!("2001:db8:0:{i:x}::1"));
        if sessions.anonymous(address, "flood", now(&b)).is_ok() {
            made += 1;
        }
    }
    assert_eq!(
        made, 1000,
        "anonymous sessions push out older anonymous ones"
    );
    assert!(matches!(
        sessions.find(&b.auth, &at_code, now(&b)),
        Found::Pending {
            stage: "await_code",
            ..
        }
    ));
    assert!(is_granted(&sessions.find(&b.auth, &signed_in, now(&b))));
    // And the anonymous ones hold at most a quarter of the table.
    assert!(sessions.len() <= 2 + 64 / 4, "{} sessions", sessions.len());
    // One /64 counts as one address for the per-address cap.
    let same_net: Vec<Token> = (0..20u32)
        .map(|i| {
            b.clock.advance(1);
            sessions
                .anonymous(ip(&format!("2001:db8:1:2::{i:x}")), "flood", now(&b))
                .unwrap()
                .0
        })
        .collect();
    let alive = same_net
        .iter()
        .filter(|t| !matches!(sessions.find(&b.auth, t, now(&b)), Found::Nothing))
        .count();
    assert_eq!(alive, 4);
}
