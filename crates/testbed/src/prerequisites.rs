//! What the tests run besides cargo, and where each program comes from: one
//! table, read by the tests, so that a test that needs a program missing
//! here fails at once, naming it and its package, rather than on a spawn
//! deep inside what it tests.

use std::path::PathBuf;

/// Where a program comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Debian package.
    Apt(&'static str),
    /// `cargo install` with these arguments.
    Cargo(&'static str),
    /// `python3 -m pip install` of these packages.
    Pip(&'static str),
}

impl Source {
    /// The command that installs it, as a person would type it.
    pub fn command(self) -> String {
        match self {
            Source::Apt(package) => format!("apt-get install -y {package}"),
            Source::Cargo(args) => format!("cargo install {args}"),
            Source::Pip(packages) => format!("python3 -m pip install {packages}"),
        }
    }
}

/// A program a test runs, and what it is for.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub source: Source,
    pub why: &'static str,
}

/// Every program the suite runs besides cargo and a POSIX shell.
pub const TOOLS: &[Tool] = &[
    tool(
        "git",
        Source::Apt("git"),
        "revisions of the test workspaces",
    ),
    tool(
        "sshd",
        Source::Apt("openssh-server"),
        "the test bed's hosts",
    ),
    tool(
        "ssh",
        Source::Apt("openssh-client"),
        "connections to the hosts",
    ),
    tool(
        "ssh-keygen",
        Source::Apt("openssh-client"),
        "the test bed's keys",
    ),
    tool("rsync", Source::Apt("rsync"), "pushes to the hosts"),
    tool("dash", Source::Apt("dash"), "the host steps under dash"),
    tool(
        "busybox",
        Source::Apt("busybox"),
        "the host steps under busybox",
    ),
    tool("shellcheck", Source::Apt("shellcheck"), "the lint"),
    tool(
        "awk",
        Source::Apt("mawk"),
        "the time of each line a service writes",
    ),
    tool(
        "supervisord",
        Source::Apt("supervisor"),
        "services under supervisord",
    ),
    tool(
        "supervisorctl",
        Source::Apt("supervisor"),
        "services under supervisord",
    ),
    tool("systemd", Source::Apt("systemd"), "hosts under systemd"),
    tool(
        "systemd-analyze",
        Source::Apt("systemd"),
        "the units landfall writes",
    ),
    tool("journalctl", Source::Apt("systemd"), "logs under systemd"),
    tool(
        "curl",
        Source::Apt("curl"),
        "readiness checks and pull mode",
    ),
    tool("sha256sum", Source::Apt("coreutils"), "pull mode's checks"),
    tool(
        "stty",
        Source::Apt("coreutils"),
        "a terminal that echoes, for the shell's tests",
    ),
    tool(
        "sudo",
        Source::Apt("sudo"),
        "a deploy user that is not root",
    ),
    tool(
        "visudo",
        Source::Apt("sudo"),
        "the sudo rules landfall prints",
    ),
    tool(
        "nsenter",
        Source::Apt("util-linux"),
        "commands inside a host",
    ),
    tool(
        "unshare",
        Source::Apt("util-linux"),
        "the hosts' namespaces",
    ),
    tool(
        "runuser",
        Source::Apt("util-linux"),
        "commands as the deploy user",
    ),
    tool(
        "nft",
        Source::Apt("nftables"),
        "bytes sent to the hosts, counted",
    ),
    tool(
        "objdump",
        Source::Apt("binutils"),
        "a zigbuild's glibc floor",
    ),
    tool(
        "prometheus",
        Source::Apt("prometheus"),
        "metrics scraped from the hosts, for the checks judged from outside",
    ),
    tool(
        "haproxy",
        Source::Apt("haproxy"),
        "a reverse proxy in front of the hosts, for the checks judged from outside",
    ),
    tool(
        "s3s-fs",
        // 0.14.1 is the last release that builds with rustc 1.95.
        Source::Cargo("s3s-fs --version 0.14.1 --locked --features binary"),
        "pull mode's object store",
    ),
    tool(
        "cargo-zigbuild",
        Source::Pip("ziglang cargo-zigbuild"),
        "`[build] cargo = [\"cargo\", \"zigbuild\"]`",
    ),
];

const fn tool(name: &'static str, source: Source, why: &'static str) -> Tool {
    Tool { name, source, why }
}

/// Where the program `name` is: on `PATH`, in the system's `sbin`
/// directories and systemd's own (where Debian keeps programs a user's
/// `PATH` may lack), or in cargo's `bin` directory.
pub fn find(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.extend(
        [
            "/usr/local/sbin",
            "/usr/sbin",
            "/sbin",
            "/lib/systemd",
            "/usr/lib/systemd",
        ]
        .map(PathBuf::from),
    );
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|dir| dir.join(name)).find(|path| {
        use std::os::unix::fs::PermissionsExt as _;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The programs of [`TOOLS`] that [`find`] cannot find.
pub fn missing() -> Vec<&'static Tool> {
    TOOLS
        .iter()
        .filter(|tool| find(tool.name).is_none())
        .collect()
}

/// Where the program `name` (one of [`TOOLS`]) is; a test that needs one
/// that is missing fails here, at once, naming it, what it is for and how
/// to install it.
///
/// # Panics
///
/// If the program is not installed, or is not one of [`TOOLS`].
#[track_caller]
pub fn require(name: &str) -> PathBuf {
    // A `match`, not a closure: the panic is then said at the test's line.
    match needed(name) {
        Ok(path) => path,
        Err(err) => panic!("{err}"),
    }
}

/// Where the program `name` (one of [`TOOLS`]) is, or an error that names
/// it, what it is for and how to install it.
pub fn needed(name: &str) -> anyhow::Result<PathBuf> {
    let Some(tool) = TOOLS.iter().find(|tool| tool.name == name) else {
        anyhow::bail!("`{name}` is not among the tests' prerequisites");
    };
    find(name).ok_or_else(|| anyhow::anyhow!("{}", not_installed(tool)))
}

/// What a test says of a program it needs that is not installed.
fn not_installed(tool: &Tool) -> String {
    format!(
        "`{}` ({}) is not installed, and this test needs it: install it with `{}` \
         (README.md lists every prerequisite of the tests)",
        tool.name,
        tool.why,
        tool.source.command()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_named_once_and_a_shell_is_found() {
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "{names:?}");
        assert!(find("sh").is_some());
        assert!(find("no-such-program-here").is_none());
    }

    #[test]
    fn a_missing_tool_is_named_with_its_package() {
        let rsync = TOOLS.iter().find(|t| t.name == "rsync").unwrap();
        let said = not_installed(rsync);
        assert!(
            said.starts_with("`rsync` (pushes to the hosts) is not installed")
                && said.contains("`apt-get install -y rsync`"),
            "{said}"
        );
        let store = TOOLS.iter().find(|t| t.name == "s3s-fs").unwrap();
        assert!(not_installed(store).contains("`cargo install s3s-fs --version 0.14.1"));
    }
}
