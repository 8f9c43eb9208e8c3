//! Bad input: every case breaks one thing in a valid workspace and expects
//! `cargo-deploy` to refuse with exit status 2, a message that names where
//! the problem is, and no change anywhere: not in the workspace, and on no
//! host (the hosts of environment `ssh` can be reached, and reaching one
//! leaves a mark).
//!
//! Each group's messages are kept whole in a snapshot,
//! `snapshots/bad_input/<group>.txt`: per case, its name, its command and
//! its stderr, with the workspace's path written `[WS]`, the repository's
//! `[REPO]`, and the hosts' addresses and ports `[ADDR1]:[PORT1]` and
//! `[ADDR2]:[PORT2]`. After a deliberate
//! change of a message, rewrite them with
//!
//! ```text
//! UPDATE_EXPECT=1 cargo test -p landfall-cli --test it bad_input
//! ```
//!
//! and read the difference: a message that is unclear, lacks a location
//! or blames the wrong place is a bug to fix, not a snapshot to take.
//!
//! The workspace is `Workspace::hello_built()`. Line numbers below refer to its
//! `deploy.toml`, `tests/it/fixtures/hooks-deploy.toml` (the `app` artifact's `files` entry is on line
//! 21, its `keep` on line 24, its hooks on lines 28 to 31, `[artifact.site]`
//! on line 34, 38 lines in all), to the harness's `environments/dev.toml`
//! (`jobs` on line 2, `[hosts.web1]` on line 4 with `address`, `roles` and
//! `vars` on lines 5 to 7, `[hosts.web2]` on line 9, 12 lines in all) and to
//! `templates/hello.toml.j2` (7 lines, `name = "{{ host.name }}"` on line 4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;

use expect_test::{ExpectFile, expect_file};

use crate::support::{Outcome, Workspace, repo};

const DEPLOY: &[&str] = &["deploy", "dev", "--local"];
const CHECK: &[&str] = &["check"];
const CHECK_DEV: &[&str] = &["check", "dev"];

/// One bad input: how to break the workspace, the command to run, and what
/// its stderr must contain.
struct Case {
    name: &'static str,
    setup: fn(&Workspace),
    args: &'static [&'static str],
    expect_in_stderr: &'static [&'static str],
}

/// The content of every regular file and the target of every symlink, so
/// that a file rewritten in place counts as a change too.
fn contents(ws: &Workspace, paths: &[PathBuf]) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    for rel in paths {
        let path = ws.root().join(rel);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            all.insert(rel.clone(), target.into_os_string().into_encoded_bytes());
        } else if meta.is_file() {
            all.insert(rel.clone(), fs::read(&path).unwrap());
        }
    }
    all
}

/// The identity every case decrypts with (absent unless a case makes it).
const IDENTITY: &str = "keys/identity.txt";

/// Runs `cargo-deploy ARGS` the way every case does: with the workspace's
/// own identity, never the user's.
fn run(ws: &Workspace, args: &[&str]) -> Outcome {
    ws.run_with(args, &[("LANDFALL_AGE_IDENTITY", &ws.path(IDENTITY))])
}

/// Runs one case in a fresh workspace: its transcript for the snapshot,
/// and what went wrong, if anything.
fn run_case(case: &Case) -> (String, Result<(), String>) {
    let ws = Workspace::hello_built();
    (case.setup)(&ws);
    let before = ws.snapshot();
    let files_before = contents(&ws, &before);

    let out = run(&ws, case.args);

    let mut problems = Vec::new();
    if out.code != 2 {
        problems.push(format!("exit status {} instead of 2", out.code));
    }
    for fragment in case.expect_in_stderr {
        if !out.stderr.contains(fragment) {
            problems.push(format!("stderr does not contain `{fragment}`"));
        }
    }
    if !locates(&out.stderr) {
        problems.push("the message names no file, line or option".to_string());
    }
    if out.stderr.contains("panicked") {
        problems.push("cargo-deploy panicked".to_string());
    }
    if ws.path(CONTACTED).exists() {
        problems.push(format!(
            "a host was contacted: {}",
            fs::read_to_string(ws.path(CONTACTED)).unwrap_or_default()
        ));
    }
    let after = ws.snapshot();
    if after == before {
        let files_after = contents(&ws, &after);
        for (path, content) in &files_before {
            if files_after.get(path) != Some(content) {
                problems.push(format!("`{}` was changed", path.display()));
            }
        }
    } else {
        let created: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
        let removed: Vec<_> = before.iter().filter(|p| !after.contains(p)).collect();
        problems.push(format!(
            "the workspace changed: {} paths created (first: {:?}), {} removed (first: {:?})",
            created.len(),
            created.iter().take(5).collect::<Vec<_>>(),
            removed.len(),
            removed.iter().take(5).collect::<Vec<_>>(),
        ));
    }

    let command: Vec<String> = case
        .args
        .iter()
        .map(|a| shlex::try_quote(a).map_or_else(|_| a.to_string(), std::borrow::Cow::into_owned))
        .collect();
    let mut transcript = format!("### {}\n$ cargo deploy {}\n", case.name, command.join(" "));
    if !out.stdout.is_empty() {
        let _ = write!(transcript, "--- stdout\n{}", normalise(&ws, &out.stdout));
    }
    transcript.push_str(&normalise(&ws, &out.stderr));

    let result = if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "case `{}`: cargo-deploy {}\n  - {}\n--- stdout:\n{}--- stderr:\n{}",
            case.name,
            case.args.join(" "),
            problems.join("\n  - "),
            out.stdout,
            out.stderr
        ))
    };
    (transcript, result)
}

/// Whether a message says where the problem is: a `file:line:column`, a
/// file, or an option of the command line.
fn locates(stderr: &str) -> bool {
    let position = stderr.split(|c: char| c.is_whitespace()).any(|word| {
        let mut parts = word.trim_end_matches(':').rsplitn(3, ':');
        let column = parts.next().unwrap_or_default();
        let line = parts.next().unwrap_or_default();
        let file = parts.next().unwrap_or_default();
        !file.is_empty()
            && [line, column]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    let named = stderr.split('`').skip(1).step_by(2).any(|quoted| {
        quoted.starts_with("--")
            || [".toml", ".age", ".json", ".j2", "/", "Cargo"]
                .iter()
                .any(|f| quoted.contains(f))
    });
    let option =
        stderr.contains("'--") || stderr.contains("'<ENV>'") || stderr.contains("bundle `");
    position || named || option
}

/// The output with what differs from one machine or run to the next
/// replaced by names.
fn normalise(ws: &Workspace, text: &str) -> String {
    let mut text = text.to_string();
    let root = ws.root().to_string_lossy().into_owned();
    let canonical = ws
        .root()
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for (path, name) in [(canonical, "[WS]"), (root, "[WS]")] {
        text = text.replace(&path, name);
    }
    text = text.replace(&repo().to_string_lossy().into_owned(), "[REPO]");
    if ws.path(".git").exists() {
        let commit = ws.git(&["rev-parse", "HEAD"]);
        text = text.replace(&commit[..12], "[COMMIT]");
    }
    for (i, listen) in ws.listen.iter().enumerate() {
        text = text.replace(&listen.ip().to_string(), &format!("[ADDR{}]", i + 1));
        text = text.replace(&listen.port().to_string(), &format!("[PORT{}]", i + 1));
    }
    text
}

/// Runs every case, then fails once with all failures, so that one broken
/// case does not hide the others; then compares the messages with their
/// snapshot.
fn run_cases(snapshot: &ExpectFile, cases: &[Case]) {
    let mut transcripts = Vec::new();
    let mut failures = Vec::new();
    for case in cases {
        let (transcript, result) = run_case(case);
        transcripts.push(transcript);
        failures.extend(result.err());
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    snapshot.assert_eq(&transcripts.join("\n"));
}

/// Adds a service to the `app` artifact, with these keys (TOML lines); the
/// section starts on line 40 of `deploy.toml`.
/// Appends the table `[name]` with `keys` to deploy.toml: its first key is
/// on line 41.
fn table(ws: &Workspace, name: &str, keys: &str) {
    append(ws, "deploy.toml", format!("\n[{name}]\n{keys}\n"));
}

fn service(ws: &Workspace, keys: &str) {
    table(ws, "artifact.app.service", keys);
}

#[test]
fn service_errors_are_refused_where_they_are_written() {
    run_cases(
        &expect_file!["snapshots/bad_input/services.txt"],
        &[
            Case {
                name: "a manager landfall does not know",
                setup: |ws| service(ws, "manager = \"upstart\"\nexec = \"bin/hello\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:41:11", "upstart"],
            },
            Case {
                name: "no exec",
                setup: |ws| service(ws, "manager = \"supervisor\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:", "exec"],
            },
            Case {
                name: "an empty exec",
                setup: |ws| service(ws, "manager = \"supervisor\"\nexec = \" \""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:42:8", "`exec` is empty"],
            },
            Case {
                name: "a readiness check the old instance would answer",
                setup: |ws| {
                    service(
                        ws,
                        "manager = \"supervisor\"\nexec = \"bin/hello\"\nlisten = [\"127.0.0.1:80\"]\n\
                         ready = \"http://localhost/health\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:44:9",
                    "which reaches `127.0.0.1:80`, an address of `listen`",
                    "drop `ready`",
                ],
            },
            Case {
                name: "a hand-over and a reload",
                setup: |ws| {
                    service(
                        ws,
                        "manager = \"systemd\"\nexec = \"bin/hello\"\nreload = true\noverlap = true",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:44:11",
                    "`overlap` and `reload` ask for two things",
                ],
            },
            Case {
                name: "a user for a user's own systemd",
                setup: |ws| {
                    service(
                        ws,
                        "manager = \"systemd-user\"\nexec = \"bin/hello\"\nuser = \"www-data\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:43:8", "`user` does not apply"],
            },
            Case {
                name: "a readiness check of an unknown kind",
                setup: |ws| {
                    service(
                        ws,
                        "manager = \"systemd\"\nexec = \"bin/hello\"\nready = \"ftp://x/\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:43:9", "`ready` must start with"],
            },
            Case {
                name: "an environment variable that is landfall's",
                setup: |ws| {
                    service(
                        ws,
                        "manager = \"systemd\"\nexec = \"bin/hello\"\nenvironment = { LANDFALL_PATH = \"/x\" }",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:43:17", "`LANDFALL_PATH` is set by landfall"],
            },
            Case {
                name: "an environment value that is a table",
                setup: |ws| {
                    service(
                        ws,
                        "manager = \"systemd\"\nexec = \"bin/hello\"\nenvironment = { A = { b = 1 } }",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:43:21", "`A` must be a string"],
            },
            Case {
                name: "a service name with a space",
                setup: |ws| {
                    service(
                        ws,
                        "manager = \"systemd\"\nexec = \"bin/hello\"\nname = \"hello app\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:43:8", "invalid service name"],
            },
            Case {
                name: "a service on a path a unit cannot hold",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "path = \"/srv/hello/app\"",
                        "path = \"/srv/hello app\"",
                    );
                    service(ws, "manager = \"systemd\"\nexec = \"bin/hello\"");
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:", "its `path` must be plain"],
            },
            Case {
                name: "a listen address that renders to a name",
                setup: |ws| {
                    service(
                        ws,
                        "manager = \"systemd\"\nexec = \"bin/hello\"\nlisten = [\"localhost:{{ vars.port }}\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:43:11", "which is not an address and port"],
            },
            Case {
                name: "a file in the service's directory of the release",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\"",
                        "dst = \".landfall-service/run\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:21:",
                    "`.landfall-service/run` is landfall's own",
                ],
            },
            Case {
                name: "a file named as the artifact's bill of materials",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\"",
                        "dst = \".landfall-sbom.cdx.json\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:21:",
                    "`.landfall-sbom.cdx.json` is landfall's own",
                ],
            },
        ],
    );
}

fn rollout(ws: &Workspace, keys: &str) {
    table(ws, "artifact.app.rollout", keys);
}

fn check(ws: &Workspace, keys: &str) {
    append(
        ws,
        "deploy.toml",
        format!("\n[[artifact.app.rollout.check]]\n{keys}\n"),
    );
}

fn project_hooks(ws: &Workspace, keys: &str) {
    table(ws, "hooks", keys);
}

#[test]
fn rollout_and_hook_errors_are_refused_where_they_are_written() {
    run_cases(
        &expect_file!["snapshots/bad_input/rollouts.txt"],
        &[
            Case {
                name: "max_parallel and rollout.batch both",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "keep = 3\nafter",
                        "max_parallel = 2\nkeep = 3\nafter",
                    );
                    rollout(ws, "batch = 3");
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:24:16", "`max_parallel` is the older name"],
            },
            Case {
                name: "a batch of no host",
                setup: |ws| rollout(ws, "batch = 0"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:41:9", "at least 1 host"],
            },
            Case {
                name: "a share above 100%",
                setup: |ws| rollout(ws, "batch = \"110%\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:41:9", "from 1% to 100%"],
            },
            Case {
                name: "a share that is no number",
                setup: |ws| rollout(ws, "max_fail = \"ten\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:41:12", "`ten`"],
            },
            Case {
                name: "a negative failure budget",
                setup: |ws| rollout(ws, "max_fail = -1"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:41:12", "not -1"],
            },
            Case {
                name: "a pause that is no duration",
                setup: |ws| rollout(ws, "pause = \"a while\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:41:9", "invalid duration `a while`"],
            },
            Case {
                name: "a negative canary",
                setup: |ws| rollout(ws, "canary = -1"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:41:10"],
            },
            Case {
                name: "a rollout key mistyped",
                setup: |ws| rollout(ws, "canaries = 1"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:41:1", "canaries"],
            },
            Case {
                name: "a check of two kinds",
                setup: |ws| check(ws, "http = \"http://example.test/\"\nexec = \"true\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:40:1", "exactly one of `http`, `exec`"],
            },
            Case {
                name: "a Prometheus check without a bound",
                setup: |ws| check(ws, "prometheus = \"http://127.0.0.1:9/\"\nquery = \"up\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:42:9", "add `below = N` or `above = N`"],
            },
            Case {
                name: "a key of another kind of check",
                setup: |ws| check(ws, "exec = \"true\"\nbelow = 1"),
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:42:9",
                    "`below` is not a key of an `exec` check",
                ],
            },
            Case {
                name: "an HTTP status that is none",
                setup: |ws| check(ws, "http = \"http://example.test/\"\nstatus = 700"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:42:10", "from 100 to 599"],
            },
            Case {
                name: "two checks of one name",
                setup: |ws| {
                    check(ws, "name = \"up\"\nexec = \"true\"");
                    check(ws, "name = \"up\"\nexec = \"true\"");
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:45:8", "two checks are named `up`"],
            },
            Case {
                name: "a check's template that reads an undefined variable",
                setup: |ws| check(ws, "http = \"http://{{ host.nam }}/\""),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:41:", "host.nam"],
            },
            Case {
                name: "an empty before hook",
                setup: |ws| project_hooks(ws, "before = \" \""),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:41:10", "an empty hook"],
            },
            Case {
                name: "a top-level hook landfall does not know",
                setup: |ws| project_hooks(ws, "on_success = \"true\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:41:1", "on_success"],
            },
            Case {
                name: "a top-level hook's timeout that is no duration",
                setup: |ws| project_hooks(ws, "after = \"true\"\ntimeout = \"soon\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:42:11", "invalid duration `soon`"],
            },
            Case {
                name: "a once hook that is not a string",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        "activate = \"bin/restart\"\nonce = 3",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:30:8"],
            },
        ],
    );
}

#[test]
fn build_settings_errors_are_refused_where_they_are_written() {
    run_cases(
        &expect_file!["snapshots/bad_input/build.txt"],
        &[
            Case {
                name: "a package that is not in the workspace",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "bins = [\"hello\"]",
                        "bins = [\"hello\"]\npackage = \"nope\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:",
                    "no package `nope` with binaries in the workspace",
                    "`hello`",
                ],
            },
            Case {
                name: "a feature that is no feature",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "bins = [\"hello\"]",
                        "bins = [\"hello\"]\nfeatures = [\"a b\"]",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:", "`a b` is not a cargo feature"],
            },
            Case {
                name: "features of an artifact without binaries",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "[artifact.site]\n",
                        "[artifact.site]\nfeatures = [\"x\"]\n",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:",
                    "`features` of artifact `site` applies to its `bins`, and it has none",
                ],
            },
            Case {
                name: "an empty cargo command",
                setup: |ws| ws.edit("deploy.toml", "[build]\n", "[build]\ncargo = []\n"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:", "`cargo` must name a command"],
            },
            Case {
                name: "no_default_features is a string",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "[build]\n",
                        "[build]\nno_default_features = \"yes\"\n",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:", "expected a boolean"],
            },
            Case {
                name: "a target rustc does not know",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "[build]\n",
                        "[build]\ntarget = \"x86_64-unknown-nowhere\"\n",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:",
                    "`x86_64-unknown-nowhere` is not a target rustc knows",
                ],
            },
            Case {
                name: "a target that is not installed",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "[build]\n",
                        "[build]\ntarget = \"riscv64gc-unknown-none-elf\"\n",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:",
                    "the target `riscv64gc-unknown-none-elf` is not installed",
                    "rustup target add riscv64gc-unknown-none-elf",
                ],
            },
            Case {
                name: "an artifact --artifact does not know",
                setup: |_| {},
                args: &["deploy", "dev", "--local", "--artifact", "nope"],
                expect_in_stderr: &[
                    "`--artifact nope`: deploy.toml has no such artifact (artifacts: `site`, `app`)",
                ],
            },
        ],
    );
}

/// A comment line holding bytes that are not UTF-8.
const NOT_UTF8: &[u8] = b"# \xff\xfe\n";

fn append(ws: &Workspace, rel: &str, bytes: impl AsRef<[u8]>) {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(ws.path(rel))
        .unwrap();
    file.write_all(bytes.as_ref()).unwrap();
}

/// The control for every case below: the workspace as the harness makes
/// it is valid, so each failure comes from the one thing a case breaks.
#[test]
fn the_unbroken_workspace_passes_check() {
    let ws = Workspace::hello_built();
    for args in [CHECK, CHECK_DEV] {
        run(&ws, args).assert_code(0);
    }
    ssh_environment(&ws);
    with_secrets(&ws);
    run(&ws, &["check"]).assert_code(0);
    assert!(!ws.path(CONTACTED).exists());
}

#[test]
fn syntax_errors_are_refused_with_their_position() {
    run_cases(
        &expect_file!["snapshots/bad_input/syntax.txt"],
        &[
            Case {
                name: "unclosed table header in deploy.toml",
                setup: |ws| ws.edit("deploy.toml", "[build]", "[build"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:9:7", "[build"],
            },
            Case {
                name: "unclosed table header in deploy.toml, seen by check",
                setup: |ws| ws.edit("deploy.toml", "[build]", "[build"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:9:7", "[build"],
            },
            Case {
                name: "duplicate key in deploy.toml",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "keep = 3\nafter",
                        "keep = 3\nkeep = 4\nafter",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:25:1", "duplicate key"],
            },
            Case {
                name: "missing value in an environment file",
                setup: |ws| ws.edit("environments/dev.toml", "jobs = 4", "jobs = "),
                args: CHECK_DEV,
                expect_in_stderr: &["environments/dev.toml:2:8"],
            },
            Case {
                name: "missing value in an environment file, on deploy",
                setup: |ws| ws.edit("environments/dev.toml", "jobs = 4", "jobs = "),
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:2:8"],
            },
            Case {
                name: "deploy.toml is not UTF-8",
                setup: |ws| append(ws, "deploy.toml", NOT_UTF8),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:39:", "UTF-8"],
            },
            Case {
                name: "environment file is not UTF-8",
                setup: |ws| append(ws, "environments/dev.toml", NOT_UTF8),
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:13:", "UTF-8"],
            },
            Case {
                name: "environment file is not UTF-8, seen by check",
                setup: |ws| append(ws, "environments/dev.toml", NOT_UTF8),
                args: CHECK,
                expect_in_stderr: &["environments/dev.toml:13:", "UTF-8"],
            },
            Case {
                name: "no deploy.toml",
                setup: |ws| fs::remove_file(ws.path("deploy.toml")).unwrap(),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml", "cargo deploy init"],
            },
            Case {
                name: "no deploy.toml, seen by check",
                setup: |ws| fs::remove_file(ws.path("deploy.toml")).unwrap(),
                args: CHECK,
                expect_in_stderr: &["deploy.toml", "cargo deploy init"],
            },
        ],
    );
}

#[test]
fn unknown_keys_are_refused_where_they_are_written() {
    run_cases(
        &expect_file!["snapshots/bad_input/unknown_keys.txt"],
        &[
            Case {
                name: "unknown top-level key",
                setup: |ws| ws.edit("deploy.toml", "[project]", "colour = \"red\"\n\n[project]"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:6:1", "colour"],
            },
            Case {
                name: "unknown key in [artifact.app]",
                setup: |ws| ws.edit("deploy.toml", "keep = 3\nafter", "kepe = 3\nafter"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:24:1", "kepe"],
            },
            Case {
                name: "unknown key in [artifact.app], seen by check",
                setup: |ws| ws.edit("deploy.toml", "keep = 3\nafter", "kepe = 3\nafter"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:24:1", "kepe"],
            },
            Case {
                name: "unknown key in a files entry",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\" }",
                        "dst = \"bin/restart\", owner = \"root\" }",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:", "owner"],
            },
            Case {
                name: "unknown key in hooks",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        "activate = \"bin/restart\"\npost_activate = \"true\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:30:1", "post_activate"],
            },
            Case {
                name: "unknown key in hooks.local",
                setup: |ws| {
                    append(
                        ws,
                        "deploy.toml",
                        "\n[artifact.site.hooks.local]\nactivate = \"true\"\nhealth_timeot = \"1s\"\n",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:42:1", "health_timeot"],
            },
            Case {
                name: "unknown key in [hosts.web1]",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "roles = [\"web\"]\n",
                        "roles = [\"web\"]\nrole = \"web\"\n",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:7:1", "role"],
            },
            Case {
                name: "misspelt [environment] table",
                setup: |ws| ws.edit("environments/dev.toml", "[environment]", "[enviroment]"),
                args: CHECK_DEV,
                expect_in_stderr: &["environments/dev.toml:1:2", "enviroment"],
            },
            Case {
                name: "unknown key in [secrets]",
                setup: |ws| {
                    append(
                        ws,
                        "environments/dev.toml",
                        "\n[secrets]\nrecipient = \"age1\"\n",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:15:1", "recipient"],
            },
        ],
    );
}

#[test]
fn values_of_the_wrong_type_are_refused_where_they_are_written() {
    run_cases(
        &expect_file!["snapshots/bad_input/wrong_types.txt"],
        &[
            Case {
                name: "keep is a string",
                setup: |ws| ws.edit("deploy.toml", "keep = 3\nafter", "keep = \"five\"\nafter"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:24:8", "\"five\""],
            },
            Case {
                name: "roles is a string",
                setup: |ws| ws.edit("deploy.toml", "roles = [\"web\"]", "roles = \"web\""),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:18:9"],
            },
            Case {
                name: "bins is an integer",
                setup: |ws| ws.edit("deploy.toml", "bins = [\"hello\"]", "bins = 3"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:20:8"],
            },
            Case {
                name: "max_parallel is negative",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "keep = 3\nafter",
                        "max_parallel = -1\nkeep = 3\nafter",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:24:16", "-1"],
            },
            Case {
                name: "path is an integer",
                setup: |ws| ws.edit("deploy.toml", "path = \"/srv/hello/app\"", "path = 8080"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:19:8"],
            },
            Case {
                name: "health_timeout is an integer",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "health_timeout = \"10s\"",
                        "health_timeout = 10",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:31:18"],
            },
            Case {
                name: "mode is an integer",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\" }",
                        "dst = \"bin/restart\", mode = 755 }",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:80"],
            },
            Case {
                name: "profile is an integer",
                setup: |ws| ws.edit("deploy.toml", "profile = \"release\"", "profile = 3"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:10:11"],
            },
            Case {
                name: "transport ftp",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "keep = 3\nafter",
                        "transport = \"ftp\"\nkeep = 3\nafter",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:24:13", "ftp"],
            },
            Case {
                name: "address is an integer",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "address = \"127.0.0.1\"",
                        "address = 10",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:5:11"],
            },
            Case {
                name: "user is an integer",
                setup: |ws| ws.edit("environments/dev.toml", "jobs = 4", "jobs = 4\nuser = 22"),
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:3:8"],
            },
            Case {
                name: "jobs is a string",
                setup: |ws| ws.edit("environments/dev.toml", "jobs = 4", "jobs = \"4\""),
                args: CHECK_DEV,
                expect_in_stderr: &["environments/dev.toml:2:8"],
            },
            Case {
                name: "protect is a string",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "jobs = 4",
                        "jobs = 4\nprotect = \"yes\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:3:11"],
            },
            Case {
                name: "host vars is an integer",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "roles = [\"web\"]\nvars = ",
                        "roles = [\"web\"]\nvars = 8080\n# ",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:7:8"],
            },
            Case {
                name: "on_failure explode",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "jobs = 4",
                        "jobs = 4\non_failure = \"explode\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:3:14", "explode"],
            },
        ],
    );
}

#[test]
fn semantic_errors_in_deploy_toml_are_refused_where_they_are_written() {
    run_cases(
        &expect_file!["snapshots/bad_input/deploy_toml.txt"],
        &[
            Case {
                name: "keep = 0",
                setup: |ws| ws.edit("deploy.toml", "keep = 3\nafter", "keep = 0\nafter"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:24:8", "`keep` must be at least 1"],
            },
            Case {
                name: "keep = 0, seen by check",
                setup: |ws| ws.edit("deploy.toml", "keep = 3\nafter", "keep = 0\nafter"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:24:8", "`keep` must be at least 1"],
            },
            Case {
                name: "mode 999",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\" }",
                        "dst = \"bin/restart\", mode = \"999\" }",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:80", "invalid mode `999`"],
            },
            Case {
                name: "mode rw-r--r--",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\" }",
                        "dst = \"bin/restart\", mode = \"rw-r--r--\" }",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:80", "invalid mode `rw-r--r--`"],
            },
            Case {
                name: "template mode 12345",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"etc/hello.toml\" }",
                        "dst = \"etc/hello.toml\", mode = \"12345\" }",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &["deploy.toml:22:70", "invalid mode `12345`"],
            },
            Case {
                name: "absolute dst",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\"",
                        "dst = \"/bin/restart\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:58", "`/bin/restart` is absolute"],
            },
            Case {
                name: "dst with ..",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\"",
                        "dst = \"bin/../../restart\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:58", "escapes the release directory"],
            },
            Case {
                name: "a file and a template write one dst",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\"",
                        "dst = \"etc/hello.toml\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "deploy.toml:22:14",
                    "`etc/hello.toml` is written twice",
                    "line 21",
                ],
            },
            Case {
                name: "a file and a binary write one dst",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\"",
                        "dst = \"bin/hello\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "deploy.toml:21:10",
                    "`bin/hello` is written twice",
                    "line 20",
                ],
            },
            Case {
                name: "shared dir overlaps a file dst",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "shared = [\"log\", \"run\"]",
                        "shared = [\"log\", \"etc\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:23:18", "overlaps `etc/hello.toml`"],
            },
            Case {
                name: "shared dir with ..",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "shared = [\"log\", \"run\"]",
                        "shared = [\"log\", \"../run\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:23:18", "escapes the release directory"],
            },
            Case {
                name: "missing file src",
                setup: |ws| ws.edit("deploy.toml", "scripts/restart\"", "scripts/nope\""),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:18", "examples/hello/scripts/nope"],
            },
            Case {
                name: "src escapes the workspace",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "src = \"examples/hello/scripts/restart\"",
                        "src = \"../x\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:18", "`../x` is outside the workspace"],
            },
            Case {
                name: "src is a symlink out of the workspace",
                setup: |ws| {
                    let outside = repo().join("tests/it/fixtures/restart");
                    std::os::unix::fs::symlink(outside, ws.path("examples/hello/scripts/out"))
                        .unwrap();
                    ws.edit("deploy.toml", "scripts/restart\"", "scripts/out\"");
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:18", "points outside the workspace"],
            },
            Case {
                name: "src directory holds a symlink out of the workspace",
                setup: |ws| {
                    let outside = repo().join("examples/hello/static");
                    std::os::unix::fs::symlink(outside, ws.path("examples/hello/site/out"))
                        .unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "deploy.toml:37:18",
                    "examples/hello/site/out",
                    "points outside the workspace",
                ],
            },
            Case {
                name: "unknown artifact in after",
                setup: |ws| ws.edit("deploy.toml", "after = [\"site\"]", "after = [\"db\"]"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:25:10", "unknown artifact `db`"],
            },
            Case {
                name: "after cycle between two artifacts",
                setup: |ws| append(ws, "deploy.toml", "after = [\"app\"]\n"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:17:1", "cycle", "`app`", "`site`"],
            },
            Case {
                name: "artifact lists itself in after",
                setup: |ws| ws.edit("deploy.toml", "after = [\"site\"]", "after = [\"app\"]"),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:25:10", "lists itself"],
            },
            Case {
                name: "health_timeout soon",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "health_timeout = \"10s\"",
                        "health_timeout = \"soon\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:31:18", "invalid duration `soon`"],
            },
            Case {
                name: "health_timeout zero",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "health_timeout = \"10s\"",
                        "health_timeout = \"0s\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:31:18", "positive"],
            },
            Case {
                name: "unknown binary in bins",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "bins = [\"hello\"]",
                        "bins = [\"hello\", \"goodbye\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:20:18", "`goodbye`"],
            },
            Case {
                name: "binary listed twice",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "bins = [\"hello\"]",
                        "bins = [\"hello\", \"hello\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:20:18", "`bin/hello` is written twice"],
            },
            Case {
                name: "relative path",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "path = \"/srv/hello/app\"",
                        "path = \"srv/hello/app\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:19:8", "absolute"],
            },
            Case {
                name: "path with ..",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "path = \"/srv/hello/app\"",
                        "path = \"/srv/../etc\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:19:8", "`..`"],
            },
            Case {
                name: "hook with a NUL character",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        "activate = \"bin/restart\\u0000\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:29:12", "NUL"],
            },
            Case {
                name: "invalid artifact name",
                setup: |ws| {
                    ws.edit("deploy.toml", "[artifact.site]", "[artifact.\"my site\"]");
                    ws.edit("deploy.toml", "after = [\"site\"]", "after = []");
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:34:11", "invalid artifact name `my site`"],
            },
            Case {
                name: "subdir on an rsync artifact",
                setup: |ws| append(ws, "deploy.toml", "subdir = \"examples\"\n"),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:39:10", "`subdir` needs `transport = \"git\"`"],
            },
            Case {
                name: "subdir climbing out of the workspace",
                setup: |ws| {
                    append(
                        ws,
                        "deploy.toml",
                        "transport = \"git\"\nsubdir = \"../up\"\n",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:40:10", "relative directory of the workspace"],
            },
            Case {
                name: "git artifact with binaries",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "keep = 3\nafter",
                        "transport = \"git\"\nkeep = 3\nafter",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:20:9", "git artifact `app` cannot have `bins`"],
            },
            Case {
                name: "git artifact outside a git repository",
                setup: |ws| append(ws, "deploy.toml", "transport = \"git\"\n"),
                args: DEPLOY,
                expect_in_stderr: &[
                    "artifact `site` (transport git)",
                    "is not in a git repository",
                ],
            },
            Case {
                name: "git artifact whose subdir is not in HEAD",
                setup: |ws| {
                    append(
                        ws,
                        "deploy.toml",
                        "transport = \"git\"\nsubdir = \"nowhere\"\n",
                    );
                    ws.git_commit("first");
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "artifact `site` (transport git)",
                    "`nowhere` is not a directory in HEAD",
                ],
            },
            Case {
                name: "git artifact with uncommitted changes",
                setup: |ws| {
                    append(
                        ws,
                        "deploy.toml",
                        "transport = \"git\"\nsubdir = \"examples/hello/site\"\n",
                    );
                    ws.git_commit("first");
                    append(
                        ws,
                        "examples/hello/site/index.html",
                        "<p>not committed</p>\n",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "changes it does not: examples/hello/site/index.html",
                    "`--allow-dirty`",
                ],
            },
        ],
    );
}

#[test]
fn template_and_hook_errors_point_into_their_source() {
    run_cases(
        &expect_file!["snapshots/bad_input/templates_and_hooks.txt"],
        &[
            Case {
                name: "missing template file",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "src = \"hello.toml.j2\"",
                        "src = \"nope.toml.j2\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:22:22", "templates/nope.toml.j2"],
            },
            Case {
                name: "template src escapes templates/",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "src = \"hello.toml.j2\"",
                        "src = \"../deploy.toml\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:22:22", "templates/"],
            },
            Case {
                name: "template is not UTF-8",
                setup: |ws| append(ws, "templates/hello.toml.j2", NOT_UTF8),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:22:22", "templates/hello.toml.j2", "UTF-8"],
            },
            Case {
                name: "template uses an undefined variable",
                setup: |ws| {
                    ws.edit(
                        "templates/hello.toml.j2",
                        "name = \"{{ host.name }}\"",
                        "name = \"{{ vars.nope }}\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["templates/hello.toml.j2:4:12", "vars.nope"],
            },
            Case {
                name: "template uses an undefined variable, seen by check",
                setup: |ws| {
                    ws.edit(
                        "templates/hello.toml.j2",
                        "name = \"{{ host.name }}\"",
                        "name = \"{{ vars.nope }}\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["templates/hello.toml.j2:4:12", "vars.nope"],
            },
            Case {
                name: "template uses a variable only one host has",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "vars = { bind = ",
                        "vars = { weight = 2, bind = ",
                    );
                    ws.edit(
                        "templates/hello.toml.j2",
                        "name = \"{{ host.name }}\"",
                        "name = \"{{ vars.weight }}\"",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &[
                    "templates/hello.toml.j2:4:12",
                    "vars.weight",
                    "for host `web2`",
                ],
            },
            Case {
                name: "template with an unclosed expression",
                setup: |ws| append(ws, "templates/hello.toml.j2", "extra = {{ oops \n"),
                args: DEPLOY,
                expect_in_stderr: &["templates/hello.toml.j2:11:"],
            },
            Case {
                name: "template with an if without a condition",
                setup: |ws| {
                    ws.edit(
                        "templates/hello.toml.j2",
                        "name = \"{{ host.name }}\"",
                        "name = \"{% if %}\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &["templates/hello.toml.j2:4:15"],
            },
            Case {
                name: "hook uses an undefined variable",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        "activate = \"bin/restart {{ vars.nope }}\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:29:28", "vars.nope"],
            },
            Case {
                name: "hook in a literal string uses an undefined variable",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        "activate = 'bin/restart {{ vars.nope }}'",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:29:28", "vars.nope"],
            },
            Case {
                name: "hook with escaped quotes uses an undefined variable",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        r#"activate = "echo \"hi\" {{ vars.nope }}""#,
                    );
                },
                args: DEPLOY,
                // Escapes make the value differ from the text in the file, so the
                // error underlines the whole string rather than a wrong column.
                expect_in_stderr: &["deploy.toml:29:12", "vars.nope"],
            },
            Case {
                name: "hook in a multi-line string uses an undefined variable",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        "activate = \"\"\"\nbin/restart {{ vars.nope }}\"\"\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:30:16", "vars.nope"],
            },
            Case {
                name: "health hook uses an undefined top-level name",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "health = \"bin/hello probe",
                        "health = \"{{ nope }} bin/hello probe",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &["deploy.toml:30:14", "`nope` is undefined"],
            },
        ],
    );
}

#[test]
fn environment_errors_are_refused_where_they_are_written() {
    run_cases(
        &expect_file!["snapshots/bad_input/environments.txt"],
        &[
            Case {
                name: "a store that is no s3:// URL",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "jobs = 4",
                        "jobs = 4\nstore = \"s3://Releases/../x\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "environments/dev.toml:3:9",
                    "invalid store `s3://Releases/../x`",
                ],
            },
            Case {
                name: "ssh_persist that is no duration",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "jobs = 4",
                        "jobs = 4\nssh_persist = \"a while\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:3:15", "invalid duration `a while`"],
            },
            Case {
                name: "a role mistyped: the deploy would reach no host",
                setup: |ws| {
                    ws.edit("deploy.toml", "roles = [\"web\"]", "roles = [\"wbe\"]");
                    ws.edit("deploy.toml", "roles = [\"web\"]", "roles = [\"wbe\"]");
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "deploy.toml:18:10",
                    "no host of environment `dev` has a role of artifact `app`",
                    "a deploy would reach no host at all",
                ],
            },
            Case {
                name: "a role mistyped, seen by check",
                setup: |ws| {
                    ws.edit("deploy.toml", "roles = [\"web\"]", "roles = [\"wbe\"]");
                    ws.edit("deploy.toml", "roles = [\"web\"]", "roles = [\"wbe\"]");
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:18:10", "a deploy would reach no host at all"],
            },
            Case {
                name: "--only narrows the deploy to no host that receives an artifact",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "[hosts.web2]\naddress = \"127.0.0.1\"\nroles = [\"web\"]",
                        "[hosts.web2]\naddress = \"127.0.0.1\"\nroles = [\"db\"]",
                    );
                },
                args: &["deploy", "dev", "--local", "--only", "web2"],
                expect_in_stderr: &[
                    "`--only web2` selects no host that receives an artifact",
                    "hosts of `dev` that receive one: `web1`",
                ],
            },
            Case {
                name: "host name starting with -",
                setup: |ws| ws.edit("environments/dev.toml", "[hosts.web2]", "[hosts.\"-rf\"]"),
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:9:8", "invalid host name `-rf`"],
            },
            Case {
                name: "host name with a space",
                setup: |ws| ws.edit("environments/dev.toml", "[hosts.web2]", "[hosts.\"web 2\"]"),
                args: CHECK_DEV,
                expect_in_stderr: &["environments/dev.toml:9:8", "invalid host name `web 2`"],
            },
            Case {
                name: "address with a semicolon",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "address = \"127.0.0.1\"",
                        "address = \"a;b\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:5:11", "invalid address `a;b`"],
            },
            Case {
                name: "role with shell syntax",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "roles = [\"web\"]",
                        "roles = [\"web\", \"$(reboot)\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:6:17", "invalid role"],
            },
            Case {
                name: "jobs = 0",
                setup: |ws| ws.edit("environments/dev.toml", "jobs = 4", "jobs = 0"),
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:2:8", "`jobs` must be at least 1"],
            },
            Case {
                name: "jobs = 0 in another environment, seen by check",
                setup: |ws| ws.write("environments/prod.toml", "[environment]\njobs = 0\n"),
                args: CHECK,
                expect_in_stderr: &["environments/prod.toml:2:8", "`jobs` must be at least 1"],
            },
            Case {
                name: "two artifacts share a base directory on a host",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "path = \"/srv/hello/site\"",
                        "path = \"/srv/hello/app/site\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "environments/dev.toml:4:1",
                    "environments/dev.toml:9:1",
                    "overlap",
                ],
            },
        ],
    );
}

#[test]
fn command_line_errors_are_refused_and_named() {
    run_cases(
        &expect_file!["snapshots/bad_input/command_line.txt"],
        &[
            Case {
                name: "unknown environment",
                setup: |_| {},
                args: &["deploy", "nope", "--local"],
                expect_in_stderr: &["environments/nope.toml"],
            },
            Case {
                name: "unknown environment, seen by check",
                setup: |_| {},
                args: &["check", "nope"],
                expect_in_stderr: &["environments/nope.toml"],
            },
            Case {
                name: "environment name that is a path",
                setup: |_| {},
                args: &["deploy", "../dev", "--local"],
                expect_in_stderr: &["unknown environment `../dev`"],
            },
            Case {
                name: "--only names an unknown host",
                setup: |_| {},
                args: &["deploy", "dev", "--local", "--only", "web9"],
                expect_in_stderr: &["--only web9", "`web9`"],
            },
            Case {
                name: "--only names an unknown role",
                setup: |_| {},
                args: &["deploy", "dev", "--local", "--only", "@db"],
                expect_in_stderr: &["--only @db", "role `db`"],
            },
            Case {
                name: "--only names an unknown host, seen by check",
                setup: |_| {},
                args: &["check", "dev", "--only", "web9"],
                expect_in_stderr: &["--only web9"],
            },
            Case {
                name: "--only names an unknown role on build",
                setup: |_| {},
                args: &["build", "dev", "--only", "@db"],
                expect_in_stderr: &["--only @db"],
            },
            Case {
                name: "unknown flag",
                setup: |_| {},
                args: &["deploy", "dev", "--local", "--frobnicate"],
                expect_in_stderr: &["--frobnicate"],
            },
            Case {
                name: "--jobs 0",
                setup: |_| {},
                args: &["deploy", "dev", "--local", "--jobs", "0"],
                expect_in_stderr: &["--jobs"],
            },
            Case {
                name: "missing ENV",
                setup: |_| {},
                args: &["deploy", "--local"],
                expect_in_stderr: &[
                    "no environment given",
                    "ENV is one of dev",
                    "Usage: cargo deploy",
                ],
            },
            Case {
                name: "unknown message format",
                setup: |_| {},
                args: &["deploy", "dev", "--local", "--message-format", "xml"],
                expect_in_stderr: &["--message-format", "xml"],
            },
            Case {
                name: "--manifest-path to nowhere",
                setup: |_| {},
                args: &[
                    "deploy",
                    "dev",
                    "--local",
                    "--manifest-path",
                    "nope/Cargo.toml",
                ],
                expect_in_stderr: &["nope/Cargo.toml"],
            },
        ],
    );
}

/// An age identity of the workspace's own, and another one.
const KEY: &str = "AGE-SECRET-KEY-1WRZAYX2N27SETNHAGZJM20XJ3LLAYET9QEAPH726EWS4QG3HZ49Q84SQUX";
const RECIPIENT: &str = "age1d3yeqr8sxyaxnfvpya5n8g69vx9aww9c963t0emzyrx7x429kc6q5lm8rx";
const OTHER_RECIPIENT: &str = "age15v8y6zqwq3f5udlnfpjw6cq94l07uj3dp8x5ddw0twevdvvnp47q7sffsm";

const SECRETS: &str = "admin_token = \"tok-7f3a9c1e-canary\"\n";

fn encrypt(plaintext: &str, recipient: &str) -> Vec<u8> {
    let recipient = landfall::secrets::parse_recipient(recipient).unwrap();
    landfall::secrets::encrypt(plaintext.as_bytes(), &[recipient]).unwrap()
}

/// Gives `dev` secrets, encrypted to the workspace's identity, which it
/// lists as the recipient; the template reads one of them.
fn with_secrets(ws: &Workspace) {
    ws.write(IDENTITY, &format!("{KEY}\n"));
    append(
        ws,
        "environments/dev.toml",
        format!("\n[secrets]\nrecipients = [\"{RECIPIENT}\"]\n"),
    );
    fs::create_dir_all(ws.path("secrets")).unwrap();
    fs::write(ws.path("secrets/dev.toml.age"), encrypt(SECRETS, RECIPIENT)).unwrap();
}

#[test]
fn secrets_errors_are_refused_and_named() {
    run_cases(
        &expect_file!["snapshots/bad_input/secrets.txt"],
        &[
            Case {
                name: "secrets file that is not age",
                setup: |ws| {
                    with_secrets(ws);
                    ws.write("secrets/dev.toml.age", "admin_token = \"in the clear\"\n");
                },
                args: DEPLOY,
                expect_in_stderr: &["secrets/dev.toml.age"],
            },
            Case {
                name: "secrets file cut short",
                setup: |ws| {
                    with_secrets(ws);
                    let bytes = fs::read(ws.path("secrets/dev.toml.age")).unwrap();
                    fs::write(ws.path("secrets/dev.toml.age"), &bytes[..bytes.len() - 20]).unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &["secrets/dev.toml.age"],
            },
            Case {
                name: "secrets encrypted to other recipients",
                setup: |ws| {
                    with_secrets(ws);
                    fs::write(
                        ws.path("secrets/dev.toml.age"),
                        encrypt(SECRETS, OTHER_RECIPIENT),
                    )
                    .unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &["secrets/dev.toml.age", IDENTITY],
            },
            Case {
                name: "secrets that are not TOML",
                setup: |ws| {
                    with_secrets(ws);
                    fs::write(
                        ws.path("secrets/dev.toml.age"),
                        encrypt("admin_token = \"unterminated\n", RECIPIENT),
                    )
                    .unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &["`secrets/dev.toml.age` (decrypted):1:"],
            },
            Case {
                name: "template reads an undefined secret",
                setup: |ws| {
                    with_secrets(ws);
                    ws.edit(
                        "templates/hello.toml.j2",
                        "name = \"{{ host.name }}\"",
                        "name = \"{{ secrets.db_password }}\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["templates/hello.toml.j2:4:12", "db_password"],
            },
            Case {
                name: "hook reads an undefined secret",
                setup: |ws| {
                    with_secrets(ws);
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        "activate = \"bin/restart {{ secrets.nope }}\"",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &["deploy.toml:29:28", "secrets.nope"],
            },
            Case {
                name: "identity file that holds no identity",
                setup: |ws| {
                    with_secrets(ws);
                    ws.write(IDENTITY, "not a key\n");
                },
                args: DEPLOY,
                expect_in_stderr: &[IDENTITY],
            },
            Case {
                name: "identity file that does not exist",
                setup: |ws| {
                    with_secrets(ws);
                    fs::remove_file(ws.path(IDENTITY)).unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &[IDENTITY],
            },
            Case {
                name: "secrets file and no recipients",
                setup: |ws| {
                    with_secrets(ws);
                    ws.edit(
                        "environments/dev.toml",
                        &format!("recipients = [\"{RECIPIENT}\"]"),
                        "recipients = []",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml"],
            },
            Case {
                name: "recipient that is not a key",
                setup: |ws| {
                    append(
                        ws,
                        "environments/dev.toml",
                        "\n[secrets]\nrecipients = [\"age1nope\"]\n",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &["environments/dev.toml:15:15", "invalid secrets recipient"],
            },
            Case {
                name: "secrets show of a key that does not exist",
                setup: with_secrets,
                args: &["secrets", "show", "dev", "db_password"],
                expect_in_stderr: &["db_password"],
            },
        ],
    );
}

/// Where a reachable host's ssh leaves its mark: nothing may create it.
const CONTACTED: &str = "contacted";

/// Adds environment `ssh`, whose two hosts are reached over ssh (not
/// `--local`), through an `ssh_config` whose `ProxyCommand` notes every
/// attempt in `contacted` and fails.
fn ssh_environment(ws: &Workspace) {
    ws.write(
        "environments/ssh/config",
        &format!(
            "Host *\n    ProxyCommand sh -c 'echo %h >> {}; exit 1'\n    BatchMode yes\n",
            ws.path(CONTACTED).display()
        ),
    );
    ws.write(
        "environments/ssh.toml",
        "[environment]\nssh_config = \"ssh/config\"\n\n\
         [hosts.web1]\naddress = \"127.0.0.1\"\nroles = [\"web\"]\nvars = { port = 8081 }\n\n\
         [hosts.web2]\naddress = \"127.0.0.1\"\nroles = [\"web\"]\nvars = { port = 8082 }\n",
    );
}

/// The control of every case run on environment `ssh`: a command that
/// does contact its hosts leaves the mark.
#[test]
fn a_command_that_reaches_for_a_host_leaves_the_mark() {
    let ws = Workspace::hello_built();
    ssh_environment(&ws);
    run(&ws, &["check", "ssh"]).assert_code(0);
    assert!(!ws.path(CONTACTED).exists());
    let out = run(&ws, &["exec", "ssh", "--only", "web1", "--", "true"]);
    out.assert_code(1);
    let marks = fs::read_to_string(ws.path(CONTACTED)).unwrap();
    assert!(marks.contains("127.0.0.1"), "{marks}");
}

/// A bundle at `bundle/` of one artifact, `app`, holding these links (path
/// and target), listed with the id they give.
fn bundle_of_links(ws: &Workspace, links: &[(&str, &str)]) {
    let dir = ws.path("bundle");
    let root = dir.join("artifacts/app");
    fs::create_dir_all(&root).unwrap();
    let mut canonical = "landfall-manifest-v1\n".to_string();
    let mut sorted = links.to_vec();
    sorted.sort_unstable();
    for (path, target) in &sorted {
        let _ = writeln!(canonical, "symlink\t{target}\t{path}");
        let at = root.join(path);
        if at.starts_with(&root) && !path.contains("..") {
            fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &at).unwrap();
        }
    }
    let id = landfall::assemble::Manifest::parse(&canonical)
        .unwrap()
        .id()
        .to_hex()
        .to_string();
    let files: Vec<serde_json::Value> = links
        .iter()
        .map(
            |(path, target)| serde_json::json!({"type": "symlink", "path": path, "target": target}),
        )
        .collect();
    let manifest = serde_json::json!({
        "schema": "landfall-bundle/1", "landfall": "0.1.0", "project": "hello",
        "revision": null, "dirty": false, "source_date_epoch": 0,
        "toolchain": "rustc 1.88.0", "profile": "release", "target": null, "features": [],
        "env": "ssh",
        "artifacts": [{"name": "app", "id": id, "files": files}],
        "releases": [],
    });
    fs::write(
        dir.join("landfall-bundle.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

const FROM_BUNDLE: &[&str] = &["deploy", "ssh", "--from", "bundle"];

#[test]
fn paths_that_escape_are_refused() {
    run_cases(
        &expect_file!["snapshots/bad_input/paths.txt"],
        &[
            Case {
                name: "files dst climbing out of the release",
                setup: |ws| ws.edit("deploy.toml", "dst = \"bin/restart\"", "dst = \"../x\""),
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:58", "`../x` escapes the release directory"],
            },
            Case {
                name: "files dst climbing out through a directory",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\"",
                        "dst = \"a/../../x\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:58", "escapes the release directory"],
            },
            Case {
                name: "files dst of `..` alone",
                setup: |ws| ws.edit("deploy.toml", "dst = \"bin/restart\"", "dst = \"..\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:21:58", "escapes the release directory"],
            },
            Case {
                name: "files dst into the release's own directory",
                setup: |ws| ws.edit("deploy.toml", "dst = \"bin/restart\"", "dst = \"./x\""),
                args: CHECK,
                expect_in_stderr: &["deploy.toml:21:58", "invalid destination `./x`"],
            },
            Case {
                name: "template dst that is absolute",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"etc/hello.toml\"",
                        "dst = \"/etc/hello.toml\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:22:45", "`/etc/hello.toml` is absolute"],
            },
            Case {
                name: "template dst climbing out of the release",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"etc/hello.toml\"",
                        "dst = \"etc/../../../hello.toml\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:22:45", "escapes the release directory"],
            },
            Case {
                name: "shared dir that is absolute",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "shared = [\"log\", \"run\"]",
                        "shared = [\"log\", \"/var/run\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:23:18", "`/var/run` is absolute"],
            },
            Case {
                name: "shared dir climbing out through a directory",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "shared = [\"log\", \"run\"]",
                        "shared = [\"log\", \"run/../..\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:23:18", "escapes the release directory"],
            },
            Case {
                name: "files tree holding a relative symlink out of the workspace",
                setup: |ws| {
                    std::os::unix::fs::symlink("../../../..", ws.path("examples/hello/site/up"))
                        .unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "deploy.toml:37:18",
                    "`examples/hello/site/up` points outside the workspace",
                ],
            },
            Case {
                name: "files tree holding a relative symlink to a file out of the workspace",
                setup: |ws| {
                    let depth = ws.root().components().count() + 3;
                    let target = format!("{}etc/passwd", "../".repeat(depth));
                    std::os::unix::fs::symlink(target, ws.path("examples/hello/site/passwd"))
                        .unwrap();
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:37:18",
                    "`examples/hello/site/passwd` points outside the workspace",
                ],
            },
            Case {
                name: "files tree holding an absolute symlink out of the workspace",
                setup: |ws| {
                    std::os::unix::fs::symlink("/etc", ws.path("examples/hello/site/etc")).unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "deploy.toml:37:18",
                    "`examples/hello/site/etc` points outside the workspace",
                ],
            },
            Case {
                name: "files tree holding a symlink loop",
                setup: |ws| {
                    std::os::unix::fs::symlink(".", ws.path("examples/hello/site/loop")).unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:37:18", "examples/hello/site"],
            },
            Case {
                name: "bundle listing a path with ..",
                setup: |ws| {
                    ssh_environment(ws);
                    bundle_of_links(ws, &[("log", "../../shared/log"), ("../evil", "x")]);
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &[
                    "bundle `bundle`",
                    "lists the invalid path `../evil` in artifact `app`",
                ],
            },
            Case {
                name: "bundle listing an absolute path",
                setup: |ws| {
                    ssh_environment(ws);
                    bundle_of_links(ws, &[("/etc/cron.d/evil", "x")]);
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["invalid path `/etc/cron.d/evil`"],
            },
            Case {
                name: "bundle holding an absolute symlink",
                setup: |ws| {
                    ssh_environment(ws);
                    bundle_of_links(ws, &[("log", "../../shared/log"), ("etc", "/etc")]);
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["`artifacts/app/etc` is a link to `/etc`"],
            },
            Case {
                name: "bundle holding a symlink climbing out of the artifact",
                setup: |ws| {
                    ssh_environment(ws);
                    bundle_of_links(ws, &[("bin/up", "../../../../..")]);
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["`artifacts/app/bin/up` is a link to `../../../../..`"],
            },
            Case {
                name: "bundle holding a symlink climbing out through a shared link",
                setup: |ws| {
                    ssh_environment(ws);
                    bundle_of_links(ws, &[("log", "../../shared/log"), ("x", "log/../../../..")]);
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["`artifacts/app/x` is a link to `log/../../../..`"],
            },
            Case {
                name: "bundle whose link differs from its manifest",
                setup: |ws| {
                    ssh_environment(ws);
                    bundle_of_links(ws, &[("log", "../../shared/log")]);
                    let link = ws.path("bundle/artifacts/app/log");
                    fs::remove_file(&link).unwrap();
                    std::os::unix::fs::symlink("/var/log", &link).unwrap();
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["`artifacts/app/log` is not a link to `../../shared/log`"],
            },
            Case {
                name: "bundle artifact named with ..",
                setup: |ws| {
                    ssh_environment(ws);
                    bundle_of_links(ws, &[("log", "../../shared/log")]);
                    let path = ws.path("bundle/landfall-bundle.json");
                    let text = fs::read_to_string(&path).unwrap();
                    fs::write(&path, text.replace("\"name\": \"app\"", "\"name\": \"..\""))
                        .unwrap();
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["`landfall-bundle.json` names an invalid artifact `..`"],
            },
        ],
    );
}

#[test]
fn hostile_values_are_refused_at_validation() {
    run_cases(
        &expect_file!["snapshots/bad_input/hostile_values.txt"],
        &[
            Case {
                name: "host name with a newline",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "[hosts.web2]",
                        "[hosts.\"web2\\ntouch x\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &[
                    "environments/dev.toml:9:8",
                    "invalid host name `web2\\ntouch x`",
                ],
            },
            Case {
                name: "host name with a command substitution",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "[hosts.web2]",
                        "[hosts.\"$(touch x)\"]",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &[
                    "environments/dev.toml:9:8",
                    "invalid host name `$(touch x)`",
                ],
            },
            Case {
                name: "host name with backticks",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "[hosts.web2]",
                        "[hosts.\"`touch x`\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:9:8", "invalid host name"],
            },
            Case {
                name: "address that is an ssh option",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "address = \"127.0.0.1\"",
                        "address = \"-oProxyCommand=touch x\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:5:11", "invalid address"],
            },
            Case {
                name: "address with quotes",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "address = \"127.0.0.1\"",
                        "address = \"127.0.0.1'; touch x; '\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:5:11", "invalid address"],
            },
            Case {
                name: "user that is an ssh option",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "jobs = 4",
                        "jobs = 4\nuser = \"-oProxyCommand=touch x\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:3:8", "invalid user"],
            },
            Case {
                name: "user with a command substitution",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "jobs = 4",
                        "jobs = 4\nuser = \"deploy$(touch x)\"",
                    );
                },
                args: CHECK,
                expect_in_stderr: &[
                    "environments/dev.toml:3:8",
                    "invalid user `deploy$(touch x)`",
                ],
            },
            Case {
                name: "role with quotes",
                setup: |ws| {
                    ws.edit(
                        "environments/dev.toml",
                        "roles = [\"web\"]",
                        "roles = [\"web\", \"'; touch x; '\"]",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["environments/dev.toml:6:17", "invalid role"],
            },
            Case {
                name: "artifact name with a command substitution",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "[artifact.site]",
                        "[artifact.\"$(touch x)\"]",
                    );
                    ws.edit("deploy.toml", "after = [\"site\"]", "after = []");
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:34:11", "invalid artifact name `$(touch x)`"],
            },
            Case {
                name: "project name with a semicolon",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "name = \"hello\"",
                        "name = \"hello; touch x\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:7:8", "invalid project name"],
            },
            Case {
                name: "path with a newline",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "path = \"/srv/hello/app\"",
                        "path = \"/srv/hello/app\\ntouch x\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:19:8", "control characters"],
            },
            Case {
                name: "dst with a newline",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "dst = \"bin/restart\"",
                        "dst = \"bin/re\\nstart\"",
                    );
                },
                args: DEPLOY,
                expect_in_stderr: &["deploy.toml:21:58", "invalid destination `bin/re\\nstart`"],
            },
            Case {
                name: "source file named with a newline",
                setup: |ws| ws.write("examples/hello/site/a\nb.html", "<p>a</p>\n"),
                args: DEPLOY,
                expect_in_stderr: &[
                    "deploy.toml:37:18",
                    "`public/a\\nb.html` has control characters",
                ],
            },
            Case {
                name: "environment name with a command substitution",
                setup: |_| {},
                args: &["deploy", "dev$(touch x)", "--local"],
                expect_in_stderr: &["unknown environment `dev$(touch x)`"],
            },
            Case {
                name: "environment name that is an option",
                setup: |_| {},
                args: &["status", "--", "-rf"],
                expect_in_stderr: &["unknown environment `-rf`"],
            },
            Case {
                name: "--only with a command substitution",
                setup: |_| {},
                args: &["deploy", "dev", "--local", "--only", "$(touch x)"],
                expect_in_stderr: &["`--only $(touch x)`: no host `$(touch x)`"],
            },
            Case {
                name: "--only that is an ssh option",
                setup: ssh_environment,
                args: &["exec", "ssh", "--only=-oProxyCommand=touch x", "--", "true"],
                expect_in_stderr: &["no host `-oProxyCommand=touch x`"],
            },
            Case {
                name: "--to with quotes",
                setup: ssh_environment,
                args: &["rollback", "ssh", "--to", "x'; touch /srv/pwned; '"],
                expect_in_stderr: &["--to <DEPLOY|RELEASE|COMMIT>", "a git ref"],
            },
            Case {
                name: "--var whose name is shell",
                setup: |_| {},
                args: &["deploy", "dev", "--local", "--var", "$(touch x)=1"],
                expect_in_stderr: &["`--var $(touch x)=1`", "not a variable name"],
            },
        ],
    );
}

#[test]
fn no_host_is_contacted_for_bad_input() {
    run_cases(
        &expect_file!["snapshots/bad_input/not_contacted.txt"],
        &[
            Case {
                name: "template uses an undefined variable",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.edit(
                        "templates/hello.toml.j2",
                        "name = \"{{ host.name }}\"",
                        "name = \"{{ vars.nope }}\"",
                    );
                },
                args: &["deploy", "ssh"],
                expect_in_stderr: &["templates/hello.toml.j2:4:12", "vars.nope"],
            },
            Case {
                name: "template error on a dry run",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.edit(
                        "templates/hello.toml.j2",
                        "name = \"{{ host.name }}\"",
                        "name = \"{% if %}\"",
                    );
                },
                args: &["deploy", "ssh", "--dry-run"],
                expect_in_stderr: &["templates/hello.toml.j2:4:15"],
            },
            Case {
                name: "unknown key in the environment",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.edit(
                        "environments/ssh.toml",
                        "[environment]",
                        "[environment]\nusr = \"deploy\"",
                    );
                },
                args: &["deploy", "ssh"],
                expect_in_stderr: &["environments/ssh.toml:2:1", "usr"],
            },
            Case {
                name: "--only names an unknown host",
                setup: ssh_environment,
                args: &["deploy", "ssh", "--only", "web9"],
                expect_in_stderr: &["`--only web9`"],
            },
            Case {
                name: "status with an invalid address",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.edit(
                        "environments/ssh.toml",
                        "address = \"127.0.0.1\"",
                        "address = \"127.0.0.1 -v\"",
                    );
                },
                args: &["status", "ssh"],
                expect_in_stderr: &["environments/ssh.toml:5:11", "invalid address"],
            },
            Case {
                name: "rollback with keep = 0",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.edit("deploy.toml", "keep = 3\nafter", "keep = 0\nafter");
                },
                args: &["rollback", "ssh"],
                expect_in_stderr: &["deploy.toml:24:8", "`keep` must be at least 1"],
            },
            Case {
                name: "rollback to a release that cannot exist",
                setup: ssh_environment,
                args: &["rollback", "ssh", "--to", "release-1"],
                expect_in_stderr: &["`--to release-1` is neither a deploy id"],
            },
            Case {
                name: "exec with a hook that does not render",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.edit(
                        "deploy.toml",
                        "activate = \"bin/restart\"",
                        "activate = \"bin/restart {{ vars.nope }}\"",
                    );
                },
                args: &["exec", "ssh", "--", "true"],
                expect_in_stderr: &["deploy.toml:29:28", "vars.nope"],
            },
            Case {
                name: "exec with an environment file that is not UTF-8",
                setup: |ws| {
                    ssh_environment(ws);
                    append(ws, "environments/ssh.toml", NOT_UTF8);
                },
                args: &["exec", "ssh", "--", "true"],
                expect_in_stderr: &["environments/ssh.toml:13:", "UTF-8"],
            },
            Case {
                name: "ssh_config that does not exist",
                setup: |ws| {
                    ssh_environment(ws);
                    fs::remove_file(ws.path("environments/ssh/config")).unwrap();
                },
                args: &["deploy", "ssh"],
                expect_in_stderr: &["ssh_config", "environments/ssh/config"],
            },
            Case {
                name: "secrets file that is not age",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.write(IDENTITY, &format!("{KEY}\n"));
                    append(
                        ws,
                        "environments/ssh.toml",
                        format!("\n[secrets]\nrecipients = [\"{RECIPIENT}\"]\n"),
                    );
                    ws.write("secrets/ssh.toml.age", "token = \"x\"\n");
                },
                args: &["deploy", "ssh"],
                expect_in_stderr: &["secrets/ssh.toml.age"],
            },
            Case {
                name: "git artifact with uncommitted changes",
                setup: |ws| {
                    ssh_environment(ws);
                    append(
                        ws,
                        "deploy.toml",
                        "transport = \"git\"\nsubdir = \"examples/hello/site\"\n",
                    );
                    ws.git_commit("first");
                    append(
                        ws,
                        "examples/hello/site/index.html",
                        "<p>not committed</p>\n",
                    );
                },
                args: &["deploy", "ssh"],
                expect_in_stderr: &["examples/hello/site/index.html", "`--allow-dirty`"],
            },
            Case {
                name: "git artifact whose subdir is not in HEAD",
                setup: |ws| {
                    ssh_environment(ws);
                    append(
                        ws,
                        "deploy.toml",
                        "transport = \"git\"\nsubdir = \"nowhere\"\n",
                    );
                    ws.git_commit("first");
                },
                args: &["deploy", "ssh"],
                expect_in_stderr: &["`nowhere` is not a directory in HEAD"],
            },
            Case {
                name: "protected environment with uncommitted changes",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.edit(
                        "environments/ssh.toml",
                        "[environment]",
                        "[environment]\nprotect = true",
                    );
                    ws.git_commit("first");
                    append(
                        ws,
                        "examples/hello/site/index.html",
                        "<p>not committed</p>\n",
                    );
                },
                args: &["deploy", "ssh", "--yes"],
                expect_in_stderr: &["`ssh` is protected", "`--allow-dirty`"],
            },
            Case {
                name: "protected environment without --yes",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.edit(
                        "environments/ssh.toml",
                        "[environment]",
                        "[environment]\nprotect = true",
                    );
                    ws.git_commit("first");
                },
                args: &["deploy", "ssh"],
                expect_in_stderr: &["`--yes`"],
            },
            Case {
                name: "--from a directory that is not a bundle",
                setup: |ws| {
                    ssh_environment(ws);
                    fs::create_dir_all(ws.path("bundle")).unwrap();
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["`bundle` is not a bundle", "landfall-bundle.json"],
            },
            Case {
                name: "--from a bundle of another schema",
                setup: |ws| {
                    ssh_environment(ws);
                    ws.write(
                        "bundle/landfall-bundle.json",
                        "{\"schema\": \"landfall-bundle/9\"}\n",
                    );
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["landfall-bundle/9"],
            },
            Case {
                name: "--from a bundle that lacks an artifact",
                setup: |ws| {
                    ssh_environment(ws);
                    bundle_of_links(
                        ws,
                        &[("log", "../../shared/log"), ("run", "../../shared/run")],
                    );
                },
                args: FROM_BUNDLE,
                expect_in_stderr: &["bundle `bundle` has no artifact `site` of deploy.toml"],
            },
        ],
    );
}

#[test]
fn inputs_that_are_not_what_they_seem_are_refused_where_they_are() {
    run_cases(
        &expect_file!["snapshots/bad_input/not_what_they_seem.txt"],
        &[
            Case {
                name: "a FIFO among the files",
                setup: |ws| {
                    let fifo = ws.path("examples/hello/site/pipe");
                    let status = std::process::Command::new("mkfifo")
                        .arg(&fifo)
                        .status()
                        .unwrap();
                    assert!(status.success());
                },
                args: CHECK,
                expect_in_stderr: &["deploy.toml:37:", "`examples/hello/site/pipe` is a FIFO"],
            },
            Case {
                name: "a template that is a link leaving the workspace",
                setup: |ws| {
                    let template = ws.path("templates/hello.toml.j2");
                    fs::remove_file(&template).unwrap();
                    std::os::unix::fs::symlink("/etc/hostname", &template).unwrap();
                },
                args: CHECK,
                expect_in_stderr: &[
                    "deploy.toml:22:",
                    "is a link that points outside the workspace",
                ],
            },
            Case {
                name: "a host named `..`",
                setup: |ws| {
                    append(
                        ws,
                        "environments/dev.toml",
                        "\n[hosts.\"..\"]\nroles = [\"web\"]\n",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &["environments/dev.toml:14:", "invalid host name `..`"],
            },
            Case {
                name: "a hook that renders a NUL from a variable",
                setup: |ws| {
                    ws.edit(
                        "deploy.toml",
                        "healthy = true",
                        "healthy = true\nnul = \"a\\u0000b\"",
                    );
                    append(
                        ws,
                        "deploy.toml",
                        "\n[artifact.site.hooks]\nactivate = \"echo {{ vars.nul }}\"\n",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &["deploy.toml:42:", "a value holds a NUL character"],
            },
            Case {
                name: "a hook too long for a command line",
                setup: |ws| {
                    let long = "x".repeat(70_000);
                    ws.edit(
                        "deploy.toml",
                        "healthy = true",
                        &format!("healthy = true\nlong = \"{long}\""),
                    );
                    append(
                        ws,
                        "deploy.toml",
                        "\n[artifact.site.hooks]\nactivate = \"echo {{ vars.long }}\"\n",
                    );
                },
                args: CHECK_DEV,
                expect_in_stderr: &[
                    "deploy.toml:42:",
                    "more than the 65536 a command line holds",
                ],
            },
            Case {
                name: "an identity that is a device",
                setup: |ws| {
                    with_secrets(ws);
                    let identity = ws.path(IDENTITY);
                    fs::remove_file(&identity).unwrap();
                    std::os::unix::fs::symlink("/dev/zero", &identity).unwrap();
                },
                args: DEPLOY,
                expect_in_stderr: &["cannot read the identity", "it is not a regular file"],
            },
        ],
    );
}
