//! The ssh transport: the system's OpenSSH client and rsync.
//!
//! One `ControlMaster` per host is opened up front (in parallel, in the
//! background, so that the handshakes overlap the build) and every ssh and
//! rsync call of the run goes through it. Step scripts travel on
//! the standard input of `sh -s`; releases travel with
//! `rsync --link-dest` at the host's current release, so unchanged files
//! become hard links and changed ones (the release's manifest among them)
//! are sent as deltas. Host keys are
//! always checked.

mod mux;
mod rsync;
mod sockets;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{Basis, Libraries, PushStats, RoundTrips, Transport};
use crate::assemble::Release;
use crate::config::{Environment, Host, HostKeys};
use crate::error::Result;
use crate::plan::Target;
use crate::process::{self, Cmd, ProcessError, ProcessErrorKind, quote};
use crate::steps::{Reply, Script};
use rsync::{parse_rsync_stats, progress_bytes, remote_path};
use sockets::{control_dir, persistent_dir};

/// ssh's exit status when it could not connect or authenticate.
const SSH_FAILED: i32 = 255;

/// How to reach the hosts.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// The environment's `ssh_config`, used instead of `~/.ssh/config`.
    pub config: Option<PathBuf>,
    /// The environment's `user`; otherwise ssh's configuration decides.
    pub user: Option<String>,
    /// Never prompt (for passwords or passphrases): non-interactive runs.
    pub batch: bool,
    /// Record the key of a host seen for the first time instead of
    /// refusing it; a changed key is refused either way.
    pub accept_new_host_keys: bool,
    /// How long a master connection stays open once no run uses it, kept
    /// in a private directory of the user's for the next run to find;
    /// zero: each run opens its own and closes them when it ends.
    pub persist: std::time::Duration,
}

impl SshOptions {
    /// The environment's settings: its `ssh_config`, `user`, `host_keys`
    /// and `ssh_persist`, never prompting.
    pub fn of(env: &Environment) -> SshOptions {
        SshOptions {
            config: env.ssh_config.clone(),
            user: env.user.clone(),
            batch: true,
            accept_new_host_keys: env.host_keys == HostKeys::AcceptNew,
            persist: env.ssh_persist,
        }
    }
}

/// How long ssh may take to connect, and how often it asks a silent host
/// whether it is still there (and how many unanswered asks end the
/// connection): landfall's defaults, which a user's ssh configuration
/// overrides. A host that accepts TCP but never speaks SSH, or that
/// freezes, is given up in seconds rather than waited for forever.
const SSH_DEFAULTS: [(&str, &str); 3] = [
    ("ConnectTimeout", "10"),
    ("ServerAliveInterval", "5"),
    ("ServerAliveCountMax", "3"),
];

/// How many connections start at once. sshd drops new connections
/// beyond its `MaxStartups` (10 by default) while they authenticate, and
/// hosts may share one sshd (a bastion, or aliases of one machine); a
/// start that is dropped anyway is tried again (see [`Master::ensure`]).
const STARTS: usize = 8;

/// How often a connection that sshd dropped while it started is tried.
const START_ATTEMPTS: u32 = 4;

/// Hosts reached over OpenSSH.
#[derive(Debug)]
pub struct Ssh {
    options: SshOptions,
    /// This run's own private directory (landfall's ssh configuration, the
    /// masters' logs), removed when it ends.
    control_dir: Option<PathBuf>,
    /// Where the master connections' sockets are: a directory of the
    /// user's kept across runs (see [`persistent_dir`]), or `control_dir`.
    socket_dir: Option<PathBuf>,
    /// The sockets outlive the run.
    persistent: bool,
    /// What a person should know about the connections.
    warnings: Vec<String>,
    /// The configuration ssh reads (`-F`): the user's own, then landfall's
    /// defaults (see [`defaults_config`]).
    config: Option<PathBuf>,
    /// Per host, what decides where its connection goes and what it
    /// trusts there (see [`effective_key`]), or `None` when ssh could not
    /// say: then no master is kept for the host.
    keys: BTreeMap<String, Option<String>>,
    /// Host name -> the address ssh is given (an `ssh_config` alias works).
    addresses: BTreeMap<String, String>,
    trips: RoundTrips,
    libraries: Libraries,
    /// Per host, `sh -s` kept running for the run's step scripts, each
    /// waiting for its next script.
    sessions: Arc<Mutex<BTreeMap<String, Vec<process::Session>>>>,
    /// How many hosts are worked on at once.
    jobs: usize,
    /// The opening of the master connections, until it is waited for.
    opening: Mutex<Option<JoinHandle<()>>>,
}

impl Ssh {
    /// Starts opening a master connection to every host, `jobs` at a time,
    /// and returns at once: the handshakes proceed while the caller builds.
    /// The first command waits for them. A host that cannot be reached is
    /// not an error here: its first command reports why, with ssh's own
    /// message.
    pub fn connect(hosts: &[&Host], options: SshOptions, jobs: usize) -> Ssh {
        let control_dir = control_dir();
        let config = control_dir
            .as_deref()
            .and_then(|dir| defaults_config(dir, options.config.as_deref()));
        let mut warnings = Vec::new();
        let persisting = match &control_dir {
            Some(dir) if !options.persist.is_zero() => {
                use std::os::unix::fs::MetadataExt as _;
                // The run's own directory says who this user is.
                let uid = fs::metadata(dir).map(|m| m.uid()).ok();
                match uid.map(persistent_dir) {
                    Some(Ok(dir)) => Some(dir),
                    Some(Err(why)) => {
                        warnings.push(format!(
                            "ssh connections are not kept for the next run: {why}"
                        ));
                        None
                    }
                    None => None,
                }
            }
            _ => None,
        };
        let persistent = persisting.is_some();
        let mut ssh = Ssh {
            options,
            addresses: hosts
                .iter()
                .map(|h| (h.name.clone(), h.address.clone()))
                .collect(),
            socket_dir: persisting.or_else(|| control_dir.clone()),
            keys: BTreeMap::new(),
            control_dir,
            persistent,
            warnings,
            config,
            trips: RoundTrips::default(),
            libraries: Libraries::default(),
            sessions: Arc::new(Mutex::new(BTreeMap::new())),
            jobs,
            opening: Mutex::new(None),
        };
        // ssh works out each host's configuration itself, several hosts at
        // a time: a few milliseconds each.
        if ssh.socket_dir.is_some() {
            let names: Vec<&String> = ssh.addresses.keys().collect();
            let keys = crate::parallel::parallel(&names, jobs.max(8), |name| {
                effective_key(&ssh.connection_args(), ssh.address(name), &ssh.options)
            });
            ssh.keys = names.into_iter().cloned().zip(keys).collect();
        }
        if let Some(control_dir) = &ssh.control_dir {
            // A run that is killed cannot close its masters: they go after
            // ten idle minutes, unless they are kept for less.
            let persist = if ssh.persistent {
                ssh.options.persist.as_secs().max(1)
            } else {
                600
            };
            let masters: Vec<Master> = ssh
                .addresses
                .iter()
                .map(|(name, address)| Master {
                    host: name.clone(),
                    session: ssh.session_cmd(name),
                    socket: ssh.control_path(name),
                    open: ssh
                        .ssh_cmd(name)
                        .args(["-o", "ControlMaster=auto", "-o"])
                        .arg(format!("ControlPersist={persist}"))
                        .args(["-f", "-N"])
                        .arg(address)
                        .for_host(name.as_str()),
                    kept: ssh.control_path(name).filter(|_| ssh.persistent),
                    log: control_dir.join(format!("{name}.log")),
                })
                .collect();
            // Each host's session starts as soon as its master is there,
            // while the caller builds: the first script then finds ssh
            // connected and the host's shell waiting for it.
            let sessions = Arc::clone(&ssh.sessions);
            let opening = std::thread::spawn(move || {
                let started = |master: &Master, session: process::Session| {
                    sessions
                        .lock()
                        .expect("no thread panics holding it")
                        .entry(master.host.clone())
                        .or_default()
                        .push(session);
                };
                // Masters kept from an earlier run are asked first, and a
                // session started on each that answers, every host at
                // once: that is no new connection for sshd. Each session
                // must open within SESSION_OPENS, all waited for together.
                let reused = crate::parallel::parallel(&masters, jobs, Master::reuse);
                let deadline = std::time::Instant::now() + SESSION_OPENS;
                let mut to_open = Vec::new();
                for (master, reused) in masters.iter().zip(reused) {
                    match reused {
                        Some(mut first) => {
                            if first.shell.opened_by(deadline) {
                                started(master, first.into_session(&master.session));
                            } else {
                                first.end();
                                master.put_aside();
                                to_open.push(master);
                            }
                        }
                        None => to_open.push(master),
                    }
                }
                crate::parallel::parallel(&to_open, jobs.min(STARTS), |master| {
                    if master.open()
                        && let Ok(session) =
                            start_session(&master.session, master.socket.as_deref())
                    {
                        started(master, session);
                    }
                });
            });
            *ssh.opening.lock().expect("not poisoned") = Some(opening);
        }
        ssh
    }

    /// What a person should know about the connections (a directory of
    /// kept connections that cannot be trusted, say).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Waits until every master connection is open (or has failed). The
    /// lock is held while waiting, so that no caller goes ahead (and makes
    /// a connection of its own) before the masters are there.
    fn connected(&self) {
        let mut opening = self.opening.lock().expect("not poisoned");
        if let Some(handle) = opening.take() {
            let _ = handle.join();
        }
    }

    /// Where the socket of `host`'s master connection is: named by a hash
    /// of the host's address and of what ssh makes of its configuration
    /// for that host (see [`effective_key`]), so that a kept connection is
    /// used only for what it was opened for, and the run itself can ask it
    /// whether it is alive (see [`mux`]) without starting ssh. None for a
    /// host whose configuration ssh could not say.
    fn control_path(&self, host: &str) -> Option<PathBuf> {
        let dir = self.socket_dir.as_ref()?;
        let key = self.keys.get(host)?.as_ref()?;
        let mut hasher = blake3::Hasher::new();
        for part in [self.address(host), key] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        // As long as ssh's `%C`, which the room for a socket's name allows.
        Some(dir.join(&hasher.finalize().to_hex()[..40]))
    }

    /// The options every ssh call to `host` shares.
    fn ssh_args(&self, host: &str) -> Vec<OsString> {
        let mut args = self.connection_args();
        if let Some(path) = self.control_path(host) {
            let mut control_path = OsString::from("ControlPath=");
            control_path.push(path);
            args.extend(["-o".into(), control_path]);
        }
        args
    }

    /// The options that decide where every ssh call goes and what it
    /// trusts: the configuration, the host key policy, the user.
    fn connection_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(config) = &self.config {
            args.push("-F".into());
            args.push(config.into());
        } else {
            // Without a file of defaults, they are options, which the
            // user's configuration cannot override.
            if let Some(config) = &self.options.config {
                args.push("-F".into());
                args.push(config.into());
            }
            for (key, value) in SSH_DEFAULTS {
                args.extend(["-o".into(), format!("{key}={value}").into()]);
            }
        }
        let checking = if self.options.accept_new_host_keys {
            "StrictHostKeyChecking=accept-new"
        } else {
            "StrictHostKeyChecking=yes"
        };
        args.extend(["-o".into(), checking.into()]);
        if self.options.batch {
            args.extend(["-o".into(), "BatchMode=yes".into()]);
        }
        if let Some(user) = &self.options.user {
            args.extend(["-l".into(), user.into()]);
        }
        args
    }

    /// The ssh command line rsync and git run, as one shell-quoted string,
    /// through `host`'s master connection.
    fn remote_shell(&self, host: &str) -> String {
        let words: Vec<String> = std::iter::once(OsString::from("ssh"))
            .chain(self.ssh_args(host))
            .chain(["-o".into(), "ControlMaster=no".into()])
            .map(|word| quote(&word.to_string_lossy()))
            .collect();
        words.join(" ")
    }

    fn ssh_cmd(&self, host: &str) -> Cmd {
        Cmd::new("ssh").args(self.ssh_args(host))
    }

    fn address<'a>(&'a self, host: &'a str) -> &'a str {
        self.addresses.get(host).map_or(host, String::as_str)
    }
}

/// Turns ssh's own failure (exit 255) into an error that says first why
/// the host cannot be reached, with a hint for the most common one.
fn connection_error(cmd: &Cmd, host: &str, address: &str, stderr_tail: &str) -> ProcessError {
    let (address, mut reason) = unreachable_reason(address, stderr_tail);
    if reason.contains("Host key verification failed") {
        reason.push_str(
            "\nhint: the host's key is unknown or has changed; check it and add it to the known_hosts file, \
             or, for a host that is new, set `host_keys = \"accept-new\"` in the environment's \
             `[environment]` (a changed key is always refused)",
        );
    }
    ProcessError {
        command: cmd.to_string(),
        host: Some(host.to_string()),
        kind: ProcessErrorKind::Unreachable { address, reason },
    }
}

/// Where ssh tried to connect and why it could not, from what it printed:
/// `ssh: connect to host 127.0.0.9 port 22: Connection refused` says both;
/// otherwise the address is the one landfall gave it, and the reason
/// ssh's own lines (such as `Permission denied (publickey)`), with no
/// `ssh: ` before them.
fn unreachable_reason(address: &str, stderr_tail: &str) -> (String, String) {
    let lines: Vec<&str> = stderr_tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    for line in &lines {
        let Some(rest) = line.strip_prefix("ssh: connect to host ") else {
            continue;
        };
        let parsed = rest.split_once(" port ").and_then(|(name, rest)| {
            let (port, reason) = rest.split_once(": ")?;
            let name = if name.contains(':') {
                format!("[{name}]")
            } else {
                name.to_string()
            };
            Some((format!("{name}:{port}"), reason.to_string()))
        });
        if let Some(parsed) = parsed {
            return parsed;
        }
    }
    let reason: Vec<&str> = lines
        .iter()
        .map(|l| l.strip_prefix("ssh: ").unwrap_or(l))
        .collect();
    let reason = if reason.is_empty() {
        "ssh exited with status 255".to_string()
    } else {
        reason.join("\n")
    };
    (address.to_string(), reason)
}

/// A push's failure, whose ssh could not reach the host: rsync and git
/// report ssh's own error among theirs, which is what it is about.
fn push_error(err: ProcessError, address: &str) -> ProcessError {
    let ProcessErrorKind::Status { stderr_tail, .. } = &err.kind else {
        return err;
    };
    let ssh_said = stderr_tail.lines().any(|l| {
        let l = l.trim();
        l.starts_with("ssh: ")
            || l.starts_with("Host key verification failed")
            || (l.contains(": Permission denied (") && l.ends_with(").") && !l.starts_with("rsync"))
    });
    if !ssh_said {
        return err;
    }
    // rsync's and git's lines about the closed connection say nothing more.
    let ssh_lines: String = stderr_tail
        .lines()
        .filter(|l| {
            !l.starts_with("rsync") && !l.starts_with("fatal:") && !l.contains("remote repository")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (address, reason) = unreachable_reason(address, &ssh_lines);
    ProcessError {
        kind: ProcessErrorKind::Unreachable { address, reason },
        ..err
    }
}

impl Ssh {
    /// `sh -s` on `host`, through its master connection, fed `script`.
    fn script_cmd(&self, host: &str, script: String) -> Cmd {
        self.shell_cmd(host).input(script)
    }

    /// `sh -s` on `host`, through its master connection, once the masters
    /// are open; it counts as a round trip.
    fn shell_cmd(&self, host: &str) -> Cmd {
        self.connected();
        self.trips.count(host);
        self.session_cmd(host)
    }

    /// `sh -s` on `host`, through its master connection.
    fn session_cmd(&self, host: &str) -> Cmd {
        self.ssh_cmd(host)
            .args(["-o", "ControlMaster=no", "-T"])
            .arg(self.address(host))
            .args(REMOTE_SHELL)
            .in_own_process_group()
            .for_host(host)
            .bounded_output()
    }

    /// Runs a script in one of the host's sessions, started if none is
    /// free: one ssh session then serves every script of the run.
    fn in_session(
        &self,
        host: &str,
        text: &str,
        deadline: std::time::Duration,
    ) -> Result<Reply, ProcessError> {
        let cmd = self.shell_cmd(host);
        let free = self.pool().get_mut(host).and_then(Vec::pop);
        let mut session = match free {
            Some(session) => session,
            None => start_session(&cmd, self.control_path(host).as_deref())?,
        };
        let output = session.run(text, deadline)?;
        if session.alive() {
            self.pool()
                .entry(host.to_string())
                .or_default()
                .push(session);
        }
        script_reply(&cmd, host, self.address(host), output)
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<process::Session>>> {
        self.sessions.lock().expect("no thread panics holding it")
    }
}

/// The command of a host's sessions: the host's POSIX shell, reading
/// scripts from its standard input.
const REMOTE_SHELL: [&str; 2] = ["sh", "-s"];

/// A session of `sh -s` on a host: opened by landfall itself on the host's
/// master when the master answers (see [`mux`]), otherwise by `cmd`, an ssh
/// client, which also says why a host cannot be reached.
fn start_session(cmd: &Cmd, socket: Option<&Path>) -> Result<process::Session, ProcessError> {
    let opened = socket.and_then(|socket| mux::session(socket, &REMOTE_SHELL.join(" ")).ok());
    match opened {
        Some((shell, streams)) => Ok(MuxSession { shell, streams }.into_session(cmd)),
        None => process::Session::start(cmd),
    }
}

/// How long a kept master may take to open a session on its host, a round
/// trip over its connection, before it is taken for one that cannot reach
/// the host any more (as long as ssh's `ServerAliveInterval`, as landfall
/// sets it).
const SESSION_OPENS: std::time::Duration = std::time::Duration::from_secs(5);

/// A session that a master runs for landfall, and its streams.
struct MuxSession {
    shell: mux::Session,
    streams: mux::Streams,
}

impl MuxSession {
    /// The session, as `cmd` stands for it in errors.
    fn into_session(self, cmd: &Cmd) -> process::Session {
        let MuxSession { shell, streams } = self;
        process::Session::over(
            cmd,
            Box::new(shell),
            Box::new(streams.stdin),
            [Box::new(streams.stdout), Box::new(streams.stderr)],
        )
    }

    /// Ends a session that never opened.
    fn end(mut self) {
        process::Shell::kill(&mut self.shell);
    }
}

/// What a script run by `cmd` printed, as a reply; or the connection's
/// failure, if ssh could not reach the host.
fn script_reply(
    cmd: &Cmd,
    host: &str,
    address: &str,
    output: process::Output,
) -> Result<Reply, ProcessError> {
    if output.code == Some(SSH_FAILED) {
        return Err(connection_error(cmd, host, address, &output.stderr_tail()));
    }
    Ok(Reply::from(output))
}

impl Transport for Ssh {
    fn host_path(&self, target: &Target) -> String {
        target.path.clone()
    }

    fn run(&self, host: &str, script: &Script) -> Result<Reply, ProcessError> {
        self.libraries.run(host, script, |text| {
            self.in_session(host, &text, script.deadline())
        })
    }

    fn stream(
        &self,
        host: &str,
        script: &Script,
        stop: &(dyn Fn() -> bool + Sync),
        line: &mut dyn FnMut(&str),
    ) -> Result<Reply, ProcessError> {
        let text = script.text_with(self.libraries.functions(host));
        let cmd = match script.input_file() {
            // The script is the remote command, so that the file, on
            // standard input, is the command's alone, streamed as it reads.
            Some(file) => {
                self.connected();
                self.trips.count(host);
                self.ssh_cmd(host)
                    .args(["-o", "ControlMaster=no", "-T"])
                    .arg(self.address(host))
                    .arg(format!("sh -c {}", process::quote(&text)))
                    .input_file(file)
                    .in_own_process_group()
                    .for_host(host)
                    .bounded_output()
            }
            None => self.script_cmd(host, text),
        };
        let output = process::stream_lines(&cmd, stop, line)?;
        script_reply(&cmd, host, self.address(host), output)
    }

    fn attach(&self, host: &str, script: &Script) -> Result<Option<i32>, ProcessError> {
        self.connected();
        self.trips.count(host);
        // The script is the remote command (standard input is the
        // terminal's), with a pseudo-terminal, in landfall's process group:
        // what is typed goes to the host, Ctrl-C included.
        let cmd = self
            .ssh_cmd(host)
            .args(["-o", "ControlMaster=no", "-t"])
            .arg(self.address(host))
            .arg(format!(
                "sh -c {}",
                process::quote(&script.text_with(self.libraries.functions(host)))
            ))
            .for_host(host);
        match process::run_attached(&cmd)? {
            Some(SSH_FAILED) => Err(ProcessError {
                command: cmd.to_string(),
                host: Some(host.to_string()),
                kind: ProcessErrorKind::Unreachable {
                    address: self.address(host).to_string(),
                    reason: "ssh's error is above".into(),
                },
            }),
            code => Ok(code),
        }
    }

    fn push(
        &self,
        target: &Target,
        release: &Release,
        basis: Basis<'_>,
        progress: super::Progress<'_>,
    ) -> Result<PushStats> {
        self.connected();
        self.trips.count(&target.host);
        let remote_shell = self.remote_shell(&target.host);
        let address = self.address(&target.host);
        if let Some(git) = &release.git {
            let url = remote_path(address, &format!("{}/.landfall/repo.git", target.path));
            return Ok(super::git_push(git, &url, Some(remote_shell), &target.host)
                .map_err(|err| push_error(err, address))?);
        }
        // The artifact tree and the release's own files, which never share
        // a path, merge into one upload.
        let with_slash = |dir: &Path| {
            let mut dir = dir.as_os_str().to_os_string();
            dir.push("/");
            dir
        };
        let dest = remote_path(
            address,
            &format!("{}/releases/{}.partial/", target.path, release.id),
        );
        // Owner and group are the remote user's; files and directories
        // keep their mtimes, files their modes, and directories are
        // `rwxr-xr-x` as landfall makes them anywhere, whatever the umask
        // they were made under here.
        let mut cmd = Cmd::new("rsync")
            .args([
                // `--secluded-args` (`--protect-args` before rsync 3.2.6):
                // the destination's path travels in rsync's own protocol,
                // not on the remote shell's command line, where rsync's
                // escaping of it is not to be relied on (Debian's 3.2.7
                // with its security fixes left a backquote for the shell
                // to run).
                "-s",
                "--links",
                "--perms",
                "--chmod=D755",
                "--times",
                "--stats",
                // A transfer that stalls this long (a host that froze, a
                // network that went away) is given up.
                "--timeout=120",
                // One line per file sent, to count them without the
                // release's manifest.
                "--out-format=%i %n",
                // The bytes so far, on a line of its own that it redraws.
                "--info=progress2",
            ])
            .arg("-e")
            .arg(remote_shell);
        if let Basis::Derived(gathered) = basis {
            // Only the delta's paths, each known to differ. What the
            // release lacks was removed from the copy by the claim: rsync's
            // `--delete-missing-args` is refused by the receivers of
            // rsync's hardened releases (3.4.x, and distributions' 3.2.7
            // with those fixes) for any path after the first.
            let mut from = OsString::from("--files-from=");
            from.push(&gathered.list);
            cmd = cmd
                .arg("--from0")
                .arg(from)
                .args(["--ignore-times", "--force"])
                .arg(with_slash(&gathered.dir));
        } else {
            cmd = cmd.args(["--recursive", "--delete"]);
            if let Basis::Release(current) = basis {
                cmd = cmd.arg(format!("--link-dest={}/releases/{current}", target.path));
            }
            cmd = cmd
                .arg(with_slash(&release.tree))
                .arg(with_slash(&release.stage));
        }
        let cmd = cmd.arg(dest).in_own_process_group().for_host(&target.host);
        // What rsync says is read as it comes, never kept whole: a release
        // of many files is a line each.
        let mut stats = PushStats::default();
        process::run_streaming(&cmd, &mut |piece| {
            if let Some(bytes) = progress_bytes(piece) {
                progress(bytes);
            }
            let seen = parse_rsync_stats(piece);
            stats.files += seen.files;
            stats.bytes = stats.bytes.max(seen.bytes);
        })
        .map_err(|err| push_error(err, address))?;
        Ok(stats)
    }

    fn round_trips(&self) -> BTreeMap<String, usize> {
        self.trips.get()
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        // A master still being opened would outlive the run.
        self.connected();
        // The sessions end as their input closes.
        let mut sessions: Vec<process::Session> = std::mem::take(&mut *self.pool())
            .into_values()
            .flatten()
            .collect();
        for session in &mut sessions {
            session.hang_up();
        }
        for session in sessions {
            session.close(std::time::Duration::from_secs(5));
        }
        let Some(control_dir) = &self.control_dir else {
            return;
        };
        if self.persistent {
            // The masters stay, for the next run; they close themselves
            // once idle for `persist`.
            let _ = fs::remove_dir_all(control_dir);
            return;
        }
        // Each master is told to end on its socket, as `ssh -O exit`
        // tells it, without an ssh client for each.
        let hosts: Vec<&String> = self.addresses.keys().collect();
        crate::parallel::parallel(&hosts, self.jobs, |name| {
            if let Some(socket) = self.control_path(name) {
                mux::exit(&socket);
            }
        });
        let _ = fs::remove_dir_all(control_dir);
    }
}

/// One host's master connection, as a run makes sure of it.
struct Master {
    host: String,
    /// The host's first session, started once the master is open.
    session: Cmd,
    /// The master's socket.
    socket: Option<PathBuf>,
    open: Cmd,
    /// With kept connections: the socket of one kept from an earlier run.
    kept: Option<PathBuf>,
    log: PathBuf,
}

impl Master {
    /// The host's first session, on the master kept from an earlier run,
    /// if one answers there. One that is there but silent, or that takes
    /// no session, is put aside: ssh would wait for it without end, as
    /// would every ssh and rsync of the run. (Should it wake, it still
    /// ends once idle.)
    fn reuse(&self) -> Option<MuxSession> {
        let kept = self.kept.as_deref()?;
        let found = mux::check_master(kept);
        if found == mux::Master::Alive
            && let Ok((shell, streams)) = mux::session(kept, &REMOTE_SHELL.join(" "))
        {
            return Some(MuxSession { shell, streams });
        }
        if found != mux::Master::Nothing {
            let _ = fs::remove_file(kept);
        }
        None
    }

    /// Asks a kept master that cannot reach its host any more to take no
    /// more sessions (any it runs for another command go on), which takes
    /// its socket away, for a new master's.
    fn put_aside(&self) {
        if let Some(kept) = &self.kept {
            mux::stop_listening(kept);
            let _ = fs::remove_file(kept);
        }
    }

    /// Opens the master. `open` says `ControlMaster=auto`, with which ssh
    /// removes a socket that nobody listens on (a stale one) and opens a
    /// new master in its place.
    fn open(&self) -> bool {
        for attempt in 1..=START_ATTEMPTS {
            let opened = process::run_detaching(&self.open, &self.log).is_ok();
            if opened || attempt == START_ATTEMPTS {
                return opened;
            }
            let said = process::read_end(&self.log, process::STDERR_KEPT).unwrap_or_default();
            if !dropped_while_starting(&String::from_utf8_lossy(&said)) {
                return false;
            }
            std::thread::sleep(start_backoff(attempt));
        }
        false
    }
}

/// What decides where ssh connects to `address`, and what it trusts there,
/// as ssh itself works it out from `args` (its configuration, with every
/// `Include` and `Match` followed: `ssh -G`): every option it would use,
/// the host key policy, and each known hosts file it names, with its size
/// and time of change. A change to any of them is not served by a
/// connection opened before it: a host that moved, or whose key left a
/// known hosts file, is connected to and checked again, not ridden past on
/// a kept connection. `None` if ssh cannot say (then no master is kept).
fn effective_key(args: &[OsString], address: &str, options: &SshOptions) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let cmd = Cmd::new("ssh")
        .arg("-G")
        .args(args)
        .arg("--")
        .arg(address)
        .deadline(std::time::Duration::from_secs(10));
    let output = process::run(&cmd).ok()?;
    let effective = output.stdout_text();
    let mut key = format!(
        "user={:?} accept-new={}\n{effective}",
        options.user, options.accept_new_host_keys
    );
    for line in effective.lines() {
        let Some((option, files)) = line.split_once(' ') else {
            continue;
        };
        if option != "userknownhostsfile" && option != "globalknownhostsfile" {
            continue;
        }
        for file in config_words(files) {
            let stat = fs::metadata(&file)
                .map(|m| format!("{} {}.{}", m.len(), m.mtime(), m.mtime_nsec()))
                .unwrap_or_default();
            let _ = write!(key, "\n{file} {stat}");
        }
    }
    Some(key)
}

/// The words of an ssh configuration line's arguments: split at white
/// space, but not inside double quotes (which are taken away), and ended
/// by a `#` that starts a word.
fn config_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.get_or_insert_default();
            }
            c if c.is_whitespace() && !quoted => words.extend(word.take()),
            '#' if !quoted && word.is_none() => break,
            c => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    words
}

/// Whether ssh's error says the server dropped the connection before it
/// was established, as sshd does past `MaxStartups`: worth another try,
/// unlike a refused port or a failed authentication.
fn dropped_while_starting(said: &str) -> bool {
    said.lines().any(|line| {
        line.contains("kex_exchange_identification")
            || line.contains("ssh_exchange_identification")
            || (line.contains("Connection reset by") || line.contains("Connection closed by"))
                && !line.contains("Permission denied")
    })
}

/// 200 ms, doubled with each attempt, and up to half as much again at
/// random, so that runs dropped together do not come back together.
fn start_backoff(attempt: u32) -> std::time::Duration {
    let base = std::time::Duration::from_millis(200) * 2u32.pow(attempt - 1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let spread = (nanos ^ std::process::id().rotate_left(13)) % 1000;
    base + base * spread / 2000
}

/// Writes, into the private control directory, the configuration ssh is
/// given: the user's own (the environment's `ssh_config`, or else
/// `~/.ssh/config` and the system's), then landfall's defaults for every
/// host. ssh takes the first value it reads for each setting, so the
/// user's win. `None` (the defaults then become options) where a path
/// cannot be written in ssh's configuration syntax.
fn defaults_config(dir: &Path, user_config: Option<&Path>) -> Option<PathBuf> {
    let mut includes: Vec<PathBuf> = Vec::new();
    if let Some(config) = user_config {
        includes.push(std::path::absolute(config).ok()?);
    } else {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            includes.push(PathBuf::from(home).join(".ssh/config"));
        }
        includes.push(PathBuf::from("/etc/ssh/ssh_config"));
    }
    let mut text = String::from(
        "# The user's ssh configuration, then landfall's defaults: the first value ssh reads wins.\n",
    );
    for include in &includes {
        let include = include.to_str()?;
        if include.contains(['"', '\n', '\r']) {
            return None;
        }
        let _ = writeln!(text, "Include \"{include}\"");
    }
    text.push_str("Host *\n");
    for (key, value) in SSH_DEFAULTS {
        let _ = writeln!(text, "  {key} {value}");
    }
    let path = dir.join("ssh_config");
    fs::write(&path, text).ok()?;
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a host that cannot be reached is said to be, whichever of ssh,
    /// rsync or git met it: the host, where ssh tried and why, first; the
    /// command line last, on a line of its own.
    #[test]
    fn an_unreachable_host_is_named_with_the_cause_first() {
        let cmd = Cmd::new("ssh").args(["-F", "/tmp/x/ssh_config", "127.0.0.9", "sh", "-s"]);
        let refused = "ssh: connect to host 127.0.0.9 port 22: Connection refused\n";
        let err = connection_error(&cmd, "web3", "127.0.0.9", refused);
        let text = err.to_string();
        let (cause, line) = process::split_command_line(&text);
        assert_eq!(
            cause,
            "cannot reach `web3` (127.0.0.9:22): Connection refused"
        );
        assert_eq!(line, Some("`ssh -F /tmp/x/ssh_config 127.0.0.9 sh -s`"));
        // Without ssh's `connect to host` line, the address is landfall's.
        let denied = "Warning: Permanently added '127.0.0.9' to the list of known hosts.\n\
                      root@127.0.0.9: Permission denied (publickey).\n";
        let err = connection_error(&cmd, "web3", "127.0.0.9", denied).to_string();
        assert!(
            err.starts_with(
                "cannot reach `web3` (127.0.0.9): root@127.0.0.9: Permission denied (publickey).\n"
            ),
            "{err}"
        );
        let v6 = "ssh: connect to host ::1 port 2222: Connection refused";
        assert_eq!(
            unreachable_reason("::1", v6),
            ("[::1]:2222".to_string(), "Connection refused".to_string())
        );
        // rsync's and git's lines about the connection they lost are left
        // out; ssh's own says it all.
        for (program, stderr) in [
            (
                "rsync",
                "ssh: connect to host 127.0.0.9 port 22: Connection refused\r\n\
                 rsync: connection unexpectedly closed (0 bytes received so far) [sender]\n\
                 rsync error: unexplained error (code 255) at io.c(232) [sender=3.2.7]",
            ),
            (
                "git",
                "ssh: connect to host 127.0.0.9 port 22: Connection refused\n\
                 fatal: Could not read from remote repository.\n\n\
                 Please make sure you have the correct access rights\nand the repository exists.",
            ),
        ] {
            let failed =
                Cmd::new(program)
                    .arg("x")
                    .for_host("web3")
                    .error(ProcessErrorKind::Status {
                        code: Some(255),
                        stderr_tail: stderr.to_string(),
                    });
            let text = push_error(failed, "127.0.0.9").to_string();
            assert!(
                text.starts_with(
                    "cannot reach `web3` (127.0.0.9:22): Connection refused\ncommand line: `"
                ),
                "{text}"
            );
        }
        // A push that failed on a reachable host is left as it failed.
        let failed = Cmd::new("rsync")
            .for_host("web3")
            .error(ProcessErrorKind::Status {
                code: Some(23),
                stderr_tail: "rsync: [receiver] mkstemp failed: Permission denied (13)".into(),
            });
        let text = push_error(failed, "127.0.0.9").to_string();
        assert!(
            text.starts_with("on `web3`: `rsync` exited with status 23:\nrsync: [receiver]"),
            "{text}"
        );
    }

    /// A kept master's name followed the files ssh reads but not those
    /// they include: after a host moved to another address, or its key
    /// left a known hosts file named only in an included file, the next
    /// run rode the old master. The name now covers what ssh itself makes
    /// of the configuration for the host.
    #[test]
    fn a_kept_connection_is_named_by_what_ssh_makes_of_its_configuration() {
        landfall_testbed::require("ssh");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        let included = dir.path().join("included");
        let known = dir.path().join("known_hosts");
        fs::write(&config, format!("Include \"{}\"\n", included.display())).unwrap();
        fs::write(
            &included,
            format!(
                "Host web1\n  HostName 127.0.0.2\n  UserKnownHostsFile \"{}\"\n",
                known.display()
            ),
        )
        .unwrap();
        fs::write(&known, "127.0.0.2 ssh-ed25519 AAAA\n").unwrap();
        let options = SshOptions {
            config: Some(config.clone()),
            ..SshOptions::default()
        };
        let args = ["-F".into(), config.clone().into_os_string()];
        let key = |options: &SshOptions| effective_key(&args, "web1", options).unwrap();
        let first = key(&options);
        assert_eq!(first, key(&options));
        assert_ne!(
            first,
            key(&SshOptions {
                accept_new_host_keys: true,
                ..options.clone()
            })
        );
        // The host moves, in the included file.
        fs::write(
            &included,
            format!(
                "Host web1\n  HostName 127.0.0.3\n  UserKnownHostsFile \"{}\"\n",
                known.display()
            ),
        )
        .unwrap();
        let moved = key(&options);
        assert_ne!(first, moved);
        // Its key leaves the known hosts file only the included file names.
        fs::write(&known, "").unwrap();
        assert_ne!(moved, key(&options));
        // A `Match` that only some hosts meet is followed too.
        fs::write(&included, "Match host web1\n  Port 2222\n").unwrap();
        let matched = key(&options);
        assert!(matched.contains("\nport 2222\n"), "{matched}");
        assert!(
            !effective_key(&args, "web2", &options)
                .unwrap()
                .contains("\nport 2222\n")
        );
    }

    #[test]
    fn a_connection_dropped_while_it_starts_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let master = |port: u16| Master {
            host: "h".into(),
            session: Cmd::new("true"),
            socket: None,
            open: Cmd::new("ssh")
                .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                ])
                .args(["-o", "ConnectTimeout=5", "-o", "ControlMaster=yes"])
                .arg("-o")
                .arg(format!("ControlPath={}/%C", dir.path().display()))
                .args(["-f", "-N", "-p", &port.to_string(), "127.0.0.1"]),
            kept: None,
            log: dir.path().join("log"),
        };
        let accepted = std::thread::spawn(move || {
            let mut count = 0;
            listener.set_nonblocking(true).unwrap();
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_secs(10) {
                match listener.accept() {
                    // Closed at once, before a word of SSH.
                    Ok((stream, _)) => {
                        drop(stream);
                        count += 1;
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
                if count == START_ATTEMPTS {
                    break;
                }
            }
            count
        });
        let started = std::time::Instant::now();
        assert!(!master(port).open(), "no master opened");
        let took = started.elapsed();
        assert_eq!(accepted.join().unwrap(), START_ATTEMPTS);
        assert!(took >= std::time::Duration::from_millis(1400), "{took:?}");
        let said = fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(dropped_while_starting(&said), "{said}");

        // A port nobody listens on is refused: no second try.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let started = std::time::Instant::now();
        assert!(!master(port).open(), "no master opened");
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
        let said = fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(
            said.contains("Connection refused") && !dropped_while_starting(&said),
            "{said}"
        );
    }

    /// What `ssh -G` makes of a configuration for a host: the value of
    /// `key`.
    fn effective(config: &Path, key: &str) -> String {
        let out = std::process::Command::new(landfall_testbed::require("ssh"))
            .arg("-G")
            .arg("-F")
            .arg(config)
            .arg("web1")
            .output()
            .expect("ssh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_string()
    }

    #[test]
    fn landfall_bounds_connections_unless_the_users_configuration_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user_config");
        fs::write(&user, "Host web1\n  ConnectTimeout 3\n  Port 2222\n").unwrap();
        let config = defaults_config(dir.path(), Some(&user)).unwrap();
        assert_eq!(effective(&config, "connecttimeout"), "3");
        assert_eq!(effective(&config, "port"), "2222");
        assert_eq!(effective(&config, "serveraliveinterval"), "5");
        assert_eq!(effective(&config, "serveralivecountmax"), "3");

        fs::write(&user, "Host other\n  ConnectTimeout 3\n").unwrap();
        assert_eq!(effective(&config, "connecttimeout"), "10");
    }
}
