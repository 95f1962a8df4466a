//! The TPM 2.0 backend: the data key sealed into a TPM object.
//!
//! Sealing creates the owner hierarchy's storage primary key from a fixed
//! template (ECC P-256, AES-128-CFB, restricted decryption: the TCG storage key
//! template, so one TPM always yields the same primary and nothing needs to be
//! stored in the TPM's NV memory), then a sealed data object (a KeyedHash
//! object without a scheme) holding the 32 key bytes under it. Only the
//! object's public and private parts are kept, in `data-key.tpm`; the private
//! part is encrypted by the primary key, so only this TPM can load it.
//!
//! The object can be used with an empty authorization value, or, with PCR 7
//! binding, only through a policy session whose PolicyPCR over PCR 7 (SHA-256
//! bank) matches the value at sealing time.
//!
//! The key travels to and from the TPM in parameter-encrypted sessions salted
//! with the primary key, so a probe on the TPM bus does not see it.
//!
//! Every transient object and session is flushed on every path, errors
//! included: a TPM without a resource manager (swtpm, `/dev/tpm0`) has room for
//! only a few, and a leak would make the next start fail.
//!
//! ## `data-key.tpm`
//!
//! ```text
//! "coffer-tpm-seal\n"   16 bytes, magic
//! version               1 byte, 1
//! flags                 1 byte, bit 0: bound to PCR 7
//! public length         2 bytes, big endian
//! public                marshalled TPMT_PUBLIC of the sealed object
//! private length        2 bytes, big endian
//! private               the TPM2B_PRIVATE buffer's bytes
//! ```

use std::str::FromStr;

use tss_esapi::Context;
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::handles::{KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, EccParameter, EccPoint, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder,
    PcrSlot, Private, Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters,
    SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};

use super::{DataKey, SealError};

/// No sealed object file is anywhere near this long.
pub(super) const MAX_BLOB_LEN: usize = 4096;

const MAGIC: &[u8; 16] = b"coffer-tpm-seal\n";
const VERSION: u8 = 1;
const FLAG_PCR7: u8 = 0b0000_0001;

/// The sealed data object as stored in the data dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SealedObject {
    /// Marshalled `TPMT_PUBLIC`.
    public: Vec<u8>,
    /// The `TPM2B_PRIVATE` buffer (encrypted by the TPM's primary key).
    private: Vec<u8>,
    /// Whether unsealing needs a PCR 7 policy session.
    pcr7: bool,
}

impl SealedObject {
    /// Whether the object is bound to PCR 7.
    pub(super) fn pcr7(&self) -> bool {
        self.pcr7
    }

    /// The file format described in the module documentation.
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 6 + self.public.len() + self.private.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(if self.pcr7 { FLAG_PCR7 } else { 0 });
        // Both parts come from TPM structures whose size is a u16.
        put_part(&mut out, &self.public);
        put_part(&mut out, &self.private);
        out
    }

    /// Parses and checks the file format and the TPM structures in it; the
    /// reason is for a `Corrupt` error.
    pub(super) fn parse(bytes: &[u8]) -> Result<SealedObject, String> {
        let sealed = Self::parse_envelope(bytes)?;
        let public = sealed.public_area().map_err(|e| e.to_string())?;
        if !matches!(public, Public::KeyedHash { .. }) {
            return Err("the public part is not a sealed data object".into());
        }
        if public.object_attributes().user_with_auth() == sealed.pcr7 {
            return Err("the PCR 7 flag contradicts the object's attributes".into());
        }
        sealed.private_area().map_err(|e| e.to_string())?;
        Ok(sealed)
    }

    /// Parses the file format only, without reading the TPM structures inside:
    /// what the serving process can check without the TPM libraries, which
    /// only the helper loads ([`super::helper`]). [`SealedObject::parse`]
    /// checks the rest.
    pub(super) fn parse_envelope(bytes: &[u8]) -> Result<SealedObject, String> {
        let mut reader = Reader(bytes);
        if reader.take(MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err("not a coffer TPM-sealed key (bad magic)".into());
        }
        let version = reader.byte().ok_or("truncated header")?;
        if version != VERSION {
            return Err(format!(
                "format version {version} is not supported (expected {VERSION})"
            ));
        }
        let flags = reader.byte().ok_or("truncated header")?;
        if flags & !FLAG_PCR7 != 0 {
            return Err(format!("unknown flags {flags:#04x}"));
        }
        let public = reader.part().ok_or("truncated public part")?.to_vec();
        let private = reader.part().ok_or("truncated private part")?.to_vec();
        if !reader.is_empty() {
            return Err("trailing bytes after the private part".into());
        }
        Ok(SealedObject {
            public,
            private,
            pcr7: flags & FLAG_PCR7 != 0,
        })
    }

    fn public_area(&self) -> tss_esapi::Result<Public> {
        Public::unmarshall(&self.public)
    }

    fn private_area(&self) -> tss_esapi::Result<Private> {
        Private::try_from(self.private.as_slice())
    }
}

/// A cursor over the file's bytes (or the helper's messages) that never reads
/// past the end.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    /// Whether every byte was read.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn byte(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    /// A part prefixed by its big-endian u16 length; empty parts are refused.
    pub(super) fn part(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        self.take(usize::from(len)).filter(|part| !part.is_empty())
    }
}

/// Appends a part as [`Reader::part`] reads it: its big-endian u16 length,
/// then its bytes (callers keep parts far below `u16::MAX`; a longer one is
/// cut, so the length always matches).
pub(super) fn put_part(out: &mut Vec<u8>, part: &[u8]) {
    let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part.get(..usize::from(len)).unwrap_or(part));
}

/// Seals `key` with the TPM reached through `tcti`.
pub(super) fn seal(tcti: &str, key: &DataKey, bind_pcr7: bool) -> Result<SealedObject, SealError> {
    let mut ctx = connect(tcti)?;
    let primary = create_primary(&mut ctx)?;
    flushing(&mut ctx, primary.into(), |ctx| {
        let policy = if bind_pcr7 {
            Some(pcr7_policy(ctx)?)
        } else {
            None
        };
        let template = sealed_object_template(policy)
            .map_err(|e| tpm_error("build the sealed object template", e))?;
        let sensitive = SensitiveData::try_from(key.expose().as_slice())
            .map_err(|e| tpm_error("seal the data key", e))?;
        let created = with_session(ctx, primary, SessionType::Hmac, |ctx, session| {
            ctx.execute_with_session(Some(session), |ctx| {
                ctx.create(primary, template, None, Some(sensitive), None, None)
            })
            .map_err(|e| tpm_error("seal the data key", e))
        })?;
        let public = created
            .out_public
            .marshall()
            .map_err(|e| tpm_error("store the sealed object", e))?;
        Ok(SealedObject {
            public,
            private: created.out_private.value().to_vec(),
            pcr7: bind_pcr7,
        })
    })
}

/// Unseals the data key from `sealed` with the TPM reached through `tcti`.
pub(super) fn unseal(tcti: &str, sealed: &SealedObject) -> Result<DataKey, SealError> {
    let corrupt = |e: tss_esapi::Error| SealError::Corrupt(format!("the sealed object: {e}"));
    let public = sealed.public_area().map_err(corrupt)?;
    let private = sealed.private_area().map_err(corrupt)?;

    let mut ctx = connect(tcti)?;
    let primary = create_primary(&mut ctx)?;
    flushing(&mut ctx, primary.into(), |ctx| {
        let object = ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.load(primary, private, public)
            })
            .map_err(|e| match kind(&e) {
                // The private part's integrity is checked with a key derived from
                // the parent: another TPM (or a cleared one) has another parent.
                Some(Tss2ResponseCodeKind::Integrity) => SealError::WrongTpm,
                _ => tpm_error("load the sealed data key", e),
            })?;
        flushing(ctx, object.into(), |ctx| {
            unseal_loaded(ctx, primary, object, sealed.pcr7)
        })
    })
}

fn unseal_loaded(
    ctx: &mut Context,
    primary: KeyHandle,
    object: KeyHandle,
    pcr7: bool,
) -> Result<DataKey, SealError> {
    let session_type = if pcr7 {
        SessionType::Policy
    } else {
        SessionType::Hmac
    };
    let data = with_session(ctx, primary, session_type, |ctx, session| {
        if pcr7 {
            let policy = PolicySession::try_from(session)
                .map_err(|e| tpm_error("start a policy session", e))?;
            // An empty digest makes the TPM use the current PCR 7 value; a
            // changed value then fails the object's policy at unseal.
            ctx.policy_pcr(policy, Digest::default(), pcr7_selection()?)
                .map_err(|e| tpm_error("check PCR 7", e))?;
        }
        ctx.execute_with_session(Some(session), |ctx| ctx.unseal(object.into()))
            .map_err(|e| match kind(&e) {
                Some(Tss2ResponseCodeKind::PolicyFail) => SealError::PolicyMismatch,
                _ => tpm_error("unseal the data key", e),
            })
    })?;
    DataKey::from_slice(data.value()).ok_or_else(|| {
        SealError::Corrupt(format!(
            "the TPM returned {} bytes instead of a 32-byte key",
            data.value().len()
        ))
    })
}

fn connect(tcti: &str) -> Result<Context, SealError> {
    let conf = TctiNameConf::from_str(tcti).map_err(|_| {
        SealError::TpmUnavailable(format!(
            "{tcti:?} is not a TCTI this build understands (expected e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321)"
        ))
    })?;
    Context::new(conf)
        .map_err(|e| SealError::TpmUnavailable(format!("cannot connect through {tcti}: {e}")))
}

/// The owner hierarchy's storage primary key, recreated from its template.
fn create_primary(ctx: &mut Context) -> Result<KeyHandle, SealError> {
    let template =
        primary_template().map_err(|e| tpm_error("build the storage key template", e))?;
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
    })
    .map(|created| created.key_handle)
    .map_err(|e| tpm_error("create the storage primary key", e))
}

fn primary_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    let zeros = EccParameter::try_from(vec![0u8; 32])?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::new(zeros.clone(), zeros))
        .build()
}

/// A sealed data object: empty authorization, or the given policy only.
fn sealed_object_template(policy: Option<Digest>) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_user_with_auth(policy.is_none())
        .with_admin_with_policy(policy.is_some())
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy.unwrap_or_default())
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

fn pcr7_selection() -> Result<PcrSelectionList, SealError> {
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &[PcrSlot::Slot7])
        .build()
        .map_err(|e| tpm_error("select PCR 7", e))
}

/// The policy digest of "PCR 7 (SHA-256) has its current value", computed by a
/// trial session.
fn pcr7_policy(ctx: &mut Context) -> Result<Digest, SealError> {
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Trial,
            SymmetricDefinition::Null,
            HashingAlgorithm::Sha256,
        )
        .map_err(|e| tpm_error("start a trial policy session", e))?
        .ok_or_else(no_session)?;
    flushing(ctx, SessionHandle::from(session).into(), |ctx| {
        let policy = PolicySession::try_from(session)
            .map_err(|e| tpm_error("start a trial policy session", e))?;
        ctx.policy_pcr(policy, Digest::default(), pcr7_selection()?)
            .map_err(|e| tpm_error("compute the PCR 7 policy", e))?;
        ctx.policy_get_digest(policy)
            .map_err(|e| tpm_error("compute the PCR 7 policy", e))
    })
}

/// Runs `f` with a session salted by `primary` whose parameters are encrypted
/// both ways, and flushes the session afterwards whatever happened.
fn with_session<T>(
    ctx: &mut Context,
    primary: KeyHandle,
    session_type: SessionType,
    f: impl FnOnce(&mut Context, AuthSession) -> Result<T, SealError>,
) -> Result<T, SealError> {
    let session = ctx
        .start_auth_session(
            Some(primary),
            None,
            None,
            session_type,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(|e| tpm_error("start an encrypted session", e))?
        .ok_or_else(no_session)?;
    flushing(ctx, SessionHandle::from(session).into(), |ctx| {
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .build();
        ctx.tr_sess_set_attributes(session, attributes, mask)
            .map_err(|e| tpm_error("start an encrypted session", e))?;
        f(ctx, session)
    })
}

/// Runs `f`, then flushes `handle` from the TPM whether `f` succeeded or not.
/// The first error wins; a failed flush after success is logged, not returned,
/// since the result is already in hand (the context retries when dropped).
fn flushing<T>(
    ctx: &mut Context,
    handle: ObjectHandle,
    f: impl FnOnce(&mut Context) -> Result<T, SealError>,
) -> Result<T, SealError> {
    let result = f(ctx);
    ctx.clear_sessions();
    if let Err(e) = ctx.flush_context(handle) {
        tracing::warn!(error = %e, "cannot flush a transient TPM handle");
    }
    result
}

fn no_session() -> SealError {
    SealError::Tpm {
        action: "start a session".into(),
        message: "the TPM returned no session handle".into(),
    }
}

fn tpm_error(action: &'static str, e: tss_esapi::Error) -> SealError {
    SealError::Tpm {
        action: action.into(),
        message: e.to_string(),
    }
}

fn kind(e: &tss_esapi::Error) -> Option<Tss2ResponseCodeKind> {
    match e {
        tss_esapi::Error::Tss2Error(rc) => rc.kind(),
        tss_esapi::Error::WrapperError(_) => None,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests;
