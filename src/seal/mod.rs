//! Sealed secrets (placeholder until the sealing module lands).

#[doc(hidden)]
pub mod swtpm_process;
