//! A store written by an earlier release keeps working: the data dir in
//! `tests/fixtures/store-0.1.0-totp/` was made by `make_previous_store`
//! below, run with the code as it stood before TOTP codes moved to the
//! totp-rs crate (Coffer's own RFC 4226/6238 code, commit ddcd86b). It holds
//! a key-file seal, three accounts enrolled with the `default` (SHA-1),
//! `work` (SHA-256) and `vault` (SHA-512) configurations, and `expect.txt`:
//! each account's seed and the codes that release computed for it at fixed
//! times. Today's code must open the store, unseal those seeds and accept
//! those codes, once each.
//!
//! Regenerate only on purpose (the point is that the files are old):
//! `COFFER_MAKE_FIXTURE=tests/fixtures/store-0.1.0-totp cargo test --test it
//! previous_store::make_previous_store -- --ignored`.

use std::path::Path;
use std::sync::Arc;

use coffer::auth::accounts::NewAccount;
use coffer::auth::flow::{Login, Step};
use coffer::auth::{Actor, Auth, Method, Options, Protocol, Role};
use coffer::clock::ManualClock;
use coffer::seal::{BackendChoice, SealOptions};
use coffer::store::{OpenMode, Store};
use zeroize::Zeroizing;

use crate::harness::{CHEAP, PASSWORD, T0, granted, ip};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-0.1.0-totp"
);
/// The accounts, the configuration each was enrolled with, and its policy line.
const ACCOUNTS: [(&str, &str, &str); 3] = [
    ("bob", "default", ""),
    ("carol", "work", "issuer=Acme,algorithm=sha256"),
    ("dave", "vault", "issuer=Vault,algorithm=sha512"),
];
/// Times (after the enrolments at T0) the fixture records codes for.
const TIMES: [u64; 3] = [T0 + 3_600, T0 + 86_400 * 365, 4_102_444_800];

fn keyfile() -> SealOptions {
    SealOptions {
        choice: BackendChoice::KeyFile,
        ..SealOptions::default()
    }
}

fn open(dir: &Path, clock: &ManualClock, create: bool) -> Auth {
    let mode = if create {
        OpenMode::Create
    } else {
        OpenMode::Existing
    };
    let store = Store::open(dir, mode, &coffer::auth::SCHEMA).unwrap();
    let (key, _) = coffer::seal::open(dir, &keyfile(), create).unwrap();
    Auth::new(
        store,
        key,
        Arc::new(clock.clone()),
        Options::for_data_dir(dir),
    )
}

#[test]
#[ignore = "writes the fixture; run on purpose with COFFER_MAKE_FIXTURE=DIR"]
fn make_previous_store() {
    let out = std::env::var("COFFER_MAKE_FIXTURE").expect("COFFER_MAKE_FIXTURE=DIR");
    let dir = Path::new(&out);
    let clock = ManualClock::new(T0);
    let auth = open(dir, &clock, true);
    let cli = Actor::cli();
    auth.claim(&cli, "owner", PASSWORD, Some(CHEAP.parse().unwrap()))
        .unwrap();
    let mut expect = String::from("# account seed(base32) time code ...\n");
    for (name, config, line) in ACCOUNTS {
        if !line.is_empty() {
            auth.set_policy(&cli, &[(format!("totp.config.{config}"), line.into())])
                .unwrap();
        }
        auth.create_account(
            &cli,
            NewAccount {
                name: name.into(),
                role: Role::User,
                group: None,
                password: Some(Zeroizing::new(PASSWORD.into())),
                home: None,
                public_keys: vec![],
            },
        )
        .unwrap();
        let start = auth.totp_start(&cli, name, Some(config), None).unwrap();
        let seed = data_encoding::BASE32_NOPAD
            .decode(start.secret.as_bytes())
            .unwrap();
        let params = auth
            .policy_for(&Actor::cli())
            .unwrap()
            .totp_config(Some(config))
            .unwrap()
            .into();
        let params: coffer::auth::totp::Params = params;
        let step = params.step(T0);
        auth.totp_confirm(&cli, name, &params.code_at_step(&seed, step))
            .unwrap();
        expect.push_str(&format!("{name} {}", start.secret.as_str()));
        for time in TIMES {
            let code = params.code_at_step(&seed, params.step(time));
            expect.push_str(&format!(" {time} {}", code.as_str()));
        }
        expect.push('\n');
    }
    drop(auth);
    std::fs::write(dir.join("expect.txt"), expect).unwrap();
}

/// One line of `expect.txt`: an account, its seed, and `(time, code)` pairs.
type Recorded = (String, Vec<u8>, Vec<(u64, String)>);

fn expected() -> Vec<Recorded> {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("expect.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            let seed = data_encoding::BASE32_NOPAD
                .decode(words[1].as_bytes())
                .unwrap();
            let codes = words[2..]
                .chunks(2)
                .map(|c| (c[0].parse().unwrap(), c[1].to_string()))
                .collect();
            (words[0].to_string(), seed, codes)
        })
        .collect()
}

/// A private copy of the fixture (git keeps neither 0600 nor 0700).
fn copy_fixture() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    for file in ["coffer.redb", "data-key"] {
        let to = dir.path().join(file);
        std::fs::copy(Path::new(FIXTURE).join(file), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    dir
}

#[test]
fn seeds_from_the_previous_release_still_give_and_accept_its_codes() {
    let expected = expected();
    assert_eq!(expected.len(), ACCOUNTS.len());
    let dir = copy_fixture();
    let clock = ManualClock::new(T0);
    let auth = open(dir.path(), &clock, false);
    for (time, _) in &expected[0].2 {
        clock.set(*time);
        for (name, seed, codes) in &expected {
            let (_, code) = codes.iter().find(|(t, _)| t == time).unwrap();
            // Today's code computes what the previous release computed...
            let config = ACCOUNTS.iter().find(|a| a.0 == name).unwrap().1;
            let params: coffer::auth::totp::Params = auth
                .policy_for(&Actor::cli())
                .unwrap()
                .totp_config(Some(config))
                .unwrap()
                .into();
            let step = params.step(*time);
            assert_eq!(params.code_at_step(seed, step).as_str(), code, "{name}");
            // ...and a login with the stored, sealed seed accepts it once.
            let login = || {
                Login::new(name, ip("192.0.2.7"), Protocol::Https).password(
                    &auth,
                    Method::Form,
                    PASSWORD,
                )
            };
            match login() {
                Step::NeedCode(c) => {
                    granted(c.code(&auth, code));
                }
                other => panic!("{name} at {time}: {other:?}"),
            }
            match login() {
                Step::NeedCode(c) => assert!(
                    !matches!(c.code(&auth, code), Step::Granted(_)),
                    "{name} at {time}: a replayed code passed"
                ),
                other => panic!("{name} at {time}: {other:?}"),
            }
        }
    }
}
