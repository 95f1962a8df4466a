//! The TPM helper: the one process that loads the TPM libraries.
//!
//! The TPM is needed at two moments only: sealing a new data key, and
//! unsealing it when a command or the server starts. tpm2-tss and the OpenSSL
//! it is built on (about 2 MiB of shared libraries once loaded) would
//! otherwise stay mapped in the serving process for its whole life, and sit in
//! the address space of the process that faces the network. So `coffer` does
//! not link them at all: builds with the `tpm` feature also build
//! `coffer-tpm`, installed beside `coffer`, and every TPM operation runs there,
//! one short-lived process per operation, over a pair of pipes.
//!
//! The helper gets `TSS2_LOG=all+NONE` unless the operator set `TSS2_LOG`:
//! tpm2-tss prints its own `ERROR:esys:...` lines for failures that Coffer
//! reports itself in one clear line (a data disk moved to another TPM, a
//! changed PCR 7).
//!
//! ## The exchange
//!
//! One request on the helper's standard input, one reply on its standard
//! output, then the helper exits (0 after a success, 1 after an error reply,
//! 2 when it could not read the request or write the reply). Lengths are
//! big-endian `u16`s and never zero; nothing may follow the last field.
//!
//! ```text
//! request   "coffer-tpm/1\n"     13 bytes
//!           operation            1 byte: 'S' seal, 'U' unseal
//!           TCTI                 length, UTF-8 bytes
//!   seal:   flags                1 byte, bit 0: bind to PCR 7
//!           key                  32 bytes
//!   unseal: sealed object        length, the bytes of data-key.tpm
//!
//! reply     status               1 byte: 0 success, else an error kind
//!   seal:   sealed object        length, the bytes of data-key.tpm
//!   unseal: key                  32 bytes
//!   error:  message(s)           length, UTF-8 bytes (the TPM failure kind:
//!                                the action, then the message)
//! ```
//!
//! Every buffer that holds the key is wiped when dropped. The key never
//! appears in the helper's arguments or environment.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use zeroize::Zeroizing;

use super::tpm::{self, MAX_BLOB_LEN, Reader, put_part};
use super::{DataKey, SealError};

/// The helper's file name; it is looked for beside the running executable.
#[cfg(not(test))]
const HELPER_NAME: &str = "coffer-tpm";

/// How long a TPM operation may take before the helper is killed. A slow
/// discrete TPM creates the ECC primary key in a few seconds at most.
#[cfg(not(test))]
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

const MAGIC: &[u8; 13] = b"coffer-tpm/1\n";
const OP_SEAL: u8 = b'S';
const OP_UNSEAL: u8 = b'U';
const FLAG_PCR7: u8 = 0b0000_0001;

/// No TCTI string is anywhere near this long.
const MAX_TCTI_LEN: usize = 1024;
/// Error messages are cut to this many bytes.
const MAX_MESSAGE_LEN: usize = 1024;
const MAX_REQUEST_LEN: usize = MAGIC.len() + 1 + 2 + MAX_TCTI_LEN + 2 + MAX_BLOB_LEN;
const MAX_REPLY_LEN: usize = 1 + 2 + MAX_BLOB_LEN + 2 * (2 + MAX_MESSAGE_LEN);

const OK: u8 = 0;
const ERR_UNAVAILABLE: u8 = 1;
const ERR_WRONG_TPM: u8 = 2;
const ERR_POLICY: u8 = 3;
const ERR_TPM: u8 = 4;
const ERR_CORRUPT: u8 = 5;
const ERR_REQUEST: u8 = 6;

/// Seals `key` with the TPM reached through `tcti`; returns the bytes of
/// `data-key.tpm`.
pub(super) fn seal(tcti: &str, key: &DataKey, bind_pcr7: bool) -> Result<Vec<u8>, SealError> {
    let mut request = header(OP_SEAL, tcti)?;
    request.push(if bind_pcr7 { FLAG_PCR7 } else { 0 });
    request.extend_from_slice(key.expose());
    let reply = exchange(&request)?;
    let mut reader = answer(&reply)?;
    let sealed = reader.part().ok_or_else(malformed)?;
    if !reader.is_empty() || sealed.len() > MAX_BLOB_LEN {
        return Err(malformed());
    }
    Ok(sealed.to_vec())
}

/// Unseals the data key from the bytes of `data-key.tpm` with the TPM reached
/// through `tcti`.
pub(super) fn unseal(tcti: &str, sealed: &[u8]) -> Result<DataKey, SealError> {
    if sealed.is_empty() || sealed.len() > MAX_BLOB_LEN {
        return Err(SealError::Corrupt(format!(
            "the sealed object is {} bytes (at most {MAX_BLOB_LEN})",
            sealed.len()
        )));
    }
    let mut request = header(OP_UNSEAL, tcti)?;
    put_part(&mut request, sealed);
    let reply = exchange(&request)?;
    let mut reader = answer(&reply)?;
    let key = reader
        .take(32)
        .and_then(DataKey::from_slice)
        .ok_or_else(malformed)?;
    if !reader.is_empty() {
        return Err(malformed());
    }
    Ok(key)
}

/// The request's magic, operation and TCTI.
fn header(op: u8, tcti: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if tcti.is_empty() || tcti.len() > MAX_TCTI_LEN {
        return Err(SealError::TpmUnavailable(format!(
            "the TCTI must be 1 to {MAX_TCTI_LEN} bytes long"
        )));
    }
    let mut request = Zeroizing::new(Vec::with_capacity(MAX_REQUEST_LEN));
    request.extend_from_slice(MAGIC);
    request.push(op);
    put_part(&mut request, tcti.as_bytes());
    Ok(request)
}

/// The reply after a success status, or the error it carries.
fn answer(reply: &[u8]) -> Result<Reader<'_>, SealError> {
    let mut reader = Reader(reply);
    let status = reader.byte().ok_or_else(malformed)?;
    if status == OK {
        return Ok(reader);
    }
    let mut text = || {
        reader
            .part()
            .and_then(|part| std::str::from_utf8(part).ok())
            .map(str::to_owned)
            .ok_or_else(malformed)
    };
    let error = match status {
        ERR_UNAVAILABLE => SealError::TpmUnavailable(text()?),
        ERR_WRONG_TPM => SealError::WrongTpm,
        ERR_POLICY => SealError::PolicyMismatch,
        ERR_TPM => SealError::Tpm {
            action: text()?,
            message: text()?,
        },
        ERR_CORRUPT => SealError::Corrupt(text()?),
        ERR_REQUEST => {
            SealError::TpmUnavailable(format!("the TPM helper refused the request: {}", text()?))
        }
        _ => return Err(malformed()),
    };
    if !reader.is_empty() {
        return Err(malformed());
    }
    Err(error)
}

fn malformed() -> SealError {
    SealError::TpmUnavailable("the TPM helper's answer is malformed".into())
}

/// Runs one request. The library's unit tests answer it in-process (they have
/// no helper executable beside them; `tests/it/tpm.rs` runs the real one).
#[cfg(test)]
fn exchange(request: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    Ok(respond(request))
}

#[cfg(not(test))]
fn exchange(request: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let path = helper_path()?;
    let shown = path.display();
    let mut command = Command::new(&path);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if std::env::var_os("TSS2_LOG").is_none() {
        command.env("TSS2_LOG", "all+NONE");
    }
    let mut child = command.spawn().map_err(|e| {
        SealError::TpmUnavailable(format!("cannot run the TPM helper {shown}: {e}"))
    })?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(SealError::TpmUnavailable(format!(
            "cannot talk to the TPM helper {shown}"
        )));
    };
    // The request fits in a pipe's buffer, so this never waits on the helper.
    // A helper that died early shows in its exit status below.
    let _ = stdin.write_all(request);
    drop(stdin);

    let (sender, receiver) = mpsc::channel();
    let reading = std::thread::Builder::new()
        .name("tpm-helper".into())
        .spawn(move || {
            let mut reply = Zeroizing::new(Vec::new());
            let limit = u64::try_from(MAX_REPLY_LEN + 1).unwrap_or(u64::MAX);
            let result = stdout.take(limit).read_to_end(&mut reply);
            let _ = sender.send(result.map(|_| reply));
        });
    let reply = match reading {
        Err(e) => Err(SealError::TpmUnavailable(format!(
            "cannot start a thread to read the TPM helper's answer: {e}"
        ))),
        Ok(_) => match receiver.recv_timeout(HELPER_TIMEOUT) {
            Ok(Ok(reply)) if reply.len() <= MAX_REPLY_LEN => Ok(reply),
            Ok(Ok(_)) => Err(malformed()),
            Ok(Err(e)) => Err(SealError::TpmUnavailable(format!(
                "cannot read the TPM helper's answer: {e}"
            ))),
            Err(_) => Err(SealError::TpmUnavailable(format!(
                "the TPM helper {shown} did not answer within {} s",
                HELPER_TIMEOUT.as_secs()
            ))),
        },
    };
    if reply.is_err() {
        let _ = child.kill();
    }
    let status = child.wait();
    let reply = reply?;
    if reply.is_empty() {
        let how = status.map_or_else(|e| e.to_string(), |status| status.to_string());
        return Err(SealError::TpmUnavailable(format!(
            "the TPM helper {shown} ended without an answer ({how})"
        )));
    }
    Ok(reply)
}

/// `coffer-tpm` beside the running executable.
#[cfg(not(test))]
fn helper_path() -> Result<std::path::PathBuf, SealError> {
    let exe = std::env::current_exe().map_err(|e| {
        SealError::TpmUnavailable(format!(
            "cannot find the running executable, and {HELPER_NAME} beside it: {e}"
        ))
    })?;
    let path = exe.with_file_name(HELPER_NAME);
    if !path.is_file() {
        return Err(SealError::TpmUnavailable(format!(
            "the TPM helper {} is missing: builds with TPM support install {HELPER_NAME} beside coffer",
            path.display()
        )));
    }
    Ok(path)
}

/// The helper's side: answers one request from standard input on standard
/// output.
pub(super) fn main() -> ExitCode {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "coffer-tpm: coffer runs this helper to seal and unseal its data key with the TPM; it reads a binary request on standard input and is not meant to be run by hand"
        );
        return ExitCode::from(2);
    }
    let mut request = Zeroizing::new(Vec::with_capacity(MAX_REQUEST_LEN));
    let limit = u64::try_from(MAX_REQUEST_LEN + 1).unwrap_or(u64::MAX);
    if let Err(e) = stdin.lock().take(limit).read_to_end(&mut request) {
        eprintln!("coffer-tpm: cannot read the request: {e}");
        return ExitCode::from(2);
    }
    let reply = respond(&request);
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&reply).and_then(|()| stdout.flush()) {
        eprintln!("coffer-tpm: cannot write the answer: {e}");
        return ExitCode::from(2);
    }
    if reply.first() == Some(&OK) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What the helper was asked to do.
enum Operation {
    Seal { key: DataKey, bind_pcr7: bool },
    Unseal { sealed: Vec<u8> },
}

/// Reads a request; the reason is for the refusal.
fn parse_request(request: &[u8]) -> Result<(String, Operation), &'static str> {
    if request.len() > MAX_REQUEST_LEN {
        return Err("the request is too long");
    }
    let mut reader = Reader(request);
    if reader.take(MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err("not a coffer-tpm/1 request");
    }
    let op = reader.byte().ok_or("truncated request")?;
    let tcti = reader.part().ok_or("missing TCTI")?;
    if tcti.len() > MAX_TCTI_LEN {
        return Err("the TCTI is too long");
    }
    let tcti = std::str::from_utf8(tcti).map_err(|_| "the TCTI is not UTF-8")?;
    let operation = match op {
        OP_SEAL => {
            let flags = reader.byte().ok_or("truncated request")?;
            if flags & !FLAG_PCR7 != 0 {
                return Err("unknown flags");
            }
            let key = reader
                .take(32)
                .and_then(DataKey::from_slice)
                .ok_or("truncated key")?;
            Operation::Seal {
                key,
                bind_pcr7: flags & FLAG_PCR7 != 0,
            }
        }
        OP_UNSEAL => {
            let sealed = reader.part().ok_or("missing sealed object")?;
            Operation::Unseal {
                sealed: sealed.to_vec(),
            }
        }
        _ => return Err("unknown operation"),
    };
    if !reader.is_empty() {
        return Err("trailing bytes after the request");
    }
    Ok((tcti.to_owned(), operation))
}

/// The reply to one request.
fn respond(request: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut reply = Zeroizing::new(Vec::with_capacity(MAX_REPLY_LEN));
    let (tcti, operation) = match parse_request(request) {
        Ok(parsed) => parsed,
        Err(reason) => {
            reply.push(ERR_REQUEST);
            put_message(&mut reply, reason);
            return reply;
        }
    };
    let done = match operation {
        Operation::Seal { key, bind_pcr7 } => tpm::seal(&tcti, &key, bind_pcr7).map(|sealed| {
            reply.push(OK);
            put_part(&mut reply, &sealed.to_bytes());
        }),
        Operation::Unseal { sealed } => tpm::SealedObject::parse(&sealed)
            .map_err(SealError::Corrupt)
            .and_then(|sealed| tpm::unseal(&tcti, &sealed))
            .map(|key| {
                reply.push(OK);
                reply.extend_from_slice(key.expose());
            }),
    };
    if let Err(error) = done {
        reply.clear();
        put_error(&mut reply, &error);
    }
    reply
}

fn put_error(reply: &mut Vec<u8>, error: &SealError) {
    match error {
        SealError::WrongTpm => reply.push(ERR_WRONG_TPM),
        SealError::PolicyMismatch => reply.push(ERR_POLICY),
        SealError::Tpm { action, message } => {
            reply.push(ERR_TPM);
            put_message(reply, action);
            put_message(reply, message);
        }
        SealError::Corrupt(message) => {
            reply.push(ERR_CORRUPT);
            put_message(reply, message);
        }
        SealError::TpmUnavailable(message) => {
            reply.push(ERR_UNAVAILABLE);
            put_message(reply, message);
        }
        other => {
            reply.push(ERR_UNAVAILABLE);
            put_message(reply, &other.to_string());
        }
    }
}

/// A message part: cut to [`MAX_MESSAGE_LEN`] bytes on a character boundary,
/// never empty.
fn put_message(reply: &mut Vec<u8>, message: &str) {
    let mut end = message.len().min(MAX_MESSAGE_LEN);
    while !message.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let message = message.get(..end).filter(|m| !m.is_empty()).unwrap_or("?");
    put_part(reply, message.as_bytes());
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests;
