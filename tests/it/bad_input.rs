//! Bad input: every case breaks one thing in a valid workspace and expects
//! `cargo-deploy` to refuse with exit status 2, a message that names where
//! the problem is, and no change anywhere in the workspace.
//!
//! The workspace is `Workspace::hello()`. Line numbers below refer to the
//! repository's `deploy.toml` (the `app` artifact's `files` entry is on line
//! 21, its `keep` on line 24, its hooks on lines 28 to 31, `[artifact.site]`
//! on line 34, 38 lines in all), to the harness's `environments/dev.toml`
//! (`jobs` on line 2, `[hosts.web1]` on line 4 with `address`, `roles` and
//! `vars` on lines 5 to 7, `[hosts.web2]` on line 9, 12 lines in all) and to
//! `templates/hello.toml.j2` (7 lines, `name = "{{ host.name }}"` on line 4).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;

use crate::support::{Workspace, repo};

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

/// Runs one case in a fresh workspace and describes what went wrong, if
/// anything.
fn run_case(case: &Case) -> Result<(), String> {
    let ws = Workspace::hello();
    (case.setup)(&ws);
    let before = ws.snapshot();
    let files_before = contents(&ws, &before);

    let out = ws.run(case.args);

    let mut problems = Vec::new();
    if out.code != 2 {
        problems.push(format!("exit status {} instead of 2", out.code));
    }
    for fragment in case.expect_in_stderr {
        if !out.stderr.contains(fragment) {
            problems.push(format!("stderr does not contain `{fragment}`"));
        }
    }
    if out.stderr.contains("panicked") {
        problems.push("cargo-deploy panicked".to_string());
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

    if problems.is_empty() {
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
    }
}

/// Runs every case, then fails once with all failures, so that one broken
/// case does not hide the others.
fn run_cases(cases: &[Case]) {
    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
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
    let ws = Workspace::hello();
    for args in [CHECK, CHECK_DEV] {
        ws.run(args).assert_code(0);
    }
}

#[test]
fn syntax_errors_are_refused_with_their_position() {
    run_cases(&[
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
    ]);
}

#[test]
fn unknown_keys_are_refused_where_they_are_written() {
    run_cases(&[
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
    ]);
}

#[test]
fn values_of_the_wrong_type_are_refused_where_they_are_written() {
    run_cases(&[
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
    ]);
}

#[test]
fn semantic_errors_in_deploy_toml_are_refused_where_they_are_written() {
    run_cases(&[
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
                let outside = repo().join("examples/hello/scripts/restart");
                std::os::unix::fs::symlink(outside, ws.path("examples/hello/scripts/out")).unwrap();
                ws.edit("deploy.toml", "scripts/restart\"", "scripts/out\"");
            },
            args: DEPLOY,
            expect_in_stderr: &["deploy.toml:21:18", "points outside the workspace"],
        },
        Case {
            name: "src directory holds a symlink out of the workspace",
            setup: |ws| {
                let outside = repo().join("examples/hello/static");
                std::os::unix::fs::symlink(outside, ws.path("examples/hello/site/out")).unwrap();
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
    ]);
}

#[test]
fn template_and_hook_errors_point_into_their_source() {
    run_cases(&[
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
                    "vars = { port = ",
                    "vars = { weight = 2, port = ",
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
    ]);
}

#[test]
fn environment_errors_are_refused_where_they_are_written() {
    run_cases(&[
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
    ]);
}

#[test]
fn command_line_errors_are_refused_and_named() {
    run_cases(&[
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
            expect_in_stderr: &["<ENV>"],
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
    ]);
}
