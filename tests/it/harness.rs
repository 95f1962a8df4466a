//! A core on a temporary data dir with a hand-moved clock and cheap hashing.

use std::net::IpAddr;
use std::sync::Arc;

use coffer::auth::accounts::NewAccount;
use coffer::auth::flow::{Login, Step};
use coffer::auth::totp::{Algorithm, Params};
use coffer::auth::{Actor, Auth, Method, Options, Protocol, Role};
use coffer::clock::ManualClock;
use coffer::seal::DataKey;
use coffer::store::{OpenMode, Store};
use zeroize::Zeroizing;

/// A password every policy accepts.
pub const PASSWORD: &str = "correct-horse-battery-staple-9";
/// Cheap argon2 for tests (the default costs ~20 ms a hash).
pub const CHEAP: &str = "m=64,t=1,p=1";
/// 2026-11-23T00:00:00Z, a multiple of 30 s.
pub const T0: u64 = 1_795_392_000;

pub struct Box {
    pub auth: Auth,
    pub clock: ManualClock,
    pub _dir: tempfile::TempDir,
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

impl Box {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &coffer::auth::SCHEMA).unwrap();
        let (key, _) = DataKey::generate().unwrap();
        let clock = ManualClock::new(T0);
        let auth = Auth::new(
            store,
            key,
            Arc::new(clock.clone()),
            Options::for_data_dir(dir.path()),
        );
        auth.claim(
            &Actor::cli(),
            "owner",
            PASSWORD,
            Some(CHEAP.parse().unwrap()),
        )
        .unwrap();
        Self {
            auth,
            clock,
            _dir: dir,
        }
    }

    pub fn user(&self, name: &str, role: Role) {
        self.auth
            .create_account(
                &Actor::cli(),
                NewAccount {
                    name: name.into(),
                    role,
                    group: None,
                    password: Some(Zeroizing::new(PASSWORD.into())),
                    home: None,
                    public_keys: vec![],
                },
            )
            .unwrap();
    }

    pub fn policy(&self, settings: &[(&str, &str)]) {
        let changes: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.auth.set_policy(&Actor::cli(), &changes).unwrap();
    }

    /// Enrols TOTP for `name`; returns the seed.
    pub fn enrol(&self, name: &str) -> Vec<u8> {
        let start = self
            .auth
            .totp_start(&Actor::cli(), name, None, None)
            .unwrap();
        let seed = data_encoding::BASE32_NOPAD
            .decode(start.secret.as_bytes())
            .unwrap();
        // Confirm with the previous step's code, so the current one is still fresh for tests.
        let code = params().code_at_step(&seed, self.clock_step() - 1);
        self.auth.totp_confirm(&Actor::cli(), name, &code).unwrap();
        seed
    }

    pub fn clock_step(&self) -> u64 {
        coffer::clock::Clock::now(&self.clock) / 30
    }

    /// The code for the current step.
    pub fn code(&self, seed: &[u8]) -> String {
        params().code_at_step(seed, self.clock_step()).to_string()
    }

    pub fn login(
        &self,
        user: &str,
        addr: &str,
        protocol: Protocol,
        method: Method,
        password: &str,
    ) -> Step {
        Login::new(user, ip(addr), protocol).password(&self.auth, method, password)
    }

    pub fn events(&self) -> Vec<coffer::audit::Event> {
        self.auth
            .audit_log(
                &coffer::auth::Actor::cli(),
                &coffer::audit::Filter::default(),
            )
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect()
    }
}

pub fn params() -> Params {
    Params {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    }
}

pub fn granted(step: Step) -> coffer::auth::flow::Session {
    match step {
        Step::Granted(s) => s,
        other => panic!("expected a grant, got {other:?}"),
    }
}

pub fn need_code(step: Step) -> coffer::auth::flow::AwaitCode {
    match step {
        Step::NeedCode(c) => c,
        other => panic!("expected a code request, got {other:?}"),
    }
}

pub fn denied(step: Step) -> coffer::auth::flow::Denied {
    match step {
        Step::Denied(d) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}
