//! Virtual paths: what a client names, normalised lexically inside the home.
//!
//! The home is `/`. A client path is split on `/`; empty and `.` components
//! are dropped and `..` removes the previous component, never going above
//! `/` (so `/../../etc` is `/etc` inside the home). Every other byte,
//! backslashes and `%2e` included, is an ordinary file-name byte, as on any
//! Unix file system. A path with a NUL byte or longer than [`MAX_PATH`] bytes
//! is refused before it reaches the file system.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use super::FsError;

/// The longest path a client may send, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// A normalised path inside a home folder: starts with `/`, has no empty,
/// `.` or `..` component and no trailing `/` (except the home itself, `/`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VPath(Vec<u8>);

impl VPath {
    /// The home folder itself, `/`.
    pub fn root() -> Self {
        VPath(b"/".to_vec())
    }

    /// Normalises a client path; relative paths are relative to `/`.
    pub fn parse(raw: &[u8]) -> Result<Self, FsError> {
        Self::root().join(raw)
    }

    /// Resolves `raw` against this path: an absolute `raw` starts again at
    /// `/`, a relative one continues from here.
    pub fn join(&self, raw: &[u8]) -> Result<Self, FsError> {
        check_raw(raw)?;
        let mut out = if raw.first() == Some(&b'/') {
            Vec::with_capacity(raw.len() + 1)
        } else {
            let mut v = Vec::with_capacity(self.0.len() + raw.len() + 1);
            if !self.is_root() {
                v.extend_from_slice(&self.0);
            }
            v
        };
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    let cut = out.iter().rposition(|b| *b == b'/').unwrap_or(0);
                    out.truncate(cut);
                }
                name => {
                    out.push(b'/');
                    out.extend_from_slice(name);
                }
            }
        }
        if out.is_empty() {
            out.push(b'/');
        }
        if out.len() > MAX_PATH {
            return Err(FsError::PathTooLong);
        }
        Ok(VPath(out))
    }

    /// A child of this directory; `name` must be one plain component (no
    /// `/`, not `.` or `..`, not empty), as a directory listing yields.
    pub fn child(&self, name: &[u8]) -> Result<Self, FsError> {
        if !is_plain_name(name) {
            return Err(FsError::Invalid("not a plain file name"));
        }
        check_raw(name)?;
        let mut out = Vec::with_capacity(self.0.len() + name.len() + 1);
        if !self.is_root() {
            out.extend_from_slice(&self.0);
        }
        out.push(b'/');
        out.extend_from_slice(name);
        if out.len() > MAX_PATH {
            return Err(FsError::PathTooLong);
        }
        Ok(VPath(out))
    }

    /// Whether this is the home folder itself.
    pub fn is_root(&self) -> bool {
        self.0 == b"/"
    }

    /// The path as the client sees it, e.g. `/photos/a.jpg`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path relative to the home capability (`.` for the home itself).
    pub fn relative(&self) -> &Path {
        match self.0.get(1..) {
            Some(rest) if !rest.is_empty() => Path::new(OsStr::from_bytes(rest)),
            _ => Path::new("."),
        }
    }

    /// The parent directory; `None` for `/`.
    pub fn parent(&self) -> Option<VPath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.iter().rposition(|b| *b == b'/').unwrap_or(0);
        let head = self.0.get(..cut).unwrap_or_default();
        if head.is_empty() {
            Some(Self::root())
        } else {
            Some(VPath(head.to_vec()))
        }
    }

    /// The last component; `None` for `/`.
    pub fn file_name(&self) -> Option<&[u8]> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.iter().rposition(|b| *b == b'/').unwrap_or(0);
        self.0.get(cut + 1..)
    }

    /// The components, outermost first (none for `/`).
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|b| *b == b'/').filter(|c| !c.is_empty())
    }

    /// How many components deep this is (0 for `/`).
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// A relative path that leads from the directory `from` to this path
    /// by `..` and names, e.g. from `/a/b` to `/a/c/d` is `../c/d`.
    pub fn relative_from(&self, from: &VPath) -> Vec<u8> {
        let mine: Vec<&[u8]> = self.components().collect();
        let theirs: Vec<&[u8]> = from.components().collect();
        let common = mine
            .iter()
            .zip(theirs.iter())
            .take_while(|(a, b)| a == b)
            .count();
        let mut parts: Vec<&[u8]> = Vec::new();
        parts.extend(std::iter::repeat_n(&b".."[..], theirs.len() - common));
        parts.extend(mine.iter().skip(common));
        if parts.is_empty() {
            return b".".to_vec();
        }
        parts.join(&b'/')
    }

    /// The path as text for messages (invalid UTF-8 shown as U+FFFD).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Debug for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// Refuses NUL bytes and over-long input.
pub(crate) fn check_raw(raw: &[u8]) -> Result<(), FsError> {
    if raw.contains(&0) {
        return Err(FsError::NulInPath);
    }
    if raw.len() > MAX_PATH {
        return Err(FsError::PathTooLong);
    }
    Ok(())
}

/// One component that names an entry: not empty, not `.` or `..`, no `/`.
pub fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/')
}

/// One element of a file-name pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Glob {
    /// This byte.
    Byte(u8),
    /// `*`: any run of bytes.
    AnyRun,
    /// `?`: any one byte.
    AnyOne,
}

/// Shell-style match of one file name against a pattern; a leading `.`
/// must be matched literally, as a shell does.
pub fn glob_match(pattern: &[Glob], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&Glob::Byte(b'.')) {
        return false;
    }
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(Glob::AnyRun) => {
                star = Some((p, n));
                p += 1;
            }
            Some(Glob::AnyOne) => {
                p += 1;
                n += 1;
            }
            Some(Glob::Byte(c)) if Some(c) == name.get(n) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    while pattern.get(p) == Some(&Glob::AnyRun) {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        VPath::parse(s.as_bytes()).unwrap().display()
    }

    #[test]
    fn normalises_lexically_and_clamps_at_the_home() {
        assert_eq!(p(""), "/");
        assert_eq!(p("."), "/");
        assert_eq!(p("/"), "/");
        assert_eq!(p("a/b/"), "/a/b");
        assert_eq!(p("/a//b/./c"), "/a/b/c");
        assert_eq!(p("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(p("../.."), "/");
        assert_eq!(p("a/../../b"), "/b");
        assert_eq!(p("..\\..\\x"), "/..\\..\\x");
        assert_eq!(p("%2e%2e%2fetc"), "/%2e%2e%2fetc");
        assert_eq!(p("/a/b/.."), "/a");
    }

    #[test]
    fn refuses_nul_and_long_paths() {
        assert!(matches!(VPath::parse(b"a\0b"), Err(FsError::NulInPath)));
        assert!(matches!(
            VPath::parse(&vec![b'a'; MAX_PATH + 1]),
            Err(FsError::PathTooLong)
        ));
        assert!(VPath::parse(&vec![b'a'; 255]).is_ok());
    }

    #[test]
    fn parent_name_relative() {
        let v = VPath::parse(b"/a/b/c").unwrap();
        assert_eq!(v.parent().unwrap().display(), "/a/b");
        assert_eq!(v.file_name().unwrap(), b"c");
        assert_eq!(v.relative(), Path::new("a/b/c"));
        assert_eq!(VPath::root().relative(), Path::new("."));
        assert_eq!(
            VPath::parse(b"/a").unwrap().parent().unwrap(),
            VPath::root()
        );
        assert!(VPath::root().parent().is_none());
        assert_eq!(v.depth(), 3);
    }

    #[test]
    fn relative_from_walks_up_and_down() {
        let t = VPath::parse(b"/a/c/d").unwrap();
        assert_eq!(t.relative_from(&VPath::parse(b"/a/b").unwrap()), b"../c/d");
        assert_eq!(t.relative_from(&VPath::root()), b"a/c/d");
        assert_eq!(VPath::root().relative_from(&VPath::root()), b".");
        assert_eq!(VPath::root().relative_from(&t), b"../../..");
    }

    fn pat(s: &str) -> Vec<Glob> {
        s.bytes()
            .map(|b| match b {
                b'*' => Glob::AnyRun,
                b'?' => Glob::AnyOne,
                b => Glob::Byte(b),
            })
            .collect()
    }

    #[test]
    fn globs() {
        assert!(glob_match(&pat("*.txt"), b"a.txt"));
        assert!(!glob_match(&pat("*.txt"), b".a.txt"));
        assert!(glob_match(&pat(".*"), b".a"));
        assert!(glob_match(&pat("a?c"), b"abc"));
        assert!(!glob_match(&pat("a?c"), b"ac"));
        assert!(glob_match(&pat("*"), b"x"));
        assert!(glob_match(&pat("a*b*c"), b"aXXbYYc"));
        assert!(!glob_match(&pat("a*b*c"), b"aXXbYY"));
        assert!(glob_match(&pat("**"), b""));
        assert!(!glob_match(&[Glob::Byte(b'*')], b"x"));
    }
}
