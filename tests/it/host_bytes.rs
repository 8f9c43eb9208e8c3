//! What hosts print reaches the operator inert and bounded: control
//! characters shown, never obeyed, by the terminal (JSON keeps them
//! exact), a line cut at 64 KiB as it streams, input streamed rather than
//! held, and a template that renders too large refused before anything is
//! written. `--local` hosts run the real commands on this machine.

use crate::support::{Workspace, finish_within, wait_for};

/// What a host prints to forge its neighbour's line (a carriage return
/// back to the start, then another host's prefix) and to write the
/// operator's clipboard (OSC 52), on one line; then a bell and an escape
/// sequence on stderr.
const HOSTILE: &str = "printf 'ok\\rweb2 | forged \\033]52;c;cm0gLXJmIH4=\\007 done\\n'; \
                       printf 'err \\033[2J\\007\\n' >&2";

/// The line of `host` as it must be shown, inert.
fn inert_line(host: &str) -> String {
    format!("{host} | ok^Mweb2 | forged ^[]52;c;cm0gLXJmIH4=^G done")
}

#[track_caller]
fn assert_no_raw_controls(text: &str) {
    for (at, c) in text.char_indices() {
        assert!(
            !(c.is_control() && c != '\n' && c != '\t'),
            "a raw {c:?} at byte {at} of:\n{text}"
        );
    }
}

#[test]
fn exec_shows_a_carriage_return_and_an_osc_52_of_a_host_inert() {
    let ws = Workspace::hello();
    let out = ws.run(&["exec", "dev", "--local", "--", "sh", "-c", HOSTILE]);
    out.assert_code(0);
    for host in ["web1", "web2"] {
        let lines: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with(host)).collect();
        assert!(lines.contains(&inert_line(host).as_str()), "{}", out.stdout);
        assert!(
            lines.contains(&format!("{host} | err ^[[2J^G").as_str()),
            "{}",
            out.stdout
        );
    }
    assert_no_raw_controls(&out.stdout);
    assert_no_raw_controls(&out.stderr);
}

#[test]
fn exec_group_shows_host_bytes_inert() {
    let ws = Workspace::hello();
    let out = ws.run(&[
        "exec", "dev", "--local", "--group", "--", "sh", "-c", HOSTILE,
    ]);
    out.assert_code(0);
    let blocks: Vec<&str> = out.stdout.split("----------------\n").collect();
    assert_eq!(blocks[1], "web1,web2\n", "{}", out.stdout);
    assert_eq!(
        blocks[2], "ok^Mweb2 | forged ^[]52;c;cm0gLXJmIH4=^G done\nerr ^[[2J^G\n",
        "{}",
        out.stdout
    );
    assert_no_raw_controls(&out.stdout);
    // A host that fails with an escape sequence in its error is shown
    // inert too, in the block and among the failures.
    let out = ws.run(&[
        "exec",
        "dev",
        "--local",
        "--group",
        "--",
        "sh",
        "-c",
        "printf '\\033]0;owned\\007\\n'; exit 3",
    ]);
    out.assert_code(1);
    assert!(out.stdout.contains("^[]0;owned^G\n"), "{}", out.stdout);
    assert_no_raw_controls(&out.stdout);
    assert_no_raw_controls(&out.stderr);
}

#[test]
fn exec_json_keeps_host_bytes_exact() {
    let ws = Workspace::hello();
    let out = ws.run(&[
        "exec",
        "dev",
        "--local",
        "--message-format",
        "json",
        "--",
        "sh",
        "-c",
        HOSTILE,
    ]);
    out.assert_code(0);
    let lines: Vec<String> = out
        .events_of("output")
        .iter()
        .filter(|e| e["host"] == "web1")
        .map(|e| e["line"].as_str().unwrap().to_string())
        .collect();
    assert!(
        lines.contains(&"ok\rweb2 | forged \x1b]52;c;cm0gLXJmIH4=\x07 done".to_string()),
        "{lines:?}"
    );
    // JSON escapes them: no raw control character reaches the terminal.
    assert_no_raw_controls(&out.stdout);
}

/// A line of megabytes without a newline was held whole and printed
/// whole: it is cut at 64 KiB as it streams, says so, and the rest of it
/// is dropped; the next line comes as it is.
#[test]
fn exec_cuts_a_line_longer_than_64_kib_and_drops_its_rest() {
    let ws = Workspace::hello();
    let script = "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo next; \
                  head -c 2000000 /dev/zero | tr '\\0' y";
    let cut = format!("{} … [line cut at 65536 bytes]", "x".repeat(65536));
    let last = format!("{} … [line cut at 65536 bytes]", "y".repeat(65536));
    let out = ws.run(&[
        "exec", "dev", "--local", "--only", "web1", "--", "sh", "-c", script,
    ]);
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "{:?}",
        lines.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    assert_eq!(lines[0], format!("web1 | {cut}"));
    assert_eq!(lines[1], "web1 | next");
    assert_eq!(lines[2], format!("web1 | {last}"));
    // `--group` shows the same, from what it kept of each host.
    let out = ws.run(&[
        "exec", "dev", "--local", "--only", "web1", "--group", "--", "sh", "-c", script,
    ]);
    out.assert_code(0);
    assert!(
        out.stdout.ends_with(&format!("{cut}\nnext\n{last}\n")),
        "{} bytes of stdout",
        out.stdout.len()
    );
}

/// `cargo-deploy ARGS` in `ws` with its data segment (the heap, and every
/// private mapping) limited to `mib` MiB, fed `input`.
fn run_in_data_limit(
    ws: &Workspace,
    mib: u64,
    args: &[&str],
    input: std::process::Stdio,
) -> crate::support::Outcome {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -d {} && exec \"$0\" \"$@\"", mib * 1024))
        .arg(env!("CARGO_BIN_EXE_cargo-deploy"))
        .args(args)
        .current_dir(ws.root())
        .env("NO_COLOR", "1")
        .stdin(input)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    finish_within(cmd.spawn().unwrap(), 120, &args.join(" "))
}

/// A host that printed one line of 48 MiB took landfall to four times
/// that in memory (1.6 GB for 400 MB): it now runs within 128 MiB.
#[test]
fn exec_a_line_of_48_mib_runs_within_128_mib() {
    let ws = Workspace::hello();
    for group in [&[][..], &["--group"][..]] {
        let mut args = vec!["exec", "dev", "--local"];
        args.extend(group);
        args.extend([
            "--",
            "sh",
            "-c",
            "head -c 50331648 /dev/zero | tr '\\0' x; echo; echo end",
        ]);
        let out = run_in_data_limit(&ws, 128, &args, std::process::Stdio::null());
        out.assert_code(0);
        assert!(out.stdout.ends_with("end\n"), "{group:?}: {}", out.stderr);
    }
}

/// `--stdin` read all of its input into memory, and copied it for each
/// host (870 MB for 64 MiB): it streams it to every host from a private
/// spool file, within 128 MiB.
#[test]
fn exec_stdin_of_48_mib_streams_to_every_host_within_128_mib() {
    let ws = Workspace::hello();
    let input = tempfile::NamedTempFile::new().unwrap();
    let size = 48u64 << 20;
    input.as_file().set_len(size).unwrap();
    let out = run_in_data_limit(
        &ws,
        128,
        &["exec", "dev", "--local", "--stdin", "--", "wc", "-c"],
        std::fs::File::open(input.path()).unwrap().into(),
    );
    out.assert_code(0);
    for host in ["web1", "web2"] {
        assert!(
            out.stdout.contains(&format!("{host} | {size}\n")),
            "{}{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn logs_show_host_bytes_inert_and_cut_long_lines() {
    let ws = Workspace::hello_service();
    ws.run(&["deploy", "dev", "--local"]).assert_code(0);
    // What the service printed, as its log on the host holds it.
    let log = ws
        .host_dir("web1", "/srv/hello/app")
        .join(".landfall/service.log");
    let mut text = std::fs::read(&log).unwrap();
    text.extend_from_slice(b"ok\rweb2 | forged \x1b]52;c;cm0gLXJmIH4=\x07 done\n");
    text.extend(std::iter::repeat_n(b'z', 100_000));
    text.extend_from_slice(b"\nlast\n");
    std::fs::write(&log, text).unwrap();
    let out = ws.run(&["logs", "dev", "--local", "--only", "web1", "-n", "3"]);
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            inert_line("web1").as_str(),
            format!("web1 | {} … [line cut at 65536 bytes]", "z".repeat(65536)).as_str(),
            "web1 | last"
        ]
    );
    assert_no_raw_controls(&out.stdout);
}

/// A template that rendered to gigabytes had no limit: past 64 MiB it is
/// an error that names template and host, before anything is built,
/// written or contacted.
#[test]
fn a_template_that_renders_past_64_mib_is_refused_and_nothing_written() {
    let ws = Workspace::hello();
    ws.write(
        "templates/hello.toml.j2",
        "{% for i in range(80) %}{{ 'x' * 1048576 }}{% endfor %}\n",
    );
    let before = ws.snapshot();
    for args in [&["check", "dev"][..], &["deploy", "dev", "--local"][..]] {
        let out = ws.run_within(60, args);
        out.assert_code(2);
        out.assert_says(
            &["cannot render `templates/hello.toml.j2` for host `web1`: \
             it renders to more than 64 MiB, the most a template may render to"],
        );
    }
    assert_eq!(ws.snapshot(), before);
    assert!(!ws.path("target/landfall/local").exists());
}

/// A first SIGTERM asked `check` to stop, which it never looked at while
/// it rendered: it ends at once, 143.
#[test]
fn check_ends_on_the_first_sigterm_while_it_renders() {
    let ws = Workspace::hello();
    // A rendering that would take days and prints nothing.
    ws.write(
        "templates/hello.toml.j2",
        "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}\
         {% endfor %}{% endfor %}{% endfor %}\n",
    );
    let child = ws.spawn(&["check", "dev"]);
    // Its handler is in place once the process catches SIGTERM (bit 15
    // of its caught signals), then it goes on to render.
    let caught = || {
        std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .ok()
            .and_then(|status| {
                let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
                u64::from_str_radix(mask.trim(), 16).ok()
            })
            .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
    };
    wait_for(30, "the signal handler", caught);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = finish_within(child, 10, "check");
    assert_eq!(out.code, 143, "{}", out.stderr);
}
