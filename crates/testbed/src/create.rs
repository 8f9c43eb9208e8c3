//! Creating a test bed: the checks before anything starts, the block of
//! addresses its hosts listen on (tried again on another when one is in
//! use), the user key, a host key per host, `known_hosts`, each host's
//! `sshd_config` and the `ssh_config` naming the hosts; then the state
//! file, and every host started.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Result, ensure};

use crate::cgroups::cgroup2_root;
use crate::systemd::systemd_path;
use crate::{Host, Init, Testbed, prerequisites, run, support};

/// Where a test bed's hosts listen.
#[derive(Clone, Copy)]
enum Block {
    /// A block of addresses that the test bed holds while it lives.
    Leased,
    /// 127.0.0.2 and up.
    WellKnown,
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
}
