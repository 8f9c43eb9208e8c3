//! The command line, as clap sees it.

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
        configuration error (nothing contacted or changed).",
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
    pub(crate) global: Global,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build and assemble only, and print the artifact manifest
    Build(BuildArgs),
    /// Show each host's current and previous releases
    Status(TargetArgs),
    /// Switch back to the previous (or a given) release
    Rollback(RollbackArgs),
    /// Validate the configuration and templates; contacts no host
    Check(CheckArgs),
    /// Run a command on the selected hosts in parallel, output prefixed by host
    Exec(ExecArgs),
    /// Print each host's service log (journalctl, or supervisord's), prefixed by host
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
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    pub(crate) env: String,
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
    /// List the environment's recipients and whether the file is encrypted
    /// to each; --rekey re-encrypts it to exactly them
    Recipients(RecipientsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SecretsEnv {
    pub(crate) env: String,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    pub(crate) env: String,
    /// Print this secret's value (dotted for tables: `db.password`)
    #[arg(conflicts_with = "all")]
    pub(crate) key: Option<String>,
    /// Print every value: the whole decrypted document
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RecipientsArgs {
    pub(crate) env: String,
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
    /// The environment: a file `environments/ENV.toml`
    #[arg(required = true)]
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
}

#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    pub(crate) env: String,
    /// Work on the local directories of `--local` deploys instead of the hosts
    #[arg(long)]
    pub(crate) local: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    pub(crate) env: String,
    /// Work on the local directories of `--local` deploys instead of the hosts
    #[arg(long)]
    pub(crate) local: bool,
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
    /// The release to switch to (a unique prefix of its id); default: the previous one
    #[arg(long, value_name = "RELEASE", value_parser = release_prefix)]
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
    /// Start the command in this artifact's `current` (on the hosts that
    /// have it), rather than in the home directory
    #[arg(long, value_name = "NAME")]
    pub(crate) artifact: Option<String>,
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
    /// How many of the last lines to print from each host first
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    pub(crate) lines: u32,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Check only this environment (default: all of them)
    pub(crate) env: Option<String>,
}

/// A release id or its first characters: lowercase hexadecimal digits, as
/// `status` shows them. Anything else could never match, and is refused
/// before a host is contacted.
fn release_prefix(text: &str) -> Result<String, String> {
    let hex = text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex && (1..=64).contains(&text.len()) {
        Ok(text.to_string())
    } else {
        Err("a release is named by its id or a prefix of it, in hexadecimal digits (see `cargo deploy status`)".to_string())
    }
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Only these hosts (`HOST`) or roles (`@ROLE`); repeatable
    #[arg(long, global = true, value_name = "HOST|@ROLE")]
    pub(crate) only: Vec<String>,
    /// Hosts worked on at once (default: the environment's `jobs`)
    #[arg(long, short = 'j', global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) jobs: Option<u32>,
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
    /// Set a template variable, overriding every file (`port=8080`,
    /// `db.host=x`); repeatable
    #[arg(long = "var", global = true, value_name = "KEY=VALUE")]
    pub(crate) vars: Vec<String>,
    /// Path to the workspace's Cargo.toml
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// Close the ssh connections when the command ends, instead of keeping
    /// them for the next run (`ssh_persist`)
    #[arg(long, global = true)]
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
}
