//! Stopping hosts: every process in a host's namespaces killed (so the
//! services its deploys started go with it), the process that started it
//! reaped, its pid files and cgroup removed; and the whole test bed down,
//! with any small disk unmounted.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cgroups::{in_cgroup, remove_cgroup};
use crate::{Init, Testbed, run};

impl Testbed {
    /// Stops one host: its sshd and every process in its mount namespace
    /// (services its deploys started), or, for a systemd host, its systemd
    /// and with it everything in its PID namespace; then removes the
    /// cgroup directories a systemd host made.
    pub fn stop(&self, name: &str) -> Result<()> {
        let killed = match self.pid(name) {
            Some(pid) => self.kill_namespaces(name, pid)?,
            None => false,
        };
        // Once its namespaces are killed, the process a host was started
        // with ends by itself; one that did not start is killed.
        self.reap(
            name,
            if killed {
                Duration::from_secs(5)
            } else {
                Duration::ZERO
            },
        );
        let _ = fs::remove_file(self.pid_file(name));
        let _ = fs::remove_file(self.init_pid_file(name));
        let _ = fs::remove_file(self.unshare_pid_file(name));
        if let Some(cgroup) = self.cgroup(name) {
            // A cgroup can be removed only once the last of its processes
            // has been reaped, which the machine's init may not have done
            // yet.
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Err(err) = remove_cgroup(&cgroup) {
                if Instant::now() > deadline {
                    return Err(err).with_context(|| {
                        format!("cannot remove `{name}`'s cgroup `{}`", cgroup.display())
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Kills the processes of the host that `pid` stands for, and says
    /// whether there were any.
    fn kill_namespaces(&self, name: &str, pid: u32) -> Result<bool> {
        let Some(namespaces) = self.namespaces(pid) else {
            return Ok(false);
        };
        let own = fs::read_link("/proc/self/ns/mnt").ok();
        if own.as_ref() == Some(&namespaces.mount) {
            bail!("`{name}` (pid {pid}) is not in a namespace of its own");
        }
        // Only the processes found now are signalled: once they are all
        // gone the namespace is freed, and its number can be given to the
        // namespace of a host another test bed is starting.
        let mut members = self.members(pid, &namespaces);
        // systemd takes SIGTERM for "re-execute yourself": a systemd host's
        // processes are killed, and with its PID 1 whatever else its PID
        // namespace holds.
        let signals: &[&str] = match self.init {
            Init::Plain => &["-TERM", "-KILL"],
            Init::Systemd => &["-KILL"],
        };
        for signal in signals {
            members.retain(|pid| namespaces.contains(*pid));
            if members.is_empty() {
                break;
            }
            let mut kill = Command::new("kill");
            kill.arg(signal)
                .args(members.iter().map(ToString::to_string));
            let _ = kill.stdin(Stdio::null()).stderr(Stdio::null()).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while members.iter().any(|pid| namespaces.contains(*pid)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(true)
    }

    /// Waits up to `patience` for the process a host was started with to
    /// end, then kills it, and reaps it when this process started it. In
    /// another process, does so for a systemd host's `unshare`, which sits
    /// in the host's cgroup.
    fn reap(&self, name: &str, patience: Duration) {
        let deadline = Instant::now() + patience;
        if let Some(mut child) = self.children_lock().remove(name) {
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        let Some(cgroup) = self.cgroup(name) else {
            return;
        };
        let cgroup = format!(
            "/{}",
            cgroup.file_name().unwrap_or_default().to_string_lossy()
        );
        let Some(unshare) = fs::read_to_string(self.unshare_pid_file(name))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
        else {
            return;
        };
        while in_cgroup(unshare, &cgroup) {
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .args(["-KILL", &unshare.to_string()])
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops every host (and unmounts a small disk given to one).
    pub fn down(&self) -> Result<()> {
        for host in &self.hosts {
            self.stop(&host.name)?;
            let marker = self.host_dir(&host.name).join("srv.tmpfs");
            if marker.exists() {
                run(Command::new("umount").arg(self.srv(&host.name)))?;
                fs::remove_file(marker)?;
            }
        }
        Ok(())
    }
}
