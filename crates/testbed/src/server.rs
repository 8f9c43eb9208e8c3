//! A server the tests run beside the hosts ([`crate::Prometheus`],
//! [`crate::Haproxy`]): a real program in the foreground, in a process
//! group of its own, with its files in a temporary directory of its own.
//! Its output is kept (the last lines of it), for the errors that must show
//! what it said; a line of it can be awaited, with a deadline, as the sign
//! that it is ready. Dropped, it is stopped with SIGTERM, then SIGKILL,
//! each with a deadline, and its directory removed.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How many lines of a server's output are kept.
const KEPT_LINES: usize = 2000;

/// How many of the last lines an error shows.
const SHOWN_LINES: usize = 60;

/// How long a server may take to end once sent SIGTERM, before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// A temporary directory under the system's, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory, named after `label`, this process and a
    /// count of its own.
    pub(crate) fn new(label: &str) -> Result<TempDir> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lftb-{label}-{}-{n}", std::process::id()));
        // One left by an earlier process with the same id is not ours to
        // keep.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        Ok(TempDir(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running server.
#[derive(Debug)]
pub(crate) struct Server {
    /// The program's name, for messages.
    name: &'static str,
    child: Child,
    output: Arc<Output>,
    /// Removed once the server has stopped (a field is dropped after
    /// `drop` has run).
    _dir: TempDir,
}

/// What a server wrote to its stdout and stderr, shared with the threads
/// that read them.
#[derive(Debug, Default)]
struct Output {
    lines: Mutex<Lines>,
    /// Told of every line, and of every stream that ends.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Lines {
    kept: VecDeque<String>,
    /// How many lines were dropped from the front of `kept`.
    dropped: usize,
    /// The streams still being read: none once the server has closed
    /// both, which it does when it exits.
    open: usize,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `stream` line by line into the kept lines, until it ends.
    fn read(&self, stream: impl Read) {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    let mut lines = self.lock();
                    if lines.kept.len() == KEPT_LINES {
                        lines.kept.pop_front();
                        lines.dropped += 1;
                    }
                    lines.kept.push_back(text);
                    self.changed.notify_all();
                }
            }
        }
        self.lock().open -= 1;
        self.changed.notify_all();
    }
}

impl Server {
    /// Starts `command`, a server named `name` whose files are in `dir`,
    /// in a process group of its own, its stdout and stderr kept.
    pub(crate) fn start(name: &'static str, dir: TempDir, command: &mut Command) -> Result<Server> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start `{name}`: {command:?}"))?;
        let output = Arc::new(Output::default());
        output.lock().open = 2;
        let stdout = child.stdout.take().context("its stdout")?;
        let stderr = child.stderr.take().context("its stderr")?;
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || output.read(stream));
        }
        Ok(Server {
            name,
            child,
            output,
            _dir: dir,
        })
    }

    /// Waits until the server writes a line that holds `needle`, at most
    /// `deadline`; fails, with its output, if it ends first or does not
    /// write it in time.
    pub(crate) fn wait_for_line(&mut self, needle: &str, deadline: Duration) -> Result<()> {
        let until = Instant::now() + deadline;
        let mut lines = self.output.lock();
        loop {
            if lines.kept.iter().any(|line| line.contains(needle)) {
                return Ok(());
            }
            if lines.open == 0 {
                drop(lines);
                let status = self
                    .child
                    .wait()
                    .map_or_else(|err| err.to_string(), |s| s.to_string());
                bail!(
                    "`{}` ended ({status}) before it said `{needle}`:\n{}",
                    self.name,
                    self.log()
                );
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(lines);
                bail!(
                    "`{}` did not say `{needle}` within {deadline:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Fails, with the server's output, if it has ended.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("`{}` ended ({status}):\n{}", self.name, self.log()),
            Err(err) => bail!("cannot tell whether `{}` runs: {err}", self.name),
        }
    }

    /// The last lines the server wrote, for an error to show.
    pub(crate) fn log(&self) -> String {
        let lines = self.output.lock();
        let shown = lines.kept.len().min(SHOWN_LINES);
        let earlier = lines.dropped + lines.kept.len() - shown;
        let mut text = String::new();
        if earlier > 0 {
            let _ = writeln!(
                text,
                "[{earlier} earlier lines of `{}` not shown]",
                self.name
            );
        }
        for line in lines.kept.iter().skip(lines.kept.len() - shown) {
            let _ = writeln!(text, "{line}");
        }
        if text.is_empty() {
            let _ = write!(text, "[`{}` wrote nothing]", self.name);
        }
        text
    }

    /// Sends SIGTERM to the server's process group, waits, at most
    /// [`STOP_DEADLINE`], for the server to end, then kills the group if it
    /// has not. The group is signalled only while its leader, the server,
    /// is not reaped, so that its number cannot be another's by then.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let group = self.child.id();
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{group}")])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
            crate::support::wait_or_kill_group(&mut self.child, STOP_DEADLINE);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
