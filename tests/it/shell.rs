//! `cargo deploy shell` through a real pseudo-terminal (expectrl), on a
//! test bed of three sshd hosts: completion offers roles and hosts, `cd`
//! narrows the selection shown in the prompt, `run` streams each host's
//! lines, `ssh HOST` is a session with a terminal on that host, every
//! command run is in the hosts' logs, and the history outlives the shell;
//! every command of the command line runs in it with its effect (a deploy
//! and a rollback of the selected host, `exec`, `logs`, a confirmed
//! `prune` …), the others are refused in one line, and lines typed ahead
//! run in turn. Also `exec` streaming each line as it comes, and its
//! `--group`.

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
    shell_on(ws, &["testbed"])
}

/// A session of `shell ARGS`, on a pseudo-terminal that echoes what is
/// typed while a command runs, as a person's terminal does.
fn shell_on(ws: &Workspace, args: &[&str]) -> OsSession {
    let shell = ws.command(&[&["shell"], args].concat());
    // The pseudo-terminal starts without echo; the shell keeps the mode it
    // finds, to restore it after each line it reads, so echo is turned on
    // before it starts.
    let mut command = Command::new("sh");
    command
        .args(["-c", "\"$0\" echo && exec \"$@\""])
        .arg(landfall_testbed::require("stty"))
        .arg(shell.get_program())
        .args(shell.get_args())
        .current_dir(ws.root());
    for (key, value) in shell.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
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

/// Types `line` and waits for the prompt `prompt` after it ran; what the
/// terminal showed before it.
#[track_caller]
fn line(p: &mut OsSession, line: &str, prompt: &str) -> String {
    p.send(format!("{line}\r")).unwrap();
    let shown = expect(p, prompt, &format!("the prompt after `{line}`"));
    String::from_utf8_lossy(shown.before()).into_owned()
}

/// The release `current` of `app` points at on a test-bed host.
fn current(testbed: &Scoped, host: &str) -> Option<String> {
    crate::support::current_on(testbed, host, APP)
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
    let host2 = &testbed.hosts[1].address;
    let fails_on_host2 =
        format!("echo same; [ \"$SSH_CONNECTION\" = \"${{SSH_CONNECTION%{host2} *}}\" ] || exit 3");
    let out = ws.run(&[
        "exec",
        "testbed",
        "--group",
        "--",
        "sh",
        "-c",
        &fails_on_host2,
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

/// The prompt of the shell on two test-bed hosts, and of one of them.
const TWO: &str = "testbed (2 hosts)> \r";
const HOST2: &str = "testbed host2 (1 host)> \r";

/// `deploy` in the shell failed every time: the shell put a `deploy` in
/// front of the line's, and `cargo deploy deploy testbed` is no command.
/// Now each command of the command line runs as it would be typed after
/// `cargo deploy`, with the environment and the selection added, and
/// changes or reads the hosts as it would there.
#[test]
fn deploy_rollback_and_the_command_line_run_in_the_shell_on_the_hosts() {
    let testbed = Scoped::up(2).expect("the test bed starts");
    let ws = Workspace::hello();
    ws.use_testbed(&testbed, free_port());
    ws.run(&["deploy", "testbed"]).assert_code(0);
    // A release is rendered for its host: each has its own id.
    let first = ["host1", "host2"].map(|h| current(&testbed, h).expect("a first release"));

    let mut p = shell(&ws);
    expect(&mut p, TWO, "the first prompt");
    // A new greeting renders a new release of `app`: deployed to host2,
    // the selection, and to no other host.
    ws.edit(
        "deploy.toml",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    line(&mut p, "cd host2", HOST2);
    p.set_expect_timeout(Some(Duration::from_secs(120)));
    line(&mut p, "deploy", HOST2);
    p.set_expect_timeout(Some(Duration::from_secs(20)));
    let second = current(&testbed, "host2").expect("a release on host2");
    assert_ne!(second, first[1]);
    assert_eq!(current(&testbed, "host1").as_ref(), Some(&first[0]));
    let page = |host: &str| {
        let address = &testbed
            .hosts
            .iter()
            .find(|h| h.name == host)
            .unwrap()
            .address;
        crate::support::http_get_at(address, ws_port(&ws), "/").map(|(_, body)| body)
    };
    assert_eq!(page("host2").as_deref(), Some("howdy from host2\n"));

    // `status` reads it; `rollback` switches host2 back.
    p.send("status\r").unwrap();
    expect(&mut p, &second[..12], "the new release in the status");
    expect(&mut p, HOST2, "the prompt after `status`");
    let shown = line(&mut p, "rollback", HOST2);
    assert_eq!(
        current(&testbed, "host2").as_ref(),
        Some(&first[1]),
        "{shown}"
    );

    // `exec` runs on the selection; `config` shows its variables; `check`
    // and `build` contact no host.
    p.send("exec -- sh -c 'echo exec-$((6*7))'\r").unwrap();
    expect(&mut p, "host2 | exec-42", "exec's line");
    expect(&mut p, HOST2, "the prompt after `exec`");
    let ran = |host: &str| {
        log_lines(&testbed, host).iter().any(|e| {
            e["event"] == "exec" && e["command"].as_str().is_some_and(|c| c.contains("exec-"))
        })
    };
    assert!(ran("host2") && !ran("host1"));
    p.send("config\r").unwrap();
    expect(&mut p, "# host `host2` of environment `testbed`", "config");
    expect(&mut p, "greeting = \"howdy\"", "config's variables");
    expect(&mut p, HOST2, "the prompt after `config`");
    p.send("check\r").unwrap();
    expect(
        &mut p,
        "Checked 2 artifacts, 1 environment (testbed)",
        "check",
    );
    expect(&mut p, HOST2, "the prompt after `check`");
    p.send("build\r").unwrap();
    expect(
        &mut p,
        expectrl::Regex("app +[0-9a-f]{12}"),
        "build's artifacts",
    );
    expect(&mut p, HOST2, "the prompt after `build`");

    // `prune` asks, on this terminal, and removes the orphans when told.
    ws.remove_site();
    line(&mut p, "cd /", TWO);
    p.send("prune\r").unwrap();
    expect(&mut p, "[y/N] ", "prune's question");
    p.send("y\r").unwrap();
    expect(&mut p, "2 orphans pruned", "prune's summary");
    expect(&mut p, TWO, "the prompt after `prune`");
    for host in ["host1", "host2"] {
        assert!(!testbed.srv(host).join("hello/site").exists(), "{host}");
    }
    p.send("exit\r").unwrap();
    expect(&mut p, expectrl::Eof, "the shell to end");
}

/// A line typed while a command still ran was lost. Two lines typed at
/// once, and a third typed while the first runs, each run in turn once
/// the first ends: the first waits for a file the test makes only after
/// the third was typed.
#[test]
fn lines_typed_ahead_run_once_the_command_before_them_ends() {
    let testbed = Scoped::up(2).expect("the test bed starts");
    let ws = Workspace::hello();
    ws.use_testbed(&testbed, free_port());
    ws.run(&["deploy", "testbed"]).assert_code(0);

    let mut p = shell(&ws);
    expect(&mut p, TWO, "the first prompt");
    // The wait on the hosts has a deadline of its own, a minute.
    p.send(
        "run sh -c 'echo gated; i=0; while [ ! -e /srv/gate ] && [ $i -lt 600 ]; \
         do sleep 0.1; i=$((i+1)); done; echo released'\r\
         exec -- sh -c 'echo second-$((6*7))'\r",
    )
    .unwrap();
    // Each host answers, in any order.
    for _ in 0..2 {
        expect(
            &mut p,
            expectrl::Regex(r"host\d \| gated"),
            "the first line running",
        );
    }
    p.send("run sh -c 'echo third-$((6*7))'\r").unwrap();
    // The third line is typed: the terminal echoes it.
    expect(&mut p, "third-$((6*7))'", "the third line's echo");
    for host in ["host1", "host2"] {
        std::fs::write(testbed.srv(host).join("gate"), "").unwrap();
    }
    for _ in 0..2 {
        expect(
            &mut p,
            expectrl::Regex(r"host\d \| released"),
            "the first line's end",
        );
    }
    for line in ["second", "third"] {
        for _ in 0..2 {
            let needle = format!(r"host\d \| {line}-42");
            expect(&mut p, expectrl::Regex(needle.as_str()), line);
        }
    }
    expect(&mut p, TWO, "the prompt after the third line");
    p.send("exit\r").unwrap();
    expect(&mut p, expectrl::Eof, "the shell to end");
}

/// The port hello listens on in a workspace pointed at the test bed.
fn ws_port(ws: &Workspace) -> u16 {
    let env = ws.read("environments/testbed.toml");
    let at = env.find("port = ").unwrap() + "port = ".len();
    env[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Over `--local`: `logs` reads the selected hosts' services, `secrets` is
/// the environment's, `help` and completion list what runs, and what has
/// no place in a shell says so in one line.
#[test]
fn logs_secrets_help_and_what_has_no_place_in_a_shell() {
    const DEV: &str = "dev (2 hosts)> \r";
    const WEB2: &str = "dev web2 (1 host)> \r";
    let ws = Workspace::hello_service();
    let mut p = shell_on(&ws, &["dev", "--local"]);
    expect(&mut p, DEV, "the first prompt");
    p.set_expect_timeout(Some(Duration::from_secs(120)));
    line(&mut p, "deploy", DEV);
    p.set_expect_timeout(Some(Duration::from_secs(20)));
    assert!(ws.current("web1", "/srv/hello/app").is_some());

    line(&mut p, "cd web2", WEB2);
    let shown = line(&mut p, "logs -n 5", WEB2);
    // Each line after its host and its time.
    let said = format!("hello: listening on {}", ws.listen[1]);
    assert!(
        shown
            .lines()
            .any(|l| l.contains("web2 | ") && l.contains(&said)),
        "{shown}"
    );
    assert!(!shown.contains("web1 |"), "{shown}");
    let shown = line(&mut p, "status --only web1", WEB2);
    assert!(
        shown.contains("the selection is the `--only` here"),
        "{shown}"
    );

    let shown = line(&mut p, "secrets show", WEB2);
    assert!(
        shown.contains("environment `dev` has no secrets"),
        "{shown}"
    );
    for (command, said) in [
        ("shell", "this is the shell already"),
        ("init", "`init` writes a workspace's files"),
        ("completions bash", "`completions` are for your login shell"),
    ] {
        let shown = line(&mut p, command, WEB2);
        assert!(shown.contains(said), "{command}: {shown}");
        assert!(!shown.contains("Usage:"), "{command}: {shown}");
    }
    let shown = line(&mut p, "deploy --help", WEB2);
    assert!(shown.contains("Usage: cargo deploy"), "{shown}");

    let shown = line(&mut p, "help", WEB2);
    for usage in [
        "deploy [--dry-run]",
        "rollback [--to DEPLOY|RELEASE|COMMIT]",
        "build [--out DIR]",
        "config [--annotate]",
        "check ",
        "secrets edit | set NAME | show [KEY]",
        "not here: shell, init, completions",
    ] {
        assert!(shown.contains(usage), "no `{usage}` in {shown}");
    }
    p.send("secrets \t\t").unwrap();
    expect(&mut p, "recipients", "secrets' subcommands offered");
    // Ctrl-C drops the line.
    p.send("\x03").unwrap();
    expect(&mut p, WEB2, "the prompt again");
    p.send("exit\r").unwrap();
    expect(&mut p, expectrl::Eof, "the shell to end");
}
