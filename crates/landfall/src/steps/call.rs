//! The one translation of a [`Step`] into a call of its sh function, and
//! the one way a call is written as sh.
//!
//! A step function reads its arguments from variables named after them,
//! `lf_NAME`, set for its call alone: each is assigned, quoted by
//! [`crate::process::quote`], on the line before the call, and unset before
//! the next call, so that no value of one call is seen by the next, and
//! none is exported to a hook. Nothing follows the last call: its exit
//! status is the script's. A step that takes a list (paths, a command's
//! words) gets it as the function's positional parameters, which the
//! function reads only as `"$@"`; the standard input a step reads comes
//! from a here-document. Which names each function reads is checked
//! against [`call`] by a test, both ways.

use super::{ExecInput, PullEntry, Step};
use crate::process::quote;

/// What every variable a step function reads begins with: its name is
/// that of the argument after it.
pub(super) const PREFIX: &str = "lf_";

/// The delimiter of the here-document a call reads.
const END: &str = "LANDFALL_INPUT_END";

/// A [`Step`] as sh calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Call {
    /// The function of `steps.sh`; none for a command of its own, whose
    /// words are `list`.
    pub(super) function: Option<&'static str>,
    /// The function's arguments by name (without [`PREFIX`]), in order.
    pub(super) vars: Vec<(&'static str, String)>,
    /// The list the function reads as `"$@"`, if it takes one.
    pub(super) list: Option<Vec<String>>,
    /// The standard input it reads, from a here-document.
    pub(super) input: Option<String>,
}

impl Call {
    fn of(function: &'static str) -> Call {
        Call {
            function: Some(function),
            vars: Vec::new(),
            list: None,
            input: None,
        }
    }

    fn var(mut self, name: &'static str, value: impl Into<String>) -> Call {
        debug_assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "`{name}` is no name of a variable"
        );
        self.vars.push((name, value.into()));
        self
    }

    fn flag(self, name: &'static str, value: bool) -> Call {
        self.var(name, if value { "1" } else { "0" })
    }

    fn list(mut self, list: &[String]) -> Call {
        self.list = Some(list.to_vec());
        self
    }

    fn input(mut self, input: String) -> Call {
        self.input = Some(input);
        self
    }

    /// Appends the call to `text`: the assignments of its variables on a
    /// line of their own, then the call with its list and here-document.
    fn write(&self, text: &mut String) {
        let Some(function) = self.function else {
            // A command of its own: from `/`, reading nothing.
            let words: Vec<String> = self.list.iter().flatten().map(|w| quote(w)).collect();
            text.push_str("(cd / && ");
            text.push_str(&words.join(" "));
            text.push_str(" </dev/null)\n");
            return;
        };
        for (i, (name, value)) in self.vars.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(PREFIX);
            text.push_str(name);
            text.push('=');
            text.push_str(&quote(value));
        }
        if !self.vars.is_empty() {
            text.push('\n');
        }
        text.push_str(function);
        for item in self.list.iter().flatten() {
            text.push(' ');
            text.push_str(&quote(item));
        }
        if let Some(input) = &self.input {
            assert!(
                !input.lines().any(|line| line == END),
                "input holds the here-document's delimiter"
            );
            text.push_str(" <<'");
            text.push_str(END);
            text.push_str("'\n");
            text.push_str(input);
            if !input.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(END);
        }
        text.push('\n');
    }

    /// Appends the line that unsets the call's variables, if it has any.
    fn write_unset(&self, text: &mut String) {
        if self.vars.is_empty() {
            return;
        }
        text.push_str("unset");
        for (name, _) in &self.vars {
            text.push(' ');
            text.push_str(PREFIX);
            text.push_str(name);
        }
        text.push('\n');
    }
}

/// Appends `calls` to `text`, each one's variables unset before the next.
pub(super) fn write_calls(calls: &[Call], text: &mut String) {
    for (i, c) in calls.iter().enumerate() {
        if i > 0 {
            calls[i - 1].write_unset(text);
        }
        c.write(text);
    }
}

/// Bytes as base64 lines of 76 characters, for a here-document.
fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut lines = String::with_capacity(encoded.len() + encoded.len() / 76 + 1);
    for chunk in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        lines.push('\n');
    }
    lines
}

/// The one translation of steps into calls of `steps.sh`: each step's
/// function, and its arguments by name. An argument with no value (`None`)
/// is set empty: a function reads every variable it is given.
#[allow(
    clippy::too_many_lines,
    reason = "one arm a step, each its function's whole signature"
)]
pub(super) fn call(step: &Step) -> Call {
    let or_empty = |value: &Option<String>| value.clone().unwrap_or_default();
    match step {
        Step::Probe {
            detail,
            sbom,
            paths,
        } => Call::of("landfall_probe")
            .flag("sbom", *sbom)
            .flag("detail", *detail)
            .list(paths),
        Step::Claim {
            index,
            path,
            release,
            owner,
            break_lock,
            git,
            name,
            derive,
            shared,
            resume,
        } => Call::of("landfall_claim")
            .var("index", index.to_string())
            .var("path", path)
            .var("release", or_empty(release))
            .var("owner", owner)
            .flag("break_lock", *break_lock)
            .flag("git", *git)
            .var("name", name)
            .var(
                "from",
                derive.as_ref().map(|d| d.from.as_str()).unwrap_or_default(),
            )
            .var(
                "top",
                derive
                    .as_ref()
                    .map(|d| d.top.to_string())
                    .unwrap_or_default(),
            )
            // A path a line: manifest paths hold no control characters.
            .var(
                "gone",
                derive
                    .as_ref()
                    .map(|d| d.gone.join("\n"))
                    .unwrap_or_default(),
            )
            .var("resume", or_empty(resume))
            .list(shared),
        Step::Lock {
            path,
            owner,
            break_lock,
            name,
        } => Call::of("landfall_lock")
            .var("path", path)
            .var("owner", owner)
            .flag("break_lock", *break_lock)
            .var("name", name),
        Step::Unlock { path, token } => Call::of("landfall_unlock")
            .var("path", path)
            .var("token", token),
        Step::Wait { path, token, owner } => {
            debug_assert!(!owner.contains('\n'), "a lock's owner is one line");
            Call::of("landfall_wait")
                .var("path", path)
                .var("token", token)
                .var("owner", owner)
        }
        Step::TakeOver {
            path,
            owner,
            token,
            name,
        } => Call::of("landfall_take_over")
            .var("path", path)
            .var("owner", owner)
            .var("token", token)
            .var("name", name),
        Step::Forget { path, dir, token } => Call::of("landfall_forget")
            .var("path", path)
            .var("dir", dir)
            .var("token", token),
        Step::Prepare { path, shared } => {
            Call::of("landfall_prepare").var("path", path).list(shared)
        }
        Step::GitInit { path } => Call::of("landfall_git_init").var("path", path),
        Step::Checkout {
            path,
            release,
            tree,
        } => Call::of("landfall_checkout")
            .var("path", path)
            .var("release", release)
            .var("tree", tree),
        Step::Put {
            dir,
            name,
            mode,
            bytes,
        } => Call::of("landfall_put")
            .var("dir", dir)
            .var("name", name)
            .var("mode", format!("{mode:o}"))
            .input(base64_lines(bytes)),
        Step::Pull {
            path,
            release,
            current,
            seconds,
            entries,
        } => Call::of("landfall_pull")
            .var("path", path)
            .var("release", release)
            .var("current", or_empty(current))
            .var("seconds", seconds.to_string())
            .input(entries.iter().map(PullEntry::line).collect()),
        Step::Link { dir, name, target } => Call::of("landfall_link")
            .var("dir", dir)
            .var("name", name)
            .var("target", target),
        Step::Build {
            path,
            release,
            previous,
        } => Call::of("landfall_build")
            .var("path", path)
            .var("release", release)
            .var("previous", or_empty(previous)),
        Step::Finalize {
            path,
            release,
            provenance,
        } => {
            debug_assert!(!provenance.contains('\n'), "provenance is one line");
            Call::of("landfall_finalize")
                .var("path", path)
                .var("release", release)
                .var("provenance", provenance)
        }
        Step::Discard { path, release } => Call::of("landfall_discard")
            .var("path", path)
            .var("release", release),
        Step::Manifest { path, release } => Call::of("landfall_manifest")
            .var("path", path)
            .var("release", release),
        Step::Files {
            path,
            release,
            max,
            files,
        } => Call::of("landfall_files")
            .var("path", path)
            .var("release", release)
            .var("max", max.to_string())
            .list(files),
        Step::Activate {
            path,
            release,
            previous,
            revert,
            log_ok,
            log_back,
            confirm,
        } => Call::of("landfall_activate")
            .var("path", path)
            .var("release", release)
            .var("previous", or_empty(previous))
            .flag("revert", *revert)
            .var("log_ok", log_ok)
            .var("log_back", log_back)
            .var(
                "confirm",
                confirm
                    .as_ref()
                    .map(|arm| arm.seconds.to_string())
                    .unwrap_or_default(),
            )
            .var(
                "token",
                confirm
                    .as_ref()
                    .map(|arm| arm.token.clone())
                    .unwrap_or_default(),
            )
            .var(
                "log_expired",
                confirm
                    .as_ref()
                    .map(|arm| arm.log.clone())
                    .unwrap_or_default(),
            ),
        Step::Confirm {
            path,
            release,
            only_read,
        } => Call::of("landfall_confirm")
            .var("path", path)
            .var("release", release)
            .flag("only_read", *only_read),
        Step::Back {
            path,
            from,
            to,
            log,
        } => Call::of("landfall_back")
            .var("path", path)
            .var("from", from)
            .var("to", or_empty(to))
            .var("log", log),
        Step::Cleanup {
            path,
            keep,
            previous,
        } => Call::of("landfall_cleanup")
            .var("path", path)
            .var("keep", keep.to_string())
            .var("previous", or_empty(previous)),
        Step::ServiceLogs {
            path,
            lines,
            follow,
            all_releases,
        } => Call::of("landfall_service_logs")
            .var("path", path)
            .var("lines", lines.to_string())
            .flag("follow", *follow)
            .flag("all_releases", *all_releases),
        Step::Once { path, release } => Call::of("landfall_once")
            .var("path", path)
            .var("release", release),
        Step::Check { path, release } => Call::of("landfall_check")
            .var("path", path)
            .var("release", release),
        Step::Orphans {
            project,
            env,
            known,
        } => Call::of("landfall_orphans")
            .var("project", project)
            .var("env", env)
            .list(known),
        Step::Prune { path, owner, name } => Call::of("landfall_prune")
            .var("path", path)
            .var("owner", owner)
            .var("name", name),
        Step::Exec {
            dir,
            input,
            logs,
            start,
            end,
            words,
        } => Call::of("landfall_exec")
            .var("dir", or_empty(dir))
            .var(
                "input",
                match input {
                    ExecInput::Nothing => "0",
                    ExecInput::File(_) => "1",
                    ExecInput::Terminal => "t",
                },
            )
            // A path a line.
            .var("logs", logs.join("\n"))
            .var("start", start)
            .var("end", end)
            .list(words),
        #[cfg(test)]
        Step::Command { words } => Call {
            function: None,
            vars: Vec::new(),
            list: Some(words.clone()),
            input: None,
        },
    }
}

/// One step of each kind, for the tests that render them all: the one
/// that ends the script last.
#[cfg(test)]
pub(super) fn every_step() -> Vec<Step> {
    use super::Derive;
    let s = String::from;
    vec![
        Step::Probe {
            detail: true,
            sbom: true,
            paths: vec![s("/a")],
        },
        Step::Claim {
            index: 0,
            path: s("/a"),
            release: Some(s("r")),
            owner: s("{}"),
            break_lock: true,
            git: false,
            name: s("p/a"),
            derive: Some(Derive {
                from: s("q"),
                top: 4,
                gone: vec![s("old"), s("etc/old.toml")],
            }),
            shared: vec![s("log")],
            resume: Some(s("t")),
        },
        Step::Lock {
            path: s("/a"),
            owner: s("o"),
            break_lock: false,
            name: s("p/a"),
        },
        Step::Unlock {
            path: s("/a"),
            token: s("t"),
        },
        Step::Wait {
            path: s("/a"),
            token: s("t"),
            owner: s("{}"),
        },
        Step::TakeOver {
            path: s("/a"),
            owner: s("{}"),
            token: s("t"),
            name: s("p/a"),
        },
        Step::Forget {
            path: s("/a/b"),
            dir: s("/a"),
            token: s("t"),
        },
        Step::Prepare {
            path: s("/a"),
            shared: vec![],
        },
        Step::GitInit { path: s("/a") },
        Step::Checkout {
            path: s("/a"),
            release: s("r"),
            tree: s("abc"),
        },
        Step::Pull {
            path: s("/a"),
            release: s("r"),
            current: None,
            seconds: 30,
            entries: vec![
                PullEntry::File {
                    path: s("bin/app"),
                    mode: 0o755,
                    size: 3,
                    blake3: s("b3"),
                    sha256: s("s2"),
                    mtime: s("200001010000.00"),
                    url: s("https://store/o"),
                },
                PullEntry::Symlink {
                    path: s("l"),
                    target: s("bin/app"),
                },
            ],
        },
        Step::Put {
            dir: s("/a"),
            name: s("x y"),
            mode: 0o600,
            bytes: b"secret\n".to_vec(),
        },
        Step::Link {
            dir: s("/a"),
            name: s("l"),
            target: s("../t"),
        },
        Step::Build {
            path: s("/a"),
            release: s("r"),
            previous: None,
        },
        Step::Finalize {
            path: s("/a"),
            release: s("r"),
            provenance: s("{}"),
        },
        Step::Discard {
            path: s("/a"),
            release: s("r"),
        },
        Step::Manifest {
            path: s("/a"),
            release: s("r"),
        },
        Step::Files {
            path: s("/a"),
            release: s("r"),
            max: 10,
            files: vec![s("f")],
        },
        Step::Activate {
            path: s("/a"),
            release: s("r"),
            previous: Some(s("q")),
            revert: true,
            log_ok: s("{}"),
            log_back: s("{}"),
            confirm: Some(super::Arm {
                seconds: 30,
                token: s("t"),
                log: s("{}"),
            }),
        },
        Step::Confirm {
            path: s("/a"),
            release: s("r"),
            only_read: false,
        },
        Step::Back {
            path: s("/a"),
            from: s("r"),
            to: None,
            log: s("{}"),
        },
        Step::Cleanup {
            path: s("/a"),
            keep: 3,
            previous: None,
        },
        Step::ServiceLogs {
            path: s("/a"),
            lines: 20,
            follow: false,
            all_releases: true,
        },
        Step::Once {
            path: s("/a"),
            release: s("r"),
        },
        Step::Check {
            path: s("/a"),
            release: s("r"),
        },
        Step::Orphans {
            project: s("p:1"),
            env: s("prod"),
            known: vec![s("/a")],
        },
        Step::Prune {
            path: s("/b"),
            owner: s("{}"),
            name: s("p/b@prod"),
        },
        Step::Command {
            words: vec![s("echo"), s("a;b")],
        },
        Step::Exec {
            dir: None,
            input: ExecInput::Nothing,
            logs: vec![s("/a"), s("/b")],
            start: s("{}"),
            end: s("\"event\":\"exec_end\""),
            words: vec![s("echo"), s("a b")],
        },
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::steps::library::{FUNCTIONS, library};

    /// The names of the `lf_` variables `text` reads.
    fn reads(text: &str) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        for (at, _) in text.match_indices(PREFIX) {
            let before = &text[..at];
            if !(before.ends_with('$') || before.ends_with("${")) {
                continue;
            }
            let rest = &text[at + PREFIX.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.insert(&rest[..end]);
        }
        names
    }

    /// The sh of a function's body, without its comments and what it
    /// quotes with `'` (awk's programs, whose `$1` is awk's own).
    fn code_of(body: &str) -> String {
        let mut code = String::new();
        for line in body.lines().filter(|l| !l.trim_start().starts_with('#')) {
            code.push_str(line);
            code.push('\n');
        }
        code.split('\'').step_by(2).collect()
    }

    /// The Rust definition of each step and its sh function agree: the
    /// function reads, itself or through the step functions it calls,
    /// every variable the call sets and no other; it reads a list (as
    /// `"$@"`, before any `set --` of its own) if and only if the call
    /// passes one, and no positional parameter by number. No other
    /// function reads an `lf_` variable, so every function that does is
    /// one a step calls.
    #[test]
    fn each_step_function_reads_the_names_its_call_sets_and_no_others() {
        let library = library();
        let calls: BTreeMap<&str, Call> = every_step()
            .iter()
            .map(call)
            .filter_map(|c| Some((c.function?, c)))
            .collect();
        assert_eq!(
            calls.len(),
            every_step().len() - 1,
            "one step of each function"
        );
        let definition = |name: &str| {
            library
                .functions
                .iter()
                .find(|(n, _, _)| *n == name)
                .unwrap_or_else(|| panic!("steps.sh has no function `{name}`"))
        };
        for (name, text, _) in &library.functions {
            if !calls.contains_key(name) {
                let read = reads(text);
                assert!(read.is_empty(), "`{name}` is no step's, but reads {read:?}");
            }
        }
        for (function, c) in &calls {
            let (_, text, _) = definition(function);
            let mut read = BTreeSet::new();
            let mut seen = vec![*function];
            let mut i = 0;
            while i < seen.len() {
                let (_, text, called) = definition(seen[i]);
                read.extend(reads(text));
                for other in called {
                    if calls.contains_key(other) && !seen.contains(other) {
                        seen.push(other);
                    }
                }
                i += 1;
            }
            let set: BTreeSet<&str> = c.vars.iter().map(|(name, _)| *name).collect();
            assert_eq!(
                read, set,
                "what `{function}` reads (left), and what its call sets"
            );
            let code = code_of(&text[text.find('\n').unwrap_or(0)..]);
            let before_set = &code[..code.find("set --").unwrap_or(code.len())];
            assert_eq!(
                before_set.contains("\"$@\"") || before_set.contains("$*"),
                c.list.is_some(),
                "`{function}` reads a list if and only if its call passes one"
            );
            for positional in [
                "$#", "shift", "${1", "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9",
            ] {
                assert!(
                    !before_set.contains(positional),
                    "`{function}` reads `{positional}`: a step function reads its arguments by name"
                );
            }
        }
    }

    /// Each argument is set for its call alone, quoted; the list follows
    /// the function's name; the last call is the script's last command.
    #[test]
    fn a_call_sets_its_arguments_by_name_for_itself_alone() {
        let calls = [
            call(&Step::Orphans {
                project: "p:1".into(),
                env: "prod env".into(),
                known: vec!["/srv/a b".into(), "$(reboot)".into()],
            }),
            call(&Step::GitInit { path: "/a".into() }),
        ];
        let mut text = String::new();
        write_calls(&calls, &mut text);
        assert_eq!(
            text,
            "lf_project=p:1 lf_env='prod env'\n\
             landfall_orphans '/srv/a b' '$(reboot)'\n\
             unset lf_project lf_env\n\
             lf_path=/a\n\
             landfall_git_init\n"
        );
    }

    /// The step library and a call of each step pass shellcheck as POSIX
    /// sh, down to style: the calls set the variables the functions read.
    #[test]
    fn the_steps_and_their_calls_pass_shellcheck() {
        use std::io::Write as _;
        let mut text = String::from(FUNCTIONS);
        // A command of its own is a test's, and no step function's.
        let calls: Vec<Call> = every_step()
            .iter()
            .filter(|s| !matches!(s, Step::Command { .. }))
            .map(call)
            .collect();
        write_calls(&calls, &mut text);
        let mut lint = std::process::Command::new(landfall_testbed::require("shellcheck"))
            .args(["--norc", "--severity=style", "--shell=sh", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        lint.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = lint.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
