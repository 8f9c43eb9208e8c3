//! Faults for tests to inject into a host: a full disk (a small tmpfs
//! over its `/srv`), and a hang (every process of its namespaces stopped
//! with SIGSTOP, until it is thawed).

use std::fs;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{Testbed, run};

impl Testbed {
    /// Restarts a host with a `/srv` of its own that holds at most `bytes`
    /// (a tmpfs, empty), to see what a full disk does. [`Testbed::down`]
    /// unmounts it.
    pub fn small_disk(&self, name: &str, bytes: u64) -> Result<()> {
        self.stop(name)?;
        let srv = self.srv(name);
        fs::create_dir_all(&srv)?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=755"))
            .arg("tmpfs")
            .arg(&srv))?;
        fs::write(self.host_dir(name).join("srv.tmpfs"), "")?;
        self.start(name)
    }

    /// Freezes a host (`thaw` undoes it): every process of its namespace
    /// is stopped with SIGSTOP, as a host that hangs is, keeping its
    /// connections open but answering nothing.
    pub fn freeze(&self, name: &str) -> Result<()> {
        self.signal_all(name, "-STOP")
    }

    /// Lets a frozen host go on.
    pub fn thaw(&self, name: &str) -> Result<()> {
        self.signal_all(name, "-CONT")
    }

    fn signal_all(&self, name: &str, signal: &str) -> Result<()> {
        let Some(pid) = self.pid(name) else {
            bail!("host `{name}` does not run");
        };
        let namespaces = self
            .namespaces(pid)
            .with_context(|| format!("the namespace of `{name}`"))?;
        // A process may end before its signal (it needs none then), and
        // one may start while the others are signalled: the members are
        // listed again until no new one appears.
        let mut signalled = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let fresh: Vec<u32> = self
                .members(pid, &namespaces)
                .into_iter()
                .filter(|member| !signalled.contains(member))
                .collect();
            if fresh.is_empty() {
                return Ok(());
            }
            Command::new("kill")
                .arg(signal)
                .args(fresh.iter().map(ToString::to_string))
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            signalled.extend(fresh);
        }
        bail!("the processes of `{name}` kept changing while they were signalled");
    }
}
