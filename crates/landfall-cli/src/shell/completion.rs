//! Tab completion: commands first, then what each command takes (its
//! options, as the command line defines them, but those the shell adds
//! itself; roles, hosts and artifacts; release ids read from the hosts).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use clap::CommandFactory as _;
use rustyline::Helper;
use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;

use super::line::{COMMANDS, Runs};
use crate::cli::Cli;

/// What completion offers besides commands.
#[derive(Debug, Default)]
pub(super) struct Names {
    pub(super) roles: BTreeSet<String>,
    pub(super) hosts: BTreeSet<String>,
    pub(super) artifacts: BTreeSet<String>,
    pub(super) releases: BTreeSet<String>,
}

/// Tab completion: commands first, then what each command takes.
pub(super) struct Completion {
    pub(super) names: Arc<Mutex<Names>>,
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let line = &line[..pos];
        let start = line.rfind(' ').map_or(0, |i| i + 1);
        let word = &line[start..];
        let before: Vec<&str> = line[..start].split_whitespace().collect();
        let names = self.names.lock().expect("not poisoned");
        let offered: Vec<String> = match before.as_slice() {
            [] => COMMANDS
                .iter()
                .filter(|e| !matches!(e.runs, Runs::Refused(_)))
                .map(|e| e.name.to_string())
                .collect(),
            ["secrets"] => ["edit", "set", "show", "recipients"]
                .map(str::to_string)
                .to_vec(),
            [command, ..] if word.starts_with('-') && !before.contains(&"--") => {
                options(&before[..before.len().min(if *command == "secrets" { 2 } else { 1 })])
            }
            ["cd", ..] => {
                let mut all = vec!["..".to_string(), "/".to_string()];
                all.extend(names.roles.iter().map(|r| format!("@{r}")));
                all.extend(names.hosts.iter().cloned());
                all.extend(names.artifacts.iter().cloned());
                all
            }
            ["ssh", ..] => names.hosts.iter().cloned().collect(),
            [.., "--to"] => names.releases.iter().cloned().collect(),
            [.., "--only"] => names
                .hosts
                .iter()
                .cloned()
                .chain(names.roles.iter().map(|r| format!("@{r}")))
                .collect(),
            [.., "--artifact"] => names.artifacts.iter().cloned().collect(),
            _ => Vec::new(),
        };
        Ok((
            start,
            offered
                .into_iter()
                .filter(|o| o.starts_with(word))
                .collect(),
        ))
    }
}

/// The long options of the command of the command line that `words` name
/// (`deploy`, `status`, `secrets show` …) but those the shell adds itself.
fn options(words: &[&str]) -> Vec<String> {
    let mut command = Cli::command();
    // Global options reach the subcommands when the command is built.
    command.build();
    for word in words.iter().filter(|w| **w != "deploy") {
        match command.find_subcommand(word) {
            Some(sub) => command = sub.clone(),
            None => return Vec::new(),
        }
    }
    command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(clap::Arg::get_long)
        .filter(|long| !matches!(*long, "only" | "local"))
        .map(|long| format!("--{long}"))
        .collect()
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for Completion {}

impl Helper for Completion {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Completion offers the commands the shell runs, each command's own
    /// options but those the shell adds, and `secrets`' subcommands.
    #[test]
    fn completion_offers_what_the_shell_runs() {
        let completion = Completion {
            names: Arc::new(Mutex::new(Names::default())),
        };
        let history = rustyline::history::MemHistory::new();
        let ctx = rustyline::Context::new(&history);
        let complete = |line: &str| completion.complete(line, line.len(), &ctx).unwrap().1;
        let commands = complete("");
        for name in [
            "deploy", "status", "build", "config", "check", "secrets", "cd", "run",
        ] {
            assert!(commands.iter().any(|c| c == name), "{commands:?}");
        }
        for name in ["shell", "init", "completions"] {
            assert!(!commands.iter().any(|c| c == name), "{commands:?}");
        }
        assert_eq!(complete("secrets s"), ["set", "show"]);
        let options = complete("deploy --");
        assert!(options.iter().any(|o| o == "--dry-run"), "{options:?}");
        assert!(
            !options.iter().any(|o| o == "--only" || o == "--local"),
            "{options:?}"
        );
        assert_eq!(complete("rollback --t"), ["--to"]);
        assert_eq!(complete("secrets recipients --r"), ["--rekey"]);
        assert!(complete("exec -- ls --").is_empty());
    }
}
