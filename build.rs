//! Groups the code of the `coffer` executable that runs (x86_64 glibc release
//! builds): tools/link/startup-order.txt lists the functions `coffer serve`
//! runs from start to idle, then those only a first start runs, then those
//! SFTP sessions run, and the linker places them first in .text, in that
//! order, so a server maps about half as much of its code (the kernel maps
//! code in runs of 64 KiB or more around each page touched).
//! tools/link/gen-startup-order regenerates the list, as a release step
//! (tools/link/README.md); names a build does not have are ignored without a
//! warning.
//!
//! Only for the target the list was made on, linked by LLD (Rust's default
//! linker for x86_64-unknown-linux-gnu): other targets have other symbol
//! names, and other linkers may not know the option.

fn main() {
    println!("cargo::rerun-if-changed=tools/link/startup-order.txt");
    let target = std::env::var("TARGET").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = std::path::Path::new(&dir).join("tools/link/startup-order.txt");
    if target == "x86_64-unknown-linux-gnu" && profile == "release" && order.is_file() {
        println!(
            "cargo::rustc-link-arg-bin=coffer=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo::rustc-link-arg-bin=coffer=-Wl,--no-warn-symbol-ordering");
    }
}
