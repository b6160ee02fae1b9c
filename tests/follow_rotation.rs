//! `cfscrub follow` under load while the file is rotated both ways: by
//! rename (logrotate's `create`) and by copy and truncate (logrotate's
//! `copytruncate`).

mod follow_support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use follow_support::{
    Follow, Line, append, assert_lines, assert_no_mixed_lines, line, open_log,
    temp_dir, wait_for_lines,
};

/// Rotations in the test, alternately by rename and by truncation.
const ROTATIONS: usize = 8;
/// Pause between two lines of one writer: about 300 lines a second.
const LINE_PAUSE: Duration = Duration::from_millis(3);
/// Pause between two rotations.
const ROTATION_PAUSE: Duration = Duration::from_millis(300);

/// The application that logs to the rotated file.
struct Logger {
    path: PathBuf,
    file: File,
    lines: Vec<Line>,
}

impl Logger {
    fn next_line(&mut self) -> usize {
        let seq = self.lines.len();
        self.lines.push(line("a", seq));
        seq
    }

    fn write_line(&mut self) {
        let seq = self.next_line();
        append(&mut self.file, &self.lines[seq].text);
    }

    /// Writes a new line up to the middle of its credential and returns
    /// the rest, to be written after the rotation.
    fn write_head(&mut self) -> String {
        let seq = self.next_line();
        let text = &self.lines[seq].text;
        let cut = text.find("token=").unwrap() + "token=".len() + 20;
        let (head, tail) = text.split_at(cut);
        let tail = tail.to_owned();
        append(&mut self.file, head);
        tail
    }
}

/// Starts a thread that logs a line every [`LINE_PAUSE`] until `stop`.
fn spawn_writer(
    logger: Arc<Mutex<Logger>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            logger.lock().unwrap().write_line();
            std::thread::sleep(LINE_PAUSE);
        }
    })
}

/// Starts a thread that logs to a second file, each line in two writes,
/// and returns the lines it wrote.
fn spawn_side_writer(
    path: PathBuf,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Line>> {
    std::thread::spawn(move || {
        let mut file = open_log(&path);
        let mut lines = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let line = line("s", lines.len());
            let (head, tail) = line.text.split_at(line.text.len() / 2);
            append(&mut file, head);
            std::thread::sleep(Duration::from_millis(1));
            append(&mut file, tail);
            lines.push(line);
            std::thread::sleep(LINE_PAUSE);
        }
        lines
    })
}

/// Rotates as logrotate's `create` does: the file is renamed and a new
/// one created, and the application goes on writing to the old one until
/// it reopens the path. It reopens in the middle of a line.
fn rotate_by_rename(logger: &mut Logger, rotated: &Path) {
    std::fs::rename(&logger.path, rotated).unwrap();
    logger.write_line();
    logger.write_line();
    let tail = logger.write_head();
    File::create(&logger.path).unwrap();
    logger.file = open_log(&logger.path);
    append(&mut logger.file, &tail);
}

/// Rotates as logrotate's `copytruncate` does: the file is copied and then
/// truncated in place, while the application keeps its descriptor, here
/// in the middle of a line.
///
/// Lines that the follower has not read when the file is truncated exist
/// only in the copy, as logrotate documents, so this waits until cfscrub
/// has read everything, the unfinished line included. A truncated file
/// that grows past the old read offset before the follower looks again
/// cannot be distinguished from one that only grew, so this also waits until
/// cfscrub has gone back to the start before the logger goes on.
fn rotate_by_truncation(logger: &mut Logger, rotated: &Path, follow: &Follow) {
    let tail = logger.write_head();
    follow.wait_until_read(&logger.path);
    std::fs::copy(&logger.path, rotated).unwrap();
    let file =
        std::fs::OpenOptions::new().write(true).open(&logger.path).unwrap();
    file.set_len(0).unwrap();
    append(&mut logger.file, &tail);
    follow.wait_until_read(&logger.path);
}

#[test]
fn rotation_under_load_keeps_every_line() {
    let dir = temp_dir("rotation-load");
    let path = dir.join("app.log");
    let side = dir.join("side.log");
    std::fs::write(&path, "").unwrap();
    std::fs::write(&side, "").unwrap();
    let follow = Follow::start(
        &dir,
        &dir.join("out"),
        &["--from-start", "app.log", "side.log"],
    );
    let logger = Arc::new(Mutex::new(Logger {
        file: open_log(&path),
        path: path.clone(),
        lines: Vec::new(),
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(logger.clone(), stop.clone());
    let side_writer = spawn_side_writer(side, stop.clone());

    for rotation in 0..ROTATIONS {
        std::thread::sleep(ROTATION_PAUSE);
        let rotated = dir.join(format!("app.log.{rotation}"));
        let mut logger = logger.lock().unwrap();
        if rotation % 2 == 0 {
            rotate_by_rename(&mut logger, &rotated);
        } else {
            rotate_by_truncation(&mut logger, &rotated, &follow);
        }
    }
    std::thread::sleep(ROTATION_PAUSE);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let side_lines = side_writer.join().unwrap();
    let lines = std::mem::take(&mut logger.lock().unwrap().lines);

    let output = wait_for_lines(&follow, lines.len() + side_lines.len());
    let (status, stderr) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_no_mixed_lines(&output, &["a", "s"]);
    assert_lines(&output, "a", &lines);
    assert_lines(&output, "s", &side_lines);
    let renames = stderr.matches("rotation=\"rename\"").count();
    let truncations = stderr.matches("file truncated").count();
    assert_eq!(renames, ROTATIONS / 2, "renames seen; stderr:\n{stderr}");
    assert_eq!(truncations, ROTATIONS / 2, "truncations seen");
}
