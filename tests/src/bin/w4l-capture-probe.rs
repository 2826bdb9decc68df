//! `w4l-capture-probe`: captures from a real device through `w4l::source::device` and the core ring,
//! for the end-to-end capture tests and `scripts/bench-capture` (until `w4l record` captures
//! from devices, which then replaces it there).
//!
//! ```text
//! w4l-capture-probe --seconds S --out FILE.wav [--device NAME] [--backend auto|pulseaudio|alsa]
//!                   [--rate HZ] [--channels N] [--buffer FRAMES] [--stall-ms MS]
//! ```
//!
//! Stops once S seconds of audio (S × rate frames) have been captured, writes them as a 16-bit
//! WAV (the ring's format) and prints one JSON line: the negotiated format, the capture's counters, the frames
//! written and the wall-clock seconds the take needed. Prints `started` on stderr when the stream
//! runs. Errors: one line on stderr, exit 2 for a bad request, 1 otherwise.

use std::time::{Duration, Instant};

use w4l::ring::AudioRing;
use w4l::source::device::{Backend, Capture, CaptureError, CaptureRequest};
use w4l_core::ring::Overflow;

struct Args {
    seconds: f64,
    out: std::path::PathBuf,
    request: CaptureRequest,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "error: {msg}; usage: w4l-capture-probe --seconds S --out FILE.wav [--device NAME] [--backend B] [--rate HZ] [--channels N] [--buffer FRAMES]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut seconds = None;
    let mut out = None;
    let mut request = CaptureRequest::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let number = |v: &str| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag} takes a number, not '{v}'")))
        };
        match flag.as_str() {
            "--seconds" => {
                seconds = Some(
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|s| *s > 0.0 && s.is_finite())
                        .unwrap_or_else(|| usage("--seconds takes a positive number")),
                )
            }
            "--out" => out = Some(value.into()),
            "--device" => request.device = Some(value),
            "--backend" => {
                request.backend = value
                    .parse::<Backend>()
                    .unwrap_or_else(|e: CaptureError| fail(&e))
            }
            "--rate" => request.rate = Some(number(&value) as u32),
            "--channels" => request.channels = Some(number(&value) as u16),
            "--buffer" => request.buffer_frames = Some(number(&value) as u32),
            "--stall-ms" => request.retry.stall_timeout = Duration::from_millis(number(&value)),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    Args {
        seconds: seconds.unwrap_or_else(|| usage("--seconds is required")),
        out: out.unwrap_or_else(|| usage("--out is required")),
        request,
    }
}

fn fail(e: &CaptureError) -> ! {
    eprintln!("error: {e}");
    std::process::exit(if e.is_usage() { 2 } else { 1 })
}

fn main() {
    let args = parse();
    let opening = Instant::now();
    let mut capture = Capture::open(&args.request).unwrap_or_else(|e| fail(&e));
    let format = capture.format().clone();
    let channels = usize::from(format.channels);
    let wanted = (args.seconds * f64::from(format.rate)).round() as usize * channels;
    // Two seconds of room: the consumer below drains every 100 ms.
    let (producer, mut consumer) =
        AudioRing::new(format.rate as usize * channels * 2, Overflow::RejectNewest).unwrap_or_else(
            |e| {
                eprintln!("error: cannot make the ring ({e}); ask for fewer channels");
                std::process::exit(1)
            },
        );
    let mut take: Vec<i16> = Vec::with_capacity(wanted);
    let mut buf = vec![0i16; 8192];
    let open_s = opening.elapsed().as_secs_f64();
    let starting = Instant::now();
    capture.start(producer).unwrap_or_else(|e| fail(&e));
    let start_s = starting.elapsed().as_secs_f64();
    let started = Instant::now();
    eprintln!("started");
    let mut lost: Option<CaptureError> = None;
    let mut flowing: Option<f64> = None;
    while take.len() < wanted {
        std::thread::sleep(Duration::from_millis(100));
        if flowing.is_none() && capture.stats().frames > 0 {
            flowing = Some(started.elapsed().as_secs_f64());
            eprintln!("flowing");
        }
        loop {
            let n = consumer.pop_slice(&mut buf);
            let keep = n.min(wanted - take.len());
            take.extend_from_slice(&buf[..keep]);
            if n < buf.len() || take.len() >= wanted {
                break;
            }
        }
        if let Err(e) = capture.poll() {
            lost = Some(e);
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = capture.stop();
    let spec = hound::WavSpec {
        channels: format.channels,
        sample_rate: format.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let written = hound::WavWriter::create(&args.out, spec).and_then(|mut w| {
        for &s in &take {
            w.write_sample(s)?;
        }
        w.finalize()
    });
    if let Err(e) = written {
        eprintln!(
            "error: cannot write {} ({e}); check the directory",
            args.out.display()
        );
        std::process::exit(1);
    }
    let report = serde_json::json!({
        "format": format,
        "stats": stats,
        "frames_written": take.len() / channels.max(1),
        "elapsed_s": elapsed,
        "open_s": open_s,
        "start_s": start_s,
        "flowing_s": flowing,
    });
    println!("{report}");
    if let Some(e) = lost {
        fail(&e);
    }
}
