//! A streaming ZIP writer for "download as zip": entries are stored (no
//! compression: the CPU of a small box is better spent elsewhere, and
//! photos and videos do not shrink), each file's CRC-32 and size follow
//! its data in a data descriptor, so nothing is read twice and nothing is
//! held but the central directory. ZIP64 records are written where a size,
//! an offset or the number of entries needs them (APPNOTE 6.3.10, 4.3.9,
//! 4.4.3, 4.5.3 and 4.3.14-16), so archives beyond 4 GiB open anywhere.
//!
//! Our own writer rather than a crate: the archive needs only stored
//! entries and the writing half, a few hundred lines with no new
//! dependency, which keeps the static binary's size budget untouched.

use std::io::{self, Read, Write};

/// Sizes and offsets at or above this need ZIP64 fields.
const LIMIT32: u64 = 0xFFFF_FFFF;
/// Entries above this need the ZIP64 end record.
const LIMIT16: u64 = 0xFFFF;
/// General-purpose flags: names are UTF-8 (bit 11).
const UTF8: u16 = 1 << 11;
/// ... and sizes follow the data (bit 3).
const DESCRIPTOR: u16 = 1 << 3;
/// Made by Unix, spec 4.5 (ZIP64).
const MADE_BY: u16 = (3 << 8) | 45;

/// CRC-32 (IEEE 802.3, reflected), table-driven.
#[allow(clippy::indexing_slicing)] // evaluated at compile time: a bad index fails the build
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        let i = usize::from((c as u8) ^ b);
        c = CRC_TABLE.get(i).copied().unwrap_or(0) ^ (c >> 8);
    }
    !c
}

/// MS-DOS time and date of Unix seconds (UTC; 1980 at the earliest).
fn dos_time(unix: i64) -> (u16, u16) {
    let secs = unix.max(315_532_800); // 1980-01-01
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = crate::files::civil_from_days(days);
    let year = (year - 1980).clamp(0, 127);
    let time = ((rem / 3600) << 11) | ((rem % 3600 / 60) << 5) | ((rem % 60) / 2);
    let date = (year << 9) | (month << 5) | day;
    (
        u16::try_from(time).unwrap_or(0),
        u16::try_from(date).unwrap_or(0x21),
    )
}

fn u16_of(n: usize) -> io::Result<u16> {
    u16::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name too long"))
}

/// A ZIP archive being written to `out`.
pub struct Zip<W: Write> {
    out: W,
    /// Bytes written so far.
    offset: u64,
    /// The central directory, sent at the end.
    central: Vec<u8>,
    entries: u64,
}

impl<W: Write> Zip<W> {
    /// An empty archive.
    pub fn new(out: W) -> Self {
        Self {
            out,
            offset: 0,
            central: Vec::new(),
            entries: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset = self.offset.saturating_add(bytes.len() as u64);
        Ok(())
    }

    /// A folder entry (`name` ends with `/`).
    pub fn add_dir(&mut self, name: &str, mtime: i64) -> io::Result<()> {
        let start = self.offset;
        self.local_header(name, mtime, UTF8, false)?;
        self.record(name, mtime, UTF8, 0, 0, start, 0o40755)
    }

    /// A file entry: at most `expected` bytes of `data` (what the file
    /// held when it was listed). Answers the bytes stored.
    pub fn add_file(
        &mut self,
        name: &str,
        mtime: i64,
        expected: u64,
        data: &mut impl Read,
    ) -> io::Result<u64> {
        let start = self.offset;
        let zip64 = expected >= LIMIT32;
        self.local_header(name, mtime, UTF8 | DESCRIPTOR, zip64)?;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut crc, mut size) = (0u32, 0u64);
        let mut source = data.take(expected);
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let piece = buf.get(..n).unwrap_or_default();
            crc = crc_update(crc, piece);
            self.out.write_all(piece)?;
            size += n as u64;
        }
        self.offset = self.offset.saturating_add(size);
        let mut d = Vec::with_capacity(24);
        d.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
        d.extend_from_slice(&crc.to_le_bytes());
        if zip64 {
            d.extend_from_slice(&size.to_le_bytes());
            d.extend_from_slice(&size.to_le_bytes());
        } else {
            let s = u32::try_from(size).unwrap_or(u32::MAX);
            d.extend_from_slice(&s.to_le_bytes());
            d.extend_from_slice(&s.to_le_bytes());
        }
        self.put(&d)?;
        self.record(name, mtime, UTF8 | DESCRIPTOR, crc, size, start, 0o100644)?;
        Ok(size)
    }

    fn local_header(&mut self, name: &str, mtime: i64, flags: u16, zip64: bool) -> io::Result<()> {
        let (time, date) = dos_time(mtime);
        let mut h = Vec::with_capacity(50 + name.len());
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 45u16 } else { 20u16 }).to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&time.to_le_bytes());
        h.extend_from_slice(&date.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes()); // CRC: in the descriptor
        let sizes = if zip64 { u32::MAX } else { 0 };
        h.extend_from_slice(&sizes.to_le_bytes());
        h.extend_from_slice(&sizes.to_le_bytes());
        h.extend_from_slice(&u16_of(name.len())?.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 20u16 } else { 0u16 }).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&[0u8; 16]);
        }
        self.put(&h)
    }

    #[allow(clippy::too_many_arguments)] // one record's fields, in the order of the format
    fn record(
        &mut self,
        name: &str,
        mtime: i64,
        flags: u16,
        crc: u32,
        size: u64,
        start: u64,
        mode: u32,
    ) -> io::Result<()> {
        let (time, date) = dos_time(mtime);
        let mut extra = Vec::new();
        if size >= LIMIT32 {
            extra.extend_from_slice(&size.to_le_bytes());
            extra.extend_from_slice(&size.to_le_bytes());
        }
        if start >= LIMIT32 {
            extra.extend_from_slice(&start.to_le_bytes());
        }
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&MADE_BY.to_le_bytes());
        c.extend_from_slice(&(if extra.is_empty() { 20u16 } else { 45u16 }).to_le_bytes());
        c.extend_from_slice(&flags.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&time.to_le_bytes());
        c.extend_from_slice(&date.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        let size32 = u32::try_from(size).unwrap_or(u32::MAX);
        c.extend_from_slice(&size32.to_le_bytes());
        c.extend_from_slice(&size32.to_le_bytes());
        c.extend_from_slice(&u16_of(name.len())?.to_le_bytes());
        let extra_len = if extra.is_empty() { 0 } else { extra.len() + 4 };
        c.extend_from_slice(&u16_of(extra_len)?.to_le_bytes());
        c.extend_from_slice(&[0u8; 4]); // comment length, disk number
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        let dos_dir = if mode & 0o40000 != 0 { 0x10 } else { 0 };
        c.extend_from_slice(&((mode << 16) | dos_dir).to_le_bytes());
        let start32 = u32::try_from(start).unwrap_or(u32::MAX);
        c.extend_from_slice(&start32.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        if !extra.is_empty() {
            c.extend_from_slice(&1u16.to_le_bytes());
            c.extend_from_slice(&u16_of(extra.len())?.to_le_bytes());
            c.extend_from_slice(&extra);
        }
        self.entries += 1;
        Ok(())
    }

    /// Writes the central directory and the end records; answers `out`.
    pub fn finish(mut self) -> io::Result<W> {
        let start = self.offset;
        let central = std::mem::take(&mut self.central);
        self.put(&central)?;
        let size = central.len() as u64;
        let entries = self.entries;
        let mut e = Vec::with_capacity(98);
        if entries > LIMIT16 || size >= LIMIT32 || start >= LIMIT32 {
            let record = self.offset;
            e.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            e.extend_from_slice(&44u64.to_le_bytes());
            e.extend_from_slice(&MADE_BY.to_le_bytes());
            e.extend_from_slice(&45u16.to_le_bytes());
            e.extend_from_slice(&[0u8; 8]); // this disk, the directory's disk
            e.extend_from_slice(&entries.to_le_bytes());
            e.extend_from_slice(&entries.to_le_bytes());
            e.extend_from_slice(&size.to_le_bytes());
            e.extend_from_slice(&start.to_le_bytes());
            e.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            e.extend_from_slice(&0u32.to_le_bytes());
            e.extend_from_slice(&record.to_le_bytes());
            e.extend_from_slice(&1u32.to_le_bytes());
        }
        let entries16 = u16::try_from(entries).unwrap_or(u16::MAX);
        e.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        e.extend_from_slice(&[0u8; 4]);
        e.extend_from_slice(&entries16.to_le_bytes());
        e.extend_from_slice(&entries16.to_le_bytes());
        e.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_le_bytes());
        e.extend_from_slice(&u32::try_from(start).unwrap_or(u32::MAX).to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        self.put(&e)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc_update(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc_update(crc_update(0, b"1234"), b"56789"), 0xCBF4_3926);
    }

    #[test]
    fn dos_time_of_a_known_date() {
        // 2026-12-07 20:25:38 UTC
        let (time, date) = dos_time(1_796_675_138);
        assert_eq!(date, (46 << 9) | (12 << 5) | 7);
        assert_eq!(time, (20 << 11) | (25 << 5) | 19);
        assert_eq!(dos_time(0).1, (1 << 5) | 1);
    }

    #[test]
    fn an_archive_has_its_entries_and_end_record() {
        let mut zip = Zip::new(Vec::new());
        zip.add_dir("a/", 1_700_000_000).unwrap();
        let n = zip
            .add_file("a/b.txt", 1_700_000_000, 5, &mut &b"hello world"[..])
            .unwrap();
        assert_eq!(n, 5); // no more than the listed size
        let out = zip.finish().unwrap();
        assert_eq!(&out[..4], &[0x50, 0x4b, 0x03, 0x04]);
        let end = &out[out.len() - 22..];
        assert_eq!(&end[..4], &[0x50, 0x4b, 0x05, 0x06]);
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 2);
        let cd_size = u32::from_le_bytes(end[12..16].try_into().unwrap()) as usize;
        let cd_start = u32::from_le_bytes(end[16..20].try_into().unwrap()) as usize;
        assert_eq!(cd_start + cd_size, out.len() - 22);
        assert!(out.windows(5).any(|w| w == b"hello"));
        assert!(!out.windows(5).any(|w| w == b"world"));
    }

    #[test]
    fn many_entries_get_the_zip64_end_record() {
        let mut zip = Zip::new(Vec::new());
        for i in 0..=LIMIT16 {
            zip.add_dir(&format!("{i}/"), 0).unwrap();
        }
        let out = zip.finish().unwrap();
        let end = &out[out.len() - 22..];
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), u16::MAX);
        let locator = &out[out.len() - 42..out.len() - 22];
        assert_eq!(&locator[..4], &[0x50, 0x4b, 0x06, 0x07]);
        let record = u64::from_le_bytes(locator[8..16].try_into().unwrap()) as usize;
        assert_eq!(&out[record..record + 4], &[0x50, 0x4b, 0x06, 0x06]);
        assert_eq!(
            u64::from_le_bytes(out[record + 32..record + 40].try_into().unwrap()),
            LIMIT16 + 1
        );
    }
}
