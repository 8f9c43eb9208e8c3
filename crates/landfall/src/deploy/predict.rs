//! The dry run: what a deploy would change on each host, read from the
//! hosts and compared with the new releases, with diffs of the text files
//! that differ. Writes nothing on any host.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Run, Status, Summary, Work};
use crate::assemble::{EntryKind, Manifest};
use crate::diff::{self, FileDiff, Side};
use crate::event::Event;
use crate::parallel::parallel;
use crate::steps::Step;
use crate::transport::changes;

/// Files diffed per host and artifact; the others are only listed.
const MAX_DIFFED_FILES: usize = 200;

pub(super) fn dry_run(run: &Run<'_>, work: &mut [Work<'_>]) -> Summary {
    let pending: Vec<usize> = (0..work.len())
        .filter(|&i| work[i].status.is_none())
        .collect();
    let shared: &[Work<'_>] = work;
    // Where each artifact's `once` hook would run: its first host with
    // something to do.
    let once: Vec<usize> = run
        .project
        .artifacts
        .iter()
        .filter_map(|a| {
            pending.iter().copied().find(|&i| {
                shared[i].target.artifact == a.name && shared[i].target.hooks.once.is_some()
            })
        })
        .collect();
    let predictions = parallel(&pending, run.jobs, |&i| {
        predict(run, &shared[i], once.contains(&i))
    });
    for (i, event) in pending.into_iter().zip(predictions) {
        (run.events)(event);
        work[i].status = Some(Status::Skipped);
        work[i].message = Some("dry run".to_string());
    }
    Summary::new(run, true, work.iter().map(Work::outcome).collect())
}

/// What deploying `w` would change, as an event; `once`: its `once` hook
/// would run there.
fn predict(run: &Run<'_>, w: &Work<'_>, once: bool) -> Event {
    let old = match &w.current {
        Some(current) => {
            let script = run.script(w.target).step(Step::Manifest {
                path: w.path.clone(),
                release: current.clone(),
            });
            run.transport
                .run(&w.target.host, &script)
                .ok()
                .and_then(|reply| Manifest::parse(&reply.output.stdout_text()))
                .unwrap_or_default()
        }
        None => Manifest::default(),
    };
    let new = &w.release.manifest;
    let change = changes(&old, new);
    let (diffs, diff_file) = match &w.current {
        Some(current) => {
            let diffs = diffs(run, w, current, &old, &change);
            let file = write_full(run, w, &diffs);
            (diffs, file)
        }
        None => (Vec::new(), None),
    };
    let mut hooks: Vec<String> = w
        .action
        .hooks(w.target)
        .into_iter()
        .map(str::to_string)
        .collect();
    if once {
        // After the build, before anything switches.
        let at = usize::from(hooks.first().is_some_and(|h| h == "build"));
        hooks.insert(at, "once".to_string());
    }
    Event::WouldDeploy {
        host: w.target.host.clone(),
        artifact: w.target.artifact.clone(),
        release: w.release.id.clone(),
        current: w.current.clone(),
        added: change.added,
        removed: change.removed,
        changed: change.changed,
        hooks,
        diffs,
        diff_file,
    }
}

/// Diffs of the files that differ, rendered files first.
fn diffs(
    run: &Run<'_>,
    w: &Work<'_>,
    current: &str,
    old: &Manifest,
    change: &crate::transport::Changes,
) -> Vec<FileDiff> {
    let files = |m: &Manifest| -> BTreeMap<String, (u32, u64)> {
        m.entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::File { mode, size, .. } => Some((e.path.clone(), (mode, size))),
                EntryKind::Symlink { .. } => None,
            })
            .collect()
    };
    let (old_files, new_files) = (files(old), files(&w.release.manifest));
    let rendered: BTreeMap<&str, &crate::plan::RenderedFile> = w
        .target
        .release_files()
        .map(|f| (f.dst.as_str(), f))
        .collect();
    let mut paths: Vec<&String> = change
        .changed
        .iter()
        .chain(&change.added)
        .chain(&change.removed)
        .filter(|p| old_files.contains_key(*p) || new_files.contains_key(*p))
        .collect();
    paths.sort_by_key(|p| (!rendered.contains_key(p.as_str()), p.as_str()));
    paths.truncate(MAX_DIFFED_FILES);

    let fetch: Vec<&str> = paths
        .iter()
        .filter(|p| {
            old_files
                .get(p.as_str())
                .is_some_and(|(_, size)| *size <= diff::MAX_DIFF_BYTES)
        })
        .map(|p| p.as_str())
        .collect();
    let old_contents = if fetch.is_empty() {
        BTreeMap::new()
    } else {
        let script = run.script(w.target).step(Step::Files {
            path: w.path.clone(),
            release: current.to_string(),
            max: diff::MAX_DIFF_BYTES,
            files: fetch.iter().map(|f| (*f).to_string()).collect(),
        });
        run.transport
            .run(&w.target.host, &script)
            .map(|reply| reply.files())
            .unwrap_or_default()
    };

    let mut out = Vec::new();
    for path in paths {
        let old_side = match old_files.get(path.as_str()) {
            None => Side::Absent,
            Some(_) => match old_contents.get(path.as_str()) {
                Some(bytes) => Side::Plain(bytes),
                None => Side::Large,
            },
        };
        let staged;
        let new_side = match (rendered.get(path.as_str()), new_files.get(path.as_str())) {
            (_, None) => Side::Absent,
            (Some(file), Some(_)) if file.secret => Side::Secret {
                masked: file.masked.as_deref(),
                real: &file.contents,
            },
            (Some(file), Some(_)) => Side::Plain(&file.contents),
            (None, Some((_, size))) if *size > diff::MAX_DIFF_BYTES => Side::Large,
            (None, Some(_)) => match std::fs::read(w.release.local_path(path)) {
                Ok(bytes) => {
                    staged = bytes;
                    Side::Plain(&staged)
                }
                Err(_) => Side::Large,
            },
        };
        let old_private = old_files
            .get(path.as_str())
            // No permission bits for group or others: a private file.
            .is_some_and(|(mode, _)| mode.trailing_zeros() >= 6);
        out.push(diff::file_diff(path, old_side, new_side, old_private));
    }
    out
}

/// Writes the whole diff of a target, all files, to
/// `target/landfall/diffs/ENV/HOST/ARTIFACT.diff` when the output cut any
/// of it.
fn write_full(run: &Run<'_>, w: &Work<'_>, diffs: &[FileDiff]) -> Option<PathBuf> {
    if !diffs.iter().any(|d| d.lines > d.diff.lines().count()) {
        return None;
    }
    let path = run
        .project
        .workspace
        .landfall_dir()
        .join("diffs")
        .join(&run.env.name)
        .join(&w.target.host)
        .join(format!("{}.diff", w.target.artifact));
    let text: String = diffs.iter().map(|d| d.full.as_str()).collect();
    crate::files::write_atomically(&path, text.as_bytes()).ok()?;
    Some(path)
}
