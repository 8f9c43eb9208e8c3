//! Progress on a terminal, through a real pseudo-terminal (expectrl): a
//! live line per host, redrawn in place, with what it does, the bytes its
//! push wrote and their rate, and the time taken; plain lines instead
//! under `CI`, and nothing but the summary with `-q`. Without a terminal
//! (every other test) progress is plain lines.

use std::time::Duration;

use expectrl::Expect as _;
use expectrl::session::Session;

use crate::support::Workspace;

/// Erases the line the cursor is on: how a line is drawn again in place.
const ERASE_LINE: &str = "\u{1b}[2K";

/// Everything `cargo deploy ARGS` writes to its terminal, until it ends.
fn on_a_terminal(ws: &Workspace, args: &[&str], ci: bool) -> String {
    let mut command = ws.command(args);
    command.env("TERM", "xterm");
    if ci {
        command.env("CI", "true");
    } else {
        command.env_remove("CI");
    }
    let mut session = Session::spawn(command).expect("cargo deploy starts on a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(300)));
    let found = session
        .expect(expectrl::Eof)
        .expect("cargo deploy ends within its deadline");
    // At the end, the match is all that was read.
    String::from_utf8_lossy(found.get(0).unwrap_or_default()).into_owned()
}

#[test]
fn a_terminal_shows_a_live_line_per_host_and_ci_or_quiet_plain_lines() {
    let ws = Workspace::hello();

    let live = on_a_terminal(&ws, &["deploy", "dev", "--local"], false);
    assert!(live.contains("Finished"), "{live}");
    assert!(
        live.contains(ERASE_LINE),
        "lines are drawn again in place: {live:?}"
    );
    let pushed = regex_lite(&live, "pushed ", "/s), waiting for its batch");
    for (host, artifact) in [
        ("web1", "site"),
        ("web2", "site"),
        ("web1", "app"),
        ("web2", "app"),
    ] {
        let label = format!("{host:<12} {artifact:<8}");
        assert!(
            live.contains(&label),
            "a line for {host} {artifact}: {live:?}"
        );
    }
    assert!(pushed >= 4, "each host's push, with its rate: {live:?}");
    assert!(live.contains("activating…"), "{live:?}");
    assert!(live.contains("activated "), "{live:?}");
    assert!(
        !live.contains("    Pushed "),
        "no plain line for what the live lines show: {live:?}"
    );

    // A change, under CI: the same deploy, as plain lines.
    ws.edit("examples/hello/site/index.html", "<h1>", "<h1>Changed: ");
    let plain = on_a_terminal(&ws, &["deploy", "dev", "--local"], true);
    assert!(plain.contains("Pushed"), "{plain}");
    assert!(plain.contains("Activated"), "{plain}");
    assert!(!plain.contains(ERASE_LINE), "{plain:?}");
    assert!(!plain.contains("activating…"), "{plain:?}");

    // `-q` on a terminal: neither, only the summary.
    ws.edit(
        "examples/hello/site/index.html",
        "Changed:",
        "Changed again:",
    );
    let quiet = on_a_terminal(&ws, &["deploy", "dev", "--local", "-q"], false);
    assert!(quiet.contains("deployed"), "{quiet}");
    assert!(!quiet.contains(ERASE_LINE), "{quiet:?}");
    assert!(
        !quiet.contains("Pushed") && !quiet.contains("pushed"),
        "{quiet:?}"
    );
}

/// How many times `text` holds `start`, then anything but a line's end,
/// then `end`.
fn regex_lite(text: &str, start: &str, end: &str) -> usize {
    text.match_indices(start)
        .filter(|(at, _)| {
            let rest = &text[at + start.len()..];
            let line_end = rest.find(['\r', '\n']).unwrap_or(rest.len());
            rest[..line_end].contains(end)
        })
        .count()
}
