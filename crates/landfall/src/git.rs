//! Facts about the workspace's git repository: the revision being deployed,
//! whether the tree is dirty, and the commit time that makes builds
//! reproducible.
//!
//! Each is read no sooner and no later than it is needed: [`HeadAhead`]
//! reads HEAD while `cargo metadata` runs, and [`Dirty`] runs `git status`
//! only for a release that records it. For git artifacts: the tree of a
//! directory of HEAD with the paths that have uncommitted changes
//! ([`tree_source`]), its listing ([`list_tree`]), and its blobs streamed
//! from one `git cat-file --batch` ([`read_blobs`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::process::{self, Cmd, ProcessError};

/// Used as `SOURCE_DATE_EPOCH` outside a git repository: 1980-01-01, the
/// earliest time a zip archive can hold.
const FALLBACK_EPOCH: i64 = 315_532_800;

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Revision {
    /// The HEAD commit, or `None` outside a git repository.
    pub commit: Option<String>,
    #[schemars(with = "bool")]
    pub dirty: Dirty,
    /// The HEAD commit's time, in seconds since the epoch.
    pub time: i64,
}

impl Revision {
    /// The revision as people read it: a short hash, `+dirty` when the tree
    /// has changes.
    pub fn describe(&self) -> Option<String> {
        Some(describe(self.commit.as_deref()?, self.dirty.get()))
    }
}

/// A commit as the log records it: its short id, `+dirty` when the tree
/// had uncommitted changes.
pub fn describe(commit: &str, dirty: bool) -> String {
    format!("{}{}", short(commit), if dirty { "+dirty" } else { "" })
}

/// A commit id as people read it: its first 12 hex digits.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Reads the revision of the repository containing `dir`; a directory
/// outside any repository has none.
pub fn revision(dir: &Path) -> Revision {
    // Both at once: `status` takes the longer, and does not depend on
    // `log`.
    let dirty = Dirty::background(dir);
    let head = head(dir);
    dirty.get();
    head.with_dirty(dirty)
}

/// Whether a working tree has changes: known, to be found out by a `git
/// status` when asked, or being found out by one in its own thread. That
/// may hash every changed file, and nothing needs the answer before a new
/// release records where it comes from, so a deploy of nothing new never
/// runs it.
#[derive(Clone)]
pub struct Dirty(Arc<DirtyState>);

struct DirtyState {
    pending: Mutex<Pending>,
    known: OnceLock<bool>,
}

enum Pending {
    /// Not asked yet: the repository's directory.
    Deferred(PathBuf),
    Running(std::thread::JoinHandle<bool>),
    Done,
}

impl Dirty {
    pub fn known(dirty: bool) -> Dirty {
        let known = OnceLock::new();
        let _ = known.set(dirty);
        Dirty(Arc::new(DirtyState {
            pending: Mutex::new(Pending::Done),
            known,
        }))
    }

    /// Starts finding out whether the tree of the repository containing
    /// `dir` is dirty.
    pub fn background(dir: &Path) -> Dirty {
        let dirty = Dirty::deferred(dir);
        dirty.prefetch();
        dirty
    }

    /// Whether the tree of the repository containing `dir` is dirty, found
    /// out when first asked (or [prefetched](Dirty::prefetch)).
    pub fn deferred(dir: &Path) -> Dirty {
        Dirty(Arc::new(DirtyState {
            pending: Mutex::new(Pending::Deferred(dir.to_path_buf())),
            known: OnceLock::new(),
        }))
    }

    /// Starts finding out in the background, if nobody has yet.
    pub fn prefetch(&self) {
        let mut pending = self.0.pending.lock().expect("no thread panics holding it");
        if let Pending::Deferred(dir) = &*pending {
            let dir = dir.clone();
            *pending = Pending::Running(std::thread::spawn(move || dirty(&dir)));
        }
    }

    /// Whether the tree is dirty, waiting for `git status` if need be.
    pub fn get(&self) -> bool {
        *self.0.known.get_or_init(|| {
            let pending = std::mem::replace(
                &mut *self.0.pending.lock().expect("no thread panics holding it"),
                Pending::Done,
            );
            match pending {
                Pending::Deferred(dir) => dirty(&dir),
                Pending::Running(status) => status.join().unwrap_or(false),
                Pending::Done => false,
            }
        })
    }
}

impl Default for Dirty {
    fn default() -> Dirty {
        Dirty::known(false)
    }
}

impl std::fmt::Debug for Dirty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.known.get() {
            Some(dirty) => dirty.fmt(f),
            None => f.write_str("(being read)"),
        }
    }
}

impl Serialize for Dirty {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(self.get())
    }
}

/// The HEAD commit and its time, read with one `git log`; whether the tree
/// is dirty is left to [`dirty`], which takes longer (it may hash changed
/// files), so that a caller can do something else meanwhile.
pub fn head(dir: &Path) -> Revision {
    let head = process::run(&git_in(dir).args(["log", "-1", "--format=%H %ct"]))
        .ok()
        .map(|o| o.stdout_text());
    let Some(head) = head else {
        return Revision {
            commit: None,
            dirty: Dirty::known(false),
            time: FALLBACK_EPOCH,
        };
    };
    let mut words = head.split_whitespace();
    let commit = words.next().map(str::to_string);
    let time = words
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(FALLBACK_EPOCH);
    Revision {
        commit,
        dirty: Dirty::known(false),
        time,
    }
}

/// HEAD read in the background from the directory cargo is asked about
/// the workspace in, before `cargo metadata` has said where the
/// workspace's root is: `git log` then runs while cargo does.
#[derive(Debug)]
pub struct HeadAhead {
    dir: Option<PathBuf>,
    read: std::thread::JoinHandle<Revision>,
}

impl HeadAhead {
    /// Starts reading the HEAD of the repository containing `dir`.
    pub fn start(dir: &Path) -> HeadAhead {
        let dir = dir.canonicalize().ok();
        let from = dir.clone().unwrap_or_default();
        HeadAhead {
            dir,
            read: std::thread::spawn(move || head(&from)),
        }
    }

    /// The revision of the workspace at `root`, with whether its tree is
    /// dirty found out when asked (see [`Dirty::deferred`]): the one read
    /// ahead if it was read from `root` itself, otherwise read now.
    pub fn of(self, root: &Path) -> Revision {
        let ahead = self.read.join().ok();
        let same = self.dir.is_some() && self.dir == root.canonicalize().ok();
        let head = match ahead {
            Some(head) if same => head,
            _ => head(root),
        };
        head.with_dirty(Dirty::deferred(root))
    }
}

/// Whether the working tree of the repository containing `dir` has
/// changes, untracked files included; not when there is no repository.
pub fn dirty(dir: &Path) -> bool {
    process::run(&git_in(dir).args(["status", "--porcelain", "--untracked-files=normal"]))
        .is_ok_and(|o| !o.stdout_text().trim().is_empty())
}

impl Revision {
    /// This revision, with the tree dirty or not; a directory outside any
    /// repository is never dirty.
    #[must_use]
    pub fn with_dirty(self, dirty: Dirty) -> Revision {
        Revision {
            dirty: if self.commit.is_some() {
                dirty
            } else {
                Dirty::known(false)
            },
            ..self
        }
    }
}

/// The tree a git artifact deploys: a directory of the HEAD commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSource {
    pub commit: String,
    /// The object id of the deployed directory's tree.
    pub tree: String,
    /// Paths under the directory with changes HEAD does not have
    /// (modified, staged, deleted or untracked), as `git status` shows them.
    pub dirty: Vec<String>,
}

/// One entry of a tree, from `git ls-tree -r`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Relative to the tree, `/`-separated.
    pub path: String,
    pub kind: TreeEntryKind,
    /// The blob's object id.
    pub oid: String,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeEntryKind {
    File {
        executable: bool,
    },
    Symlink,
    /// A submodule: a commit of another repository, which is not here.
    Submodule,
}

/// git in `dir`, for reading the repository here: past [`GIT_TIME`], a
/// git that waits (on another git's lock, on a file system that hangs) is
/// stopped and named.
fn git_in(dir: &Path) -> Cmd {
    Cmd::new("git").arg("-C").arg(dir).deadline(GIT_TIME)
}

/// The longest a read of the repository may take: `git status` of a large
/// tree hashes what changed, in seconds.
const GIT_TIME: std::time::Duration = std::time::Duration::from_secs(300);

/// Finds the tree of `subdir` (relative to `dir`, empty for `dir` itself)
/// in the HEAD commit of the repository holding `dir`.
pub fn tree_source(dir: &Path, subdir: &str) -> Result<TreeSource, String> {
    let run = |args: &[&str]| {
        process::run(&git_in(dir).args(args))
            .map(|o| o.stdout_text().trim_end_matches('\n').to_string())
    };
    let prefix = run(&["rev-parse", "--show-prefix"]).map_err(|_| {
        format!(
            "`{}` is not in a git repository (or git is not installed)",
            dir.display()
        )
    })?;
    let commit = run(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .map_err(|_| "the repository has no commit yet".to_string())?;
    let path = format!("{prefix}{subdir}");
    let path = path.trim_end_matches('/');
    let not_a_directory = || {
        format!(
            "`{}` is not a directory in HEAD ({})",
            if subdir.is_empty() { "." } else { subdir },
            short(&commit)
        )
    };
    // After `:` everything is a path, so the type is checked apart.
    let tree = run(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{commit}:{path}"),
    ])
    .map_err(|_| not_a_directory())?;
    if run(&["cat-file", "-t", &tree]).ok().as_deref() != Some("tree") {
        return Err(not_a_directory());
    }
    let status = process::run(&git_in(dir).args([
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=normal",
        "--",
        if subdir.is_empty() { "." } else { subdir },
    ]))
    .map_err(|err| format!("cannot read the state of the tree: {err}"))?;
    Ok(TreeSource {
        commit,
        tree,
        dirty: parse_status(&status.stdout),
    })
}

/// The paths of `git status --porcelain=v1 -z`: `XY PATH`, with the
/// original path of a rename or copy as an extra field.
fn parse_status(out: &[u8]) -> Vec<String> {
    let mut paths = Vec::new();
    let mut fields = out.split(|&b| b == 0).filter(|f| !f.is_empty());
    while let Some(field) = fields.next() {
        if field.len() < 4 {
            continue;
        }
        paths.push(String::from_utf8_lossy(&field[3..]).into_owned());
        if matches!(field[0], b'R' | b'C') {
            fields.next();
        }
    }
    paths
}

/// Whether HEAD is on `branch`: checked out, or detached at the commit the
/// branch (or its remote-tracking branch, as CI checkouts have it) points
/// at.
pub fn on_branch(dir: &Path, branch: &str) -> bool {
    let run = |args: &[&str]| {
        process::run(&git_in(dir).args(args))
            .ok()
            .map(|o| o.stdout_text().trim().to_string())
    };
    if let Some(current) = run(&["symbolic-ref", "--quiet", "--short", "HEAD"]) {
        return current == branch;
    }
    let head = run(&["rev-parse", "--verify", "--quiet", "HEAD"]);
    head.is_some()
        && [
            format!("refs/heads/{branch}"),
            format!("refs/remotes/origin/{branch}"),
        ]
        .iter()
        .any(|r| run(&["rev-parse", "--verify", "--quiet", r]) == head)
}

/// The branch checked out, if HEAD is on one.
pub fn branch(dir: &Path) -> Option<String> {
    process::run(&git_in(dir).args(["symbolic-ref", "--quiet", "--short", "HEAD"]))
        .ok()
        .map(|o| o.stdout_text().trim().to_string())
}

/// The commit a ref (`v1.4.0`, `HEAD~1`, a branch) names in the
/// repository holding `dir`, if it names one.
pub fn commit_of(dir: &Path, name: &str) -> Option<String> {
    // `--end-of-options`: a name is never taken for an option.
    let spec = format!("{name}^{{commit}}");
    process::run(&git_in(dir).args([
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &spec,
    ]))
    .ok()
    .map(|o| o.stdout_text().trim().to_string())
    .filter(|c| !c.is_empty())
}

/// The repository holding `dir` has this commit.
pub fn has_commit(dir: &Path, commit: &str) -> bool {
    process::run(&git_in(dir).args(["cat-file", "-e", &format!("{commit}^{{commit}}")])).is_ok()
}

/// Lists every entry of a tree, recursively.
pub fn list_tree(dir: &Path, tree: &str) -> Result<Vec<TreeEntry>, ProcessError> {
    let output = process::run(&git_in(dir).args(["ls-tree", "-r", "-l", "-z", tree]))?;
    Ok(parse_ls_tree(&output.stdout))
}

/// Parses `git ls-tree -r -l -z`: `MODE TYPE OID SIZE\tPATH` records.
fn parse_ls_tree(out: &[u8]) -> Vec<TreeEntry> {
    out.split(|&b| b == 0)
        .filter_map(|record| {
            let record = std::str::from_utf8(record).ok()?;
            let (meta, path) = record.split_once('\t')?;
            let mut words = meta.split_whitespace();
            let (mode, _kind, oid, size) =
                (words.next()?, words.next()?, words.next()?, words.next()?);
            let kind = match mode {
                "100755" => TreeEntryKind::File { executable: true },
                "120000" => TreeEntryKind::Symlink,
                "160000" => TreeEntryKind::Submodule,
                _ => TreeEntryKind::File { executable: false },
            };
            Some(TreeEntry {
                path: path.to_string(),
                kind,
                oid: oid.to_string(),
                size: size.parse().unwrap_or(0),
            })
        })
        .collect()
}

/// Streams the contents of blobs, in the order given, to `each` (the index
/// in `oids`, the blob's size and a reader of exactly its bytes), with one
/// `git cat-file --batch`.
pub fn read_blobs(
    dir: &Path,
    oids: &[&str],
    mut each: impl FnMut(usize, u64, &mut dyn std::io::Read) -> std::io::Result<()>,
) -> Result<(), ProcessError> {
    use std::io::{BufRead, BufReader, Error, ErrorKind, Read};
    let mut input = oids.join("\n");
    input.push('\n');
    let cmd = git_in(dir).args(["cat-file", "--batch"]).input(input);
    process::read_stdout(&cmd, |stdout| {
        let mut reader = BufReader::with_capacity(1 << 16, stdout);
        let mut header = String::new();
        for (i, oid) in oids.iter().enumerate() {
            header.clear();
            reader.read_line(&mut header)?;
            // `OID TYPE SIZE`, or `OID missing`.
            let size = header
                .trim_end()
                .strip_prefix(*oid)
                .and_then(|rest| rest.rsplit(' ').next())
                .and_then(|size| size.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidData,
                        format!("object {oid}: {}", header.trim_end()),
                    )
                })?;
            let mut blob = (&mut reader).take(size);
            each(i, size, &mut blob)?;
            std::io::copy(&mut blob, &mut std::io::sink())?;
            let mut newline = [0u8; 1];
            reader.read_exact(&mut newline)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_paths_include_renames_once() {
        let out = b" M docs/a.html\0R  docs/new.txt\0docs/old.txt\0?? docs/untracked\0";
        assert_eq!(
            parse_status(out),
            ["docs/a.html", "docs/new.txt", "docs/untracked"]
        );
    }

    #[test]
    fn tree_listings_keep_odd_names_and_kinds() {
        let out = b"100644 blob aaaa     12\tpublic/a b.html\x00100755 blob bbbb    3\tbuild.sh\0\
                    120000 blob cccc    7\tlatest\x00160000 commit dddd       -\tvendor/lib\0";
        let entries = parse_ls_tree(out);
        let kinds: Vec<(&str, TreeEntryKind, u64)> = entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.size))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    "public/a b.html",
                    TreeEntryKind::File { executable: false },
                    12
                ),
                ("build.sh", TreeEntryKind::File { executable: true }, 3),
                ("latest", TreeEntryKind::Symlink, 7),
                ("vendor/lib", TreeEntryKind::Submodule, 0),
            ]
        );
        assert_eq!(entries[0].oid, "aaaa");
    }

    /// HEAD read ahead is the workspace's only if it was read from the
    /// workspace's root: from a repository nested inside it, it is read
    /// again.
    #[test]
    fn head_read_ahead_is_used_only_for_the_directory_it_was_read_from() {
        landfall_testbed::require("git");
        let dir = tempfile::tempdir().unwrap();
        let commit = |dir: &Path, time: &str| -> String {
            let git = |args: &[&str]| {
                let out = std::process::Command::new("git")
                    .arg("-C")
                    .arg(dir)
                    .args(args)
                    .env("GIT_AUTHOR_DATE", time)
                    .env("GIT_COMMITTER_DATE", time)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
                String::from_utf8(out.stdout).unwrap()
            };
            git(&["init", "-q"]);
            git(&[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "c",
            ]);
            git(&["rev-parse", "HEAD"]).trim().to_string()
        };
        let root = dir.path();
        let nested = root.join("nested");
        std::fs::create_dir(&nested).unwrap();
        let outer = commit(root, "@1700000000 +0000");
        let inner = commit(&nested, "@1800000000 +0000");
        let read = |from: &Path, root: &Path| {
            let revision = HeadAhead::start(from).of(root);
            (revision.commit.unwrap(), revision.time)
        };
        assert_eq!(read(root, root), (outer.clone(), 1_700_000_000));
        assert_eq!(read(&nested, root), (outer, 1_700_000_000));
        assert_eq!(read(&nested, &nested), (inner, 1_800_000_000));
    }
}
