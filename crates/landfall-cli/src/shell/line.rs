//! What a line of the shell means: the table of the words it knows
//! ([`COMMANDS`]: its own commands, those of the command line it passes
//! on and where the environment and the selection go in them, and those
//! it refuses, with why), and the words after `cargo deploy` a line of the
//! command line becomes, with the shell's own options added unless the
//! line gives them.

use crate::cli::{Color, Global, MessageFormat};

/// What the shell understands: its own commands, and the command line's,
/// for running a line, `help` and completion. Every command of the
/// command line has an entry (a test holds it to that).
pub(super) const COMMANDS: &[Entry] = &[
    Entry {
        name: "cd",
        usage: "cd @ROLE | HOST | ARTIFACT | .. | /   narrow or widen the selection",
        runs: Runs::Own,
    },
    Entry {
        name: "ls",
        usage: "ls   what is below the selection, with each host's current release",
        runs: Runs::Own,
    },
    Entry {
        name: "run",
        usage: "run CMD…   a command on the selected hosts, each line as it comes",
        runs: Runs::Own,
    },
    Entry {
        name: "ssh",
        usage: "ssh HOST   an interactive session on one host",
        runs: Runs::Own,
    },
    Entry {
        name: "status",
        usage: "status   releases, services and orphans of the selected hosts",
        runs: Runs::Passed(Passed::fleet("status", Selection::Hosts)),
    },
    Entry {
        name: "deploy",
        usage: "deploy [--dry-run] [--force] […]   deploy to the selected hosts (and artifact)",
        runs: Runs::Passed(Passed {
            // `cargo deploy ENV`: a deploy is the command line without a
            // subcommand.
            subcommand: None,
            ..Passed::fleet("", Selection::HostsAndArtifact)
        }),
    },
    Entry {
        name: "rollback",
        usage: "rollback [--to DEPLOY|RELEASE|COMMIT] […]   switch the selected hosts back",
        runs: Runs::Passed(Passed::fleet("rollback", Selection::HostsOnly)),
    },
    Entry {
        name: "promote",
        usage: "promote […]   go on with the rollout that waits for promotion, on every host",
        runs: Runs::Passed(Passed::fleet("promote", Selection::None)),
    },
    Entry {
        name: "abort",
        usage: "abort […]   switch back the rollout that waits for promotion, on every host",
        runs: Runs::Passed(Passed::fleet("abort", Selection::None)),
    },
    Entry {
        name: "logs",
        usage: "logs [-f] [-n N] [--all-releases]   the services' logs of the selected hosts",
        runs: Runs::Passed(Passed::fleet("logs", Selection::Hosts)),
    },
    Entry {
        name: "exec",
        usage: "exec [--group] [--stdin] [-t] -- CMD…   as `cargo deploy exec`, on the selection",
        runs: Runs::Passed(EXEC),
    },
    Entry {
        name: "prune",
        usage: "prune [--yes]   remove the orphans of the selected hosts",
        runs: Runs::Passed(Passed::fleet("prune", Selection::HostsOnly)),
    },
    Entry {
        name: "build",
        usage: "build [--out DIR] […]   build and assemble for the selection, change no host",
        runs: Runs::Passed(Passed::render("build", Selection::HostsAndArtifact)),
    },
    Entry {
        name: "config",
        usage: "config [--annotate]   the variables each selected host sees",
        runs: Runs::Passed(Passed::render("config", Selection::Hosts)),
    },
    Entry {
        name: "check",
        usage: "check   validate the configuration and templates of the environment",
        runs: Runs::Passed(Passed::render("check", Selection::Hosts)),
    },
    Entry {
        name: "secrets",
        usage: "secrets edit | set NAME | show [KEY] | recipients [--rekey]   the environment's secrets",
        runs: Runs::Passed(Passed {
            subcommand: Some("secrets"),
            typed_before_env: 1,
            local: false,
            selection: Selection::None,
        }),
    },
    Entry {
        name: "help",
        usage: "help   this list",
        runs: Runs::Own,
    },
    Entry {
        name: "exit",
        usage: "exit   leave (or Ctrl-D)",
        runs: Runs::Own,
    },
    Entry {
        name: "shell",
        usage: "",
        runs: Runs::Refused(
            "this is the shell already: `exit` first to open another environment's",
        ),
    },
    Entry {
        name: "init",
        usage: "",
        runs: Runs::Refused(
            "`init` writes a workspace's files: run `cargo deploy init` outside the shell",
        ),
    },
    Entry {
        name: "completions",
        usage: "",
        runs: Runs::Refused(
            "`completions` are for your login shell: run `cargo deploy completions SHELL` outside; here Tab completes",
        ),
    },
];

/// `exec`, which `run` is on the selection.
pub(super) const EXEC: Passed = Passed::fleet("exec", Selection::HostsAndArtifact);

/// A word the shell knows, and how it runs a line that starts with it.
pub(super) struct Entry {
    pub(super) name: &'static str,
    /// Its line in `help`; none for a command refused here.
    pub(super) usage: &'static str,
    pub(super) runs: Runs,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Runs {
    /// The shell's own (`cd`, `ls`, `help`, `exit`), or its shorthand for
    /// `exec` (`run`, `ssh`).
    Own,
    /// A command of the command line, run as this binary with the
    /// environment and the selection added.
    Passed(Passed),
    /// A command of the command line that means nothing over an
    /// environment: why, in one line.
    Refused(&'static str),
}

/// How a line becomes the words after `cargo deploy`: the subcommand, the
/// words typed before the environment (`secrets show`'s `show`), the
/// environment, the selection, `--local`, the shell's own options, then
/// the rest of the line as typed. The selection and the options come
/// before whatever was typed, so before a `--` that ends the options.
#[derive(Debug, Clone, Copy)]
pub(super) struct Passed {
    subcommand: Option<&'static str>,
    typed_before_env: usize,
    /// Whether it takes `--local` (it works on the hosts or their local
    /// directories).
    local: bool,
    selection: Selection,
}

impl Passed {
    /// A command that works on the hosts, or their local directories.
    const fn fleet(subcommand: &'static str, selection: Selection) -> Passed {
        Passed {
            subcommand: Some(subcommand),
            typed_before_env: 0,
            local: true,
            selection,
        }
    }

    /// A command that renders for the hosts and contacts none.
    const fn render(subcommand: &'static str, selection: Selection) -> Passed {
        Passed {
            local: false,
            ..Passed::fleet(subcommand, selection)
        }
    }
}

/// What of the selection a command is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Selection {
    /// Nothing: it is about the environment as a whole.
    None,
    /// Its hosts (`--only`); a selected artifact stands for the hosts that
    /// have it, and the command covers their other artifacts too.
    Hosts,
    /// Its hosts, and its artifact (`--artifact`), if one is selected.
    HostsAndArtifact,
    /// Its hosts; it is refused under a selected artifact, as it would
    /// change the hosts' other artifacts too.
    HostsOnly,
}

/// Where a line of the command line runs: the environment, the selection
/// and the shell's own options.
pub(super) struct Scope<'a> {
    pub(super) env: &'a str,
    /// `--only` for the selection.
    pub(super) only: Vec<String>,
    pub(super) artifact: Option<&'a str>,
    pub(super) local: bool,
    pub(super) global: &'a Global,
}

/// The words after `cargo deploy` for a line of the command line's
/// `passed` command, of which `typed` is what followed its name, run over
/// `scope`.
pub(super) fn argv(
    passed: Passed,
    typed: &[String],
    scope: &Scope<'_>,
) -> Result<Vec<String>, String> {
    let options: Vec<&str> = typed
        .iter()
        .map(String::as_str)
        .take_while(|w| *w != "--")
        .collect();
    let given = |long: &str| {
        options.iter().any(|w| {
            w.strip_prefix(long)
                .is_some_and(|v| v.is_empty() || v.starts_with('='))
        })
    };
    if passed.selection != Selection::None && given("--only") {
        return Err("the selection is the `--only` here: `cd HOST` or `cd @ROLE` instead".into());
    }
    let artifact = scope.artifact;
    if let Some(artifact) = artifact {
        match passed.selection {
            Selection::HostsAndArtifact if given("--artifact") => {
                return Err(format!(
                    "the selection names the artifact, `{artifact}`: `cd ..` to name another"
                ));
            }
            Selection::HostsOnly => {
                return Err(format!(
                    "it would change every artifact of the selected hosts, not only `{artifact}`: `cd ..` first"
                ));
            }
            _ => {}
        }
    }
    let mut argv: Vec<String> = passed.subcommand.iter().map(ToString::to_string).collect();
    // `secrets` alone, or with an option such as `--help`, has no
    // subcommand to put the environment after.
    let before_env = passed.typed_before_env;
    let has_subcommand =
        typed.len() >= before_env && typed[..before_env].iter().all(|w| !w.starts_with('-'));
    if !has_subcommand {
        argv.extend(typed.iter().cloned());
        return Ok(argv);
    }
    argv.extend(typed[..before_env].iter().cloned());
    argv.push(scope.env.to_string());
    if passed.selection != Selection::None {
        argv.extend(scope.only.iter().cloned());
    }
    if passed.selection == Selection::HostsAndArtifact
        && let Some(artifact) = artifact
    {
        argv.extend(["--artifact".to_string(), artifact.to_string()]);
    }
    if passed.local && scope.local && !given("--local") {
        argv.push("--local".into());
    }
    argv.extend(inherited(scope.global, &options));
    argv.extend(typed[before_env..].iter().cloned());
    Ok(argv)
}

/// `ssh HOST`: `exec -t` of a login shell on one host, whatever the
/// selection.
pub(super) fn ssh_argv(env: &str, host: &str, local: bool, global: &Global) -> Vec<String> {
    let mut argv: Vec<String> = vec!["exec".into(), env.to_string()];
    argv.extend(["--only".into(), host.to_string()]);
    if local {
        argv.push("--local".into());
    }
    argv.extend(inherited(global, &[]));
    argv.extend(["-t", "--", "sh", "-c", "exec \"${SHELL:-sh}\" -l"].map(str::to_string));
    argv
}

/// The options the shell was started with (`global`), for a command it
/// runs, but those of them in `typed` (the options of the line), which
/// win.
fn inherited(global: &Global, typed: &[&str]) -> Vec<String> {
    let given = |names: &[&str]| {
        typed.iter().any(|w| {
            names.iter().any(|name| {
                *w == *name
                    || w.strip_prefix(name)
                        .is_some_and(|v| v.starts_with('=') || !name.starts_with("--"))
            })
        })
    };
    let mut options = Vec::new();
    if let Some(jobs) = global.jobs.filter(|_| !given(&["--jobs", "-j"])) {
        options.push(format!("--jobs={jobs}"));
    }
    if global.no_persist && !given(&["--no-persist"]) {
        options.push("--no-persist".into());
    }
    options.extend(global.vars.iter().map(|var| format!("--var={var}")));
    if let Some(path) = global
        .manifest_path
        .as_ref()
        .filter(|_| !given(&["--manifest-path"]))
    {
        options.push(format!("--manifest-path={}", path.display()));
    }
    if !given(&["--verbose", "-v", "--quiet", "-q"]) {
        if global.verbose {
            options.push("--verbose".into());
        }
        if global.quiet {
            options.push("--quiet".into());
        }
    }
    if global.color != Color::Auto && !given(&["--color"]) {
        let color = if global.color == Color::Always {
            "always"
        } else {
            "never"
        };
        options.push(format!("--color={color}"));
    }
    if global.message_format == MessageFormat::Json && !given(&["--message-format"]) {
        options.push("--message-format=json".into());
    }
    options
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;
    use crate::cli::{Cli, Command};

    fn global() -> Global {
        Global {
            only: Vec::new(),
            jobs: Some(3),
            message_format: MessageFormat::Human,
            verbose: false,
            quiet: false,
            color: Color::Auto,
            vars: vec!["port=1".into()],
            manifest_path: None,
            no_persist: true,
        }
    }

    fn passed(name: &str) -> Passed {
        match COMMANDS.iter().find(|e| e.name == name).map(|e| e.runs) {
            Some(Runs::Passed(passed)) => passed,
            other => panic!("`{name}` is not passed on: {other:?}"),
        }
    }

    /// The words after `cargo deploy` for `line` typed under `only` and
    /// `artifact` in a shell on `prod --local`.
    fn line(line: &str, only: &[&str], artifact: Option<&str>) -> Result<Vec<String>, String> {
        let global = global();
        let scope = Scope {
            env: "prod",
            only: only.iter().map(ToString::to_string).collect(),
            artifact,
            local: true,
            global: &global,
        };
        let words = shlex::split(line).unwrap();
        argv(passed(&words[0]), &words[1..], &scope)
    }

    /// The subcommand the command line makes of `argv`, and its matches.
    fn parse(argv: &[String]) -> (Option<String>, clap::ArgMatches) {
        let words = std::iter::once("cargo-deploy").chain(argv.iter().map(String::as_str));
        let matches = Cli::command()
            .try_get_matches_from(words)
            .unwrap_or_else(|err| panic!("{argv:?}: {err}"));
        let mut name = matches.subcommand_name().map(str::to_string);
        if let Some(("secrets", sub)) = matches.subcommand() {
            name = sub.subcommand_name().map(|s| format!("secrets {s}"));
        }
        (name, matches)
    }

    /// Every command of the command line is run by the shell or refused
    /// with a reason, and `help` and completion offer only those it runs.
    #[test]
    fn every_command_of_the_command_line_has_a_place_in_the_shell() {
        for sub in Cli::command().get_subcommands() {
            let entry = COMMANDS.iter().find(|e| e.name == sub.get_name());
            match entry.map(|e| (e.runs, e.usage)) {
                Some((Runs::Passed(_), usage)) => assert!(usage.starts_with(sub.get_name())),
                Some((Runs::Refused(why), "")) => assert!(!why.is_empty()),
                other => panic!("`{}`: {other:?}", sub.get_name()),
            }
        }
        // A deploy is the command line without a subcommand.
        assert_eq!(passed("deploy").subcommand, None);
    }

    /// Each command the shell passes on parses as that command, with the
    /// environment, the selection and the shell's options.
    #[test]
    fn each_line_is_the_command_with_the_environment_and_the_selection() {
        for (typed, want) in [
            ("deploy --dry-run", None),
            ("status", Some("status")),
            ("rollback --to 1f", Some("rollback")),
            ("logs -n 3", Some("logs")),
            ("exec -- sh -c 'echo --only'", Some("exec")),
            ("prune --yes", Some("prune")),
            ("build", Some("build")),
            ("config --annotate", Some("config")),
            ("check", Some("check")),
            ("secrets show db.password", Some("secrets show")),
            ("secrets recipients", Some("secrets recipients")),
            ("secrets edit", Some("secrets edit")),
        ] {
            let argv = line(typed, &["--only", "@web"], None).unwrap();
            let (name, matches) = parse(&argv);
            assert_eq!(name.as_deref(), want, "{typed}: {argv:?}");
            let cli = Cli::try_parse_from(
                std::iter::once("cargo-deploy").chain(argv.iter().map(String::as_str)),
            )
            .unwrap();
            let global = cli.global();
            assert_eq!(global.jobs, Some(3), "{argv:?}");
            assert!(global.no_persist, "{argv:?}");
            assert_eq!(global.vars, ["port=1"], "{argv:?}");
            let sub = matches.subcommand().map_or(&matches, |(_, m)| m);
            let env = match sub.subcommand() {
                Some((_, secrets)) => secrets.get_one::<String>("env"),
                None => sub.get_one::<String>("env"),
            };
            assert_eq!(env.map(String::as_str), Some("prod"), "{argv:?}");
            if !typed.starts_with("secrets") {
                assert_eq!(global.only, ["@web"], "{argv:?}");
            }
        }
        // `--local`, where the command takes it.
        let argv = line("deploy", &[], None).unwrap();
        assert_eq!(argv[..2], ["prod", "--local"]);
        let argv = line("config", &[], None).unwrap();
        assert!(!argv.contains(&"--local".to_string()), "{argv:?}");
        // The command's own words after `--` are its own.
        let argv = line("exec -- echo --only x", &[], None).unwrap();
        assert_eq!(argv[argv.len() - 4..], ["--", "echo", "--only", "x"]);
    }

    /// A selected artifact is the `--artifact` of what takes one, is
    /// refused by what would change the hosts' other artifacts, and a
    /// typed `--only` is refused: the selection is the shell's `--only`.
    #[test]
    fn the_selection_is_given_once_and_only_where_it_means_what_it_says() {
        let only = ["--only", "host2"];
        for typed in ["deploy", "exec -- pwd", "build"] {
            let argv = line(typed, &only, Some("app")).unwrap();
            let cli = Cli::try_parse_from(
                std::iter::once("cargo-deploy").chain(argv.iter().map(String::as_str)),
            )
            .unwrap();
            let artifacts = match &cli.command {
                None => cli.deploy.artifacts.clone(),
                Some(Command::Exec(exec)) => exec.target.artifacts.clone(),
                Some(Command::Build(build)) => build.artifacts.clone(),
                Some(other) => panic!("{other:?}"),
            };
            assert_eq!(artifacts, ["app"], "{typed}");
        }
        for typed in ["rollback", "prune"] {
            let err = line(typed, &only, Some("app")).unwrap_err();
            assert!(err.contains("every artifact"), "{err}");
        }
        let err = line("deploy --artifact site", &only, Some("app")).unwrap_err();
        assert!(err.contains("names the artifact"), "{err}");
        let err = line("status --only host1", &only, None).unwrap_err();
        assert!(err.contains("`cd HOST`"), "{err}");
        // Options the line gives win over the shell's.
        let argv = line("status --jobs 1 -v", &[], None).unwrap();
        assert!(!argv.iter().any(|w| w.starts_with("--jobs=")), "{argv:?}");
        parse(&argv);
        // `secrets` without its subcommand is left to the command line.
        assert_eq!(
            line("secrets --help", &[], None).unwrap(),
            ["secrets", "--help"]
        );
    }
}
