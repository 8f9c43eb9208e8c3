//! A test bed of real hosts for landfall: N OpenSSH `sshd` processes, each
//! listening on its own loopback address (127.A.B.2, 127.A.B.3, … of a
//! block that the test bed holds, see [`support::Addresses`], or the
//! well-known 127.0.0.2, 127.0.0.3, … for one that outlives its process) and
//! running in its own mount namespace, where a directory of the test bed is
//! bind-mounted over `/srv`. Hosts therefore share nothing under `/srv`,
//! the way separate machines would, while tests can still look at each
//! host's files from outside (see [`Testbed::srv`]). A plain `~/.bashrc` is
//! mounted over the operator's in each namespace, so that commands run over
//! ssh start as quickly as on a fresh server.
//!
//! Each host also has a landfall state directory (its record of the paths
//! deployed to), an `/etc/supervisor` and a `/var/log/supervisor` of its
//! own, where
//! [`Testbed::start_supervisord`] runs a supervisord that only that host's
//! `supervisorctl` talks to. A test bed can run its hosts under a real
//! systemd ([`Init::Systemd`]): each host is then a small container, with
//! systemd as PID 1 of its own PID, mount, UTS, IPC and cgroup namespaces,
//! an `/etc/systemd/system` of its own, and sshd one of its units, so that
//! `systemctl` and `journalctl` run over ssh talk to that host's systemd.
//! [`Testbed::exec_in`] runs a command inside a host, for tests to look
//! at it.
//!
//! The test bed generates a host key per host, one user key, a
//! `known_hosts` file and an `ssh_config` naming the hosts `host1`,
//! `host2`, …; connections log in as the current user (root in CI) with
//! strict host key checking. `cargo xtask testbed up N [--systemd]` and the
//! integration tests both use this crate; a test starts one of its own,
//! [`Scoped`], stopped and removed when dropped.
//!
//! Stopping a host kills every process of its namespaces, so the services
//! its deploys started go with it. For fault tests a host can be given a
//! small `/srv` ([`Testbed::small_disk`], a tmpfs) and a `~/.bashrc` of the
//! test's ([`Testbed::bashrc`]), and be frozen and thawed
//! ([`Testbed::freeze`]: every process of its namespace stopped), as a host
//! that hangs is. Beside the hosts: [`S3Server`], an S3-compatible store
//! for pull mode; [`Prometheus`], which scrapes the services on the hosts
//! and answers queries, and [`Haproxy`], a reverse proxy in front of them,
//! for the checks judged from outside the hosts; [`ByteCounter`], the bytes
//! this machine sends to the hosts; [`prerequisites`], every program the
//! tests run and its package; and [`support`], what the tests of every
//! crate share.
//!
//! Requires root (for the namespaces), `unshare`, `nsenter` and `mount`
//! from util-linux, and OpenSSH's `sshd` and `ssh-keygen`; supervisor for
//! [`Testbed::start_supervisord`], systemd and cgroup v2 for systemd hosts.
//!
//! The code, a module per concern: this one holds the types, the files
//! each host keeps in the test bed's directory and the state file;
//! `create.rs` makes the keys and configurations and starts a new test
//! bed; `start.rs` starts a host (a plain one in a mount namespace),
//! `systemd.rs` a systemd host, `supervisor.rs` a host's supervisord;
//! `exec.rs` runs commands inside a host or over ssh; `processes.rs` knows
//! which processes make a host; `stop.rs` stops hosts; `faults.rs`
//! freezes them and gives them small disks; `cgroups.rs` finds and removes
//! the cgroup2 directories systemd hosts run in; `scoped.rs` is the test
//! bed a test starts and drops; `server.rs` runs the servers beside the
//! hosts (`prometheus.rs`, `haproxy.rs`) and stops them.

mod cgroups;
mod counter;
mod create;
mod exec;
mod faults;
mod haproxy;
pub mod prerequisites;
mod processes;
mod prometheus;
mod s3;
mod scoped;
mod server;
mod start;
mod stop;
mod supervisor;
pub mod support;
mod systemd;

pub use counter::ByteCounter;
pub use haproxy::Haproxy;
pub use prerequisites::require;
pub use prometheus::{Prometheus, Sample};
pub use s3::S3Server;
pub use scoped::Scoped;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

/// The file, in a test bed's directory, that records it (its hosts and
/// their init), for another process to open.
const STATE: &str = "testbed.json";

/// The `PATH` of the commands run inside hosts, systemd's default.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What runs a host's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// sshd is the first process of the host's mount namespace; the host
    /// shares the machine's processes and has no init of its own.
    #[default]
    Plain,
    /// A real systemd is PID 1 of the host's own PID, mount, UTS, IPC and
    /// cgroup namespaces, and runs sshd as one of its units: `systemctl`
    /// and `journalctl` on the host talk to that systemd, as on a server.
    /// The network is still the machine's.
    Systemd,
}

/// One host of the test bed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// A test bed: its directory and its hosts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Testbed {
    pub dir: PathBuf,
    pub hosts: Vec<Host>,
    /// The state of a test bed from before there was a choice has none:
    /// its hosts were plain.
    #[serde(default)]
    pub init: Init,
    /// The processes this process started hosts with, by host, waited for
    /// when their host stops, so that none is left a zombie.
    #[serde(skip)]
    children: Mutex<HashMap<String, Child>>,
    /// The block of addresses the hosts listen on, held while the test bed
    /// that started them lives. A test bed opened from its directory (by
    /// another process) holds none: its addresses were drawn at random
    /// from 65,024 blocks, and a test bed that starts on an address in use
    /// starts again on another block.
    #[serde(skip)]
    _addresses: Option<support::Addresses>,
}

/// Runs a command of the test bed's own set-up, which must succeed.
fn run(cmd: &mut Command) -> Result<()> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(
        output.status.success(),
        "{cmd:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// The `sshd` every host runs.
fn sshd_path() -> Result<PathBuf> {
    prerequisites::needed("sshd")
}

impl Testbed {
    /// Reads the test bed in `dir`.
    pub fn open(dir: &Path) -> Result<Testbed> {
        let path = dir.join(STATE);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("no test bed in `{}`", dir.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    fn save(&self) -> Result<()> {
        fs::write(self.dir.join(STATE), serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .with_context(|| format!("no host `{name}` in the test bed"))
    }

    fn host_dir(&self, name: &str) -> PathBuf {
        self.dir.join("hosts").join(name)
    }

    /// The directory that is `/srv` on a host.
    pub fn srv(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("srv")
    }

    /// The directory that is `/etc/supervisor` on a host (when supervisor
    /// is installed on the machine): `supervisord.conf`, rewritten whenever
    /// the host starts, keeps supervisord's socket, pid file and logs in
    /// it, and includes `conf.d/*.conf`, which a host keeps across
    /// restarts, as a server does.
    pub fn etc_supervisor(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("supervisor")
    }

    /// The directory that is `/var/log/supervisor` on a host (when
    /// supervisor is installed on the machine), where supervisord, as
    /// root, writes the output of landfall's programs.
    pub fn supervisor_log(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("supervisor-log")
    }

    /// The directory that is `~/.local/state/landfall` of the user the
    /// test bed runs as, on a host: the host's own record of the paths
    /// landfall deployed to, as a machine's would be.
    pub fn state(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("state")
    }

    /// The directory that is `/etc/systemd/system` on a systemd host. It
    /// holds the test bed's own units and masks (rewritten whenever the
    /// host starts) and whatever was written there since.
    pub fn etc_systemd_system(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("systemd")
    }

    /// The file a host's login shell reads as `~/.bashrc` (rewritten, plain,
    /// whenever the host starts): a test can change the environment of the
    /// commands run there, e.g. put a directory of its own first in `PATH`.
    pub fn bashrc(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("bashrc")
    }

    /// The ssh client configuration naming every host.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// sshd's own log of a host (sshd runs with `LogLevel DEBUG1`, which
    /// records every session it opens).
    pub fn sshd_log(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("sshd.log")
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("sshd.pid")
    }

    /// The file that holds the pid, on the machine, of a systemd host's
    /// PID 1 (sshd's pid file holds one of the host's PID namespace).
    fn init_pid_file(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("init.pid")
    }

    /// The file that holds the pid of the `unshare` a systemd host was
    /// started with, for [`Testbed::stop`] to wait for in a process that
    /// did not start it.
    fn unshare_pid_file(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("unshare.pid")
    }
}

/// landfall's state directory in the home of the user the test bed runs
/// as (made if missing): each host mounts a directory of its own over it.
fn home_state() -> Result<PathBuf> {
    let dir = home().join(".local/state/landfall");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The home directory of the user the hosts are logged in as: the
/// current one.
fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}
