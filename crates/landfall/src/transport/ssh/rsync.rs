//! rsync as the ssh transport runs it: the copy of a release to a host,
//! over the host's master connection, where a host's path is, in the
//! syntax rsync and git read, and what rsync says of a copy (its progress,
//! the files it sent and the bytes).

use std::ffi::OsString;
use std::path::Path;

use crate::assemble::{MANIFEST_FILE, Release};
use crate::plan::Target;
use crate::process::{self, Cmd, ProcessError};
use crate::transport::{Basis, Progress, PushStats};

/// Copies `release` to `target`'s host at `address` with rsync, over
/// `remote_shell` (the ssh command line of the host's master
/// connection), into the release's `.partial` directory, from `basis`:
/// what the host already has. `progress` is told the bytes so far.
pub(super) fn push(
    remote_shell: String,
    address: &str,
    target: &Target,
    release: &Release,
    basis: Basis<'_>,
    progress: Progress<'_>,
) -> Result<PushStats, ProcessError> {
    // The artifact tree and the release's own files, which never share
    // a path, merge into one upload.
    let with_slash = |dir: &Path| {
        let mut dir = dir.as_os_str().to_os_string();
        dir.push("/");
        dir
    };
    let dest = remote_path(
        address,
        &format!("{}/releases/{}.partial/", target.path, release.id),
    );
    // Owner and group are the remote user's; files and directories
    // keep their mtimes, files their modes, and directories are
    // `rwxr-xr-x` as landfall makes them anywhere, whatever the umask
    // they were made under here.
    let mut cmd = Cmd::new("rsync")
        .args([
            // `--secluded-args` (`--protect-args` before rsync 3.2.6):
            // the destination's path travels in rsync's own protocol,
            // not on the remote shell's command line, where rsync's
            // escaping of it is not to be relied on (Debian's 3.2.7
            // with its security fixes left a backquote for the shell
            // to run).
            "-s",
            "--links",
            "--perms",
            "--chmod=D755",
            "--times",
            "--stats",
            // A transfer that stalls this long (a host that froze, a
            // network that went away) is given up.
            "--timeout=120",
            // One line per file sent, to count them without the
            // release's manifest.
            "--out-format=%i %n",
            // The bytes so far, on a line of its own that it redraws.
            "--info=progress2",
        ])
        .arg("-e")
        .arg(remote_shell);
    if let Basis::Derived(gathered) = basis {
        // Only the delta's paths, each known to differ. What the
        // release lacks was removed from the copy by the claim: rsync's
        // `--delete-missing-args` is refused by the receivers of
        // rsync's hardened releases (3.4.x, and distributions' 3.2.7
        // with those fixes) for any path after the first.
        let mut from = OsString::from("--files-from=");
        from.push(&gathered.list);
        cmd = cmd
            .arg("--from0")
            .arg(from)
            .args(["--ignore-times", "--force"])
            .arg(with_slash(&gathered.dir));
    } else {
        cmd = cmd.args(["--recursive", "--delete"]);
        if let Basis::Release(current) = basis {
            cmd = cmd.arg(format!("--link-dest={}/releases/{current}", target.path));
        }
        cmd = cmd
            .arg(with_slash(&release.tree))
            .arg(with_slash(&release.stage));
    }
    let cmd = cmd.arg(dest).in_own_process_group().for_host(&target.host);
    // What rsync says is read as it comes, never kept whole: a release
    // of many files is a line each.
    let mut stats = PushStats::default();
    process::run_streaming(&cmd, &mut |piece| {
        if let Some(bytes) = progress_bytes(piece) {
            progress(bytes);
        }
        let seen = parse_rsync_stats(piece);
        stats.files += seen.files;
        stats.bytes = stats.bytes.max(seen.bytes);
    })?;
    Ok(stats)
}

/// `ADDRESS:PATH` as rsync and git read it (scp's syntax), an IPv6
/// address in brackets: `::1:/srv` would be read as a daemon's module.
pub(super) fn remote_path(address: &str, path: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{path}")
    } else {
        format!("{address}:{path}")
    }
}

/// The bytes so far of a line of rsync's `--info=progress2`, such as
/// `  1,234,567  45%  12.34MB/s    0:00:01 (xfr#5, to-chk=10/20)`.
pub(super) fn progress_bytes(line: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    let bytes = words.next()?;
    let percent = words.next()?;
    if !percent.ends_with('%') || !bytes.chars().all(|c| c.is_ascii_digit() || c == ',') {
        return None;
    }
    bytes.replace(',', "").parse().ok()
}

/// Reads the files sent (`<f` lines of `--out-format=%i %n`, the
/// release's manifest left out) and `Total bytes sent` from rsync's output.
pub(super) fn parse_rsync_stats(stdout: &str) -> PushStats {
    // Progress lines are redrawn with carriage returns: every piece
    // between line ends is a line here.
    let files = stdout
        .split(['\n', '\r'])
        .filter_map(|line| line.strip_prefix("<f"))
        .filter(|rest| {
            rest.split_once(' ')
                .is_none_or(|(_, name)| name != MANIFEST_FILE)
        })
        .count();
    let bytes = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Total bytes sent: "))
        .map(|rest| {
            rest.chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    PushStats {
        files,
        bytes,
        objects: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{self, Cmd};
    use std::fs;

    #[test]
    fn an_ipv6_address_is_bracketed_for_rsync_and_git() {
        assert_eq!(remote_path("::1", "/srv/a/"), "[::1]:/srv/a/");
        assert_eq!(remote_path("fe80::1%eth0", "/srv"), "[fe80::1%eth0]:/srv");
        assert_eq!(remote_path("web1", "/srv"), "web1:/srv");
        assert_eq!(remote_path("10.0.0.2", "/srv"), "10.0.0.2:/srv");
    }

    /// The bytes so far come from rsync's own progress lines as rsync
    /// draws them (a real rsync, copying here), up to the whole file.
    #[test]
    fn rsync_says_how_far_a_copy_is() {
        landfall_testbed::require("rsync");
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        fs::create_dir(&from).unwrap();
        fs::write(from.join("big"), vec![7u8; 3 << 20]).unwrap();
        let cmd = Cmd::new("rsync")
            .args(["--recursive", "--info=progress2", "--out-format=%i %n"])
            .arg(format!("{}/", from.display()))
            .arg(dir.path().join("to"));
        let mut seen = Vec::new();
        let mut stdout = String::new();
        process::run_streaming(&cmd, &mut |piece| {
            if let Some(bytes) = progress_bytes(piece) {
                seen.push(bytes);
            }
            stdout.push_str(piece);
            stdout.push('\n');
        })
        .unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&(3 << 20)), "{seen:?}");
        assert!(stdout.contains(">f+++++++++ big"));
    }

    #[test]
    fn rsync_statistics_are_read() {
        let stats = "cd+++++++++ etc/\n<f.st...... etc/hello.toml\r          4,096  88%    0.00kB/s    0:00:00 (xfr#1, to-chk=3/5)\n<f+++++++++ .landfall-manifest\n\
                     cL+++++++++ log -> ../../shared/log\n\
                     Number of files: 5 (reg: 3, dir: 2)\nNumber of regular files transferred: 2\n\
                     Total file size: 4,620 bytes\nTotal bytes sent: 1,234\nTotal bytes received: 96\n";
        let parsed = parse_rsync_stats(stats);
        assert_eq!((parsed.files, parsed.bytes), (1, 1234));
        // `--info=progress2`'s line, and what is not one.
        assert_eq!(
            progress_bytes("     1,234,567  45%   12.34MB/s    0:00:01 (xfr#5, to-chk=10/20)"),
            Some(1_234_567)
        );
        assert_eq!(
            progress_bytes("          0   0%    0.00kB/s    0:00:00"),
            Some(0)
        );
        assert_eq!(progress_bytes("<f+++++++++ etc/hello.toml"), None);
        assert_eq!(progress_bytes("Total bytes sent: 1,234"), None);
        assert_eq!(progress_bytes(""), None);
    }
}
