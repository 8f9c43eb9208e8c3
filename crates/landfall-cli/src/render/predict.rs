//! The dry run's prediction under a target's `Would deploy` line: the
//! paths added, removed and changed, the hooks that would run, and the
//! diffs of text files (with secrets masked by the library), cut where
//! they are long, with where the whole diff is.

use std::path::Path;

use anstyle::{Effects, Style};
use landfall::diff::{DiffKind, FileDiff};
use landfall::inert::inert;

use super::{BAD, DIM, GOOD, INFO, WARN};

/// The paths a release adds, removes and changes, and its hooks.
pub(super) fn print_changes(
    added: &[String],
    removed: &[String],
    changed: &[String],
    hooks: &[String],
) {
    for path in added {
        eprintln!("{:>12}   {GOOD}+{GOOD:#} {}", "", inert(path));
    }
    for path in removed {
        eprintln!("{:>12}   {BAD}-{BAD:#} {}", "", inert(path));
    }
    for path in changed {
        eprintln!("{:>12}   {WARN}~{WARN:#} {}", "", inert(path));
    }
    if !hooks.is_empty() {
        eprintln!("{:>12}   hooks: {}", "", inert(&hooks.join(", ")));
    }
}

/// The diffs of the files that differ, and the file that holds them all
/// when they were cut.
pub(super) fn print_diffs(diffs: &[FileDiff], diff_file: Option<&Path>) {
    for diff in diffs {
        print_diff(diff);
    }
    if let Some(file) = diff_file {
        eprintln!(
            "{:>12}   {DIM}the whole diff: {}{DIM:#}",
            "",
            file.display()
        );
    }
}

/// A predicted change of one file, indented under its target.
fn print_diff(diff: &FileDiff) {
    let pad = "";
    match diff.kind {
        DiffKind::Binary => eprintln!(
            "{pad:>14}{DIM}binary file {} differs{DIM:#}",
            inert(&diff.path)
        ),
        DiffKind::Large => eprintln!(
            "{pad:>14}{DIM}{} differs (too big to diff){DIM:#}",
            inert(&diff.path)
        ),
        DiffKind::Hidden => eprintln!(
            "{pad:>14}{DIM}{} differs (it holds secrets; its template cannot be shown masked){DIM:#}",
            inert(&diff.path)
        ),
        DiffKind::Text => {
            for line in diff.diff.lines() {
                let style = if line.starts_with("+++") || line.starts_with("---") {
                    Style::new().effects(Effects::BOLD)
                } else if line.starts_with('+') {
                    GOOD
                } else if line.starts_with('-') {
                    BAD
                } else if line.starts_with("@@") {
                    INFO
                } else {
                    Style::new()
                };
                // The old side is the file on the host.
                eprintln!("{pad:>14}{style}{}{style:#}", inert(line));
            }
            let shown = diff.diff.lines().count();
            if diff.lines > shown {
                eprintln!("{pad:>14}{DIM}… {} more lines{DIM:#}", diff.lines - shown);
            }
        }
    }
}
