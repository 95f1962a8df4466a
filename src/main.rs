//! The `coffer` executable: see the crate documentation of the library and
//! `coffer --help`.

fn main() -> std::process::ExitCode {
    #[cfg(feature = "tpm")]
    quiet_tpm_library();
    coffer::cli::main()
}

/// The TPM library (tpm2-tss) prints its own `ERROR:esys:...` lines on stderr
/// for failures that Coffer reports itself in one clear line (a data disk
/// moved to another TPM, a changed PCR 7). Its only switch is the `TSS2_LOG`
/// environment variable, read inside the library; setting it in-process would
/// take `unsafe`, so the process re-executes itself once with the variable
/// set (same pid, same arguments). An operator who sets `TSS2_LOG` gets the
/// library's logging as asked.
#[cfg(feature = "tpm")]
fn quiet_tpm_library() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("TSS2_LOG").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    // `exec` returns only when it failed; then run on with the default logging.
    let _ = command.args(args).env("TSS2_LOG", "all+NONE").exec();
}
