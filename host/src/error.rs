//! The one error type of the host: every failure says what was wrong and what to do.
//!
//! The binary prints an [`Error`] as one line, `error: <what was wrong>; <what to do>`, on
//! stderr and exits with [`Error::exit_code`]: 2 for a usage error (the command line asked for
//! something impossible: an unknown device, a zero budget, a malformed `--input` file), 1 for a
//! runtime error (the command line was fine but the machine or the audio system failed).

use std::fmt;

/// Whether the command line or the environment was at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself cannot be met: fix the command line. Exit code 2.
    Usage,
    /// The request was fine but running it failed. Exit code 1.
    Runtime,
}

/// A failure with a one-line description and a one-line remedy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    what: String,
    fix: String,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A usage error (exit code 2): `what` was wrong with the request, `fix` says how to ask.
    pub fn usage(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, what, fix)
    }

    /// A runtime error (exit code 1): `what` failed, `fix` says what the user can do.
    pub fn runtime(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(ErrorKind::Runtime, what, fix)
    }

    fn new(kind: ErrorKind, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            kind,
            what: one_line(what.into()),
            fix: one_line(fix.into()),
        }
    }

    /// Usage or runtime.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What was wrong.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// What to do about it.
    pub fn fix(&self) -> &str {
        &self.fix
    }

    /// The process exit code for this error: 2 for usage, 1 for runtime.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Usage => 2,
            ErrorKind::Runtime => 1,
        }
    }

    /// The same error with another remedy (a client says it in its own terms: the CLI names
    /// its flags).
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = one_line(fix.into());
        self
    }

    /// The same error with `context` put in front of what was wrong.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.what = one_line(format!("{context}: {}", self.what));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fix.is_empty() {
            f.write_str(&self.what)
        } else {
            write!(f, "{}; {}", self.what, self.fix)
        }
    }
}

impl std::error::Error for Error {}

/// Folds any line breaks of an OS or library message so the error stays one line.
fn one_line(s: String) -> String {
    if s.contains(['\n', '\r']) {
        s.split(['\n', '\r'])
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_what_and_fix() {
        let e = Error::usage("budget is zero", "pass a size like 512MiB");
        assert_eq!(e.to_string(), "budget is zero; pass a size like 512MiB");
        assert_eq!(e.exit_code(), 2);
        let e = Error::runtime("device vanished\nbecause\r\nreasons", "plug it back in");
        assert_eq!(
            e.to_string(),
            "device vanished because reasons; plug it back in"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn context_prefixes_what() {
        let e = Error::runtime("no space left", "free some disk").context("writing out.wav");
        assert_eq!(e.what(), "writing out.wav: no space left");
    }
}
