//! The command line, as clap sees it.
//!
//! The output options (`Output`: `--message-format`, `-v`, `-q`,
//! `--color`, `--manifest-path`) are global. The fleet's (`--only`,
//! `--jobs`, `--no-persist`, `--var`) are `Common`, flattened into every
//! command, which accepts them all while its `--help` lists only those it
//! uses; `Global` is both, as the commands read them. `completions SHELL`
//! is generated from these definitions with `clap_complete`, and `cargo
//! xtask man` includes this file to write the man pages with `clap_mangen`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cargo-deploy",
    bin_name = "cargo deploy",
    version,
    about = "Build, assemble and deploy the workspace's services",
    long_about = "Build, assemble and deploy the workspace's services.\n\n\
        `cargo deploy ENV` builds, assembles, pushes and activates everything \
        `deploy.toml` and `environments/ENV.toml` describe, skipping what is \
        unchanged. Exit status: 0 success, 1 the deployment failed, 2 usage or \
        configuration error (nothing contacted or changed), 3 the rollout \
        waits for promotion (`cargo deploy promote ENV`).",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    styles = clap_cargo::style::CLAP_STYLING
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) deploy: DeployArgs,
    #[command(flatten)]
    pub(crate) output: Output,
}

impl Cli {
    /// The options of the command given, with the defaults of those it
    /// does not take.
    pub(crate) fn global(&self) -> Global {
        let (only, jobs, no_persist, vars) = match &self.command {
            None => self.deploy.common.values(),
            Some(Command::Build(a)) => a.common.values(),
            Some(Command::Check(a)) => a.common.values(),
            Some(Command::Config(a)) => a.common.values(),
            Some(Command::Shell(a)) => a.common.values(),
            Some(Command::Promote(a)) => a.common.values(),
            Some(
                Command::Status(StatusArgs { target, .. })
                | Command::Rollback(RollbackArgs { target, .. })
                | Command::Abort(AbortArgs { target, .. })
                | Command::Exec(ExecArgs { target, .. })
                | Command::Logs(LogsArgs { target, .. })
                | Command::Prune(PruneArgs { target, .. }),
            ) => target.common.values(),
            Some(Command::Secrets(
                SecretsCommand::Edit(SecretsEnv { common, .. })
                | SecretsCommand::Show(ShowArgs { common, .. })
                | SecretsCommand::Set(SetArgs { common, .. })
                | SecretsCommand::Recipients(RecipientsArgs { common, .. }),
            )) => common.values(),
            Some(Command::Init(a)) => a.common.values(),
            Some(Command::Completions(a)) => a.common.values(),
        };
        let output = &self.output;
        Global {
            only,
            jobs,
            no_persist,
            vars,
            message_format: output.message_format,
            verbose: output.verbose,
            quiet: output.quiet,
            color: output.color,
            manifest_path: output.manifest_path.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build and assemble only, and print the artifact manifest
    Build(BuildArgs),
    /// Show each host's current and previous releases
    Status(StatusArgs),
    /// Switch back to the previous (or a given) release
    Rollback(RollbackArgs),
    /// Go on with the rollout that waits for promotion (`pause = "until
    /// promoted"`), from a checkout (or bundle) of the same releases
    Promote(PromoteArgs),
    /// End the rollout that waits for promotion: switch the hosts it
    /// activated back, and release every lock
    Abort(AbortArgs),
    /// Validate the configuration and templates; contacts no host
    Check(CheckArgs),
    /// Run a command on the selected hosts in parallel, output prefixed by host
    Exec(ExecArgs),
    /// Print each host's service log (journalctl, or supervisord's), prefixed by host, each line after its time
    Logs(LogsArgs),
    /// Print the variables each host sees; with --annotate, where each comes from
    Config(ConfigArgs),
    /// Stop and remove what artifacts that left deploy.toml (or moved) left
    /// on the hosts, after confirmation
    Prune(PruneArgs),
    /// An interactive shell over the environment's hosts: `cd @ROLE`,
    /// `ls`, `run CMD`, `ssh HOST`, `status`, `deploy`, with completion and
    /// history
    Shell(ShellArgs),
    /// Manage an environment's encrypted secrets, `secrets/ENV.toml.age`
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Write deploy.toml, environments/dev.toml and a template for this
    /// workspace's binaries
    Init(InitArgs),
    /// Print the completions of `cargo-deploy` for a shell, to be sourced
    /// or installed where the shell looks for them
    Completions(CompletionsArgs),
}

/// How `cargo deploy` is called, as clap says it, and where to read more.
pub(crate) fn usage() -> String {
    use clap::CommandFactory;
    format!(
        "{}\n\nFor more information, try '--help'.",
        Cli::command().render_usage().ansi()
    )
}

/// Writes the completions of `cargo-deploy` for `shell`: for the binary's
/// own name, which is the one a shell completes (cargo does not pass its
/// subcommands' words on).
pub(crate) fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    let mut command = Cli::command().bin_name("cargo-deploy");
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "cargo-deploy", &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete spells a hyphenated name one way where bash keeps
        // track of the command line and another in the cases it matches
        // against, so that no command's options would complete
        // (clap-rs/clap#6421): the cases are spelt as the tracking does.
        let text =
            String::from_utf8_lossy(&script).replace("cargo__subcmd__deploy", "cargo__deploy");
        script = text.into_bytes();
    }
    let _ = out.write_all(&script);
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    #[command(flatten)]
    pub(crate) common: Unused,
    /// The shell: bash, elvish, fish, powershell or zsh
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) common: Render,
    /// Only this host (default: every selected host)
    #[arg(long, value_name = "HOST")]
    pub(crate) host: Option<String>,
    /// Say where each value comes from: deploy.toml, the environment, the
    /// host or `--var`, with file and line
    #[arg(long)]
    pub(crate) annotate: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// Decrypt into a private temporary file, open $VISUAL or $EDITOR,
    /// validate and re-encrypt to the environment's recipients
    Edit(SecretsEnv),
    /// Print the secrets' names; their values only when asked by name or
    /// with --all
    Show(ShowArgs),
    /// Set one secret to what standard input holds (one trailing newline
    /// dropped), and re-encrypt: no editor, no terminal needed
    Set(SetArgs),
    /// List the environment's recipients and whether the file is encrypted
    /// to each; --rekey re-encrypts it to exactly them
    Recipients(RecipientsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SecretsEnv {
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) common: Unused,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) common: Unused,
    /// Print this secret's value (dotted for tables: `db.password`)
    #[arg(conflicts_with = "all")]
    pub(crate) key: Option<String>,
    /// Print every value: the whole decrypted document
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) common: Unused,
    /// The secret's name (dotted for tables: `db.password`); its value is
    /// read from standard input, never from the command line, which other
    /// users may read
    pub(crate) name: String,
}

#[derive(Debug, Args)]
pub(crate) struct RecipientsArgs {
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) common: Unused,
    /// Re-encrypt the file to the recipients the environment lists now
    #[arg(long)]
    pub(crate) rekey: bool,
}

/// `cargo deploy ENV`.
#[derive(Debug, Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is a flag of the command line"
)]
pub(crate) struct DeployArgs {
    /// The environment: a file `environments/ENV.toml` (without one, the
    /// environments there are listed)
    pub(crate) env: Option<String>,
    /// Deploy to directories under target/landfall/local/ENV/ instead of the hosts
    #[arg(long)]
    pub(crate) local: bool,
    /// Build, assemble and read the hosts; print what would change, change nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Remove a lock left behind by a deploy that is gone
    #[arg(long)]
    pub(crate) break_lock: bool,
    /// Deploy although the working tree has changes (git artifacts deploy
    /// HEAD; a protected environment accepts it)
    #[arg(long)]
    pub(crate) allow_dirty: bool,
    /// Confirm the deploy of a protected environment without asking
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Run the activation of releases that are current already (to restart
    /// a service with nothing changed)
    #[arg(long)]
    pub(crate) force: bool,
    /// Deploy the bundle in DIR (made by `build --out`) instead of building;
    /// `s3://BUCKET/PREFIX`: the bundle published there, which hosts pull
    #[arg(long, value_name = "DIR")]
    pub(crate) from: Option<PathBuf>,
    /// With `--from`: render the bundle's releases with a configuration of
    /// another commit than the bundle's
    #[arg(long, requires = "from")]
    pub(crate) allow_config_drift: bool,
    /// Only this artifact (and the binaries it needs); repeatable
    #[arg(long = "artifact", value_name = "NAME")]
    pub(crate) artifacts: Vec<String>,
    #[command(flatten)]
    pub(crate) common: Common<true, true, true>,
}

/// `cargo deploy promote ENV`.
#[derive(Debug, Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is a flag of the command line"
)]
pub(crate) struct PromoteArgs {
    /// The environment whose rollout waits
    pub(crate) env: String,
    /// Work on the local directories of `--local` deploys instead of the hosts
    #[arg(long)]
    pub(crate) local: bool,
    /// Build although the working tree has changes (the releases must
    /// still be those the rollout waits with)
    #[arg(long)]
    pub(crate) allow_dirty: bool,
    /// Confirm the promotion in a protected environment without asking
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Take the releases from the bundle in DIR (made by `build --out`)
    /// instead of building; `s3://BUCKET/PREFIX`: the bundle published there
    #[arg(long, value_name = "DIR")]
    pub(crate) from: Option<PathBuf>,
    /// With `--from`: render the bundle's releases with a configuration of
    /// another commit than the bundle's
    #[arg(long, requires = "from")]
    pub(crate) allow_config_drift: bool,
    #[command(flatten)]
    pub(crate) common: Common<true, true, true>,
}

/// `cargo deploy abort ENV`.
#[derive(Debug, Args)]
pub(crate) struct AbortArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Confirm the abort in a protected environment without asking
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    pub(crate) env: String,
    /// Build twice from scratch in two directories and compare the ids
    #[arg(long, conflicts_with = "out")]
    pub(crate) check_reproducible: bool,
    /// Write a bundle to DIR: the artifacts and a manifest, for `--from`;
    /// `s3://BUCKET/PREFIX` publishes it to that object store
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Only this artifact (and the binaries it needs); repeatable
    #[arg(
        long = "artifact",
        value_name = "NAME",
        conflicts_with = "check_reproducible"
    )]
    pub(crate) artifacts: Vec<String>,
    #[command(flatten)]
    pub(crate) common: Render,
}

#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    pub(crate) env: String,
    /// Work on the local directories of `--local` deploys instead of the hosts
    #[arg(long)]
    pub(crate) local: bool,
    /// Only this artifact, on the hosts that have it; repeatable (`exec`
    /// takes one, and starts the command in its `current`; `prune`, the
    /// name an orphan was deployed as)
    #[arg(long = "artifact", value_name = "NAME")]
    pub(crate) artifacts: Vec<String>,
    #[command(flatten)]
    pub(crate) common: Fleet,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Show each current release's bill of materials: the packages its
    /// binaries were built from
    #[arg(long)]
    pub(crate) sbom: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    pub(crate) env: String,
    /// Work on the local directories of `--local` deploys instead of the hosts
    #[arg(long)]
    pub(crate) local: bool,
    #[command(flatten)]
    pub(crate) common: Common<true, true, true>,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Remove them without asking
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Where to go: what a deploy left (its id, or a unique prefix, as the
    /// summary and `status` show it), a release (a prefix of its id), or
    /// the releases built from a commit (a hash prefix, or a git ref such
    /// as a tag); default: what the hosts ran before the last deploy that
    /// changed anything
    #[arg(long, value_name = "DEPLOY|RELEASE|COMMIT", value_parser = rollback_goal)]
    pub(crate) to: Option<String>,
    /// Remove a lock left behind by a deploy that is gone
    #[arg(long)]
    pub(crate) break_lock: bool,
    /// Confirm the rollback of a protected environment without asking
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is a flag of the command line"
)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Print one block per distinct output once every host is done, with
    /// the hosts that gave it, failed ones first (instead of each line as it
    /// comes)
    #[arg(long, conflicts_with = "tty")]
    pub(crate) group: bool,
    /// Send what landfall reads on its standard input to the command on
    /// every host
    #[arg(long, conflicts_with = "tty")]
    pub(crate) stdin: bool,
    /// Run the command on a terminal of the host, for a person to work
    /// with (one host only)
    #[arg(long, short = 't')]
    pub(crate) tty: bool,
    /// The command and its arguments, each passed as one word (use
    /// `sh -c '…'` for shell syntax)
    #[arg(last = true, required = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub(crate) common: Unused,
    /// Write nothing; print the sudoers rules that let the deploy user of
    /// ENV manage its system services without being root
    #[arg(long, value_name = "ENV")]
    pub(crate) sudoers: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Keep printing what the services write, until interrupted
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
    /// How many of the last lines to print from each host first: of those
    /// written since the current release's service started, unless
    /// `--all-releases` is given
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    pub(crate) lines: u32,
    /// Print the lines of earlier releases too, each release's led by the
    /// line where its service started (`-- release ID started --`)
    #[arg(long)]
    pub(crate) all_releases: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Check only this environment (default: all of them)
    pub(crate) env: Option<String>,
    #[command(flatten)]
    pub(crate) common: Render,
}

/// What `rollback --to` takes: a deploy id, a release id or a commit hash
/// (hexadecimal digits and dashes), or a git ref, resolved in the
/// workspace: the characters a ref may hold and its suffixes (`~1`,
/// `^{commit}`), never an option.
fn rollback_goal(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._/~^@{}".contains(c);
    if !text.is_empty() && !text.starts_with('-') && text.len() <= 255 && text.chars().all(allowed)
    {
        Ok(text.to_string())
    } else {
        Err("give a deploy id or a release id (see `cargo deploy status`), a commit hash, or a git ref".to_string())
    }
}

/// Options every command takes: how it prints, and which workspace.
#[derive(Debug, Args)]
pub(crate) struct Output {
    /// How to print progress and the summary
    #[arg(long, global = true, value_enum, default_value_t = MessageFormat::Human)]
    pub(crate) message_format: MessageFormat,
    /// More output (hook output, cargo's)
    #[arg(long, short = 'v', global = true, conflicts_with = "quiet")]
    pub(crate) verbose: bool,
    /// Less output: only errors and the summary
    #[arg(long, short = 'q', global = true)]
    pub(crate) quiet: bool,
    /// When to use colours
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,
    /// Path to the workspace's Cargo.toml
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
}

/// The options of the fleet: `--only`, `--jobs` and `--no-persist`, and
/// `--var`. Every command accepts each of them, as it always has, so that
/// no script that passes one breaks; the help of a command lists those it
/// uses (`S`: `--only`; `C`: `--jobs` and `--no-persist`; `V`: `--var`).
#[derive(Debug, Args)]
pub(crate) struct Common<const S: bool, const C: bool, const V: bool> {
    /// Only these hosts (`HOST`) or roles (`@ROLE`); repeatable
    #[arg(long, value_name = "HOST|@ROLE", hide = !S)]
    pub(crate) only: Vec<String>,
    /// Hosts worked on at once (default: the environment's `jobs`)
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..), hide = !C)]
    pub(crate) jobs: Option<u32>,
    /// Close the ssh connections when the command ends, instead of keeping
    /// them for the next run (`ssh_persist`)
    #[arg(long, hide = !C)]
    pub(crate) no_persist: bool,
    /// Set a template variable, overriding every file (`port=8080`,
    /// `db.host=x`); repeatable
    #[arg(long = "var", value_name = "KEY=VALUE", hide = !V)]
    pub(crate) vars: Vec<String>,
}

impl<const S: bool, const C: bool, const V: bool> Common<S, C, V> {
    fn values(&self) -> (Vec<String>, Option<u32>, bool, Vec<String>) {
        (
            self.only.clone(),
            self.jobs,
            self.no_persist,
            self.vars.clone(),
        )
    }
}

/// The options of a command that works on the fleet's hosts.
pub(crate) type Fleet = Common<true, true, false>;
/// The options of a command that renders for the fleet, contacting no host.
pub(crate) type Render = Common<true, false, true>;
/// The options of a command that uses none of the fleet's.
pub(crate) type Unused = Common<false, false, false>;

/// The options of the command given, as the commands read them.
#[derive(Debug)]
pub(crate) struct Global {
    pub(crate) only: Vec<String>,
    pub(crate) jobs: Option<u32>,
    pub(crate) message_format: MessageFormat,
    pub(crate) verbose: bool,
    pub(crate) quiet: bool,
    pub(crate) color: Color,
    pub(crate) vars: Vec<String>,
    pub(crate) manifest_path: Option<PathBuf>,
    pub(crate) no_persist: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MessageFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn help(path: &[&str]) -> String {
        let mut command = Cli::command();
        // Global options reach the subcommands when the command is built.
        command.build();
        for name in path {
            command = command
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no subcommand `{name}`"))
                .clone();
        }
        command.render_long_help().to_string()
    }

    /// `completions bash` gives a script that bash loads, and that
    /// completes commands and each command's own options.
    #[test]
    fn bash_completes_commands_and_their_options() {
        let mut script = Vec::new();
        completions(clap_complete::Shell::Bash, &mut script);
        let complete = |words: &str| {
            // The function the script registers for `cargo-deploy`, called
            // as bash calls it: the command, the word, the previous word.
            let program = format!(
                "{}\nfunction=$(complete -p cargo-deploy | sed 's/.* -F \\([^ ]*\\) .*/\\1/')\n\
                 COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
                 \"$function\" cargo-deploy \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                String::from_utf8_lossy(&script)
            );
            let output = std::process::Command::new("bash")
                .args(["--norc", "--noprofile", "-c", &program])
                .output()
                .expect("bash runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let commands = complete("cargo-deploy st");
        assert!(commands.lines().any(|l| l == "status"), "{commands}");
        let options = complete("cargo-deploy status prod --");
        assert!(options.lines().any(|l| l == "--only"), "{options}");
        let options = complete("cargo-deploy init --");
        assert!(options.lines().any(|l| l == "--sudoers"), "{options}");
    }

    /// Every command that works on the hosts selects them alike: `--only`
    /// and `--artifact`, each repeatable.
    #[test]
    fn the_commands_on_hosts_take_the_same_selection() {
        for command in ["status", "rollback", "exec", "logs", "prune"] {
            let mut words = vec![
                "cargo-deploy",
                command,
                "prod",
                "--only",
                "@web",
                "--artifact",
                "app",
                "--artifact",
                "site",
            ];
            if command == "exec" {
                words.extend(["--", "true"]);
            }
            let cli = Cli::try_parse_from(&words).unwrap_or_else(|err| panic!("{command}: {err}"));
            let target = match cli.command {
                Some(
                    Command::Status(StatusArgs { target, .. })
                    | Command::Rollback(RollbackArgs { target, .. })
                    | Command::Exec(ExecArgs { target, .. })
                    | Command::Logs(LogsArgs { target, .. })
                    | Command::Prune(PruneArgs { target, .. }),
                ) => target,
                other => panic!("{command}: {other:?}"),
            };
            assert_eq!(target.artifacts, ["app", "site"], "{command}");
            assert_eq!(target.common.only, ["@web"], "{command}");
        }
    }

    /// Each command's help lists the options it takes, and no other.
    #[test]
    fn each_command_lists_only_the_options_it_takes() {
        let every = [
            "--message-format",
            "--quiet",
            "--verbose",
            "--color",
            "--manifest-path",
        ];
        let fleet = ["--only", "--jobs", "--no-persist", "--artifact"];
        for (path, takes, not) in [
            (
                &["init"][..],
                &[][..],
                &["--only", "--jobs", "--no-persist", "--var", "--artifact"][..],
            ),
            (&["secrets", "edit"], &[], &["--only", "--jobs", "--var"]),
            (&["secrets", "set"], &[], &["--only", "--jobs", "--var"]),
            (&["completions"], &[], &["--only", "--jobs", "--var"]),
            (
                &["check"],
                &["--only", "--var"],
                &["--jobs", "--no-persist"],
            ),
            (
                &["build"],
                &["--only", "--var", "--artifact"],
                &["--jobs", "--no-persist"],
            ),
            (&["config"], &["--only", "--var"], &["--jobs"]),
            (&["status"], &fleet, &["--var"]),
            (&["rollback"], &fleet, &["--var"]),
            (&["exec"], &fleet, &["--var"]),
            (&["logs"], &fleet, &["--var"]),
            (&["prune"], &fleet, &["--var"]),
            (&["shell"], &[], &["--artifact"]),
            (
                &["shell"],
                &["--only", "--jobs", "--no-persist", "--var"],
                &[],
            ),
            (
                &[],
                &["--only", "--jobs", "--no-persist", "--var", "--artifact"],
                &[],
            ),
        ] {
            let text = help(path);
            for option in every.iter().chain(takes) {
                assert!(
                    text.contains(option),
                    "`{path:?} --help` lacks {option}:\n{text}"
                );
            }
            for option in not {
                assert!(
                    !text.contains(option),
                    "`{path:?} --help` lists {option}:\n{text}"
                );
            }
        }
        // What a command does not list, it still accepts, as it always
        // has: a script that passes it keeps working.
        for args in [
            &["rollback", "prod", "--var", "x=1"][..],
            &["build", "prod", "--no-persist", "--jobs", "2"],
            &["init", "--only", "web1"],
            &["secrets", "show", "prod", "--only", "web1"],
        ] {
            let words = std::iter::once("cargo-deploy").chain(args.iter().copied());
            if let Err(err) = Cli::try_parse_from(words) {
                panic!("{args:?}: {err}");
            }
        }
    }
}
