//! What the tests of every crate share, beside the test bed itself: free
//! ports, loopback addresses of their own, waits with a deadline, process groups, the files below a
//! directory, git with a fixed identity, and commands fed an input.
//! Everything here panics on failure, as a test wants, except
//! [`output_with_input`], which the test bed's own fallible code uses too.

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A block of loopback addresses, `127.A.B.0/24`, that this process holds
/// until the value is dropped or the process ends. Tests that run at once,
/// in processes of their own, each listen on addresses of their own block,
/// so that no two can ever be given the same address and port.
///
/// The hold is a listening socket on the block's `127.A.B.1` at
/// [`Addresses::LEASE_PORT`], which the kernel lets one process have at a
/// time and takes back when that process ends, however it ends. Blocks
/// are never in `127.0.0.0/16`, which other software and examples use.
#[derive(Debug)]
pub struct Addresses {
    prefix: [u8; 3],
    _lease: TcpListener,
}

impl Addresses {
    /// The port whose listener on a block's first address holds the block:
    /// above Linux's range of ephemeral ports, so no socket bound to port 0
    /// and no outgoing connection is ever given it.
    pub const LEASE_PORT: u16 = 65_000;

    /// Takes a block that no other process holds.
    pub fn lease() -> Addresses {
        use std::hash::{BuildHasher, Hasher};
        for attempt in 0u32..1000 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            hasher.write_u32(attempt);
            let [a, b, ..] = hasher.finish().to_le_bytes();
            // 127.1.0.0 to 127.254.255.0: 65,024 blocks.
            let prefix = [127, 1 + a % 254, b];
            let first = Ipv4Addr::new(prefix[0], prefix[1], prefix[2], 1);
            if let Ok(lease) = TcpListener::bind((first, Self::LEASE_PORT)) {
                return Addresses {
                    prefix,
                    _lease: lease,
                };
            }
        }
        panic!("no block of loopback addresses was free in 1000 tries");
    }

    /// The block's `n`th address for hosts, `n` from 1 to 253:
    /// `127.A.B.(n+1)`, the first being the lease's own.
    pub fn host(&self, n: usize) -> Ipv4Addr {
        let last = u8::try_from(n + 1)
            .ok()
            .filter(|last| (2..=254).contains(last))
            .expect("a block has 253 addresses for hosts");
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, last)
    }
}

/// A port that is free on every loopback address right now. Another
/// process may take it before it is used: a listener that must not meet
/// another test's listens on an address of its own ([`Addresses`]).
pub fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until `ready` holds, checking every few milliseconds; fails the
/// test, naming `what`, if it does not within `seconds`.
#[track_caller]
pub fn wait_for(seconds: u64, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {seconds}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` to end, at most `deadline`: past it, its process
/// group is killed (and reaped). Whether it ended by itself.
pub fn wait_or_kill_group(child: &mut std::process::Child, deadline: Duration) -> bool {
    let group = child.id();
    let (ended, gate) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _ = child.wait();
            let _ = ended.send(());
        });
        if gate.recv_timeout(deadline).is_ok() {
            return true;
        }
        kill_group(group);
        false
    })
}

/// Kills process group `pid` and everything in it, at once (a group that
/// is gone already is no failure).
pub fn kill_group(pid: u32) {
    drop(
        Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status(),
    );
}

/// Everything below `dir`, links not followed, as paths relative to it,
/// sorted, each with whether it is a directory. A directory that cannot
/// be read (or is not there) has nothing below it.
pub fn below(dir: &Path) -> Vec<(PathBuf, bool)> {
    fn walk(dir: &Path, relative: &Path, found: &mut Vec<(PathBuf, bool)>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = relative.join(entry.file_name());
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            found.push((path.clone(), is_dir));
            if is_dir {
                walk(&entry.path(), &path, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, Path::new(""), &mut found);
    found.sort();
    found
}

/// Every file and link below `dir`, as sorted paths relative to it.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    below(dir)
        .into_iter()
        .filter_map(|(path, is_dir)| (!is_dir).then_some(path))
        .collect()
}

/// Runs git in `dir` with no configuration but a fixed author, and
/// returns its stdout, trimmed; fails the test if git fails.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(crate::require("git"))
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `command` with `input` on its standard input and returns its
/// output; the command is killed, and the call fails, if it has not ended
/// within `deadline`.
pub fn output_with_input(
    command: &mut Command,
    input: &[u8],
    deadline: Duration,
) -> Result<Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {command:?}"))?;
    let mut stdin = child.stdin.take().context("its standard input")?;
    // A command that exits without reading all of it is no failure here:
    // its status says what happened.
    let _ = stdin.write_all(input);
    drop(stdin);
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    if let Ok(output) = receiver.recv_timeout(deadline) {
        return output.context("it ends");
    }
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    bail!("{command:?} did not end within {deadline:?}")
}

/// `examples/hello`'s binary, built in release (as the deployments build
/// it) into `REPO/target/it-prebuilt/`, where every test that needs it
/// finds it: one build serves them all.
pub fn build_hello(repo: &Path) -> PathBuf {
    let target = repo.join("target/it-prebuilt");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "hello",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(repo)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cannot build examples/hello: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("release/hello")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_of_addresses_is_held_by_one_lease_at_a_time() {
        let one = Addresses::lease();
        let two = Addresses::lease();
        assert_ne!(one.prefix, two.prefix);
        assert_eq!(one.host(1).octets()[3], 2);
        assert_eq!(one.host(253).octets()[3], 254);
        assert_ne!(one.host(1).octets()[1], 0, "{}", one.host(1));
        // While `one` lives, its block cannot be taken; once dropped, it can.
        let first = Ipv4Addr::new(one.prefix[0], one.prefix[1], one.prefix[2], 1);
        assert!(TcpListener::bind((first, Addresses::LEASE_PORT)).is_err());
        drop(one);
        assert!(TcpListener::bind((first, Addresses::LEASE_PORT)).is_ok());
        // Hosts listen on the block's addresses.
        let listener = TcpListener::bind((two.host(3), 0)).expect("a host address is usable");
        assert_eq!(listener.local_addr().unwrap().ip(), two.host(3));
    }
}
