//! signals (in progress).
