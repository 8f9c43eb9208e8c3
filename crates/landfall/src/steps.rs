//! The steps that change a host, written once as POSIX sh functions
//! (`steps.sh`) and run by every transport the same way: the script on
//! the standard input of `sh -s`, locally or over ssh.
//!
//! This module builds the scripts (the functions a script calls, a header
//! exporting the `LANDFALL_*` variables, and the calls, every value quoted
//! by [`crate::process::quote`]) and parses what they report. It runs
//! nothing itself.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::{Output, quote};

const FUNCTIONS: &str = include_str!("steps.sh");

/// `steps.sh` taken apart: the lines outside any function (`set -u`,
/// `umask`), and each function's definition with the step functions it
/// calls. A script carries only the functions it needs, since every byte
/// of it crosses the network on every round trip.
struct Library {
    preamble: String,
    /// In file order: name, definition, the names it calls.
    functions: Vec<(&'static str, &'static str, Vec<&'static str>)>,
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
            calls.extend(names.iter().copied().filter(|other| {
                body.match_indices(other).any(|(at, _)| {
                    let after = body[at + other.len()..].chars().next();
                    !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            }));
        }
        Library {
            preamble,
            functions,
        }
    })
}

/// A script of step calls for one host.
#[derive(Debug, Clone)]
pub struct Script {
    /// The variables hooks see, then the calls.
    body: String,
    called: Vec<String>,
}

impl Script {
    /// A script for `host` of environment `env`, with the variables hooks
    /// see.
    pub fn new(env: &str, host: &str, artifact: Option<&str>) -> Script {
        let mut body = String::with_capacity(512);
        body.push_str("export LANDFALL_ENV=");
        body.push_str(&quote(env));
        body.push_str(" LANDFALL_HOST=");
        body.push_str(&quote(host));
        if let Some(artifact) = artifact {
            body.push_str(" LANDFALL_ARTIFACT=");
            body.push_str(&quote(artifact));
        }
        body.push('\n');
        Script {
            body,
            called: Vec::new(),
        }
    }

    /// Appends a call of one of the step functions.
    #[must_use]
    pub fn call<S: AsRef<str>>(
        mut self,
        function: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Script {
        debug_assert!(
            library()
                .functions
                .iter()
                .any(|(name, _, _)| *name == function),
            "no step `{function}`"
        );
        if !self.called.iter().any(|f| f == function) {
            self.called.push(function.to_string());
        }
        self.body.push_str(function);
        for arg in args {
            self.body.push(' ');
            self.body.push_str(&quote(arg.as_ref()));
        }
        self.body.push('\n');
        self
    }

    /// Appends a command given as words, each quoted, with no input.
    #[must_use]
    pub fn command<S: AsRef<str>>(mut self, words: impl IntoIterator<Item = S>) -> Script {
        let words: Vec<String> = words.into_iter().map(|w| quote(w.as_ref())).collect();
        self.body.push_str("cd / && ");
        self.body.push_str(&words.join(" "));
        self.body.push_str(" </dev/null\n");
        self
    }

    /// Appends a call whose standard input is `input` (a here-document).
    #[must_use]
    pub fn call_with_input<S: AsRef<str>>(
        self,
        function: &str,
        args: impl IntoIterator<Item = S>,
        input: &str,
    ) -> Script {
        const END: &str = "LANDFALL_INPUT_END";
        assert!(
            !input.lines().any(|line| line == END),
            "input holds the here-document's delimiter"
        );
        let mut script = self.call(function, args);
        // Replace the call's newline with the here-document.
        script.body.pop();
        script.body.push_str(" <<'");
        script.body.push_str(END);
        script.body.push_str("'\n");
        script.body.push_str(input);
        if !input.ends_with('\n') {
            script.body.push('\n');
        }
        script.body.push_str(END);
        script.body.push('\n');
        script
    }

    /// Appends a `landfall_put` writing `bytes` to `dir/name` with `mode`:
    /// the bytes travel base64-encoded in a here-document.
    #[must_use]
    pub fn put(self, dir: &str, name: &str, mode: u32, bytes: &[u8]) -> Script {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut lines = String::with_capacity(encoded.len() + encoded.len() / 76 + 1);
        for chunk in encoded.as_bytes().chunks(76) {
            lines.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            lines.push('\n');
        }
        self.call_with_input("landfall_put", [dir, name, &format!("{mode:o}")], &lines)
    }

    /// The whole script: the functions it calls (and those they call), in
    /// the order of `steps.sh`, then its body.
    pub fn text(&self) -> String {
        let library = library();
        let mut needed: Vec<&str> = self.called.iter().map(String::as_str).collect();
        let mut i = 0;
        while i < needed.len() {
            if let Some((_, _, calls)) = library.functions.iter().find(|(n, _, _)| *n == needed[i])
            {
                for call in calls {
                    if !needed.contains(call) {
                        needed.push(call);
                    }
                }
            }
            i += 1;
        }
        let mut text = library.preamble.clone();
        for (name, definition, _) in &library.functions {
            if needed.contains(name) {
                text.push_str(definition);
            }
        }
        text.push_str(&self.body);
        text
    }
}

/// Exit statuses of the steps, as documented in `steps.sh`.
pub const EXIT_LOCKED: i32 = 3;
pub const EXIT_NOT_OWNER: i32 = 4;
pub const EXIT_PRE_ACTIVATE_FAILED: i32 = 10;
pub const EXIT_ACTIVATION_FAILED: i32 = 11;
pub const EXIT_BUILD_FAILED: i32 = 12;

/// What a host holds for one artifact path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathState {
    pub current: Option<String>,
    /// Complete releases, most recently activated first.
    pub releases: Vec<String>,
    pub log: Vec<LogEntry>,
    pub lock: Option<String>,
    /// What `landfall_claim` did, when the probe asked for the lock.
    #[serde(skip)]
    pub claim: Option<Claim>,
}

/// The outcome of `landfall_claim` for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lock is held by this run; `current` as read under it.
    Held { current: Option<String> },
    /// Another deploy holds the lock: its lock line.
    Busy(String),
    /// The lock or the directories could not be made: why.
    Unclaimed(String),
}

/// One line of `.landfall/log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub time: String,
    pub event: String,
    pub env: String,
    pub artifact: String,
    pub release: Option<String>,
    pub previous: Option<String>,
    pub user: String,
    /// The machine landfall ran on.
    pub from: String,
    pub revision: Option<String>,
}

fn fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

/// Parses `landfall_probe` output for `count` paths.
pub fn parse_probe(stdout: &str, count: usize) -> Vec<PathState> {
    let mut states = vec![PathState::default(); count];
    for line in stdout.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(kind), Some(index), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(state) = index.parse::<usize>().ok().and_then(|i| states.get_mut(i)) else {
            continue;
        };
        match kind {
            "current" if !value.is_empty() => state.current = Some(value.to_string()),
            "release" => state.releases.push(value.to_string()),
            // A line that is not valid JSON (written by hand, or cut off)
            // is skipped rather than failing the whole status.
            "log" => state
                .log
                .extend(serde_json::from_str::<LogEntry>(value).ok()),
            "lock" => state.lock = Some(value.to_string()),
            "held" => {
                state.claim = Some(Claim::Held {
                    current: (!value.is_empty()).then(|| value.to_string()),
                });
            }
            "busy" => state.claim = Some(Claim::Busy(value.to_string())),
            "unclaimed" => state.claim = Some(Claim::Unclaimed(value.trim().to_string())),
            _ => {}
        }
    }
    states
}

/// The first value reported under `key`, e.g. `current` from
/// `landfall_prepare`.
pub fn reported<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout.lines().find_map(|line| {
        let f = fields(line);
        (f.first() == Some(&key)).then(|| f.get(1).copied().unwrap_or(""))
    })
}

/// What the hooks of a step left to show: a line for each hook stopped at
/// its time limit, then the tail of their output.
pub fn hook_output(output: &Output) -> String {
    let stdout = output.stdout_text();
    let mut text = String::new();
    for line in stdout.lines() {
        if let ["timeout", hook, seconds] = fields(line)[..] {
            text.push_str("the ");
            text.push_str(hook);
            text.push_str(" hook did not finish within ");
            text.push_str(seconds);
            text.push_str("s and was stopped\n");
        }
    }
    text.push_str(&output.stderr_tail());
    text.trim_end().to_string()
}

/// How an activation ended on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    Activated,
    /// `pre_activate` failed; `current` was not touched.
    PreActivateFailed,
    /// `activate` or `health` failed after the switch.
    Failed {
        step: String,
        revert: Revert,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// Not asked to switch back.
    NotAttempted,
    /// Back on the previous release (or on none, if there was none) and,
    /// as far as activate and health tell, working.
    Done { to: Option<String> },
    /// Switched back, but activate or health failed there too.
    Failed { to: Option<String>, step: String },
}

/// Parses what `landfall_activate` (or `landfall_back` alone) reported.
pub fn parse_activation(output: &Output) -> Option<Activation> {
    let stdout = output.stdout_text();
    match output.code {
        Some(0) if reported(&stdout, "activated").is_some() => Some(Activation::Activated),
        Some(EXIT_PRE_ACTIVATE_FAILED) => Some(Activation::PreActivateFailed),
        Some(EXIT_ACTIVATION_FAILED) => {
            let step = reported(&stdout, "failed")
                .unwrap_or("activate")
                .to_string();
            Some(Activation::Failed {
                step,
                revert: parse_revert(&stdout),
            })
        }
        _ => None,
    }
}

/// Parses what `landfall_back` reported.
pub fn parse_revert(stdout: &str) -> Revert {
    let Some(to) = reported(stdout, "reverted") else {
        return Revert::NotAttempted;
    };
    let to = (!to.is_empty()).then(|| to.to_string());
    match reported(stdout, "revert-failed") {
        Some(step) => Revert::Failed {
            to,
            step: step.to_string(),
        },
        None => Revert::Done { to },
    }
}

/// Seconds for the health loop, rounded up so that a sub-second timeout
/// still allows one try.
pub fn timeout_seconds(timeout: Duration) -> String {
    timeout.as_secs_f64().ceil().max(1.0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_quote_every_argument() {
        let script = Script::new("prod", "web1", Some("web"))
            .call("landfall_probe", ["0", "/srv/a b", "$(reboot)"]);
        assert!(
            script
                .text()
                .ends_with("landfall_probe 0 '/srv/a b' '$(reboot)'\n"),
            "{}",
            script.text()
        );
        assert!(
            script
                .text()
                .contains("export LANDFALL_ENV=prod LANDFALL_HOST=web1 LANDFALL_ARTIFACT=web\n")
        );
    }

    #[test]
    fn probe_output_is_parsed_per_path() {
        let out =
            "current\t0\tabc\nrelease\t0\tabc\nrelease\t0\tdef\ncurrent\t1\t\nlog\t0\tnot json\n";
        let states = parse_probe(out, 2);
        assert_eq!(states[0].current.as_deref(), Some("abc"));
        assert_eq!(states[0].releases, ["abc", "def"]);
        assert_eq!(states[1].current, None);
        assert!(states[0].log.is_empty());
        assert_eq!(states[0].claim, None);

        let out = "current\t0\tabc\ncurrent\t1\t\ncurrent\t2\t\nheld\t0\tabc\nheld\t1\t\n\
                   busy\t2\t{\"user\":\"ann\"}\nunclaimed\t3\tcannot create /srv/x \n";
        let states = parse_probe(out, 4);
        let held = |current: Option<&str>| Claim::Held {
            current: current.map(str::to_string),
        };
        assert_eq!(states[0].claim, Some(held(Some("abc"))));
        assert_eq!(states[1].claim, Some(held(None)));
        assert_eq!(
            states[2].claim,
            Some(Claim::Busy(r#"{"user":"ann"}"#.into()))
        );
        assert_eq!(
            states[3].claim,
            Some(Claim::Unclaimed("cannot create /srv/x".into()))
        );
    }

    #[test]
    fn activation_outcomes() {
        let out = |code, stdout: &str| Output {
            code: Some(code),
            stdout: stdout.into(),
            stderr: Vec::new(),
        };
        assert_eq!(
            parse_activation(&out(0, "switched\tx\nactivated\tx\n")),
            Some(Activation::Activated)
        );
        assert_eq!(
            parse_activation(&out(10, "failed\tpre_activate\n")),
            Some(Activation::PreActivateFailed)
        );
        assert_eq!(
            parse_activation(&out(11, "switched\tx\nfailed\thealth\nreverted\tp\n")),
            Some(Activation::Failed {
                step: "health".into(),
                revert: Revert::Done {
                    to: Some("p".into())
                }
            })
        );
        assert_eq!(
            parse_activation(&out(
                11,
                "failed\tactivate\nreverted\tp\nrevert-failed\thealth\n"
            )),
            Some(Activation::Failed {
                step: "activate".into(),
                revert: Revert::Failed {
                    to: Some("p".into()),
                    step: "health".into()
                }
            })
        );
        assert_eq!(parse_activation(&out(70, "")), None);
    }

    #[test]
    fn a_script_carries_the_functions_it_calls_and_no_others() {
        let script =
            Script::new("prod", "web1", Some("web")).call("landfall_finalize", ["/srv/a", "r1"]);
        let text = script.text();
        assert!(text.starts_with("set -u\numask 022\n"), "{text}");
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
