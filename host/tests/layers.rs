//! The library's layers hold: every module imports only from layers below its own (reading the
//! `crate::` paths of every file under `src/`, the binary's excepted), and nothing in the
//! library reaches the command line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules, lowest layer first; modules of one layer may not import each other
/// either, except where listed as an allowed sideways edge.
const LAYERS: [&[&str]; 7] = [
    &["error", "units"],
    &["tempfiles", "ring"],
    &["wav", "memory"],
    &["source"],
    &["take"],
    &["recorder"],
    &["dictation"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/take/file.rs` -> `take`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

/// The top-level modules a file names through `crate::…` (code and doc links alike).
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn every_module_imports_only_from_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            panic!(
                "{}: module `{module}` has no layer in this test",
                file.display()
            );
        };
        let text = std::fs::read_to_string(file).expect("read");
        for target in imports(&text) {
            if target == module || target == "core" || target == "prelude" {
                continue;
            }
            match layer_of(&target) {
                Some(layer) if layer < own => {}
                _ => upward.push(format!(
                    "{} ({module}, layer {own}) imports crate::{target}",
                    file.strip_prefix(&src).expect("under src").display()
                )),
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_library_never_names_the_command_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        // Unit tests may use dev-dependencies.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for forbidden in [
            "clap::",
            "indicatif::",
            "tracing_subscriber::",
            "serde_json::",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}: the command line's dependencies stay in src/bin",
                file.display()
            );
        }
    }
}
