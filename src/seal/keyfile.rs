//! The key-file backend: the data key in a 0600 file, for boxes without a TPM.
//!
//! The file is text: a header line naming the format, then the 32 key bytes as
//! 64 lowercase hex digits and a newline.
//!
//! ```text
//! coffer data key v1
//! 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```

use std::path::Path;

use zeroize::Zeroizing;

use super::{DataKey, KEY_FILE_NAME, SealError, private_file};

const HEADER: &str = "coffer data key v1\n";
const HEX_LEN: usize = 64;
/// Header, hex digits and newline; anything longer is not a key file.
const MAX_LEN: usize = HEADER.len() + HEX_LEN + 1;

/// Writes a new key file into `data_dir`; fails if one exists.
pub(super) fn create(data_dir: &Path, key: &DataKey) -> Result<(), SealError> {
    let mut contents = Zeroizing::new(String::with_capacity(MAX_LEN));
    contents.push_str(HEADER);
    contents.push_str(&Zeroizing::new(
        data_encoding::HEXLOWER.encode(key.expose()),
    ));
    contents.push('\n');
    private_file::create_new(data_dir, KEY_FILE_NAME, contents.as_bytes())?;
    Ok(())
}

/// Reads the key file at `path`, refusing loose permissions, links and anything
/// that is not exactly one key.
pub(super) fn read(path: &Path) -> Result<DataKey, SealError> {
    let contents = private_file::read(path, MAX_LEN)?;
    parse(&contents).map_err(|reason| SealError::Corrupt(format!("{}: {reason}", path.display())))
}

fn parse(contents: &[u8]) -> Result<DataKey, &'static str> {
    let body = contents
        .strip_prefix(HEADER.as_bytes())
        .ok_or("not a coffer key file (the first line must be \"coffer data key v1\")")?;
    let hex = body.strip_suffix(b"\n").unwrap_or(body);
    if hex.len() != HEX_LEN {
        return Err("the key must be exactly 64 hex digits (32 bytes)");
    }
    let mut key = Zeroizing::new([0u8; 32]);
    match data_encoding::HEXLOWER_PERMISSIVE.decode_mut(hex, key.as_mut_slice()) {
        Ok(32) => Ok(DataKey::from_bytes(key)),
        _ => Err("the key must be exactly 64 hex digits (32 bytes)"),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_exactly_one_key_with_or_without_final_newline() {
        let hex = "00".repeat(31) + "ff";
        let with = format!("{HEADER}{hex}\n");
        let without = format!("{HEADER}{hex}");
        for text in [with, without] {
            let key = parse(text.as_bytes()).unwrap();
            assert_eq!(key.expose()[31], 0xff);
        }
    }

    #[test]
    fn parse_rejects_wrong_lengths_and_garbage() {
        let cases = [
            String::new(),
            HEADER.to_owned(),
            format!("{HEADER}{}\n", "ab".repeat(31)),
            format!("{HEADER}{}\n", "ab".repeat(33)),
            format!("{HEADER}{}zz\n", "ab".repeat(31)),
            format!("{HEADER}{}\n\n", "ab".repeat(32)),
            format!("{HEADER} {}\n", "ab".repeat(32)),
            format!("coffer data key v2\n{}\n", "ab".repeat(32)),
            "ab".repeat(32),
        ];
        for case in cases {
            assert!(parse(case.as_bytes()).is_err(), "accepted {case:?}");
        }
    }
}
