//! The `scp` command line: split into words like a POSIX shell would,
//! without a shell, and parsed into a [`Command`].

use super::ScpError;

/// A parsed `scp` command.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Command {
    /// `-t` (true: receive into the home) or `-f` (false: send).
    pub(super) to: bool,
    pub(super) recursive: bool,
    pub(super) preserve: bool,
    pub(super) target_is_dir: bool,
    pub(super) paths: Vec<Word>,
}

/// A word of the command, with which bytes were quoted (quoted `*` and
/// `?` are not wildcards).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Word {
    pub(super) bytes: Vec<u8>,
    pub(super) quoted: Vec<bool>,
}

impl Word {
    fn push(&mut self, b: u8, quoted: bool) {
        self.bytes.push(b);
        self.quoted.push(quoted);
    }
}

/// Splits a command line like a POSIX shell, without expanding anything
/// but a leading `~`.
pub(super) fn split_words(command: &str, account: &str) -> Result<Vec<Word>, ScpError> {
    let refuse = |what: &str| Err(ScpError::Command(format!("{what} is not supported")));
    let mut words = Vec::new();
    let mut word: Option<Word> = None;
    let mut bytes = command.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b' ' | b'\t' | b'\n' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            b'\'' => {
                let w = word.get_or_insert_with(Word::default);
                loop {
                    match bytes.next() {
                        Some(b'\'') => break,
                        Some(c) => w.push(c, true),
                        None => return refuse("an unterminated quote"),
                    }
                }
            }
            b'"' => {
                let w = word.get_or_insert_with(Word::default);
                loop {
                    match bytes.next() {
                        Some(b'"') => break,
                        Some(b'\\') => match bytes.next() {
                            Some(c @ (b'"' | b'\\' | b'$' | b'`')) => w.push(c, true),
                            Some(b'\n') => {}
                            Some(c) => {
                                w.push(b'\\', true);
                                w.push(c, true);
                            }
                            None => return refuse("an unterminated quote"),
                        },
                        Some(b'$' | b'`') => return refuse("shell expansion"),
                        Some(c) => w.push(c, true),
                        None => return refuse("an unterminated quote"),
                    }
                }
            }
            b'\\' => match bytes.next() {
                Some(b'\n') => {}
                Some(c) => word.get_or_insert_with(Word::default).push(c, true),
                None => return refuse("a trailing backslash"),
            },
            b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' | b'$' | b'`' => {
                return refuse("shell syntax");
            }
            c => word.get_or_insert_with(Word::default).push(c, false),
        }
    }
    if let Some(w) = word.take() {
        words.push(w);
    }
    for w in &mut words {
        expand_tilde(w, account)?;
    }
    Ok(words)
}

/// `~` and `~/x` (and `~account`) name the home, `/`.
pub(super) fn expand_tilde(w: &mut Word, account: &str) -> Result<(), ScpError> {
    if w.bytes.first() != Some(&b'~') || w.quoted.first() != Some(&false) {
        return Ok(());
    }
    let end = w
        .bytes
        .iter()
        .position(|b| *b == b'/')
        .unwrap_or(w.bytes.len());
    let user = w.bytes.get(1..end).unwrap_or_default();
    if !user.is_empty() && user != account.as_bytes() {
        return Err(ScpError::Command(
            "other users' home folders are not reachable".into(),
        ));
    }
    let mut out = Word::default();
    if end == w.bytes.len() {
        out.push(b'/', true);
    }
    for (b, q) in w.bytes.iter().zip(w.quoted.iter()).skip(end) {
        out.push(*b, *q);
    }
    *w = out;
    Ok(())
}

/// Parses `scp [-v] [-r] [-p] [-d] -t|-f [--] PATH...`.
pub(super) fn parse_command(command: &str, account: &str) -> Result<Command, ScpError> {
    let words = split_words(command, account)?;
    let mut words = words.into_iter();
    let program = words.next().unwrap_or_default();
    if program.bytes != b"scp" && !program.bytes.ends_with(b"/scp") {
        return Err(ScpError::Command(format!(
            "only scp and sftp are served here, not {:?}",
            String::from_utf8_lossy(&program.bytes)
        )));
    }
    let (mut to, mut from) = (false, false);
    let mut cmd = Command {
        to: false,
        recursive: false,
        preserve: false,
        target_is_dir: false,
        paths: Vec::new(),
    };
    let mut options = true;
    for w in words {
        if options && w.bytes == b"--" {
            options = false;
            continue;
        }
        if options && w.bytes.first() == Some(&b'-') && w.bytes.len() > 1 {
            for flag in w.bytes.iter().skip(1) {
                match flag {
                    b't' => to = true,
                    b'f' => from = true,
                    b'r' => cmd.recursive = true,
                    b'p' => cmd.preserve = true,
                    b'd' => cmd.target_is_dir = true,
                    b'v' => {}
                    other => {
                        return Err(ScpError::Command(format!(
                            "scp: unsupported option -{}",
                            char::from(*other)
                        )));
                    }
                }
            }
            continue;
        }
        options = false;
        if w.bytes.is_empty() {
            return Err(ScpError::Command("scp: empty path".into()));
        }
        cmd.paths.push(w);
    }
    if to == from {
        return Err(ScpError::Command(
            "scp: exactly one of -t and -f is required".into(),
        ));
    }
    cmd.to = to;
    if cmd.paths.is_empty() {
        return Err(ScpError::Command("scp: no path given".into()));
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmd: &str) -> Vec<String> {
        split_words(cmd, "alice")
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w.bytes).unwrap())
            .collect()
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(words("scp -t -- /dir"), ["scp", "-t", "--", "/dir"]);
        assert_eq!(
            words("scp -f 'a b' \"c d\" e\\ f"),
            ["scp", "-f", "a b", "c d", "e f"]
        );
        assert_eq!(
            words("scp -f ~ ~/x ~alice/y"),
            ["scp", "-f", "/", "/x", "/y"]
        );
        assert_eq!(words("scp -f '~'"), ["scp", "-f", "~"]);
        assert!(split_words("scp -f ~bob/x", "alice").is_err());
        for bad in [
            "scp -t x; rm -rf /",
            "scp -f $(id)",
            "scp -f `id`",
            "scp -f a|b",
            "scp -t 'x",
        ] {
            assert!(split_words(bad, "alice").is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_commands() {
        let c = parse_command("scp -r -p -d -t -- /dir", "a").unwrap();
        assert!(c.to && c.recursive && c.preserve && c.target_is_dir);
        let c = parse_command("scp -pf file", "a").unwrap();
        assert!(!c.to && c.preserve && !c.recursive);
        assert_eq!(c.paths[0].bytes, b"file");
        let c = parse_command("/usr/bin/scp -v -t -- -odd", "a").unwrap();
        assert_eq!(c.paths[0].bytes, b"-odd");
        for bad in [
            "",
            "ls -l",
            "scp",
            "scp -t",
            "scp -x -t a",
            "scp -t -f a",
            "scp a",
            "sh -c 'scp -t a'",
        ] {
            assert!(parse_command(bad, "a").is_err(), "{bad}");
        }
    }
}
