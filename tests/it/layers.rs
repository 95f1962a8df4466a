//! Rules about the crate's layers that the compiler does not check.

use std::path::Path;

/// Files that may use `anyhow`: the command line, and the `serve` and
/// `console` commands' own entry points (their top function only, as their
/// module docs say). Every layer below returns its own error enum.
const ANYHOW_ALLOWED: &[&str] = &["main.rs", "cli/", "server/mod.rs", "console/mod.rs"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn anyhow_stays_at_the_commands_top_level() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if ANYHOW_ALLOWED
            .iter()
            .any(|a| rel == *a || (a.ends_with('/') && rel.starts_with(a)))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may use anyhow to print a chain as the command line does.
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if !line.starts_with("//") && line.contains("anyhow") {
                found.push(format!("src/{rel}:{}: {line}", n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "anyhow below the entry points:\n{}",
        found.join("\n")
    );
}
