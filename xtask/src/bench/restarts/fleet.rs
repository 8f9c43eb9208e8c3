//! The hosts of a setup: a test bed of three (under systemd, or plain with
//! a supervisord each), or three local hosts, each on an address of a
//! block of loopback addresses this process holds; the environment file
//! that names them; and their stop, with the services local deploys
//! started, once the setup is measured or when the benchmark fails.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use landfall_testbed::support::{Addresses, free_port};
use landfall_testbed::{Init, Testbed};

use super::super::Bed;
use super::{HOSTS, Hosts, remove};

/// The hosts of one setup, with what the deploys need to reach them,
/// held while it is measured.
pub(super) struct Fleet {
    /// Where each host's service listens.
    pub(super) addresses: Vec<SocketAddr>,
    /// `environments/bench.toml`.
    pub(super) environment: String,
    running: Running,
}

/// What keeps a setup's hosts: a test bed, stopped when dropped, or the
/// block of addresses of local hosts and their services, stopped when
/// dropped.
enum Running {
    Testbed(Bed),
    Local(Addresses, LocalServices),
}

impl Fleet {
    pub(super) fn start(dir: &Path, ws: &Path, hosts: Hosts) -> Result<Fleet> {
        let port = free_port();
        let (init, supervisord) = match hosts {
            Hosts::Systemd => (Init::Systemd, false),
            Hosts::Supervisord => (Init::Plain, true),
            Hosts::Local => return Ok(Fleet::local(ws, port)),
        };
        let bed_dir = dir.join("testbed");
        if let Ok(old) = Testbed::open(&bed_dir) {
            old.down()?;
        }
        remove(&bed_dir)?;
        let bed = Bed(Testbed::up_with(&bed_dir, HOSTS, init)?);
        if supervisord {
            for host in &bed.0.hosts {
                bed.0.start_supervisord(&host.name)?;
            }
        }
        // Deployed as root, which is then the account the service runs as.
        let mut environment = format!(
            "[environment]\nssh_config = \"{}\"\njobs = 8\nuser = \"root\"\n",
            bed.0.ssh_config().display()
        );
        let mut addresses = Vec::new();
        for host in &bed.0.hosts {
            let _ = write!(
                environment,
                "\n[hosts.{}]\nroles = [\"web\"]\nvars = {{ bind = \"{}\", port = {port} }}\n",
                host.name, host.address
            );
            addresses.push(SocketAddr::new(host.address.parse()?, port));
        }
        Ok(Fleet {
            addresses,
            environment,
            running: Running::Testbed(bed),
        })
    }

    /// Local hosts `host1`, `host2`, …, each binding an address of a
    /// block this process holds.
    fn local(ws: &Path, port: u16) -> Fleet {
        let block = Addresses::lease();
        let mut environment = String::from("[environment]\njobs = 8\n");
        let mut addresses = Vec::new();
        let mut apps = Vec::new();
        for n in 1..=HOSTS {
            let address = block.host(n);
            let _ = write!(
                environment,
                "\n[hosts.host{n}]\naddress = \"127.0.0.1\"\nroles = [\"web\"]\n\
                 vars = {{ bind = \"{address}\", port = {port} }}\n"
            );
            addresses.push(SocketAddr::new(address.into(), port));
            apps.push(ws.join(format!("target/landfall/local/bench/host{n}/srv/hello/app")));
        }
        Fleet {
            addresses,
            environment,
            running: Running::Local(block, LocalServices { apps }),
        }
    }

    /// Stops the hosts, or the local services, saying what failed.
    pub(super) fn stop(self) -> Result<()> {
        match self.running {
            // The test bed stops as it is dropped.
            Running::Testbed(_bed) => Ok(()),
            Running::Local(_block, services) => services.stop(),
        }
    }
}

/// The services that local deploys started, in the artifact directories
/// `apps`: stopped when dropped.
struct LocalServices {
    apps: Vec<PathBuf>,
}

impl LocalServices {
    /// How long a stopped service has to exit (it finishes what it has
    /// within 10 s) before it is killed.
    const EXIT_DEADLINE: Duration = Duration::from_secs(15);

    /// Stops every service a pid file of `apps` names (the one of a
    /// service without slots and those of both slots), if its process
    /// still runs in that directory: told to stop, then killed if it has
    /// not exited within [`Self::EXIT_DEADLINE`].
    fn stop(mut self) -> Result<()> {
        let apps = std::mem::take(&mut self.apps);
        let mut pids = Vec::new();
        for app in &apps {
            let Ok(real) = fs::canonicalize(app) else {
                continue;
            };
            for file in ["service.pid", "service-blue.pid", "service-green.pid"] {
                let Ok(text) = fs::read_to_string(app.join(".landfall").join(file)) else {
                    continue;
                };
                let Ok(pid) = text.trim().parse::<u32>() else {
                    continue;
                };
                // A pid file outlives its process, and a pid is reused: only
                // a process working in a release of this directory is ours.
                let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
                if cwd.is_ok_and(|cwd| cwd.starts_with(&real)) {
                    pids.push(pid);
                }
            }
        }
        signal("-TERM", &pids);
        let deadline = Instant::now() + Self::EXIT_DEADLINE;
        while pids.iter().any(|&pid| alive(pid)) {
            if Instant::now() > deadline {
                signal("-KILL", &pids);
                bail!("local services {pids:?} did not exit within 15 s of a stop and were killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for LocalServices {
    fn drop(&mut self) {
        if !self.apps.is_empty() {
            let _ = LocalServices {
                apps: std::mem::take(&mut self.apps),
            }
            .stop();
        }
    }
}

fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(ToString::to_string))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether process `pid` runs (is there, and has not ended unreaped).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}
