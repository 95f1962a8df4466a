use super::*;
use crate::audit;
use crate::clock::ManualClock;
use crate::store::Read;
use std::sync::Arc;

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

/// A new user `bob`, with `password` if given.
fn bob(password: Option<&str>) -> accounts::NewAccount {
    accounts::NewAccount {
        name: "bob".into(),
        role: Role::User,
        group: None,
        password: password.map(|p| zeroize::Zeroizing::new(p.into())),
        home: None,
        public_keys: vec![],
    }
}

/// What a core made with one random source: the claim code, a password
/// hash (its salt), an access token, a TOTP seed and the recovery codes.
fn secrets_made_with(seed: u64) -> Vec<String> {
    use crate::clock::Clock;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_795_392_000);
    let auth = test_core(dir.path(), clock.clone(), None)
        .with_rng(Arc::new(crate::random::SeededRng::new(seed)));
    let cli = Actor::cli();
    let claim = auth.claim_code(&cli).unwrap().unwrap().to_string();
    auth.create_account(&cli, bob(Some("correct-horse-battery-staple-9")))
        .unwrap();
    let hash = auth
        .store
        .read(|r| r.get(PASSWORDS, "bob"))
        .unwrap()
        .unwrap()
        .hash;
    let token = auth
        .create_token(&cli, "bob", "backup", None, Default::default())
        .unwrap();
    let start = auth.totp_start(&cli, "bob", None, None).unwrap();
    let seed = data_encoding::BASE32_NOPAD
        .decode(start.secret.as_bytes())
        .unwrap();
    let params = totp::Params::from(&totp::TotpConfig::default());
    let code = params.code_at_step(&seed, clock.now() / 30);
    let recovery = auth.totp_confirm(&cli, "bob", &code).unwrap();
    let mut made = vec![
        claim,
        hash,
        token.value.to_string(),
        start.secret.to_string(),
    ];
    made.extend(recovery.0.iter().map(|c| c.to_string()));
    made
}

#[test]
fn every_secret_comes_from_the_random_source_handed_in() {
    let one = secrets_made_with(1);
    assert_eq!(one, secrets_made_with(1), "one seed, the same secrets");
    let two = secrets_made_with(2);
    assert_eq!(one.len(), two.len());
    for (a, b) in one.iter().zip(&two) {
        assert_ne!(a, b, "another seed, other secrets");
    }
    // The exact values follow from the stream: the claim code takes the
    // first block, the password's salt the second, the token's id and
    // secret the next two.
    let stream = crate::random::SeededRng::new(1);
    let stream: &dyn crate::random::Rng = &stream;
    let _claim = stream.bytes::<12>().unwrap();
    let salt = stream.bytes::<16>().unwrap();
    let id = data_encoding::HEXLOWER.encode(&stream.bytes::<6>().unwrap());
    let secret = data_encoding::BASE64URL_NOPAD.encode(&stream.bytes::<32>().unwrap());
    let salt = data_encoding::BASE64_NOPAD.encode(&salt);
    assert!(one[1].contains(&format!("${salt}$")), "{} {salt}", one[1]);
    assert_eq!(one[2], format!("cft_{id}_{secret}"));
}

#[test]
fn a_failing_random_source_is_an_internal_error() {
    let (auth, _dir) = core();
    let auth = auth.with_rng(Arc::new(crate::random::FailingRng));
    let cli = Actor::cli();
    let internal = |e: AuthError| {
        assert!(matches!(e, AuthError::Internal(_)), "{e:?}");
        assert!(e.to_string().contains("no randomness available"), "{e}");
    };
    internal(auth.claim_code(&cli).unwrap_err());
    auth.create_account(&cli, bob(None)).unwrap();
    internal(
        auth.create_token(&cli, "bob", "backup", None, Default::default())
            .unwrap_err(),
    );
    internal(auth.totp_start(&cli, "bob", None, None).unwrap_err());
}
