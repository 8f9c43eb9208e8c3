//! Running processes with deadlines and bounded output, tested.

use super::*;

#[test]
fn a_command_past_its_deadline_is_stopped_and_named() {
    let started = std::time::Instant::now();
    let cmd = Cmd::new("sh")
        .args(["-c", "echo started >&2; exec sleep 30"])
        .deadline(std::time::Duration::from_millis(300))
        .for_host("web1");
    let err = run_unchecked(&cmd).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let message = err.to_string();
    assert!(
        message.starts_with("on `web1`: `sh` did not finish within 0s and was stopped:\nstarted")
            && message.ends_with("command line: `sh -c 'echo started >&2; exec sleep 30'`"),
        "{message}"
    );
    // A process it started, which holds its output open, delays the
    // error a little, not until it ends.
    let started = std::time::Instant::now();
    let cmd = Cmd::new("sh")
        .args(["-c", "sleep 30; true"])
        .deadline(std::time::Duration::from_millis(300));
    assert!(run_unchecked(&cmd).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let quick = Cmd::new("true").deadline(std::time::Duration::from_secs(30));
    assert!(run_unchecked(&quick).unwrap().success());
}

/// One line of megabytes from a host was held whole, then handed on
/// whole: it is cut at the limit as it streams, and says so.
#[test]
fn a_line_longer_than_the_limit_streams_cut() {
    let cmd = Cmd::new("sh").args([
        "-c",
        "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo next; printf 'last'",
    ]);
    let mut lines = Vec::new();
    let output = stream_lines(&cmd, &|| false, &mut |line| {
        lines.push(line.to_string());
    })
    .unwrap();
    assert_eq!(output.code, Some(0));
    assert_eq!(
        lines.len(),
        3,
        "{:?}",
        lines.iter().map(String::len).collect::<Vec<_>>()
    );
    assert_eq!(
        lines[0],
        format!(
            "{}{}\n",
            "x".repeat(LINE_LIMIT),
            bounded::cut_note(LINE_LIMIT)
        )
    );
    assert_eq!(lines[1..], ["next\n", "last"]);
}

/// A host's script that printed without end was kept whole in memory:
/// its head is kept, and its stderr says what was dropped.
#[test]
fn a_host_that_prints_without_end_is_kept_to_a_head() {
    let mut cmd = Cmd::new("sh")
        .args(["-c", "head -c 3000000 /dev/zero; echo err >&2"])
        .bounded_output();
    cmd.kept = Some(1000);
    let output = run_unchecked(&cmd).unwrap();
    assert_eq!(output.stdout.len(), 1000);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("err\nlandfall: its output was cut at 1000 bytes (2999000 more"),
        "{stderr}"
    );
}

/// A process's stderr was kept whole, though errors show its tail.
#[test]
fn stderr_is_kept_to_its_tail() {
    let cmd = Cmd::new("sh").args([
        "-c",
        "{ i=0; while [ $i -lt 20 ]; do head -c 100000 /dev/zero | tr '\\0' y; echo; i=$((i+1)); done; echo last; } >&2",
    ]);
    let output = run_unchecked(&cmd).unwrap();
    assert!(
        output.stderr.len() <= STDERR_KEPT,
        "{}",
        output.stderr.len()
    );
    assert!(output.stderr.ends_with(b"last\n"), "its last line is whole");
}

#[test]
fn quote_passes_plain_words_and_wraps_the_rest() {
    assert_eq!(quote("releases/abc"), "releases/abc");
    assert_eq!(quote(""), "''");
    assert_eq!(quote("a b"), "'a b'");
}

#[test]
fn quoted_words_survive_a_real_shell() {
    let nasty = "a'b \"c\" $(echo pwned) `id` ; \n -x";
    let out = run(&Cmd::new("sh")
        .arg("-c")
        .arg(format!("printf %s {}", quote(nasty))))
    .unwrap();
    assert_eq!(out.stdout_text(), nasty);
}

#[test]
fn errors_name_command_host_status_and_stderr() {
    let err = run(&Cmd::new("sh")
        .args(["-c", "echo boom >&2; exit 3"])
        .for_host("web1"))
    .unwrap_err();
    let text = err.to_string();
    // What happened first, the program named; the command line last.
    let (cause, line) = split_command_line(&text);
    assert_eq!(cause, "on `web1`: `sh` exited with status 3:\nboom");
    assert_eq!(line, Some("`sh -c 'echo boom >&2; exit 3'`"));
    // A command of this machine's is named whole, as it has no host's.
    let err = run(&Cmd::new("sh").args(["-c", "exit 4"])).unwrap_err();
    assert_eq!(err.to_string(), "`sh -c 'exit 4'` exited with status 4");
}
