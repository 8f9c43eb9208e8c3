//! The host protocol: the steps that read and change a host, written once
//! as POSIX sh functions (`steps.sh`: the parts in `steps/sh/`, joined in
//! the order `steps/sh/parts.rs` gives) and run by every transport the same
//! way, as a script on the standard input of `sh -s`, locally or over ssh.
//!
//! A [`Step`] is one call, as a Rust value; [`Script`] is the steps for
//! one host, and [`Script::text`] the one place they become sh: the
//! functions the calls need, a header exporting the `LANDFALL_*` variables,
//! and the calls, every value quoted by [`crate::process::quote`], all in
//! one `{ ...; }` group, so that a script cut short in transit is a syntax
//! error and runs nothing. What a script reports is parsed into a
//! [`Reply`] (see `reply.rs`). This module runs nothing itself.

mod reply;

pub(crate) use reply::{Activation, Exit, Report, Revert};
pub use reply::{Claim, LogEntry, Orphan, PathState, Reply, ServiceState};

use crate::process::quote;
use std::fmt::Write as _;

/// The step functions: `steps/sh/*.sh` joined, as every host receives them.
const FUNCTIONS: &str = include!("steps/sh/parts.rs");

/// `steps.sh` taken apart: the lines outside any function (`set -u`,
/// `umask`), and each function's definition with the step functions it
/// calls. A script carries only the functions it needs, since every byte
/// of it crosses the network on every round trip.
struct Library {
    preamble: String,
    /// In file order: name, definition, the names it calls.
    functions: Vec<(&'static str, &'static str, Vec<&'static str>)>,
    /// Every function, then the line that says the whole was read: what a
    /// host keeps (see [`Functions::Cached`]).
    whole: String,
    /// The first 16 hex characters of the blake3 of `whole`, which names
    /// the host's copy.
    hash: String,
}

fn library() -> &'static Library {
    static LIBRARY: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(|| {
        let mut preamble = String::new();
        let mut functions = Vec::new();
        let mut rest = FUNCTIONS;
        while !rest.is_empty() {
            let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            let line = &rest[..line_end];
            if let Some(name) = line.strip_suffix("() {\n") {
                let end = rest.find("\n}\n").map_or(rest.len(), |i| i + "\n}\n".len());
                functions.push((name, &rest[..end], Vec::new()));
                rest = &rest[end..];
                continue;
            }
            if !line.starts_with('#') && !line.trim().is_empty() {
                preamble.push_str(line);
            }
            rest = &rest[line_end..];
        }
        let names: Vec<&'static str> = functions.iter().map(|(name, _, _)| *name).collect();
        for (name, definition, calls) in &mut functions {
            let body = &definition[name.len()..];
            let words: std::collections::HashSet<&str> = body
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .collect();
            calls.extend(names.iter().copied().filter(|other| words.contains(other)));
        }
        let mut whole: String = functions.iter().map(|(_, def, _)| *def).collect();
        let hash = blake3::hash(whole.as_bytes()).to_hex()[..16].to_string();
        // Set last: a copy that was cut short never says it is whole.
        whole.push_str("landfall_library=");
        whole.push_str(&hash);
        whole.push('\n');
        Library {
            preamble,
            functions,
            whole,
            hash,
        }
    })
}

/// How a script gets the step functions its calls need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Functions {
    /// In the script: the functions its steps call, and those they call.
    Inline,
    /// From the host's own copy of the whole library, which a script sent
    /// with [`Functions::Keep`] left there, named after its hash: only the
    /// calls cross the network. A host without it reports so (see
    /// [`Reply::library_missing`]) and runs none of the steps.
    Cached,
    /// The whole library in the script, which the host keeps for the
    /// scripts that come after it; if it cannot, it says so (see
    /// [`Reply::library_unkept`]) and runs the steps all the same.
    Keep,
}

/// The exit status of a script whose host lacks the library it needs.
pub(crate) const LIBRARY_MISSING: i32 = 97;

/// The host's copy of the library: in its user's cache directory, named
/// after the library's hash, so that hosts deployed to by different
/// versions of landfall keep one copy of each.
const LIBRARY_FILE: &str =
    "landfall_lib=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/landfall/steps-";

/// One step on a host: a call of one function of `steps.sh`. Paths are the
/// artifact's directory on the host (see [`crate::transport::Transport::host_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Reads each path (numbered in order): its current release, complete
    /// releases, lock and, with `detail`, each release's provenance and the
    /// log's tail.
    Probe { detail: bool, paths: Vec<String> },
    /// Unless `release` is current and unlocked, takes the lock of the
    /// path numbered `index` for artifact `name` (project/artifact) and
    /// makes the directories a release needs; with no `release`, always.
    /// With `derive`, and that release current once the lock is held, the
    /// upload of `release` is made a copy of it (`landfall_derive`), so that
    /// the push sends only what differs.
    Claim {
        index: usize,
        path: String,
        release: Option<String>,
        owner: String,
        break_lock: bool,
        git: bool,
        name: String,
        derive: Option<Derive>,
        shared: Vec<String>,
    },
    /// Takes the lock, or exits [`Exit::Locked`] or [`Exit::NotOwner`].
    Lock {
        path: String,
        owner: String,
        break_lock: bool,
        name: String,
    },
    /// Releases the lock if the run holding `token` holds it.
    Unlock { path: String, token: String },
    /// Undoes the claim of a path that did not exist, by a run that goes no
    /// further: removes `dir`, the outermost directory the claim made, if
    /// the run holding `token` holds the lock.
    Forget {
        path: String,
        dir: String,
        token: String,
    },
    /// The directories a release needs; reports the current release.
    Prepare { path: String, shared: Vec<String> },
    /// The bare repository git releases are pushed to.
    GitInit { path: String },
    /// Checks a pushed tree out into the release's upload directory.
    Checkout {
        path: String,
        release: String,
        tree: String,
    },
    /// Makes the upload of `release` from an object store: each file
    /// hard-linked from `current` when it has the same content there, or
    /// fetched from its presigned URL with curl, at most `seconds` each,
    /// and checked against its sha256; symlinks made. The release's own
    /// files follow as [`Step::Put`]s.
    Pull {
        path: String,
        release: String,
        current: Option<String>,
        seconds: u64,
        entries: Vec<PullEntry>,
    },
    /// Writes a file into `dir` (its bytes travel in the script).
    Put {
        dir: String,
        name: String,
        mode: u32,
        bytes: Vec<u8>,
    },
    /// A symlink in `dir`.
    Link {
        dir: String,
        name: String,
        target: String,
    },
    /// Runs the `build` hook the upload recorded.
    Build {
        path: String,
        release: String,
        previous: Option<String>,
    },
    /// Records the provenance (one line of JSON) of a complete upload and
    /// gives it its name.
    Finalize {
        path: String,
        release: String,
        provenance: String,
    },
    /// Removes an upload that will not be activated.
    Discard { path: String, release: String },
    /// Prints a release's manifest.
    Manifest { path: String, release: String },
    /// Prints files of a release no bigger than `max` bytes.
    Files {
        path: String,
        release: String,
        max: u64,
        files: Vec<String>,
    },
    /// Runs the activation `release` recorded; with `revert`, a failure
    /// after the switch goes back to `previous` and runs what it recorded.
    Activate {
        path: String,
        release: String,
        previous: Option<String>,
        revert: bool,
        log_ok: String,
        log_back: String,
    },
    /// Switches back from `from` to `to` (or to nothing) and runs what
    /// `to` recorded.
    Back {
        path: String,
        from: String,
        to: Option<String>,
        log: String,
    },
    /// Removes releases beyond the `keep` most recently activated, never
    /// the current one nor `previous`.
    Cleanup {
        path: String,
        keep: usize,
        previous: Option<String>,
    },
    /// Prints the last `lines` lines of the log of the service the current
    /// release runs, each after its time: those since the current
    /// release's service started, or with `all_releases` those of every
    /// release, each release's led by the line where it started; with
    /// `follow` what it writes next, until stopped. Exits
    /// [`Exit::NoService`] if it runs none.
    ServiceLogs {
        path: String,
        lines: u32,
        follow: bool,
        all_releases: bool,
    },
    /// Runs the `once` hook `release` (complete, not current) recorded;
    /// exits [`Exit::PreActivateFailed`] if it fails.
    Once { path: String, release: String },
    /// Checks the activated `release` again (one try of `ready` and
    /// `health`); exits [`Exit::ActivationFailed`] if it is not well.
    Check { path: String, release: String },
    /// Reports every path this host's registry lists that holds releases of
    /// `project` for `env` and is not one of `known`.
    Orphans {
        project: String,
        env: String,
        known: Vec<String>,
    },
    /// Removes the orphan `path` (of `name`, project/artifact@env) under
    /// its lock, and its service if it is still the one it installed.
    Prune {
        path: String,
        owner: String,
        name: String,
    },
    /// A command given as words, each quoted, run from `/` with no input
    /// (what the tests of scripts run).
    #[cfg(test)]
    Command { words: Vec<String> },
    /// A command given as words, run by a person (`exec`, `run`): `start`
    /// appended to the log of each path of `logs` first (the command does
    /// not run where that fails), then the command run from `dir` (the
    /// home directory if none), with its errors with its output (unless on
    /// a terminal); then an entry of the host's time, `end` (the other
    /// fields of a JSON object, without its braces) and the command's exit
    /// status, appended to the same logs.
    Exec {
        dir: Option<String>,
        input: ExecInput,
        logs: Vec<String>,
        start: String,
        end: String,
        words: Vec<String>,
    },
}

/// The release a claim makes an upload a copy of, if it is current (see
/// [`Step::Claim`]), and how many entries its directory has at its top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derive {
    pub(crate) from: String,
    pub(crate) top: usize,
    /// The paths of `from` the release lacks, removed from the copy.
    pub(crate) gone: Vec<String>,
}

/// The words of a [`Step`] for sh: the function and its arguments (no
/// function: the arguments are a command of their own), and the standard
/// input it reads from a here-document.
struct Call {
    function: Option<&'static str>,
    args: Vec<String>,
    input: Option<String>,
}

fn bool_arg(value: bool) -> String {
    if value { "1" } else { "0" }.to_string()
}

fn optional(value: Option<&String>) -> String {
    value.cloned().unwrap_or_default()
}

/// One entry of a release pulled from an object store ([`Step::Pull`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PullEntry {
    File {
        path: String,
        mode: u32,
        size: u64,
        blake3: String,
        sha256: String,
        /// The file's mtime, UTC, as `touch -t` reads it.
        mtime: String,
        /// A presigned GET of the object.
        url: String,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl PullEntry {
    /// Its line of `landfall_pull`'s list.
    fn line(&self) -> String {
        match self {
            PullEntry::File {
                path,
                mode,
                size,
                blake3,
                sha256,
                mtime,
                url,
            } => format!("file\t{mode:04o}\t{size}\t{blake3}\t{sha256}\t{mtime}\t{url}\t{path}\n"),
            PullEntry::Symlink { path, target } => format!("symlink\t{target}\t{path}\n"),
        }
    }
}

/// The standard input of a command run by [`Step::Exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecInput {
    Nothing,
    /// A file of this machine, the same on every host. It is never read
    /// into memory: the transport sends the script as the command of its
    /// shell (`sh -c`) and the file as its standard input, read as it is
    /// sent (see [`Script::input_file`]).
    File(std::path::PathBuf),
    /// The terminal the script was started on (`ssh -t`), as it is.
    Terminal,
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

/// The one translation of steps into calls of `steps.sh`.
fn call(step: &Step) -> Call {
    let plain = |function, args: Vec<String>| Call {
        function: Some(function),
        args,
        input: None,
    };
    match step {
        Step::Probe { detail, paths } => plain(
            "landfall_probe",
            std::iter::once(bool_arg(*detail))
                .chain(paths.iter().cloned())
                .collect(),
        ),
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
        } => plain(
            "landfall_claim",
            [
                index.to_string(),
                path.clone(),
                optional(release.as_ref()),
                owner.clone(),
                bool_arg(*break_lock),
                bool_arg(*git),
                name.clone(),
                derive.as_ref().map(|d| d.from.clone()).unwrap_or_default(),
                derive
                    .as_ref()
                    .map(|d| d.top.to_string())
                    .unwrap_or_default(),
                // One word, a path a line: manifest paths hold no control
                // characters.
                derive
                    .as_ref()
                    .map(|d| d.gone.join("\n"))
                    .unwrap_or_default(),
            ]
            .into_iter()
            .chain(shared.iter().cloned())
            .collect(),
        ),
        Step::Lock {
            path,
            owner,
            break_lock,
            name,
        } => plain(
            "landfall_lock",
            vec![
                path.clone(),
                owner.clone(),
                bool_arg(*break_lock),
                name.clone(),
            ],
        ),
        Step::Unlock { path, token } => plain("landfall_unlock", vec![path.clone(), token.clone()]),
        Step::Forget { path, dir, token } => plain(
            "landfall_forget",
            vec![path.clone(), dir.clone(), token.clone()],
        ),
        Step::Prepare { path, shared } => plain(
            "landfall_prepare",
            std::iter::once(path.clone())
                .chain(shared.iter().cloned())
                .collect(),
        ),
        Step::GitInit { path } => plain("landfall_git_init", vec![path.clone()]),
        Step::Checkout {
            path,
            release,
            tree,
        } => plain(
            "landfall_checkout",
            vec![path.clone(), release.clone(), tree.clone()],
        ),
        Step::Put {
            dir,
            name,
            mode,
            bytes,
        } => Call {
            function: Some("landfall_put"),
            args: vec![dir.clone(), name.clone(), format!("{mode:o}")],
            input: Some(base64_lines(bytes)),
        },
        Step::Pull {
            path,
            release,
            current,
            seconds,
            entries,
        } => Call {
            function: Some("landfall_pull"),
            args: vec![
                path.clone(),
                release.clone(),
                optional(current.as_ref()),
                seconds.to_string(),
            ],
            input: Some(entries.iter().map(PullEntry::line).collect()),
        },
        Step::Link { dir, name, target } => plain(
            "landfall_link",
            vec![dir.clone(), name.clone(), target.clone()],
        ),
        Step::Build {
            path,
            release,
            previous,
        } => plain(
            "landfall_build",
            vec![path.clone(), release.clone(), optional(previous.as_ref())],
        ),
        Step::Finalize {
            path,
            release,
            provenance,
        } => {
            debug_assert!(!provenance.contains('\n'), "provenance is one line");
            plain(
                "landfall_finalize",
                vec![path.clone(), release.clone(), provenance.clone()],
            )
        }
        Step::Discard { path, release } => {
            plain("landfall_discard", vec![path.clone(), release.clone()])
        }
        Step::Manifest { path, release } => {
            plain("landfall_manifest", vec![path.clone(), release.clone()])
        }
        Step::Files {
            path,
            release,
            max,
            files,
        } => plain(
            "landfall_files",
            [path.clone(), release.clone(), max.to_string()]
                .into_iter()
                .chain(files.iter().cloned())
                .collect(),
        ),
        Step::Activate {
            path,
            release,
            previous,
            revert,
            log_ok,
            log_back,
        } => plain(
            "landfall_activate",
            vec![
                path.clone(),
                release.clone(),
                optional(previous.as_ref()),
                bool_arg(*revert),
                log_ok.clone(),
                log_back.clone(),
            ],
        ),
        Step::Back {
            path,
            from,
            to,
            log,
        } => plain(
            "landfall_back",
            vec![
                path.clone(),
                from.clone(),
                optional(to.as_ref()),
                log.clone(),
            ],
        ),
        Step::Cleanup {
            path,
            keep,
            previous,
        } => plain(
            "landfall_cleanup",
            vec![path.clone(), keep.to_string(), optional(previous.as_ref())],
        ),
        Step::ServiceLogs {
            path,
            lines,
            follow,
            all_releases,
        } => plain(
            "landfall_service_logs",
            vec![
                path.clone(),
                lines.to_string(),
                bool_arg(*follow),
                bool_arg(*all_releases),
            ],
        ),
        Step::Once { path, release } => plain("landfall_once", vec![path.clone(), release.clone()]),
        Step::Check { path, release } => {
            plain("landfall_check", vec![path.clone(), release.clone()])
        }
        Step::Orphans {
            project,
            env,
            known,
        } => plain(
            "landfall_orphans",
            [project.clone(), env.clone()]
                .into_iter()
                .chain(known.iter().cloned())
                .collect(),
        ),
        Step::Prune { path, owner, name } => plain(
            "landfall_prune",
            vec![path.clone(), owner.clone(), name.clone()],
        ),
        Step::Exec {
            dir,
            input,
            logs,
            start,
            end,
            words,
        } => Call {
            function: Some("landfall_exec"),
            args: [
                optional(dir.as_ref()),
                match input {
                    ExecInput::Nothing => "0",
                    ExecInput::File(_) => "1",
                    ExecInput::Terminal => "t",
                }
                .to_string(),
                logs.join("\n"),
                start.clone(),
                end.clone(),
            ]
            .into_iter()
            .chain(words.iter().cloned())
            .collect(),
            input: None,
        },
        #[cfg(test)]
        Step::Command { words } => Call {
            function: None,
            args: words.clone(),
            input: None,
        },
    }
}

/// How long a script's own work may take on a host (its hooks aside, see
/// [`Script::allowing`]): past that, landfall stops waiting for the host
/// and reports it failed.
const SCRIPT_TIME: std::time::Duration = std::time::Duration::from_secs(120);

/// The steps for one host, in order, with the variables hooks see.
#[derive(Debug, Clone)]
pub struct Script {
    env: String,
    host: String,
    artifact: Option<String>,
    steps: Vec<Step>,
    /// What its hooks may take, besides [`SCRIPT_TIME`].
    hooks_time: std::time::Duration,
}

impl Script {
    /// A script for `host` of environment `env`.
    pub(crate) fn new(env: &str, host: &str, artifact: Option<&str>) -> Script {
        Script {
            env: env.to_string(),
            host: host.to_string(),
            artifact: artifact.map(str::to_string),
            steps: Vec::new(),
            hooks_time: std::time::Duration::ZERO,
        }
    }

    /// Allows the script `time` more, for the hooks its steps run.
    #[must_use]
    pub(crate) fn allowing(mut self, time: std::time::Duration) -> Script {
        self.hooks_time += time;
        self
    }

    /// How long the host may take to run the script.
    pub(crate) fn deadline(&self) -> std::time::Duration {
        SCRIPT_TIME + self.hooks_time
    }

    /// Appends a step.
    #[must_use]
    pub(crate) fn step(mut self, step: Step) -> Script {
        self.steps.push(step);
        self
    }

    /// The whole script: in one `{ ...; }` group, the functions its steps
    /// call (and those they call) in the order of `steps.sh`, the exported
    /// variables, then the calls. sh reads a group whole before it runs any
    /// of it, so a script cut short runs nothing.
    pub(crate) fn text(&self) -> String {
        self.text_with(Functions::Inline)
    }

    /// The file the script's command reads on its standard input, if it
    /// reads one (see [`ExecInput::File`]).
    pub(crate) fn input_file(&self) -> Option<&std::path::Path> {
        self.steps.iter().find_map(|step| match step {
            Step::Exec {
                input: ExecInput::File(path),
                ..
            } => Some(path.as_path()),
            _ => None,
        })
    }

    /// The whole script, with the step functions as `functions` says.
    pub(crate) fn text_with(&self, functions: Functions) -> String {
        const END: &str = "LANDFALL_INPUT_END";
        const LIBRARY_END: &str = "LANDFALL_LIBRARY_END";
        let library = library();
        let calls: Vec<Call> = self.steps.iter().map(call).collect();
        let mut needed: Vec<&str> = Vec::new();
        for function in calls.iter().filter_map(|c| c.function) {
            if !needed.contains(&function) {
                needed.push(function);
            }
        }
        let mut i = 0;
        while i < needed.len() {
            if let Some((_, _, called)) = library.functions.iter().find(|(n, _, _)| *n == needed[i])
            {
                for c in called {
                    if !needed.contains(c) {
                        needed.push(c);
                    }
                }
            }
            i += 1;
        }
        let mut text = String::with_capacity(4096);
        text.push_str("{\n");
        text.push_str(&library.preamble);
        match functions {
            Functions::Inline => {
                for (name, definition, _) in &library.functions {
                    if needed.contains(name) {
                        text.push_str(definition);
                    }
                }
            }
            Functions::Cached => {
                let _ = writeln!(text, "{LIBRARY_FILE}{}.sh", library.hash);
                // A copy is written whole or not at all, and a copy whose
                // last line was not read does not count. `command` keeps a
                // copy that went, or cannot be read, from ending the shell.
                let _ = writeln!(
                    text,
                    "if command . \"$landfall_lib\" 2>/dev/null && [ \"${{landfall_library:-}}\" = {} ]; then :; \
                     else printf 'library\\tmissing\\n'; exit {LIBRARY_MISSING}; fi",
                    library.hash
                );
            }
            Functions::Keep => {
                assert!(!library.whole.contains(LIBRARY_END));
                let _ = writeln!(text, "{LIBRARY_FILE}{}.sh", library.hash);
                text.push_str("landfall_text=$(cat <<'");
                text.push_str(LIBRARY_END);
                text.push_str("'\n");
                text.push_str(&library.whole);
                text.push_str(LIBRARY_END);
                text.push_str("\n)\n");
                // Defined here whatever becomes of the copy; the copy is
                // written beside its place and renamed into it, so that a
                // script never reads half of one.
                text.push_str(
                    "eval \"$landfall_text\"\n\
                     if mkdir -p \"${landfall_lib%/*}\" 2>/dev/null \
                     && printf '%s\\n' \"$landfall_text\" >\"$landfall_lib.$$\" 2>/dev/null \
                     && mv -f \"$landfall_lib.$$\" \"$landfall_lib\" 2>/dev/null; then :; \
                     else rm -f \"$landfall_lib.$$\" 2>/dev/null; printf 'library\\tunkept\\n'; fi\n\
                     unset landfall_text\n",
                );
            }
        }
        text.push_str("export LANDFALL_ENV=");
        text.push_str(&quote(&self.env));
        text.push_str(" LANDFALL_HOST=");
        text.push_str(&quote(&self.host));
        if let Some(artifact) = &self.artifact {
            text.push_str(" LANDFALL_ARTIFACT=");
            text.push_str(&quote(artifact));
        }
        text.push('\n');
        for c in &calls {
            let Some(function) = c.function else {
                // A command of its own: from `/`, reading nothing.
                let words: Vec<String> = c.args.iter().map(|w| quote(w)).collect();
                text.push_str("(cd / && ");
                text.push_str(&words.join(" "));
                text.push_str(" </dev/null)\n");
                continue;
            };
            text.push_str(function);
            for arg in &c.args {
                text.push(' ');
                text.push_str(&quote(arg));
            }
            if let Some(input) = &c.input {
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
        text.push_str("}\n");
        text
    }
}

/// Seconds for a hook's time limit, rounded up so that a sub-second
/// timeout still allows one try.
pub(crate) fn timeout_seconds(timeout: std::time::Duration) -> String {
    timeout.as_secs_f64().ceil().max(1.0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finalize(path: &str) -> Step {
        Step::Finalize {
            path: path.into(),
            release: "r1".into(),
            provenance: "{}".into(),
        }
    }

    #[test]
    fn scripts_quote_every_argument() {
        let script = Script::new("prod", "web1", Some("web")).step(Step::Probe {
            detail: false,
            paths: vec!["/srv/a b".into(), "$(reboot)".into()],
        });
        let text = script.text();
        assert!(
            text.ends_with("landfall_probe 0 '/srv/a b' '$(reboot)'\n}\n"),
            "{text}"
        );
        assert!(
            text.contains("export LANDFALL_ENV=prod LANDFALL_HOST=web1 LANDFALL_ARTIFACT=web\n")
        );
    }

    #[test]
    fn a_script_carries_the_functions_it_calls_and_no_others() {
        let script = Script::new("prod", "web1", Some("web")).step(finalize("/srv/a"));
        let text = script.text();
        assert!(text.starts_with("{\nset -u\numask 022\n"), "{text}");
        for needed in ["landfall_finalize() {", "landfall_fail() {"] {
            assert!(text.contains(needed), "`{needed}` is missing:\n{text}");
        }
        assert!(!text.contains("landfall_activate() {"), "{text}");
        assert!(text.len() < FUNCTIONS.len() / 4, "{} bytes", text.len());
        let library = library();
        assert_eq!(
            library.functions.len(),
            FUNCTIONS.matches("() {\n").count(),
            "every function of steps.sh is found"
        );
        assert_parses_as_sh(&text);
    }

    #[test]
    fn every_step_renders_to_a_script_that_parses() {
        let s = String::from;
        let steps = [
            Step::Probe {
                detail: true,
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
            finalize("/a"),
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
            Step::Command {
                words: vec![s("echo"), s("a;b")],
            },
        ];
        let mut script = Script::new("prod", "web1", None);
        for step in steps {
            script = script.step(step);
        }
        let text = script.text();
        assert!(text.contains("landfall_put /a 'x y' 600 <<'LANDFALL_INPUT_END'\nc2VjcmV0Cg==\nLANDFALL_INPUT_END\n"), "{text}");
        assert!(text.contains("(cd / && echo 'a;b' </dev/null)\n"), "{text}");
        assert_parses_as_sh(&text);
    }

    /// A script cut short anywhere, as a dropped connection would, runs
    /// none of its steps: it is one `{ ...; }` group, which sh reads whole
    /// before running any of it.
    #[test]
    fn a_script_cut_short_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").to_string_lossy().into_owned();
        let marker = dir.path().join("ran");
        let script = Script::new("prod", "web1", None)
            .step(Step::Prepare {
                path: path.clone(),
                shared: vec!["log".into()],
            })
            .step(Step::Put {
                dir: path.clone(),
                name: "f".into(),
                mode: 0o644,
                bytes: vec![b'x'; 300],
            })
            .step(Step::Command {
                words: vec!["touch".into(), marker.to_string_lossy().into_owned()],
            });
        let text = script.text();
        let run = |text: &str| {
            use std::io::Write as _;
            let mut child = std::process::Command::new("sh")
                .arg("-s")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait().unwrap()
        };
        // Every cut in the calls, and a spread of cuts in the functions (the
        // last byte, a newline after the closing brace, is not needed).
        let calls = text.find("export LANDFALL_ENV").unwrap();
        let cuts = (0..calls).step_by(97).chain(calls..text.len() - 1);
        for cut in cuts {
            let status = run(&text[..cut]);
            assert!(
                !std::path::Path::new(&path).exists() && !marker.exists(),
                "a script cut at byte {cut} of {} ran (status {status}):\n{}",
                text.len(),
                &text[..cut]
            );
        }
        assert!(run(&text).success());
        assert!(marker.exists(), "the whole script runs");
        assert_eq!(
            std::fs::read(dir.path().join("a/f")).unwrap(),
            vec![b'x'; 300]
        );
    }

    /// A host keeps the library a script sends it, and the scripts after
    /// it carry only their calls; a host without it runs none of them; a
    /// host that cannot keep it runs the steps all the same. Under both
    /// shells a host's `sh` is likely to be.
    #[test]
    fn a_host_keeps_the_library_once_and_scripts_then_carry_only_their_calls() {
        for shell in ["dash", "busybox"] {
            let dir = tempfile::tempdir().unwrap();
            let cache = dir.path().join("cache");
            let release = dir.path().join("a").to_string_lossy().into_owned();
            let script = |name: &str| {
                Script::new("prod", "web1", None).step(Step::Put {
                    dir: release.clone(),
                    name: name.into(),
                    mode: 0o644,
                    bytes: b"x\n".to_vec(),
                })
            };
            let run = |text: &str, cache: &std::path::Path| {
                use std::io::Write as _;
                let mut command = std::process::Command::new(shell);
                if shell == "busybox" {
                    command.arg("sh");
                }
                let mut child = command
                    .arg("-s")
                    .env("XDG_CACHE_HOME", cache)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {shell}: {e}"));
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(text.as_bytes()).unwrap();
                drop(stdin);
                let out = child.wait_with_output().unwrap();
                Reply::from(crate::process::Output {
                    code: out.status.code(),
                    stdout: out.stdout,
                    stderr: out.stderr,
                })
            };
            std::fs::create_dir(&release).unwrap();

            let cached = script("one").text_with(Functions::Cached);
            assert!(!cached.contains("() {"), "only calls: {cached}");
            assert!(script("one").text().contains("landfall_put() {"));
            let missing = run(&cached, &cache);
            assert!(missing.library_missing(), "{shell}: {:?}", missing.output);
            assert!(!dir.path().join("a/one").exists(), "{shell}: nothing ran");

            let kept = run(&script("one").text_with(Functions::Keep), &cache);
            assert!(
                kept.success() && !kept.library_unkept(),
                "{shell}: {:?}",
                kept.output
            );
            assert!(dir.path().join("a/one").exists(), "{shell}");
            let copy = cache
                .join("landfall")
                .join(format!("steps-{}.sh", library().hash));
            assert_eq!(std::fs::read_to_string(&copy).unwrap(), library().whole);

            let two = run(&script("two").text_with(Functions::Cached), &cache);
            assert!(two.success(), "{shell}: {:?}", two.output);
            assert!(dir.path().join("a/two").exists(), "{shell}");

            // A copy cut short is not whole, and is not used, whether or
            // not it parses.
            let whole = &library().whole;
            for cut in [10, whole.len() / 2] {
                std::fs::write(&copy, &whole[..whole.len() - cut]).unwrap();
                let cut = run(&script("three").text_with(Functions::Cached), &cache);
                assert!(cut.library_missing(), "{shell}: {:?}", cut.output);
                assert!(!dir.path().join("a/three").exists(), "{shell}");
            }

            // A cache that cannot be written to: the steps still run.
            let file = dir.path().join("not-a-directory");
            std::fs::write(&file, "").unwrap();
            let unkept = run(&script("four").text_with(Functions::Keep), &file);
            assert!(
                unkept.success() && unkept.library_unkept(),
                "{shell}: {:?}",
                unkept.output
            );
            assert!(dir.path().join("a/four").exists(), "{shell}");
        }
    }

    #[test]
    fn the_step_functions_parse_as_posix_sh() {
        assert_parses_as_sh(FUNCTIONS);
    }

    fn assert_parses_as_sh(text: &str) {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", text])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
