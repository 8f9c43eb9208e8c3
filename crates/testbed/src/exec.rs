//! Running commands on a host: over ssh, as landfall does, or inside the
//! host's namespaces with `nsenter`, for tests to look at a host and for
//! the test bed to ask a host's systemd or supervisord; each within a
//! deadline.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::{Init, PATH, Testbed, home, support};

impl Testbed {
    /// Runs `command` on `host` over ssh with `input` on its standard
    /// input, and returns its output; ssh is killed, and the call fails,
    /// if it has not ended within `deadline`.
    pub fn ssh(
        &self,
        host: &str,
        command: &str,
        input: &str,
        deadline: Duration,
    ) -> Result<Output> {
        support::output_with_input(
            Command::new("ssh")
                .arg("-F")
                .arg(self.ssh_config())
                .args([host, command]),
            input.as_bytes(),
            deadline,
        )
        .with_context(|| format!("`ssh {host} {command}`"))
    }

    /// Runs a command inside a host (in its mount namespace; in all of a
    /// systemd host's but its cgroup's), from `/`, with a plain `PATH` and
    /// `HOME`, and returns what it printed and how it ended, whatever that
    /// was. A command that has not ended after 30 s is killed, with every
    /// process of its process group, and is an error.
    pub fn exec_in(&self, name: &str, args: &[&str]) -> Result<Output> {
        self.exec_in_within(name, args, Duration::from_secs(30))
    }

    pub(crate) fn exec_in_within(
        &self,
        name: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output> {
        ensure!(!args.is_empty(), "no command to run on `{name}`");
        let pid = self
            .pid(name)
            .with_context(|| format!("host `{name}` does not run"))?;
        let mut nsenter = Command::new("nsenter");
        nsenter
            .arg(format!("--target={pid}"))
            .args(["--mount", "--wd=/"]);
        if self.init == Init::Systemd {
            // `--pid` too: the command sees the host's processes, numbered
            // as the host numbers them, as a command run over ssh does.
            nsenter.args(["--pid", "--uts", "--ipc"]);
        }
        let child = nsenter
            .arg("--")
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", home())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run `{}` on `{name}` (is nsenter installed?)",
                    args.join(" ")
                )
            })?;
        let group = child.id();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        let Ok(output) = receiver.recv_timeout(timeout) else {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
            bail!(
                "`{}` on `{name}` did not end within {} s",
                args.join(" "),
                timeout.as_secs()
            );
        };
        output.with_context(|| format!("cannot run `{}` on `{name}`", args.join(" ")))
    }
}
