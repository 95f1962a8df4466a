//! Randomness as a parameter.
//!
//! Every secret the core makes (the claim code, recovery codes, access
//! token ids and secrets, TOTP enrolment ids and seeds, password salts) and
//! every value of a web session (its cookie or bearer value, its CSRF token,
//! its public id) comes from an [`Rng`] handed to the core
//! ([`crate::auth::Auth::with_rng`]), the way time comes from a
//! [`crate::clock::Clock`]. The server uses [`OsRng`], the operating
//! system's source; unit tests hand in a seeded source whose output they
//! can repeat and predict.
//!
//! What stays on the operating system's source, outside this seam: the data
//! key, its nonces and the names of private files (`seal`, which never
//! passes through the core and whose key must not be reproducible by any
//! configuration), the SSH host keys, the suffix of an upload's temporary
//! file and the console's presence code.

use std::fmt;

/// A source of random bytes.
pub trait Rng: Send + Sync + fmt::Debug {
    /// Fills `dest` with random bytes, or says why it cannot.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;
}

impl dyn Rng + '_ {
    /// `N` random bytes.
    pub fn bytes<const N: usize>(&self) -> Result<[u8; N], RandomError> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }
}

/// The random source failed: a fault of the box, never of a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct RandomError(pub String);

/// The operating system's random source (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(dest).map_err(|e| RandomError(e.to_string()))
    }
}

/// A deterministic source for tests: block `n` of the stream is
/// SHA-256(label, seed, n), 32 bytes per block, and every call starts a new
/// block. Two sources with one seed give the same bytes for the same calls;
/// another seed gives others.
#[cfg(test)]
#[derive(Debug)]
pub struct SeededRng {
    seed: u64,
    next: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
impl SeededRng {
    /// A source at the start of the stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
impl Rng for SeededRng {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        use sha2::Digest;
        for chunk in dest.chunks_mut(32) {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let block = sha2::Sha256::new()
                .chain_update(b"coffer/seeded-rng/v1")
                .chain_update(self.seed.to_le_bytes())
                .chain_update(n.to_le_bytes())
                .finalize();
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
        Ok(())
    }
}

/// A source that always fails, for tests of what a failing source does.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct FailingRng;

#[cfg(test)]
impl Rng for FailingRng {
    fn fill(&self, _dest: &mut [u8]) -> Result<(), RandomError> {
        Err(RandomError("the test's source is empty".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_source_repeats_itself_and_another_seed_does_not() {
        let (a, b, c) = (SeededRng::new(1), SeededRng::new(1), SeededRng::new(2));
        let (a, b, c): (&dyn Rng, &dyn Rng, &dyn Rng) = (&a, &b, &c);
        let first = a.bytes::<40>().unwrap();
        assert_eq!(first, b.bytes::<40>().unwrap());
        assert_ne!(first, c.bytes::<40>().unwrap());
        // The stream moves on.
        assert_ne!(a.bytes::<40>().unwrap(), first);
        assert!(FailingRng.fill(&mut [0u8; 1]).is_err());
    }

    #[test]
    fn the_operating_system_source_fills() {
        let os: &dyn Rng = &OsRng;
        let (x, y) = (os.bytes::<32>().unwrap(), os.bytes::<32>().unwrap());
        assert_ne!(x, y);
        os.fill(&mut []).unwrap();
    }
}
