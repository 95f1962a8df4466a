//! Just enough DER (X.690) to describe an X.509 certificate for the owner:
//! subject, issuer, host names and addresses, validity.
//!
//! rustls and webpki check certificates; this only reads the fields the
//! system page shows, so it needs no general ASN.1 parser. Every length is
//! checked against what is left; anything unexpected is an error, never a
//! panic or a guess.

use std::net::IpAddr;

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct Malformed(&'static str);

/// The fields of a certificate the system page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The subject, as `CN=..., O=...`.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// DNS names and IP addresses from the subject alternative names.
    pub names: Vec<String>,
    /// Valid from (Unix seconds).
    pub not_before: i64,
    /// Valid until (Unix seconds).
    pub not_after: i64,
    /// Subject and issuer are the same name.
    pub self_signed: bool,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` EXPLICIT: the version.
const VERSION: u8 = 0xa0;
/// `[3]` EXPLICIT: the extensions.
const EXTENSIONS: u8 = 0xa3;
/// GeneralName `[2]` dNSName and `[7]` iPAddress (IMPLICIT).
const DNS_NAME: u8 = 0x82;
const IP_ADDRESS: u8 = 0x87;
/// 2.5.29.17, subjectAltName.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads DER values one after another from a slice.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next value: its tag and its contents.
    fn any(&mut self) -> Result<(u8, &'a [u8]), Malformed> {
        let (&tag, rest) = self.0.split_first().ok_or(Malformed("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(Malformed("multi-byte tag"));
        }
        let (&first, mut rest) = rest.split_first().ok_or(Malformed("truncated"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(Malformed("bad length"));
            }
            let (bytes, after) = rest.split_at_checked(count).ok_or(Malformed("truncated"))?;
            rest = after;
            bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
        };
        let (contents, after) = rest.split_at_checked(len).ok_or(Malformed("truncated"))?;
        self.0 = after;
        Ok((tag, contents))
    }

    /// The next value, which must have `tag`.
    fn take(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], Malformed> {
        match self.any()? {
            (t, contents) if t == tag => Ok(contents),
            _ => Err(Malformed(what)),
        }
    }

    /// The next value if it has `tag`.
    fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, Malformed> {
        if self.peek() == Some(tag) {
            self.any().map(|(_, c)| Some(c))
        } else {
            Ok(None)
        }
    }
}

/// Describes the DER certificate `der`.
pub fn describe(der: &[u8]) -> Result<Described, Malformed> {
    let mut outer = Der(der);
    let cert = outer.take(SEQUENCE, "not a certificate")?;
    if !outer.is_empty() {
        return Err(Malformed("trailing data"));
    }
    let mut cert = Der(cert);
    let mut tbs = Der(cert.take(SEQUENCE, "no to-be-signed part")?);
    tbs.optional(VERSION)?;
    tbs.take(INTEGER, "no serial number")?;
    tbs.take(SEQUENCE, "no signature algorithm")?;
    let issuer = tbs.take(SEQUENCE, "no issuer")?;
    let mut validity = Der(tbs.take(SEQUENCE, "no validity")?);
    let not_before = time(validity.any()?)?;
    let not_after = time(validity.any()?)?;
    let subject = tbs.take(SEQUENCE, "no subject")?;
    tbs.take(SEQUENCE, "no public key")?;
    let mut names = Vec::new();
    while !tbs.is_empty() {
        let (tag, contents) = tbs.any()?;
        if tag == EXTENSIONS {
            names = alt_names(contents)?;
        }
    }
    Ok(Described {
        subject: name(subject)?,
        issuer: name(issuer)?,
        names,
        not_before,
        not_after,
        self_signed: subject == issuer,
    })
}

/// The DNS names and addresses in the subjectAltName extension.
fn alt_names(explicit: &[u8]) -> Result<Vec<String>, Malformed> {
    let mut extensions = Der(Der(explicit).take(SEQUENCE, "bad extensions")?);
    let mut names = Vec::new();
    while !extensions.is_empty() {
        let mut extension = Der(extensions.take(SEQUENCE, "bad extension")?);
        let id = extension.take(OID, "bad extension id")?;
        extension.optional(BOOLEAN)?;
        let value = extension.take(OCTET_STRING, "bad extension value")?;
        if id != SUBJECT_ALT_NAME {
            continue;
        }
        let mut general = Der(Der(value).take(SEQUENCE, "bad alternative names")?);
        while !general.is_empty() {
            match general.any()? {
                (DNS_NAME, n) => names.push(String::from_utf8_lossy(n).into_owned()),
                (IP_ADDRESS, a) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(a) {
                        names.push(IpAddr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(a) {
                        names.push(IpAddr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(names)
}

/// A distinguished name as `CN=a, O=b` (attributes of one RDN joined by
/// ` + `), in the order the certificate lists them.
fn name(contents: &[u8]) -> Result<String, Malformed> {
    let mut rdns = Der(contents);
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let mut set = Der(rdns.take(SET, "bad name")?);
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let mut pair = Der(set.take(SEQUENCE, "bad name attribute")?);
            let oid = pair.take(OID, "bad name attribute type")?;
            let (tag, value) = pair.any()?;
            attributes.push(format!("{}={}", attribute_name(oid), text(tag, value)));
        }
        parts.push(attributes.join(" + "));
    }
    Ok(parts.join(", "))
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        _ => dotted(oid),
    }
}

/// An OID in dotted form (`2.5.4.3`).
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A directory string as text; other types as `#` and hex.
fn text(tag: u8, value: &[u8]) -> String {
    match tag {
        // UTF8String, PrintableString, IA5String, VisibleString
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8_lossy(value).into_owned(),
        // TeletexString: Latin-1 in practice
        0x14 => value.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16BE
        0x1e => {
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => {
            let mut s = String::from("#");
            for b in value {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as
/// Unix seconds; DER allows only these forms.
fn time((tag, value): (u8, &[u8])) -> Result<i64, Malformed> {
    let bad = Malformed("bad time");
    let field = |at: usize, len: usize| value.get(at..at + len).and_then(digits);
    let (year, at) = match (tag, value.len()) {
        (UTC_TIME, 13) => {
            let yy = field(0, 2).ok_or(bad.clone())?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (GENERALIZED_TIME, 15) => (field(0, 4).ok_or(bad.clone())?, 4),
        _ => return Err(bad),
    };
    if value.last() != Some(&b'Z') {
        return Err(bad);
    }
    let mut parts = [0i64; 5];
    for (i, part) in parts.iter_mut().enumerate() {
        *part = field(at + 2 * i, 2).ok_or(bad.clone())?;
    }
    let [month, day, hour, minute, second] = parts;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad);
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second)
}

fn digits(s: &[u8]) -> Option<i64> {
    s.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made() -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![
            "coffer.local".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Coffer appliance");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Coffer");
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2051, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_what_rcgen_wrote() {
        let d = describe(&made()).unwrap();
        assert_eq!(d.subject, "CN=Coffer appliance, O=Coffer");
        assert_eq!(d.issuer, d.subject);
        assert!(d.self_signed);
        assert_eq!(d.names, ["coffer.local", "127.0.0.1", "::1"]);
        // date -u -d 2026-01-02 +%s; date -u -d 2051-03-04 +%s
        assert_eq!(d.not_before, 1_767_312_000);
        assert_eq!(d.not_after, 2_561_500_800);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let good = made();
        assert!(describe(&[]).is_err());
        assert!(describe(b"-----BEGIN CERTIFICATE-----").is_err());
        assert!(describe(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(describe(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(describe(&[0x3f, 0x00]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(describe(&trailing).is_err());
        // Every truncation and every single-byte change either reads or is
        // refused.
        for n in 0..good.len() {
            assert!(describe(&good[..n]).is_err(), "truncated at {n}");
            let mut changed = good.clone();
            changed[n] ^= 0xff;
            let _ = describe(&changed);
        }
    }

    #[test]
    fn times_and_names_in_their_other_forms() {
        assert_eq!(time((UTC_TIME, b"491231235959Z")).unwrap(), 2_524_607_999);
        assert_eq!(time((UTC_TIME, b"500101000000Z")).unwrap(), -631_152_000);
        assert_eq!(
            time((GENERALIZED_TIME, b"20380119031408Z")).unwrap(),
            2_147_483_648
        );
        assert!(time((GENERALIZED_TIME, b"2038011903140Z")).is_err());
        assert!(time((UTC_TIME, b"491331235959Z")).is_err());
        assert!(time((UTC_TIME, b"4912312359590")).is_err());
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
        assert_eq!(text(0x1e, &[0, b'h', 0, b'i']), "hi");
        assert_eq!(text(0x04, &[0xab]), "#ab");
    }
}
