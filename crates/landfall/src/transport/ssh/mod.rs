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
//!
//! When the claim has made the upload a copy of the current release
//! (`landfall_derive`), only the delta is sent, its paths listed to
//! `rsync --files-from`, and nothing else is walked. A git release's
//! commit goes with `git push` to `<path>/.landfall/repo.git`, over the
//! same master (`GIT_SSH_COMMAND`). A host's `sh -s` session is opened on
//! its master by landfall itself (see `mux`), or by an ssh client when the
//! master does not take it; either way it serves every script of the run,
//! so a run costs one ssh session per host besides its copies.
//!
//! This module is the transport itself: the hosts' sessions (one `sh -s`
//! per host, kept for the run's step scripts), the running of steps, and
//! the push. The rest has a module each: `config`, the ssh configuration
//! (the options every ssh call is given, and what `ssh -G` makes of them
//! for a host); `master`, the master connections' lifecycle (opened, or
//! found kept and checked, put aside, ended); `mux`, OpenSSH's
//! multiplexing protocol, spoken on a master's socket; `sockets`, the
//! directories of the masters' sockets; `rsync`, the copy of a release and
//! what rsync says of it; `unreachable`, what ssh says of a host it cannot
//! reach.

mod config;
mod master;
mod mux;
mod rsync;
mod sockets;
mod unreachable;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{Basis, Libraries, PushStats, RoundTrips, Transport};
use crate::assemble::Release;
use crate::config::Host;
use crate::error::Result;
use crate::plan::Target;
use crate::process::{self, Cmd, ProcessError, ProcessErrorKind, quote};
use crate::steps::{Reply, Script};
pub use config::SshOptions;
use config::{connection_args, defaults_config, effective_key};
use master::Master;
use rsync::remote_path;
use sockets::{control_dir, persistent_dir_of};
use unreachable::{connection_error, push_error};

/// ssh's exit status when it could not connect or authenticate.
const SSH_FAILED: i32 = 255;

/// Hosts reached over OpenSSH.
#[derive(Debug)]
pub struct Ssh {
    options: SshOptions,
    /// This run's own private directory (landfall's ssh configuration, the
    /// masters' logs), removed when it ends.
    control_dir: Option<PathBuf>,
    /// Where the master connections' sockets are: a directory of the
    /// user's kept across runs (see [`persistent_dir_of`]), or `control_dir`.
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
        let kept = control_dir
            .as_deref()
            .filter(|_| !options.persist.is_zero())
            .and_then(persistent_dir_of);
        let persisting = match kept {
            Some(Ok(dir)) => Some(dir),
            Some(Err(why)) => {
                warnings.push(format!(
                    "ssh connections are not kept for the next run: {why}"
                ));
                None
            }
            None => None,
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
            let sessions = Arc::clone(&ssh.sessions);
            let opening = master::open_all(masters, jobs, move |master, session| {
                sessions
                    .lock()
                    .expect("no thread panics holding it")
                    .entry(master.host.clone())
                    .or_default()
                    .push(session);
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
    /// trusts (see [`connection_args`]).
    fn connection_args(&self) -> Vec<OsString> {
        connection_args(self.config.as_deref(), &self.options)
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

    /// An ssh client of its own, with the options and configuration of
    /// every other (where the host is, how to get there, which keys to
    /// trust and present) but no master: neither this run's nor one kept,
    /// nor one the user's configuration would share.
    fn run_over_new_connection(
        &self,
        host: &str,
        script: &Script,
        connect: std::time::Duration,
    ) -> Result<Reply, ProcessError> {
        self.libraries.run(host, script, |text| {
            self.trips.count(host);
            let cmd = Cmd::new("ssh")
                .args(self.connection_args())
                .args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o"])
                .arg(format!("ConnectTimeout={}", connect.as_secs().max(1)))
                .arg("-T")
                .arg(self.address(host))
                .args(REMOTE_SHELL)
                .input(text)
                .deadline(connect + script.deadline())
                .in_own_process_group()
                .for_host(host)
                .bounded_output();
            let output = process::run_unchecked(&cmd)?;
            script_reply(&cmd, host, self.address(host), output)
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
        Ok(
            rsync::push(remote_shell, address, target, release, basis, progress)
                .map_err(|err| push_error(err, address))?,
        )
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
        let sockets: Vec<PathBuf> = self
            .addresses
            .keys()
            .filter_map(|name| self.control_path(name))
            .collect();
        master::end_all(&sockets, self.jobs);
        let _ = fs::remove_dir_all(control_dir);
    }
}
