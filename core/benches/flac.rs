//! `w4l_core::flac` against `flacenc` (encoder) and `claxon` (decoder) on a speech corpus
//! (criterion). Compression ratios are printed before the timings.
//!
//! Needs the corpus that `scripts/bench-flac` makes (it also times `flac -0` / `-5` and
//! prints the whole table): `W4L_FLAC_CORPUS=DIR`, with `DIR/rows.txt` listing
//! `NAME RATE CHANNELS BITS` per line and `DIR/NAME.raw` holding signed little-endian PCM.
//! Without it, this bench does nothing.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flacenc::component::BitRepr;
use flacenc::error::Verify;
use w4l_core::flac::{DEFAULT_BLOCK_SIZE, Decoder, Encoder, Format, HEADER_LEN};

struct Row {
    name: String,
    format: Format,
    samples: Vec<i32>,
}

fn corpus(dir: &Path) -> Vec<Row> {
    let rows = std::fs::read_to_string(dir.join("rows.txt")).expect("read rows.txt");
    rows.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let format = Format {
                sample_rate: f[1].parse().unwrap(),
                channels: f[2].parse().unwrap(),
                bits_per_sample: f[3].parse().unwrap(),
            };
            let raw = std::fs::read(dir.join(format!("{}.raw", f[0]))).expect("read raw PCM");
            assert_eq!(format.bits_per_sample, 16, "the corpus is 16-bit");
            let samples = raw
                .chunks_exact(2)
                .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])))
                .collect();
            Row {
                name: f[0].to_string(),
                format,
                samples,
            }
        })
        .collect()
}

fn w4l_encode(row: &Row, samples: &[i16]) -> Vec<u8> {
    let mut enc = Encoder::new(row.format, DEFAULT_BLOCK_SIZE).unwrap();
    let mut stream = vec![0u8; HEADER_LEN + samples.len() * 2 + 1024];
    let mut len = HEADER_LEN;
    for block in samples.chunks(DEFAULT_BLOCK_SIZE * usize::from(row.format.channels)) {
        len += enc.encode(block, &mut stream[len..]).unwrap();
    }
    enc.stream_info().write(&mut stream).unwrap();
    stream.truncate(len);
    stream
}

fn flacenc_encode(row: &Row) -> Vec<u8> {
    let mut config = flacenc::config::Encoder::default();
    config.block_size = DEFAULT_BLOCK_SIZE;
    let config = config.into_verified().unwrap();
    let f = row.format;
    let source = flacenc::source::MemSource::from_samples(
        &row.samples,
        usize::from(f.channels),
        usize::from(f.bits_per_sample),
        f.sample_rate as usize,
    );
    let stream =
        flacenc::encode_with_fixed_block_size(&config, source, DEFAULT_BLOCK_SIZE).unwrap();
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream.write(&mut sink).unwrap();
    sink.as_slice().to_vec()
}

fn w4l_decode(stream: &[u8], out: &mut [i32]) -> usize {
    let (dec, mut at) = Decoder::new(stream).unwrap();
    let mut frames = 0;
    while at < stream.len() {
        let frame = dec.decode(&stream[at..], out).unwrap();
        at += frame.bytes;
        frames += frame.block_size;
    }
    frames
}

fn claxon_decode(stream: &[u8]) -> usize {
    let mut reader = claxon::FlacReader::new(stream).unwrap();
    let mut blocks = reader.blocks();
    let mut buffer = Vec::new();
    let mut frames = 0;
    while let Some(block) = blocks.read_next_or_eof(buffer).unwrap() {
        frames += block.duration() as usize;
        buffer = block.into_buffer();
    }
    frames
}

fn bench(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("W4L_FLAC_CORPUS") else {
        eprintln!(
            "flac bench: set W4L_FLAC_CORPUS (scripts/bench-flac makes the corpus and runs this)"
        );
        return;
    };
    let rows = corpus(Path::new(&dir));
    for row in &rows {
        let narrow: Vec<i16> = row.samples.iter().map(|&s| s as i16).collect();
        let ours = w4l_encode(row, &narrow);
        let theirs = flacenc_encode(row);
        let raw = row.samples.len() * 2;
        let frames = row.samples.len() / usize::from(row.format.channels);
        println!(
            "ratio {} w4l {:.4} flacenc {:.4} (raw {raw} B, {:.2} s)",
            row.name,
            ours.len() as f64 / raw as f64,
            theirs.len() as f64 / raw as f64,
            frames as f64 / f64::from(row.format.sample_rate),
        );
        let mut out = vec![0i32; DEFAULT_BLOCK_SIZE * usize::from(row.format.channels)];
        assert_eq!(w4l_decode(&ours, &mut out), frames);
        assert_eq!(claxon_decode(&ours), frames);

        let mut g = c.benchmark_group(format!("flac/{}", row.name));
        g.throughput(Throughput::Elements(frames as u64))
            .sample_size(20);
        g.bench_function("encode_w4l", |b| {
            b.iter(|| black_box(w4l_encode(row, black_box(&narrow))))
        });
        g.bench_function("encode_flacenc", |b| {
            b.iter(|| black_box(flacenc_encode(black_box(row))))
        });
        g.bench_function("decode_w4l", |b| {
            b.iter(|| black_box(w4l_decode(black_box(&ours), &mut out)))
        });
        g.bench_function("decode_claxon", |b| {
            b.iter(|| black_box(claxon_decode(black_box(&ours))))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
