//! Builds the C shim that silences ALSA's own diagnostics (called by `quiet_alsa` in
//! `src/source/device/alsa.rs`), on Linux only, against libasound found by pkg-config; and has
//! the linker lay the `w4l` binary's code out in the order of `symbol-order.txt`.
//!
//! ALSA's error handler is C-variadic, and stable Rust cannot define a C-variadic function, so
//! the handler is defined in C, with the exact type ALSA calls it through.

/// The shim: `w4l_alsa_quiet()` installs a handler that ignores everything.
const SHIM: &str = r#"#include <alsa/asoundlib.h>

static void w4l_alsa_silent(const char *file, int line, const char *function, int err,
                            const char *fmt, ...) {
    (void)file;
    (void)line;
    (void)function;
    (void)err;
    (void)fmt;
}

/* snd_lib_error_set_handler's result: 0 on success. */
int w4l_alsa_quiet(void) { return snd_lib_error_set_handler(w4l_alsa_silent); }
"#;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    order_symbols();
    // Also emits the link line for libasound, which the shim needs.
    let alsa = pkg_config::Config::new()
        .probe("alsa")
        .unwrap_or_else(|e| panic!("libasound not found (install libasound2-dev): {e}"));
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let source = out.join("w4l_alsa_quiet.c");
    std::fs::write(&source, SHIM).expect("write the ALSA shim");
    let mut build = cc::Build::new();
    build.file(&source).warnings(true).extra_warnings(true);
    for dir in &alsa.include_paths {
        build.include(dir);
    }
    build.compile("w4l_alsa_quiet");
}

/// The functions a recording runs, listed in `symbol-order.txt` (made by
/// `scripts/symbol-order`), are placed first and together in the `w4l` binary. The kernel maps
/// a program's code 64 KiB around every page it first runs (fault-around): spread over the
/// whole 2.4 MB of code, the 0.8 MB a recording runs mapped 1.9 MiB; packed, 0.9 MiB.
///
/// Only on x86-64 Linux with glibc, where Rust links with LLD (which reads the file; names it
/// does not find are skipped silently), and not with `W4L_SYMBOL_ORDER=0` (for a linker
/// without `--symbol-ordering-file`, such as GNU ld).
fn order_symbols() {
    println!("cargo::rerun-if-changed=symbol-order.txt");
    println!("cargo::rerun-if-env-changed=W4L_SYMBOL_ORDER");
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || target("CARGO_CFG_TARGET_ENV") != "gnu"
        || std::env::var("W4L_SYMBOL_ORDER").as_deref() == Ok("0")
    {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let file = std::path::Path::new(&dir).join("symbol-order.txt");
    if file.is_file() {
        println!(
            "cargo::rustc-link-arg-bin=w4l=-Wl,--symbol-ordering-file={}",
            file.display()
        );
        println!("cargo::rustc-link-arg-bin=w4l=-Wl,--no-warn-symbol-ordering");
    }
}
