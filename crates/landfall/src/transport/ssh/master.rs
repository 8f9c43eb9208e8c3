//! The master connections' lifecycle: one `ControlMaster` per host,
//! started in the background while the caller builds, or found open, kept
//! from an earlier run; checked, reused, replaced, and ended.
//!
//! A master kept from an earlier run is asked whether it is alive on its
//! socket (see [`mux`]), and the host's first session is opened on it; one
//! that is there but silent, or whose session does not open within
//! [`SESSION_OPENS`] (its host went away while it idled), is put aside,
//! for ssh would wait for it without end, and a new master takes its
//! place. At most [`STARTS`] masters start at once, below sshd's
//! `MaxStartups`, and one that sshd drops as it starts is tried again. A
//! run's own masters are told to end as it ends; kept ones end themselves
//! once idle.

use std::fs;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{MuxSession, REMOTE_SHELL, mux, start_session};
use crate::process::{self, Cmd};

/// How many connections start at once. sshd drops new connections
/// beyond its `MaxStartups` (10 by default) while they authenticate, and
/// hosts may share one sshd (a bastion, or aliases of one machine); a
/// start that is dropped anyway is tried again (see [`Master::open`]).
const STARTS: usize = 8;

/// How often a connection that sshd dropped while it started is tried.
const START_ATTEMPTS: u32 = 4;

/// How long a kept master may take to open a session on its host, a round
/// trip over its connection, before it is taken for one that cannot reach
/// the host any more (as long as ssh's `ServerAliveInterval`, as landfall
/// sets it).
const SESSION_OPENS: Duration = Duration::from_secs(5);

/// Opens every host's master, `jobs` at a time, in a thread of its own,
/// and each host's first session as soon as its master is there (given to
/// `started`): the first script then finds ssh connected and the host's
/// shell waiting for it.
pub(super) fn open_all(
    masters: Vec<Master>,
    jobs: usize,
    started: impl Fn(&Master, process::Session) + Send + Sync + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        // Masters kept from an earlier run are asked first, and a session
        // started on each that answers, every host at once: that is no new
        // connection for sshd. Each session must open within
        // SESSION_OPENS, all waited for together.
        let reused = crate::parallel::parallel(&masters, jobs, Master::reuse);
        let deadline = Instant::now() + SESSION_OPENS;
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
                && let Ok(session) = start_session(&master.session, master.socket.as_deref())
            {
                started(master, session);
            }
        });
    })
}

/// Tells each of a run's own masters, at `sockets`, to end, as
/// `ssh -O exit` tells it, without an ssh client for each.
pub(super) fn end_all(sockets: &[PathBuf], jobs: usize) {
    crate::parallel::parallel(sockets, jobs, |socket| mux::exit(socket));
}

/// One host's master connection, as a run makes sure of it.
pub(super) struct Master {
    pub(super) host: String,
    /// The host's first session, started once the master is open.
    pub(super) session: Cmd,
    /// The master's socket.
    pub(super) socket: Option<PathBuf>,
    /// The ssh command that opens the master, in the background.
    pub(super) open: Cmd,
    /// With kept connections: the socket of one kept from an earlier run.
    pub(super) kept: Option<PathBuf>,
    /// Where the master's ssh writes what it says.
    pub(super) log: PathBuf,
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
fn start_backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200) * 2u32.pow(attempt - 1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let spread = (nanos ^ std::process::id().rotate_left(13)) % 1000;
    base + base * spread / 2000
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
