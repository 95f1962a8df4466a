//! Folder listings: entries read in batches ([`Listing`]) and the
//! `ls -l` lines clients show ([`Root::long_name`]).

use std::os::unix::ffi::OsStringExt as _;

use cap_std::fs::Dir;

use super::attrs::{S_IFDIR, S_IFLNK, S_IFMT};
use super::{Follow, FsError, Root, Stat, VPath, path};

/// One entry of a folder listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file name (one component).
    pub name: Vec<u8>,
    /// Its attributes (of a link itself, not of its target).
    pub stat: Stat,
}

/// An open folder being listed in batches.
pub struct Listing {
    dir: Dir,
    path: VPath,
    entries: cap_std::fs::ReadDir,
    /// 0: `.` next, 1: `..` next, 2: the folder's own entries.
    dots: u8,
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing").field("path", &self.path).finish()
    }
}

impl Listing {
    /// The folder's virtual path.
    pub fn path(&self) -> &VPath {
        &self.path
    }

    /// The open folder (for fstat, fchmod).
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The next entries: at most `max` and about `max_bytes` of names; an
    /// empty batch means the end. `.` and `..` come first when `dots` is
    /// set (`..` of the home is the home itself: nothing above it shows).
    pub fn next_batch(
        &mut self,
        root: &Root,
        dots: bool,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, FsError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        if self.dots < 2 {
            if dots {
                let here = Stat::from_cap(&self.dir.dir_metadata()?);
                out.push(Entry {
                    name: b".".to_vec(),
                    stat: here,
                });
                let up = match self.path.parent() {
                    Some(parent) => root.stat(&parent, Follow::Yes).unwrap_or(here),
                    None => here,
                };
                out.push(Entry {
                    name: b"..".to_vec(),
                    stat: up,
                });
            }
            self.dots = 2;
        }
        while out.len() < max && bytes < max_bytes {
            let Some(entry) = self.entries.next() else {
                break;
            };
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().into_vec();
            if !path::is_plain_name(&name) {
                continue;
            }
            // An entry that vanished since the listing began is skipped,
            // as OpenSSH does.
            let Ok(meta) = entry.metadata() else { continue };
            bytes += 2 * name.len() + 100;
            out.push(Entry {
                name,
                stat: Stat::from_cap(&meta),
            });
        }
        Ok(out)
    }
}

/// `ls`'s mode column, e.g. `drwxr-xr-x`.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        0o010_000 => 'p',
        0o140_000 => 's',
        0o020_000 => 'c',
        0o060_000 => 'b',
        _ => '-',
    };
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    let special = |exec: u32, special: u32, on: char, off: char| match (
        mode & exec != 0,
        mode & special != 0,
    ) {
        (true, true) => on,
        (false, true) => off,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

/// `ls`'s date column in UTC: `Jan  5 12:00` within the last six months,
/// else `Jan  5  2024`.
fn ls_date(mtime: i64, now: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = mtime.div_euclid(86_400);
    let secs = mtime.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month = usize::try_from(m.saturating_sub(1))
        .ok()
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("???");
    let recent = now.saturating_sub(365 * 86_400 / 2) < mtime && mtime <= now;
    if recent {
        format!("{month} {d:>2} {:02}:{:02}", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{month} {d:>2}  {y}")
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Root {
    /// Opens a folder for listing.
    pub fn open_dir(&self, p: &VPath) -> Result<Listing, FsError> {
        let dir = self.dir.open_dir(p.relative())?;
        let entries = dir.entries()?;
        Ok(Listing {
            dir,
            path: p.clone(),
            entries,
            dots: 0,
        })
    }

    /// An `ls -l` line for a listing, as OpenSSH's sftp-server writes it:
    /// `-rw-r--r--    1 alice    alice        1234 Jan  5 12:00 name`.
    pub fn long_name(&self, name: &[u8], st: &Stat) -> Vec<u8> {
        let owner = if st.uid == self.service_ids.0 {
            self.account.clone()
        } else {
            st.uid.to_string()
        };
        let group = if st.gid == self.service_ids.1 {
            self.account.clone()
        } else {
            st.gid.to_string()
        };
        let now = i64::try_from(self.clock.now()).unwrap_or(i64::MAX);
        let date = ls_date(st.mtime, now);
        let mut line = format!(
            "{} {:>3} {:<8} {:<8} {:>8} {} ",
            mode_string(st.mode),
            st.nlink,
            owner,
            group,
            st.size,
            date
        )
        .into_bytes();
        line.extend_from_slice(name);
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(0o100_644), "-rw-r--r--");
        assert_eq!(mode_string(0o040_755), "drwxr-xr-x");
        assert_eq!(mode_string(0o120_777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o104_755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041_777), "drwxrwxrwt");
        assert_eq!(mode_string(0o102_644), "-rw-r-Sr--");
    }

    #[test]
    fn dates() {
        // 2024-01-05 12:34:56 UTC
        let t = 1_704_458_096;
        assert_eq!(ls_date(t, t + 60), "Jan  5 12:34");
        assert_eq!(ls_date(t, t + 400 * 86_400), "Jan  5  2024");
        assert_eq!(ls_date(0, 10), "Jan  1 00:00");
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
