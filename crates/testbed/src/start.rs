//! Starting a host: what every host gets afresh (a plain `~/.bashrc`, its
//! `/etc/supervisor`, no log of an earlier sshd), then, for a plain host,
//! its sshd as the first process of a mount namespace of its own, where
//! the host's directories are bind-mounted over `/srv`, `/etc/supervisor`,
//! `/var/log/supervisor`, `~/.bashrc` and landfall's state directory.
//! Systemd hosts start in `systemd.rs`.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{Init, Testbed, home, home_state, sshd_path};

impl Testbed {
    /// Starts one host (its sshd in a new mount namespace with its own
    /// `/srv`, or its systemd, which starts its sshd) and waits until sshd
    /// accepts connections. Whatever started of a host that fails to is
    /// stopped.
    pub fn start(&self, name: &str) -> Result<()> {
        let host = self.host(name)?;
        let address: SocketAddr = format!("{}:{}", host.address, host.port).parse()?;
        // sshd appends its log with `-E`.
        let _ = fs::remove_file(self.sshd_log(name));
        let _ = fs::remove_file(self.pid_file(name));
        // A host's login shell reads a plain `~/.bashrc`, as on a fresh
        // server, not the operator's: bash reads it for every command run
        // over ssh, and a workstation's can take a tenth of a second.
        fs::write(
            self.bashrc(name),
            "# ~/.bashrc of a landfall test bed host\n",
        )?;
        self.write_supervisor(name)?;
        let started = match self.init {
            Init::Plain => self.start_plain(name, address),
            Init::Systemd => self.start_systemd(name, address),
        };
        if started.is_err() {
            let _ = self.stop(name);
        }
        started
    }

    fn start_plain(&self, name: &str, address: SocketAddr) -> Result<()> {
        let dir = self.host_dir(name);
        // sshd's own stdout and stderr (only written when it fails to
        // start) go to a second file.
        let log = fs::File::create(dir.join("sshd.out"))?;
        // `unshare` execs `sh`, which mounts and execs sshd: the pid that
        // sshd writes is the namespace's first process.
        let script = r#"mount --bind "$1" /srv &&
            { [ ! -f "$5" ] || mount --bind "$6" "$5"; } &&
            { [ ! -d /etc/supervisor ] || mount --bind "$7" /etc/supervisor; } &&
            { [ ! -d /var/log/supervisor ] || mount --bind "$8" /var/log/supervisor; } &&
            mount --bind "$9" "${10}" &&
            exec "$2" -D -E "$4" -f "$3""#;
        let sshd = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(dir.join("srv"))
            .arg(sshd_path()?)
            .arg(dir.join("sshd_config"))
            .arg(self.sshd_log(name))
            .arg(home().join(".bashrc"))
            .arg(self.bashrc(name))
            .arg(self.etc_supervisor(name))
            .arg(self.supervisor_log(name))
            .arg(self.state(name))
            .arg(home_state()?)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so that it outlives `cargo xtask`.
            .process_group(0)
            .spawn()
            .context(
                "cannot start sshd under `unshare` (is util-linux installed, and are we root?)",
            )?;
        self.children_lock().insert(name.to_string(), sshd);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Listening is not enough: another test bed's sshd could hold the
        // same port (ports are picked before they are bound). Ours writes
        // its pid file once it listens.
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err()
            || !self.running().iter().any(|h| h == name)
        {
            if Instant::now() > deadline || self.child_exited(name) {
                bail!(
                    "sshd of `{name}` did not start listening on {address}:\n{}",
                    self.logs(name)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// What a host wrote of its start: the output of `unshare`, the shell
    /// and sshd or systemd, then sshd's log.
    pub(crate) fn logs(&self, name: &str) -> String {
        let out = match self.init {
            Init::Plain => "sshd.out",
            Init::Systemd => "init.out",
        };
        fs::read_to_string(self.host_dir(name).join(out)).unwrap_or_default()
            + &fs::read_to_string(self.sshd_log(name)).unwrap_or_default()
    }
}
