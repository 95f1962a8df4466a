//! `coffer-tpm`: the helper that `coffer` runs to seal and unseal its data
//! key with the TPM, so that the serving process never loads the TPM
//! libraries. Built with the `tpm` feature; see `coffer::seal`.

fn main() -> std::process::ExitCode {
    coffer::seal::tpm_helper_main()
}
