//! A test bed of real hosts for landfall: N OpenSSH `sshd` processes, each
//! listening on its own loopback address (127.0.0.2, 127.0.0.3, …) and
//! running in its own mount namespace, where a directory of the test bed is
//! bind-mounted over `/srv`. Hosts therefore share nothing under `/srv`,
//! the way separate machines would, while tests can still look at each
//! host's files from outside (see [`Testbed::srv`]). A plain `~/.bashrc` is
//! mounted over the operator's in each namespace, so that commands run over
//! ssh start as quickly as on a fresh server.
//!
//! The test bed generates a host key per host, one user key, a
//! `known_hosts` file and an `ssh_config` naming the hosts `host1`,
//! `host2`, …; connections log in as the current user (root in CI) with
//! strict host key checking. `cargo xtask testbed up N` and the integration
//! tests both use this crate.
//!
//! Requires root (for the mount namespaces), `unshare` and `mount` from
//! util-linux, and OpenSSH's `sshd` and `ssh-keygen`.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

const STATE: &str = "testbed.json";

/// One host of the test bed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// A test bed: its directory and its hosts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Testbed {
    pub dir: PathBuf,
    pub hosts: Vec<Host>,
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

/// A port that is free on every loopback address right now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("0.0.0.0:0")?.local_addr()?.port())
}

fn sshd_path() -> Result<PathBuf> {
    ["/usr/sbin/sshd", "/usr/bin/sshd", "/usr/local/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("OpenSSH's `sshd` is not installed (apt-get install openssh-server)")
}

impl Testbed {
    /// Creates a test bed of `count` hosts in `dir` (which must not hold a
    /// running one) and starts them.
    pub fn up(dir: &Path, count: usize) -> Result<Testbed> {
        ensure!((1..=250).contains(&count), "a test bed has 1 to 250 hosts");
        if let Ok(old) = Testbed::open(dir) {
            ensure!(
                old.running().is_empty(),
                "a test bed is already running in `{}`",
                dir.display()
            );
        }
        fs::create_dir_all(dir)?;
        let dir = fs::canonicalize(dir)?;
        // sshd refuses to start without its privilege separation directory.
        fs::create_dir_all("/run/sshd")?;
        // A port is picked before sshd binds it, so another test bed may
        // take it first: then its hosts are started again on another.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Testbed::up_on(&dir, count, free_port()?) {
                Ok(testbed) => return Ok(testbed),
                Err(err) if attempt >= 3 => return Err(err),
                Err(_) => {}
            }
        }
    }

    fn up_on(dir: &Path, count: usize, port: u16) -> Result<Testbed> {
        let dir = dir.to_path_buf();
        let hosts: Vec<Host> = (1..=count)
            .map(|i| Host {
                name: format!("host{i}"),
                address: format!("127.0.0.{}", i + 1),
                port,
            })
            .collect();
        let testbed = Testbed { dir, hosts };

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

    /// sshd's own log of a host (sshd runs with `LogLevel DEBUG1`, which
    /// records every session it opens).
    pub fn sshd_log(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("sshd.log")
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("sshd.pid")
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

    /// Starts one host's sshd in a new mount namespace with its own `/srv`,
    /// and waits until it accepts connections.
    pub fn start(&self, name: &str) -> Result<()> {
        let host = self.host(name)?;
        let dir = self.host_dir(name);
        // sshd appends its log with `-E`; its own stdout and stderr (only
        // written when it fails to start) go to a second file.
        let _ = fs::remove_file(self.sshd_log(name));
        let _ = fs::remove_file(self.pid_file(name));
        let log = fs::File::create(dir.join("sshd.out"))?;
        // A host's login shell reads a plain `~/.bashrc`, as on a fresh
        // server, not the operator's: bash reads it for every command run
        // over ssh, and a workstation's can take a tenth of a second.
        let bashrc = dir.join("bashrc");
        fs::write(&bashrc, "# ~/.bashrc of a landfall test bed host\n")?;
        let home_bashrc = home().join(".bashrc");
        // `unshare` execs `sh`, which mounts and execs sshd: the pid that
        // sshd writes is the namespace's first process.
        let script = r#"mount --bind "$1" /srv &&
            { [ ! -f "$5" ] || mount --bind "$6" "$5"; } &&
            exec "$2" -D -E "$4" -f "$3""#;
        let mut sshd = Command::new("unshare")
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
            .arg(home_bashrc)
            .arg(bashrc)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so that it outlives `cargo xtask`.
            .process_group(0)
            .spawn()
            .context(
                "cannot start sshd under `unshare` (is util-linux installed, and are we root?)",
            )?;
        let address: SocketAddr = format!("{}:{}", host.address, host.port).parse()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        // Listening is not enough: another test bed's sshd could hold the
        // same port (ports are picked before they are bound). Ours writes
        // its pid file once it listens.
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err()
            || !self.running().contains(&host.name)
        {
            if Instant::now() > deadline || sshd.try_wait()?.is_some() {
                let log = fs::read_to_string(dir.join("sshd.out")).unwrap_or_default()
                    + &fs::read_to_string(self.sshd_log(name)).unwrap_or_default();
                bail!("sshd of `{name}` did not start listening on {address}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The pid of a host's running sshd. A pid file can outlive its sshd,
    /// and the pid be another process's by now: it counts only while that
    /// process's command line names this host's `sshd_config`.
    fn pid(&self, name: &str) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.pid_file(name))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let config = self.host_dir(name).join("sshd_config");
        let config = config.as_os_str().as_encoded_bytes();
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        cmdline
            .windows(config.len())
            .any(|w| w == config)
            .then_some(pid)
    }

    /// The names of the hosts whose sshd runs.
    pub fn running(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| self.pid(&h.name).is_some())
            .map(|h| h.name.clone())
            .collect()
    }

    /// Stops one host: its sshd and every process in its mount namespace
    /// (services its deploys started).
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
        let namespace = fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .with_context(|| format!("the namespace of `{name}`"))?;
        let members = processes_in(&namespace);
        let status = Command::new("kill")
            .arg(signal)
            .args(members.iter().map(ToString::to_string))
            .stdin(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("cannot signal the processes of `{name}`");
        }
        Ok(())
    }

    pub fn stop(&self, name: &str) -> Result<()> {
        let Some(pid) = self.pid(name) else {
            return Ok(());
        };
        let Ok(namespace) = fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            let _ = fs::remove_file(self.pid_file(name));
            return Ok(());
        };
        let own = fs::read_link("/proc/self/ns/mnt").ok();
        if own.as_ref() == Some(&namespace) {
            bail!("sshd of `{name}` (pid {pid}) is not in a namespace of its own");
        }
        // Only the processes found now are signalled: once they are all
        // gone the namespace is freed, and its number can be given to the
        // namespace of a host another test bed is starting.
        let mut members = processes_in(&namespace);
        for signal in ["-TERM", "-KILL"] {
            members.retain(|pid| in_namespace(*pid, &namespace));
            if members.is_empty() {
                break;
            }
            let mut kill = Command::new("kill");
            kill.arg(signal)
                .args(members.iter().map(ToString::to_string));
            let _ = kill.stdin(Stdio::null()).stderr(Stdio::null()).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while members.iter().any(|pid| in_namespace(*pid, &namespace))
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = fs::remove_file(self.pid_file(name));
        Ok(())
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
fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// The processes whose mount namespace is `namespace`.
fn processes_in(namespace: &Path) -> Vec<u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| in_namespace(*pid, namespace))
        .collect()
}

/// Whether process `pid` lives, in mount namespace `namespace`.
fn in_namespace(pid: u32, namespace: &Path) -> bool {
    fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|ns| ns == namespace)
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
    /// Starts `count` hosts in a fresh temporary directory.
    pub fn up(count: usize) -> Result<Scoped> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Short: ssh's control sockets live under paths derived from it.
        let dir = std::env::temp_dir().join(format!("lftb-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let guard = TempDir(dir.clone());
        let testbed = Testbed::up(&dir, count)?;
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
