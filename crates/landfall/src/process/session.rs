//! A shell kept up for many scripts: one round trip each on its standard
//! input, rather than a new process, connection or session. What a script
//! prints is kept as a host's output is (the head of stdout, the tail of
//! stderr; see [`super::bounded`]).

use std::fmt;
use std::io;

use super::{Cmd, HOST_OUTPUT_KEPT, Output, ProcessError, ProcessErrorKind, STDERR_KEPT, tail};

/// A shell that stays up for many scripts, such as `sh -s` on a host over
/// ssh: each script costs a round trip on its standard input rather than a
/// new process, connection or session. The shell runs each in a subshell
/// of its own, so that nothing one leaves (variables, options, the working
/// directory, an `exit`) reaches the next, then prints a line of its own
/// on stdout and on stderr that ends the script's output and gives its
/// exit status.
pub(crate) struct Session {
    cmd: Cmd,
    shell: Box<dyn Shell>,
    stdin: Option<Box<dyn io::Write + Send>>,
    output: std::sync::mpsc::Receiver<(Stream, Option<Vec<u8>>)>,
    /// Ends each script's output: it names this session, which no script
    /// can know.
    mark: String,
    /// The shell still answers: it neither ended nor missed a deadline.
    alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

impl Session {
    /// Starts `cmd`, which must run a POSIX shell that reads commands from
    /// its standard input.
    pub(crate) fn start(cmd: &Cmd) -> Result<Session, ProcessError> {
        use std::os::unix::process::CommandExt as _;
        use std::process::Stdio;
        let mut command = std::process::Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if cmd.own_group {
            command.process_group(0);
        }
        if let Some(dir) = &cmd.dir {
            command.current_dir(dir);
        }
        for (key, value) in &cmd.env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .map_err(|err| cmd.error(ProcessErrorKind::Spawn(err)))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        Ok(Session::over(
            cmd,
            Box::new(child),
            Box::new(stdin),
            [Box::new(stdout), Box::new(stderr)],
        ))
    }

    /// A session of a shell that runs already, such as one an ssh master
    /// runs for landfall: its standard input, its output and error, and
    /// what says when it has ended. `cmd` is what it stands for in errors.
    pub(crate) fn over(
        cmd: &Cmd,
        shell: Box<dyn Shell>,
        stdin: Box<dyn io::Write + Send>,
        [stdout, stderr]: [Box<dyn io::Read + Send>; 2],
    ) -> Session {
        // A few pieces wait to be taken at most: a host that prints faster
        // than they are taken waits for them, in its pipe.
        let (send, output) = std::sync::mpsc::sync_channel(4);
        for (stream, mut pipe) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
            let send = send.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0; 64 * 1024];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if send.send((stream, Some(buf[..n].to_vec()))).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = send.send((stream, None));
            });
        }
        Session {
            cmd: cmd.clone(),
            shell,
            stdin: Some(stdin),
            output,
            mark: format!("landfall-session-{:032x}", session_nonce()),
            alive: true,
        }
    }

    /// Whether the shell may run another script.
    pub(crate) fn alive(&self) -> bool {
        self.alive
    }

    /// Runs `script`, a complete shell command, within `deadline`, and
    /// returns its output and exit status. When the shell ended (its
    /// connection failed, say), the status is the shell's own, as a command
    /// of its own would have given; past the deadline the session is ended
    /// and the run is an error that says so.
    pub(crate) fn run(
        &mut self,
        script: &str,
        deadline: std::time::Duration,
    ) -> Result<Output, ProcessError> {
        use std::io::Write as _;
        let started = std::time::Instant::now();
        let mark = &self.mark;
        let text = format!(
            "(\n{script}\n)\nlandfall_status=$?\nprintf '\\n%s %s\\n' {mark} \"$landfall_status\"\nprintf '\\n%s\\n' {mark} >&2\n"
        );
        let written = match &mut self.stdin {
            Some(stdin) => stdin
                .write_all(text.as_bytes())
                .and_then(|()| stdin.flush()),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        };
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let stdout_mark = format!("\n{mark} ");
        let stderr_mark = format!("\n{mark}\n");
        let mut status: Option<i32> = None;
        // Bytes of stdout dropped past what is kept.
        let mut cut = 0;
        let mut stderr_done = false;
        let mut ended = [false, false];
        // Output up to the marks is the script's, whatever else happens.
        // A shell that took no script may still say why on its way out:
        // what it says within a moment is kept.
        let until = if written.is_ok() {
            deadline
        } else {
            deadline.min(std::time::Duration::from_secs(1))
        };
        while !(status.is_some() && stderr_done) && ended != [true, true] {
            let left = until.saturating_sub(started.elapsed());
            match self.output.recv_timeout(left) {
                Ok((stream, Some(bytes))) => {
                    let buf = match stream {
                        Stream::Stdout => &mut stdout,
                        Stream::Stderr => &mut stderr,
                    };
                    // Only what came since the last look is searched (with
                    // room for a mark split between two reads).
                    let window = mark.len() + 24;
                    let from = buf.len().saturating_sub(window);
                    buf.extend_from_slice(&bytes);
                    if stream == Stream::Stdout && status.is_none() {
                        status = take_status(&mut stdout, &stdout_mark, from);
                        // Past what is kept, only the window where the
                        // mark is looked for stays.
                        if status.is_none() && stdout.len() > HOST_OUTPUT_KEPT + window {
                            cut += stdout.len() - HOST_OUTPUT_KEPT - window;
                            stdout.drain(HOST_OUTPUT_KEPT..stdout.len() - window);
                        }
                    }
                    if stream == Stream::Stderr && !stderr_done {
                        stderr_done = take_mark(&mut stderr, &stderr_mark, from);
                        // Errors show its tail only.
                        if !stderr_done && stderr.len() > 2 * STDERR_KEPT {
                            stderr.drain(..stderr.len() - STDERR_KEPT);
                        }
                    }
                }
                Ok((stream, None)) => ended[stream as usize] = true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if written.is_err() => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.end();
                    return Err(self.cmd.error(ProcessErrorKind::Deadline {
                        seconds: deadline.as_secs(),
                        stderr_tail: tail(&stderr, 12),
                    }));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if cut > 0 {
            stdout.truncate(HOST_OUTPUT_KEPT);
            stderr.extend_from_slice(
                format!(
                    "landfall: its output was cut at {HOST_OUTPUT_KEPT} bytes ({cut} more were dropped)\n"
                )
                .as_bytes(),
            );
        }
        if let (Some(status), true) = (status, stderr_done) {
            return Ok(Output {
                // sh gives 128 + N for a script a signal ended.
                code: (status <= 128).then_some(status),
                stdout,
                stderr,
            });
        }
        // The shell is gone: its status stands for the script's.
        self.alive = false;
        self.stdin = None;
        let left = deadline.saturating_sub(started.elapsed());
        let code = self.wait(left.max(std::time::Duration::from_secs(1)));
        Ok(Output {
            code,
            stdout,
            stderr,
        })
    }

    /// Ends the shell: it reads no more, and is killed if it does not end
    /// at once.
    pub(crate) fn end(&mut self) {
        self.alive = false;
        self.stdin = None;
        self.shell.kill();
    }

    /// Closes the shell's input, which ends it once the script it runs,
    /// if any, has ended.
    pub(crate) fn hang_up(&mut self) {
        self.stdin = None;
    }

    /// Closes the shell's input and waits for it to end up to `deadline`,
    /// then kills it.
    pub(crate) fn close(mut self, deadline: std::time::Duration) {
        self.stdin = None;
        self.alive = false;
        self.wait(deadline);
    }

    fn wait(&mut self, deadline: std::time::Duration) -> Option<i32> {
        if let Some(ended) = self.shell.wait_ended(deadline) {
            return ended.code;
        }
        self.shell.kill();
        self.shell.ended().and_then(|ended| ended.code)
    }
}

/// What runs a session's shell, and says when it has ended.
pub(crate) trait Shell: Send {
    /// How the shell ended, once it has.
    fn ended(&mut self) -> Option<Ended>;

    /// How the shell ended, waiting up to `deadline` for it to end.
    fn wait_ended(&mut self, deadline: std::time::Duration) -> Option<Ended> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            if let Some(ended) = self.ended() {
                return Some(ended);
            }
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                return None;
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }

    /// Ends the shell at once.
    fn kill(&mut self);
}

/// How a shell ended: its exit code, or none when a signal ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) code: Option<i32>,
}

impl Shell for std::process::Child {
    fn ended(&mut self) -> Option<Ended> {
        match self.try_wait() {
            Ok(Some(status)) => Some(Ended {
                code: status.code(),
            }),
            Ok(None) => None,
            Err(_) => Some(Ended { code: None }),
        }
    }

    fn kill(&mut self) {
        let _ = std::process::Child::kill(self);
        let _ = self.wait();
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("cmd", &self.cmd.to_string())
            .field("alive", &self.alive)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.alive {
            self.stdin = None;
            self.wait(std::time::Duration::from_secs(5));
        }
    }
}

/// Removes `\nMARK STATUS\n` from the end of `out` (looking from `from`
/// on), once all of it is there, and returns the status.
fn take_status(out: &mut Vec<u8>, mark: &str, from: usize) -> Option<i32> {
    let at = from + find(&out[from..], mark.as_bytes())?;
    let rest = &out[at + mark.len()..];
    let end = rest.iter().position(|&b| b == b'\n')?;
    let code: i32 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    out.truncate(at);
    Some(code)
}

/// Removes `mark` from the end of `out` (looking from `from` on), once
/// all of it is there.
fn take_mark(out: &mut Vec<u8>, mark: &str, from: usize) -> bool {
    match find(&out[from..], mark.as_bytes()) {
        Some(at) => {
            out.truncate(from + at);
            true
        }
        None => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A number no two sessions of this machine share in practice.
fn session_nonce() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = format!(
        "{}:{}:{}",
        std::process::id(),
        now.as_nanos(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    let hash = blake3::hash(seed.as_bytes());
    u128::from_le_bytes(hash.as_bytes()[..16].try_into().expect("16 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One shell serves many scripts; none sees what another left, an
    /// `exit` ends only its script, and output comes back byte for byte.
    #[test]
    fn a_session_runs_script_after_script_each_on_its_own() {
        for shell in [&["dash"][..], &["busybox", "sh"][..]] {
            let cmd = Cmd::new(shell[0])
                .args(&shell[1..])
                .arg("-s")
                .dir("/")
                .for_host("h");
            let mut session = Session::start(&cmd).unwrap();
            let minute = std::time::Duration::from_secs(60);
            let out = session
                .run(
                    "{ x=1; cd /tmp; printf 'no newline'; echo err >&2; exit 3; }",
                    minute,
                )
                .unwrap();
            assert_eq!(out.code, Some(3), "{shell:?}");
            assert_eq!(out.stdout, b"no newline", "{shell:?}");
            assert_eq!(out.stderr, b"err\n", "{shell:?}");
            let out = session
                .run("{ set -u; echo \"${x:-unset}\"; pwd; }", minute)
                .unwrap();
            assert_eq!(out.code, Some(0));
            assert_eq!(out.stdout_text(), "unset\n/\n", "{shell:?}");
            assert!(out.stderr.is_empty());
            // Big output, in many reads.
            let out = session
                .run(
                    "{ i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; }",
                    minute,
                )
                .unwrap();
            assert_eq!(out.stdout_text().lines().count(), 20000, "{shell:?}");
            assert!(session.alive());

            // Past its deadline a script is stopped, and so is the session.
            let err = session
                .run("{ sleep 30; }", std::time::Duration::from_millis(300))
                .unwrap_err();
            assert!(
                matches!(err.kind, ProcessErrorKind::Deadline { .. }),
                "{err}"
            );
            assert!(!session.alive());

            // A shell that ends gives its status for the script's.
            let mut session = Session::start(&cmd).unwrap();
            let out = session.run("{ kill -9 $$; }", minute).unwrap();
            assert_eq!(out.code, None, "{shell:?}");
            assert!(!session.alive());
            session.close(minute);
        }
    }

    /// A session kept all a host's script printed: its head is kept, the
    /// rest dropped and said to be, and the next script runs as ever.
    #[test]
    fn a_session_keeps_the_head_of_what_a_script_prints() {
        let cmd = Cmd::new("sh").arg("-s").dir("/").for_host("h");
        let mut session = Session::start(&cmd).unwrap();
        let minute = std::time::Duration::from_secs(60);
        let out = session
            .run("{ head -c 70000000 /dev/zero; echo err >&2; }", minute)
            .unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(out.stdout.len(), HOST_OUTPUT_KEPT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!(
                "err\nlandfall: its output was cut at {HOST_OUTPUT_KEPT} bytes"
            )),
            "{stderr}"
        );
        let out = session.run("{ echo next; }", minute).unwrap();
        assert_eq!(out.stdout, b"next\n");
        assert!(out.stderr.is_empty());
        session.close(minute);
    }
}
