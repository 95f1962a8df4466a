//! What the system page shows of an X.509 certificate: subject, issuer,
//! host names and addresses, validity.
//!
//! rustls and webpki check certificates; this only describes one, read by
//! RustCrypto's `x509-cert` (on the `der` crate the SSH stack already
//! uses) under its RFC 5280 profile. Any input it cannot read, including
//! trailing bytes after the certificate, is an error that names what was
//! wrong; none makes it panic.

use std::net::IpAddr;

use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

/// Why a certificate could not be read: the `der` decoder's account of it
/// (what it expected, at which byte).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct Malformed(String);

impl From<x509_cert::der::Error> for Malformed {
    fn from(e: x509_cert::der::Error) -> Self {
        Malformed(e.to_string())
    }
}

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

/// Describes the DER certificate `der`.
pub fn describe(der: &[u8]) -> Result<Described, Malformed> {
    let cert = Certificate::from_der(der)?;
    let tbs = cert.tbs_certificate();
    let names = match tbs.get_extension::<SubjectAltName>()? {
        Some((_critical, alt)) => alt.0.iter().filter_map(alt_name).collect(),
        None => Vec::new(),
    };
    let seconds = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs())
            .map_err(|_| Malformed("a validity time out of range".into()))
    };
    Ok(Described {
        subject: name(tbs.subject()),
        issuer: name(tbs.issuer()),
        names,
        not_before: seconds(tbs.validity().not_before)?,
        not_after: seconds(tbs.validity().not_after)?,
        self_signed: tbs.subject() == tbs.issuer(),
    })
}

/// A DNS name or IP address from the subject alternative names; other
/// kinds (e-mail, URI, ...) are not shown.
fn alt_name(general: &GeneralName) -> Option<String> {
    match general {
        GeneralName::DnsName(dns) => Some(dns.to_string()),
        GeneralName::IpAddress(octets) => {
            let bytes = octets.as_bytes();
            if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
                Some(IpAddr::from(v4).to_string())
            } else {
                <[u8; 16]>::try_from(bytes)
                    .ok()
                    .map(|v6| IpAddr::from(v6).to_string())
            }
        }
        _ => None,
    }
}

/// A distinguished name in the order the certificate lists it, `CN=a,
/// O=b`, attributes of one RDN joined by ` + `.
fn name(name: &Name) -> String {
    name.iter_rdn()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join(" + "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One attribute as `CN=text`: the usual short name or the dotted OID,
/// then the value as text when it is one of the string types, else `#`
/// and the hex of its DER (RFC 4514's form).
///
/// `x509-cert`'s own `Display` would look the name up in const-oid's table
/// of 1,139 OIDs (about 90 KB in the binary, which the static build has not
/// got to spare: benches/RESULTS.md); the names an owner meets are these.
fn attribute(attribute: &AttributeTypeAndValue) -> String {
    use x509_cert::der::asn1::{
        BmpString, Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef,
    };
    use x509_cert::der::oid::db::{rfc3280, rfc4519};
    use x509_cert::der::{Encode, Tag, Tagged};

    let oid = attribute.oid;
    let key = [
        (rfc4519::CN, "CN"),
        (rfc4519::SERIAL_NUMBER, "serialNumber"),
        (rfc4519::C, "C"),
        (rfc4519::L, "L"),
        (rfc4519::ST, "ST"),
        (rfc4519::O, "O"),
        (rfc4519::OU, "OU"),
        (rfc4519::DC, "DC"),
        (rfc3280::EMAIL_ADDRESS, "emailAddress"),
    ]
    .iter()
    .find(|(known, _)| *known == oid)
    .map_or_else(|| oid.to_string(), |(_, short)| (*short).to_string());
    let value = &attribute.value;
    let text = match value.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(value).ok().map(|s| s.to_string()),
        Tag::PrintableString => PrintableStringRef::try_from(value)
            .ok()
            .map(|s| s.to_string()),
        Tag::Ia5String => Ia5StringRef::try_from(value).ok().map(|s| s.to_string()),
        Tag::TeletexString => TeletexStringRef::try_from(value)
            .ok()
            .map(|s| s.to_string()),
        Tag::BmpString => value.decode_as::<BmpString>().ok().map(|s| s.to_string()),
        _ => None,
    };
    match text {
        Some(text) => format!("{key}={text}"),
        None => {
            let der = value.to_der().unwrap_or_default();
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            format!("{key}=#{hex}")
        }
    }
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
        let mut trailing = good.clone();
        trailing.push(0);
        for bad in [
            &[][..],
            b"-----BEGIN CERTIFICATE-----",
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[
                0x30, 0x89, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            &[0x3f, 0x00],
            &[0x30, 0x00],
            &trailing,
        ] {
            let e = describe(bad).unwrap_err().to_string();
            assert!(e.starts_with("malformed certificate: "), "{e}");
            assert!(e.len() > "malformed certificate: ".len() + 5, "{e}");
        }
        // Every truncation and every single-byte change either reads or is
        // refused.
        for n in 0..good.len() {
            assert!(describe(&good[..n]).is_err(), "truncated at {n}");
            let mut changed = good.clone();
            changed[n] ^= 0xff;
            let _ = describe(&changed);
        }
    }

    /// A self-signed certificate with this subject and validity.
    fn with(
        subject: &[(rcgen::DnType, rcgen::DnValue)],
        from: (i32, u8, u8),
        until: (i32, u8, u8),
    ) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["x.test".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), value.clone());
        }
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn times_and_names_in_their_other_forms() {
        use rcgen::{DnType, DnValue};
        let cn = |value: DnValue| [(DnType::CommonName, value)];
        // UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280).
        let d = describe(&with(
            &cn(DnValue::Utf8String("a".into())),
            (2049, 12, 31),
            (2050, 1, 1),
        ))
        .unwrap();
        assert_eq!(d.not_before, 2_524_521_600);
        assert_eq!(d.not_after, 2_524_608_000);
        let d = describe(&with(
            &cn(DnValue::Utf8String("a".into())),
            (1970, 1, 1),
            (2038, 1, 20),
        ))
        .unwrap();
        assert_eq!((d.not_before, d.not_after), (0, 2_147_558_400));
        // Text in its several string types, shown as it is (this is for
        // reading, not a DN string to parse); an attribute type without a
        // short name as its dotted OID.
        for (value, want) in [
            (
                DnValue::PrintableString("Box 1".try_into().unwrap()),
                "CN=Box 1",
            ),
            (DnValue::Ia5String("box@x".try_into().unwrap()), "CN=box@x"),
            (
                DnValue::Utf8String("Zürich, \"Süd\"".into()),
                "CN=Zürich, \"Süd\"",
            ),
            (DnValue::BmpString("hi".try_into().unwrap()), "CN=hi"),
            (
                DnValue::TeletexString("cafe".try_into().unwrap()),
                "CN=cafe",
            ),
        ] {
            let d = describe(&with(&cn(value), (2026, 1, 1), (2027, 1, 1))).unwrap();
            assert_eq!(d.subject, want);
        }
        // A subject value that is not text: its DER in hex (the issuer, the
        // same name before it, keeps its text; the signature no longer
        // matches, and describing does not check it).
        let mut der = with(
            &cn(DnValue::Utf8String("hi".into())),
            (2026, 1, 1),
            (2027, 1, 1),
        );
        let at = der
            .windows(4)
            .rposition(|w| w == [0x0c, 2, b'h', b'i'])
            .unwrap();
        der[at] = 0x04;
        assert_eq!(describe(&der).unwrap().subject, "CN=#04026869");
        // der 0.8 has no UniversalString: such a name is refused, with why.
        let e = describe(&with(
            &cn(DnValue::UniversalString("h".try_into().unwrap())),
            (2026, 1, 1),
            (2027, 1, 1),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("tag"), "{e}");
        let d = describe(&with(
            &[
                (
                    DnType::CountryName,
                    DnValue::PrintableString("CH".try_into().unwrap()),
                ),
                (
                    DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]),
                    DnValue::Utf8String("hi".into()),
                ),
            ],
            (2026, 1, 1),
            (2027, 1, 1),
        ))
        .unwrap();
        assert_eq!(d.subject, "C=CH, 1.3.6.1.4.1.99999.1=hi");
    }

    #[test]
    fn times_before_1970_are_refused_with_a_reason() {
        // RFC 5280's UTCTime reaches back to 1950; x509-cert reads times
        // from 1970 on, and says so rather than guessing.
        let e = describe(&with(
            &[(
                rcgen::DnType::CommonName,
                rcgen::DnValue::Utf8String("a".into()),
            )],
            (1950, 1, 1),
            (2030, 1, 1),
        ))
        .unwrap_err();
        assert!(e.to_string().starts_with("malformed certificate: "), "{e}");
    }
}
