//! The one place that starts processes: cargo, git, sh (and, for remote
//! hosts, ssh and rsync).
//!
//! Arguments are always arrays, never shell strings assembled by hand; what
//! must cross a shell is quoted by [`quote`]. Errors name the command, the
//! host it ran for, the exit status and the tail of its stderr.
//!
//! What a process prints is read in bounded pieces (see [`bounded`]):
//! stderr keeps its tail only ([`STDERR_KEPT`]), a host's output its
//! first [`HOST_OUTPUT_KEPT`] bytes, and a line handed on as it comes is
//! cut at [`LINE_LIMIT`]. A host may print anything, for as long as it
//! likes; landfall's memory does not follow.
//!
//! A [`Cmd`] may have a deadline (past it the command is killed, and the
//! error says so and names the host), may run in a process group of its
//! own (the transports' commands do, so that Ctrl-C at a terminal reaches
//! landfall alone, which decides what becomes of the work in flight), and
//! may read its standard input from a file as it needs it (`exec
//! --stdin`). `session` keeps a shell up for many scripts.

mod bounded;
mod session;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub(crate) use bounded::LINE_LIMIT;
use bounded::{CHUNK, Head, Tail};
pub(crate) use session::{Ended, Session, Shell};

/// How much of a process's stderr is kept: its tail, which errors show.
pub(crate) const STDERR_KEPT: usize = 64 * 1024;

/// How much of a host's output a script keeps (its reports, and the files
/// a dry run reads to diff them); the rest is dropped, and said to be.
pub(crate) const HOST_OUTPUT_KEPT: usize = 64 << 20;

/// What a command reads on its standard input.
#[derive(Debug, Clone)]
enum Input {
    Nothing,
    Bytes(Vec<u8>),
    /// A file, read by the process itself as it needs it.
    File(PathBuf),
}

/// A command to run, described as plain data.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    host: Option<String>,
    input: Input,
    deadline: Option<std::time::Duration>,
    own_group: bool,
    /// The most of its stdout kept, if not all of it.
    kept: Option<usize>,
}

impl Cmd {
    pub(crate) fn new(program: impl Into<OsString>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            dir: None,
            env: Vec::new(),
            host: None,
            input: Input::Nothing,
            deadline: None,
            own_group: false,
            kept: None,
        }
    }

    /// Says that its output is not trusted to stay small (a host's, or a
    /// hook's): only the first [`HOST_OUTPUT_KEPT`] bytes of its stdout
    /// are kept.
    #[must_use]
    pub(crate) fn bounded_output(mut self) -> Cmd {
        self.kept = Some(HOST_OUTPUT_KEPT);
        self
    }

    /// Runs the command in a process group of its own, so that a signal
    /// sent to landfall's group (Ctrl-C at a terminal) does not reach it:
    /// landfall decides what becomes of work in flight on a host.
    #[must_use]
    pub(crate) fn in_own_process_group(mut self) -> Cmd {
        self.own_group = true;
        self
    }

    /// The longest the command may run: past that it is killed, and its
    /// run is an error that says so.
    #[must_use]
    pub(crate) fn deadline(mut self, deadline: std::time::Duration) -> Cmd {
        self.deadline = Some(deadline);
        self
    }

    #[must_use]
    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    #[must_use]
    pub(crate) fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    #[must_use]
    pub(crate) fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    #[must_use]
    pub(crate) fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds `bytes` to the command's standard input (instead of nothing).
    #[must_use]
    pub(crate) fn input(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.input = Input::Bytes(bytes.into());
        self
    }

    /// Gives the command the file at `path` as its standard input, which it
    /// reads as it needs it: the file is never read into memory here.
    #[must_use]
    pub(crate) fn input_file(mut self, path: impl Into<PathBuf>) -> Cmd {
        self.input = Input::File(path.into());
        self
    }

    /// Names the host this command works on, for error messages.
    #[must_use]
    pub(crate) fn for_host(mut self, host: impl Into<String>) -> Cmd {
        self.host = Some(host.into());
        self
    }

    /// The command with its input, or none: landfall's processes never
    /// read the terminal.
    fn expression(&self) -> duct::Expression {
        match &self.input {
            Input::Bytes(bytes) => self.attached().stdin_bytes(bytes.clone()),
            Input::File(path) => self.attached().stdin_path(path),
            Input::Nothing => self.attached().stdin_null(),
        }
    }

    /// The command with the caller's stdin, stdout and stderr.
    fn attached(&self) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, &self.args);
        if self.own_group {
            expr = expr.before_spawn(|command| {
                use std::os::unix::process::CommandExt;
                command.process_group(0);
                Ok(())
            });
        }
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        for (key, value) in &self.env {
            expr = expr.env(key, value);
        }
        expr
    }

    pub(crate) fn error(&self, kind: ProcessErrorKind) -> ProcessError {
        ProcessError {
            command: self.to_string(),
            host: self.host.clone(),
            kind,
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|word| {
                let word = word.to_string_lossy();
                // A script would drown the message; its first line names it.
                // Every other word (a path, a flag) is shown whole.
                let word = if word.contains('\n') {
                    format!("{}…", truncate(&word, 60))
                } else {
                    word.into_owned()
                };
                quote(&word)
            })
            .collect();
        f.write_str(&words.join(" "))
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.split('\n')
        .next()
        .map_or("", |first| &first[..end.min(first.len())])
}

/// What a finished process produced.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    /// The exit code, or `None` if a signal ended the process.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub(crate) fn stderr_tail(&self) -> String {
        tail(&self.stderr, 12)
    }
}

/// The last `lines` lines of some output, as text.
pub(crate) fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[derive(Debug, thiserror::Error)]
pub struct ProcessError {
    pub command: String,
    pub host: Option<String>,
    pub kind: ProcessErrorKind,
}

#[derive(Debug)]
pub enum ProcessErrorKind {
    Spawn(io::Error),
    Status {
        code: Option<i32>,
        stderr_tail: String,
    },
    /// It ran past its deadline and was killed.
    Deadline {
        seconds: u64,
        stderr_tail: String,
    },
    /// ssh could not connect to the host or log in there: `address` is
    /// where it tried (`127.0.0.9:22`), `reason` what ssh said of it.
    Unreachable {
        address: String,
        reason: String,
    },
}

/// How an error's message gives the command line that failed: last, on a
/// line of its own that starts with this. A person reads the cause first;
/// the command line, landfall's own and rarely the cause, is for
/// `--verbose` (see [`split_command_line`]).
pub(crate) const COMMAND_LINE: &str = "\ncommand line: ";

/// An error's message without its command line, and the command line, if
/// it gives one.
pub fn split_command_line(message: &str) -> (&str, Option<&str>) {
    match message.rfind(COMMAND_LINE) {
        Some(at) => (&message[..at], Some(&message[at + COMMAND_LINE.len()..])),
        None => (message, None),
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What happened comes first; a command of a host's transport is
        // named by its program, and its whole line closes the message.
        let program = self.command.split(' ').next().unwrap_or_default();
        let named = if self.host.is_some() {
            program
        } else {
            self.command.as_str()
        };
        match (&self.kind, &self.host) {
            (ProcessErrorKind::Unreachable { address, reason }, Some(host)) => {
                write!(f, "cannot reach `{host}` ({address}): {reason}")?;
            }
            (ProcessErrorKind::Unreachable { address, reason }, None) => {
                write!(f, "cannot reach {address}: {reason}")?;
            }
            (kind, host) => {
                if let Some(host) = host {
                    write!(f, "on `{host}`: ")?;
                }
                match kind {
                    ProcessErrorKind::Spawn(err) => write!(f, "could not run `{named}`: {err}")?,
                    ProcessErrorKind::Status { code, stderr_tail } => {
                        match code {
                            Some(code) => write!(f, "`{named}` exited with status {code}")?,
                            None => write!(f, "`{named}` was killed by a signal")?,
                        }
                        if !stderr_tail.is_empty() {
                            write!(f, ":\n{stderr_tail}")?;
                        }
                    }
                    ProcessErrorKind::Deadline {
                        seconds,
                        stderr_tail,
                    } => {
                        write!(
                            f,
                            "`{named}` did not finish within {seconds}s and was stopped"
                        )?;
                        if !stderr_tail.is_empty() {
                            write!(f, ":\n{stderr_tail}")?;
                        }
                    }
                    ProcessErrorKind::Unreachable { .. } => {}
                }
            }
        }
        if self.host.is_some() {
            write!(f, "{COMMAND_LINE}`{}`", self.command)?;
        }
        Ok(())
    }
}

/// Runs a command to completion, capturing its output; a non-zero exit
/// status is an error.
pub(crate) fn run(cmd: &Cmd) -> Result<Output, ProcessError> {
    let output = run_unchecked(cmd)?;
    if output.success() {
        Ok(output)
    } else {
        Err(cmd.error(ProcessErrorKind::Status {
            code: output.code,
            stderr_tail: output.stderr_tail(),
        }))
    }
}

/// Runs a command to completion, capturing its output, and returns it
/// whatever the exit status. Its stderr is kept to its tail, and its
/// stdout, if it comes from a host, to its head (see [`Cmd::bounded_output`]).
pub(crate) fn run_unchecked(cmd: &Cmd) -> Result<Output, ProcessError> {
    let spawn_error = |err| cmd.error(ProcessErrorKind::Spawn(err));
    let (stdout, stdout_write) = io::pipe().map_err(spawn_error)?;
    let (stderr, stderr_write) = io::pipe().map_err(spawn_error)?;
    // The expression holds the pipes' ends that the process writes to: it
    // goes once the process has them, so that its output ends with it.
    let handle = cmd
        .expression()
        .stdout_file(stdout_write)
        .stderr_file(stderr_write)
        .unchecked()
        .start()
        .map_err(spawn_error)?;
    let kept = cmd.kept.unwrap_or(usize::MAX);
    let stdout = read_in_background(stdout, move |reader| {
        let mut head = Head::new(kept);
        each_chunk(reader, &mut |chunk| head.push(chunk));
        head
    });
    let stderr = read_in_background(stderr, |reader| {
        let mut tail = Tail::new(STDERR_KEPT);
        each_chunk(reader, &mut |chunk| tail.push(chunk));
        tail
    });
    let started = std::time::Instant::now();
    // Past any deadline a run can reach, and short of one that overflows
    // the clock.
    let deadline = cmd
        .deadline
        .unwrap_or(std::time::Duration::MAX)
        .min(std::time::Duration::from_secs(1 << 40));
    let left = || deadline.saturating_sub(started.elapsed());
    // duct waits on the child's exit (SIGCHLD), not by looking now and
    // then; its output is waited for until the same deadline, since a
    // process it started may hold it open.
    let status = handle.wait_timeout(deadline).map_err(spawn_error)?;
    let outputs = status.and_then(|status| {
        let stdout = stdout.recv_timeout(left()).ok()?;
        let stderr = stderr.recv_timeout(left()).ok()?;
        Some((status.status, stdout, stderr))
    });
    let Some((status, stdout, stderr)) = outputs else {
        let _ = handle.kill();
        // What it said is collected once its output closes, which a
        // process it started may hold open: that is not waited for long.
        let stderr_tail = stderr
            .recv_timeout(std::time::Duration::from_secs(2))
            .map(|tail| self::tail(&tail.into_bytes(), 12))
            .unwrap_or_default();
        return Err(cmd.error(ProcessErrorKind::Deadline {
            seconds: deadline.as_secs(),
            stderr_tail,
        }));
    };
    let dropped = stdout.dropped();
    let mut stderr = stderr.into_bytes();
    if dropped > 0 {
        stderr.extend_from_slice(
            format!("landfall: its output was cut at {kept} bytes ({dropped} more were dropped)\n")
                .as_bytes(),
        );
    }
    Ok(Output {
        code: status.code(),
        stdout: stdout.into_bytes(),
        stderr,
    })
}

/// Reads `pipe` on a thread of its own with `read`, and sends what it
/// made of it once the pipe has ended. The thread is not joined: a process
/// that a command started may hold its output open long after it ended.
fn read_in_background<T: Send + 'static>(
    mut pipe: io::PipeReader,
    read: impl FnOnce(&mut dyn io::Read) -> T + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = send.send(read(&mut pipe));
    });
    receive
}

/// Reads `reader` to its end, [`CHUNK`] bytes at a time, handing each
/// piece to `chunk`. An error of the reader ends it as the end would.
fn each_chunk(reader: &mut dyn io::Read, chunk: &mut dyn FnMut(&[u8])) {
    let mut buf = [0u8; CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => chunk(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// The tail of stderr that a reader keeps, once it is done or as it was
/// after a moment more: a process that exited may have left one that holds
/// its stderr open.
fn tail_of(stderr: &std::sync::mpsc::Receiver<Tail>) -> Vec<u8> {
    stderr
        .recv_timeout(std::time::Duration::from_secs(2))
        .map(Tail::into_bytes)
        .unwrap_or_default()
}

/// Runs a command and hands its standard output to `read` as a stream, for
/// output too big to hold in memory. A non-zero exit status is an error,
/// and so is an error of `read` (the process is then killed).
pub(crate) fn read_stdout<T>(
    cmd: &Cmd,
    read: impl FnOnce(&mut dyn io::Read) -> io::Result<T>,
) -> Result<T, ProcessError> {
    let spawn_error = |err| cmd.error(ProcessErrorKind::Spawn(err));
    let (handle, stderr) = spawn_reading(cmd)?;
    let result = read(&mut &handle).and_then(|value| {
        // Drain what `read` left, so that the process is waited for.
        io::copy(&mut &handle, &mut io::sink())?;
        Ok(value)
    });
    let value = match result {
        Ok(value) => value,
        Err(err) => {
            let _ = handle.kill();
            return Err(cmd.error(ProcessErrorKind::Status {
                code: None,
                stderr_tail: format!("reading its output failed: {err}"),
            }));
        }
    };
    match handle.try_wait().map_err(spawn_error)? {
        Some(output) if output.status.success() => Ok(value),
        Some(output) => Err(cmd.error(ProcessErrorKind::Status {
            code: output.status.code(),
            stderr_tail: tail(&tail_of(&stderr), 12),
        })),
        None => unreachable!("the output was read to its end, so the process was waited for"),
    }
}

/// Starts `cmd` with its standard output to be read from the handle
/// returned, and the tail of its stderr kept on a thread of its own.
fn spawn_reading(
    cmd: &Cmd,
) -> Result<(duct::ReaderHandle, std::sync::mpsc::Receiver<Tail>), ProcessError> {
    let spawn_error = |err| cmd.error(ProcessErrorKind::Spawn(err));
    let (stderr, stderr_write) = io::pipe().map_err(spawn_error)?;
    let handle = cmd
        .expression()
        .stderr_file(stderr_write)
        .unchecked()
        .reader()
        .map_err(spawn_error)?;
    Ok((handle, read_stderr(stderr)))
}

/// Keeps the tail of a process's stderr, read on a thread of its own.
fn read_stderr(pipe: io::PipeReader) -> std::sync::mpsc::Receiver<Tail> {
    read_in_background(pipe, |reader| {
        let mut tail = Tail::new(STDERR_KEPT);
        each_chunk(reader, &mut |chunk| tail.push(chunk));
        tail
    })
}

/// Runs a command and hands each line of its standard output to `line` as
/// it comes (with its end of line, unless it is the last and had none), for
/// output that may never end, such as a log followed. A line longer than
/// [`LINE_LIMIT`] is handed on cut, with a note at its end, as soon as it
/// reaches the limit, and the rest of it is dropped as it comes. Once
/// `stop` says so (it is asked every tenth of a second) the command is
/// killed. Returns its output, stdout excepted.
pub(crate) fn stream_lines(
    cmd: &Cmd,
    stop: &(dyn Fn() -> bool + Sync),
    line: &mut dyn FnMut(&str),
) -> Result<Output, ProcessError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (handle, stderr) = spawn_reading(cmd)?;
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if stop() {
                    let _ = handle.kill();
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        let _ = bounded::read_lines(&mut &handle, LINE_LIMIT, &mut |bytes| {
            line(&String::from_utf8_lossy(bytes));
        });
        done.store(true, Ordering::Relaxed);
    });
    if let Ok(Some(output)) = handle.try_wait() {
        return Ok(Output {
            code: output.status.code(),
            stdout: Vec::new(),
            stderr: tail_of(&stderr),
        });
    }
    // Killed, or its output ended before it did.
    let _ = handle.kill();
    Ok(Output {
        code: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
    })
}

/// Runs `cmd` as [`read_stdout`] does, handing each piece of its stdout
/// to `piece` as it comes. A piece ends at a newline or a carriage return,
/// with which a progress meter draws its line again; a piece longer than
/// [`LINE_LIMIT`] is cut there, and the rest of it dropped.
pub(crate) fn run_streaming(cmd: &Cmd, piece: &mut dyn FnMut(&str)) -> Result<(), ProcessError> {
    read_stdout(cmd, |stdout| {
        let mut current = Vec::new();
        let mut buf = [0u8; CHUNK];
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            for &byte in &buf[..n] {
                if byte == b'\n' || byte == b'\r' {
                    if !current.is_empty() {
                        piece(&String::from_utf8_lossy(&current));
                        current.clear();
                    }
                } else if current.len() < LINE_LIMIT {
                    current.push(byte);
                }
            }
        }
        if !current.is_empty() {
            piece(&String::from_utf8_lossy(&current));
        }
        Ok(())
    })
}

/// Runs a command that may leave a process behind holding its output (such
/// as `ssh -f`, whose backgrounded master keeps stdout and stderr): stdout
/// goes nowhere and stderr to `log`, which is read back for errors.
pub(crate) fn run_detaching(cmd: &Cmd, log: &Path) -> Result<(), ProcessError> {
    let output = cmd
        .expression()
        .stdout_null()
        .stderr_path(log)
        .unchecked()
        .run()
        .map_err(|err| cmd.error(ProcessErrorKind::Spawn(err)))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = read_end(log, STDERR_KEPT).unwrap_or_default();
        Err(cmd.error(ProcessErrorKind::Status {
            code: output.status.code(),
            stderr_tail: tail(&stderr, 12),
        }))
    }
}

/// The last `limit` bytes of the file at `path`, which whoever writes it
/// may have made big.
pub(crate) fn read_end(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(io::SeekFrom::Start(len.saturating_sub(limit as u64)))?;
    let mut end = Vec::new();
    file.take(limit as u64).read_to_end(&mut end)?;
    Ok(end)
}

/// Runs a command on the user's terminal, such as an editor, and returns
/// its exit code (`None` if a signal ended it).
pub(crate) fn run_attached(cmd: &Cmd) -> Result<Option<i32>, ProcessError> {
    let output = cmd
        .attached()
        .unchecked()
        .run()
        .map_err(|err| cmd.error(ProcessErrorKind::Spawn(err)))?;
    Ok(output.status.code())
}

/// Runs a command whose stderr is meant for the user (cargo's progress and
/// diagnostics) and returns its stdout.
pub(crate) fn run_passing_stderr(cmd: &Cmd, quiet: bool) -> Result<Vec<u8>, ProcessError> {
    let spawn_error = |err| cmd.error(ProcessErrorKind::Spawn(err));
    let mut expr = cmd.expression().stdout_capture().unchecked();
    if quiet {
        expr = expr.stderr_capture();
    }
    // A signal that ends landfall while it builds ends the build too.
    let handle = std::sync::Arc::new(expr.start().map_err(spawn_error)?);
    LOCAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(std::sync::Arc::downgrade(&handle));
    let output = handle.wait().map_err(spawn_error)?.clone();
    LOCAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|h| {
            h.strong_count() > 0 && !std::ptr::eq(h.as_ptr(), std::sync::Arc::as_ptr(&handle))
        });
    if output.status.success() {
        Ok(output.stdout)
    } else {
        // Cargo's errors are shown whole: the first of them is the one that
        // matters, and a tail would cut it.
        let stderr_tail = String::from_utf8_lossy(&output.stderr)
            .trim_end()
            .to_string();
        Err(cmd.error(ProcessErrorKind::Status {
            code: output.status.code(),
            stderr_tail,
        }))
    }
}

/// The local processes landfall waits for that end with it, such as a
/// build: cargo runs in landfall's process group, but a SIGTERM sent to
/// landfall alone reaches it only through here.
static LOCAL: std::sync::Mutex<Vec<std::sync::Weak<duct::Handle>>> =
    std::sync::Mutex::new(Vec::new());

/// Kills the local processes landfall waits for, for a process that ends.
pub(crate) fn stop_local() {
    let local = LOCAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for handle in local.iter().filter_map(std::sync::Weak::upgrade) {
        let _ = handle.kill();
    }
}

/// Quotes one word for a POSIX shell. Every value that landfall puts into a
/// shell command goes through here.
pub(crate) fn quote(word: &str) -> String {
    // Only NUL cannot be quoted. File names and process arguments exclude
    // it, and hooks refuse a value that holds one (see `template::engine`).
    shlex::try_quote(word).map_or_else(
        |_| quote(&word.replace('\0', "")),
        std::borrow::Cow::into_owned,
    )
}

#[cfg(test)]
mod tests;
