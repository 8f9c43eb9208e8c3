//! The one place that starts processes: cargo, git, sh (and, for remote
//! hosts, ssh and rsync).
//!
//! Arguments are always arrays, never shell strings assembled by hand; what
//! must cross a shell is quoted by [`quote`]. Errors name the command, the
//! host it ran for, the exit status and the tail of its stderr.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A command to run, described as plain data.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    host: Option<String>,
    input: Option<Vec<u8>>,
    deadline: Option<std::time::Duration>,
    own_group: bool,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            dir: None,
            env: Vec::new(),
            host: None,
            input: None,
            deadline: None,
            own_group: false,
        }
    }

    /// Runs the command in a process group of its own, so that a signal
    /// sent to landfall's group (Ctrl-C at a terminal) does not reach it:
    /// landfall decides what becomes of work in flight on a host.
    #[must_use]
    pub fn in_own_process_group(mut self) -> Cmd {
        self.own_group = true;
        self
    }

    /// The longest the command may run: past that it is killed, and its
    /// run is an error that says so.
    #[must_use]
    pub fn deadline(mut self, deadline: std::time::Duration) -> Cmd {
        self.deadline = Some(deadline);
        self
    }

    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    #[must_use]
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds `bytes` to the command's standard input (instead of nothing).
    #[must_use]
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.input = Some(bytes.into());
        self
    }

    /// Names the host this command works on, for error messages.
    #[must_use]
    pub fn for_host(mut self, host: impl Into<String>) -> Cmd {
        self.host = Some(host.into());
        self
    }

    /// The command with its input, or none: landfall's processes never
    /// read the terminal.
    fn expression(&self) -> duct::Expression {
        match &self.input {
            Some(bytes) => self.attached().stdin_bytes(bytes.clone()),
            None => self.attached().stdin_null(),
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

    fn error(&self, kind: ProcessErrorKind) -> ProcessError {
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
                // A long argument (a whole script) would drown the message.
                let word = if word.len() > 60 {
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
pub struct Output {
    /// The exit code, or `None` if a signal ended the process.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr, 12)
    }
}

/// The last `lines` lines of some output, as text.
pub fn tail(bytes: &[u8], lines: usize) -> String {
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
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.host {
            write!(f, "on `{host}`: ")?;
        }
        match &self.kind {
            ProcessErrorKind::Spawn(err) => write!(f, "could not run `{}`: {err}", self.command),
            ProcessErrorKind::Status { code, stderr_tail } => {
                match code {
                    Some(code) => write!(f, "`{}` exited with status {code}", self.command)?,
                    None => write!(f, "`{}` was killed by a signal", self.command)?,
                }
                if !stderr_tail.is_empty() {
                    write!(f, ":\n{stderr_tail}")?;
                }
                Ok(())
            }
            ProcessErrorKind::Deadline {
                seconds,
                stderr_tail,
            } => {
                write!(
                    f,
                    "`{}` did not finish within {seconds}s and was stopped",
                    self.command
                )?;
                if !stderr_tail.is_empty() {
                    write!(f, ":\n{stderr_tail}")?;
                }
                Ok(())
            }
        }
    }
}

/// Runs a command to completion, capturing its output; a non-zero exit
/// status is an error.
pub fn run(cmd: &Cmd) -> Result<Output, ProcessError> {
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
/// whatever the exit status.
pub fn run_unchecked(cmd: &Cmd) -> Result<Output, ProcessError> {
    let expression = cmd
        .expression()
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    let output = match cmd.deadline {
        None => expression
            .run()
            .map_err(|err| cmd.error(ProcessErrorKind::Spawn(err)))?,
        Some(deadline) => wait_until(cmd, &expression, deadline)?,
    };
    Ok(Output {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: output.stderr,
    })
}

/// Runs `expression` for at most `deadline`, then kills it.
fn wait_until(
    cmd: &Cmd,
    expression: &duct::Expression,
    deadline: std::time::Duration,
) -> Result<std::process::Output, ProcessError> {
    let started = std::time::Instant::now();
    let handle = expression
        .start()
        .map_err(|err| cmd.error(ProcessErrorKind::Spawn(err)))?;
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        if let Some(output) = handle
            .try_wait()
            .map_err(|err| cmd.error(ProcessErrorKind::Spawn(err)))?
        {
            return Ok(output.clone());
        }
        if started.elapsed() >= deadline {
            let _ = handle.kill();
            // What it said is collected once its output closes, which a
            // process it started may hold open: that is not waited for
            // long.
            let mut stderr_tail = String::new();
            let grace = std::time::Instant::now();
            while grace.elapsed() < std::time::Duration::from_secs(2) {
                if let Ok(Some(output)) = handle.try_wait() {
                    stderr_tail = tail(&output.stderr, 12);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            return Err(cmd.error(ProcessErrorKind::Deadline {
                seconds: deadline.as_secs(),
                stderr_tail,
            }));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// Runs a command and hands its standard output to `read` as a stream, for
/// output too big to hold in memory. A non-zero exit status is an error,
/// and so is an error of `read` (the process is then killed).
pub fn read_stdout<T>(
    cmd: &Cmd,
    read: impl FnOnce(&mut dyn io::Read) -> io::Result<T>,
) -> Result<T, ProcessError> {
    let spawn_error = |err| cmd.error(ProcessErrorKind::Spawn(err));
    let handle = cmd
        .expression()
        .stderr_capture()
        .unchecked()
        .reader()
        .map_err(spawn_error)?;
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
            stderr_tail: tail(&output.stderr, 12),
        })),
        None => unreachable!("the output was read to its end, so the process was waited for"),
    }
}

/// Runs a command and hands each line of its standard output to `line` as
/// it comes (with its end of line, unless it is the last and had none), for output that may never end, such
/// as a log followed. Once `stop` says so (it is asked every tenth of a
/// second) the command is killed. Returns its output, stdout excepted.
pub fn stream_lines(
    cmd: &Cmd,
    stop: &(dyn Fn() -> bool + Sync),
    line: &mut dyn FnMut(&str),
) -> Result<Output, ProcessError> {
    use std::io::BufRead as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    let spawn_error = |err| cmd.error(ProcessErrorKind::Spawn(err));
    let handle = cmd
        .expression()
        .stderr_capture()
        .unchecked()
        .reader()
        .map_err(spawn_error)?;
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
        let mut reader = io::BufReader::new(&handle);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => line(&String::from_utf8_lossy(&buf)),
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    if let Ok(Some(output)) = handle.try_wait() {
        return Ok(Output {
            code: output.status.code(),
            stdout: Vec::new(),
            stderr: output.stderr.clone(),
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

/// Runs a command that may leave a process behind holding its output (such
/// as `ssh -f`, whose backgrounded master keeps stdout and stderr): stdout
/// goes nowhere and stderr to `log`, which is read back for errors.
pub fn run_detaching(cmd: &Cmd, log: &Path) -> Result<(), ProcessError> {
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
        let stderr = std::fs::read(log).unwrap_or_default();
        Err(cmd.error(ProcessErrorKind::Status {
            code: output.status.code(),
            stderr_tail: tail(&stderr, 12),
        }))
    }
}

/// Runs a command on the user's terminal, such as an editor, and returns
/// its exit code (`None` if a signal ended it).
pub fn run_attached(cmd: &Cmd) -> Result<Option<i32>, ProcessError> {
    let output = cmd
        .attached()
        .unchecked()
        .run()
        .map_err(|err| cmd.error(ProcessErrorKind::Spawn(err)))?;
    Ok(output.status.code())
}

/// Runs a command whose stderr is meant for the user (cargo's progress and
/// diagnostics) and returns its stdout.
pub fn run_passing_stderr(cmd: &Cmd, quiet: bool) -> Result<Vec<u8>, ProcessError> {
    let mut expr = cmd.expression().stdout_capture().unchecked();
    if quiet {
        expr = expr.stderr_capture();
    }
    let output = expr
        .run()
        .map_err(|err| cmd.error(ProcessErrorKind::Spawn(err)))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let stderr_tail = tail(&output.stderr, 12);
        Err(cmd.error(ProcessErrorKind::Status {
            code: output.status.code(),
            stderr_tail,
        }))
    }
}

/// Quotes one word for a POSIX shell. Every value that landfall puts into a
/// shell command goes through here.
pub fn quote(word: &str) -> String {
    // Only NUL cannot be quoted. File names and process arguments exclude
    // it, and hooks refuse a value that holds one (see `template::engine`).
    shlex::try_quote(word).map_or_else(
        |_| quote(&word.replace('\0', "")),
        std::borrow::Cow::into_owned,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_deadline_is_stopped_and_named() {
        let started = std::time::Instant::now();
        let cmd = Cmd::new("sh")
            .args(["-c", "echo started >&2; exec sleep 30"])
            .deadline(std::time::Duration::from_millis(300))
            .for_host("web1");
        let err = run_unchecked(&cmd).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let message = err.to_string();
        assert!(
            message.starts_with("on `web1`: `sh -c")
                && message.contains("did not finish within 0s and was stopped:\nstarted"),
            "{message}"
        );
        // A process it started, which holds its output open, delays the
        // error a little, not until it ends.
        let started = std::time::Instant::now();
        let cmd = Cmd::new("sh")
            .args(["-c", "sleep 30; true"])
            .deadline(std::time::Duration::from_millis(300));
        assert!(run_unchecked(&cmd).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let quick = Cmd::new("true").deadline(std::time::Duration::from_secs(30));
        assert!(run_unchecked(&quick).unwrap().success());
    }

    #[test]
    fn quote_passes_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("releases/abc"), "releases/abc");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let nasty = "a'b \"c\" $(echo pwned) `id` ; \n -x";
        let out = run(&Cmd::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(nasty))))
        .unwrap();
        assert_eq!(out.stdout_text(), nasty);
    }

    #[test]
    fn errors_name_command_host_status_and_stderr() {
        let err = run(&Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .for_host("web1"))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("on `web1`: `sh -c"), "{text}");
        assert!(text.contains("exited with status 3"), "{text}");
        assert!(text.ends_with("boom"), "{text}");
    }
}
