//! A [`Script`]: the steps for one host, in order, and the one place they
//! become sh: in one `{ ...; }` group, the lines that open the step library,
//! the functions the calls need (or the host's copy of the whole, see
//! [`Functions`]), a header exporting the `LANDFALL_*` variables, and the
//! calls as `call.rs` writes them. sh reads a group whole before it runs
//! any of it, so a script cut short in transit is a syntax error and runs
//! nothing.

use std::fmt::Write as _;

use super::call::{Call, call, write_calls};
use super::library::{Functions, LIBRARY_FILE, LIBRARY_MISSING, library};
use super::{ExecInput, Step};
use crate::process::quote;

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
        write_calls(&calls, &mut text);
        text.push_str("}\n");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Reply;

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
            sbom: false,
            paths: vec!["/srv/a b".into(), "$(reboot)".into()],
        });
        let text = script.text();
        assert!(
            text.ends_with("lf_detail=0\nlandfall_probe '/srv/a b' '$(reboot)'\n}\n"),
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
        assert!(
            text.len() < library().whole.len() / 4,
            "{} bytes",
            text.len()
        );
        super::super::assert_parses_as_sh(&text);
    }

    #[test]
    fn every_step_renders_to_a_script_that_parses() {
        let mut script = Script::new("prod", "web1", None);
        for step in super::super::call::every_step() {
            script = script.step(step);
        }
        let text = script.text();
        assert!(
            text.contains(
                "lf_dir=/a lf_name='x y' lf_mode=600\nlandfall_put <<'LANDFALL_INPUT_END'\n\
                 c2VjcmV0Cg==\nLANDFALL_INPUT_END\nunset lf_dir lf_name lf_mode\nlf_dir=/a"
            ),
            "{text}"
        );
        assert!(text.contains("(cd / && echo 'a;b' </dev/null)\n"), "{text}");
        super::super::assert_parses_as_sh(&text);
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
}
