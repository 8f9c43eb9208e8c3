//! `cargo deploy shell` through a real pseudo-terminal (expectrl), on a
//! test bed of three sshd hosts: completion offers roles and hosts, `cd`
//! narrows the selection shown in the prompt, `run` streams each host's
//! lines, `ssh HOST` is a session with a terminal on that host, every
//! command run is in the hosts' logs, and the history outlives the shell.
//! Also `exec` streaming each line as it comes, and its `--group`.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use expectrl::Expect as _;
use expectrl::session::{OsSession, Session};
use landfall_testbed::Scoped;

use crate::support::{Workspace, free_port};

const APP: &str = "hello/app";

/// The prompts on an empty line: as completion lists candidates, the
/// prompt is drawn again with what is typed, which is not the next prompt.
const ROOT: &str = "testbed (3 hosts)> \r";
const WEB: &str = "testbed @web (3 hosts)> \r";

/// A session of the shell on `testbed`, on a pseudo-terminal.
fn shell(ws: &Workspace) -> OsSession {
    let mut command: Command = ws.command(&["shell", "testbed"]);
    command.env("TERM", "xterm");
    let mut session = Session::spawn(command).expect("the shell starts on a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(20)));
    // Each match ends at its first occurrence, not at the last one read.
    session.set_expect_lazy(true);
    session
}

/// Waits for `needle` on the terminal; on a timeout, fails showing what the
/// terminal showed instead.
#[track_caller]
fn expect<N: expectrl::Needle>(p: &mut OsSession, needle: N, what: &str) -> expectrl::Captures {
    match p.expect(needle) {
        Ok(found) => found,
        Err(err) => {
            let mut buf = vec![0; 1 << 16];
            let n = p.try_read(&mut buf).unwrap_or(0);
            panic!(
                "{err} waiting for {what}; the terminal shows {:?}",
                String::from_utf8_lossy(&buf[..n])
            )
        }
    }
}

/// Lines of the log of `app` on a host.
fn log_lines(testbed: &Scoped, host: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(testbed.srv(host).join(APP).join(".landfall/log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_shell_completes_narrows_runs_connects_and_remembers() {
    let testbed = Scoped::up(3).expect("the test bed starts");
    let ws = Workspace::hello();
    ws.use_testbed(&testbed, free_port());
    ws.run(&["deploy", "testbed"]).assert_code(0);

    let mut p = shell(&ws);
    expect(&mut p, ROOT, "the first prompt");
    // Completion: a first Tab completes what is common, a second lists.
    p.send("cd \t\t").unwrap();
    expect(&mut p, "@web", "roles offered");
    expect(&mut p, "host1", "hosts offered");
    p.send("@w\t\r").unwrap();
    expect(&mut p, WEB, "the prompt of @web");
    p.send("cd host\t\t").unwrap();
    expect(&mut p, "host3", "hosts offered");
    p.send("3\r").unwrap();
    expect(
        &mut p,
        "testbed @web/host3 (1 host)> \r",
        "the prompt of host3",
    );
    p.send("cd ..\r").unwrap();
    expect(&mut p, WEB, "the prompt of @web");

    p.send("run hostname\r").unwrap();
    // Each host answers, in any order.
    let mut answered = Vec::new();
    for _ in 0..3 {
        let line = expect(&mut p, expectrl::Regex(r"host\d \| \S+"), "run's lines");
        answered.push(String::from_utf8_lossy(&line[0])[..5].to_string());
    }
    answered.sort();
    assert_eq!(answered, ["host1", "host2", "host3"]);
    expect(&mut p, WEB, "the prompt of @web");

    p.send("ls\r").unwrap();
    expect(
        &mut p,
        expectrl::Regex(r"app +[0-9a-f]{20}"),
        "the release of app",
    );
    expect(&mut p, WEB, "the prompt of @web");

    // A session on host2, with a terminal there.
    p.send("ssh host2\r").unwrap();
    // Typing waits for the remote shell's prompt, as a person does.
    expect(&mut p, expectrl::Regex(r"[#$] $"), "the remote prompt");
    p.send("tty\r").unwrap();
    expect(&mut p, "/dev/pts/", "the remote terminal");
    p.send("hostname; exit\r").unwrap();
    expect(&mut p, WEB, "the prompt of @web");
    p.send("exit\r").unwrap();
    expect(&mut p, expectrl::Eof, "the shell to end");

    // What was run is in the hosts' logs: the command and how it ended.
    // The session was on host2, and on no other host.
    for host in ["host1", "host3"] {
        let log = log_lines(&testbed, host);
        let sessions = log
            .iter()
            .filter(|e| e["command"].as_str().is_some_and(|c| c.contains("SHELL")));
        assert_eq!(sessions.count(), 0, "{host}: {log:?}");
    }
    let log = log_lines(&testbed, "host2");
    let ran: Vec<&serde_json::Value> = log.iter().filter(|e| e["event"] == "exec").collect();
    assert_eq!(ran.len(), 2, "{log:?}");
    assert_eq!(ran[0]["command"], "hostname");
    let ended = log
        .iter()
        .find(|e| e["event"] == "exec_end" && e["id"] == ran[0]["id"]);
    assert_eq!(ended.map(|e| &e["status"]), Some(&0.into()), "{log:?}");
    assert!(
        ran[1]["command"].as_str().unwrap().contains("SHELL"),
        "{ran:?}"
    );
    assert!(
        ran.iter()
            .all(|e| e["user"] == "root" && e["time"].is_string())
    );

    // The history outlives the shell: the line before `exit` is two up.
    let mut p = shell(&ws);
    expect(&mut p, ROOT, "the first prompt");
    p.send("\x1b[A\x1b[A").unwrap();
    expect(&mut p, "ssh host2", "the line from history");
    // Ctrl-C at the prompt drops the line.
    p.send("\x03").unwrap();
    expect(&mut p, ROOT, "the prompt again");
    p.send("exit\r").unwrap();
    expect(&mut p, expectrl::Eof, "the shell to end");
    let history = ws.path("target/landfall/shell/testbed.history");
    let mode = std::fs::metadata(&history).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn exec_streams_each_line_as_it_comes_and_groups_on_request() {
    let testbed = Scoped::up(2).expect("the test bed starts");
    let ws = Workspace::hello();
    ws.use_testbed(&testbed, free_port());
    ws.run(&["deploy", "testbed"]).assert_code(0);

    // Each host prints a line a second, with the time it printed it; each
    // line must reach here within half a second.
    let mut child = ws
        .command(&[
            "exec",
            "testbed",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3 4; do echo tick $i $(date +%s.%N); sleep 1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = 0;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let printed: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            now - printed < 0.5,
            "`{line}` arrived {:.2}s late",
            now - printed
        );
        seen += 1;
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(seen, 8);

    // `--group`: one block per distinct output, failed hosts first, and
    // the exit status says a host failed, naming it.
    let started = Instant::now();
    let out = ws.run(&[
        "exec",
        "testbed",
        "--group",
        "--",
        "sh",
        "-c",
        "echo same; [ \"$SSH_CONNECTION\" = \"${SSH_CONNECTION%127.0.0.3 *}\" ] || exit 3",
    ]);
    out.assert_code(1);
    let blocks: Vec<&str> = out.stdout.split("----------------\n").collect();
    assert_eq!(blocks[1], "host2\n", "{}", out.stdout);
    assert_eq!(blocks[2], "same\n");
    assert_eq!(blocks[3], "host1\n");
    assert!(
        out.stderr.contains("failed on 1 of 2 hosts: host2"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(60));

    // `--stdin` goes to every host; `--artifact` starts in its `current`.
    let mut child = ws
        .command(&[
            "exec",
            "testbed",
            "--stdin",
            "--artifact",
            "app",
            "--",
            "sh",
            "-c",
            "pwd; cat",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"fed\n").unwrap();
    let out = crate::support::Outcome::from(child.wait_with_output().unwrap());
    out.assert_code(0);
    for host in ["host1", "host2"] {
        assert!(
            out.stdout
                .contains(&format!("{host} | /srv/hello/app/current\n")),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains(&format!("{host} | fed\n")),
            "{}",
            out.stdout
        );
    }
}
