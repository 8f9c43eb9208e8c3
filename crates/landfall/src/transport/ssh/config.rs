//! The ssh configuration: how to reach the hosts ([`SshOptions`], the
//! environment's settings), what ssh is given, and what ssh makes of it
//! for a host.
//!
//! ssh reads the user's own configuration (the environment's `ssh_config`,
//! or else `~/.ssh/config` and the system's), then landfall's defaults for
//! every host, from a file the run writes in its private directory
//! ([`defaults_config`]); every ssh call adds the host key policy and the
//! user ([`connection_args`]). What that comes to for a host is never
//! worked out here: `ssh -G`, given the same configuration and options,
//! says it, with every `Include`, `Match` and `Host` pattern followed and
//! every default applied as ssh applies them, and its `option value` lines
//! are what a kept master connection is named by ([`effective_key`]). It is
//! asked once per host and run, several hosts at a time, and within a
//! deadline.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Environment, HostKeys};
use crate::process::{self, Cmd};

/// How to reach the hosts.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// The environment's `ssh_config`, used instead of `~/.ssh/config`.
    pub config: Option<PathBuf>,
    /// The environment's `user`; otherwise ssh's configuration decides.
    pub user: Option<String>,
    /// Never prompt (for passwords or passphrases): non-interactive runs.
    pub batch: bool,
    /// Record the key of a host seen for the first time instead of
    /// refusing it; a changed key is refused either way.
    pub accept_new_host_keys: bool,
    /// How long a master connection stays open once no run uses it, kept
    /// in a private directory of the user's for the next run to find;
    /// zero: each run opens its own and closes them when it ends.
    pub persist: std::time::Duration,
}

impl SshOptions {
    /// The environment's settings: its `ssh_config`, `user`, `host_keys`
    /// and `ssh_persist`, never prompting.
    pub fn of(env: &Environment) -> SshOptions {
        SshOptions {
            config: env.ssh_config.clone(),
            user: env.user.clone(),
            batch: true,
            accept_new_host_keys: env.host_keys == HostKeys::AcceptNew,
            persist: env.ssh_persist,
        }
    }
}

/// How long ssh may take to connect, and how often it asks a silent host
/// whether it is still there (and how many unanswered asks end the
/// connection): landfall's defaults, which a user's ssh configuration
/// overrides. A host that accepts TCP but never speaks SSH, or that
/// freezes, is given up in seconds rather than waited for forever.
const SSH_DEFAULTS: [(&str, &str); 3] = [
    ("ConnectTimeout", "10"),
    ("ServerAliveInterval", "5"),
    ("ServerAliveCountMax", "3"),
];

/// Writes, into the private control directory, the configuration ssh is
/// given: the user's own (the environment's `ssh_config`, or else
/// `~/.ssh/config` and the system's), then landfall's defaults for every
/// host. ssh takes the first value it reads for each setting, so the
/// user's win. `None` (the defaults then become options) where a path
/// cannot be written in ssh's configuration syntax.
pub(super) fn defaults_config(dir: &Path, user_config: Option<&Path>) -> Option<PathBuf> {
    let mut includes: Vec<PathBuf> = Vec::new();
    if let Some(config) = user_config {
        includes.push(std::path::absolute(config).ok()?);
    } else {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            includes.push(PathBuf::from(home).join(".ssh/config"));
        }
        includes.push(PathBuf::from("/etc/ssh/ssh_config"));
    }
    let mut text = String::from(
        "# The user's ssh configuration, then landfall's defaults: the first value ssh reads wins.\n",
    );
    for include in &includes {
        let include = include.to_str()?;
        if include.contains(['"', '\n', '\r']) {
            return None;
        }
        let _ = writeln!(text, "Include \"{include}\"");
    }
    text.push_str("Host *\n");
    for (key, value) in SSH_DEFAULTS {
        let _ = writeln!(text, "  {key} {value}");
    }
    let path = dir.join("ssh_config");
    fs::write(&path, text).ok()?;
    Some(path)
}

/// The options that decide where every ssh call goes and what it
/// trusts: the configuration, the host key policy, the user.
pub(super) fn connection_args(written: Option<&Path>, options: &SshOptions) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    if let Some(config) = written {
        args.push("-F".into());
        args.push(config.into());
    } else {
        // Without a file of defaults, they are options, which the
        // user's configuration cannot override.
        if let Some(config) = &options.config {
            args.push("-F".into());
            args.push(config.into());
        }
        for (key, value) in SSH_DEFAULTS {
            args.extend(["-o".into(), format!("{key}={value}").into()]);
        }
    }
    let checking = if options.accept_new_host_keys {
        "StrictHostKeyChecking=accept-new"
    } else {
        "StrictHostKeyChecking=yes"
    };
    args.extend(["-o".into(), checking.into()]);
    if options.batch {
        args.extend(["-o".into(), "BatchMode=yes".into()]);
    }
    if let Some(user) = &options.user {
        args.extend(["-l".into(), user.into()]);
    }
    args
}

/// What decides where ssh connects to `address`, and what it trusts there,
/// as ssh itself works it out from `args` (its configuration, with every
/// `Include` and `Match` followed: `ssh -G`): every option it would use,
/// the host key policy, and each known hosts file it names, with its size
/// and time of change. A change to any of them is not served by a
/// connection opened before it: a host that moved, or whose key left a
/// known hosts file, is connected to and checked again, not ridden past on
/// a kept connection. `None` if ssh cannot say (then no master is kept).
pub(super) fn effective_key(
    args: &[OsString],
    address: &str,
    options: &SshOptions,
) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let effective = ask_ssh(args, address)?;
    let mut key = format!(
        "user={:?} accept-new={}\n{effective}",
        options.user, options.accept_new_host_keys
    );
    let files = option_lines(&effective)
        .filter(|(option, _)| ["userknownhostsfile", "globalknownhostsfile"].contains(option))
        .flat_map(|(_, files)| known_hosts_files(files));
    for file in files {
        let stat = fs::metadata(&file)
            .map(|m| format!("{} {}.{}", m.len(), m.mtime(), m.mtime_nsec()))
            .unwrap_or_default();
        let _ = write!(key, "\n{file} {stat}");
    }
    Some(key)
}

/// How long `ssh -G` may take: it reads files and connects to nothing, in
/// milliseconds, unless a `Match exec` of the user's runs a command.
const ASKING: Duration = Duration::from_secs(10);

/// What ssh makes of its configuration for `address`, with the options
/// `args`: `ssh -G`'s lines, `option value` each, the option in lower
/// case. `None` if ssh cannot say (a configuration it refuses, say) or
/// takes longer than [`ASKING`].
fn ask_ssh(args: &[OsString], address: &str) -> Option<String> {
    let cmd = Cmd::new("ssh")
        .arg("-G")
        .args(args)
        .arg("--")
        .arg(address)
        .deadline(ASKING);
    Some(process::run(&cmd).ok()?.stdout_text())
}

/// `ssh -G`'s lines, as `(option, value)`.
fn option_lines(effective: &str) -> impl Iterator<Item = (&str, &str)> {
    effective.lines().filter_map(|line| line.split_once(' '))
}

/// The files of a `userknownhostsfile` or `globalknownhostsfile` line of
/// `ssh -G`, which prints them expanded but unquoted, one space between
/// each: a file whose path holds spaces is told from several by which
/// joining of neighbouring words names a file that exists. A path of
/// spaces that does not exist (yet) is taken word by word: its stat is
/// empty either way, and once it exists the key changes, which is the
/// safe side.
fn known_hosts_files(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    let mut files = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let end = (i..words.len())
            .find(|&j| Path::new(&words[i..=j].join(" ")).exists())
            .unwrap_or(i);
        files.push(words[i..=end].join(" "));
        i = end + 1;
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept master's name followed the files ssh reads but not those
    /// they include: after a host moved to another address, or its key
    /// left a known hosts file named only in an included file, the next
    /// run rode the old master. The name now covers what ssh itself makes
    /// of the configuration for the host.
    #[test]
    fn a_kept_connection_is_named_by_what_ssh_makes_of_its_configuration() {
        landfall_testbed::require("ssh");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        let included = dir.path().join("included");
        let known = dir.path().join("known_hosts");
        fs::write(&config, format!("Include \"{}\"\n", included.display())).unwrap();
        fs::write(
            &included,
            format!(
                "Host web1\n  HostName 127.0.0.2\n  UserKnownHostsFile \"{}\"\n",
                known.display()
            ),
        )
        .unwrap();
        fs::write(&known, "127.0.0.2 ssh-ed25519 AAAA\n").unwrap();
        let options = SshOptions {
            config: Some(config.clone()),
            ..SshOptions::default()
        };
        let args = ["-F".into(), config.clone().into_os_string()];
        let key = |options: &SshOptions| effective_key(&args, "web1", options).unwrap();
        let first = key(&options);
        assert_eq!(first, key(&options));
        assert_ne!(
            first,
            key(&SshOptions {
                accept_new_host_keys: true,
                ..options.clone()
            })
        );
        // The host moves, in the included file.
        fs::write(
            &included,
            format!(
                "Host web1\n  HostName 127.0.0.3\n  UserKnownHostsFile \"{}\"\n",
                known.display()
            ),
        )
        .unwrap();
        let moved = key(&options);
        assert_ne!(first, moved);
        // Its key leaves the known hosts file only the included file names.
        fs::write(&known, "").unwrap();
        assert_ne!(moved, key(&options));
        // A `Match` that only some hosts meet is followed too.
        fs::write(&included, "Match host web1\n  Port 2222\n").unwrap();
        let matched = key(&options);
        assert!(matched.contains("\nport 2222\n"), "{matched}");
        assert!(
            !effective_key(&args, "web2", &options)
                .unwrap()
                .contains("\nport 2222\n")
        );
    }

    /// What `ssh -G` makes of a configuration for a host: the value of
    /// `key`.
    fn effective(config: &Path, key: &str) -> String {
        let out = std::process::Command::new(landfall_testbed::require("ssh"))
            .arg("-G")
            .arg("-F")
            .arg(config)
            .arg("web1")
            .output()
            .expect("ssh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_string()
    }

    #[test]
    fn landfall_bounds_connections_unless_the_users_configuration_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user_config");
        fs::write(&user, "Host web1\n  ConnectTimeout 3\n  Port 2222\n").unwrap();
        let config = defaults_config(dir.path(), Some(&user)).unwrap();
        assert_eq!(effective(&config, "connecttimeout"), "3");
        assert_eq!(effective(&config, "port"), "2222");
        assert_eq!(effective(&config, "serveraliveinterval"), "5");
        assert_eq!(effective(&config, "serveralivecountmax"), "3");

        fs::write(&user, "Host other\n  ConnectTimeout 3\n").unwrap();
        assert_eq!(effective(&config, "connecttimeout"), "10");
    }

    #[test]
    fn known_hosts_files_with_spaces_in_their_paths_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let spaced = dir.path().join("a b").join("known hosts");
        fs::create_dir_all(spaced.parent().unwrap()).unwrap();
        fs::write(&spaced, "").unwrap();
        let plain = dir.path().join("kh");
        fs::write(&plain, "").unwrap();
        let missing = dir.path().join("not there");
        let line = format!(
            "{} {} {}",
            spaced.display(),
            plain.display(),
            missing.display()
        );
        let missing = missing.display().to_string();
        let (head, tail) = missing.rsplit_once(' ').unwrap();
        assert_eq!(
            known_hosts_files(&line),
            [
                spaced.display().to_string(),
                plain.display().to_string(),
                head.to_string(),
                tail.to_string()
            ]
        );
    }
}
