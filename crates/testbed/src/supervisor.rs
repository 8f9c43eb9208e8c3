//! Each host's supervisord: the `/etc/supervisor` a host keeps of its own
//! (a `supervisord.conf` that keeps socket, pid file and logs inside it),
//! and starting supervisord inside a host as Debian runs it.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::{Init, Testbed, prerequisites};

/// supervisord's configuration, as the hosts see it.
const SUPERVISORD_CONF: &str = "/etc/supervisor/supervisord.conf";

impl Testbed {
    /// Writes a host's `/etc/supervisor`: a `supervisord.conf` that keeps
    /// everything in that directory (so that a host's supervisord and
    /// `supervisorctl` find each other, and no other host's), an empty
    /// `conf.d/` the first time, and no socket or pid file of a supervisord
    /// that was killed.
    pub(crate) fn write_supervisor(&self, name: &str) -> Result<()> {
        let dir = self.etc_supervisor(name);
        for sub in ["conf.d", "run", "log"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("the /etc/supervisor of `{name}`"))?;
        }
        fs::create_dir_all(self.supervisor_log(name))
            .with_context(|| format!("the /var/log/supervisor of `{name}`"))?;
        fs::create_dir_all(self.state(name))
            .with_context(|| format!("the landfall state directory of `{name}`"))?;
        for stale in ["run/supervisor.sock", "run/supervisord.pid"] {
            let _ = fs::remove_file(dir.join(stale));
        }
        fs::write(
            dir.join("supervisord.conf"),
            format!(
                "; supervisord of test bed host {name}: /etc/supervisor is the host's own\n\
                 ; directory, and holds supervisord's socket, pid file and logs.\n\
                 [unix_http_server]\n\
                 file=/etc/supervisor/run/supervisor.sock\n\
                 chmod=0700\n\
                 \n\
                 [supervisord]\n\
                 logfile=/etc/supervisor/log/supervisord.log\n\
                 pidfile=/etc/supervisor/run/supervisord.pid\n\
                 childlogdir=/etc/supervisor/log\n\
                 \n\
                 [rpcinterface:supervisor]\n\
                 supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
                 \n\
                 [supervisorctl]\n\
                 serverurl=unix:///etc/supervisor/run/supervisor.sock\n\
                 \n\
                 [include]\n\
                 files = /etc/supervisor/conf.d/*.conf\n"
            ),
        )
        .with_context(|| format!("the supervisord.conf of `{name}`"))?;
        Ok(())
    }

    /// Starts supervisord on a host, the way Debian runs it (`supervisord
    /// -c /etc/supervisor/supervisord.conf`; on a systemd host, `systemctl
    /// start supervisor`), and waits until `supervisorctl status` answers
    /// there. A supervisord that runs already is left alone. It runs inside
    /// the host: stopping the host stops it and the programs it started.
    pub fn start_supervisord(&self, name: &str) -> Result<()> {
        for tool in ["supervisord", "supervisorctl"] {
            prerequisites::needed(tool)?;
        }
        ensure!(
            Path::new("/etc/supervisor").is_dir(),
            "supervisor is not installed (apt-get install supervisor): \
             the hosts have no /etc/supervisor to run supervisord from"
        );
        if self.supervisorctl_answers(name, Duration::from_secs(30))? {
            return Ok(());
        }
        let args: &[&str] = match self.init {
            // It daemonizes: this ends once it listens on its socket.
            Init::Plain => &["supervisord", "-c", SUPERVISORD_CONF],
            Init::Systemd => &["systemctl", "start", "supervisor.service"],
        };
        let output = self.exec_in(name, args)?;
        ensure!(
            output.status.success(),
            "cannot start supervisord on `{name}` ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .supervisorctl_answers(name, deadline.saturating_duration_since(Instant::now()))?
        {
            if Instant::now() > deadline {
                let log = fs::read_to_string(self.etc_supervisor(name).join("log/supervisord.log"))
                    .unwrap_or_default();
                bail!("supervisord of `{name}` did not answer within 10 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Whether `supervisorctl status` on a host reaches its supervisord:
    /// it exits 0, or 3 when some program does not run; 4 when there is no
    /// supervisord to ask.
    fn supervisorctl_answers(&self, name: &str, timeout: Duration) -> Result<bool> {
        let output = self.exec_in_within(name, &["supervisorctl", "status"], timeout)?;
        Ok(matches!(output.status.code(), Some(0 | 3)))
    }
}
