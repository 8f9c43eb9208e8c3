//! Which processes make a host: the process this process started it with
//! (kept to be reaped), the pid that stands for a running host (its
//! sshd's, or its systemd's), which hosts run, and every process in a
//! host's namespaces, read from `/proc`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;

use crate::cgroups::in_cgroup;
use crate::{Init, Testbed};

impl Testbed {
    /// The processes this process started hosts with, by host.
    pub(crate) fn children_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Child>> {
        self.children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the process this process started host `name` with has
    /// ended (or is not this process's to know).
    pub(crate) fn child_exited(&self, name: &str) -> bool {
        self.children_lock()
            .get_mut(name)
            .is_none_or(|child| !matches!(child.try_wait(), Ok(None)))
    }

    /// The pid that stands for a running host: its sshd's for a plain
    /// host, its PID 1's (as the machine numbers it) for a systemd host. A
    /// pid file can outlive its process, and the pid be another process's
    /// by now: it counts only while that process's command line names
    /// this host's `sshd_config`, or, for a systemd host, while it is in
    /// this host's cgroup.
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        let file = match self.init {
            Init::Plain => self.pid_file(name),
            Init::Systemd => self.init_pid_file(name),
        };
        let pid: u32 = fs::read_to_string(file).ok()?.trim().parse().ok()?;
        match self.init {
            Init::Plain => {
                let config = self.host_dir(name).join("sshd_config");
                let config = config.as_os_str().as_encoded_bytes();
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                cmdline
                    .windows(config.len())
                    .any(|w| w == config)
                    .then_some(pid)
            }
            Init::Systemd => {
                let cgroup = self.cgroup(name)?;
                let cgroup = format!("/{}", cgroup.file_name()?.to_string_lossy());
                in_cgroup(pid, &cgroup).then_some(pid)
            }
        }
    }

    /// The names of the hosts that run: whose sshd runs, for plain hosts;
    /// whose systemd runs, for systemd hosts.
    pub fn running(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| self.pid(&h.name).is_some())
            .map(|h| h.name.clone())
            .collect()
    }

    /// The namespaces of a running host, by the pid that stands for it.
    pub(crate) fn namespaces(&self, pid: u32) -> Option<Namespaces> {
        Some(Namespaces {
            mount: fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()?,
            pid: match self.init {
                Init::Plain => None,
                Init::Systemd => Some(fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?),
            },
        })
    }

    /// The processes in the namespaces of the host that `pid` stands for.
    /// The `unshare` that started a systemd host is in its mount namespace
    /// too, but is not one of them: it is left to reap the host's PID 1,
    /// which, orphaned, would wait for the machine's init to.
    pub(crate) fn members(&self, pid: u32, namespaces: &Namespaces) -> Vec<u32> {
        let mut members = namespaces.processes();
        if self.init == Init::Systemd {
            let parent = parent_of(pid);
            members.retain(|member| Some(*member) != parent);
        }
        members
    }

    /// The pids, as the machine numbers them, of every process of a host:
    /// those in its mount namespace (processes entered into it, e.g. by
    /// [`Testbed::exec_in`], too) and, on a systemd host, in its PID
    /// namespace (services of its systemd with a mount namespace of their
    /// own, too). None when the host does not run.
    pub fn processes(&self, name: &str) -> Vec<u32> {
        self.pid(name)
            .and_then(|pid| Some(self.members(pid, &self.namespaces(pid)?)))
            .unwrap_or_default()
    }
}

/// The namespaces that make a host: its mount namespace, and a systemd
/// host's PID namespace.
pub(crate) struct Namespaces {
    pub(crate) mount: PathBuf,
    pid: Option<PathBuf>,
}

impl Namespaces {
    /// The processes in them.
    fn processes(&self) -> Vec<u32> {
        all_processes()
            .into_iter()
            .filter(|pid| self.contains(*pid))
            .collect()
    }

    /// Whether process `pid` lives, in one of them.
    pub(crate) fn contains(&self, pid: u32) -> bool {
        let has = |kind: &str, namespace: &Path| {
            fs::read_link(format!("/proc/{pid}/ns/{kind}")).is_ok_and(|ns| ns == namespace)
        };
        has("mnt", &self.mount) || self.pid.as_ref().is_some_and(|ns| has("pid", ns))
    }
}

/// The (first) child of process `pid`.
pub(crate) fn child_of(pid: u32) -> Option<u32> {
    if let Ok(children) = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return children.split_whitespace().next()?.parse().ok();
    }
    all_processes()
        .into_iter()
        .find(|child| parent_of(*child) == Some(pid))
}

/// The parent of process `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`, where comm may hold anything.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every process of the machine.
fn all_processes() -> Vec<u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}
