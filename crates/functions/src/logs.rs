//! Function logs: every runtime process's stdout and stderr, and Trellis's own START/END/REPORT
//! lines, appended to `DATA_DIR/logs/functions/<name>.log`; and the per-invocation capture behind
//! `LogType: Tail`.
//!
//! A runtime process writes both streams into one pipe, read by one task per process. The task
//! appends whole lines to the function's log file and, while an invocation is running, keeps the
//! last [`TAIL_BYTES`] of output for it. When the invocation ends the capture must include
//! everything the process wrote before it posted its result, but a pipe reader cannot tell "no
//! more data" from "data not read yet". So ending a capture asks the reader how many bytes sit
//! unread in the pipe (`FIONREAD`) and has it read exactly those first: whatever the process wrote
//! before its HTTP request reached us is in the pipe by then.
//!
//! The log file is rotated once it passes [`MAX_LOG_BYTES`]: the old one becomes `<name>.log.1`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

/// `LogType: Tail` returns at most this much of the end of an invocation's log.
pub const TAIL_BYTES: usize = 4096;
/// A function's log file is rotated past this size.
pub const MAX_LOG_BYTES: u64 = 16 << 20;
/// Longest partial line kept back waiting for its newline before it is written as is.
const MAX_PENDING_LINE: usize = 16 << 10;

/// `DATA_DIR/logs/functions`.
pub fn logs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs").join("functions")
}

/// The log file of the management account's function `name` (a validated function name, so a
/// plain file name).
pub fn log_path(data_dir: &Path, name: &str) -> PathBuf {
    log_path_in(data_dir, None, name)
}

/// The log file of function `name` of `account` (`None`: the management account's, directly in
/// [`logs_dir`]; another account's under `accounts/<id>/`).
pub fn log_path_in(data_dir: &Path, account: Option<&str>, name: &str) -> PathBuf {
    match account {
        None => logs_dir(data_dir).join(format!("{name}.log")),
        Some(account) => logs_dir(data_dir)
            .join("accounts")
            .join(account)
            .join(format!("{name}.log")),
    }
}

/// The append-only log file of one function, shared by all its runtime processes. Writes are
/// whole lines under a mutex, so lines of concurrent processes do not interleave mid-line.
#[derive(Debug)]
pub struct FunctionLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl FunctionLog {
    pub fn new(data_dir: &Path, name: &str) -> FunctionLog {
        FunctionLog::at(log_path(data_dir, name))
    }

    /// The log at `path`.
    pub fn at(path: PathBuf) -> FunctionLog {
        FunctionLog {
            path,
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` (one or more whole lines). Logging must never fail an invocation, so
    /// errors are reported through tracing only.
    pub fn append(&self, bytes: &[u8]) {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.append_locked(&mut guard, bytes) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write function log");
            *guard = None;
        }
    }

    fn append_locked(&self, file: &mut Option<File>, bytes: &[u8]) -> std::io::Result<()> {
        if file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            *file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let f = file.as_mut().expect("opened above");
        f.write_all(bytes)?;
        if f.metadata()?.len() > MAX_LOG_BYTES {
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            std::fs::rename(&self.path, rotated)?;
            *file = None;
        }
        Ok(())
    }

    pub fn line(&self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.append(&bytes);
    }
}

enum Control {
    /// Start keeping output for an invocation.
    Begin,
    /// Read what is already in the pipe, stop keeping output and return what was kept.
    End(oneshot::Sender<Vec<u8>>),
}

/// The reading side of a runtime process's output pipe.
#[derive(Debug)]
pub struct OutputCapture {
    control: mpsc::UnboundedSender<Control>,
}

impl OutputCapture {
    /// Starts the reader task for the pipe whose write end the process holds.
    pub fn spawn(read_end: OwnedFd, log: Arc<FunctionLog>) -> std::io::Result<OutputCapture> {
        let receiver = pipe::Receiver::from_owned_fd(read_end)?;
        let (control, rx) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(receiver, rx, log));
        Ok(OutputCapture { control })
    }

    pub fn begin(&self) {
        let _ = self.control.send(Control::Begin);
    }

    /// Ends the capture and returns the last [`TAIL_BYTES`] of output written since `begin`.
    pub async fn end(&self) -> Vec<u8> {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::End(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

struct ReaderState {
    log: Arc<FunctionLog>,
    /// Output after the last newline, not yet written to the file.
    pending: Vec<u8>,
    capture: Option<Vec<u8>>,
}

impl ReaderState {
    fn take(&mut self, chunk: &[u8]) {
        if let Some(capture) = &mut self.capture {
            capture.extend_from_slice(chunk);
            if capture.len() > 2 * TAIL_BYTES {
                let cut = capture.len() - TAIL_BYTES;
                capture.drain(..cut);
            }
        }
        self.pending.extend_from_slice(chunk);
        if let Some(last_newline) = self.pending.iter().rposition(|b| *b == b'\n') {
            let rest = self.pending.split_off(last_newline + 1);
            self.log.append(&self.pending);
            self.pending = rest;
        }
        if self.pending.len() > MAX_PENDING_LINE {
            self.flush_partial();
        }
    }

    fn flush_partial(&mut self) {
        if !self.pending.is_empty() {
            self.pending.push(b'\n');
            self.log.append(&self.pending);
            self.pending.clear();
        }
    }

    fn end_capture(&mut self) -> Vec<u8> {
        let mut captured = self.capture.take().unwrap_or_default();
        if captured.len() > TAIL_BYTES {
            captured.drain(..captured.len() - TAIL_BYTES);
        }
        // A partial last line is part of this invocation's output: write it now so that the
        // file keeps the invocation's lines before its END line.
        self.flush_partial();
        captured
    }
}

async fn read_loop(
    mut receiver: pipe::Receiver,
    mut control: mpsc::UnboundedReceiver<Control>,
    log: Arc<FunctionLog>,
) {
    let mut state = ReaderState {
        log,
        pending: Vec::new(),
        capture: None,
    };
    let mut buf = vec![0u8; 16 << 10];
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            msg = control.recv() => match msg {
                Some(Control::Begin) => state.capture = Some(Vec::new()),
                Some(Control::End(reply)) => {
                    if open {
                        open = drain_available(&mut receiver, &mut state, &mut buf).await;
                    }
                    let _ = reply.send(state.end_capture());
                }
                None => break,
            },
            read = receiver.read(&mut buf), if open => match read {
                Ok(0) | Err(_) => {
                    open = false;
                    state.flush_partial();
                }
                Ok(n) => state.take(&buf[..n]),
            },
        }
    }
    state.flush_partial();
}

/// Reads exactly the bytes that are in the pipe now. Returns whether the pipe is still open.
async fn drain_available(
    receiver: &mut pipe::Receiver,
    state: &mut ReaderState,
    buf: &mut [u8],
) -> bool {
    let Ok(mut remaining) = rustix::io::ioctl_fionread(&*receiver) else {
        return true;
    };
    while remaining > 0 {
        let want = usize::try_from(remaining)
            .unwrap_or(buf.len())
            .min(buf.len());
        match receiver.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                state.take(&buf[..n]);
                remaining = remaining.saturating_sub(n as u64);
            }
        }
    }
    true
}

/// A pipe for a runtime process's stdout and stderr: the read end for [`OutputCapture`] and the
/// write end, to be handed to the child for both streams.
pub fn output_pipe() -> std::io::Result<(OwnedFd, std::io::PipeWriter)> {
    let (reader, writer) = std::io::pipe()?;
    Ok((OwnedFd::from(reader), writer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_exactly_the_invocation_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(FunctionLog::new(dir.path(), "f"));
        let (read_end, mut w) = output_pipe().unwrap();
        let capture = OutputCapture::spawn(read_end, log.clone()).unwrap();
        w.write_all(b"before\n").unwrap();
        capture.begin();
        // Written before `end` is asked for: must be in the capture even though the reader task
        // may not have seen it yet.
        w.write_all(b"during 1\nduring 2 (no newline)").unwrap();
        let tail = capture.end().await;
        let tail = String::from_utf8(tail).unwrap();
        assert!(tail.contains("during 1\n"), "{tail:?}");
        assert!(tail.ends_with("during 2 (no newline)"), "{tail:?}");
        // "before" may or may not have been read before `begin`; it is in the file either way.
        w.write_all(b"after\n").unwrap();
        drop(w);
        capture.begin();
        // Ending a capture drains the pipe, so "after" is in the file once `end` returns.
        let _ = capture.end().await;
        let file = std::fs::read_to_string(log.path()).unwrap();
        assert!(
            file.starts_with("before\nduring 1\nduring 2 (no newline)\n"),
            "{file:?}"
        );
        assert!(file.contains("after\n"), "{file:?}");
    }

    #[tokio::test]
    async fn keeps_only_the_last_4kb() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(FunctionLog::new(dir.path(), "big"));
        let (read_end, mut w) = output_pipe().unwrap();
        let capture = OutputCapture::spawn(read_end, log).unwrap();
        capture.begin();
        // Write from a thread: more than a pipe buffer, so the reader must run meanwhile.
        tokio::task::spawn_blocking(move || {
            for i in 0..2000 {
                writeln!(w, "line {i:05}").unwrap();
            }
        })
        .await
        .unwrap();
        let tail = capture.end().await;
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(String::from_utf8_lossy(&tail).ends_with("line 01999\n"));
    }
}
