use super::*;
use crate::audit;
use crate::clock::ManualClock;

fn core() -> (Auth, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let auth = test_core(dir.path(), ManualClock::new(1_795_392_000), None);
    (auth, dir)
}

fn remote(role: Role) -> Actor {
    Actor {
        account: Some((format!("{role}-account"), role)),
        protocol: "https",
        address: None,
        access_token: None,
    }
}

#[test]
fn administrative_reads_are_decided_by_the_core() {
    let (auth, _dir) = core();
    let filter = audit::Filter::default();
    let user = remote(Role::User);
    let admin = remote(Role::Admin);
    let owner = remote(Role::SystemAdmin);
    let user_token = Actor {
        access_token: Some("t0".into()),
        ..user.clone()
    };
    for actor in [&user, &user_token] {
        assert!(matches!(
            auth.audit_log(actor, &filter),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(
            auth.policy_for(actor),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(
            auth.groups_for(actor),
            Err(AuthError::Forbidden(_))
        ));
    }
    for actor in [&admin, &owner, &Actor::cli()] {
        auth.audit_log(actor, &filter).unwrap();
        auth.policy_for(actor).unwrap();
        auth.groups_for(actor).unwrap();
    }
    fn refused<T>(answer: Result<T, AuthError>) -> bool {
        matches!(answer, Err(AuthError::Forbidden(_)))
    }
    for actor in [&user, &admin] {
        assert!(refused(auth.counts(actor)));
        assert!(refused(auth.owner(actor)));
        assert!(refused(auth.claim_code(actor)));
        assert!(refused(auth.console_pin_is_set(actor)));
        assert!(refused(actor.may_administer_box()));
    }
    for actor in [&owner, &Actor::cli()] {
        auth.counts(actor).unwrap();
        auth.owner(actor).unwrap();
        auth.claim_code(actor).unwrap();
        auth.console_pin_is_set(actor).unwrap();
        actor.may_administer_box().unwrap();
    }
    // What a user's own security page shows of the policy is read for
    // the caller's own account, never another's; the local operator
    // has no account and gets none.
    let policy = policy::Policy::default();
    auth.create_account(
        &Actor::cli(),
        accounts::NewAccount {
            name: "plain".into(),
            role: Role::User,
            group: None,
            password: None,
            home: None,
            public_keys: vec![],
        },
    )
    .unwrap();
    let plain = Actor {
        account: Some(("plain".into(), Role::User)),
        ..user.clone()
    };
    let own = auth.own_sign_in(&plain).unwrap();
    assert!(own.may_change_password && !own.mfa_required);
    assert_eq!(own.password_min_length, policy.password.min_length);
    assert!(refused(auth.own_sign_in(&Actor::cli())));
    // A token session is refused credentials, not administration.
    let admin_token = Actor {
        access_token: Some("t1".into()),
        ..admin
    };
    admin_token.may_administer_accounts().unwrap();
    auth.audit_log(&admin_token, &filter).unwrap();
}
