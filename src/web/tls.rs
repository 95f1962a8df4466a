//! The HTTPS certificate: made on first start, replaceable by the owner.
//!
//! The certificate and its key live in `<data-dir>/tls/` (`cert.pem`,
//! `key.pem`, mode 0600). On first start a self-signed ECDSA P-256
//! certificate is made for the box's host name, `localhost` and every
//! address of its interfaces. An uploaded certificate chain and key replace
//! both files atomically (written beside, then renamed) and take effect for
//! the next handshake, without a restart. TLS 1.3 and 1.2 only, with ring's
//! AEAD cipher suites (no CBC, no RSA key exchange).

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;

/// Why a certificate could not be loaded or accepted; the message is for
/// the person who uploaded it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM text holds no certificate, or a damaged one.
    #[error("the certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// The PEM text holds no private key, or a damaged one.
    #[error("the key is not a PEM private key (PKCS#8, SEC1 or PKCS#1)")]
    NoKey,
    /// The key type is not supported.
    #[error("the key type is not supported: use ECDSA P-256/P-384, Ed25519 or RSA")]
    UnsupportedKey,
    /// The key does not belong to the certificate.
    #[error("the private key does not belong to the certificate")]
    Mismatch,
    /// The certificate cannot be read.
    #[error("the certificate cannot be read: {0}")]
    Unreadable(String),
    /// Files could not be read or written.
    // The cause is in the message and deliberately not an error source:
    // a chain printed with its sources would say it twice.
    #[error("{what} {path}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// Making the certificate failed.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

/// What the UI and `coffer status` show of the certificate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateInfo {
    /// SHA-256 of the leaf certificate, colon-separated hex.
    pub fingerprint: String,
    /// The subject, as text.
    pub subject: String,
    /// The issuer, as text.
    pub issuer: String,
    /// Host names and addresses the certificate is for.
    pub names: Vec<String>,
    /// Valid from (Unix seconds).
    pub not_before: i64,
    /// Valid until (Unix seconds).
    pub not_after: i64,
    /// Made by the box itself (self-signed), not uploaded.
    pub self_signed: bool,
}

/// The certificate in use, swappable while serving.
#[derive(Debug)]
pub struct Certificates {
    dir: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, CertificateInfo)>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        Some(current.0.clone())
    }
}

impl Certificates {
    /// Loads the certificate from `<data-dir>/tls`, or makes a self-signed
    /// one for `names` (host names and addresses) when there is none.
    pub fn load_or_create(
        data_dir: &Path,
        names: &[String],
        now: Timestamp,
    ) -> Result<Self, TlsError> {
        let dir = data_dir.join("tls");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        if !cert_path.exists() || !key_path.exists() {
            let (cert, key) = self_signed(names, now)?;
            store(&dir, cert.as_bytes(), key.as_bytes())?;
        }
        let cert = read(&cert_path)?;
        let key = read(&key_path)?;
        let loaded = parse(&cert, &key)?;
        Ok(Self {
            dir,
            current: RwLock::new(loaded),
        })
    }

    /// What is being served.
    pub fn info(&self) -> CertificateInfo {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.1.clone()
    }

    /// Replaces the certificate with an uploaded chain and key, after
    /// checking that they parse and belong together. Nothing changes on
    /// error.
    pub fn replace(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertificateInfo, TlsError> {
        let loaded = parse(cert_pem, key_pem)?;
        store(&self.dir, cert_pem, key_pem)?;
        let info = loaded.1.clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(info)
    }
}

/// Describes the certificate stored in `<data-dir>/tls/cert.pem`, if any
/// (for `coffer status`, with or without a running server).
pub fn describe_file(data_dir: &Path) -> Option<CertificateInfo> {
    let pem = std::fs::read(data_dir.join("tls").join("cert.pem")).ok()?;
    let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    describe(&leaf).ok()
}

/// The certificate in use: what a running server serves (`served`), else
/// the one stored in the data dir. Status screens ask the server rather than
/// the file, which may be unreadable to the server's account.
pub fn in_use(served: Option<&Certificates>, data_dir: &Path) -> Option<CertificateInfo> {
    match served {
        Some(c) => Some(c.info()),
        None => describe_file(data_dir),
    }
}

/// The server's TLS configuration: TLS 1.3 and 1.2, ring's cipher suites,
/// HTTP/1.1 only.
pub fn server_config(certs: Arc<Certificates>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The names a self-signed certificate is made for: the host name, its
/// `.local` form, `localhost`, loopback and every interface address.
pub fn local_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(host) = nix::unistd::gethostname()
        && let Some(host) = host.to_str()
        && !host.is_empty()
    {
        names.push(host.to_string());
        if !host.contains('.') {
            names.push(format!("{host}.local"));
        }
    }
    names.push("localhost".into());
    let mut addrs: Vec<IpAddr> = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    if let Ok(ifaces) = nix::ifaddrs::getifaddrs() {
        for iface in ifaces {
            let Some(addr) = iface.address else { continue };
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            // Link-local IPv6 needs a zone, which a certificate cannot name.
            if let IpAddr::V6(v6) = ip
                && (v6.segments().first().copied().unwrap_or(0) & 0xffc0) == 0xfe80
            {
                continue;
            }
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
    }
    names.extend(addrs.iter().map(IpAddr::to_string));
    names.dedup();
    names
}

fn self_signed(names: &[String], now: Timestamp) -> Result<(String, String), TlsError> {
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(generate)?;
    let mut dn = rcgen::DistinguishedName::new();
    let common = names.first().cloned().unwrap_or_else(|| "coffer".into());
    dn.push(rcgen::DnType::CommonName, format!("Coffer {common}"));
    dn.push(
        rcgen::DnType::OrganizationName,
        "Coffer appliance (self-signed)",
    );
    params.distinguished_name = dn;
    // Valid from a day ago (clock skew) for ten years: the owner replaces
    // it with their own when they want one a browser trusts.
    let now = rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(now);
    params.not_before = now - std::time::Duration::from_secs(86_400);
    params.not_after = now + std::time::Duration::from_secs(10 * 365 * 86_400);
    let cert = params.self_signed(&key).map_err(generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|cause| TlsError::Io {
        what: "cannot read",
        path: path.to_path_buf(),
        cause,
    })
}

/// Writes both files beside their final names, then renames them in.
fn store(dir: &Path, cert: &[u8], key: &[u8]) -> Result<(), TlsError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |cause| TlsError::Io { what, path, cause }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("cannot create", dir))?;
    for (name, bytes) in [("key.pem", key), ("cert.pem", cert)] {
        let path = dir.join(name);
        let temp = dir.join(format!(".{name}.new"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io("cannot write", &temp))?;
        file.write_all(bytes).map_err(io("cannot write", &temp))?;
        file.sync_all().map_err(io("cannot write", &temp))?;
        std::fs::rename(&temp, &path).map_err(io("cannot replace", &path))?;
    }
    Ok(())
}

/// Parses a chain and key, checks they match, and describes the leaf.
fn parse(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Arc<CertifiedKey>, CertificateInfo), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate)?;
    let leaf = chain.first().ok_or(TlsError::NoCertificate)?.clone();
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey)?;
    let signing = provider::sign::any_supported_type(&key).map_err(|_| TlsError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(_)) => return Err(TlsError::Mismatch),
        Err(e) => return Err(TlsError::Unreadable(e.to_string())),
    }
    let info = describe(&leaf)?;
    Ok((Arc::new(certified), info))
}

fn describe(leaf: &CertificateDer<'_>) -> Result<CertificateInfo, TlsError> {
    let d = super::certinfo::describe(leaf.as_ref())
        .map_err(|e| TlsError::Unreadable(e.to_string()))?;
    let digest = Sha256::digest(leaf.as_ref());
    Ok(CertificateInfo {
        fingerprint: fingerprint(&digest),
        subject: d.subject,
        issuer: d.issuer,
        names: d.names,
        not_before: d.not_before,
        not_after: d.not_after,
        self_signed: d.self_signed,
    })
}

/// `AB:CD:...` as browsers show it.
fn fingerprint(digest: &[u8]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = 1_800_000_000;

    fn names() -> Vec<String> {
        vec!["coffer.test".into(), "127.0.0.1".into()]
    }

    /// A data dir with its first certificate, and what that certificate is.
    fn first_start() -> (tempfile::TempDir, Certificates, CertificateInfo) {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certificates::load_or_create(dir.path(), &names(), NOW).unwrap();
        let before = certs.info();
        (dir, certs, before)
    }

    #[test]
    fn first_start_makes_a_self_signed_certificate_that_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certificates::load_or_create(dir.path(), &names(), NOW).unwrap();
        let info = certs.info();
        assert!(info.self_signed);
        assert_eq!(info.names, names());
        assert_eq!(info.fingerprint.len(), 32 * 3 - 1);
        let mode = std::fs::metadata(dir.path().join("tls/key.pem")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let again = Certificates::load_or_create(dir.path(), &["other".into()], NOW).unwrap();
        assert_eq!(again.info(), info);
    }

    #[test]
    fn an_upload_is_checked_before_anything_changes() {
        let (dir, certs, before) = first_start();
        let (cert_a, key_a) = self_signed(&["a.test".into()], NOW).unwrap();
        let (_, key_b) = self_signed(&["b.test".into()], NOW).unwrap();
        let refused = |cert: &[u8], key: &[u8]| certs.replace(cert, key).unwrap_err().to_string();
        assert!(refused(cert_a.as_bytes(), key_b.as_bytes()).contains("does not belong"));
        assert!(refused(b"garbage", key_a.as_bytes()).contains("not a PEM certificate"));
        assert!(refused(cert_a.as_bytes(), b"garbage").contains("not a PEM private key"));
        assert!(refused(b"", b"").contains("not a PEM certificate"));
        assert_eq!(certs.info(), before);
        let saved = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
        let reloaded = Certificates::load_or_create(dir.path(), &[], NOW).unwrap();
        assert_eq!(
            reloaded.info(),
            before,
            "{}",
            String::from_utf8_lossy(&saved)
        );

        let info = certs.replace(cert_a.as_bytes(), key_a.as_bytes()).unwrap();
        assert_eq!(info.names, vec!["a.test".to_string()]);
        assert_eq!(certs.info(), info);
        assert_eq!(
            Certificates::load_or_create(dir.path(), &[], NOW)
                .unwrap()
                .info(),
            info
        );
    }

    #[test]
    fn malformed_uploads_give_a_clear_error_and_change_nothing() {
        let (_dir, certs, before) = first_start();
        let (cert, key) = self_signed(&["a.test".into()], NOW).unwrap();
        let der = CertificateDer::pem_slice_iter(cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let pem = |label: &str, der: &[u8]| {
            let body = data_encoding::BASE64.encode(der);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                lines.join("\n")
            )
        };
        let refused = |cert: &str| certs.replace(cert.as_bytes(), key.as_bytes()).unwrap_err();
        // The certificate under another label is no certificate.
        for label in ["PRIVATE KEY", "X509 CRL", "CERTIFICATE REQUEST"] {
            let e = refused(&pem(label, der.as_ref()));
            assert!(matches!(e, TlsError::NoCertificate), "{label}: {e}");
        }
        // Truncated DER, garbage and a huge length under the right label.
        let truncated = pem("CERTIFICATE", &der.as_ref()[..der.as_ref().len() / 2]);
        let garbage = pem("CERTIFICATE", b"not DER at all, just text");
        let huge = pem("CERTIFICATE", &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02]);
        for bad in [truncated, garbage, huge] {
            let e = refused(&bad).to_string();
            assert!(
                e.starts_with("the certificate cannot be read")
                    || e.starts_with("the certificate is not a PEM certificate")
                    || e.starts_with("the private key does not belong"),
                "{e}"
            );
        }
        // Reading goes through x509-cert: the same DER described directly
        // fails the same way.
        assert!(super::super::certinfo::describe(&der.as_ref()[..10]).is_err());
        assert_eq!(certs.info(), before);
    }

    #[test]
    fn fingerprints_are_colon_separated_upper_hex() {
        assert_eq!(fingerprint(&[0xab, 0x01, 0xff]), "AB:01:FF");
    }
}
