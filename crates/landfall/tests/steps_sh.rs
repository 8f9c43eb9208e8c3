//! Behavioural tests of the host steps, `steps.sh` (the parts in
//! `src/steps/sh/`, joined as `src/steps/sh/parts.rs` says), run for real
//! under both shells a host's `sh` is likely to be: dash (Debian, Ubuntu)
//! and busybox sh (Alpine). As the transports do, each script is the step
//! functions followed by calls, fed to `SHELL -s` on standard input from
//! `/`; every test works in temporary directories of its own.
//!
//! To add a test, write `fn what_it_checks(shell: Shell)`: make an
//! `Artifact` (its directory, releases with their ages, `current`, the
//! lock), run calls rendered by `step` or `step_with` (a step function,
//! its arguments by name, as landfall calls it) or `call` (a function the
//! steps call, its arguments positional) with `shell.run`, or start them
//! with `shell.start` when the test must act while they run, and assert the
//! `Outcome` (`expect` takes the status and the whole stdout) and the files
//! left. Then add its name to `under_both_shells!` at the end of the file,
//! which makes the test `under_both_shells::what_it_checks`: it runs the
//! function under each shell at once, in a thread named after the shell,
//! and fails if either fails. A shell, or git, that is not installed fails
//! the tests that need it: they never pass by skipping.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime};

const STEPS: &str = include!("../src/steps/sh/parts.rs");

/// How long any script may run; the slowest waits 6 seconds for a hook
/// to be killed.
const RUN_DEADLINE: Duration = Duration::from_secs(20);

/// How long a test waits for a script to reach a point it reports with a
/// file.
const GATE_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Shell {
    Dash,
    Busybox,
}

impl Shell {
    const ALL: [Shell; 2] = [Shell::Dash, Shell::Busybox];

    fn name(self) -> &'static str {
        match self {
            Shell::Dash => "dash",
            Shell::Busybox => "busybox sh",
        }
    }

    /// Runs `calls` after the step functions, to the end.
    #[track_caller]
    fn run(self, calls: &str) -> Outcome {
        self.start(calls).finish()
    }

    /// Starts `calls` after the step functions, in a process group of its
    /// own (as a script run over ssh is).
    #[track_caller]
    fn start(self, calls: &str) -> Running {
        let mut words = self.name().split(' ');
        let mut command = Command::new(landfall_testbed::require(
            words.next().expect("a shell has a name"),
        ));
        command
            .args(words)
            .arg("-s")
            .current_dir("/")
            .env("LC_ALL", "C")
            // The host's record of the paths it was deployed to is kept out
            // of the user's home; a test of it gives its own.
            .env(
                "LANDFALL_STATE",
                std::env::temp_dir().join(format!("landfall-steps-state-{}", std::process::id())),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start `{}` ({e}): the steps are tested under it, install it with \
                 apt-get install dash busybox",
                self.name()
            )
        });
        let script = format!("{STEPS}\n{calls}");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A script that exits early stops reading; the rest is not needed.
        std::thread::spawn(move || drop(stdin.write_all(script.as_bytes())));
        let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
        let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
        Running {
            shell: self,
            calls: calls.to_string(),
            child,
            stdout,
            stderr,
            started: Instant::now(),
            finished: false,
        }
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        drop(pipe.read_to_end(&mut bytes));
        drop(send.send(bytes));
    });
    receive
}

/// A script that runs; dropping it kills its process group.
struct Running {
    shell: Shell,
    calls: String,
    child: Child,
    stdout: Receiver<Vec<u8>>,
    stderr: Receiver<Vec<u8>>,
    started: Instant,
    finished: bool,
}

impl Running {
    /// The script's process id, which is also its process group's.
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("waiting for a shell")
            .is_none()
    }

    /// Waits for the script to end, at most until its deadline.
    #[track_caller]
    fn finish(mut self) -> Outcome {
        let deadline = self.started + RUN_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for a shell") {
                break status;
            }
            if Instant::now() >= deadline {
                landfall_testbed::support::kill_group(self.pid());
                let (stdout, stderr) = self.output(Instant::now() + Duration::from_secs(2));
                panic!(
                    "`{}` did not finish within {RUN_DEADLINE:?}:\n{}stdout:\n{}stderr:\n{}",
                    self.shell.name(),
                    abridged(&self.calls),
                    abridged(&stdout.unwrap_or_default()),
                    abridged(&stderr.unwrap_or_default())
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.finished = true;
        let (stdout, stderr) = self.output(deadline);
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            landfall_testbed::support::kill_group(self.pid());
            panic!(
                "a process that `{}` started still held its output open at the deadline:\n{}",
                self.shell.name(),
                abridged(&self.calls)
            );
        };
        let status = status.code().unwrap_or_else(|| {
            panic!(
                "`{}` was killed ({status}):\n{}",
                self.shell.name(),
                abridged(&self.calls)
            )
        });
        Outcome {
            calls: std::mem::take(&mut self.calls),
            status,
            stdout,
            stderr,
        }
    }

    fn output(&self, until: Instant) -> (Option<String>, Option<String>) {
        let read = |pipe: &Receiver<Vec<u8>>| {
            pipe.recv_timeout(until.saturating_duration_since(Instant::now()))
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        };
        (read(&self.stdout), read(&self.stderr))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            landfall_testbed::support::kill_group(self.pid());
            drop(self.child.wait());
        }
    }
}

/// What a script did.
#[derive(Debug)]
struct Outcome {
    calls: String,
    status: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Asserts the exit status and the whole of stdout.
    #[track_caller]
    fn expect(&self, status: i32, stdout: &str) -> &Outcome {
        assert_eq!(
            (self.status, self.stdout.as_str()),
            (status, stdout),
            "\n{self}"
        );
        self
    }

    /// Asserts the whole of stderr.
    #[track_caller]
    fn expect_stderr(&self, stderr: &str) -> &Outcome {
        assert_eq!(self.stderr, stderr, "\n{self}");
        self
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit status {}\ncalls:\n{}stdout:\n{}stderr:\n{}",
            self.status,
            abridged(&self.calls),
            abridged(&self.stdout),
            abridged(&self.stderr)
        )
    }
}

/// `text` with the middle of its lines left out when there are many, and
/// a newline at its end.
fn abridged(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 40 {
        return lines.iter().map(|line| [line, "\n"].concat()).collect();
    }
    format!(
        "{}\n[... {} lines ...]\n{}\n",
        lines[..30].join("\n"),
        lines.len() - 35,
        lines[lines.len() - 5..].join("\n")
    )
}

/// `word` quoted for sh as landfall quotes it (shlex's quoting).
fn quote(word: &str) -> String {
    shlex::try_quote(word).map_or_else(|_| word.to_string(), std::borrow::Cow::into_owned)
}

/// A call of a step function as landfall renders it: each argument
/// assigned to its variable (`lf_NAME`), quoted as landfall quotes it, on
/// the line before the call; a list after the function's name; the
/// standard input in a quoted here-document. (landfall unsets the
/// variables before the next call; each call here sets all of its own.)
fn step_call(function: &str, vars: &[(&str, &str)], list: &[&str], input: Option<&str>) -> String {
    let assignments: Vec<String> = vars
        .iter()
        .map(|(name, value)| format!("lf_{name}={}", quote(value)))
        .collect();
    let mut text = format!("{}\n{function}", assignments.join(" "));
    for item in list {
        text.push(' ');
        text.push_str(&quote(item));
    }
    if let Some(input) = input {
        text.push_str(" <<'LANDFALL_INPUT_END'\n");
        text.push_str(input);
        text.push_str("LANDFALL_INPUT_END");
    }
    text.push('\n');
    text
}

/// A call of a step function that takes no list and reads no input.
fn step(function: &str, vars: &[(&str, &str)]) -> String {
    step_call(function, vars, &[], None)
}

/// A call of a step function that takes a list.
fn step_with(function: &str, vars: &[(&str, &str)], list: &[&str]) -> String {
    step_call(function, vars, list, None)
}

/// A call of a function that is no step (a function the steps call), its
/// arguments as its positional parameters, every one quoted.
fn call(function: &str, args: &[&str]) -> String {
    let mut line = function.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line.push('\n');
    line
}

/// A `landfall_put` of `bytes`, as landfall renders it: base64 in lines of
/// 76 in a quoted here-document.
fn put(dir: &str, name: &str, mode: &str, bytes: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut lines = String::new();
    for chunk in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        lines.push('\n');
    }
    step_call(
        "landfall_put",
        &[("dir", dir), ("name", name), ("mode", mode)],
        &[],
        Some(&lines),
    )
}

/// Sh that waits (at most 20 seconds) until `gate` exists.
fn wait_for_in_sh(gate: &Path) -> String {
    format!(
        "gate_n=0\nwhile [ ! -e {} ] && [ \"$gate_n\" -lt 2000 ]; do sleep 0.01; gate_n=$((gate_n + 1)); done\n",
        quote(&text(gate))
    )
}

/// Waits until `file` exists (a script reports it reached a point).
#[track_caller]
fn wait_for(file: &Path) {
    landfall_testbed::support::wait_for(
        GATE_DEADLINE.as_secs(),
        &format!("`{}`", file.display()),
        || file.exists(),
    );
}

fn text(path: &Path) -> String {
    path.to_str()
        .expect("temporary paths are UTF-8")
        .to_string()
}

/// The directory of an artifact on a host, in a temporary directory of
/// its own, at a path with a space (as any path may have). It does not
/// exist until something is made in it.
struct Artifact {
    root: tempfile::TempDir,
    path: PathBuf,
}

impl Artifact {
    fn new() -> Artifact {
        let root = tempfile::tempdir().expect("a temporary directory");
        let path = root.path().join("srv dir").join("app");
        Artifact { root, path }
    }

    /// The artifact's path, as the steps take it.
    fn path(&self) -> String {
        text(&self.path)
    }

    /// A path inside the artifact's directory.
    fn join(&self, relative: &str) -> PathBuf {
        self.path.join(relative)
    }

    /// A path outside the artifact's directory, in the same temporary one.
    fn outside(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Writes a file in the artifact's directory, making its parents.
    fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> &Artifact {
        let file = self.join(relative);
        fs::create_dir_all(file.parent().expect("a file has a parent")).unwrap();
        fs::write(file, contents).unwrap();
        self
    }

    fn mkdir(&self, relative: &str) -> &Artifact {
        fs::create_dir_all(self.join(relative)).unwrap();
        self
    }

    /// A complete release `id` holding `bin/app`, last activated
    /// `age_secs` seconds ago (the mtime that probe and cleanup order by).
    fn release(&self, id: &str, age_secs: u64) -> &Artifact {
        self.write(&format!("releases/{id}/bin/app"), format!("app of {id}\n"))
            .write(&format!("releases/{id}/.landfall-release"), "{}\n")
            .activated(id, age_secs)
    }

    /// Sets when release `id` was last activated, its directory's mtime:
    /// call it again after writing in the release, which moves it.
    fn activated(&self, id: &str, age_secs: u64) -> &Artifact {
        let modified = SystemTime::now() - Duration::from_secs(age_secs);
        fs::File::open(self.join(&format!("releases/{id}")))
            .and_then(|dir| dir.set_modified(modified))
            .unwrap();
        self
    }

    /// Points `current` at release `id`, as `landfall_switch` does.
    fn set_current(&self, id: &str) -> &Artifact {
        let current = self.join("current");
        drop(fs::remove_file(&current));
        symlink(format!("releases/{id}"), current).unwrap();
        self
    }

    /// What `current` points at, if it is a link.
    fn current(&self) -> Option<String> {
        fs::read_link(self.join("current")).ok().map(|p| text(&p))
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.join(relative))
            .unwrap_or_else(|e| panic!("cannot read `{relative}`: {e}"))
    }

    /// Whether anything, a dangling link included, is at `relative`.
    fn has(&self, relative: &str) -> bool {
        fs::symlink_metadata(self.join(relative)).is_ok()
    }

    /// The names in a directory of the artifact's, sorted.
    fn list(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.join(relative))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mode(&self, relative: &str) -> u32 {
        fs::metadata(self.join(relative))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
}

/// Every file and link under `dir`, as sorted relative paths.
fn files_under(dir: &Path) -> Vec<String> {
    landfall_testbed::support::files_below(dir)
        .iter()
        .map(|file| text(file))
        .collect()
}

/// The id of a process group that has ended: what a deploy that is gone
/// leaves in `.landfall/steps`.
fn ended_group() -> String {
    let mut child = Command::new("true").process_group(0).spawn().unwrap();
    child.wait().unwrap();
    child.id().to_string()
}

/// Runs git with no configuration but the author's, and returns its stdout.
#[track_caller]
fn git(dir: &Path, args: &[&str]) -> String {
    landfall_testbed::support::git(dir, args)
}

// --- landfall_fail

fn fail_says_why_on_stderr_and_exits_70(shell: Shell) {
    shell
        .run(&format!(
            "{}echo not reached\n",
            call("landfall_fail", &["cannot create", "/srv/a b"])
        ))
        .expect(70, "")
        .expect_stderr("landfall: cannot create /srv/a b\n");
}

// --- landfall_probe

fn probe_reports_current_the_releases_newest_first_and_the_lock(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 30)
        .release("aa03", 10)
        .release("aa02", 20)
        .mkdir("releases/aa04.partial")
        .mkdir("releases/AA05")
        .mkdir("releases/notes")
        .write("releases/aa02/.landfall-release", "{\"by\":\"alice\"}\n")
        .activated("aa02", 20)
        .set_current("aa02")
        .write(".landfall/lock", "run-1 by alice\nsecond line\n")
        .write(".landfall/log", "deployed aa02\n");
    let never_deployed = Artifact::new();
    shell
        .run(&step_with(
            "landfall_probe",
            &[("detail", "0")],
            &[&a.path(), &never_deployed.path()],
        ))
        .expect(
            0,
            "current\t0\taa02\n\
             release\t0\taa03\n\
             release\t0\taa02\n\
             release\t0\taa01\n\
             lock\t0\trun-1 by alice\n\
             confirmed\t0\t\n\
             current\t1\t\n",
        );
}

fn probe_with_sbom_prints_the_current_release_s_bill_of_materials_as_it_is(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 20)
        .write(
            "releases/aa01/.landfall-sbom.cdx.json",
            "{\n  \"name\": \"a\\\\b\tc\"\n}",
        )
        .release("aa02", 10)
        .write("releases/aa02/.landfall-sbom.cdx.json", "{}\n")
        .set_current("aa01");
    shell
        .run(&step_with(
            "landfall_probe",
            &[("sbom", "1"), ("detail", "0")],
            &[&a.path()],
        ))
        .expect(
            0,
            "current\t0\taa01\n\
             release\t0\taa02\n\
             release\t0\taa01\n\
             sbom\t0\t{\n\
             sbom\t0\t  \"name\": \"a\\\\b\tc\"\n\
             sbom\t0\t}\n",
        );
    // A link in the file's place is not followed.
    fs::remove_file(a.join("releases/aa01/.landfall-sbom.cdx.json")).unwrap();
    symlink(
        a.join("releases/aa02/.landfall-sbom.cdx.json"),
        a.join("releases/aa01/.landfall-sbom.cdx.json"),
    )
    .unwrap();
    a.activated("aa01", 20);
    shell
        .run(&step_with(
            "landfall_probe",
            &[("sbom", "1"), ("detail", "0")],
            &[&a.path()],
        ))
        .expect(
            0,
            "current\t0\taa01\n\
             release\t0\taa02\n\
             release\t0\taa01\n",
        );
}

fn a_link_planted_in_releases_is_no_release_and_nothing_switches_to_it(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall").release("aa01", 20).set_current("aa01");
    // A directory outside, made to look like a release, and a link to it.
    fs::create_dir_all(a.outside("outside/bin")).unwrap();
    fs::write(a.outside("outside/.landfall-release"), "{}\n").unwrap();
    fs::write(a.outside("outside/bin/app"), "not ours\n").unwrap();
    symlink(a.outside("outside"), a.join("releases/bb02")).unwrap();
    // An incomplete directory: no .landfall-release.
    a.write("releases/cc03/bin/app", "half\n");
    shell
        .run(&step_with(
            "landfall_probe",
            &[("detail", "0")],
            &[&a.path()],
        ))
        .expect(
            0,
            "current\t0\taa01\n\
             release\t0\tcc03\n\
             release\t0\taa01\n",
        );
    for (id, why) in [
        ("bb02", "releases/bb02 is a link, not a release"),
        ("cc03", "releases/cc03 is not a complete release"),
        ("../../x", "is not a release id"),
    ] {
        let path = a.path();
        for (function, calls) in [
            (
                "landfall_activate",
                step(
                    "landfall_activate",
                    &[
                        ("path", &path),
                        ("release", id),
                        ("previous", "aa01"),
                        ("revert", "1"),
                        ("log_ok", "{}"),
                        ("log_back", "{}"),
                        ("confirm", ""),
                        ("token", ""),
                        ("log_expired", ""),
                    ],
                ),
            ),
            (
                "landfall_back",
                step(
                    "landfall_back",
                    &[("path", &path), ("from", "aa01"), ("to", id), ("log", "{}")],
                ),
            ),
        ] {
            let out = shell.run(&calls);
            out.expect(70, "");
            assert!(out.stderr.contains(why), "{function} {id}: {out}");
            assert_eq!(
                a.current().as_deref(),
                Some("releases/aa01"),
                "{function} {id}"
            );
        }
    }
}

fn probe_with_detail_adds_provenance_and_the_last_200_lines_of_the_log(shell: Shell) {
    let a = Artifact::new();
    let mut log: Vec<String> = (1..250).map(|n| format!("line {n}")).collect();
    log.push(r"  kept as written: \t \\ $HOME".to_string());
    a.release("aa01", 20)
        .release("aa02", 10)
        .write(
            "releases/aa02/.landfall-release",
            "{\"by\":\"alice\"}\nsecond line\n",
        )
        .activated("aa02", 10)
        .set_current("aa02")
        .write(".landfall/log", log.join("\n") + "\n");
    let mut expected = "current\t0\taa02\n\
                        release\t0\taa02\n\
                        provenance\t0\taa02\t{\"by\":\"alice\"}\n\
                        release\t0\taa01\n\
                        provenance\t0\taa01\t{}\n\
                        confirmed\t0\t\n"
        .to_string();
    for line in &log[50..] {
        writeln!(expected, "log\t0\t{line}").unwrap();
    }
    shell
        .run(&step_with(
            "landfall_probe",
            &[("detail", "1")],
            &[&a.path()],
        ))
        .expect(0, &expected);
}

fn probe_reports_the_release_the_log_last_confirmed(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 20)
        .release("aa02", 10)
        .set_current("aa02")
        .write(
            ".landfall/log",
            "{\"event\":\"activated\",\"release\":\"aa01\",\"previous\":null}\n\
         {\"event\":\"rolled_back\",\"release\":\"aa01\",\"previous\":\"aa02\"}\n",
        );
    shell
        .run(&step_with(
            "landfall_probe",
            &[("detail", "0")],
            &[&a.path()],
        ))
        .expect(
            0,
            "current\t0\taa02\nrelease\t0\taa02\nrelease\t0\taa01\nconfirmed\t0\taa01\n",
        );
}

/// Releases are ordered as `ls -1t` orders them, newest first and then by
/// name, also when their times are apart by less than a second (which
/// busybox's `test -nt` does not see) or the same.
fn releases_are_ordered_newest_first_within_a_second_and_by_name_when_tied(shell: Shell) {
    let a = Artifact::new();
    let second = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let at = |id: &str, millis: u64| {
        a.write(&format!("releases/{id}/bin/app"), "app\n");
        fs::File::open(a.join(&format!("releases/{id}")))
            .and_then(|dir| dir.set_modified(second + Duration::from_millis(millis)))
            .unwrap();
    };
    let probe = step_with("landfall_probe", &[("detail", "0")], &[&a.path()]);
    let listed = |ids: &[&str]| -> String {
        std::iter::once("current\t0\t\n".to_string())
            .chain(ids.iter().map(|id| format!("release\t0\t{id}\n")))
            .collect()
    };
    at("aa05", 100);
    at("aa04", 200);
    at("aa06", 300);
    shell
        .run(&probe)
        .expect(0, &listed(&["aa06", "aa04", "aa05"]));
    at("aa03", 0);
    at("aa02", 0);
    at("aa01", 2000);
    shell.run(&probe).expect(
        0,
        &listed(&["aa01", "aa06", "aa04", "aa05", "aa02", "aa03"]),
    );
}

/// The log keeps what it confirms in `.landfall/confirmed`, which the
/// probe reads instead of the log, unless the log was written after it.
fn log_keeps_what_it_confirms_and_the_probe_reads_it_there(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 20)
        .release("aa02", 10)
        .set_current("aa02")
        .mkdir(".landfall");
    let log = |line: &str| call("landfall_log", &[&a.path(), line]);
    let activated = |id: &str| format!("{{\"event\":\"activated\",\"release\":\"{id}\"}}");
    let exec = "{\"event\":\"exec\",\"release\":\"aa01\",\"command\":\"ls\"}";
    shell
        .run(&(log(&activated("aa01")) + &log(&activated("aa02")) + &log(exec)))
        .expect(0, "");
    // A command's line confirms nothing.
    assert_eq!(a.read(".landfall/confirmed"), "aa02\n");
    let probe = step_with("landfall_probe", &[("detail", "0")], &[&a.path()]);
    let said = "current\t0\taa02\nrelease\t0\taa02\nrelease\t0\taa01\nconfirmed\t0\t";
    shell.run(&probe).expect(0, &format!("{said}aa02\n"));
    // What the file says is what the probe reports: it reads no log.
    a.write(".landfall/confirmed", "aa01\n");
    shell.run(&probe).expect(0, &format!("{said}aa01\n"));
    // A log written after it (by a landfall that did not keep the file),
    // or a file that is not a release's id, sends the probe to the log.
    let later = SystemTime::now() + Duration::from_secs(10);
    fs::File::options()
        .append(true)
        .open(a.join(".landfall/log"))
        .and_then(|log| log.set_modified(later))
        .unwrap();
    shell.run(&probe).expect(0, &format!("{said}aa02\n"));
    a.write(".landfall/confirmed", "not an id\n");
    fs::File::open(a.join(".landfall/confirmed"))
        .and_then(|file| file.set_modified(later + Duration::from_secs(10)))
        .unwrap();
    shell.run(&probe).expect(0, &format!("{said}aa02\n"));
    // A link in its place is neither read nor written through.
    let elsewhere = a.outside("elsewhere");
    fs::write(&elsewhere, "aa01\n").unwrap();
    fs::remove_file(a.join(".landfall/confirmed")).unwrap();
    symlink(&elsewhere, a.join(".landfall/confirmed")).unwrap();
    shell.run(&probe).expect(0, &format!("{said}aa02\n"));
    shell.run(&log(&activated("aa02"))).expect(0, "");
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "aa01\n");
}

/// `current` is named by where it leads, whether that is a release, a
/// release that is gone, or a directory outside `releases/`.
fn probe_names_where_current_leads(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 10);
    let probe = step_with("landfall_probe", &[("detail", "0")], &[&a.path()]);
    a.set_current("aa09");
    shell
        .run(&probe)
        .expect(0, "current\t0\taa09\nrelease\t0\taa01\n");
    let outside = a.outside("bb01");
    fs::create_dir_all(&outside).unwrap();
    fs::remove_file(a.join("current")).unwrap();
    symlink(&outside, a.join("current")).unwrap();
    shell
        .run(&probe)
        .expect(0, "current\t0\tbb01\nrelease\t0\taa01\n");
    a.set_current("aa01");
    shell
        .run(&probe)
        .expect(0, "current\t0\taa01\nrelease\t0\taa01\n");
}

// --- landfall_try_lock, landfall_lock, landfall_owns

fn lock_is_taken_once_and_records_the_artifact(shell: Shell) {
    let a = Artifact::new();
    shell
        .run(&step(
            "landfall_lock",
            &[
                ("path", &a.path()),
                ("owner", "run-1"),
                ("break_lock", "0"),
                ("name", "shop/web"),
            ],
        ))
        .expect(0, "");
    assert_eq!(a.read(".landfall/lock"), "run-1\n");
    assert_eq!(a.read(".landfall/artifact"), "shop/web\n");
    assert_eq!(a.mode(".landfall"), 0o700);
    shell
        .run(&format!(
            "{}echo not reached\n",
            step(
                "landfall_lock",
                &[
                    ("path", &a.path()),
                    ("owner", "run-2"),
                    ("break_lock", "0"),
                    ("name", "shop/web")
                ]
            )
        ))
        .expect(3, "locked\trun-1\n");
    assert_eq!(a.read(".landfall/lock"), "run-1\n");
}

fn lock_is_exclusive_among_racing_deploys(shell: Shell) {
    let a = Artifact::new();
    let gate = a.outside("gate");
    let runs: Vec<Running> = (0..6)
        .map(|n| {
            shell.start(&format!(
                "{}{}",
                wait_for_in_sh(&gate),
                step(
                    "landfall_lock",
                    &[
                        ("path", &a.path()),
                        ("owner", &format!("run-{n}")),
                        ("break_lock", "0"),
                        ("name", "shop/web")
                    ]
                )
            ))
        })
        .collect();
    fs::write(&gate, "").unwrap();
    let outcomes: Vec<Outcome> = runs.into_iter().map(Running::finish).collect();
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, outcome)| outcome.status == 0)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "\n{}",
        outcomes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(a.read(".landfall/lock"), format!("run-{}\n", winners[0]));
    // A lock is never seen half written: every loser names the winner.
    for outcome in outcomes.iter().filter(|o| o.status != 0) {
        outcome.expect(3, &format!("locked\trun-{}\n", winners[0]));
    }
    assert_eq!(
        a.list(".landfall"),
        ["artifact", "lock"],
        "no temporary file is left"
    );
}

fn lock_of_another_artifacts_path_exits_4_and_leaves_no_lock(shell: Shell) {
    let a = Artifact::new();
    a.write(".landfall/artifact", "shop/api\n");
    let p = a.path();
    shell
        .run(&format!(
            "{}echo not reached\n",
            step(
                "landfall_lock",
                &[
                    ("path", &p),
                    ("owner", "run-1"),
                    ("break_lock", "0"),
                    ("name", "shop/web")
                ]
            )
        ))
        .expect(4, "")
        .expect_stderr(&format!(
            "{p} holds the releases of shop/api, not of shop/web \
             (if it is to change hands, remove {p}/.landfall/artifact)\n"
        ));
    assert!(!a.has(".landfall/lock"));
    assert_eq!(a.read(".landfall/artifact"), "shop/api\n");
}

fn lock_with_break_takes_over_a_lock_left_behind(shell: Shell) {
    let a = Artifact::new();
    a.write(".landfall/lock", "run-0 (killed)\n")
        .write(".landfall/artifact", "shop/web\n")
        .write(".landfall/steps", ended_group() + "\n");
    shell
        .run(&step(
            "landfall_lock",
            &[
                ("path", &a.path()),
                ("owner", "run-1"),
                ("break_lock", "1"),
                ("name", "shop/web"),
            ],
        ))
        .expect(0, "");
    assert_eq!(a.read(".landfall/lock"), "run-1\n");
    assert!(!a.has(".landfall/steps"));
}

fn try_lock_fails_without_exiting_and_leaves_no_lock_it_cannot_keep(shell: Shell) {
    let a = Artifact::new();
    let other = Artifact::new();
    other.write(".landfall/artifact", "shop/api\n");
    let out = shell.run(&format!(
        "{}echo \"first $?\"\n{}echo \"second $?\"\n{}echo \"another's $?\"\n",
        call("landfall_try_lock", &[&a.path(), "run-1", "0", "shop/web"]),
        call("landfall_try_lock", &[&a.path(), "run-2", "0", "shop/web"]),
        call(
            "landfall_try_lock",
            &[&other.path(), "run-3", "0", "shop/web"]
        ),
    ));
    out.expect(0, "first 0\nsecond 1\nanother's 1\n");
    assert!(
        out.stderr.contains("holds the releases of shop/api"),
        "\n{out}"
    );
    assert_eq!(a.read(".landfall/lock"), "run-1\n");
    assert!(!other.has(".landfall/lock"));
}

fn owns_records_the_first_artifact_and_refuses_any_other(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    let p = a.path();
    shell
        .run(&format!(
            "{}echo \"first $?\"\n{}echo \"again $?\"\n{}echo \"another $?\"\n",
            call("landfall_owns", &[&p, "shop/web"]),
            call("landfall_owns", &[&p, "shop/web"]),
            call("landfall_owns", &[&p, "shop/api"]),
        ))
        .expect(0, "first 0\nagain 0\nanother 1\n")
        .expect_stderr(&format!(
            "{p} holds the releases of shop/web, not of shop/api \
             (if it is to change hands, remove {p}/.landfall/artifact)\n"
        ));
    assert_eq!(a.read(".landfall/artifact"), "shop/web\n");
}

fn owns_refuses_another_environment_and_adopts_a_record_without_one(shell: Shell) {
    let a = Artifact::new();
    a.write(".landfall/artifact", "shop/web\n");
    let p = a.path();
    shell
        .run(&format!(
            "{}echo \"adopted $?\"\n{}echo \"again $?\"\n{}echo \"staging $?\"\n",
            call("landfall_owns", &[&p, "shop/web@prod"]),
            call("landfall_owns", &[&p, "shop/web@prod"]),
            call("landfall_owns", &[&p, "shop/web@staging"]),
        ))
        .expect(0, "adopted 0\nagain 0\nstaging 1\n")
        .expect_stderr(&format!(
            "{p} holds the releases of shop/web for environment prod, not staging: one \
             environment never deploys over another's (give each its own path; if this one is \
             to change environments, remove {p}/.landfall/artifact)\n"
        ));
    assert_eq!(a.read(".landfall/artifact"), "shop/web@prod\n");
}

fn owns_fails_when_its_record_cannot_be_written(shell: Shell) {
    // A directory where the record goes: the tests may run as root, whom
    // no file mode stops.
    let a = Artifact::new();
    a.mkdir(".landfall/artifact/in the way");
    let p = a.path();
    let out = shell.run(&format!(
        "{}echo \"owns $?\"\n{}",
        call("landfall_owns", &[&p, "shop/web"]),
        step(
            "landfall_lock",
            &[
                ("path", &p),
                ("owner", "run-1"),
                ("break_lock", "0"),
                ("name", "shop/web")
            ]
        ),
    ));
    out.expect(4, "owns 1\n");
    assert!(
        out.stderr
            .ends_with(&format!("cannot write {p}/.landfall/artifact\n")),
        "\n{out}"
    );
    assert!(!a.has(".landfall/lock"));
}

// --- landfall_claim

/// A claim of the path numbered `i` for release `release` by run-1, of
/// shop/web, with `shared` directories, that copies no release.
fn claim_call(i: &str, path: &str, release: &str, shared: &[&str]) -> String {
    step_with(
        "landfall_claim",
        &[
            ("index", i),
            ("path", path),
            ("release", release),
            ("owner", "run-1"),
            ("break_lock", "0"),
            ("git", "0"),
            ("name", "shop/web"),
            ("from", ""),
            ("top", ""),
            ("gone", ""),
            ("resume", ""),
        ],
        shared,
    )
}

fn claim_prints_nothing_when_the_release_is_current_and_unlocked(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 0).set_current("aa01");
    shell
        .run(&format!(
            "{}echo done\n",
            claim_call("0", &a.path(), "aa01", &["log"])
        ))
        .expect(0, "done\n");
    assert!(!a.has(".landfall/lock"));
    assert!(!a.has("shared"));
}

fn claim_with_no_release_always_claims(shell: Shell) {
    // A path with no `current` is not "current and unlocked" for an empty
    // RELEASE.
    let a = Artifact::new();
    a.mkdir("releases");
    shell
        .run(&claim_call("0", &a.path(), "", &[]))
        .expect(0, "held\t0\t\n");
    assert_eq!(a.read(".landfall/lock"), "run-1\n");
}

fn claim_holds_and_prepares_free_paths(shell: Shell) {
    let empty = Artifact::new();
    empty.mkdir("");
    let deployed = Artifact::new();
    deployed.release("aa01", 0).set_current("aa01");
    shell
        .run(&format!(
            "{}{}",
            claim_call("0", &empty.path(), "aa02", &["log", "run/sockets"]),
            claim_call("1", &deployed.path(), "aa02", &[]),
        ))
        .expect(0, "held\t0\t\nheld\t1\taa01\n");
    for a in [&empty, &deployed] {
        assert_eq!(a.read(".landfall/lock"), "run-1\n");
        assert_eq!(a.read(".landfall/artifact"), "shop/web\n");
        assert!(a.join("releases").is_dir());
    }
    assert_eq!(empty.list("shared"), ["log", "run"]);
    assert!(empty.join("shared/run/sockets").is_dir());
}

fn claim_of_a_path_that_does_not_exist_reports_what_it_made(shell: Shell) {
    let a = Artifact::new();
    let made = text(&a.outside("srv dir"));
    shell
        .run(&claim_call("0", &a.path(), "aa01", &[]))
        .expect(0, &format!("held\t0\t\ncreated\t0\t{made}\n"));
    assert_eq!(a.read(".landfall/lock"), "run-1\n");
}

fn forget_removes_what_a_claim_made_only_with_the_runs_token(shell: Shell) {
    let a = Artifact::new();
    let made = a.outside("srv dir");
    let elsewhere = a.outside("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    shell
        .run(&claim_call("0", &a.path(), "aa01", &[]))
        .expect(0, &format!("held\t0\t\ncreated\t0\t{}\n", text(&made)));
    let forget = |dir: &Path, token: &str| {
        format!(
            "{}[ -d {} ] && echo kept || echo removed\n",
            step(
                "landfall_forget",
                &[("path", &a.path()), ("dir", &text(dir)), ("token", token)]
            ),
            quote(&text(dir))
        )
    };
    shell
        .run(&format!(
            "{}{}{}",
            forget(&made, "run-2"),
            forget(&elsewhere, "run-1"),
            forget(&made, "run-1"),
        ))
        .expect(
            0,
            "unlocked\t\nkept\nunlocked\t\nkept\nunlocked\t\nremoved\n",
        );
}

fn claim_reports_busy_and_unclaimed_paths_and_goes_on(shell: Shell) {
    let busy = Artifact::new();
    busy.write(".landfall/lock", "run-9\n")
        .write(".landfall/artifact", "shop/web\n");
    let anothers = Artifact::new();
    anothers.write(".landfall/artifact", "shop/api\n");
    let broken = Artifact::new();
    broken.write("shared", "a file where a directory goes\n");
    let current_but_locked = Artifact::new();
    current_but_locked
        .release("aa02", 0)
        .set_current("aa02")
        .write(".landfall/lock", "run-9\n");
    let claim = |i: &str, a: &Artifact| claim_call(i, &a.path(), "aa02", &["log"]);
    let out = shell.run(&format!(
        "{}{}{}{}echo done\n",
        claim("0", &busy),
        claim("1", &anothers),
        claim("2", &broken),
        claim("3", &current_but_locked),
    ));
    assert_eq!(out.status, 0, "\n{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let p = anothers.path();
    assert_eq!(lines.len(), 5, "\n{out}");
    assert_eq!(lines[0], "busy\t0\trun-9");
    assert_eq!(
        lines[1],
        format!(
            "unclaimed\t1\t{p} holds the releases of shop/api, not of shop/web \
             (if it is to change hands, remove {p}/.landfall/artifact)"
        )
    );
    assert!(lines[2].starts_with("unclaimed\t2\t"), "\n{out}");
    assert!(
        lines[2].ends_with(&format!(
            "landfall: cannot create {}/releases",
            broken.path()
        )),
        "\n{out}"
    );
    assert_eq!(lines[3], "busy\t3\trun-9");
    assert_eq!(lines[4], "done");
    assert_eq!(busy.read(".landfall/lock"), "run-9\n");
    assert!(!anothers.has(".landfall/lock"));
    assert!(!broken.has(".landfall/lock"));
}

/// Makes release `id` as a push and its finalization leave it: files
/// whose mtimes come from their content (all before 2010), directories
/// made a minute ago, and `.landfall-release` written last. Five entries at
/// its top.
fn made(a: &Artifact, id: &str) {
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_100_000_000);
    let minute_ago = SystemTime::now() - Duration::from_secs(60);
    let release = format!("releases/{id}");
    for (file, contents) in [
        ("bin/app", "app\n"),
        ("data/a.txt", "a\n"),
        ("data/deep/b.txt", "b\n"),
        (".landfall-manifest", "landfall-manifest-v1\n"),
        (".landfall-activation", "hook_activate=''\n"),
    ] {
        a.write(&format!("{release}/{file}"), contents);
        fs::File::options()
            .write(true)
            .open(a.join(&format!("{release}/{file}")))
            .and_then(|f| f.set_modified(past))
            .unwrap();
    }
    a.write(&format!("{release}/.landfall-release"), "{}\n");
    for dir in ["", "/bin", "/data", "/data/deep", "/.landfall-release"] {
        fs::File::open(a.join(&format!("{release}{dir}")))
            .and_then(|f| f.set_modified(minute_ago))
            .unwrap();
    }
}

/// A claim of `a` for release `id` that copies `from` (of five entries at
/// its top, as [`made`] makes it) if it is current.
fn claim_from(a: &Artifact, id: &str, from: &str) -> String {
    claim_from_without(a, id, from, "")
}

/// As [`claim_from`], the copy without the paths of `gone` (one a line).
fn claim_from_without(a: &Artifact, id: &str, from: &str, gone: &str) -> String {
    step_with(
        "landfall_claim",
        &[
            ("index", "0"),
            ("path", &a.path()),
            ("release", id),
            ("owner", "run-1"),
            ("break_lock", "0"),
            ("git", "0"),
            ("name", "shop/web"),
            ("from", from),
            ("top", "5"),
            ("gone", gone),
            ("resume", ""),
        ],
        &[],
    )
}

/// What a release lacks of the one its upload copies was named to rsync
/// as a missing argument, which rsync's hardened receivers refuse
/// ("invalid file mode 00"): the claim removes it from the copy instead,
/// a directory with what is in it, and never through a link.
fn claim_removes_from_the_copy_what_the_release_lacks_never_through_a_link(shell: Shell) {
    let a = Artifact::new();
    made(&a, "aa01");
    a.set_current("aa01");
    let outside = Artifact::new();
    outside.write("keep/x.txt", "x\n");
    // A link planted in the copy's place, to see that the claim does not
    // follow one: `cp -al` copies it as a link.
    std::os::unix::fs::symlink(outside.join("keep"), a.join("releases/aa01/data/link")).unwrap();
    fs::File::open(a.join("releases/aa01/data"))
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(600)))
        .unwrap();
    std::process::Command::new("touch")
        .args(["-h", "-d", "@1100000000"])
        .arg(a.join("releases/aa01/data/link"))
        .status()
        .unwrap();
    shell
        .run(&claim_from_without(
            &a,
            "aa02",
            "aa01",
            "bin/app\ndata/deep\ndata/link/x.txt\n../aa01/bin\n/etc",
        ))
        .expect(0, "held\t0\taa01\nderived\t0\n");
    assert!(!a.has("releases/aa02.partial/bin/app"));
    assert!(a.has("releases/aa02.partial/bin"));
    assert!(!a.has("releases/aa02.partial/data/deep"));
    assert!(a.has("releases/aa02.partial/data/a.txt"));
    // What the release it was copied from holds is untouched, and so is
    // what a link leads to.
    assert!(a.has("releases/aa01/bin/app"));
    assert!(a.has("releases/aa01/data/deep/b.txt"));
    assert_eq!(outside.read("keep/x.txt"), "x\n");
}

fn claim_makes_the_upload_a_copy_of_the_current_release_as_links(shell: Shell) {
    let a = Artifact::new();
    made(&a, "aa01");
    a.set_current("aa01");
    // Activated since it was made: its own directory is newer, which says
    // nothing of its files.
    a.activated("aa01", 0);
    shell
        .run(&claim_from(&a, "aa02", "aa01"))
        .expect(0, "held\t0\taa01\nderived\t0\n");
    let old = a.join("releases/aa01");
    let part = a.join("releases/aa02.partial");
    for file in ["bin/app", "data/deep/b.txt", ".landfall-manifest"] {
        assert_eq!(inode(&part.join(file)), inode(&old.join(file)), "{file}");
    }
    // The copy gets a provenance of its own when it is finalized; the
    // release it was copied from keeps its own.
    assert!(!a.has("releases/aa02.partial/.landfall-release"));
    assert_eq!(a.read("releases/aa01/.landfall-release"), "{}\n");

    // No copy when the release is not current, nor when the host holds
    // the release to upload already.
    let b = Artifact::new();
    made(&b, "aa01");
    made(&b, "aa02");
    b.set_current("aa02");
    shell
        .run(&claim_from(&b, "aa03", "aa01"))
        .expect(0, "held\t0\taa02\n");
    fs::remove_file(b.join(".landfall/lock")).unwrap();
    b.set_current("aa01");
    shell
        .run(&claim_from(&b, "aa02", "aa01"))
        .expect(0, "held\t0\taa01\n");
    assert!(!b.has("releases/aa03.partial"));
    assert!(!b.has("releases/aa02.partial"));
}

fn claim_copies_no_release_changed_since_it_was_made(shell: Shell) {
    /// What is done to the release on the host.
    type Change = fn(&Artifact);
    let cases: [(&str, Change); 5] = [
        (
            "aa01/data/deep/b.txt changed after the release was made",
            |a| {
                a.write("releases/aa01/data/deep/b.txt", "edited\n");
            },
        ),
        ("aa01/data/deep changed after the release was made", |a| {
            fs::remove_file(a.join("releases/aa01/data/deep/b.txt")).unwrap();
        }),
        (
            "aa01/data/new.txt changed after the release was made",
            |a| {
                // Its directory's mtime put back before the release was
                // made: the file itself says it is new.
                a.write("releases/aa01/data/new.txt", "added\n");
                fs::File::open(a.join("releases/aa01/data"))
                    .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(600)))
                    .unwrap();
            },
        ),
        ("aa01 has 4 entries at its top, not 5", |a| {
            fs::remove_dir_all(a.join("releases/aa01/bin")).unwrap();
        }),
        ("aa01 is no complete release", |a| {
            fs::remove_file(a.join("releases/aa01/.landfall-release")).unwrap();
        }),
    ];
    for (why, change) in cases {
        let a = Artifact::new();
        made(&a, "aa01");
        a.set_current("aa01");
        change(&a);
        let out = shell.run(&claim_from(&a, "aa02", "aa01"));
        out.expect(0, &format!("held\t0\taa01\nunderived\t0\t{why}\n"));
        assert!(!a.has("releases/aa02.partial"), "{why}");
    }
}

fn claim_of_a_git_artifact_makes_its_bare_repository(shell: Shell) {
    let a = Artifact::new();
    a.mkdir("");
    shell
        .run(&step_with(
            "landfall_claim",
            &[
                ("index", "0"),
                ("path", &a.path()),
                ("release", "aa01"),
                ("owner", "run-1"),
                ("break_lock", "0"),
                ("git", "1"),
                ("name", "shop/site"),
                ("from", ""),
                ("top", ""),
                ("gone", ""),
                ("resume", ""),
            ],
            &[],
        ))
        .expect(0, "held\t0\t\n");
    let repo = a.join(".landfall/repo.git");
    assert_eq!(git(&repo, &["rev-parse", "--is-bare-repository"]), "true");
}

// --- landfall_unlock

fn unlock_removes_the_lock_only_with_the_runs_token(shell: Shell) {
    let a = Artifact::new();
    a.write(".landfall/lock", "run-1 token-abc\n");
    let lock = text(&a.join(".landfall/lock"));
    shell
        .run(&format!(
            "{}[ -f {q} ] && echo kept\n{}[ -f {q} ] || echo removed\n{}",
            step(
                "landfall_unlock",
                &[("path", &a.path()), ("token", "token-xyz")]
            ),
            step(
                "landfall_unlock",
                &[("path", &a.path()), ("token", "token-abc")]
            ),
            step(
                "landfall_unlock",
                &[("path", &a.path()), ("token", "token-abc")]
            ),
            q = quote(&lock),
        ))
        .expect(0, "unlocked\t\nkept\nunlocked\t\nremoved\nunlocked\t\n");
}

// --- landfall_wait, landfall_take_over, and a claim that resumes

fn wait_keeps_the_lock_rewritten_only_with_the_runs_token(shell: Shell) {
    let a = Artifact::new();
    a.write(".landfall/lock", "run-1 token-abc\n")
        .write(".landfall/artifact", "shop/web\n");
    let wait = |token: &str| {
        step(
            "landfall_wait",
            &[
                ("path", &a.path()),
                ("token", token),
                ("owner", "waits token-abc"),
            ],
        )
    };
    let out = shell.run(&wait("token-xyz"));
    out.expect(70, "");
    assert!(
        out.stderr.contains("is not this deploy's any more"),
        "\n{out}"
    );
    assert_eq!(a.read(".landfall/lock"), "run-1 token-abc\n");
    shell
        .run(&format!("{}echo kept\n", wait("token-abc")))
        .expect(0, "kept\n");
    assert_eq!(a.read(".landfall/lock"), "waits token-abc\n");
    assert_eq!(a.list(".landfall"), ["artifact", "lock"]);
}

fn take_over_adopts_only_the_lock_the_waiting_run_kept(shell: Shell) {
    let a = Artifact::new();
    a.write(".landfall/lock", "waits token-abc\n")
        .write(".landfall/artifact", "shop/web\n");
    let anothers = Artifact::new();
    anothers
        .write(".landfall/lock", "waits token-abc\n")
        .write(".landfall/artifact", "shop/api\n");
    let free = Artifact::new();
    free.write(".landfall/artifact", "shop/web\n");
    let take = |a: &Artifact, token: &str| {
        format!(
            "{}echo taken\n",
            step(
                "landfall_take_over",
                &[
                    ("path", &a.path()),
                    ("owner", "run-2 token-def"),
                    ("token", token),
                    ("name", "shop/web"),
                ],
            )
        )
    };
    shell
        .run(&take(&a, "token-xyz"))
        .expect(3, "locked\twaits token-abc\n");
    assert_eq!(a.read(".landfall/lock"), "waits token-abc\n");
    shell
        .run(&take(&anothers, "token-abc"))
        .expect(3, "locked\twaits token-abc\n");
    assert_eq!(anothers.read(".landfall/lock"), "waits token-abc\n");
    let out = shell.run(&take(&free, "token-abc"));
    out.expect(70, "");
    assert!(out.stderr.contains("no rollout waits on"), "\n{out}");
    assert!(!free.has(".landfall/lock"));
    shell.run(&take(&a, "token-abc")).expect(0, "taken\n");
    assert_eq!(a.read(".landfall/lock"), "run-2 token-def\n");
    assert_eq!(a.list(".landfall"), ["artifact", "lock"]);
}

fn claim_that_resumes_takes_over_only_the_waiting_runs_lock(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 60)
        .release("aa02", 0)
        .set_current("aa02")
        .write(".landfall/lock", "waits token-abc\n")
        .write(".landfall/artifact", "shop/web\n");
    let claim = |token: &str| {
        step_with(
            "landfall_claim",
            &[
                ("index", "0"),
                ("path", &a.path()),
                ("release", "aa02"),
                ("owner", "run-1"),
                ("break_lock", "0"),
                ("git", "0"),
                ("name", "shop/web"),
                ("from", ""),
                ("top", ""),
                ("gone", ""),
                ("resume", token),
            ],
            &[],
        )
    };
    shell
        .run(&claim("token-xyz"))
        .expect(0, "busy\t0\twaits token-abc\n");
    assert_eq!(a.read(".landfall/lock"), "waits token-abc\n");
    shell.run(&claim("token-abc")).expect(0, "held\t0\taa02\n");
    assert_eq!(a.read(".landfall/lock"), "run-1\n");
}

// --- landfall_prepare

fn prepare_makes_the_directories_and_reads_current(shell: Shell) {
    let empty = Artifact::new();
    let deployed = Artifact::new();
    deployed.release("aa01", 0).set_current("aa01");
    shell
        .run(&format!(
            "{}{}",
            step_with(
                "landfall_prepare",
                &[("path", &empty.path())],
                &["log", "run/x"]
            ),
            step_with("landfall_prepare", &[("path", &deployed.path())], &[]),
        ))
        .expect(0, "prepared\t\nprepared\taa01\n");
    assert!(empty.join("releases").is_dir());
    assert_eq!(empty.list("shared"), ["log", "run"]);
    assert!(empty.join("shared/run/x").is_dir());
}

fn prepare_that_cannot_make_a_directory_exits_70(shell: Shell) {
    let a = Artifact::new();
    a.write("shared/log", "a file where a directory goes\n");
    let out = shell.run(&step_with(
        "landfall_prepare",
        &[("path", &a.path())],
        &["log"],
    ));
    out.expect(70, "");
    assert!(
        out.stderr.ends_with(&format!(
            "landfall: cannot create {}/shared/log\n",
            a.path()
        )),
        "\n{out}"
    );
}

// --- landfall_git_init, landfall_checkout

fn git_init_makes_a_bare_repository_once(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    let init = step("landfall_git_init", &[("path", &a.path())]);
    shell.run(&init).expect(0, "");
    let repo = a.join(".landfall/repo.git");
    assert_eq!(git(&repo, &["rev-parse", "--is-bare-repository"]), "true");
    assert!(!a.has(".landfall/repo.git.new"));
    a.write(".landfall/repo.git/pushed", "what a push left\n");
    shell.run(&init).expect(0, "");
    assert_eq!(a.read(".landfall/repo.git/pushed"), "what a push left\n");
}

fn git_init_without_git_exits_70(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    shell
        .run(&format!(
            "PATH=/nonexistent\n{}",
            step("landfall_git_init", &[("path", &a.path())])
        ))
        .expect(70, "")
        .expect_stderr("landfall: git is not installed on this host\n");
    assert!(!a.has(".landfall/repo.git"));
}

/// A bare repository at the artifact's `.landfall/repo.git` holding a
/// commit of `files` (name, contents, mode) pushed from a work tree, as
/// landfall pushes; returns the commit's tree.
fn pushed_tree(a: &Artifact, files: &[(&str, &str, u32)]) -> String {
    let repo = a.join(".landfall/repo.git");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--bare"]);
    let work = a.outside("work");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "--quiet"]);
    for (name, contents, mode) in files {
        let file = work.join(name);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, contents).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(*mode)).unwrap();
    }
    git(&work, &["add", "--all"]);
    git(&work, &["commit", "--quiet", "-m", "release"]);
    git(
        &work,
        &["push", "--quiet", &text(&repo), "HEAD:refs/heads/main"],
    );
    git(&work, &["rev-parse", "HEAD^{tree}"])
}

fn checkout_writes_a_pushed_tree_into_the_upload(shell: Shell) {
    let a = Artifact::new();
    let tree = pushed_tree(
        &a,
        &[
            ("bin/app", "#!/bin/sh\necho hello\n", 0o755),
            ("etc/app.toml", "port = 8080\n", 0o644),
            ("a name with spaces.txt", "spaced\n", 0o644),
        ],
    );
    a.write("releases/aa01.partial/left/from before", "stale\n");
    shell
        .run(&step(
            "landfall_checkout",
            &[("path", &a.path()), ("release", "aa01"), ("tree", &tree)],
        ))
        .expect(0, "");
    assert_eq!(
        files_under(&a.join("releases/aa01.partial")),
        ["a name with spaces.txt", "bin/app", "etc/app.toml"]
    );
    assert_eq!(
        a.read("releases/aa01.partial/bin/app"),
        "#!/bin/sh\necho hello\n"
    );
    assert_eq!(
        a.read("releases/aa01.partial/etc/app.toml"),
        "port = 8080\n"
    );
    assert_eq!(a.mode("releases/aa01.partial/bin/app") & 0o111, 0o111);
    assert_eq!(a.mode("releases/aa01.partial/etc/app.toml") & 0o111, 0);
    assert!(!a.has(".landfall/index.aa01"));
}

fn checkout_of_a_tree_the_repository_lacks_exits_70(shell: Shell) {
    let a = Artifact::new();
    pushed_tree(&a, &[("bin/app", "app\n", 0o755)]);
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let out = shell.run(&step(
        "landfall_checkout",
        &[("path", &a.path()), ("release", "aa02"), ("tree", missing)],
    ));
    out.expect(70, "");
    assert!(
        out.stderr.ends_with(&format!(
            "landfall: cannot check out tree {missing} into {}/releases/aa02.partial\n",
            a.path()
        )),
        "\n{out}"
    );
    assert!(!a.has(".landfall/index.aa02"));
}

// --- landfall_put, landfall_link

fn put_writes_base64_from_a_here_document_with_its_mode(shell: Shell) {
    let a = Artifact::new();
    let dir = text(&a.join("releases/aa01.partial"));
    // Every byte value, long enough for many lines of base64.
    let binary: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
    shell
        .run(&format!(
            "{}{}",
            put(&dir, "bin/app", "755", &binary),
            put(&dir, "etc/secret.toml", "600", b"token = \"s3cret\"\n"),
        ))
        .expect(0, "");
    assert_eq!(
        fs::read(a.join("releases/aa01.partial/bin/app")).unwrap(),
        binary
    );
    assert_eq!(a.mode("releases/aa01.partial/bin/app"), 0o755);
    assert_eq!(
        a.read("releases/aa01.partial/etc/secret.toml"),
        "token = \"s3cret\"\n"
    );
    assert_eq!(a.mode("releases/aa01.partial/etc/secret.toml"), 0o600);
}

fn put_replaces_a_link_or_a_directory_rather_than_writing_through_it(shell: Shell) {
    let a = Artifact::new();
    let outside = a.outside("outside.toml");
    fs::write(&outside, "not landfall's\n").unwrap();
    a.mkdir("releases/aa01.partial/etc")
        .write("releases/aa01.partial/data/old", "old\n");
    symlink(&outside, a.join("releases/aa01.partial/etc/app.toml")).unwrap();
    let dir = text(&a.join("releases/aa01.partial"));
    shell
        .run(&format!(
            "{}{}",
            put(&dir, "etc/app.toml", "644", b"port = 1\n"),
            put(&dir, "data", "644", b"now a file\n"),
        ))
        .expect(0, "");
    assert_eq!(fs::read_to_string(&outside).unwrap(), "not landfall's\n");
    assert_eq!(a.read("releases/aa01.partial/etc/app.toml"), "port = 1\n");
    assert!(!a.join("releases/aa01.partial/etc/app.toml").is_symlink());
    assert_eq!(a.read("releases/aa01.partial/data"), "now a file\n");
}

fn put_that_cannot_write_exits_70(shell: Shell) {
    let a = Artifact::new();
    a.write("releases/aa01.partial", "a file where a directory goes\n");
    let dir = text(&a.join("releases/aa01.partial"));
    let out = shell.run(&put(&dir, "etc/app.toml", "644", b"port = 1\n"));
    out.expect(70, "");
    assert!(
        out.stderr
            .ends_with(&format!("landfall: cannot write {dir}/etc/app.toml\n")),
        "\n{out}"
    );
}

/// A `landfall_pull` of `entries` (lines of its list), as landfall renders
/// it: the list in a quoted here-document.
fn pull(a: &Artifact, release: &str, current: &str, entries: &[String]) -> String {
    let list: String = entries.iter().flat_map(|e| [e.as_str(), "\n"]).collect();
    step_call(
        "landfall_pull",
        &[
            ("path", &a.path()),
            ("release", release),
            ("current", current),
            ("seconds", "10"),
        ],
        &[],
        Some(&list),
    )
}

/// A file's line of `landfall_pull`'s list, fetched from `url`.
fn pull_file(name: &str, mode: &str, content: &[u8], url: &str) -> String {
    use sha2::Digest as _;
    let sha256 = sha2::Sha256::digest(content)
        .iter()
        .fold(String::new(), |mut hex, b| {
            write!(hex, "{b:02x}").unwrap();
            hex
        });
    format!(
        "file\t{mode}\t{}\t{}\t{sha256}\t200109090146.40\t{url}\t{name}",
        content.len(),
        blake3::hash(content).to_hex()
    )
}

/// An object of a store, served as a `file://` URL (curl fetches those as
/// it fetches presigned https ones).
fn object(a: &Artifact, name: &str, content: &[u8]) -> String {
    let path = a.outside(name);
    fs::write(&path, content).unwrap();
    format!("file://{}", text(&path).replace(' ', "%20"))
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata(path).unwrap().ino()
}

/// Makes `releases/aa01` of `a` a complete release, as a push or a pull
/// and its finalization leave it: `bin/app` and `static/same.txt`, in its
/// manifest, their mtimes (and their directories') in the past, and its
/// `.landfall-release` written last.
fn pulled_before(a: &Artifact) {
    a.write("releases/aa01/bin/app", "old app\n")
        .write("releases/aa01/static/same.txt", "same\n");
    let manifest = format!(
        "landfall-manifest-v1\nfile\t0755\t8\t{}\tbin/app\nfile\t0644\t5\t{}\tstatic/same.txt\n",
        blake3::hash(b"old app\n").to_hex(),
        blake3::hash(b"same\n").to_hex()
    );
    a.write("releases/aa01/.landfall-manifest", manifest);
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for path in [
        "bin/app",
        "static/same.txt",
        ".landfall-manifest",
        "bin",
        "static",
    ] {
        fs::File::open(a.join(&format!("releases/aa01/{path}")))
            .and_then(|f| f.set_modified(past))
            .unwrap();
    }
    a.write("releases/aa01/.landfall-release", "{}\n");
    // Made a minute ago: what changes now is newer, whatever the
    // granularity of the file system's clock.
    fs::File::open(a.join("releases/aa01/.landfall-release"))
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(60)))
        .unwrap();
}

/// In pull mode a file of the current release edited by hand, its size
/// unchanged, was hard-linked into every new release by its manifest's
/// word. Now it is linked only if nothing on its path changed since the
/// release was made (push mode's rule), and fetched otherwise.
fn pull_fetches_a_file_of_current_changed_since_it_was_made(shell: Shell) {
    let a = Artifact::new();
    pulled_before(&a);
    // Edited in place, the same size: its mtime says so.
    a.write("releases/aa01/static/same.txt", "evil\n");
    let same = object(&a, "same object", b"same\n");
    shell
        .run(&pull(
            &a,
            "bb02",
            "aa01",
            &[
                pull_file(
                    "bin/app",
                    "0755",
                    b"old app\n",
                    "file:///nonexistent/object",
                ),
                pull_file("static/same.txt", "0644", b"same\n", &same),
            ],
        ))
        .expect(0, "pulled\t1\t5\n");
    assert_eq!(a.read("releases/bb02.partial/static/same.txt"), "same\n");
    assert_eq!(
        inode(&a.join("releases/bb02.partial/bin/app")),
        inode(&a.join("releases/aa01/bin/app"))
    );
    // A directory of current replaced by a link leads elsewhere: nothing
    // below it is taken from there.
    let b = Artifact::new();
    pulled_before(&b);
    let elsewhere = b.outside("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(elsewhere.join("app"), "old app\n").unwrap();
    fs::remove_dir_all(b.join("releases/aa01/bin")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, b.join("releases/aa01/bin")).unwrap();
    let app = object(&b, "app object", b"old app\n");
    shell
        .run(&pull(
            &b,
            "bb02",
            "aa01",
            &[pull_file("bin/app", "0755", b"old app\n", &app)],
        ))
        .expect(0, "pulled\t1\t8\n");
    assert_ne!(
        inode(&b.join("releases/bb02.partial/bin/app")),
        inode(&elsewhere.join("app"))
    );
    // And a release that is not complete lends nothing.
    let c = Artifact::new();
    pulled_before(&c);
    fs::remove_file(c.join("releases/aa01/.landfall-release")).unwrap();
    let app = object(&c, "app object", b"old app\n");
    shell
        .run(&pull(
            &c,
            "bb02",
            "aa01",
            &[pull_file("bin/app", "0755", b"old app\n", &app)],
        ))
        .expect(0, "pulled\t1\t8\n");
}

fn pull_links_what_current_has_fetches_the_rest_once_and_checks_each(shell: Shell) {
    let a = Artifact::new();
    pulled_before(&a);
    let app = object(&a, "app object", b"new app\n");
    let doc = object(&a, "doc object", b"a document\n");
    let nowhere = "file:///nonexistent/object";
    shell
        .run(&pull(
            &a,
            "bb02",
            "aa01",
            &[
                pull_file("bin/app", "0755", b"new app\n", &app),
                // Current has it: linked, not fetched.
                pull_file("static/same.txt", "0644", b"same\n", nowhere),
                // The second of two files with one content is linked to
                // the first.
                pull_file("docs/a b.txt", "0644", b"a document\n", &doc),
                pull_file("docs/copy.txt", "0644", b"a document\n", nowhere),
                "symlink\t../../shared/log\tlog".to_string(),
            ],
        ))
        .expect(0, "pulled\t2\t19\n");
    let part = a.join("releases/bb02.partial");
    assert_eq!(
        files_under(&part),
        [
            "bin/app",
            "docs/a b.txt",
            "docs/copy.txt",
            "log",
            "static/same.txt"
        ]
    );
    assert_eq!(a.read("releases/bb02.partial/bin/app"), "new app\n");
    assert_eq!(a.mode("releases/bb02.partial/bin/app"), 0o755);
    assert_eq!(a.mode("releases/bb02.partial/docs/a b.txt"), 0o644);
    assert_eq!(
        fs::metadata(part.join("bin/app"))
            .unwrap()
            .modified()
            .unwrap(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)
    );
    assert_eq!(
        inode(&part.join("static/same.txt")),
        inode(&a.join("releases/aa01/static/same.txt"))
    );
    assert_eq!(
        inode(&part.join("docs/copy.txt")),
        inode(&part.join("docs/a b.txt"))
    );
    assert_eq!(
        fs::read_link(part.join("log")).unwrap(),
        Path::new("../../shared/log")
    );
}

fn pull_of_an_object_that_is_not_its_sha256_makes_no_release(shell: Shell) {
    let a = Artifact::new();
    let tampered = object(&a, "object", b"not what was put\n");
    let outcome = shell.run(&pull(
        &a,
        "bb02",
        "",
        &[pull_file("bin/app", "0755", b"new app\n", &tampered)],
    ));
    outcome.expect(70, "");
    assert!(
        outcome.stderr.contains("sha256 mismatch: bin/app"),
        "{outcome}"
    );
    assert!(!a.has("releases/bb02.partial"));

    let missing = shell.run(&pull(
        &a,
        "bb02",
        "",
        &[pull_file(
            "bin/app",
            "0755",
            b"new app\n",
            "file:///nonexistent",
        )],
    ));
    missing.expect(70, "");
    assert!(missing.stderr.contains("cannot fetch bin/app"), "{missing}");
    assert!(!a.has("releases/bb02.partial"));
}

fn link_makes_a_symlink_replacing_what_was_there(shell: Shell) {
    let a = Artifact::new();
    a.write("releases/aa01.partial/log/old.log", "old\n");
    let dir = text(&a.join("releases/aa01.partial"));
    shell
        .run(&format!(
            "{}{}",
            step(
                "landfall_link",
                &[
                    ("dir", &dir),
                    ("name", "log"),
                    ("target", "../../shared/log")
                ]
            ),
            step(
                "landfall_link",
                &[
                    ("dir", &dir),
                    ("name", "etc/deep/app.toml"),
                    ("target", "/etc/app.toml")
                ]
            ),
        ))
        .expect(0, "");
    let target = |name: &str| text(&fs::read_link(a.join(name)).unwrap());
    assert_eq!(target("releases/aa01.partial/log"), "../../shared/log");
    assert_eq!(
        target("releases/aa01.partial/etc/deep/app.toml"),
        "/etc/app.toml"
    );
}

fn link_that_cannot_be_made_exits_70(shell: Shell) {
    let a = Artifact::new();
    a.write("releases/aa01.partial", "a file where a directory goes\n");
    let dir = text(&a.join("releases/aa01.partial"));
    let out = shell.run(&step(
        "landfall_link",
        &[
            ("dir", &dir),
            ("name", "log"),
            ("target", "../../shared/log"),
        ],
    ));
    out.expect(70, "");
    assert!(
        out.stderr
            .ends_with(&format!("landfall: cannot link {dir}/log\n")),
        "\n{out}"
    );
}

// --- landfall_discard, landfall_manifest, landfall_files

fn discard_removes_only_the_upload(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 0)
        .write("releases/aa01.partial/bin/app", "half\n")
        .write("releases/aa02.partial/bin/app", "another's upload\n");
    shell
        .run(&format!(
            "{}{}echo \"status $?\"\n",
            step(
                "landfall_discard",
                &[("path", &a.path()), ("release", "aa01")]
            ),
            step(
                "landfall_discard",
                &[("path", &a.path()), ("release", "aa03")]
            ),
        ))
        .expect(0, "status 0\n");
    assert_eq!(a.list("releases"), ["aa01", "aa02.partial"]);
}

fn manifest_prints_the_releases_own_or_the_one_kept_aside(shell: Shell) {
    let a = Artifact::new();
    a.write("releases/aa01/.landfall-manifest", "manifest of aa01\n")
        .write(".landfall/manifests/aa01", "older copy of aa01\n")
        .write(".landfall/manifests/aa02", "manifest of aa02\n")
        .mkdir("releases/aa03");
    shell
        .run(&format!(
            "{}echo --\n{}echo --\n{}echo \"status $?\"\n",
            step(
                "landfall_manifest",
                &[("path", &a.path()), ("release", "aa01")]
            ),
            step(
                "landfall_manifest",
                &[("path", &a.path()), ("release", "aa02")]
            ),
            step(
                "landfall_manifest",
                &[("path", &a.path()), ("release", "aa03")]
            ),
        ))
        .expect(0, "manifest of aa01\n--\nmanifest of aa02\n--\nstatus 0\n");
}

fn files_prints_small_regular_files_and_skips_the_rest(shell: Shell) {
    let a = Artifact::new();
    a.write("releases/aa01/etc/app.toml", "port = 1\n")
        .write("releases/aa01/a name.txt", "xyz")
        .write("releases/aa01/ten", "0123456789")
        .write("releases/aa01/eleven", "0123456789\n");
    symlink("etc/app.toml", a.join("releases/aa01/link")).unwrap();
    shell
        .run(&step_with(
            "landfall_files",
            &[("path", &a.path()), ("release", "aa01"), ("max", "10")],
            &[
                "etc/app.toml",
                "a name.txt",
                "ten",
                "eleven",
                "link",
                "etc",
                "missing",
            ],
        ))
        .expect(
            0,
            "file\tetc/app.toml\t9\nport = 1\n\
             file\ta name.txt\t3\nxyz\
             file\tten\t10\n0123456789\
             skip\televen\n\
             skip\tlink\n\
             skip\tetc\n\
             skip\tmissing\n",
        );
}

// --- landfall_switch

fn switch_points_current_at_the_release(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 0).release("aa02", 0);
    shell
        .run(&call("landfall_switch", &[&a.path(), "aa01"]))
        .expect(0, "");
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
    // A new link left by a switch that was interrupted is replaced.
    symlink("releases/aa01", a.join(".current.new")).unwrap();
    shell
        .run(&call("landfall_switch", &[&a.path(), "aa02"]))
        .expect(0, "");
    assert_eq!(a.current().as_deref(), Some("releases/aa02"));
    assert!(!a.has(".current.new"));
}

fn switch_replaces_current_atomically(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 0).release("aa02", 0).set_current("aa01");
    let ready = a.outside("ready");
    let stop = a.outside("stop");
    // The reader checks `current` with the shell's own `test`, as often as
    // it can, until it is told to stop.
    let reader = shell.start(&format!(
        "current={}\n: >{}\n\
         while [ ! -e {} ]; do [ -L \"$current\" ] || {{ echo 'no current'; exit 1; }}; done\n",
        quote(&text(&a.join("current"))),
        quote(&text(&ready)),
        quote(&text(&stop)),
    ));
    wait_for(&ready);
    let switch = format!(
        "i=0\nwhile [ \"$i\" -lt 50 ]; do\n{}{}i=$((i + 1))\ndone\n",
        call("landfall_switch", &[&a.path(), "aa02"]),
        call("landfall_switch", &[&a.path(), "aa01"]),
    );
    let switched = shell.run(&switch);
    fs::write(&stop, "").unwrap();
    reader.finish().expect(0, "");
    switched.expect(0, "");
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
}

fn switch_that_cannot_replace_current_exits_70(shell: Shell) {
    let a = Artifact::new();
    a.release("aa01", 0)
        .write("current/something", "a directory\n");
    let out = shell.run(&call("landfall_switch", &[&a.path(), "aa01"]));
    out.expect(70, "");
    assert!(
        out.stderr.ends_with(&format!(
            "landfall: cannot switch {}/current to aa01\n",
            a.path()
        )),
        "\n{out}"
    );
    assert_eq!(a.read("current/something"), "a directory\n");
}

// --- landfall_limited, landfall_hook

fn limited_runs_in_its_directory_and_passes_the_status_on(shell: Shell) {
    let a = Artifact::new();
    a.mkdir("releases/aa01");
    let dir = text(&a.join("releases/aa01"));
    shell
        .run(&format!(
            "{}echo \"status $?\"\n",
            call("landfall_limited", &[&dir, "pwd; exit 7", "10"])
        ))
        .expect(0, &format!("{dir}\nstatus 7\n"));
}

fn limited_stops_a_command_at_its_time_limit(shell: Shell) {
    let started = Instant::now();
    shell
        .run(&format!(
            "{}echo \"status $?\"\n",
            call("landfall_limited", &["/", "sleep 60", "1"])
        ))
        .expect(0, "status 124\n");
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn hook_reports_its_name_and_its_output_goes_to_stderr(shell: Shell) {
    // `cat` reads the hook's standard input: were it the script's, it would
    // swallow the rest of the script, more than a shell reads ahead.
    let more_than_read_ahead = "# a comment line of the script\n".repeat(4096);
    shell
        .run(&format!(
            "{}echo \"status $?\"\n{more_than_read_ahead}echo the script goes on\n",
            call(
                "landfall_hook",
                &["build", "/", "echo out; echo err >&2; cat; exit 3", "10"]
            )
        ))
        .expect(0, "hook\tbuild\nstatus 3\nthe script goes on\n")
        .expect_stderr("out\nerr\n");
}

fn hook_past_its_limit_is_stopped_and_reported(shell: Shell) {
    let started = Instant::now();
    shell
        .run(&format!(
            "{}echo \"status $?\"\n",
            call("landfall_hook", &["activate", "/", "sleep 60", "1"])
        ))
        .expect(0, "hook\tactivate\ntimeout\tactivate\t1\nstatus 124\n");
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn hook_that_ignores_term_is_killed_5_seconds_later(shell: Shell) {
    let started = Instant::now();
    shell
        .run(&format!(
            "{}echo \"status $?\"\n",
            call(
                "landfall_hook",
                &["activate", "/", "trap '' TERM; sleep 60", "1"]
            )
        ))
        .expect(0, "hook\tactivate\ntimeout\tactivate\t1\nstatus 137\n");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(6) && elapsed < Duration::from_secs(15),
        "{elapsed:?}"
    );
}

fn hook_that_fails_with_124_in_time_is_no_timeout(shell: Shell) {
    shell
        .run(&format!(
            "{}echo \"status $?\"\n",
            call("landfall_hook", &["activate", "/", "exit 124", "10"])
        ))
        .expect(0, "hook\tactivate\nstatus 124\n");
}

// --- landfall_health

/// A health check that counts its tries in `tries`, in the directory it
/// runs in, and passes from try `passing` on.
fn counting_check(passing: u32) -> String {
    format!(
        "n=$(($(cat tries 2>/dev/null || echo 0) + 1)); echo \"$n\" >tries; \
         echo \"try $n\"; echo \"try $n on stderr\" >&2; [ \"$n\" -ge {passing} ]"
    )
}

fn health_passes_once_a_try_passes(shell: Shell) {
    let a = Artifact::new();
    a.mkdir("releases/aa01");
    let dir = text(&a.join("releases/aa01"));
    shell
        .run(&format!(
            "{}echo \"status $?\"\n",
            call("landfall_health", &[&dir, &counting_check(3), "20"])
        ))
        .expect(0, "hook\thealth\nstatus 0\n")
        .expect_stderr("");
    assert_eq!(a.read("releases/aa01/tries"), "3\n");
}

fn health_fails_at_its_timeout_showing_the_last_try_only(shell: Shell) {
    let a = Artifact::new();
    a.mkdir("releases/aa01");
    let dir = text(&a.join("releases/aa01"));
    let out = shell.run(&format!(
        "{}echo \"status $?\"\n",
        call("landfall_health", &[&dir, &counting_check(u32::MAX), "1"])
    ));
    out.expect(0, "hook\thealth\nstatus 1\n");
    let tries = a.read("releases/aa01/tries");
    let tries = tries.trim_end();
    out.expect_stderr(&format!("try {tries}\ntry {tries} on stderr\n"));
}

fn health_stops_a_try_that_hangs_at_the_timeout(shell: Shell) {
    let started = Instant::now();
    shell
        .run(&format!(
            "{}echo \"status $?\"\n",
            call("landfall_health", &["/", "echo started; sleep 60", "1"])
        ))
        .expect(0, "hook\thealth\nstatus 1\n")
        .expect_stderr("started\n");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// --- landfall_cleanup

fn cleanup_keeps_the_newest_the_current_and_the_previous(shell: Shell) {
    let a = Artifact::new();
    for (id, age) in [
        ("aa01", 60),
        ("aa02", 50),
        ("aa03", 40),
        ("aa04", 30),
        ("aa05", 20),
        ("aa06", 10),
    ] {
        a.release(id, age)
            .write(&format!(".landfall/manifests/{id}"), id);
    }
    a.set_current("aa01")
        .mkdir("releases/aa07.partial")
        .mkdir("releases/notes");
    shell
        .run(&step(
            "landfall_cleanup",
            &[("path", &a.path()), ("keep", "2"), ("previous", "aa02")],
        ))
        .expect(0, "removed\taa04\nremoved\taa03\n");
    assert_eq!(
        a.list("releases"),
        ["aa01", "aa02", "aa05", "aa06", "aa07.partial", "notes"]
    );
    assert_eq!(
        a.list(".landfall/manifests"),
        ["aa01", "aa02", "aa05", "aa06"]
    );
}

// --- landfall_steps, landfall_wait_steps

fn steps_notes_the_process_group_until_the_script_exits(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    let steps = text(&a.join(".landfall/steps"));
    let run = shell.start(&format!(
        "{}cat {}\n",
        call("landfall_steps", &[&a.path()]),
        quote(&steps)
    ));
    let pid = run.pid();
    run.finish().expect(0, &format!("{pid}\n"));
    assert!(!a.has(".landfall/steps"));
    shell
        .run(&format!(
            "{}{}",
            call("landfall_steps", &[&a.path()]),
            call("landfall_fail", &["stopped on purpose"])
        ))
        .expect(70, "");
    assert!(!a.has(".landfall/steps"));
}

fn wait_steps_waits_until_the_noted_steps_have_ended(shell: Shell) {
    let a = Artifact::new();
    let gate = a.outside("gate");
    let waiting = a.outside("waiting");
    let ended = a.outside("ended");
    // The steps run until the gate opens, and say when they end.
    let steps = shell.start(&format!(
        "{}: >{}\n",
        wait_for_in_sh(&gate),
        quote(&text(&ended))
    ));
    a.write(".landfall/steps", format!("{}\n", steps.pid()));
    // The waiter says, once it returns, whether the steps had ended.
    let waiter = shell.start(&format!(
        ": >{}\n{}if [ -e {} ]; then echo waited; else echo returned while they ran; fi\n",
        quote(&text(&waiting)),
        call("landfall_wait_steps", &[&a.path()]),
        quote(&text(&ended)),
    ));
    wait_for(&waiting);
    fs::write(&gate, "").unwrap();
    steps.finish().expect(0, "");
    waiter.finish().expect(0, "waited\n");
    assert!(!a.has(".landfall/steps"));
}

fn wait_steps_returns_at_once_for_steps_that_ended(shell: Shell) {
    let ended = Artifact::new();
    ended.write(".landfall/steps", ended_group() + "\n");
    let garbled = Artifact::new();
    garbled.write(".landfall/steps", "12 34\n");
    let nothing = Artifact::new();
    let started = Instant::now();
    shell
        .run(&format!(
            "{}{}{}echo done\n",
            call("landfall_wait_steps", &[&ended.path()]),
            call("landfall_wait_steps", &[&garbled.path()]),
            call("landfall_wait_steps", &[&nothing.path()]),
        ))
        .expect(0, "done\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!ended.has(".landfall/steps"));
}

/// Makes a test of each function that runs it under both shells at once.
macro_rules! under_both_shells {
    ($($test:ident),* $(,)?) => {
        mod under_both_shells {
            $(#[test] fn $test() { super::under_each_shell(super::$test) })*
        }
    };
}

/// Runs `test` under every shell at once (most tests mostly wait), each in
/// a thread named after its shell, so that a failure names the shell.
fn under_each_shell(test: fn(Shell)) {
    std::thread::scope(|scope| {
        let runs = Shell::ALL.map(|shell| {
            std::thread::Builder::new()
                .name(shell.name().to_string())
                .spawn_scoped(scope, move || test(shell))
                .expect("a thread")
        });
        let failed: Vec<&str> = runs
            .into_iter()
            .zip(Shell::ALL)
            .filter_map(|(run, shell)| run.join().is_err().then_some(shell.name()))
            .collect();
        assert!(failed.is_empty(), "failed under {}", failed.join(" and "));
    });
}

/// A release `id` whose recorded activation appends each hook's name and
/// the release it runs for to `hooks` in the artifact's directory, and
/// whose health passes unless `healthy` is false.
fn recorded(a: &Artifact, id: &str, age_secs: u64, healthy: bool) {
    let log = text(&a.join("hooks"));
    let note = |hook: &str| format!("echo {hook} $LANDFALL_RELEASE >>{}", quote(&log));
    let health = if healthy {
        note("health")
    } else {
        format!("{}; exit 1", note("health"))
    };
    let activation = format!(
        "hook_build={}\nhook_pre_activate={}\nhook_activate={}\nhook_health={}\n\
         health_timeout=1\nhook_timeout=5\n",
        quote(&note("build")),
        quote(&note("pre_activate")),
        quote(&note("activate")),
        quote(&health),
    );
    a.release(id, age_secs)
        .write(&format!("releases/{id}/.landfall-activation"), activation)
        .activated(id, age_secs);
}

/// The lines the hooks of [`recorded`] releases appended.
fn hooks_ran(a: &Artifact) -> Vec<String> {
    fs::read_to_string(a.join("hooks"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn recorded_reads_the_activation_a_release_kept(shell: Shell) {
    let a = Artifact::new();
    recorded(&a, "aa01", 0, true);
    a.release("aa02", 0);
    let rel = |id: &str| text(&a.join(&format!("releases/{id}")));
    shell
        .run(&format!(
            "{}printf '%s|%s|%s\\n' \"$hook_activate\" \"$health_timeout\" \"$hook_timeout\"\n\
             landfall_recorded {} || echo \"none:$hook_activate\"\n",
            call("landfall_recorded", &[&rel("aa01")]),
            quote(&rel("aa02")),
        ))
        .expect(
            0,
            &format!(
                "echo activate $LANDFALL_RELEASE >>{}|1|5\nnone:\n",
                quote(&text(&a.join("hooks")))
            ),
        );
}

fn activate_runs_what_the_release_recorded_and_logs_it(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    a.set_current("aa01");
    shell
        .run(&step(
            "landfall_activate",
            &[
                ("path", &a.path()),
                ("release", "aa02"),
                ("previous", "aa01"),
                ("revert", "1"),
                ("log_ok", "{\"ok\":1}"),
                ("log_back", "{\"back\":1}"),
                ("confirm", ""),
                ("token", ""),
                ("log_expired", ""),
            ],
        ))
        .expect(
            0,
            "hook\tpre_activate\nswitched\taa02\nhook\tactivate\nhook\thealth\nactivated\taa02\n",
        );
    assert_eq!(a.current().as_deref(), Some("releases/aa02"));
    assert_eq!(
        hooks_ran(&a),
        ["pre_activate aa02", "activate aa02", "health aa02"]
    );
    assert_eq!(a.read(".landfall/log"), "{\"ok\":1}\n");
}

fn once_runs_the_recorded_hook_in_the_release_before_any_switch(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    a.set_current("aa01");
    let log = text(&a.join("hooks"));
    let once = |id: &str, hook: &str| {
        let file = format!("releases/{id}/.landfall-activation");
        let activation = a.read(&file);
        a.write(&file, format!("{activation}hook_once={}\n", quote(hook)));
    };
    once(
        "aa02",
        &format!(
            "echo once $LANDFALL_RELEASE $LANDFALL_PREVIOUS $(pwd -P) >>{}",
            quote(&log)
        ),
    );
    shell
        .run(&step(
            "landfall_once",
            &[("path", &a.path()), ("release", "aa02")],
        ))
        .expect(0, "hook\tonce\n");
    let real = fs::canonicalize(a.join("releases/aa02")).unwrap();
    assert_eq!(hooks_ran(&a), [format!("once aa02 aa01 {}", text(&real))]);
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));

    // A release without one runs nothing; a failing one exits 10.
    shell
        .run(&step(
            "landfall_once",
            &[("path", &a.path()), ("release", "aa01")],
        ))
        .expect(0, "");
    once("aa01", "echo broken >&2; exit 4");
    shell
        .run(&step(
            "landfall_once",
            &[("path", &a.path()), ("release", "aa01")],
        ))
        .expect(10, "hook\tonce\nfailed\tonce\n")
        .expect_stderr("broken\n");
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
}

// --- the confirmation of an activation (confirm.sh)

/// The token of the run that arms the watchers of these tests.
const TOKEN: &str = "web-4242-1";

/// The log line a watcher writes when its time runs out, as landfall
/// renders it ahead of time.
const LOG_EXPIRED: &str = "{\"time\":\"2000-01-01T00:00:00Z\",\"event\":\"rolled_back\",\"reason\":\"not confirmed within 1s\"}";

/// Activates release `id` of `a` after `previous`, to be confirmed within
/// `seconds`, with the lock held by `lock` (a run's lock line): the
/// activation's reports but the `armed` line, which it checks, and the
/// pid of the watcher it armed.
fn activate_to_confirm(
    shell: Shell,
    a: &Artifact,
    (id, previous): (&str, &str),
    seconds: u32,
    lock: &str,
) -> (String, u32) {
    a.write(".landfall/lock", format!("{lock}\n"));
    let out = shell.run(&step(
        "landfall_activate",
        &[
            ("path", &a.path()),
            ("release", id),
            ("previous", previous),
            ("revert", "1"),
            ("log_ok", &format!("{{\"release\":\"{id}\"}}")),
            ("log_back", "{\"back\":1}"),
            ("confirm", &seconds.to_string()),
            ("token", TOKEN),
            ("log_expired", LOG_EXPIRED),
        ],
    ));
    assert_eq!(out.status, 0, "{out}");
    let armed = format!("armed\t{id}\t{seconds}\t");
    let (armed_lines, others): (Vec<&str>, Vec<&str>) =
        out.stdout.lines().partition(|l| l.starts_with(&armed));
    assert_eq!(armed_lines.len(), 1, "{out}");
    let deadline: u64 = armed_lines[0][armed.len()..].parse().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        deadline > now && deadline <= now + u64::from(seconds) + 1,
        "{deadline} is not {seconds}s from {now}"
    );
    let pid = a
        .read(".landfall/confirm")
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .unwrap_or_else(|| panic!("no pid in the record:\n{}", a.read(".landfall/confirm")))
        .parse()
        .unwrap();
    let mut reports = others.join("\n");
    reports.push('\n');
    (reports, pid)
}

/// Calls `landfall_confirm` for release `id` of `a`.
fn confirm(shell: Shell, a: &Artifact, id: &str, only_read: bool) -> Outcome {
    shell.run(&step(
        "landfall_confirm",
        &[
            ("path", &a.path()),
            ("release", id),
            ("only_read", if only_read { "1" } else { "0" }),
        ],
    ))
}

/// Waits until the watcher that took the record of `a` has switched back
/// and said how it went.
fn wait_for_expiry(a: &Artifact) {
    landfall_testbed::support::wait_for(
        GATE_DEADLINE.as_secs(),
        "the watcher's switch back",
        || {
            fs::read_to_string(a.join(".landfall/confirm.expired"))
                .is_ok_and(|r| r.lines().any(|l| l.starts_with("status=")))
        },
    );
}

/// Waits until process `pid` is gone.
fn wait_until_gone(pid: u32) {
    landfall_testbed::support::wait_for(
        GATE_DEADLINE.as_secs(),
        &format!("process {pid} to end"),
        || !alive(pid),
    );
}

fn an_activation_confirmed_in_time_is_logged_then_and_its_watcher_never_acts(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    a.set_current("aa01");
    let (reports, watcher) = activate_to_confirm(
        shell,
        &a,
        ("aa02", "aa01"),
        30,
        &format!("{{\"token\":\"{TOKEN}\"}}"),
    );
    assert_eq!(
        reports,
        "hook\tpre_activate\nswitched\taa02\nhook\tactivate\nhook\thealth\nactivated\taa02\n"
    );
    assert!(alive(watcher), "the watcher waits");
    assert!(!a.has(".landfall/log"), "logged only once confirmed");
    confirm(shell, &a, "aa02", false).expect(0, "confirm\tdone\taa02\n");
    assert_eq!(a.read(".landfall/log"), "{\"release\":\"aa02\"}\n");
    assert_eq!(a.read(".landfall/confirmed"), "aa02\n");
    wait_until_gone(watcher);
    assert!(a.has(".landfall/confirm.done") && !a.has(".landfall/confirm.expired"));
    // Asked again (an answer lost on the way), it is confirmed already.
    confirm(shell, &a, "aa02", false).expect(0, "confirm\tdone\taa02\n");
    assert_eq!(a.current().as_deref(), Some("releases/aa02"));
    assert_eq!(
        a.read(".landfall/log"),
        "{\"release\":\"aa02\"}\n",
        "logged once"
    );
    assert!(a.has(".landfall/lock"), "the lock is the run's to release");
}

fn an_activation_not_confirmed_in_time_switches_back_by_itself_and_logs_why(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    a.set_current("aa01");
    let (_, watcher) = activate_to_confirm(
        shell,
        &a,
        ("aa02", "aa01"),
        1,
        &format!("{{\"token\":\"{TOKEN}\"}}"),
    );
    wait_for_expiry(&a);
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
    let ran = hooks_ran(&a);
    assert_eq!(
        ran[ran.len() - 2..],
        ["activate aa01", "health aa01"],
        "what aa01 recorded ran again: {ran:?}"
    );
    let log = a.read(".landfall/log");
    let entry: serde_json::Value = serde_json::from_str(log.trim_end()).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert_eq!(entry["event"], "rolled_back");
    assert_eq!(entry["reason"], "not confirmed within 1s");
    assert_ne!(entry["time"], "2000-01-01T00:00:00Z", "the host's own time");
    assert!(entry["time"].as_str().unwrap().ends_with('Z'), "{entry}");
    assert!(
        !a.has(".landfall/lock"),
        "the run that held the lock may be gone"
    );
    assert!(
        a.read(".landfall/confirm.expired").contains("status=0\n"),
        "{}",
        a.read(".landfall/confirm.expired")
    );
    wait_until_gone(watcher);
}

fn a_confirmation_after_the_time_ran_out_says_what_the_host_did(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    a.set_current("aa01");
    activate_to_confirm(
        shell,
        &a,
        ("aa02", "aa01"),
        1,
        "{\"token\":\"another-run\"}",
    );
    wait_for_expiry(&a);
    let expired = "confirm\texpired\taa02\t1\nreverted\taa01\nhook\tactivate\nhook\thealth\n";
    confirm(shell, &a, "aa02", false).expect(0, expired);
    confirm(shell, &a, "aa02", true).expect(0, expired);
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
    assert_eq!(
        a.read(".landfall/lock"),
        "{\"token\":\"another-run\"}\n",
        "another run's lock is left"
    );
    confirm(shell, &a, "aa01", false).expect(0, "confirm\tnone\taa01\n");
}

fn switching_back_or_activating_again_disarms_the_watcher(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    recorded(&a, "aa03", 60, true);
    a.set_current("aa01");
    let lock = format!("{{\"token\":\"{TOKEN}\"}}");
    let (_, watcher) = activate_to_confirm(shell, &a, ("aa02", "aa01"), 30, &lock);
    confirm(shell, &a, "aa02", true).expect(
        0,
        &format!(
            "confirm\tarmed\taa02\t{}\n",
            a.read(".landfall/confirm")
                .lines()
                .find_map(|l| l.strip_prefix("deadline="))
                .unwrap()
        ),
    );
    shell
        .run(&step(
            "landfall_back",
            &[
                ("path", &a.path()),
                ("from", "aa02"),
                ("to", "aa01"),
                ("log", "{\"back\":1}"),
            ],
        ))
        .expect(0, "reverted\taa01\nhook\tactivate\nhook\thealth\n");
    wait_until_gone(watcher);
    assert!(!a.has(".landfall/confirm") && !a.has(".landfall/confirm.expired"));
    assert_eq!(a.read(".landfall/log"), "{\"back\":1}\n");
    // Switched back, the release is no longer there to confirm.
    confirm(shell, &a, "aa02", false).expect(0, "confirm\tnone\taa02\n");

    // The next activation disarms a watcher too, before it switches.
    let (_, watcher) = activate_to_confirm(shell, &a, ("aa02", "aa01"), 30, &lock);
    let (_, next) = activate_to_confirm(shell, &a, ("aa03", "aa02"), 30, &lock);
    wait_until_gone(watcher);
    confirm(shell, &a, "aa02", false).expect(0, "confirm\tnone\taa02\n");
    confirm(shell, &a, "aa03", false).expect(0, "confirm\tdone\taa03\n");
    wait_until_gone(next);
    assert_eq!(a.current().as_deref(), Some("releases/aa03"));
    assert!(!a.has(".landfall/confirm.expired"));
}

/// An activation that stops before its switch (its `pre_activate`
/// failed) leaves the watcher of the release still current armed: that
/// release was never confirmed.
fn an_activation_that_stops_before_its_switch_leaves_the_watcher_armed(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    a.release("aa03", 60).write(
        "releases/aa03/.landfall-activation",
        "hook_pre_activate='exit 3'\nhook_activate=''\nhook_health=''\n",
    );
    a.set_current("aa01");
    let lock = format!("{{\"token\":\"{TOKEN}\"}}");
    let (_, watcher) = activate_to_confirm(shell, &a, ("aa02", "aa01"), 30, &lock);
    let out = shell.run(&step(
        "landfall_activate",
        &[
            ("path", &a.path()),
            ("release", "aa03"),
            ("previous", "aa01"),
            ("revert", "1"),
            ("log_ok", "{}"),
            ("log_back", "{}"),
            ("confirm", "30"),
            ("token", TOKEN),
            ("log_expired", "{}"),
        ],
    ));
    out.expect(10, "hook\tpre_activate\nfailed\tpre_activate\n");
    assert!(alive(watcher), "{out}");
    assert!(a.read(".landfall/confirm").contains("release=aa02\n"));
    // Switched back, it is disarmed.
    shell
        .run(&step(
            "landfall_back",
            &[
                ("path", &a.path()),
                ("from", "aa02"),
                ("to", "aa01"),
                ("log", "{}"),
            ],
        ))
        .expect(0, "reverted\taa01\nhook\tactivate\nhook\thealth\n");
    wait_until_gone(watcher);
}

/// A watcher that outlived its disarming (it could not be stopped) and
/// wakes to find a record armed since takes it, sees it is another's,
/// gives it back, and does nothing.
fn a_watcher_never_acts_on_a_record_armed_for_another(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    a.set_current("aa01");
    let lock = format!("{{\"token\":\"{TOKEN}\"}}");
    let (_, watcher) = activate_to_confirm(shell, &a, ("aa02", "aa01"), 1, &lock);
    // Disarmed, but not stopped; then a record of another watcher's.
    fs::rename(
        a.join(".landfall/confirm"),
        a.join(".landfall/confirm.done"),
    )
    .unwrap();
    let another = "release=aa02\nprevious=aa01\nseconds=30\ndeadline=1\ntoken=t\nlog={}\npid=1\n";
    a.write(".landfall/confirm", another);
    wait_until_gone(watcher);
    assert_eq!(a.read(".landfall/confirm"), another);
    assert!(!a.has(".landfall/confirm.expired"));
    assert_eq!(a.current().as_deref(), Some("releases/aa02"));
    assert!(!a.has(".landfall/log"));
}

fn check_tries_health_once_and_names_what_failed(shell: Shell) {
    let a = Artifact::new();
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, false);
    a.set_current("aa01");
    shell
        .run(&step(
            "landfall_check",
            &[("path", &a.path()), ("release", "aa01")],
        ))
        .expect(0, "hook\thealth\n");
    a.set_current("aa02");
    shell
        .run(&step(
            "landfall_check",
            &[("path", &a.path()), ("release", "aa02")],
        ))
        .expect(11, "hook\thealth\nfailed\thealth\n");
    assert_eq!(hooks_ran(&a), ["health aa01", "health aa02"]);
    // It checks the release it was told is current, no other.
    shell
        .run(&step(
            "landfall_check",
            &[("path", &a.path()), ("release", "aa01")],
        ))
        .expect(70, "");
}

fn orphans_are_the_registered_paths_of_the_environment_that_are_not_known(shell: Shell) {
    let a = Artifact::new();
    let state = text(&a.outside("state"));
    let env = format!("LANDFALL_STATE={}; export LANDFALL_STATE\n", quote(&state));
    let dir = |name: &str| text(&a.outside(name));
    // Four paths locked once: two of `shop` in prod, one in staging, one of
    // another project.
    let mut calls = env.clone();
    for (name, owner) in [
        ("web", "shop/web@prod"),
        ("old", "shop/old@prod"),
        ("stage", "shop/web@staging"),
        ("other", "blog/web@prod"),
    ] {
        calls.push_str(&step(
            "landfall_lock",
            &[
                ("path", &dir(name)),
                ("owner", "run-1"),
                ("break_lock", "0"),
                ("name", owner),
            ],
        ));
        calls.push_str(&step(
            "landfall_unlock",
            &[("path", &dir(name)), ("token", "run-1")],
        ));
    }
    // Locking again records nothing twice.
    calls.push_str(&step(
        "landfall_lock",
        &[
            ("path", &dir("web")),
            ("owner", "run-2"),
            ("break_lock", "0"),
            ("name", "shop/web@prod"),
        ],
    ));
    calls.push_str(&step(
        "landfall_unlock",
        &[("path", &dir("web")), ("token", "run-2")],
    ));
    shell
        .run(&calls)
        .expect(0, "unlocked\t\n".repeat(5).as_str());
    let registry = fs::read_to_string(a.outside("state").join("paths")).unwrap();
    assert_eq!(registry.lines().count(), 4, "{registry}");
    fs::create_dir_all(a.outside("old").join("releases/aa01")).unwrap();
    symlink("releases/aa01", a.outside("old").join("current")).unwrap();

    shell
        .run(&format!(
            "{env}{}",
            step_with(
                "landfall_orphans",
                &[("project", "shop"), ("env", "prod")],
                &[&dir("web")]
            )
        ))
        .expect(0, &format!("orphan\t{}\told\taa01\t\n", dir("old")));

    // Pruned under its lock: the directory and its line go.
    fs::write(a.outside("old").join(".landfall/lock"), "run-9\n").unwrap();
    shell
        .run(&format!(
            "{env}{}",
            step(
                "landfall_prune",
                &[
                    ("path", &dir("old")),
                    ("owner", "run-3"),
                    ("name", "shop/old@prod")
                ]
            )
        ))
        .expect(3, "locked\trun-9\n");
    assert!(a.outside("old").exists());
    fs::remove_file(a.outside("old").join(".landfall/lock")).unwrap();
    shell
        .run(&format!(
            "{env}{}",
            step(
                "landfall_prune",
                &[
                    ("path", &dir("old")),
                    ("owner", "run-3"),
                    ("name", "shop/old@prod")
                ]
            )
        ))
        .expect(0, &format!("pruned\t{}\n", dir("old")));
    assert!(!a.outside("old").exists());
    let registry = fs::read_to_string(a.outside("state").join("paths")).unwrap();
    assert!(!registry.contains(&dir("old")), "{registry}");
    assert_eq!(registry.lines().count(), 3, "{registry}");
    // Another's path is not pruned.
    shell
        .run(&format!(
            "{env}{}",
            step(
                "landfall_prune",
                &[
                    ("path", &dir("other")),
                    ("owner", "run-3"),
                    ("name", "shop/other@prod")
                ]
            )
        ))
        .expect(4, "");
    assert!(a.outside("other").exists());
}

fn exec_runs_a_command_with_its_input_and_logs_how_it_ended(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall").release("aa01", 0).set_current("aa01");
    // Its input is the script's own: here, a here-document.
    let input = step_call(
        "landfall_exec",
        &[
            ("dir", &text(&a.join("current"))),
            ("input", "1"),
            ("logs", &a.path()),
            ("start", "{\"event\":\"exec\"}"),
            ("end", "\"event\":\"exec_end\""),
        ],
        &["sh", "-c", "pwd; cat; echo oops >&2; exit 3"],
        Some("fed\n"),
    );
    shell
        .run(&input)
        .expect(3, &format!("{}\nfed\noops\n", text(&a.join("current"))));
    // Recorded before it ran, then how it ended, at the host's time.
    let log = a.read(".landfall/log");
    let (start, end) = log.split_once('\n').expect("two lines");
    assert_eq!(start, "{\"event\":\"exec\"}", "{log}");
    assert!(end.starts_with("{\"time\":\"20"), "{log}");
    assert!(
        end.ends_with("Z\",\"event\":\"exec_end\",\"status\":3}\n"),
        "{log}"
    );
    // From the home directory, with no input, where a log is missing.
    shell
        .run(&format!(
            "HOME={}; export HOME\n{}",
            quote(&text(&a.outside(""))),
            step_with(
                "landfall_exec",
                &[
                    ("dir", ""),
                    ("input", "0"),
                    ("logs", &text(&a.outside("nowhere"))),
                    ("start", "{}"),
                    ("end", "\"event\":\"exec_end\"")
                ],
                &["sh", "-c", "pwd; cat"]
            )
        ))
        .expect(
            0,
            &format!("{}\n", text(&a.outside("")).trim_end_matches('/')),
        );
    // A directory that is not there says so.
    shell
        .run(&step_with(
            "landfall_exec",
            &[
                ("dir", &text(&a.outside("gone"))),
                ("input", "0"),
                ("logs", ""),
                ("start", "{}"),
                ("end", ""),
            ],
            &["true"],
        ))
        .expect(70, "");
}

fn activate_whose_pre_activate_fails_exits_10_and_leaves_current(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    a.release("aa02", 60).write(
        "releases/aa02/.landfall-activation",
        "hook_pre_activate='echo no >&2; exit 3'\nhook_activate=''\nhook_health=''\n",
    );
    a.set_current("aa01");
    let out = shell.run(&step(
        "landfall_activate",
        &[
            ("path", &a.path()),
            ("release", "aa02"),
            ("previous", "aa01"),
            ("revert", "1"),
            ("log_ok", "{}"),
            ("log_back", "{}"),
            ("confirm", ""),
            ("token", ""),
            ("log_expired", ""),
        ],
    ));
    out.expect(10, "hook\tpre_activate\nfailed\tpre_activate\n");
    assert!(out.stderr.contains("no"), "{out}");
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
    assert!(hooks_ran(&a).is_empty());
}

fn activate_whose_health_fails_switches_back_and_runs_what_the_previous_recorded(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, false);
    a.set_current("aa01");
    shell
        .run(&step(
            "landfall_activate",
            &[
                ("path", &a.path()),
                ("release", "aa02"),
                ("previous", "aa01"),
                ("revert", "1"),
                ("log_ok", "{\"ok\":1}"),
                ("log_back", "{\"back\":1}"),
                ("confirm", ""),
                ("token", ""),
                ("log_expired", ""),
            ],
        ))
        .expect(
            11,
            "hook\tpre_activate\nswitched\taa02\nhook\tactivate\nhook\thealth\nfailed\thealth\n\
             reverted\taa01\nhook\tactivate\nhook\thealth\n",
        );
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
    let ran = hooks_ran(&a);
    assert_eq!(
        ran[..3],
        ["pre_activate aa02", "activate aa02", "health aa02"]
    );
    assert_eq!(
        ran[ran.len() - 2..],
        ["activate aa01", "health aa01"],
        "{ran:?}"
    );
    assert_eq!(a.read(".landfall/log"), "{\"back\":1}\n");
}

fn activate_of_a_release_that_recorded_nothing_runs_no_hook_and_says_so(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall").release("aa01", 0);
    shell
        .run(&step(
            "landfall_activate",
            &[
                ("path", &a.path()),
                ("release", "aa01"),
                ("previous", ""),
                ("revert", "1"),
                ("log_ok", "{}"),
                ("log_back", "{}"),
                ("confirm", ""),
                ("token", ""),
                ("log_expired", ""),
            ],
        ))
        .expect(0, "unrecorded\taa01\nswitched\taa01\nactivated\taa01\n");
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
}

fn back_to_no_release_removes_current(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 0, true);
    a.set_current("aa01");
    shell
        .run(&step(
            "landfall_back",
            &[
                ("path", &a.path()),
                ("from", "aa01"),
                ("to", ""),
                ("log", "{\"back\":1}"),
            ],
        ))
        .expect(0, "reverted\t\n");
    assert!(!a.has("current"));
    assert_eq!(a.read(".landfall/log"), "{\"back\":1}\n");
}

fn back_whose_recorded_health_fails_says_so(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    recorded(&a, "aa01", 60, false);
    recorded(&a, "aa02", 60, true);
    a.set_current("aa02");
    shell
        .run(&step(
            "landfall_back",
            &[
                ("path", &a.path()),
                ("from", "aa02"),
                ("to", "aa01"),
                ("log", "{}"),
            ],
        ))
        .expect(
            1,
            "reverted\taa01\nhook\tactivate\nhook\thealth\nrevert-failed\thealth\n",
        );
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
    assert_eq!(hooks_ran(&a)[0], "activate aa01");
}

/// A release `id` that runs a service (as `--local` runs one: a plain
/// process): it appends `RELEASE GREETING PID` to `started` in the
/// artifact's directory, then sleeps. Its readiness check passes once that
/// line is written, unless `ready` is false.
fn with_service(a: &Artifact, id: &str, age_secs: u64, ready: bool) {
    service_release(a, id, age_secs, ready, false);
}

/// A [`with_service`] release; with `reload`, its service asks for reloads
/// and notes each SIGHUP it gets in `hups` in the artifact's directory.
fn service_release(a: &Artifact, id: &str, age_secs: u64, ready: bool, reload: bool) {
    let check = if ready && reload {
        // A reloaded service is the one that started from another release.
        "test -s \"$LANDFALL_PATH/started\"".to_string()
    } else if ready {
        "grep -q \"^$LANDFALL_RELEASE \" \"$LANDFALL_PATH/started\"".to_string()
    } else {
        "echo not ready; exit 1".to_string()
    };
    let activation = format!(
        "hook_pre_activate=''\nhook_activate=''\nhook_health=''\nhook_timeout=5\n\
         service_manager=supervisor\nservice_name=app\nservice_ready={}\nready_timeout=2\n\
         stop_timeout=2\nservice_reload={}\nservice_bin=bin/app\n",
        quote(&check),
        u8::from(reload),
    );
    let body = if reload {
        "trap \"echo hup >>\\\"\\$LANDFALL_PATH/hups\\\"\" HUP; \
         printf \"%s %s %s\\n\" \"$LANDFALL_RELEASE\" \"$GREETING\" $$ >>\"$LANDFALL_PATH/started\"; \
         while :; do sleep 60 & wait $!; done"
    } else {
        "printf \"%s %s %s\\n\" \"$LANDFALL_RELEASE\" \"$GREETING\" $$ >>\"$LANDFALL_PATH/started\"; \
         exec sleep 60"
    };
    a.release(id, age_secs)
        .write(&format!("releases/{id}/.landfall-activation"), activation)
        .write(
            &format!("releases/{id}/.landfall-service/run"),
            format!(
                "#!/bin/sh\ncd -P -- \"${{0%/*}}/..\" || exit 1\nLANDFALL_RELEASE=${{PWD##*/}}\n\
                 export LANDFALL_RELEASE\nexec sh -c {}\n",
                quote(body)
            ),
        )
        .write(
            &format!("releases/{id}/.landfall-service/env"),
            if reload {
                "GREETING=\"the same\"\n".to_string()
            } else {
                format!("GREETING=\"hi from {id}\"\n")
            },
        );
    if reload {
        // The same binary in every release: only the rest may differ.
        a.write(&format!("releases/{id}/bin/app"), "the app\n")
            .write(
                &format!("releases/{id}/etc/conf"),
                format!("conf of {id}\n"),
            );
    }
    fs::set_permissions(
        a.join(&format!("releases/{id}/.landfall-service/run")),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    a.activated(id, age_secs);
}

/// The services [`with_service`] releases started: release, greeting and
/// pid, in order. Dropping it kills every one of them.
struct Started<'a>(&'a Artifact);

impl Started<'_> {
    fn lines(&self) -> Vec<(String, String, u32)> {
        fs::read_to_string(self.0.join("started"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let (release, rest) = line.split_once(' ').unwrap();
                let (greeting, pid) = rest.rsplit_once(' ').unwrap();
                (release.into(), greeting.into(), pid.parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        for (_, _, pid) in self.lines() {
            landfall_testbed::support::kill_group(pid);
            drop(
                Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .stderr(Stdio::null())
                    .status(),
            );
        }
    }
}

fn alive(pid: u32) -> bool {
    // A process that exited but was not reaped yet is a zombie: gone.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Activates release `id` of `a` (after `previous`) as `--local` does,
/// switching back on failure.
fn activate_locally(shell: Shell, a: &Artifact, id: &str, previous: &str) -> Outcome {
    shell.run(&local(&step(
        "landfall_activate",
        &[
            ("path", &a.path()),
            ("release", id),
            ("previous", previous),
            ("revert", "1"),
            ("log_ok", "{}"),
            ("log_back", "{}"),
            ("confirm", ""),
            ("token", ""),
            ("log_expired", ""),
        ],
    )))
}

/// What activating release `id` reports when its service restarts and is
/// ready.
fn restarted(id: &str) -> String {
    format!("switched\t{id}\nhook\tservice\nrestarted\tapp\nhook\tready\nactivated\t{id}\n")
}

/// Calls of the steps as `--local` runs them.
fn local(calls: &str) -> String {
    format!("export LANDFALL_LOCAL=1\n{calls}")
}

fn service_under_local_is_a_process_restarted_by_each_activation(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    with_service(&a, "aa01", 60, true);
    with_service(&a, "aa02", 60, true);
    let started = Started(&a);
    activate_locally(shell, &a, "aa01", "").expect(0, &restarted("aa01"));
    let first = started.lines();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].0.as_str(), first[0].1.as_str()),
        ("aa01", "hi from aa01")
    );
    assert_eq!(
        a.read(".landfall/service.pid").trim(),
        first[0].2.to_string()
    );
    assert!(alive(first[0].2));
    activate_locally(shell, &a, "aa02", "aa01").expect(0, &restarted("aa02"));
    let second = started.lines();
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].0, "aa02");
    assert!(!alive(first[0].2), "the service of aa01 still runs");
    assert!(alive(second[1].2));
    // Its state, as `status` reads it.
    let out = shell.run(&local(&call("landfall_service_state", &["0", &a.path()])));
    assert!(
        out.stdout.starts_with(&format!(
            "service\t0\tprocess\tapp\trunning\t{}\t",
            second[1].2
        )),
        "{out}"
    );
}

fn service_that_is_not_ready_switches_back_and_restarts_the_previous(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    with_service(&a, "aa01", 60, true);
    with_service(&a, "aa02", 60, false);
    let started = Started(&a);
    activate_locally(shell, &a, "aa01", "").expect(0, &restarted("aa01"));
    let out = shell.run(&local(&step(
        "landfall_activate",
        &[
            ("path", &a.path()),
            ("release", "aa02"),
            ("previous", "aa01"),
            ("revert", "1"),
            ("log_ok", "{}"),
            ("log_back", "{\"back\":1}"),
            ("confirm", ""),
            ("token", ""),
            ("log_expired", ""),
        ],
    )));
    let lines = started.lines();
    // A service that runs but is not ready: what its manager says of it,
    // and its log (empty), come with the failure.
    out.expect(
        11,
        &format!(
            "switched\taa02\nhook\tservice\nrestarted\tapp\nhook\tready\nfailed\tready\n\
             verdict\tprocess\trunning\trunning (pid {})\nservice-log\t{}/.landfall/service.log\n\
             reverted\taa01\nhook\tservice\nrestarted\tapp\nhook\tready\n",
            lines[1].2,
            a.path()
        ),
    );
    assert!(out.stderr.contains("not ready"), "{out}");
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
    let releases: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(releases, ["aa01", "aa02", "aa01"]);
    assert!(!alive(lines[0].2) && !alive(lines[1].2));
    assert!(
        alive(lines[2].2),
        "the previous release's service runs again"
    );
    assert_eq!(a.read(".landfall/log"), "{}\n{\"back\":1}\n");
}

/// A release `id` whose service says `refusing to start` and exits with
/// `status`: at once, or with `after_a_try`, once its readiness check
/// (which never passes) has been tried, so that the wait for it is under
/// way. Its readiness check may take `ready_timeout` seconds.
fn refusing_release(a: &Artifact, id: &str, status: u8, after_a_try: bool, ready_timeout: u32) {
    let wait = if after_a_try {
        // At most 20 seconds, as a script's own deadline.
        "n=0; while [ ! -e \"$LANDFALL_PATH/tried\" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done; "
    } else {
        ""
    };
    let activation = format!(
        "hook_pre_activate={}\nhook_activate=''\nhook_health=''\nhook_timeout=5\n\
         service_manager=supervisor\nservice_name=app\nservice_ready={}\n\
         ready_timeout={ready_timeout}\nstop_timeout=2\nservice_reload=0\nservice_bin=bin/app\n",
        quote("echo the configuration is fine"),
        quote("touch \"$LANDFALL_PATH/tried\"; echo not ready; exit 1"),
    );
    a.release(id, 60)
        .write(&format!("releases/{id}/.landfall-activation"), activation)
        .write(
            &format!("releases/{id}/.landfall-service/run"),
            format!(
                "#!/bin/sh\ncd -P -- \"${{0%/*}}/..\" || exit 1\nexec sh -c {}\n",
                quote(&format!("{wait}echo refusing to start; exit {status}"))
            ),
        )
        .write(&format!("releases/{id}/.landfall-service/env"), "");
    fs::set_permissions(
        a.join(&format!("releases/{id}/.landfall-service/run")),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    a.activated(id, 60);
}

/// The reports of `out` until it switches back (`removed-service` or
/// `reverted`), with the pid in a `verdict` left out.
fn before_revert(out: &Outcome) -> String {
    let mut text = String::new();
    for line in out.stdout.lines() {
        if line.starts_with("reverted\t") || line.starts_with("removed-service\t") {
            break;
        }
        let line = match line.split_once(" (pid ") {
            Some((head, _)) if line.starts_with("verdict\t") => head,
            _ => line,
        };
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn a_service_that_exits_at_start_is_reported_with_its_status_and_its_log(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    with_service(&a, "aa01", 60, true);
    refusing_release(&a, "aa02", 1, false, 30);
    let started = Started(&a);
    activate_locally(shell, &a, "aa01", "").expect(0, &restarted("aa01"));
    let out = activate_locally(shell, &a, "aa02", "aa01");
    assert_eq!(out.status, 11, "{out}");
    // Whether it is seen gone as it starts or while `ready` is tried, the
    // cause is the service's own: its status and its line, not
    // pre_activate's output.
    let cause = format!(
        "verdict\tprocess\tgave-up\texited with status 1\n\
         service-log\t{}/.landfall/service.log\nservice-log-line\trefusing to start\n",
        a.path()
    );
    let reports = before_revert(&out);
    assert!(
        reports
            == format!(
                "hook\tpre_activate\nswitched\taa02\nhook\tservice\nfailed\tservice\n{cause}"
            )
            || reports
                == format!(
                    "hook\tpre_activate\nswitched\taa02\nhook\tservice\nrestarted\tapp\nhook\tready\n\
                     failed\tready\n{cause}"
                ),
        "{out}"
    );
    assert!(!out.stdout.contains("configuration is fine"), "{out}");
    assert_eq!(a.current().as_deref(), Some("releases/aa01"));
    assert!(alive(started.lines().last().unwrap().2));
}

fn the_wait_for_ready_ends_once_the_service_is_gone(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    refusing_release(&a, "aa01", 3, true, 60);
    let began = Instant::now();
    let out = activate_locally(shell, &a, "aa01", "");
    let took = began.elapsed();
    assert_eq!(
        before_revert(&out),
        format!(
            "hook\tpre_activate\nswitched\taa01\nhook\tservice\nrestarted\tapp\nhook\tready\n\
             failed\tready\nverdict\tprocess\tgave-up\texited with status 3\n\
             service-log\t{}/.landfall/service.log\nservice-log-line\trefusing to start\n",
            a.path()
        ),
        "{out}"
    );
    assert_eq!(out.status, 11, "{out}");
    // Its readiness check may take 60 seconds: the wait ended as the
    // process did, a try and a look at the process later.
    assert!(took < Duration::from_secs(10), "{took:?}\n{out}");
    assert_eq!(a.current(), None);
}

fn back_to_a_release_whose_service_is_gone_reports_why(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    refusing_release(&a, "aa01", 4, true, 60);
    with_service(&a, "aa02", 60, true);
    let started = Started(&a);
    activate_locally(shell, &a, "aa02", "").expect(0, &restarted("aa02"));
    let began = Instant::now();
    let out = shell.run(&local(&step(
        "landfall_back",
        &[
            ("path", &a.path()),
            ("from", "aa02"),
            ("to", "aa01"),
            ("log", "{}"),
        ],
    )));
    let took = began.elapsed();
    let reports: String = out
        .stdout
        .lines()
        .map(|line| match line.split_once(" (pid ") {
            Some((head, _)) if line.starts_with("verdict\t") => format!("{head}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    assert_eq!(
        reports,
        format!(
            "reverted\taa01\nhook\tservice\nrestarted\tapp\nhook\tready\nrevert-failed\tready\n\
             verdict\tprocess\tgave-up\texited with status 4\n\
             service-log\t{}/.landfall/service.log\nservice-log-line\trefusing to start\n",
            a.path()
        ),
        "{out}"
    );
    assert_eq!(out.status, 1, "{out}");
    assert!(took < Duration::from_secs(10), "{took:?}\n{out}");
    assert!(!alive(started.lines()[0].2));
}

fn a_release_without_a_service_stops_the_one_that_ran(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    with_service(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    let started = Started(&a);
    activate_locally(shell, &a, "aa01", "").expect(0, &restarted("aa01"));
    shell
        .run(&local(&step(
            "landfall_activate",
            &[
                ("path", &a.path()),
                ("release", "aa02"),
                ("previous", "aa01"),
                ("revert", "1"),
                ("log_ok", "{}"),
                ("log_back", "{}"),
                ("confirm", ""),
                ("token", ""),
                ("log_expired", ""),
            ],
        )))
        .expect(
            0,
            "hook\tpre_activate\nswitched\taa02\nremoved-service\tapp\nhook\tactivate\n\
             hook\thealth\nactivated\taa02\n",
        );
    assert!(!alive(started.lines()[0].2));
    assert!(!a.has(".landfall/service.pid"));
    // Going back to aa01 starts its service again.
    shell
        .run(&local(&step(
            "landfall_back",
            &[
                ("path", &a.path()),
                ("from", "aa02"),
                ("to", "aa01"),
                ("log", "{}"),
            ],
        )))
        .expect(
            0,
            "reverted\taa01\nhook\tservice\nrestarted\tapp\nhook\tready\n",
        );
    assert!(alive(started.lines()[1].2));
}

fn service_that_asks_for_reloads_is_reloaded_when_only_its_files_changed(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    service_release(&a, "aa01", 60, true, true);
    service_release(&a, "aa02", 60, true, true);
    with_service(&a, "aa03", 60, true);
    let started = Started(&a);
    let activate = |id: &str, previous: &str| activate_locally(shell, &a, id, previous);
    activate("aa01", "").expect(0, &restarted("aa01"));
    // Only etc/conf differs: the running process is told, not replaced.
    activate("aa02", "aa01").expect(
        0,
        "switched\taa02\nhook\tservice\nreloaded\tapp\nhook\tready\nactivated\taa02\n",
    );
    wait_for(&a.join("hups"));
    assert_eq!(started.lines().len(), 1);
    assert!(alive(started.lines()[0].2));
    // A forced activation of the same release restarts.
    activate("aa02", "aa02").expect(0, &restarted("aa02"));
    assert_eq!(started.lines().len(), 2);
    // Another binary restarts.
    activate("aa03", "aa02").expect(0, &restarted("aa03"));
    assert_eq!(started.lines().len(), 3);
    assert!(!alive(started.lines()[1].2));
}

fn service_logs_prints_the_tail_of_its_log_or_exits_13(shell: Shell) {
    let a = Artifact::new();
    with_service(&a, "aa01", 60, true);
    recorded(&a, "aa02", 60, true);
    // A log written before releases were marked in it: its last lines.
    a.write(".landfall/service.log", "one\ntwo\nthree\n");
    a.set_current("aa01");
    shell
        .run(&local(&step(
            "landfall_service_logs",
            &[
                ("path", &a.path()),
                ("lines", "2"),
                ("follow", "0"),
                ("all_releases", "0"),
            ],
        )))
        .expect(0, "two\nthree\n");
    a.set_current("aa02");
    let out = shell.run(&local(&step(
        "landfall_service_logs",
        &[
            ("path", &a.path()),
            ("lines", "2"),
            ("follow", "0"),
            ("all_releases", "0"),
        ],
    )));
    out.expect(13, "");
    assert!(out.stderr.contains("runs no service"), "{out}");
}

/// A log as the launcher writes it: aa01 started, then aa02, then aa01
/// again (a rollback), which its manager then restarted.
const MARKED_LOG: &str = "2026-12-07T17:00:00Z before any mark\n\
    2026-12-07T17:00:01Z -- release aa01 started --\n\
    2026-12-07T17:00:02Z one\n\
    2026-12-07T17:00:03Z -- release aa02 started --\n\
    2026-12-07T17:00:04Z two -- release aa01 started --\n\
    2026-12-07T17:00:05Z -- release aa01 started --\n\
    2026-12-07T17:00:06Z one again\n\
    2026-12-07T17:00:07Z -- release aa01 started --\n\
    2026-12-07T17:00:08Z one restarted\n";

fn service_logs_shows_the_lines_since_the_current_release_started_or_all_of_them(shell: Shell) {
    let a = Artifact::new();
    with_service(&a, "aa01", 60, true);
    with_service(&a, "aa02", 60, true);
    a.write(".landfall/service.log", MARKED_LOG);
    a.set_current("aa01");
    let logs = |lines: &str, all: &str| {
        shell.run(&local(&step(
            "landfall_service_logs",
            &[
                ("path", &a.path()),
                ("lines", lines),
                ("follow", "0"),
                ("all_releases", all),
            ],
        )))
    };
    // From the start of aa01 after aa02's on, its restarts included; a
    // line of the service's that looks like a mark is none.
    logs("20", "0").expect(
        0,
        "2026-12-07T17:00:05Z -- release aa01 started --\n\
         2026-12-07T17:00:06Z one again\n\
         2026-12-07T17:00:07Z -- release aa01 started --\n\
         2026-12-07T17:00:08Z one restarted\n",
    );
    logs("1", "0").expect(0, "2026-12-07T17:00:08Z one restarted\n");
    logs("0", "0").expect(0, "");
    // Every release's, led by where the release of the first line started.
    logs("5", "1").expect(
        0,
        "2026-12-07T17:00:03Z -- release aa02 started --\n\
         2026-12-07T17:00:04Z two -- release aa01 started --\n\
         2026-12-07T17:00:05Z -- release aa01 started --\n\
         2026-12-07T17:00:06Z one again\n\
         2026-12-07T17:00:07Z -- release aa01 started --\n\
         2026-12-07T17:00:08Z one restarted\n",
    );
    logs("3", "1").expect(
        0,
        "2026-12-07T17:00:05Z -- release aa01 started --\n\
         2026-12-07T17:00:06Z one again\n\
         2026-12-07T17:00:07Z -- release aa01 started --\n\
         2026-12-07T17:00:08Z one restarted\n",
    );
    logs("2", "1").expect(
        0,
        "2026-12-07T17:00:07Z -- release aa01 started --\n\
         2026-12-07T17:00:08Z one restarted\n",
    );
    logs("100", "1").expect(0, MARKED_LOG);
    // A current release whose service has not started since another's:
    // nothing tells its lines apart, all of them are shown.
    a.set_current("aa02");
    logs("2", "0").expect(
        0,
        "2026-12-07T17:00:07Z -- release aa01 started --\n\
         2026-12-07T17:00:08Z one restarted\n",
    );
}

fn log_lines_reads_the_journal_and_its_cursor(shell: Shell) {
    let journal = "-- Boot 1234 --\n\
        2026-12-07T17:00:00.000001+00:00 h1 systemd[1]: Started app.service.\n\
        2026-12-07T17:00:00.000002+00:00 h1 app[12]: -- release aa01 started --\n\
        2026-12-07T17:00:01.000000+00:00 h1 app[12]: one\n\
        2026-12-07T17:00:02.000000+00:00 h1 app[13]: -- release aa02 started --\n\
        2026-12-07T17:00:03.000000+00:00 h1 app[13]: two\n\
        -- cursor: s=abc;i=2\n";
    let lines = |args: &[&str]| {
        shell.run(&format!(
            "printf '%s' {} | {}",
            quote(journal),
            call("landfall_log_lines", args)
        ))
    };
    lines(&["20", "0", "aa02", "cursor"]).expect(
        0,
        "s=abc;i=2\n\
         2026-12-07T17:00:02.000000+00:00 h1 app[13]: -- release aa02 started --\n\
         2026-12-07T17:00:03.000000+00:00 h1 app[13]: two\n",
    );
    lines(&["1", "1", "aa02"]).expect(
        0,
        "2026-12-07T17:00:02.000000+00:00 h1 app[13]: -- release aa02 started --\n\
         2026-12-07T17:00:03.000000+00:00 h1 app[13]: two\n",
    );
    lines(&["2", "0", "aa01"]).expect(
        0,
        "2026-12-07T17:00:02.000000+00:00 h1 app[13]: -- release aa02 started --\n\
         2026-12-07T17:00:03.000000+00:00 h1 app[13]: two\n",
    );
}

fn build_runs_the_recorded_build_hook_and_a_failure_removes_the_upload(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    a.write(
        "releases/aa01.partial/.landfall-activation",
        "hook_build='echo built >made'\nhook_timeout=5\n",
    );
    shell
        .run(&step(
            "landfall_build",
            &[("path", &a.path()), ("release", "aa01"), ("previous", "")],
        ))
        .expect(0, "hook\tbuild\n");
    assert_eq!(a.read("releases/aa01.partial/made"), "built\n");

    a.write(
        "releases/aa02.partial/.landfall-activation",
        "hook_build='exit 2'\nhook_timeout=5\n",
    );
    shell
        .run(&step(
            "landfall_build",
            &[
                ("path", &a.path()),
                ("release", "aa02"),
                ("previous", "aa01"),
            ],
        ))
        .expect(12, "hook\tbuild\nfailed\tbuild\n");
    assert!(!a.has("releases/aa02.partial"));
}

fn finalize_records_the_provenance_once_and_names_the_release(shell: Shell) {
    let a = Artifact::new();
    a.write("releases/aa01.partial/bin/app", "x");
    shell
        .run(&step(
            "landfall_finalize",
            &[
                ("path", &a.path()),
                ("release", "aa01"),
                ("provenance", "{\"revision\":\"c1\"}"),
            ],
        ))
        .expect(0, "");
    assert_eq!(a.list("releases"), ["aa01"]);
    assert_eq!(
        a.read("releases/aa01/.landfall-release"),
        "{\"revision\":\"c1\"}\n"
    );
    // It names who deployed, and the values given with `--var`: the
    // deploy account's alone.
    let mode = fs::metadata(a.join("releases/aa01/.landfall-release"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The same release uploaded again keeps the provenance it was made with.
    a.write("releases/aa01.partial/bin/app", "x");
    shell
        .run(&step(
            "landfall_finalize",
            &[
                ("path", &a.path()),
                ("release", "aa01"),
                ("provenance", "{\"revision\":\"c2\"}"),
            ],
        ))
        .expect(0, "");
    assert_eq!(a.list("releases"), ["aa01"]);
    assert_eq!(
        a.read("releases/aa01/.landfall-release"),
        "{\"revision\":\"c1\"}\n"
    );
}

fn log_never_writes_through_a_link_and_says_so(shell: Shell) {
    let a = Artifact::new();
    a.mkdir(".landfall");
    let elsewhere = a.outside("elsewhere");
    fs::write(&elsewhere, "untouched\n").unwrap();
    symlink(&elsewhere, a.join(".landfall/log")).unwrap();
    shell
        .run(&call("landfall_log", &[&a.path(), "{}"]))
        .expect(0, &format!("unlogged\t{}/.landfall/log\n", a.path()));
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "untouched\n");
}

fn lock_refuses_a_directory_others_may_write_or_a_link_as_its_own(shell: Shell) {
    let open = Artifact::new();
    open.mkdir("");
    fs::set_permissions(open.join(""), fs::Permissions::from_mode(0o777)).unwrap();
    let out = shell.run(&step(
        "landfall_lock",
        &[
            ("path", &open.path()),
            ("owner", "run-1"),
            ("break_lock", "0"),
            ("name", "shop/web"),
        ],
    ));
    out.expect(4, "");
    assert!(
        out.stderr
            .contains("can be written by any user (drwxrwxrwx)"),
        "{out}"
    );
    assert!(!open.has(".landfall"));

    let linked = Artifact::new();
    linked.mkdir("");
    let elsewhere = linked.outside("landfall-elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, linked.join(".landfall")).unwrap();
    let out = shell.run(&step(
        "landfall_lock",
        &[
            ("path", &linked.path()),
            ("owner", "run-1"),
            ("break_lock", "0"),
            ("name", "shop/web"),
        ],
    ));
    out.expect(4, "");
    assert!(
        out.stderr
            .contains(".landfall is a link, which landfall did not make"),
        "{out}"
    );
    assert!(
        fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "nothing written there"
    );
}

fn prepare_removes_an_upload_that_is_a_link(shell: Shell) {
    let a = Artifact::new();
    let elsewhere = a.outside("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("keep"), "x").unwrap();
    a.mkdir("releases");
    symlink(&elsewhere, a.join("releases/aa01.partial")).unwrap();
    shell
        .run(&step_with("landfall_prepare", &[("path", &a.path())], &[]))
        .expect(0, "prepared\t\n");
    assert!(!a.has("releases/aa01.partial"));
    assert_eq!(fs::read_to_string(elsewhere.join("keep")).unwrap(), "x");
}

fn health_ends_at_its_timeout_even_when_the_clock_stands_still(shell: Shell) {
    let a = Artifact::new();
    a.mkdir("");
    // A `date` that always says the same second.
    let bin = a.outside("frozen-clock");
    fs::create_dir(&bin).unwrap();
    fs::write(bin.join("date"), "#!/bin/sh\necho 1000000000\n").unwrap();
    fs::set_permissions(bin.join("date"), fs::Permissions::from_mode(0o755)).unwrap();
    let started = Instant::now();
    let out = shell.run(&format!(
        "PATH={}:$PATH\n{}",
        quote(&text(&bin)),
        call("landfall_health", &[&a.path(), "echo try; false", "1"])
    ));
    out.expect(1, "hook\thealth\n");
    assert_eq!(out.stderr, "try\n", "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // A try that hangs counts for the time it was given.
    let started = Instant::now();
    shell
        .run(&format!(
            "PATH={}:$PATH\n{}",
            quote(&text(&bin)),
            call("landfall_health", &[&a.path(), "sleep 30", "2"])
        ))
        .expect(1, "hook\thealth\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

fn wait_steps_stops_steps_that_outlast_it_and_sees_them_gone(shell: Shell) {
    for (steps_script, waited_at_least) in [
        ("sleep 60\n", Duration::from_secs(1)),
        // Steps that ignore TERM are killed 5 seconds later.
        ("trap '' TERM\nsleep 60\n", Duration::from_secs(6)),
    ] {
        let a = Artifact::new();
        let mut steps = shell.start(steps_script);
        a.write(".landfall/steps", format!("{}\n", steps.pid()));
        // The steps are reaped as soon as they end, as sshd reaps a
        // session's: a zombie would count as running.
        let reaper = std::thread::spawn(move || {
            let deadline = Instant::now() + RUN_DEADLINE;
            while steps.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            steps.is_running()
        });
        let started = Instant::now();
        shell
            .run(&format!(
                "{}echo waited $?\n",
                call("landfall_wait_steps", &[&a.path(), "1"])
            ))
            .expect(0, "waited 0\n");
        assert!(
            started.elapsed() >= waited_at_least,
            "{:?}",
            started.elapsed()
        );
        assert!(!reaper.join().unwrap(), "the steps are gone");
        assert!(!a.has(".landfall/steps"));
    }
}

/// Stub service managers: `systemctl`, `journalctl` and `supervisorctl`
/// that print what a test puts in their files (`show`, `journal`,
/// `status`; `show.WORD` instead for a call with that word, such as a
/// unit's name) and note each call in `calls`, first in `PATH`, so that
/// the systemd and supervisord branches of the steps run with no manager.
/// A call with a word that `fail` lists fails.
struct StubManagers {
    dir: tempfile::TempDir,
}

impl StubManagers {
    fn new() -> StubManagers {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (program, answer) in [
            ("systemctl", "show"),
            ("journalctl", "journal"),
            ("supervisorctl", "status"),
        ] {
            let stub = dir.path().join(program);
            fs::write(
                &stub,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' \"{program} $*\" >>\"${{0%/*}}/calls\"\n\
                     for word in \"$@\"; do\n\
                     grep -qxF -- \"$word\" \"${{0%/*}}/fail\" 2>/dev/null && exit 1\n\
                     done\n\
                     for word in \"$@\"; do\n\
                     [ -f \"${{0%/*}}/{answer}.$word\" ] || continue\n\
                     exec cat \"${{0%/*}}/{answer}.$word\"\n\
                     done\n\
                     cat \"${{0%/*}}/{answer}\" 2>/dev/null\n"
                ),
            )
            .unwrap();
            fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
        }
        StubManagers { dir }
    }

    /// What `program` prints next.
    fn answer(&self, file: &str, text: &str) {
        fs::write(self.dir.path().join(file), text).unwrap();
    }

    /// Sh that puts the stubs first in `PATH`.
    fn first_in_path(&self) -> String {
        format!("PATH={}:$PATH\n", quote(&text(self.dir.path())))
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    /// The calls noted since the last time they were taken.
    fn take_calls(&self) -> String {
        let calls = self.calls();
        drop(fs::remove_file(self.dir.path().join("calls")));
        calls
    }

    /// An `id` that says the user is root (uid 0), first in `PATH` too, so
    /// that the branches a deploy as root takes run whoever runs the test;
    /// its other answers are the real `id`'s.
    fn as_root(&self) {
        let id = std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("id"))
                    .find(|id| id.is_file())
            })
            .expect("`id` is installed");
        let stub = self.dir.path().join("id");
        fs::write(
            &stub,
            format!(
                "#!/bin/sh\nif [ \"$*\" = -u ]; then echo 0; else exec {} \"$@\"; fi\n",
                quote(&text(&id))
            ),
        )
        .unwrap();
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A release `id` of `a` that runs the service `app` under `manager`, as
/// an activation records it: its launcher, environment and definition
/// (`unit`, and `socket` if given) in `.landfall-service/`, the same
/// binary in every release, and reloads asked for (a release whose
/// service files are those of the one before is reloaded, not restarted).
fn managed_release(a: &Artifact, id: &str, manager: &str, unit: &str, socket: Option<&str>) {
    a.release(id, 60)
        .write(&format!("releases/{id}/bin/app"), "the app\n")
        .write(
            &format!("releases/{id}/.landfall-activation"),
            format!(
                "service_manager={manager}\nservice_name=app\nservice_user=app\n\
                 service_reload=1\nservice_bin=bin/app\n"
            ),
        )
        .write(
            &format!("releases/{id}/.landfall-service/run"),
            "#!/bin/sh\n",
        )
        .write(&format!("releases/{id}/.landfall-service/env"), "A=1\n")
        .write(&format!("releases/{id}/.landfall-service/unit"), unit);
    if let Some(socket) = socket {
        a.write(&format!("releases/{id}/.landfall-service/socket"), socket);
    }
}

/// Sh that reads what release `id` of `a` recorded and starts its service
/// after the one release `old` ran (none if empty).
fn start_service(a: &Artifact, id: &str, old: &str) -> String {
    let old = if old.is_empty() {
        String::new()
    } else {
        text(&a.join(&format!("releases/{old}")))
    };
    let dir = text(&a.join(&format!("releases/{id}")));
    format!(
        "landfall_recorded {dir} && landfall_service_start {} {dir} {}\n",
        quote(&a.path()),
        quote(&old),
        dir = quote(&dir),
    )
}

/// The systemd branches, through the deploy user's own systemd: a service
/// is installed, enabled and restarted; restarted again without a reload
/// of the manager when its unit did not change; reloaded when only its
/// release did; its socket installed, started anew when it changed, and
/// removed with it; a restart systemctl refuses fails the start; and the
/// service is stopped, disabled and removed. Its state is read from
/// `systemctl show`.
fn systemd_starts_reloads_restarts_and_stops_a_service(shell: Shell) {
    let stubs = StubManagers::new();
    let config = tempfile::tempdir().unwrap();
    let units = config.path().join("systemd/user");
    let a = Artifact::new();
    a.mkdir(".landfall");
    let unit = "[Service]\nExecStart=/srv/app/current/.landfall-service/run\n";
    managed_release(&a, "aa01", "systemd-user", unit, None);
    managed_release(&a, "aa02", "systemd-user", unit, None);
    managed_release(&a, "aa03", "systemd-user", "[Service]\nType=notify\n", None);
    managed_release(
        &a,
        "aa04",
        "systemd-user",
        unit,
        Some("[Socket]\nListenStream=80\n"),
    );
    managed_release(&a, "aa05", "systemd-user", unit, None);
    let run = |calls: &str| {
        shell.run(&format!(
            "{}XDG_CONFIG_HOME={}; export XDG_CONFIG_HOME\n{calls}",
            stubs.first_in_path(),
            quote(&text(config.path()))
        ))
    };
    let user = "systemctl --user";
    // systemctl says nothing, and does what it is told.
    stubs.answer("show", "");

    run(&start_service(&a, "aa01", "")).expect(0, "hook\tservice\nrestarted\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!(
            "{user} daemon-reload\n{user} enable --quiet app.service\n{user} restart app.service\n"
        )
    );
    assert_eq!(text_of(&units.join("app.service")), unit);
    assert_eq!(a.read(".landfall/service.unit"), unit);

    // The same release again: the unit did not change.
    run(&start_service(&a, "aa01", "")).expect(0, "hook\tservice\nrestarted\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!("{user} enable --quiet app.service\n{user} restart app.service\n")
    );

    // Only the release changed: a reload.
    run(&start_service(&a, "aa02", "aa01")).expect(0, "hook\tservice\nreloaded\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!("{user} enable --quiet app.service\n{user} reload app.service\n")
    );

    // Its unit changed: installed, and a restart.
    run(&start_service(&a, "aa03", "aa02")).expect(0, "hook\tservice\nrestarted\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!(
            "{user} daemon-reload\n{user} enable --quiet app.service\n{user} restart app.service\n"
        )
    );
    assert_eq!(
        text_of(&units.join("app.service")),
        "[Service]\nType=notify\n"
    );

    // A new socket: the service lets go of the old one, and the socket is
    // started anew.
    run(&start_service(&a, "aa04", "aa03")).expect(0, "hook\tservice\nrestarted\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!(
            "{user} daemon-reload\n{user} stop app.service app.socket\n\
             {user} enable --quiet --now app.socket\n{user} enable --quiet app.service\n\
             {user} restart app.service\n"
        )
    );
    assert!(units.join("app.socket").is_file());

    // A release without the socket removes it.
    run(&start_service(&a, "aa05", "aa04")).expect(0, "hook\tservice\nrestarted\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!(
            "{user} disable --quiet --now app.socket\n{user} daemon-reload\n\
             {user} enable --quiet app.service\n{user} restart app.service\n"
        )
    );
    assert!(!units.join("app.socket").exists());
    assert!(!a.has(".landfall/service.socket"));

    // A restart that systemctl refuses fails the start.
    fs::write(stubs.dir.path().join("fail"), "restart\n").unwrap();
    run(&format!(
        "{}echo status $?\n",
        start_service(&a, "aa05", "")
    ))
    .expect(0, "hook\tservice\nstatus 1\n");
    fs::remove_file(stubs.dir.path().join("fail")).unwrap();
    stubs.take_calls();

    run(&call(
        "landfall_service_remove",
        &[&a.path(), "systemd-user", "app"],
    ))
    .expect(0, "removed-service\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!("{user} disable --quiet --now app.service\n{user} daemon-reload\n")
    );
    assert!(!units.join("app.service").exists());
    assert!(!a.has(".landfall/service.unit"));

    // The state of the service of the current release, as systemd says it.
    managed_release(&a, "aa06", "systemd", unit, None);
    a.set_current("aa06");
    stubs.answer(
        "show",
        "ActiveState=active\nSubState=running\nMainPID=42\n\
         ActiveEnterTimestamp=Mon 2024-01-01 00:00:00 UTC\n",
    );
    run(&call("landfall_service_state", &["0", &a.path()])).expect(
        0,
        "service\t0\tsystemd\tapp\tactive (running)\t42\tMon 2024-01-01 00:00:00 UTC\n",
    );
    assert_eq!(
        stubs.take_calls(),
        "systemctl show app.service -p ActiveState,SubState,MainPID,ActiveEnterTimestamp\n"
    );
    stubs.answer(
        "show",
        "ActiveState=failed\nSubState=failed\nMainPID=0\nActiveEnterTimestamp=\n",
    );
    run(&call("landfall_service_state", &["0", &a.path()]))
        .expect(0, "service\t0\tsystemd\tapp\tfailed (failed)\t\t\n");
}

/// A release `id` of `a` whose service `app` is handed over (`overlap`)
/// under the deploy user's own systemd.
fn overlapping_release(a: &Artifact, id: &str) {
    managed_release(
        a,
        id,
        "systemd-user",
        "[Service]\nExecStart=/srv/app/.landfall/slots/%i/.landfall-service/run\n",
        None,
    );
    a.write(
        &format!("releases/{id}/.landfall-activation"),
        "service_manager=systemd-user\nservice_name=app\nservice_user=app\n\
         service_bin=bin/app\nservice_overlap=1\nservice_listen=\n",
    );
}

/// The hand-over under systemd: the first release starts in the blue slot,
/// the next in the green one beside it, which then serves while the blue
/// one is stopped and pointed at the new release; a switch back before
/// that keeps the instance that served and stops the new one; and both go
/// when the service is removed.
fn handover_starts_beside_the_instance_that_serves_then_drains_it(shell: Shell) {
    let stubs = StubManagers::new();
    let config = tempfile::tempdir().unwrap();
    let a = Artifact::new();
    a.mkdir(".landfall");
    for id in ["bb01", "bb02", "bb03"] {
        overlapping_release(&a, id);
    }
    let run = |calls: &str| {
        shell.run(&format!(
            "{}XDG_CONFIG_HOME={}; export XDG_CONFIG_HOME
{calls}",
            stubs.first_in_path(),
            quote(&text(config.path()))
        ))
    };
    let path = quote(&a.path());
    let release = |id: &str| quote(&text(&a.join(&format!("releases/{id}"))));
    // Activate ID after OLD's service (`systemd-user app@`, or none): start
    // it beside, then finish the hand-over.
    let activate = |id: &str, old: &str| {
        format!(
            "landfall_recorded {dir} && landfall_service_switch {path} {dir} {old} '' 0 && \
             echo pending=$handover_pending && landfall_handover_finish {path} {dir}\n",
            dir = release(id),
            old = quote(old),
        )
    };
    let user = "systemctl --user";
    let running = |slots: &[&str]| {
        for slot in ["blue", "green"] {
            stubs.answer(
                &format!("show.app@{slot}.service"),
                if slots.contains(&slot) {
                    "ActiveState=active\n"
                } else {
                    "ActiveState=inactive\n"
                },
            );
        }
    };

    // systemctl says nothing else, and does what it is told.
    stubs.answer("show", "");
    // The first release: nothing serves, blue starts.
    running(&[]);
    run(&activate("bb01", "")).expect(0, "hook\tservice\nstarted\tapp\tblue\npending=1\n");
    assert_eq!(
        stubs.take_calls(),
        format!(
            "{user} show app@blue.service -p ActiveState\n{user} daemon-reload\n\
             {user} start app@blue.service\n{user} enable --quiet app@blue.service\n\
             {user} disable --quiet app@green.service\n"
        )
    );
    assert_eq!(a.read(".landfall/service.slot"), "blue\n");
    for slot in ["blue", "green"] {
        assert_eq!(
            fs::read_link(a.join(&format!(".landfall/slots/{slot}"))).unwrap(),
            Path::new("../../releases/bb01")
        );
    }

    // The next one starts in green beside blue, which then stops.
    running(&["blue"]);
    run(&activate("bb02", "systemd-user app@")).expect(
        0,
        "hook\tservice\nstarted\tapp\tgreen\npending=1\nhook\tdrain\ndrained\tapp\tblue\n",
    );
    assert_eq!(
        stubs.take_calls(),
        format!(
            "{user} show app@green.service -p ActiveState\n{user} show app@blue.service -p ActiveState\n\
             {user} start app@green.service\n{user} stop app@blue.service\n\
             {user} enable --quiet app@green.service\n{user} disable --quiet app@blue.service\n"
        )
    );
    assert_eq!(a.read(".landfall/service.slot"), "green\n");
    assert_eq!(
        fs::read_link(a.join(".landfall/slots/blue")).unwrap(),
        Path::new("../../releases/bb02")
    );

    // A third that fails to start (systemd would restart it): the switch
    // back to bb02 keeps green, which never stopped, and stops blue.
    running(&["green"]);
    fs::write(stubs.dir.path().join("fail"), "start\n").unwrap();
    run(&format!(
        "landfall_recorded {dir} && landfall_service_switch {path} {dir} 'systemd-user app@' '' 0; \
         echo status $? pending=$handover_pending\n",
        dir = release("bb03"),
    ))
    .expect(0, "hook\tservice\nstatus 1 pending=1\n");
    fs::remove_file(stubs.dir.path().join("fail")).unwrap();
    stubs.take_calls();
    running(&["green", "blue"]);
    run(&format!(
        "landfall_recorded {back} && landfall_service_switch {path} {back} 'systemd-user app@' '' 1 && \
         echo pending=$handover_pending\n",
        back = release("bb02"),
    ))
    .expect(0, "hook\tservice\nkept\tapp\tgreen\npending=\n");
    assert_eq!(
        stubs.take_calls(),
        format!(
            "{user} show app@green.service -p ActiveState\n{user} show app@blue.service -p ActiveState\n\
             {user} stop app@blue.service\n"
        )
    );
    assert_eq!(a.read(".landfall/service.slot"), "green\n");
    assert_eq!(
        fs::read_link(a.join(".landfall/slots/blue")).unwrap(),
        Path::new("../../releases/bb02")
    );

    // Removed: both instances, and the slots.
    run(&call(
        "landfall_service_remove",
        &[&a.path(), "systemd-user", "app@"],
    ))
    .expect(0, "removed-service\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!(
            "{user} disable --quiet --now app@blue.service\n\
             {user} disable --quiet --now app@green.service\n{user} daemon-reload\n"
        )
    );
    assert!(!a.has(".landfall/slots"));
    assert!(!a.has(".landfall/service.slot"));
    assert!(!config.path().join("systemd/user/app@.service").exists());
}

/// The supervisord branches, deploying as root (where supervisord reads
/// its programs is the test's): a program is installed, read again and
/// updated, and seen running; restarted when its definition did not
/// change; sent HUP when only its release did; started again when it
/// stopped, and reported when it does not run then; and stopped and
/// removed. Its state is read from `supervisorctl status`.
fn supervisor_starts_reloads_restarts_and_stops_a_service(shell: Shell) {
    let stubs = StubManagers::new();
    stubs.as_root();
    let etc = tempfile::tempdir().unwrap();
    let programs = etc.path().join("conf.d");
    fs::create_dir(&programs).unwrap();
    let conf = text(&etc.path().join("supervisord.conf"));
    let a = Artifact::new();
    a.mkdir(".landfall");
    let program = "[program:app]\ncommand=/srv/app/current/.landfall-service/run\n";
    managed_release(&a, "aa01", "supervisor", program, None);
    managed_release(&a, "aa02", "supervisor", program, None);
    let run = |calls: &str| {
        shell.run(&format!(
            "{}landfall_supervisor_dir() {{ printf '%s' {}; }}\n\
             landfall_supervisor_conf() {{ printf '%s' {}; }}\n{calls}",
            stubs.first_in_path(),
            quote(&text(&programs)),
            quote(&conf)
        ))
    };
    let ctl = format!("supervisorctl -c {conf}");
    stubs.answer(
        "status",
        "app                              RUNNING   pid 42, uptime 0:00:03\n",
    );

    run(&start_service(&a, "aa01", "")).expect(0, "hook\tservice\nrestarted\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!("{ctl} reread\n{ctl} update app\n{ctl} status app\n")
    );
    assert_eq!(text_of(&programs.join("app.conf")), program);

    // The same definition: a restart.
    run(&start_service(&a, "aa01", "")).expect(0, "hook\tservice\nrestarted\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!("{ctl} restart app\n{ctl} status app\n")
    );

    // Only the release changed: HUP.
    run(&start_service(&a, "aa02", "aa01")).expect(0, "hook\tservice\nreloaded\tapp\n");
    assert_eq!(stubs.take_calls(), format!("{ctl} signal HUP app\n"));

    // A program that stopped is started once; one that does not run then
    // fails the start, saying what supervisord says of it.
    stubs.answer(
        "status",
        "app                              STOPPED   Not started\n",
    );
    let out = run(&format!(
        "{}echo status $?\n",
        start_service(&a, "aa01", "")
    ));
    out.expect(0, "hook\tservice\nstatus 1\n");
    assert!(out.stderr.contains("STOPPED"), "{out}");
    assert_eq!(
        stubs.take_calls(),
        format!("{ctl} restart app\n{ctl} status app\n{ctl} start app\n{ctl} status app\n")
    );

    run(&call(
        "landfall_service_remove",
        &[&a.path(), "supervisor", "app"],
    ))
    .expect(0, "removed-service\tapp\n");
    assert_eq!(
        stubs.take_calls(),
        format!("{ctl} stop app\n{ctl} reread\n{ctl} update app\n")
    );
    assert!(!programs.join("app.conf").exists());
    assert!(!a.has(".landfall/service.unit"));

    // The state of the service of the current release, as supervisord
    // says it.
    a.set_current("aa02");
    stubs.answer(
        "status",
        "app                              RUNNING   pid 42, uptime 0:00:03\n",
    );
    run(&call("landfall_service_state", &["0", &a.path()]))
        .expect(0, "service\t0\tsupervisor\tapp\tRUNNING\t42\tup 0:00:03\n");
    assert_eq!(stubs.take_calls(), format!("{ctl} status app\n"));
    stubs.answer(
        "status",
        "app                              FATAL     Exited too quickly\n",
    );
    run(&call("landfall_service_state", &["0", &a.path()]))
        .expect(0, "service\t0\tsupervisor\tapp\tFATAL\t\t\n");
}

/// The text of a file outside an artifact.
#[track_caller]
fn text_of(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()))
}

/// What the manager says of a service, as `landfall_service_verdict`
/// reads it: systemd's `failed` and supervisord's FATAL are given up, an
/// auto-restart and BACKOFF are not, and a running service is running.
fn verdict_reads_each_manager_as_it_answers(shell: Shell) {
    let stubs = StubManagers::new();
    let release = tempfile::tempdir().unwrap();
    let dir = text(&release.path().join("releases/r1"));
    fs::create_dir_all(&dir).unwrap();
    let verdict = |manager: &str| {
        let out = shell.run(&format!(
            "{}service_manager={manager} service_name=hello-app\n\
             landfall_service_verdict {} || echo unanswered\n\
             printf '%s|%s\\n' \"$verdict_state\" \"$verdict\"\n",
            stubs.first_in_path(),
            quote(&dir)
        ));
        assert_eq!(out.status, 0, "{out}");
        out.stdout.trim().to_string()
    };
    for (show, expected) in [
        (
            "ActiveState=failed\nSubState=failed\nResult=start-limit-hit\nNRestarts=5\nExecMainCode=1\nExecMainStatus=1\n",
            "gave-up|failed (Result: start-limit-hit), restarted 5 times, its last run exited with status 1",
        ),
        (
            "ActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=2\nExecMainCode=1\nExecMainStatus=1\n",
            "down|activating (auto-restart) (Result: exit-code), restarted 2 times, its last run exited with status 1",
        ),
        (
            "ActiveState=active\nSubState=running\nResult=success\nNRestarts=0\nExecMainCode=0\nExecMainStatus=0\n",
            "running|active (running)",
        ),
        (
            "ActiveState=inactive\nSubState=dead\nResult=success\n",
            "gave-up|inactive (dead)",
        ),
    ] {
        stubs.answer("show", show);
        assert_eq!(verdict("systemd"), expected, "{show}");
    }
    assert!(
        stubs
            .calls()
            .contains("systemctl show hello-app.service -p ActiveState,SubState,Result,NRestarts,ExecMainCode,ExecMainStatus"),
        "{}",
        stubs.calls()
    );
    for (status, expected) in [
        (
            "hello-app                        FATAL     Exited too quickly (process log may have details)\n",
            "gave-up|FATAL Exited too quickly (process log may have details)",
        ),
        (
            "hello-app                        BACKOFF   Exited too quickly (process log may have details)\n",
            "down|BACKOFF Exited too quickly (process log may have details)",
        ),
        (
            "hello-app                        RUNNING   pid 42, uptime 0:00:03\n",
            "running|RUNNING pid 42, uptime 0:00:03",
        ),
    ] {
        stubs.answer("status", status);
        assert_eq!(verdict("supervisor"), expected, "{status}");
    }
    assert!(
        stubs.calls().contains("supervisorctl -c "),
        "{}",
        stubs.calls()
    );
    // A manager that answers nothing is no verdict.
    stubs.answer("status", "");
    assert_eq!(verdict("supervisor"), "unanswered\n|");
}

under_both_shells!(
    fail_says_why_on_stderr_and_exits_70,
    probe_reports_current_the_releases_newest_first_and_the_lock,
    probe_with_sbom_prints_the_current_release_s_bill_of_materials_as_it_is,
    probe_with_detail_adds_provenance_and_the_last_200_lines_of_the_log,
    probe_reports_the_release_the_log_last_confirmed,
    log_keeps_what_it_confirms_and_the_probe_reads_it_there,
    releases_are_ordered_newest_first_within_a_second_and_by_name_when_tied,
    probe_names_where_current_leads,
    lock_is_taken_once_and_records_the_artifact,
    lock_is_exclusive_among_racing_deploys,
    lock_of_another_artifacts_path_exits_4_and_leaves_no_lock,
    lock_with_break_takes_over_a_lock_left_behind,
    try_lock_fails_without_exiting_and_leaves_no_lock_it_cannot_keep,
    owns_records_the_first_artifact_and_refuses_any_other,
    owns_fails_when_its_record_cannot_be_written,
    owns_refuses_another_environment_and_adopts_a_record_without_one,
    claim_prints_nothing_when_the_release_is_current_and_unlocked,
    claim_with_no_release_always_claims,
    claim_holds_and_prepares_free_paths,
    claim_of_a_path_that_does_not_exist_reports_what_it_made,
    forget_removes_what_a_claim_made_only_with_the_runs_token,
    claim_reports_busy_and_unclaimed_paths_and_goes_on,
    claim_of_a_git_artifact_makes_its_bare_repository,
    claim_makes_the_upload_a_copy_of_the_current_release_as_links,
    claim_removes_from_the_copy_what_the_release_lacks_never_through_a_link,
    claim_copies_no_release_changed_since_it_was_made,
    unlock_removes_the_lock_only_with_the_runs_token,
    wait_keeps_the_lock_rewritten_only_with_the_runs_token,
    take_over_adopts_only_the_lock_the_waiting_run_kept,
    claim_that_resumes_takes_over_only_the_waiting_runs_lock,
    prepare_makes_the_directories_and_reads_current,
    prepare_that_cannot_make_a_directory_exits_70,
    git_init_makes_a_bare_repository_once,
    git_init_without_git_exits_70,
    checkout_writes_a_pushed_tree_into_the_upload,
    checkout_of_a_tree_the_repository_lacks_exits_70,
    put_writes_base64_from_a_here_document_with_its_mode,
    put_replaces_a_link_or_a_directory_rather_than_writing_through_it,
    put_that_cannot_write_exits_70,
    pull_links_what_current_has_fetches_the_rest_once_and_checks_each,
    pull_fetches_a_file_of_current_changed_since_it_was_made,
    pull_of_an_object_that_is_not_its_sha256_makes_no_release,
    link_makes_a_symlink_replacing_what_was_there,
    link_that_cannot_be_made_exits_70,
    discard_removes_only_the_upload,
    manifest_prints_the_releases_own_or_the_one_kept_aside,
    files_prints_small_regular_files_and_skips_the_rest,
    switch_points_current_at_the_release,
    switch_replaces_current_atomically,
    switch_that_cannot_replace_current_exits_70,
    limited_runs_in_its_directory_and_passes_the_status_on,
    limited_stops_a_command_at_its_time_limit,
    hook_reports_its_name_and_its_output_goes_to_stderr,
    hook_past_its_limit_is_stopped_and_reported,
    hook_that_ignores_term_is_killed_5_seconds_later,
    hook_that_fails_with_124_in_time_is_no_timeout,
    health_passes_once_a_try_passes,
    health_fails_at_its_timeout_showing_the_last_try_only,
    health_stops_a_try_that_hangs_at_the_timeout,
    cleanup_keeps_the_newest_the_current_and_the_previous,
    steps_notes_the_process_group_until_the_script_exits,
    wait_steps_waits_until_the_noted_steps_have_ended,
    wait_steps_returns_at_once_for_steps_that_ended,
    recorded_reads_the_activation_a_release_kept,
    activate_runs_what_the_release_recorded_and_logs_it,
    activate_whose_pre_activate_fails_exits_10_and_leaves_current,
    once_runs_the_recorded_hook_in_the_release_before_any_switch,
    exec_runs_a_command_with_its_input_and_logs_how_it_ended,
    check_tries_health_once_and_names_what_failed,
    an_activation_confirmed_in_time_is_logged_then_and_its_watcher_never_acts,
    an_activation_not_confirmed_in_time_switches_back_by_itself_and_logs_why,
    a_confirmation_after_the_time_ran_out_says_what_the_host_did,
    switching_back_or_activating_again_disarms_the_watcher,
    a_watcher_never_acts_on_a_record_armed_for_another,
    an_activation_that_stops_before_its_switch_leaves_the_watcher_armed,
    orphans_are_the_registered_paths_of_the_environment_that_are_not_known,
    activate_whose_health_fails_switches_back_and_runs_what_the_previous_recorded,
    activate_of_a_release_that_recorded_nothing_runs_no_hook_and_says_so,
    back_to_no_release_removes_current,
    back_whose_recorded_health_fails_says_so,
    service_under_local_is_a_process_restarted_by_each_activation,
    service_that_is_not_ready_switches_back_and_restarts_the_previous,
    a_service_that_exits_at_start_is_reported_with_its_status_and_its_log,
    the_wait_for_ready_ends_once_the_service_is_gone,
    back_to_a_release_whose_service_is_gone_reports_why,
    a_release_without_a_service_stops_the_one_that_ran,
    service_logs_prints_the_tail_of_its_log_or_exits_13,
    service_logs_shows_the_lines_since_the_current_release_started_or_all_of_them,
    log_lines_reads_the_journal_and_its_cursor,
    service_that_asks_for_reloads_is_reloaded_when_only_its_files_changed,
    build_runs_the_recorded_build_hook_and_a_failure_removes_the_upload,
    finalize_records_the_provenance_once_and_names_the_release,
    a_link_planted_in_releases_is_no_release_and_nothing_switches_to_it,
    log_never_writes_through_a_link_and_says_so,
    lock_refuses_a_directory_others_may_write_or_a_link_as_its_own,
    prepare_removes_an_upload_that_is_a_link,
    health_ends_at_its_timeout_even_when_the_clock_stands_still,
    wait_steps_stops_steps_that_outlast_it_and_sees_them_gone,
    verdict_reads_each_manager_as_it_answers,
    handover_starts_beside_the_instance_that_serves_then_drains_it,
    systemd_starts_reloads_restarts_and_stops_a_service,
    supervisor_starts_reloads_restarts_and_stops_a_service,
);
