//! The helper's exchange: both ends, with the helper's side answered
//! in-process on a real software TPM (`tests/it/tpm.rs` runs the `coffer-tpm`
//! executable itself).

use super::*;
use crate::seal::swtpm_process::Swtpm;

fn swtpm() -> Swtpm {
    Swtpm::start().unwrap_or_else(|e| panic!("{e}"))
}

fn key(byte: u8) -> DataKey {
    DataKey::from_bytes(Zeroizing::new([byte; 32]))
}

fn seal_request(tcti: &str, flags: u8, key: &[u8]) -> Vec<u8> {
    let mut request = header(OP_SEAL, tcti).unwrap().to_vec();
    request.push(flags);
    request.extend_from_slice(key);
    request
}

/// What the client makes of the helper's reply to `request`.
fn refusal(request: &[u8]) -> String {
    let reply = respond(request);
    assert_eq!(reply.first(), Some(&ERR_REQUEST), "{reply:?}");
    match answer(&reply) {
        Err(SealError::TpmUnavailable(message)) => message,
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn seal_then_unseal_through_the_exchange() {
    let tpm = swtpm();
    for bind_pcr7 in [false, true] {
        let sealed = seal(&tpm.tcti(), &key(7), bind_pcr7).unwrap();
        let parsed = tpm::SealedObject::parse(&sealed).unwrap();
        assert_eq!(parsed.pcr7(), bind_pcr7);
        let back = unseal(&tpm.tcti(), &sealed).unwrap();
        assert_eq!(back.expose(), &[7u8; 32]);
    }
}

#[test]
fn another_tpm_is_reported_as_such() {
    let (one, other) = (swtpm(), swtpm());
    let sealed = seal(&one.tcti(), &key(1), false).unwrap();
    assert!(matches!(
        unseal(&other.tcti(), &sealed),
        Err(SealError::WrongTpm)
    ));
}

#[test]
fn an_unreachable_tpm_is_unavailable() {
    let err = seal("swtpm:host=127.0.0.1,port=1", &key(1), false)
        .err()
        .unwrap();
    assert!(matches!(err, SealError::TpmUnavailable(_)), "{err}");
    let err = seal("no-such-tcti", &key(1), false).err().unwrap();
    assert!(err.to_string().contains("not a TCTI"), "{err}");
}

#[test]
fn a_damaged_sealed_object_is_corrupt_not_sent_to_the_tpm() {
    let tpm = swtpm();
    let mut sealed = seal(&tpm.tcti(), &key(3), false).unwrap();
    // The object's type, inside the marshalled public part.
    let public_start = 16 + 1 + 1 + 2;
    sealed[public_start + 1] ^= 0xff;
    let err = unseal(&tpm.tcti(), &sealed).err().unwrap();
    assert!(matches!(err, SealError::Corrupt(_)), "{err}");
    for garbage in [&b"x"[..], &[0u8; 64][..]] {
        let err = unseal(&tpm.tcti(), garbage).err().unwrap();
        assert!(matches!(err, SealError::Corrupt(_)), "{err}");
    }
    let err = unseal(&tpm.tcti(), &[]).err().unwrap();
    assert!(matches!(err, SealError::Corrupt(_)), "{err}");
    let err = unseal(&tpm.tcti(), &vec![1u8; MAX_BLOB_LEN + 1])
        .err()
        .unwrap();
    assert!(matches!(err, SealError::Corrupt(_)), "{err}");
}

#[test]
fn garbage_requests_are_refused_with_a_reason() {
    let good = seal_request("device:/dev/null", 0, &[1; 32]);
    let (tcti, operation) = parse_request(&good).unwrap();
    assert_eq!(tcti, "device:/dev/null");
    assert!(matches!(
        operation,
        Operation::Seal {
            bind_pcr7: false,
            ..
        }
    ));

    assert!(refusal(b"").contains("not a coffer-tpm/1 request"));
    assert!(refusal(b"GET / HTTP/1.1\r\n\r\n").contains("not a coffer-tpm/1 request"));
    for len in 0..good.len() {
        let message = refusal(&good[..len]);
        assert!(message.starts_with("the TPM helper refused the request"));
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(refusal(&longer).contains("trailing bytes"));
    let mut unknown = good.clone();
    unknown[MAGIC.len()] = b'X';
    assert!(refusal(&unknown).contains("unknown operation"));
    assert!(refusal(&seal_request("t", 0b10, &[1; 32])).contains("unknown flags"));
    let mut not_utf8 = MAGIC.to_vec();
    not_utf8.extend_from_slice(&[OP_SEAL, 0, 1, 0xff, 0]);
    not_utf8.extend_from_slice(&[1; 32]);
    assert!(refusal(&not_utf8).contains("not UTF-8"));
    let mut long_tcti = MAGIC.to_vec();
    long_tcti.push(OP_UNSEAL);
    put_part(&mut long_tcti, &[b'a'; MAX_TCTI_LEN + 1]);
    put_part(&mut long_tcti, b"x");
    assert!(refusal(&long_tcti).contains("TCTI is too long"));
    let mut huge = good.clone();
    huge.resize(MAX_REQUEST_LEN + 1, 0);
    assert!(refusal(&huge).contains("too long"));
}

#[test]
fn the_client_refuses_a_tcti_it_cannot_send() {
    assert!(matches!(
        seal("", &key(1), false),
        Err(SealError::TpmUnavailable(_))
    ));
    let long = "a".repeat(MAX_TCTI_LEN + 1);
    assert!(matches!(
        unseal(&long, b"x"),
        Err(SealError::TpmUnavailable(_))
    ));
}

#[test]
fn every_error_kind_travels_intact() {
    let errors = [
        SealError::WrongTpm,
        SealError::PolicyMismatch,
        SealError::Tpm {
            action: "unseal the data key".into(),
            message: "0x0000098e".into(),
        },
        SealError::Corrupt("truncated public part".into()),
        SealError::TpmUnavailable("cannot connect".into()),
    ];
    for error in errors {
        let mut reply = Vec::new();
        put_error(&mut reply, &error);
        let back = answer(&reply).err().unwrap();
        assert_eq!(back.to_string(), error.to_string());
    }
    // Kinds the TPM code never returns still arrive as a clear message.
    let mut reply = Vec::new();
    put_error(&mut reply, &SealError::Random("no entropy".into()));
    let back = answer(&reply).err().unwrap();
    assert!(back.to_string().contains("no entropy"), "{back}");
}

#[test]
fn malformed_replies_are_refused() {
    let mut tpm_error = vec![ERR_TPM];
    put_part(&mut tpm_error, b"action");
    let trailing = [ERR_WRONG_TPM, 0];
    let mut not_utf8 = vec![ERR_CORRUPT];
    put_part(&mut not_utf8, &[0xff, 0xfe]);
    for reply in [
        &[][..],
        &[99][..],
        &[ERR_CORRUPT][..],
        &[ERR_CORRUPT, 0, 5, b'a'][..],
        &tpm_error[..],
        &trailing[..],
        &not_utf8[..],
    ] {
        let err = answer(reply).err().unwrap();
        assert_eq!(err.to_string(), malformed().to_string(), "{reply:?}");
    }
}

#[test]
fn messages_are_cut_on_a_character_boundary_and_never_empty() {
    let mut reply = Vec::new();
    put_message(&mut reply, &"é".repeat(MAX_MESSAGE_LEN));
    let mut reader = Reader(&reply);
    let part = reader.part().unwrap();
    assert!(part.len() <= MAX_MESSAGE_LEN);
    assert!(std::str::from_utf8(part).is_ok());
    assert!(reader.is_empty());

    let mut reply = Vec::new();
    put_message(&mut reply, "");
    assert_eq!(Reader(&reply).part(), Some(&b"?"[..]));
}
