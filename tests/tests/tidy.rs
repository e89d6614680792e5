//! Repository hygiene: every Rust module opens with a `//!` paragraph, and
//! ARCHITECTURE.md names only files that exist.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

#[test]
fn every_module_starts_with_a_doc_paragraph() {
    let mut files = Vec::new();
    for crate_dir in [
        "daemon/src",
        "daemon/benches",
        "web/src",
        "models/src",
        "models/tests",
        "tests/src",
        "tests/tests",
    ] {
        rust_files(&root().join(crate_dir), &mut files);
    }
    let undocumented: Vec<_> = files
        .iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| path.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(files.len() > 20);
    assert!(
        undocumented.is_empty(),
        "modules without a `//!` header: {undocumented:?}"
    );
}

#[test]
fn architecture_md_names_existing_files() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',') {
        let word = word.trim_matches(|c: char| c == '`' || c == ':' || c == '.');
        if !(word.ends_with(".rs") || word.ends_with(".toml") || word.ends_with(".md"))
            || word.contains('*')
        {
            continue;
        }
        let found = [
            "",
            "daemon/",
            "daemon/src/",
            "daemon/src/pipeline/",
            "daemon/src/pipeline/store/",
            "daemon/src/people/",
            "daemon/src/consent/",
            "daemon/src/export/",
            "daemon/src/audit/",
            "daemon/src/dsr/",
            "daemon/src/cli/",
            "daemon/src/console/",
            "daemon/src/console/screens/",
            "web/",
            "models/",
            "packaging/",
            "tests/",
            "tests/src/",
            "tests/tests/",
        ]
        .iter()
        .any(|prefix| root().join(format!("{prefix}{word}")).exists());
        if !found {
            missing.push(word.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {missing:?}"
    );
}
