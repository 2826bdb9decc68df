//! # w4l-core
//!
//! The `no_std`, heap-free core of **w4l**: everything that decides, nothing that does I/O.
//! Time, memory readings and sample data are passed in; decisions and data come out
//! (the *sans-IO* style of `quinn-proto`). The same code runs in the desktop recorder
//! (crate `w4l`) and in microcontroller firmware.
//!
//! | module | what it is | may touch |
//! |---|---|---|
//! | [`ring`] | lock-free SPSC ring from the audio callback to a worker | caller-supplied storage (or, feature `alloc`, one heap allocation), atomics |
//! | [`window`] | rolling "latest N frames" buffer | caller-supplied storage |
//! | [`sample`] | saturating conversion between sample formats | nothing |
//! | [`level`] | peak / RMS level meter | nothing |
//! | [`accountant`] | budget-based memory accountant with reservations | atomics |
//! | [`budget`] | model-aware memory budgets (Whisper model table) | nothing |
//! | [`policy`] | cleanup-policy state machine (levels, actions, prediction) | nothing |
//! | `flac` (feature `flac`) | FLAC encoder and frame-by-frame decoder (fixed predictors, Rice coding, MD5) | caller-supplied buffers |
//! | [`tracker`] | fixed-capacity registry of tracked buffers, victim selection | nothing |
//! | `adc` (feature `embedded-hal`) | SPI ADC sample source for firmware | an `embedded-hal` 1.0 `SpiDevice` |
//! | [`scenario`] | the scripted memory scenario shared by host tests and firmware | nothing |
//!
//! The core never blocks and never panics on any input: fallible operations return errors.
//! It never allocates, except for the one feature that exists to: `alloc` adds the
//! heap-backed ring `ring::HeapRing` (one fallible allocation per ring) for hosts and tests.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
// "Never panics on any input", checked by the compiler rather than promised.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

mod sync;

pub mod accountant;
#[cfg(feature = "embedded-hal")]
pub mod adc;
pub mod budget;
#[cfg(feature = "flac")]
pub mod flac;
pub mod level;
pub mod policy;
pub mod ring;
pub mod sample;
pub mod scenario;
pub mod tracker;
pub mod window;
