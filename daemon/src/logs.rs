//! The process's recent log lines, kept in memory for support bundles: the log writer tees
//! every formatted event to stderr and into a bounded ring ([`LINES_MAX`] lines of at most
//! [`LINE_BYTES_MAX`] bytes each).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

/// Lines kept.
pub const LINES_MAX: usize = 5_000;

/// Longest line kept (longer ones are cut, marked with `…`).
pub const LINE_BYTES_MAX: usize = 4_096;

static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// The recent log lines, oldest first.
pub fn recent() -> Vec<String> {
    RECENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// `text` without ANSI colour sequences (`ESC [ ... letter`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn keep(bytes: &[u8]) {
    let text = plain(&String::from_utf8_lossy(bytes));
    let mut ring = RECENT.lock().unwrap_or_else(|p| p.into_inner());
    for line in text.lines() {
        let mut line = line.to_owned();
        if line.len() > LINE_BYTES_MAX {
            let mut cut = LINE_BYTES_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        if ring.len() >= LINES_MAX {
            ring.pop_front();
        }
        ring.push_back(line);
    }
}

/// A `tracing_subscriber` writer: stderr, and the ring.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tee;

/// One event being written: sent on drop.
#[derive(Debug, Default)]
pub struct TeeWriter {
    buf: Vec<u8>,
}

impl Write for TeeWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        let _ = std::io::stderr().write_all(&self.buf);
        keep(&self.buf);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Tee {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_bounded_and_cut() {
        let long = "x".repeat(LINE_BYTES_MAX + 10);
        for i in 0..LINES_MAX + 3 {
            let mut w = Tee.make_writer_for_test();
            writeln!(w, "line {i}").unwrap();
        }
        {
            let mut w = Tee.make_writer_for_test();
            writeln!(w, "{long}").unwrap();
        }
        {
            let mut w = Tee.make_writer_for_test();
            writeln!(
                w,
                "\u{1b}[2m2026-12-05\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m sold"
            )
            .unwrap();
        }
        let r = recent();
        assert_eq!(r.len(), LINES_MAX);
        assert_eq!(r[LINES_MAX - 1], "2026-12-05  INFO sold");
        let r = &r[..LINES_MAX - 1];
        assert!(r[0].starts_with("line 5"), "{}", r[0]);
        assert!(r.last().unwrap().ends_with('…'));
        assert!(r.last().unwrap().len() <= LINE_BYTES_MAX + '…'.len_utf8());
    }

    impl Tee {
        fn make_writer_for_test(&self) -> TeeWriter {
            tracing_subscriber::fmt::MakeWriter::make_writer(self)
        }
    }
}
