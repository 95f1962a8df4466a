//! Sealed secrets (placeholder until the sealing module lands).
