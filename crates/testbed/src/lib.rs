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
//! for pull mode; [`ByteCounter`], the bytes this machine sends to the
//! hosts; [`prerequisites`], every program the tests run and its package;
//! and [`support`], what the tests of every crate share.
//!
//! Requires root (for the namespaces), `unshare`, `nsenter` and `mount`
//! from util-linux, and OpenSSH's `sshd` and `ssh-keygen`; supervisor for
//! [`Testbed::start_supervisord`], systemd and cgroup v2 for systemd hosts.

mod counter;
pub mod prerequisites;
mod s3;
pub mod support;

pub use counter::ByteCounter;
pub use prerequisites::require;
pub use s3::S3Server;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

const STATE: &str = "testbed.json";

/// The `PATH` of the commands run inside hosts, systemd's default.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// supervisord's configuration, as the hosts see it.
const SUPERVISORD_CONF: &str = "/etc/supervisor/supervisord.conf";

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

/// Where a test bed's hosts listen.
#[derive(Clone, Copy)]
enum Block {
    /// A block of addresses that the test bed holds while it lives.
    Leased,
    /// 127.0.0.2 and up.
    WellKnown,
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

fn sshd_path() -> Result<PathBuf> {
    prerequisites::needed("sshd")
}

fn systemd_path() -> Result<PathBuf> {
    ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .map_or_else(|| prerequisites::needed("systemd"), Ok)
}

/// Where the cgroup2 hierarchy is mounted: `/sys/fs/cgroup/unified` on a
/// machine with hybrid cgroups, `/sys/fs/cgroup` on one with cgroup v2
/// only. systemd hosts need it: their systemd manages a cgroup2 tree.
fn cgroup2_root() -> Result<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .context("this machine has no cgroup v2 hierarchy, which systemd hosts need")
}

impl Testbed {
    /// Creates a test bed of `count` plain hosts in `dir` (which must not
    /// hold a running one) and starts them.
    pub fn up(dir: &Path, count: usize) -> Result<Testbed> {
        Testbed::up_with(dir, count, Init::Plain)
    }

    /// Creates a test bed of `count` hosts run by `init` in `dir` (which
    /// must not hold a running one) and starts them, on addresses of a
    /// block that the returned value holds (see [`support::Addresses`]):
    /// test beds of processes running at once never meet.
    pub fn up_with(dir: &Path, count: usize, init: Init) -> Result<Testbed> {
        Testbed::create(dir, count, init, Block::Leased)
    }

    /// Creates a test bed as [`Testbed::up_with`] does, but on the
    /// well-known addresses 127.0.0.2, 127.0.0.3, …: for a test bed that
    /// outlives the process that starts it (`cargo xtask testbed up`) and
    /// that the repository's `environments/testbed.toml` names.
    pub fn up_well_known(dir: &Path, count: usize, init: Init) -> Result<Testbed> {
        Testbed::create(dir, count, init, Block::WellKnown)
    }

    fn create(dir: &Path, count: usize, init: Init, block: Block) -> Result<Testbed> {
        // What the hosts and the harness run, named with their packages
        // before anything starts.
        for tool in ["sshd", "ssh", "ssh-keygen", "rsync", "unshare", "nsenter"] {
            prerequisites::needed(tool)?;
        }
        ensure!((1..=250).contains(&count), "a test bed has 1 to 250 hosts");
        if let Ok(old) = Testbed::open(dir) {
            ensure!(
                old.running().is_empty(),
                "a test bed is already running in `{}`",
                dir.display()
            );
        }
        if init == Init::Systemd {
            systemd_path()?;
            cgroup2_root()?;
            // systemd writes a machine id where it finds none: the hosts
            // get their own over the machine's, which must be there.
            ensure!(
                Path::new("/etc/machine-id").is_file(),
                "systemd hosts need the machine's `/etc/machine-id` to mount theirs over"
            );
        }
        fs::create_dir_all(dir)?;
        let dir = fs::canonicalize(dir)?;
        // sshd refuses to start without its privilege separation directory.
        fs::create_dir_all("/run/sshd")?;
        // A leased block is this process's own, but an sshd left running by
        // a process that was killed may still listen on one of its
        // addresses; sshd's port is picked before sshd binds it. Either
        // way, the hosts are started again, on another block and port.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = match block {
                Block::Leased => Some(support::Addresses::lease()),
                Block::WellKnown => None,
            };
            match Testbed::up_on(&dir, count, lease, init) {
                Ok(testbed) => return Ok(testbed),
                Err(err) if attempt >= 3 => return Err(err),
                Err(_) => {}
            }
        }
    }

    fn up_on(
        dir: &Path,
        count: usize,
        lease: Option<support::Addresses>,
        init: Init,
    ) -> Result<Testbed> {
        let dir = dir.to_path_buf();
        let port = support::free_port();
        let hosts: Vec<Host> = (1..=count)
            .map(|i| Host {
                name: format!("host{i}"),
                address: match &lease {
                    Some(block) => block.host(i).to_string(),
                    None => format!("127.0.0.{}", i + 1),
                },
                port,
            })
            .collect();
        let testbed = Testbed {
            dir,
            hosts,
            init,
            children: Mutex::default(),
            _addresses: lease,
        };

        let user_key = testbed.dir.join("id_ed25519");
        if !user_key.exists() {
            run(Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "landfall-testbed",
                    "-f",
                ])
                .arg(&user_key))?;
        }
        fs::copy(
            user_key.with_extension("pub"),
            testbed.dir.join("authorized_keys"),
        )?;
        let mut known_hosts = String::new();
        for host in &testbed.hosts {
            let host_dir = testbed.host_dir(&host.name);
            fs::create_dir_all(host_dir.join("srv"))?;
            let key = host_dir.join("ssh_host_ed25519_key");
            if !key.exists() {
                run(Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", &host.name, "-f"])
                    .arg(&key))?;
            }
            let public = fs::read_to_string(key.with_extension("pub"))?;
            let mut fields = public.split_whitespace();
            let (kind, blob) = (
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default(),
            );
            writeln!(
                known_hosts,
                "[{}]:{} {kind} {blob}",
                host.address, host.port
            )?;
            fs::write(host_dir.join("sshd_config"), testbed.sshd_config(host))?;
        }
        fs::write(testbed.dir.join("known_hosts"), known_hosts)?;
        fs::write(testbed.ssh_config(), testbed.client_config())?;
        testbed.save()?;
        for host in &testbed.hosts {
            if let Err(err) = testbed.start(&host.name) {
                let _ = testbed.down();
                return Err(err);
            }
        }
        Ok(testbed)
    }

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

    /// The cgroup2 directory a systemd host runs in (made when it starts,
    /// removed when it stops), or `None` for a plain host. Its name holds
    /// the test bed's directory, so that test beds that run at the same
    /// time each have their own.
    pub fn cgroup(&self, name: &str) -> Option<PathBuf> {
        if self.init != Init::Systemd {
            return None;
        }
        let root = cgroup2_root().ok()?;
        let base = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // FNV-1a of the whole path: two checkouts both have a
        // `target/testbed`.
        let hash = self
            .dir
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0x811c_9dc5_u32, |h, b| {
                (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
            });
        Some(root.join(format!("landfall-testbed.{base}.{hash:08x}.{name}")))
    }

    /// The file a host's login shell reads as `~/.bashrc` (rewritten, plain,
    /// whenever the host starts): a test can change the environment of the
    /// commands run there, e.g. put a directory of its own first in `PATH`.
    pub fn bashrc(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("bashrc")
    }

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

    /// The ssh client configuration naming every host.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

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

    fn sshd_config(&self, host: &Host) -> String {
        let dir = self.host_dir(&host.name);
        format!(
            "# sshd of test bed host {name}\n\
             ListenAddress {address}:{port}\n\
             HostKey {key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {authorized}\n\
             PermitRootLogin prohibit-password\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             PrintMotd no\n\
             MaxSessions 200\n\
             MaxStartups 200:30:400\n\
             LogLevel DEBUG1\n",
            name = host.name,
            address = host.address,
            port = host.port,
            key = dir.join("ssh_host_ed25519_key").display(),
            pid = self.pid_file(&host.name).display(),
            authorized = self.dir.join("authorized_keys").display(),
        )
    }

    fn client_config(&self) -> String {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        let mut text = String::from("# ssh client configuration for the landfall test bed\n");
        for host in &self.hosts {
            let _ = write!(
                text,
                "\nHost {name}\n  HostName {address}\n  Port {port}\n  User {user}\n  IdentityFile {key}\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  BatchMode yes\n  \
                 ConnectTimeout 5\n",
                name = host.name,
                address = host.address,
                port = host.port,
                key = self.dir.join("id_ed25519").display(),
                known = self.dir.join("known_hosts").display(),
            );
        }
        text
    }

    /// Writes a host's `/etc/supervisor`: a `supervisord.conf` that keeps
    /// everything in that directory (so that a host's supervisord and
    /// `supervisorctl` find each other, and no other host's), an empty
    /// `conf.d/` the first time, and no socket or pid file of a supervisord
    /// that was killed.
    fn write_supervisor(&self, name: &str) -> Result<()> {
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

    /// Starts a systemd host (see [`Testbed::spawn_systemd`]) and waits
    /// until its boot is over and its sshd listens.
    fn start_systemd(&self, name: &str, address: SocketAddr) -> Result<()> {
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

    /// What a host wrote of its start: the output of `unshare`, the shell
    /// and sshd or systemd, then sshd's log.
    fn logs(&self, name: &str) -> String {
        let out = match self.init {
            Init::Plain => "sshd.out",
            Init::Systemd => "init.out",
        };
        fs::read_to_string(self.host_dir(name).join(out)).unwrap_or_default()
            + &fs::read_to_string(self.sshd_log(name)).unwrap_or_default()
    }

    fn children_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Child>> {
        self.children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the process this process started host `name` with has
    /// ended (or is not this process's to know).
    fn child_exited(&self, name: &str) -> bool {
        self.children_lock()
            .get_mut(name)
            .is_none_or(|child| !matches!(child.try_wait(), Ok(None)))
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

    /// Runs a command inside a host (in its mount namespace; in all of a
    /// systemd host's but its cgroup's), from `/`, with a plain `PATH` and
    /// `HOME`, and returns what it printed and how it ended, whatever that
    /// was. A command that has not ended after 30 s is killed, with every
    /// process of its process group, and is an error.
    pub fn exec_in(&self, name: &str, args: &[&str]) -> Result<Output> {
        self.exec_in_within(name, args, Duration::from_secs(30))
    }

    fn exec_in_within(&self, name: &str, args: &[&str], timeout: Duration) -> Result<Output> {
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

    /// The pid that stands for a running host: its sshd's for a plain
    /// host, its PID 1's (as the machine numbers it) for a systemd host. A
    /// pid file can outlive its process, and the pid be another process's
    /// by now: it counts only while that process's command line names
    /// this host's `sshd_config`, or, for a systemd host, while it is in
    /// this host's cgroup.
    fn pid(&self, name: &str) -> Option<u32> {
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
    fn namespaces(&self, pid: u32) -> Option<Namespaces> {
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
    fn members(&self, pid: u32, namespaces: &Namespaces) -> Vec<u32> {
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

/// The home directory of the user the hosts are logged in as: the
/// current one.
/// landfall's state directory in the home of the user the test bed runs
/// as (made if missing): each host mounts a directory of its own over it.
fn home_state() -> Result<PathBuf> {
    let dir = home().join(".local/state/landfall");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
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

/// The (first) child of process `pid`.
fn child_of(pid: u32) -> Option<u32> {
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

/// Whether process `pid` lives, in cgroup2 directory `cgroup` (a path from
/// the hierarchy's root, `/name`) or below it.
fn in_cgroup(pid: u32, cgroup: &str) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let alive = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    });
    alive
        && text.lines().any(|line| {
            line.strip_prefix("0::").is_some_and(|path| {
                path == cgroup
                    || path
                        .strip_prefix(cgroup)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        })
}

/// Removes a cgroup2 directory and the ones below it, deepest first (a
/// cgroup's files go with it; a cgroup with processes cannot go). One that
/// is not there is fine.
fn remove_cgroup(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot read `{}`", dir.display())),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove `{}`", dir.display()))
        }
        _ => Ok(()),
    }
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

/// The namespaces that make a host: its mount namespace, and a systemd
/// host's PID namespace.
struct Namespaces {
    mount: PathBuf,
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
    fn contains(&self, pid: u32) -> bool {
        let has = |kind: &str, namespace: &Path| {
            fs::read_link(format!("/proc/{pid}/ns/{kind}")).is_ok_and(|ns| ns == namespace)
        };
        has("mnt", &self.mount) || self.pid.as_ref().is_some_and(|ns| has("pid", ns))
    }
}

/// A test bed that is stopped and removed when dropped, for tests.
pub struct Scoped {
    pub testbed: Testbed,
    _dir: TempDir,
}

/// A temporary directory under the system's, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Scoped {
    /// Starts `count` plain hosts in a fresh temporary directory.
    pub fn up(count: usize) -> Result<Scoped> {
        Scoped::up_with(count, Init::Plain)
    }

    /// Starts `count` hosts run by `init` in a fresh temporary directory.
    pub fn up_with(count: usize, init: Init) -> Result<Scoped> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Short: ssh's control sockets live under paths derived from it.
        let dir = std::env::temp_dir().join(format!("lftb-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let guard = TempDir(dir.clone());
        let testbed = Testbed::up_with(&dir, count, init)?;
        Ok(Scoped {
            testbed,
            _dir: guard,
        })
    }
}

impl std::ops::Deref for Scoped {
    type Target = Testbed;
    fn deref(&self) -> &Testbed {
        &self.testbed
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        let _ = self.testbed.down();
    }
}
