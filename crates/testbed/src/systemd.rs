//! Systemd hosts: each a small container whose PID 1 is a real systemd,
//! in PID, mount, UTS, IPC and cgroup namespaces of its own. This module
//! writes a host's `/etc/systemd/system` (the target it boots to, its
//! sshd's unit, a `supervisor.service`, and masks for every unit that
//! would touch the machine), spawns the shell that mounts the host's own
//! `/run`, `/dev`, cgroup tree and directories and becomes systemd, and
//! waits until that systemd has booted and its sshd listens.

use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cgroups::remove_cgroup;
use crate::processes::child_of;
use crate::{PATH, Testbed, home, home_state, prerequisites, sshd_path};

/// The unit a systemd host boots to: `basic.target` and its sshd, not the
/// machine's own units (its `multi-user.target` would start its
/// database, its ssh, …).
const TARGET: &str = "landfall-testbed.target";

/// The unit that runs a systemd host's sshd.
const SSHD_UNIT: &str = "landfall-testbed-sshd.service";

/// Units a systemd host must not start, on top of what the machine's
/// `sysinit.target`, `sockets.target` and `timers.target` want (see
/// [`masked_units`]): they would change the machine (`systemd-tmpfiles-setup`
/// empties the machine's `/tmp`, `systemd-sysctl` and `systemd-binfmt` set
/// its kernel's settings, the mount units mount over its `/sys`), or need
/// what a host has not (udev, D-Bus, a console).
const MASKED: &[&str] = &[
    "systemd-remount-fs.service",
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-clean.service",
    "systemd-tmpfiles-clean.timer",
    "systemd-sysctl.service",
    "systemd-sysusers.service",
    "systemd-binfmt.service",
    "systemd-modules-load.service",
    "kmod-static-nodes.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "systemd-journald-audit.socket",
    "systemd-journal-flush.service",
    "systemd-initctl.socket",
    "systemd-random-seed.service",
    "systemd-machine-id-commit.service",
    "systemd-firstboot.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "ldconfig.service",
    "dbus.socket",
    "dbus.service",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-hwdb-update.service",
    "systemd-logind.service",
    "systemd-timesyncd.service",
    "systemd-resolved.service",
    "systemd-networkd.socket",
    "systemd-networkd.service",
    "getty.target",
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "container-getty@.service",
];

/// The units of the machine's `*.target.wants` a systemd host keeps:
/// journald, for `journalctl`.
const KEPT: &[&str] = &[
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
];

/// Run by `sh` as PID 1 of a systemd host's new namespaces (from the
/// host's `init.sh`), then becomes systemd. systemd mounts, creates and
/// writes files wherever it boots: given the machine's, it remounted the
/// machine's `/sys/fs/cgroup` read-only and created its own directories
/// there, and made `/dev/log` and `/dev/initctl` links into its `/run`.
/// So the namespace gets a
/// `/run`, a `/dev` and a cgroup tree of its own (the cgroup2 hierarchy
/// seen from its cgroup namespace, whose root is the host's cgroup), `/sys`
/// and `/proc/sys` read-only (systemd sets kernel settings at boot), its
/// own `/etc/systemd/system` (the units dir, with the masks), no
/// generators (they read the machine's fstab, crypttab, init scripts…), a
/// journal directory, machine id and host name of its own, then the binds
/// every host has (`/srv`, `/etc/supervisor`, `~/.bashrc`).
/// `container=unshare` tells systemd it is not the machine's init, which
/// keeps it from touching the rest (its shutdown would otherwise remount
/// the machine's `/` read-only).
const SYSTEMD_HOST: &str = r#"# PID 1 of a landfall test bed host, until it execs systemd.
set -e
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
umount -R /sys/fs/cgroup
mount --bind /sys /sys
mount -o remount,bind,ro /sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
echo "$LFTB_NAME" > /proc/sys/kernel/hostname
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount --bind "$LFTB_UNITS" /etc/systemd/system
[ ! -d /usr/lib/systemd/system-generators ] ||
    mount --bind "$LFTB_EMPTY" /usr/lib/systemd/system-generators
[ ! -d /var/log/journal ] || mount --bind "$LFTB_JOURNAL" /var/log/journal
mount --bind "$LFTB_MACHINE_ID" /etc/machine-id
[ ! -f /etc/hostname ] || mount --bind "$LFTB_HOSTNAME" /etc/hostname
mount --bind "$LFTB_SRV" /srv
[ ! -d /etc/supervisor ] || mount --bind "$LFTB_SUPERVISOR" /etc/supervisor
[ ! -d /var/log/supervisor ] || mount --bind "$LFTB_SUPERVISOR_LOG" /var/log/supervisor
[ ! -f "$LFTB_HOME_BASHRC" ] || mount --bind "$LFTB_BASHRC" "$LFTB_HOME_BASHRC"
mount --bind "$LFTB_STATE" "$LFTB_HOME_STATE"
exec env -i container=unshare PATH="$LFTB_PATH" "$LFTB_SYSTEMD" --system \
    --unit="$LFTB_TARGET" --show-status=no --log-target=journal"#;

pub(crate) fn systemd_path() -> Result<PathBuf> {
    ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .map_or_else(|| prerequisites::needed("systemd"), Ok)
}

impl Testbed {
    /// Starts a systemd host (see [`Testbed::spawn_systemd`]) and waits
    /// until its boot is over and its sshd listens.
    pub(crate) fn start_systemd(&self, name: &str, address: SocketAddr) -> Result<()> {
        let unshare_pid = self.spawn_systemd(name)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let wait = |what: &str| -> Result<()> {
            if self.child_exited(name) {
                bail!(
                    "the systemd of `{name}` ended before {what}:\n{}",
                    self.logs(name)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the systemd of `{name}` did not get to {what} in 10 s:\n{}",
                    self.logs(name)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
            Ok(())
        };
        // `unshare` forks the namespace's PID 1: that is the pid that
        // stands for the host.
        let init = loop {
            if let Some(pid) = child_of(unshare_pid) {
                break pid;
            }
            wait("fork its PID 1")?;
        };
        fs::write(self.init_pid_file(name), format!("{init}\n"))?;
        let private = PathBuf::from(format!("/proc/{init}/root/run/systemd/private"));
        while !private.exists() {
            wait("listen on its private socket")?;
        }
        let output = self.exec_in_within(
            name,
            &["systemctl", "is-system-running", "--wait"],
            deadline.saturating_duration_since(Instant::now()),
        )?;
        let state = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if state != "running" {
            let failed = self
                .exec_in(name, &["systemctl", "--failed", "--no-legend", "--plain"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            bail!(
                "the systemd of `{name}` is `{state}` after booting, not `running`; \
                 failed units:\n{failed}\n{}",
                self.logs(name)
            );
        }
        // Its sshd writes its pid file once it listens (another test
        // bed's could hold the port).
        loop {
            let written =
                fs::read_to_string(self.pid_file(name)).is_ok_and(|pid| !pid.trim().is_empty());
            if written && TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            // What sshd logs (with no `fatal:` in a log of `-E`) before it
            // exits when another test bed holds the port.
            let log = fs::read_to_string(self.sshd_log(name)).unwrap_or_default();
            if log.contains("Cannot bind any address") {
                bail!("sshd of `{name}` did not start listening on {address}:\n{log}");
            }
            wait(&format!("start sshd listening on {address}"))?;
        }
    }

    /// Spawns a systemd host and returns the pid of its `unshare`: from a
    /// shell first moved into the host's own cgroup, `unshare` makes its
    /// PID, mount, UTS, IPC and cgroup namespaces and forks
    /// [`SYSTEMD_HOST`] as their PID 1, which becomes systemd, which boots
    /// to [`TARGET`] and starts sshd.
    fn spawn_systemd(&self, name: &str) -> Result<u32> {
        let dir = self.host_dir(name);
        let cgroup = self
            .cgroup(name)
            .context("this machine has no cgroup v2 hierarchy, which systemd hosts need")?;
        let _ = fs::remove_file(self.init_pid_file(name));
        let _ = fs::remove_file(self.unshare_pid_file(name));
        self.write_units(name)?;
        let (empty, journal) = (dir.join("generators"), dir.join("journal"));
        fs::create_dir_all(&empty)?;
        fs::create_dir_all(&journal)?;
        let machine_id = dir.join("machine-id");
        if !machine_id.exists() {
            fs::write(&machine_id, format!("{}\n", random_id()?))?;
        }
        let hostname = dir.join("hostname");
        fs::write(&hostname, format!("{name}\n"))?;
        // A cgroup left by a host that was not stopped (its test was
        // killed) goes, if nothing runs in it any more.
        remove_cgroup(&cgroup)
            .with_context(|| format!("`{name}`'s cgroup `{}` is in use", cgroup.display()))?;
        fs::create_dir(&cgroup)
            .with_context(|| format!("cannot make `{name}`'s cgroup `{}`", cgroup.display()))?;
        // systemd's own output before its journal runs, and the script's.
        let log = fs::File::create(dir.join("init.out"))?;
        let enter = r#"echo $$ > "$1/cgroup.procs" && shift &&
            exec unshare --pid --mount --uts --ipc --cgroup --fork --kill-child \
                --mount-proc --propagation private -- "$@""#;
        // In a file, for `ps` to show which host a process starts, and
        // anyone to read what it ran.
        let script = dir.join("init.sh");
        fs::write(&script, SYSTEMD_HOST)?;
        let unshare = Command::new("sh")
            .args(["-c", enter, "sh"])
            .arg(&cgroup)
            .arg("sh")
            .arg(&script)
            .env("LFTB_NAME", name)
            .env("LFTB_UNITS", self.etc_systemd_system(name))
            .env("LFTB_EMPTY", &empty)
            .env("LFTB_JOURNAL", &journal)
            .env("LFTB_MACHINE_ID", &machine_id)
            .env("LFTB_HOSTNAME", &hostname)
            .env("LFTB_SRV", self.srv(name))
            .env("LFTB_SUPERVISOR", self.etc_supervisor(name))
            .env("LFTB_SUPERVISOR_LOG", self.supervisor_log(name))
            .env("LFTB_HOME_BASHRC", home().join(".bashrc"))
            .env("LFTB_HOME_STATE", home_state()?)
            .env("LFTB_STATE", self.state(name))
            .env("LFTB_BASHRC", self.bashrc(name))
            .env("LFTB_PATH", PATH)
            .env("LFTB_SYSTEMD", systemd_path()?)
            .env("LFTB_TARGET", TARGET)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so that it outlives `cargo xtask`.
            .process_group(0)
            .spawn()
            .context(
                "cannot start systemd under `unshare` (is util-linux installed, and are we root?)",
            )?;
        let unshare_pid = unshare.id();
        self.children_lock().insert(name.to_string(), unshare);
        fs::write(self.unshare_pid_file(name), format!("{unshare_pid}\n"))?;
        Ok(unshare_pid)
    }

    /// Writes a systemd host's `/etc/systemd/system`: masks for the units
    /// that must not run there (made once: a test may replace them), the
    /// target it boots to, its sshd and a `supervisor.service` like
    /// Debian's, which [`Testbed::start_supervisord`] starts.
    fn write_units(&self, name: &str) -> Result<()> {
        let host = self.host(name)?;
        let units = self.etc_systemd_system(name);
        fs::create_dir_all(&units)?;
        for unit in masked_units() {
            let link = units.join(&unit);
            if fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink("/dev/null", &link)
                    .with_context(|| format!("cannot mask `{unit}` on `{name}`"))?;
            }
        }
        fs::write(
            units.join(TARGET),
            format!(
                "[Unit]\n\
                 Description=Landfall test bed host {name}\n\
                 Requires=basic.target\n\
                 After=basic.target\n\
                 Wants={SSHD_UNIT}\n\
                 AllowIsolate=yes\n"
            ),
        )?;
        let dir = self.host_dir(name);
        fs::write(
            units.join(SSHD_UNIT),
            format!(
                "[Unit]\n\
                 Description=OpenSSH server of test bed host {name} on {address}:{port}\n\
                 \n\
                 [Service]\n\
                 ExecStart={sshd} -D -E {log} -f {config}\n\
                 RuntimeDirectory=sshd\n\
                 RuntimeDirectoryMode=0755\n\
                 KillMode=process\n",
                address = host.address,
                port = host.port,
                sshd = unit_quote(&sshd_path()?),
                log = unit_quote(&self.sshd_log(name)),
                config = unit_quote(&dir.join("sshd_config")),
            ),
        )?;
        fs::write(
            units.join("supervisor.service"),
            "[Unit]\n\
             Description=Supervisor process control system for UNIX\n\
             After=network.target\n\
             \n\
             [Service]\n\
             ExecStart=supervisord -n -c /etc/supervisor/supervisord.conf\n\
             ExecStop=supervisorctl shutdown\n\
             ExecReload=supervisorctl -c /etc/supervisor/supervisord.conf reload\n\
             KillMode=process\n\
             Restart=on-failure\n\
             RestartSec=50s\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
        )?;
        // The journal belongs to the systemd-journal group, as
        // systemd-tmpfiles (masked: it would clean the machine's /tmp) makes
        // it at boot, so that its members read it without root.
        let journald = units.join("systemd-journald.service.d");
        fs::create_dir_all(&journald)?;
        fs::write(
            journald.join("landfall-testbed.conf"),
            "[Service]\n\
             ExecStartPost=-systemd-tmpfiles --create --prefix=/run/log/journal \
             --prefix=/var/log/journal\n",
        )?;
        Ok(())
    }
}

/// The units a systemd host masks: [`MASKED`], and whatever the machine's
/// `sysinit.target`, `sockets.target` and `timers.target` want but
/// journald.
fn masked_units() -> Vec<String> {
    let mut units: Vec<String> = MASKED.iter().map(ToString::to_string).collect();
    for target in ["sysinit", "sockets", "timers"] {
        let wants = format!("/lib/systemd/system/{target}.target.wants");
        for entry in fs::read_dir(wants).into_iter().flatten().flatten() {
            let unit = entry.file_name().to_string_lossy().into_owned();
            if !KEPT.contains(&unit.as_str()) && !units.contains(&unit) {
                units.push(unit);
            }
        }
    }
    units
}

/// A path as one word of a unit file's command line.
fn unit_quote(path: &Path) -> String {
    let text = path.display().to_string();
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
    )
}

/// 128 random bits in hex, a machine id.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    let mut id = String::with_capacity(32);
    for byte in bytes {
        let _ = write!(id, "{byte:02x}");
    }
    Ok(id)
}
