//! No secret at rest in clear: after enrolment, recovery codes, tokens and
//! passwords exist, the raw bytes of every file in the data dir (but the data
//! key itself) contain none of them in any usual encoding.

use coffer::auth::flow::Step;
use coffer::auth::{Actor, Method, Protocol, Role};

use crate::harness::*;

fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![secret.to_vec()];
    for enc in [
        &data_encoding::BASE32_NOPAD,
        &data_encoding::BASE32,
        &data_encoding::HEXLOWER,
        &data_encoding::HEXUPPER,
        &data_encoding::BASE64,
        &data_encoding::BASE64URL_NOPAD,
    ] {
        out.push(enc.encode(secret).into_bytes());
    }
    out.push(
        data_encoding::BASE32_NOPAD
            .encode(secret)
            .to_lowercase()
            .into_bytes(),
    );
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() >= 6 && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn raw_files_hold_no_seed_code_token_or_password() {
    let b = Box::new();
    b.user("bob", Role::User);
    let start = b.auth.totp_start(&Actor::cli(), "bob", None, None).unwrap();
    let seed = data_encoding::BASE32_NOPAD
        .decode(start.secret.as_bytes())
        .unwrap();
    let code = params().code_at_step(&seed, b.clock_step());
    let recovery = b.auth.totp_confirm(&Actor::cli(), "bob", &code).unwrap();
    let token = b
        .auth
        .create_token(&Actor::cli(), "bob", "backup", None, Default::default())
        .unwrap();
    // Use a recovery code and the token once, so the store's write paths for both ran.
    b.clock.advance(30);
    match b.login("bob", "192.0.2.9", Protocol::Https, Method::Form, PASSWORD) {
        Step::NeedCode(c) => {
            granted(c.code(&b.auth, &recovery.0[0]));
        }
        other => panic!("{other:?}"),
    }
    granted(b.login(
        "bob",
        "192.0.2.9",
        Protocol::Ssh,
        Method::Password,
        &token.value,
    ));

    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, e) in encodings(&seed).into_iter().enumerate() {
        secrets.push((format!("TOTP seed (encoding {i})"), e));
    }
    secrets.push(("otpauth URI".into(), start.otpauth_uri.as_bytes().to_vec()));
    for c in &recovery.0 {
        secrets.push(("recovery code".into(), c.as_bytes().to_vec()));
        secrets.push((
            "recovery code without dashes".into(),
            c.replace('-', "").into_bytes(),
        ));
    }
    let value = token.value.to_string();
    let secret_part = value.rsplit('_').next().unwrap().to_string();
    secrets.push(("token".into(), value.into_bytes()));
    secrets.push(("token secret".into(), secret_part.into_bytes()));
    secrets.push(("password".into(), PASSWORD.as_bytes().to_vec()));

    // A positive control: public values are found, so the scan does look.
    let public = [token.info.id.as_bytes().to_vec(), b"backup".to_vec()];
    let mut seen_public = 0;
    let mut scanned = 0;
    for entry in std::fs::read_dir(b.auth.store().dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "data-key") || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for (what, needle) in &secrets {
            assert!(
                !contains(&bytes, needle),
                "{what} found in clear in {}",
                path.display()
            );
        }
        seen_public += public.iter().filter(|p| contains(&bytes, p)).count();
        scanned += bytes.len();
    }
    assert_eq!(
        seen_public,
        public.len(),
        "the scan finds what is stored in clear"
    );
    assert!(
        scanned > 10_000,
        "the store file was scanned ({scanned} bytes)"
    );
}
