//! rsync as the ssh transport runs it: where a host's path is, in the
//! syntax rsync and git read, and what rsync says of a copy (its progress,
//! the files it sent and the bytes).

use crate::assemble::MANIFEST_FILE;
use crate::transport::PushStats;

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
