//! Special files where `w4l record` expects WAV files, end to end, on nodes made in each test's
//! own directory (never the system's `/dev/null`): a FIFO, a character device (`mknod`, as
//! root), a socket, a directory, symbolic links (to a file, dangling, to the input) and `-` at
//! `-o`; the input itself under another name; a FIFO, a pipe (`/dev/stdin`), a device or a
//! socket as `--input`.
//!
//! Every one is refused at once: exit 2, one line naming what the node is, nothing recorded,
//! the node left exactly as it was (still a FIFO, still a device), no w4l file left behind. A
//! FIFO input must not block: not without a writer, not with a writer that never writes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use w4l_tests::faults::{assert_no_leftovers, private_dir, wait_for};
use w4l_tests::{Run, read_wav_i16, test_signal, w4l_bin, w4l_with, write_wav_i16};

/// A refusal must come at once; this only bounds a hang.
const LIMIT: Duration = Duration::from_secs(20);

/// One test's directory: a private `W4L_TEMP_DIR` and a valid 1 s input.
struct Dir {
    base: tempfile::TempDir,
    temp: PathBuf,
    input: PathBuf,
    samples: Vec<i16>,
}

impl Dir {
    fn new() -> Dir {
        let base = tempfile::tempdir().expect("temp dir");
        let temp = private_dir(base.path());
        let input = base.path().join("in.wav");
        let samples = test_signal(16_000, 1, 31);
        write_wav_i16(&input, 16_000, 1, &samples);
        Dir {
            base,
            temp,
            input,
            samples,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }

    /// `w4l record --input INPUT -o OUTPUT`.
    fn record(&self, input: &Path, output: &Path) -> Run {
        let started = Instant::now();
        let run = w4l_with(
            [
                "record".as_ref(),
                "--input".as_ref(),
                input.as_os_str(),
                "-o".as_ref(),
                output.as_os_str(),
            ],
            &[("W4L_TEMP_DIR", self.temp.to_str().expect("utf-8"))],
            LIMIT,
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the refusal took {:?}: {run:#?}",
            started.elapsed()
        );
        run
    }

    /// Nothing of w4l anywhere, and the input unchanged.
    #[track_caller]
    fn assert_untouched(&self) {
        assert_no_leftovers(self.base.path(), &[]);
        assert_no_leftovers(&self.temp, &[]);
        assert_eq!(
            read_wav_i16(&self.input).1,
            self.samples,
            "the input changed"
        );
    }
}

/// `mknod PATH c 1 3` (the null device's numbers), if this user may make device nodes.
fn char_device(path: &Path) -> bool {
    mknod(path, &["c", "1", "3"])
}

/// `mknod PATH ARGS…`, if this user may make device nodes.
fn mknod(path: &Path, args: &[&str]) -> bool {
    Command::new("mknod")
        .arg(path)
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", path.display());
}

/// What kind of node `path` is now (not following a link), to prove it was left alone.
fn kind(path: &Path) -> (&'static str, u64) {
    let meta = fs::symlink_metadata(path).expect("the node is still there");
    let t = meta.file_type();
    let name = if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "char"
    } else if t.is_block_device() {
        "block"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else {
        "file"
    };
    (name, meta.ino())
}

/// `-o NODE` is refused with `needles` in the one error line, and NODE stays as it was.
#[track_caller]
fn output_refused(d: &Dir, node: &Path, needles: &[&str]) {
    let before = kind(node);
    d.record(&d.input, node).fails(2, needles);
    assert_eq!(kind(node), before, "{} was replaced", node.display());
    d.assert_untouched();
}

#[test]
fn a_fifo_at_o_is_refused_not_replaced() {
    let d = Dir::new();
    let fifo = d.path("pipe.wav");
    mkfifo(&fifo);
    output_refused(&d, &fifo, &["pipe.wav", "pipe or FIFO", "regular files"]);
}

#[test]
fn device_nodes_at_o_are_refused_not_replaced() {
    let d = Dir::new();
    let dev = d.path("mynull");
    if !char_device(&dev) {
        eprintln!("skipped: this user cannot make device nodes");
        return;
    }
    output_refused(&d, &dev, &["mynull", "character device"]);
    // A block device (a loop device's numbers; never opened).
    let block = d.path("myloop");
    assert!(mknod(&block, &["b", "7", "200"]), "mknod b");
    output_refused(&d, &block, &["myloop", "block device"]);
}

#[test]
fn a_socket_and_a_directory_at_o_are_refused() {
    let d = Dir::new();
    let socket = d.path("sock.wav");
    let _listener = UnixListener::bind(&socket).expect("bind a socket");
    output_refused(&d, &socket, &["sock.wav", "socket"]);
    let dir = d.path("dir.wav");
    fs::create_dir(&dir).expect("mkdir");
    output_refused(&d, &dir, &["dir.wav", "directory"]);
}

#[test]
fn symbolic_links_at_o_are_refused_dangling_or_not() {
    let d = Dir::new();
    let target = d.path("target.wav");
    fs::write(&target, b"precious").expect("write");
    let link = d.path("link.wav");
    symlink(&target, &link).expect("symlink");
    output_refused(&d, &link, &["link.wav", "symbolic link", "points to"]);
    assert_eq!(fs::read(&target).expect("target"), b"precious");

    let dangling = d.path("dangling.wav");
    symlink(d.path("nowhere.wav"), &dangling).expect("symlink");
    output_refused(&d, &dangling, &["dangling.wav", "symbolic link"]);
    assert!(!d.path("nowhere.wav").exists());

    // A link to a device: refused as a link, the device untouched.
    let dev = d.path("dev");
    if char_device(&dev) {
        let to_dev = d.path("to-dev.wav");
        symlink(&dev, &to_dev).expect("symlink");
        output_refused(&d, &to_dev, &["symbolic link"]);
        assert_eq!(kind(&dev).0, "char");
    }
}

#[test]
fn dash_at_o_is_refused_and_creates_no_file_named_dash() {
    let d = Dir::new();
    let run = Command::new(w4l_bin())
        .current_dir(d.base.path())
        .args(["record", "--input", "in.wav", "-o", "-"])
        .env("W4L_TEMP_DIR", &d.temp)
        .output()
        .expect("run w4l");
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("standard output"), "{stderr}");
    assert!(
        run.stdout.is_empty(),
        "a WAV on stdout: {} bytes",
        run.stdout.len()
    );
    assert!(!d.path("-").exists());
    d.assert_untouched();
}

#[test]
fn the_input_itself_at_o_is_refused_under_any_name() {
    let d = Dir::new();
    // The same path, another spelling of it, a hard link, a symbolic link.
    d.record(&d.input, &d.input)
        .fails(2, &["is the --input file"]);
    let other_spelling = d.base.path().join(".").join("in.wav");
    d.record(&d.input, &other_spelling)
        .fails(2, &["is the --input file"]);
    let hard = d.path("hard.wav");
    fs::hard_link(&d.input, &hard).expect("hard link");
    d.record(&d.input, &hard).fails(2, &["is the --input file"]);
    d.record(&hard, &d.input).fails(2, &["is the --input file"]);
    // Replaying through a link to the input into the input: still the same file.
    let link = d.path("link-to-in.wav");
    symlink(&d.input, &link).expect("symlink");
    d.record(&link, &d.input).fails(2, &["is the --input file"]);
    d.assert_untouched();
}

#[test]
fn a_regular_file_and_a_new_name_at_o_still_work() {
    let d = Dir::new();
    let existing = d.path("old.wav");
    fs::write(&existing, b"an old take").expect("write");
    d.record(&d.input, &existing).ok();
    assert_eq!(read_wav_i16(&existing).1, d.samples);
    let fresh = d.path("new.wav");
    d.record(&d.input, &fresh).ok();
    assert_eq!(read_wav_i16(&fresh).1, d.samples);
    // A link as the *input* is fine: it is read through.
    let link = d.path("link-in.wav");
    symlink(&d.input, &link).expect("symlink");
    let out = d.path("via-link.wav");
    d.record(&link, &out).ok();
    assert_eq!(read_wav_i16(&out).1, d.samples);
    assert_no_leftovers(d.base.path(), &[]);
}

/// `--input NODE` is refused at once with `needles` in the one error line.
#[track_caller]
fn input_refused(d: &Dir, node: &Path, needles: &[&str]) {
    let out = d.path("out.wav");
    d.record(node, &out).fails(2, needles);
    assert!(!out.exists());
    d.assert_untouched();
}

#[test]
fn a_fifo_as_input_is_refused_at_once_with_or_without_a_writer() {
    let d = Dir::new();
    let fifo = d.path("in.fifo");
    mkfifo(&fifo);
    // No writer: opening it for reading would block until one came.
    input_refused(
        &d,
        &fifo,
        &["in.fifo", "pipe or FIFO", "save the audio to a file"],
    );
    // A writer that holds it open and never writes: reading would block instead.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3<>'{}'; sleep 60", fifo.display()))
        .spawn()
        .expect("spawn a writer");
    let fd = PathBuf::from(format!("/proc/{}/fd/3", writer.id()));
    wait_for(LIMIT, "the writer holds the FIFO open", || {
        fd.exists().then_some(())
    });
    input_refused(&d, &fifo, &["pipe or FIFO"]);
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(kind(&fifo).0, "fifo");
}

#[test]
fn a_pipe_on_dev_stdin_is_refused_and_a_redirected_file_works() {
    let d = Dir::new();
    let out = d.path("out.wav");
    let wav = fs::read(&d.input).expect("read");
    // `cat in.wav | w4l record --input /dev/stdin`
    let mut child = Command::new(w4l_bin())
        .args(["record", "--input", "/dev/stdin", "-o"])
        .arg(&out)
        .env("W4L_TEMP_DIR", &d.temp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn w4l");
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        // w4l exits without reading: a broken pipe is expected.
        let _ = stdin.write_all(&wav);
    });
    let run = child.wait_with_output().expect("wait for w4l");
    let _ = feeder.join();
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("/dev/stdin is a pipe or FIFO") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!out.exists());

    // `w4l record --input /dev/stdin < in.wav`: a file, replayed as usual.
    let run = Command::new(w4l_bin())
        .args(["record", "--input", "/dev/stdin", "-o"])
        .arg(&out)
        .env("W4L_TEMP_DIR", &d.temp)
        .stdin(fs::File::open(&d.input).expect("open"))
        .output()
        .expect("run w4l");
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert_eq!(read_wav_i16(&out).1, d.samples);
    d.assert_untouched();
}

#[test]
fn a_device_a_socket_or_a_directory_as_input_is_refused() {
    let d = Dir::new();
    let dev = d.path("zero");
    if char_device(&dev) {
        input_refused(&d, &dev, &["zero", "character device"]);
        let block = d.path("myloop");
        assert!(mknod(&block, &["b", "7", "200"]), "mknod b");
        input_refused(&d, &block, &["myloop", "block device"]);
    }
    let socket = d.path("in.sock");
    let _listener = UnixListener::bind(&socket).expect("bind a socket");
    input_refused(&d, &socket, &["in.sock", "socket"]);
    input_refused(&d, d.base.path(), &["directory"]);
}
