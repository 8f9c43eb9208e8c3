//! What ssh says of a host it cannot reach, as landfall says it: the
//! host, where ssh tried and why, first (`cannot reach HOST (ADDRESS:PORT):
//! why`), whichever of ssh, rsync or git met it, and the command line last.

use crate::process::{Cmd, ProcessError, ProcessErrorKind};

/// Turns ssh's own failure (exit 255) into an error that says first why
/// the host cannot be reached, with a hint for the most common one.
pub(super) fn connection_error(
    cmd: &Cmd,
    host: &str,
    address: &str,
    stderr_tail: &str,
) -> ProcessError {
    let (address, mut reason) = unreachable_reason(address, stderr_tail);
    if reason.contains("Host key verification failed") {
        reason.push_str(
            "\nhint: the host's key is unknown or has changed; check it and add it to the known_hosts file, \
             or, for a host that is new, set `host_keys = \"accept-new\"` in the environment's \
             `[environment]` (a changed key is always refused)",
        );
    }
    ProcessError {
        command: cmd.to_string(),
        host: Some(host.to_string()),
        kind: ProcessErrorKind::Unreachable { address, reason },
    }
}

/// Where ssh tried to connect and why it could not, from what it printed:
/// `ssh: connect to host 127.0.0.9 port 22: Connection refused` says both;
/// otherwise the address is the one landfall gave it, and the reason
/// ssh's own lines (such as `Permission denied (publickey)`), with no
/// `ssh: ` before them.
fn unreachable_reason(address: &str, stderr_tail: &str) -> (String, String) {
    let lines: Vec<&str> = stderr_tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    for line in &lines {
        let Some(rest) = line.strip_prefix("ssh: connect to host ") else {
            continue;
        };
        let parsed = rest.split_once(" port ").and_then(|(name, rest)| {
            let (port, reason) = rest.split_once(": ")?;
            let name = if name.contains(':') {
                format!("[{name}]")
            } else {
                name.to_string()
            };
            Some((format!("{name}:{port}"), reason.to_string()))
        });
        if let Some(parsed) = parsed {
            return parsed;
        }
    }
    let reason: Vec<&str> = lines
        .iter()
        .map(|l| l.strip_prefix("ssh: ").unwrap_or(l))
        .collect();
    let reason = if reason.is_empty() {
        "ssh exited with status 255".to_string()
    } else {
        reason.join("\n")
    };
    (address.to_string(), reason)
}

/// A push's failure, whose ssh could not reach the host: rsync and git
/// report ssh's own error among theirs, which is what it is about.
pub(super) fn push_error(err: ProcessError, address: &str) -> ProcessError {
    let ProcessErrorKind::Status { stderr_tail, .. } = &err.kind else {
        return err;
    };
    let ssh_said = stderr_tail.lines().any(|l| {
        let l = l.trim();
        l.starts_with("ssh: ")
            || l.starts_with("Host key verification failed")
            || (l.contains(": Permission denied (") && l.ends_with(").") && !l.starts_with("rsync"))
    });
    if !ssh_said {
        return err;
    }
    // rsync's and git's lines about the closed connection say nothing more.
    let ssh_lines: String = stderr_tail
        .lines()
        .filter(|l| {
            !l.starts_with("rsync") && !l.starts_with("fatal:") && !l.contains("remote repository")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (address, reason) = unreachable_reason(address, &ssh_lines);
    ProcessError {
        kind: ProcessErrorKind::Unreachable { address, reason },
        ..err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process;

    /// What a host that cannot be reached is said to be, whichever of ssh,
    /// rsync or git met it: the host, where ssh tried and why, first; the
    /// command line last, on a line of its own.
    #[test]
    fn an_unreachable_host_is_named_with_the_cause_first() {
        let cmd = Cmd::new("ssh").args(["-F", "/tmp/x/ssh_config", "127.0.0.9", "sh", "-s"]);
        let refused = "ssh: connect to host 127.0.0.9 port 22: Connection refused\n";
        let err = connection_error(&cmd, "web3", "127.0.0.9", refused);
        let text = err.to_string();
        let (cause, line) = process::split_command_line(&text);
        assert_eq!(
            cause,
            "cannot reach `web3` (127.0.0.9:22): Connection refused"
        );
        assert_eq!(line, Some("`ssh -F /tmp/x/ssh_config 127.0.0.9 sh -s`"));
        // Without ssh's `connect to host` line, the address is landfall's.
        let denied = "Warning: Permanently added '127.0.0.9' to the list of known hosts.\n\
                      root@127.0.0.9: Permission denied (publickey).\n";
        let err = connection_error(&cmd, "web3", "127.0.0.9", denied).to_string();
        assert!(
            err.starts_with(
                "cannot reach `web3` (127.0.0.9): root@127.0.0.9: Permission denied (publickey).\n"
            ),
            "{err}"
        );
        let v6 = "ssh: connect to host ::1 port 2222: Connection refused";
        assert_eq!(
            unreachable_reason("::1", v6),
            ("[::1]:2222".to_string(), "Connection refused".to_string())
        );
        // rsync's and git's lines about the connection they lost are left
        // out; ssh's own says it all.
        for (program, stderr) in [
            (
                "rsync",
                "ssh: connect to host 127.0.0.9 port 22: Connection refused\r\n\
                 rsync: connection unexpectedly closed (0 bytes received so far) [sender]\n\
                 rsync error: unexplained error (code 255) at io.c(232) [sender=3.2.7]",
            ),
            (
                "git",
                "ssh: connect to host 127.0.0.9 port 22: Connection refused\n\
                 fatal: Could not read from remote repository.\n\n\
                 Please make sure you have the correct access rights\nand the repository exists.",
            ),
        ] {
            let failed =
                Cmd::new(program)
                    .arg("x")
                    .for_host("web3")
                    .error(ProcessErrorKind::Status {
                        code: Some(255),
                        stderr_tail: stderr.to_string(),
                    });
            let text = push_error(failed, "127.0.0.9").to_string();
            assert!(
                text.starts_with(
                    "cannot reach `web3` (127.0.0.9:22): Connection refused\ncommand line: `"
                ),
                "{text}"
            );
        }
        // A push that failed on a reachable host is left as it failed.
        let failed = Cmd::new("rsync")
            .for_host("web3")
            .error(ProcessErrorKind::Status {
                code: Some(23),
                stderr_tail: "rsync: [receiver] mkstemp failed: Permission denied (13)".into(),
            });
        let text = push_error(failed, "127.0.0.9").to_string();
        assert!(
            text.starts_with("on `web3`: `rsync` exited with status 23:\nrsync: [receiver]"),
            "{text}"
        );
    }
}
