//! Builds the C shim that silences ALSA's own diagnostics (called by `quiet_alsa` in
//! `src/capture/alsa.rs`), on Linux only, against libasound found by pkg-config.
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
