//! The ssh master connections of warm runs: where each side keeps its
//! sockets, which master each host has (`ssh -O check`), and closing them
//! (`ssh -O exit`), for cold runs and when the benchmark ends.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use landfall_testbed::Testbed;

use super::{on_threads, output};

/// Whose master connections: landfall's or the baseline's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Landfall,
    Baseline,
}

/// The master connections both sides keep for their warm runs: landfall's
/// in `landfall-ssh/` of the `XDG_RUNTIME_DIR` the benchmark gives it, the
/// baseline's in a directory of its own. Every master still open is
/// closed when the benchmark ends, however it ends.
pub(crate) struct Masters {
    /// landfall's `XDG_RUNTIME_DIR`, private.
    pub(crate) runtime_dir: PathBuf,
    /// Where the baseline's sockets are.
    pub(crate) baseline_dir: PathBuf,
    ssh_config: PathBuf,
    /// The directory was made for this run, outside `target/bench/`, and
    /// goes with it.
    temporary: bool,
}

impl Masters {
    pub(crate) fn new(bench_dir: &Path, bed: &Testbed) -> Result<Masters> {
        use std::os::unix::fs::DirBuilderExt as _;
        // landfall keeps its sockets under `XDG_RUNTIME_DIR` only when the
        // path leaves room for theirs (34 bytes at most, of a socket
        // path's 108: `short_and_plain` in its ssh transport): else it
        // uses `/tmp/landfall-ssh-UID`, which other runs on this machine
        // share. A checkout too deep for that gets a directory of its own
        // in /tmp.
        let mut runtime_dir = bench_dir.join("xdg");
        let temporary = runtime_dir.as_os_str().len() > 34;
        if temporary {
            runtime_dir = PathBuf::from(format!("/tmp/landfall-bench-{}", std::process::id()));
        }
        let baseline_dir = bench_dir.join("ctl");
        for dir in [&runtime_dir, &baseline_dir] {
            let _ = fs::remove_dir_all(dir);
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot make `{}`", dir.display()))?;
        }
        Ok(Masters {
            runtime_dir,
            baseline_dir,
            ssh_config: bed.ssh_config(),
            temporary,
        })
    }

    /// Where landfall keeps its masters' sockets.
    pub(crate) fn landfall_sockets(&self) -> PathBuf {
        self.runtime_dir.join("landfall-ssh")
    }

    /// Where the sockets of `tool`'s masters are.
    fn sockets(&self, tool: Tool) -> PathBuf {
        match tool {
            Tool::Landfall => self.landfall_sockets(),
            Tool::Baseline => self.baseline_dir.clone(),
        }
    }

    /// Closes every master of `tool` that is open, as `ssh -O exit` on
    /// each socket.
    pub(crate) fn close(&self, tool: Tool) -> Result<()> {
        let Ok(entries) = fs::read_dir(self.sockets(tool)) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let mut control_path = std::ffi::OsString::from("ControlPath=");
            control_path.push(entry.path());
            // The socket names the master; the host is only a word ssh
            // wants on its command line.
            output(
                Command::new("ssh")
                    .args(["-F", "/dev/null", "-o"])
                    .arg(control_path)
                    .args(["-O", "exit", "master"]),
            )?;
            // A socket whose master was gone already stays behind.
            let _ = fs::remove_file(entry.path());
        }
        Ok(())
    }

    /// The process id of each host's master of `tool`, as `ssh -O check`
    /// says; `None` for a host that has no master that answers. The
    /// baseline's sockets are named by ssh's `%C`; landfall names its own,
    /// so each of its sockets is asked, and its master's command line says
    /// which host it is for.
    pub(crate) fn pids(&self, tool: Tool, hosts: &[String]) -> Result<Vec<Option<u32>>> {
        let check = |control_path: &std::path::Path, host: &str| -> Result<Option<u32>> {
            let mut option = std::ffi::OsString::from("ControlPath=");
            option.push(control_path);
            let out = output(
                Command::new("ssh")
                    .arg("-F")
                    .arg(&self.ssh_config)
                    .arg("-o")
                    .arg(option)
                    .args(["-O", "check", host]),
            )?;
            // "Master running (pid=1234)".
            let pid = out
                .stderr
                .split_once("(pid=")
                .and_then(|(_, rest)| rest.split_once(')'))
                .and_then(|(pid, _)| pid.parse().ok());
            Ok(pid.filter(|_| out.status.success()))
        };
        match tool {
            Tool::Baseline => {
                let control_path = self.sockets(tool).join("%C");
                on_threads(hosts, |host| check(&control_path, host))
            }
            Tool::Landfall => {
                let sockets: Vec<PathBuf> = fs::read_dir(self.sockets(tool))
                    .map(|entries| entries.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                let masters = on_threads(&sockets, |socket| {
                    let Some(pid) = check(socket, "master")? else {
                        return Ok(None);
                    };
                    // The master was started as `ssh … HOST`.
                    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let host = cmdline
                        .split(|&b| b == 0)
                        .rfind(|word| !word.is_empty())
                        .map(|word| String::from_utf8_lossy(word).into_owned());
                    Ok(host.map(|host| (host, pid)))
                })?;
                let by_host: BTreeMap<String, u32> = masters.into_iter().flatten().collect();
                Ok(hosts.iter().map(|h| by_host.get(h).copied()).collect())
            }
        }
    }
}

impl Drop for Masters {
    fn drop(&mut self) {
        let _ = self.close(Tool::Landfall);
        let _ = self.close(Tool::Baseline);
        if self.temporary {
            let _ = fs::remove_dir_all(&self.runtime_dir);
        }
    }
}
