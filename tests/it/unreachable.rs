//! A host that cannot be reached: every command says why first, and
//! landfall's own ssh command line only under `--verbose`, once.

use crate::support::{Outcome, Workspace};

/// A workspace whose environment `far` has one host, `web3`, at an address
/// of the workspace's own that nothing listens on; and the `ADDRESS:PORT`
/// ssh tries.
fn far_away() -> (Workspace, String) {
    let ws = Workspace::hello_service();
    let (address, port) = (ws.silent_address(), 2222);
    ws.write(
        "ssh_config",
        &format!("Host web3\n  HostName {address}\n  Port {port}\n  ConnectTimeout 10\n"),
    );
    ws.write(
        "environments/far.toml",
        "[environment]\nssh_config = \"../ssh_config\"\n\n\
         [hosts.web3]\nroles = [\"web\"]\nvars = { port = 18083 }\n",
    );
    (ws, format!("{address}:{port}"))
}

/// Everything the run printed, both streams.
fn said(out: &Outcome) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

#[test]
fn an_unreachable_host_is_named_with_its_cause_first_and_no_command_line() {
    let (ws, address) = far_away();
    let cause = format!("cannot reach `web3` ({address}): Connection refused");
    for args in [
        &["status", "far"][..],
        &["exec", "far", "--", "true"],
        &["logs", "far"],
        &["prune", "far", "--yes"],
    ] {
        let out = ws.run_within(60, args);
        out.assert_code(1);
        let text = said(&out);
        assert!(text.contains(&cause), "{args:?}:\n{text}");
        assert!(!text.contains("ControlPath"), "{args:?}:\n{text}");
        assert!(!text.contains("ssh -F"), "{args:?}:\n{text}");
    }
}

#[test]
fn verbose_shows_the_command_line_of_an_unreachable_host_once() {
    let (ws, address) = far_away();
    let cause = format!("cannot reach `web3` ({address}): Connection refused");
    // `status` reads both of web3's artifacts and its orphans: three
    // errors of one command line.
    for args in [
        &["status", "far", "-v"][..],
        &["exec", "far", "-v", "--", "true"],
    ] {
        let out = ws.run_within(60, args);
        out.assert_code(1);
        let text = said(&out);
        assert!(text.contains(&cause), "{args:?}:\n{text}");
        assert_eq!(
            text.matches("command line: `ssh ").count(),
            1,
            "{args:?}:\n{text}"
        );
    }
    // JSON keeps the whole message: the cause, then the command line.
    let out = ws.run_within(
        60,
        &["exec", "far", "--message-format", "json", "--", "true"],
    );
    let exec = out.events_of("exec");
    let error = exec[0]["error"].as_str().unwrap();
    assert!(error.starts_with(&cause), "{error}");
    assert!(error.contains("\ncommand line: `ssh "), "{error}");
}
