//! The one list of environment variables is complete: every `TAP_*` and
//! `TELEGRAM_*` name read anywhere in the sources is in it.

use std::path::{Path, PathBuf};

use tap_proxy::env_vars::ENV_VARS;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("readable source dir")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `"TAP_..."` and `"TELEGRAM_..."` string literals (whole names only).
fn names_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["\"TAP_", "\"TELEGRAM_"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let tail = &rest[i + 1..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            if tail[end..].starts_with('"') && !tail[..end].ends_with('_') {
                found.push(tail[..end].to_owned());
            }
            rest = &tail[end..];
        }
    }
    found
}

#[test]
fn every_variable_read_in_the_sources_is_listed() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for c in std::fs::read_dir(&crates).expect("crates dir").flatten() {
        let src = c.path().join("src");
        if src.is_dir() && !c.path().ends_with("tap-testkit") {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 20, "found the sources: {}", files.len());
    let mut missing = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("utf-8 source");
        for n in names_in(&text) {
            if !ENV_VARS.iter().any(|e| e.name == n) && !missing.contains(&n) {
                missing.push(n);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "read but not listed in env_vars.rs: {missing:?}"
    );
    let mut names: Vec<_> = ENV_VARS.iter().map(|e| e.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ENV_VARS.len(), "no variable listed twice");
}
