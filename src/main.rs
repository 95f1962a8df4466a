//! The `coffer` executable: see the crate documentation of the library and
//! `coffer --help`.

fn main() -> std::process::ExitCode {
    coffer::cli::main()
}
