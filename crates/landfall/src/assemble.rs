//! Assembly: artifact trees, their canonical manifests and blake3 ids, the
//! local content-addressed store, and per-host release trees.
//!
//! An artifact tree (binaries, copied files, links to shared directories)
//! is the same for every host and lives in the store under its artifact id.
//! Its files are hard links to the store's objects, one per content and
//! mode, so that a new tree copies only the files that changed. A release
//! adds one host's rendered templates; its id covers the artifact id and
//! the rendered files. Its stage holds only what is its own: the rendered
//! files and its manifest ([`MANIFEST_FILE`]). A transport copies the
//! artifact tree and the stage, together, to the host; the manifest stays
//! in the release directory there, so that `--dry-run` can compare with it
//! and the next push sends it as a delta.
//!
//! Modes are normalised (0755 executables, 0644 others, or the declared
//! mode). Every file's mtime is derived from its content hash: fixed for
//! the same bytes on any machine, and different whenever the bytes differ,
//! so that a size-and-mtime comparison (rsync's quick check, or the local
//! transport's) never mistakes a changed file for an unchanged one.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::{Artifact, BinTarget, Project};
use crate::error::{Error, Result};
use crate::files::{self, write_atomically};
use crate::git::{self, TreeSource};
use crate::hash::HashCache;
use crate::plan::Target;

/// One entry of a release tree. Directories are implied by the paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Entry {
    /// Relative, `/`-separated.
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    File {
        mode: u32,
        size: u64,
        #[serde(serialize_with = "hex")]
        #[schemars(with = "String")]
        hash: blake3::Hash,
    },
    Symlink {
        target: String,
    },
}

fn hex<S: serde::Serializer>(hash: &blake3::Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(hash.to_hex().as_str())
}

/// A sorted list of entries, with a canonical text form that ids hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

impl Manifest {
    pub fn new(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { entries }
    }

    /// One line per entry: `file\tMODE\tSIZE\tBLAKE3\tPATH` or
    /// `symlink\tTARGET\tPATH`, sorted by path. Paths never hold tabs or
    /// newlines (the configuration check refuses them).
    pub fn canonical(&self) -> String {
        let mut text = String::from("landfall-manifest-v1\n");
        for entry in &self.entries {
            match &entry.kind {
                EntryKind::File { mode, size, hash } => {
                    writeln!(
                        text,
                        "file\t{mode:04o}\t{size}\t{}\t{}",
                        hash.to_hex(),
                        entry.path
                    )
                    .unwrap();
                }
                EntryKind::Symlink { target } => {
                    writeln!(text, "symlink\t{target}\t{}", entry.path).unwrap();
                }
            }
        }
        text
    }

    pub fn id(&self) -> blake3::Hash {
        blake3::hash(self.canonical().as_bytes())
    }

    /// Parses the canonical form back.
    pub fn parse(text: &str) -> Option<Manifest> {
        let mut lines = text.lines();
        if lines.next()? != "landfall-manifest-v1" {
            return None;
        }
        let entries = lines
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                match fields.as_slice() {
                    ["file", mode, size, hash, path] => Some(Entry {
                        path: (*path).to_string(),
                        kind: EntryKind::File {
                            mode: u32::from_str_radix(mode, 8).ok()?,
                            size: size.parse().ok()?,
                            hash: blake3::Hash::from_hex(hash).ok()?,
                        },
                    }),
                    ["symlink", target, path] => Some(Entry {
                        path: (*path).to_string(),
                        kind: EntryKind::Symlink {
                            target: (*target).to_string(),
                        },
                    }),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Manifest { entries })
    }

    /// A file or link whose path is also a directory of other entries: the
    /// first such path and an entry inside it.
    pub fn file_over_directory(&self) -> Option<(&str, &str)> {
        let mut paths: Vec<&str> = self.entries.iter().map(|e| e.path.as_str()).collect();
        paths.sort_unstable();
        // The first path from `path/` on, found by halving: inside `path`
        // if it starts so.
        let mut prefix = String::new();
        paths.iter().find_map(|path| {
            prefix.clear();
            prefix.push_str(path);
            prefix.push('/');
            let inside = *paths.get(paths.partition_point(|p| *p < prefix.as_str()))?;
            inside
                .starts_with(prefix.as_str())
                .then_some((*path, inside))
        })
    }

    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| {
                if let EntryKind::File { size, .. } = e.kind {
                    size
                } else {
                    0
                }
            })
            .sum()
    }
}

/// The mtime a file with this content gets: seconds within 2^28 of
/// 2001-09-09 and nanoseconds, both taken from the hash. So it is always
/// before 2010-03: a file of a release that is newer than the release was
/// changed after it was made (see `landfall_derive`).
pub fn content_mtime(hash: &blake3::Hash) -> SystemTime {
    let bytes = hash.as_bytes();
    let secs = 1_000_000_000
        + u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) >> 4);
    let nanos = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) % 1_000_000_000;
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// A relative link from `<path>/releases/<id>/<dir>` to `<path>/shared/<dir>`.
fn shared_link(dir: &str) -> String {
    let depth = dir.split('/').count() + 1;
    format!("{}shared/{dir}", "../".repeat(depth))
}

/// The layout of the store and the stage. 2: every file's mtime is before
/// 2010-03 (see [`content_mtime`]), and every directory's is 2001-09-09;
/// layout 1 spread files' to 2035, and gave directories the time they
/// were made.
const STORE_LAYOUT: &str = "2";

/// Paths of landfall's local state under `target/landfall/`.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    /// The store of `project`'s workspace, in landfall's own directory,
    /// which is made private (it holds rendered secrets while they are
    /// staged).
    pub fn open(project: &Project) -> Result<Store> {
        let root = project.workspace.landfall_dir();
        files::private_dir(&root)?;
        let store = Store { root };
        store.upgrade()?;
        Ok(store)
    }

    /// Empties a store of an earlier layout (see [`STORE_LAYOUT`]): all it
    /// holds is made again from the workspace.
    fn upgrade(&self) -> Result<()> {
        let layout = self.root.join("layout");
        if fs::read_to_string(&layout).is_ok_and(|l| l.trim() == STORE_LAYOUT) {
            return Ok(());
        }
        for name in ["store", "stage"] {
            let dir = self.root.join(name);
            if !dir.exists() {
                continue;
            }
            // Out of the way at once, so that no run finds it half gone.
            let old = self.root.join(format!("{name}.old.{}", std::process::id()));
            fs::rename(&dir, &old).map_err(Error::io("cannot rename", &dir))?;
            fs::remove_dir_all(&old).map_err(Error::io("cannot remove", &old))?;
        }
        write_atomically(&layout, format!("{STORE_LAYOUT}\n").as_bytes())
    }

    pub fn artifact_dir(&self, id: &str) -> PathBuf {
        self.root.join("store").join(id)
    }

    pub fn stage_dir(&self, release: &str) -> PathBuf {
        self.root.join("stage").join(release)
    }

    /// The manifest of a release staged here, kept after its stage goes.
    pub fn release_manifest(&self, release: &str) -> PathBuf {
        self.root.join("stage").join(format!("{release}.manifest"))
    }

    /// Where the files a release adds to another are gathered for one
    /// push: a directory of its own, since hosts are pushed to at once.
    fn delta_dir(&self, release: &str, from: &str) -> PathBuf {
        static PUSHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = PUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root
            .join("delta")
            .join(format!("{release}-{from}.{}.{n}", std::process::id()))
    }

    pub fn hash_cache(&self) -> PathBuf {
        self.root.join("hash-cache")
    }

    /// The object holding `from`'s content with `mode`, copied into the
    /// store unless it is there already. The copy is hashed as it is made,
    /// so that a file changed since it was hashed never enters the store
    /// under the wrong name.
    fn object(&self, from: &Path, mode: u32, hash: &blake3::Hash) -> Result<PathBuf> {
        let path = self.object_path(mode, hash);
        if path.is_file() {
            return Ok(path);
        }
        let dir = path.parent().expect("objects are in a directory");
        files::create_dirs(dir)?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let mut input = fs::File::open(from).map_err(Error::io("cannot read", from))?;
        let mut output = fs::File::create(&tmp).map_err(Error::io("cannot create", &tmp))?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0; 1 << 16];
        loop {
            let n =
                io::Read::read(&mut input, &mut buffer).map_err(Error::io("cannot read", from))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            output
                .write_all(&buffer[..n])
                .map_err(Error::io("cannot write", &tmp))?;
        }
        if hasher.finalize() != *hash {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Failed(format!(
                "`{}` changed while it was being assembled; run the deploy again",
                from.display()
            )));
        }
        finish_file(&output, &tmp, mode, hash)?;
        fs::rename(&tmp, &path).map_err(Error::io("cannot rename", &tmp))?;
        Ok(path)
    }

    fn object_path(&self, mode: u32, hash: &blake3::Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.root
            .join("store/objects")
            .join(&hex[..2])
            .join(format!("{}-{mode:o}", &hex[2..]))
    }

    /// Links `to` to the object holding `from`'s content with `mode`, made
    /// first if the store lacks it (see [`Store::object`]). Most objects
    /// are there already, so the link is tried first.
    fn link_object(&self, from: &Path, mode: u32, hash: &blake3::Hash, to: &Path) -> Result<()> {
        if fs::hard_link(self.object_path(mode, hash), to).is_ok() {
            return Ok(());
        }
        link_or_copy(&self.object(from, mode, hash)?, to)
    }
}

/// An artifact tree in the store.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Assembled {
    pub artifact: String,
    /// The full blake3 hex of the manifest.
    pub id: String,
    #[serde(skip)]
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// True if the store already held this tree.
    pub reused: bool,
    /// For a git artifact: the commit and tree it comes from, and which
    /// entries do not (`files` and shared links, added on the host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitTree>,
}

/// Where a git artifact's tree comes from.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GitTree {
    /// The local repository holding the commit.
    #[serde(skip)]
    pub repository: PathBuf,
    pub commit: String,
    pub tree: String,
    #[serde(skip)]
    pub added: BTreeSet<String>,
}

/// Hashes `paths` as assembling does, with the stat-keyed cache kept in
/// the file `cache`, and returns how many files had to be read (the
/// others were known to the cache, unchanged).
pub fn hash_files(cache: &Path, paths: &[&Path]) -> Result<usize> {
    let mut hashes = HashCache::load(cache);
    hashes.hash_files(paths)?;
    hashes.save()?;
    Ok(hashes.files_read)
}

/// An artifact's own files (its `files`, less those a template replaces),
/// hashed. They do not depend on the build, so they are hashed while cargo
/// builds, and only the binaries wait for it.
#[derive(Debug)]
pub(crate) struct OwnFiles {
    entries: Vec<Entry>,
    sources: BTreeMap<String, PathBuf>,
}

/// Hashes an artifact's own files (see [`OwnFiles`]).
pub(crate) fn hash_own_files(artifact: &Artifact, cache: &mut HashCache) -> Result<OwnFiles> {
    // A file that a template replaces is not part of the artifact: the
    // release has the rendered one, and the artifact tree and a release's
    // own files never share a path.
    let inputs: Vec<(String, &Path, Option<u32>)> = artifact
        .files
        .iter()
        .filter(|f| !artifact.templates.iter().any(|t| t.dst == f.dst))
        .map(|f| (f.dst.clone(), f.src.as_path(), f.mode))
        .collect();
    let (entries, sources) = hash_inputs(&inputs, cache)?;
    Ok(OwnFiles {
        entries,
        sources: sources
            .into_iter()
            .map(|(dst, src)| (dst, src.to_path_buf()))
            .collect(),
    })
}

/// Hashes an artifact's binaries and makes sure its tree, with its own
/// files hashed before, is in the store.
pub(crate) fn assemble(
    store: &Store,
    artifact: &Artifact,
    own: OwnFiles,
    binaries: &BTreeMap<BinTarget, PathBuf>,
    cache: &mut HashCache,
) -> Result<Assembled> {
    let mut inputs: Vec<(String, &Path, Option<u32>)> = Vec::new();
    for bin in &artifact.bins {
        let path = binaries
            .get(bin)
            .ok_or_else(|| Error::Failed(format!("binary `{}` was not built", bin.name)))?;
        inputs.push((format!("bin/{}", bin.name), path, Some(0o755)));
    }
    let (mut entries, bins) = hash_inputs(&inputs, cache)?;
    let OwnFiles {
        entries: own_entries,
        mut sources,
    } = own;
    entries.extend(own_entries);
    entries.extend(shared_links(artifact));
    sources.extend(bins.into_iter().map(|(dst, src)| (dst, src.to_path_buf())));
    let manifest = Manifest::new(entries);
    let (id, dir, reused) =
        store_artifact(store, &manifest, |path| Source::Copy(sources[path].clone()))?;
    Ok(Assembled {
        artifact: artifact.name.clone(),
        id,
        dir,
        manifest,
        reused,
        git: None,
    })
}

/// Hashes the files that go into an artifact (destination, source,
/// declared mode) into entries, with where each comes from.
fn hash_inputs<'a>(
    inputs: &[(String, &'a Path, Option<u32>)],
    cache: &mut HashCache,
) -> Result<(Vec<Entry>, BTreeMap<String, &'a Path>)> {
    let paths: Vec<&Path> = inputs.iter().map(|(_, src, _)| *src).collect();
    let facts = cache.hash_files(&paths)?;
    let mut entries = Vec::with_capacity(inputs.len());
    let mut sources = BTreeMap::new();
    for ((dst, src, mode), facts) in inputs.iter().zip(&facts) {
        let mode = mode.unwrap_or(if facts.executable { 0o755 } else { 0o644 });
        entries.push(Entry {
            path: dst.clone(),
            kind: EntryKind::File {
                mode,
                size: facts.size,
                hash: facts.hash,
            },
        });
        sources.insert(dst.clone(), *src);
    }
    Ok((entries, sources))
}

/// The links from a release to the artifact's shared directories.
fn shared_links(artifact: &Artifact) -> impl Iterator<Item = Entry> + '_ {
    artifact.shared.iter().map(|dir| Entry {
        path: dir.clone(),
        kind: EntryKind::Symlink {
            target: shared_link(dir),
        },
    })
}

/// Puts an artifact tree into the store under its id unless it is there
/// already; returns the id, the directory and whether it was there.
pub(crate) fn store_artifact<'a>(
    store: &Store,
    manifest: &Manifest,
    source: impl Fn(&str) -> Source<'a>,
) -> Result<(String, PathBuf, bool)> {
    let id = manifest.id().to_hex().to_string();
    let dir = store.artifact_dir(&id);
    let reused = dir.is_dir();
    if !reused {
        // Copied files are kept as objects, which the tree links to.
        materialise_from(&dir, manifest, |path| match source(path) {
            Source::Copy(from) => Source::Stored(store, from),
            other => other,
        })?;
        write_atomically(
            &store.root.join("store").join(format!("{id}.manifest")),
            manifest.canonical().as_bytes(),
        )?;
    }
    Ok((id, dir, reused))
}

/// Hashes a git artifact's inputs and makes sure its tree is in the store:
/// the files of `source`'s tree, with `files` on top (replacing files of
/// the same path) and links to shared directories.
///
/// The tree itself is read from git once per tree id, into
/// `store/git/<tree>/` with its manifest beside it; artifact trees link to
/// it.
pub(crate) fn assemble_git(
    store: &Store,
    artifact: &Artifact,
    repo: &Path,
    source: &TreeSource,
    cache: &mut HashCache,
) -> Result<Assembled> {
    let tree_dir = store.root.join("store").join("git").join(&source.tree);
    let tree_manifest = match read_manifest(&tree_dir) {
        Some(manifest) => manifest,
        None => store_tree(&tree_dir, repo, &source.tree).map_err(|err| match err {
            Error::Usage(message) => {
                Error::Usage(format!("artifact `{}`: {message}", artifact.name))
            }
            other => other,
        })?,
    };

    let inputs: Vec<(String, &Path, Option<u32>)> = artifact
        .files
        .iter()
        .map(|f| (f.dst.clone(), f.src.as_path(), f.mode))
        .collect();
    let (files, copies) = hash_inputs(&inputs, cache)?;
    let added: BTreeMap<String, Entry> = files
        .into_iter()
        .chain(shared_links(artifact))
        .map(|e| (e.path.clone(), e))
        .collect();
    let mut entries: Vec<Entry> = tree_manifest
        .entries
        .into_iter()
        .filter(|e| !added.contains_key(&e.path))
        .collect();
    entries.extend(added.values().cloned());
    let manifest = Manifest::new(entries);
    if let Some((dir, inside)) = manifest.file_over_directory() {
        let (what, name) = if added.contains_key(dir) {
            ("is added by `files` or `shared`", dir)
        } else {
            ("holds files", inside)
        };
        return Err(Error::Usage(format!(
            "artifact `{}`: `{dir}` is a directory of the repository's tree and a file or link \
             of the artifact (`{name}` {what})",
            artifact.name
        )));
    }
    let (id, dir, reused) = store_artifact(store, &manifest, |path| match copies.get(path) {
        Some(src) => Source::Copy(src.to_path_buf()),
        None => Source::Link(tree_dir.join(path)),
    })?;
    Ok(Assembled {
        artifact: artifact.name.clone(),
        id,
        dir,
        manifest,
        reused,
        git: Some(GitTree {
            repository: repo.to_path_buf(),
            commit: source.commit.clone(),
            tree: source.tree.clone(),
            added: added.into_keys().collect(),
        }),
    })
}

/// The manifest stored beside a tree of the store, if it is complete.
fn read_manifest(dir: &Path) -> Option<Manifest> {
    let text = fs::read_to_string(dir.with_extension("manifest")).ok()?;
    Manifest::parse(&text).filter(|_| dir.is_dir())
}

/// Reads a git tree into `dir` (files and symlinks, with normalised modes
/// and content-derived mtimes) and records its manifest beside it.
fn store_tree(dir: &Path, repo: &Path, tree: &str) -> Result<Manifest> {
    let listed = git::list_tree(repo, tree)?;
    if let Some(sub) = listed
        .iter()
        .find(|e| e.kind == git::TreeEntryKind::Submodule)
    {
        return Err(Error::Usage(format!(
            "`{}` is a submodule, and git artifacts deploy the tree of one repository",
            sub.path
        )));
    }
    // Manifests are tab-separated lines, and hosts get paths as shell words.
    if let Some(odd) = listed.iter().find(|e| e.path.chars().any(char::is_control)) {
        return Err(Error::Usage(format!(
            "`{}` has a control character (such as a tab or a newline) in its name",
            odd.path.escape_debug()
        )));
    }
    let partial = partial_of(dir);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
    }
    files::create_dirs(&partial)?;
    let oids: Vec<&str> = listed.iter().map(|e| e.oid.as_str()).collect();
    let mut entries = Vec::with_capacity(listed.len());
    let mut failure = None;
    git::read_blobs(repo, &oids, |i, _size, blob| {
        let entry = &listed[i];
        let path = partial.join(&entry.path);
        let result = write_blob(&path, entry, blob);
        match result {
            Ok(kind) => entries.push(Entry {
                path: entry.path.clone(),
                kind,
            }),
            Err(err) => {
                failure = Some(err);
                return Err(io::Error::other("stopped"));
            }
        }
        Ok(())
    })
    .map_err(|err| failure.take().unwrap_or(Error::Process(err)))?;
    if let Some(err) = failure {
        return Err(err);
    }
    let manifest = Manifest::new(entries);
    fs::rename(&partial, dir).map_err(Error::io("cannot rename", &partial))?;
    write_atomically(
        &dir.with_extension("manifest"),
        manifest.canonical().as_bytes(),
    )?;
    Ok(manifest)
}

/// Writes one blob of a tree: a file (hashed as it is written) or a
/// symlink (the blob is its target).
fn write_blob(path: &Path, entry: &git::TreeEntry, blob: &mut dyn io::Read) -> Result<EntryKind> {
    if let Some(parent) = path.parent() {
        files::create_dirs(parent)?;
    }
    match entry.kind {
        git::TreeEntryKind::Symlink => {
            let mut target = String::new();
            blob.read_to_string(&mut target)
                .map_err(Error::io("cannot read the link", path))?;
            std::os::unix::fs::symlink(&target, path)
                .map_err(Error::io("cannot create symlink", path))?;
            Ok(EntryKind::Symlink { target })
        }
        git::TreeEntryKind::File { executable } => {
            let mut file = fs::File::create(path).map_err(Error::io("cannot create", path))?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut size = 0u64;
            loop {
                let n = blob
                    .read(&mut buf)
                    .map_err(Error::io("cannot read", path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .map_err(Error::io("cannot write", path))?;
                size += n as u64;
            }
            let hash = hasher.finalize();
            let mode = if executable { 0o755 } else { 0o644 };
            finish_file(&file, path, mode, &hash)?;
            Ok(EntryKind::File { mode, size, hash })
        }
        git::TreeEntryKind::Submodule => unreachable!("submodules are refused before"),
    }
}

/// A release: an artifact with one host's rendered files, staged locally.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Release {
    /// The first 20 hex characters of the release hash.
    pub id: String,
    pub artifact: String,
    pub artifact_id: String,
    /// The artifact's tree in the store.
    #[serde(skip)]
    pub tree: PathBuf,
    /// The release's own files: rendered files and [`MANIFEST_FILE`].
    #[serde(skip)]
    pub stage: PathBuf,
    /// The paths of the rendered files.
    #[serde(skip)]
    pub rendered: BTreeSet<String>,
    #[serde(skip)]
    pub manifest: Manifest,
    /// Some of its rendered files hold secrets: the staged copy is removed
    /// once the release is pushed.
    #[serde(skip)]
    pub secret: bool,
    /// For a git artifact: the commit pushed, the tree checked out, and
    /// what is added on top.
    #[serde(skip)]
    pub git: Option<GitRelease>,
    /// The store it was staged in.
    #[serde(skip)]
    pub store: Store,
}

/// How a git release is made on the host.
#[derive(Debug, Clone)]
pub struct GitRelease {
    /// The local repository holding the commit.
    pub repository: PathBuf,
    pub commit: String,
    pub tree: String,
    /// Entries that do not come from the tree (`files`, rendered files,
    /// shared links), written over the checkout.
    pub added: Vec<Entry>,
}

pub const RELEASE_ID_LEN: usize = 20;

/// The file in every release directory that holds its canonical manifest.
pub const MANIFEST_FILE: &str = ".landfall-manifest";

impl Release {
    /// Where the release's file at `path` is on this machine.
    pub fn local_path(&self, path: &str) -> PathBuf {
        if self.rendered.contains(path) {
            self.stage.join(path)
        } else {
            self.tree.join(path)
        }
    }
}

/// The file a host writes into a release directory when the release is
/// complete: where it comes from (see [`Provenance`]). It is not one of the
/// release's files, and the release id does not cover it.
pub const PROVENANCE_FILE: &str = ".landfall-release";

/// The names landfall keeps for itself in every release directory.
pub const RESERVED_FILES: [&str; 3] =
    [MANIFEST_FILE, crate::plan::ACTIVATION_FILE, PROVENANCE_FILE];

/// Whether a path of a release is landfall's own: one of
/// [`RESERVED_FILES`], or in the service's directory.
pub fn reserved(path: &str) -> bool {
    RESERVED_FILES.contains(&path)
        || path == crate::service::SERVICE_DIR
        || path
            .strip_prefix(crate::service::SERVICE_DIR)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Where a release comes from, recorded with it on the host the first time
/// it is made there (`.landfall-release`), and shown by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Provenance {
    /// The commit of the workspace (or of the bundle) it was built from.
    pub revision: Option<String>,
    /// The working tree had uncommitted changes.
    pub dirty: bool,
    /// The bundle it was promoted from: the directory `--from` named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Every `--var KEY=VALUE` given, as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Who made it, and on which machine.
    pub user: String,
    pub from: String,
    /// When it was made.
    pub time: String,
    /// The version of landfall that made it.
    pub landfall: String,
}

/// The release id: blake3 of the artifact id and the release's own files
/// (the host's rendered files and its activation: hooks, time limits and
/// the variables hooks get), so that a change to any of them is a new
/// release.
pub fn release_id(artifact_id: &str, rendered: &Manifest) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"landfall-release-v2\n");
    hasher.update(artifact_id.as_bytes());
    hasher.update(b"\n");
    hasher.update(rendered.canonical().as_bytes());
    hasher.finalize().to_hex()[..RELEASE_ID_LEN].to_string()
}

/// Computes a target's release and stages its tree (hard links into the
/// store, plus the rendered files) unless it is staged already.
pub fn stage(store: &Store, assembled: &Assembled, target: &Target) -> Result<Release> {
    let rendered: Vec<Entry> = target
        .release_files()
        .map(|file| Entry {
            path: file.dst.clone(),
            kind: EntryKind::File {
                mode: file.mode,
                size: file.contents.len() as u64,
                hash: blake3::hash(&file.contents),
            },
        })
        .collect();
    let rendered_manifest = Manifest::new(rendered);
    let id = release_id(&assembled.id, &rendered_manifest);
    let git = assembled.git.as_ref().map(|tree| GitRelease {
        repository: tree.repository.clone(),
        commit: tree.commit.clone(),
        tree: tree.tree.clone(),
        added: assembled
            .manifest
            .entries
            .iter()
            .filter(|e| tree.added.contains(&e.path))
            .chain(&rendered_manifest.entries)
            .cloned()
            .collect(),
    });
    let mut all: Vec<Entry> = assembled
        .manifest
        .entries
        .iter()
        .filter(|e| !rendered_manifest.entries.iter().any(|r| r.path == e.path))
        .cloned()
        .collect();
    all.extend(rendered_manifest.entries.iter().cloned());
    let manifest = Manifest::new(all);
    if let Some((dir, inside)) = manifest.file_over_directory() {
        return Err(Error::Usage(format!(
            "artifact `{}` on `{}`: `{dir}` is a directory of the release and a file of it \
             (`{inside}` is inside it)",
            target.artifact, target.host
        )));
    }
    let own = assembled.manifest.entries.iter().map(|e| e.path.as_str());
    let templates = target.rendered.iter().map(|f| f.dst.as_str());
    if let Some(path) = own.chain(templates).find(|p| reserved(p)) {
        return Err(Error::Usage(format!(
            "artifact `{}` has a file `{path}`, and that name is landfall's own in every release",
            target.artifact
        )));
    }
    let dir = store.stage_dir(&id);
    // A stage is complete once its manifest is written, which comes last.
    if !dir.join(MANIFEST_FILE).is_file() {
        let canonical = manifest.canonical();
        let mut contents: BTreeMap<&str, &[u8]> = target
            .release_files()
            .map(|f| (f.dst.as_str(), f.contents.as_slice()))
            .collect();
        contents.insert(MANIFEST_FILE, canonical.as_bytes());
        let mut own = rendered_manifest.entries.clone();
        own.push(manifest_entry(&canonical));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(Error::io("cannot remove", &dir))?;
        }
        materialise_from(&dir, &Manifest::new(own), |path| {
            Source::Bytes(contents[path])
        })?;
        // Kept beside the stage, which goes once a release with secrets is
        // pushed: a later push sends only what differs from it.
        let kept = store.release_manifest(&id);
        let _ = fs::remove_file(&kept);
        link_or_copy(&dir.join(MANIFEST_FILE), &kept)?;
    }
    let secret = target.release_files().any(|f| f.secret);
    if secret {
        crate::interrupt::staged_secrets(&dir);
    }
    Ok(Release {
        id,
        artifact: assembled.artifact.clone(),
        artifact_id: assembled.id.clone(),
        tree: assembled.dir.clone(),
        stage: dir,
        rendered: target.release_files().map(|f| f.dst.clone()).collect(),
        manifest,
        secret,
        git,
        store: store.clone(),
    })
}

/// The entry of a release's own [`MANIFEST_FILE`], of `canonical`.
fn manifest_entry(canonical: &str) -> Entry {
    Entry {
        path: MANIFEST_FILE.to_string(),
        kind: EntryKind::File {
            mode: 0o644,
            size: canonical.len() as u64,
            hash: blake3::hash(canonical.as_bytes()),
        },
    }
}

/// What a release adds to another release of its artifact that a host
/// holds: a push that starts from a copy of that release (as hard links,
/// `landfall_derive`) sends only this.
#[derive(Debug)]
pub struct Delta {
    /// The release on the host the upload starts as a copy of.
    pub from: String,
    /// How many entries the directory of `from` has at its top on a host:
    /// its files and directories, then its manifest and its provenance.
    pub top: usize,
    /// The files new or changed since `from`, and the release's manifest.
    changed: Manifest,
    /// Every path of `changed`: what the push sends.
    pub paths: Vec<String>,
    /// Every path of `from` the release lacks (files, links and
    /// directories) whose directory it keeps: the host removes each from
    /// its copy of `from`, with what is in it, before the push
    /// (`landfall_derive`).
    pub gone: Vec<String>,
}

impl Delta {
    /// What `release` adds to `from`, or `None` when that cannot be said:
    /// a git release, `from`'s manifest not kept here, or a path that is a
    /// directory in one and a file or link in the other.
    pub fn between(release: &Release, from: &str) -> Option<Delta> {
        if release.git.is_some() || from == release.id {
            return None;
        }
        let text = fs::read_to_string(release.store.release_manifest(from)).ok()?;
        let old = Manifest::parse(&text)?;
        let new = &release.manifest;
        let old_dirs = directories(&old);
        let new_dirs = directories(new);
        let conflict = new
            .entries
            .iter()
            .any(|e| old_dirs.contains(e.path.as_str()))
            || old
                .entries
                .iter()
                .any(|e| new_dirs.contains(e.path.as_str()));
        if conflict {
            return None;
        }
        let before: BTreeMap<&str, &EntryKind> = old
            .entries
            .iter()
            .map(|e| (e.path.as_str(), &e.kind))
            .collect();
        let mut changed: Vec<Entry> = new
            .entries
            .iter()
            .filter(|e| before.get(e.path.as_str()) != Some(&&e.kind))
            .cloned()
            .collect();
        changed.push(manifest_entry(&new.canonical()));
        let changed = Manifest::new(changed);
        let kept: HashSet<&str> = new.entries.iter().map(|e| e.path.as_str()).collect();
        let paths: Vec<String> = changed.entries.iter().map(|e| e.path.clone()).collect();
        // What goes, named where its directory stays: a directory that goes
        // takes what is in it.
        let parent_stays = |path: &&str| {
            path.rsplit_once('/')
                .is_none_or(|(dir, _)| new_dirs.contains(dir))
        };
        let gone = old
            .entries
            .iter()
            .map(|e| e.path.as_str())
            .filter(|p| !kept.contains(p))
            .chain(old_dirs.difference(&new_dirs).copied())
            .filter(parent_stays)
            .map(str::to_string)
            .collect();
        let top: HashSet<&str> = old
            .entries
            .iter()
            .map(|e| e.path.split('/').next().unwrap_or_default())
            .collect();
        Some(Delta {
            from: from.to_string(),
            top: top.len() + [MANIFEST_FILE, PROVENANCE_FILE].len(),
            changed,
            paths,
            gone,
        })
    }

    /// Gathers the files of the delta, at their paths, for one push of
    /// `release`: removed again when the push is done with them.
    pub fn gather(&self, release: &Release) -> Result<Gathered<'_>> {
        let dir = release.store.delta_dir(&release.id, &self.from);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(Error::io("cannot remove", &dir))?;
        }
        if release.secret {
            crate::interrupt::staged_secrets(&dir);
        }
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(".list");
        let gathered = Gathered {
            delta: self,
            list: dir.with_file_name(name),
            dir,
        };
        materialise_from(&gathered.dir, &self.changed, |path| {
            if path == MANIFEST_FILE {
                Source::Link(release.stage.join(MANIFEST_FILE))
            } else {
                Source::Link(release.local_path(path))
            }
        })?;
        let nul_ended: String = self.paths.iter().flat_map(|p| [p.as_str(), "\0"]).collect();
        write_atomically(&gathered.list, nul_ended.as_bytes())?;
        Ok(gathered)
    }
}

/// The files of a [`Delta`] gathered for a push, removed when dropped.
#[derive(Debug)]
pub struct Gathered<'d> {
    pub delta: &'d Delta,
    /// The files new or changed, and the release's manifest, at their
    /// paths: what is sent.
    pub dir: PathBuf,
    /// The delta's paths, each ended by a NUL, as rsync's `--files-from
    /// --from0` reads them.
    pub list: PathBuf,
}

impl Drop for Gathered<'_> {
    fn drop(&mut self) {
        crate::interrupt::remove_staged(&self.dir);
        let _ = fs::remove_file(&self.list);
    }
}

/// Every directory the entries of `manifest` are in.
fn directories(manifest: &Manifest) -> BTreeSet<&str> {
    let mut dirs = BTreeSet::new();
    for entry in &manifest.entries {
        let mut path = entry.path.as_str();
        while let Some((dir, _)) = path.rsplit_once('/') {
            if !dirs.insert(dir) {
                break;
            }
            path = dir;
        }
    }
    dirs
}

/// Where [`materialise_from`] gets a file's bytes.
pub(crate) enum Source<'a> {
    /// A file of the store, already in its final form: hard-linked.
    Link(PathBuf),
    /// A file of the workspace or a bundle: copied, then given its mode and
    /// mtime.
    Copy(PathBuf),
    /// A file of the workspace kept as an object of the store (made from
    /// it if the store lacks it), which the tree links to.
    Stored(&'a Store, PathBuf),
    /// Rendered bytes, which may be secret: written to a private file.
    Bytes(&'a [u8]),
}

/// Builds a tree in `<dir>.partial`, each file from where `source` says,
/// and renames it into place.
pub(crate) fn materialise_from<'a>(
    dir: &Path,
    manifest: &Manifest,
    source: impl Fn(&str) -> Source<'a>,
) -> Result<()> {
    let partial = partial_of(dir);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
    }
    files::create_dirs(&partial)?;
    // Most files share their directory with others: each is made once.
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for entry in &manifest.entries {
        let path = partial.join(&entry.path);
        if let Some(parent) = path.parent()
            && !dirs.contains(parent)
        {
            files::create_dirs(parent)?;
            dirs.insert(parent.to_path_buf());
        }
        let (mode, hash) = match &entry.kind {
            EntryKind::File { mode, hash, .. } => (*mode, hash),
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &path)
                    .map_err(Error::io("cannot create symlink", &path))?;
                continue;
            }
        };
        match source(&entry.path) {
            Source::Link(from) => link_or_copy(&from, &path)?,
            Source::Stored(store, from) => store.link_object(&from, mode, hash, &path)?,
            Source::Copy(from) => {
                fs::copy(&from, &path).map_err(Error::io("cannot copy", &from))?;
                let file = fs::File::options()
                    .write(true)
                    .open(&path)
                    .map_err(Error::io("cannot open", &path))?;
                finish_file(&file, &path, mode, hash)?;
            }
            Source::Bytes(bytes) => {
                // Private from the start: a rendered file may hold secrets,
                // and its final mode is set only once it is complete.
                let mut file = fs::File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(Error::io("cannot create", &path))?;
                file.write_all(bytes)
                    .map_err(Error::io("cannot write", &path))?;
                finish_file(&file, &path, mode, hash)?;
            }
        }
    }
    // Every directory gets the same mtime, before any release: a copy
    // keeps it (rsync `--times`), so that nothing in a release is newer
    // than the release unless it was changed on the host, whatever this
    // machine's clock says (see `landfall_derive`).
    let mut all: HashSet<&Path> = HashSet::new();
    for dir in &dirs {
        let mut dir = dir.as_path();
        while dir.starts_with(&partial) && all.insert(dir) {
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
    }
    all.insert(&partial);
    for dir in all {
        fs::File::open(dir)
            .and_then(|d| d.set_modified(UNIX_EPOCH + Duration::from_secs(DIRECTORY_MTIME)))
            .map_err(Error::io("cannot set the time of", dir))?;
    }
    fs::rename(&partial, dir).map_err(Error::io("cannot rename", &partial))
}

/// The mtime of every directory landfall makes a tree of, as seconds since
/// the epoch: 2001-09-09, the earliest of [`content_mtime`]'s.
const DIRECTORY_MTIME: u64 = 1_000_000_000;

fn partial_of(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dir.with_file_name(name)
}

/// Sets a file's content-derived mtime and its mode.
pub(crate) fn finish_file(
    file: &fs::File,
    path: &Path,
    mode: u32,
    hash: &blake3::Hash,
) -> Result<()> {
    let mtime = content_mtime(hash);
    file.set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime))
        .map_err(Error::io("cannot set the time of", path))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io("cannot set the mode of", path))
}

/// Hard-links a file, or copies it (with its mode and mtime) where a link is
/// impossible, such as across file systems.
pub(crate) fn link_or_copy(source: &Path, dest: &Path) -> Result<()> {
    if fs::hard_link(source, dest).is_ok() {
        return Ok(());
    }
    copy_file(source, dest)
}

/// Copies a file with its mode and mtime.
pub(crate) fn copy_file(source: &Path, dest: &Path) -> Result<()> {
    fs::copy(source, dest).map_err(Error::io("cannot copy", source))?;
    let meta = fs::metadata(source).map_err(Error::io("cannot read", source))?;
    let file = fs::File::options()
        .write(true)
        .open(dest)
        .map_err(Error::io("cannot open", dest))?;
    file.set_modified(meta.modified().map_err(Error::io("cannot read", source))?)
        .map_err(Error::io("cannot set the time of", dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8], mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                mode,
                size: content.len() as u64,
                hash: blake3::hash(content),
            },
        }
    }

    #[test]
    fn manifest_is_sorted_and_round_trips() {
        let manifest = Manifest::new(vec![
            file("static/index.html", b"<h1>", 0o644),
            file("bin/hello", b"\x7fELF", 0o755),
            Entry {
                path: "log".into(),
                kind: EntryKind::Symlink {
                    target: shared_link("log"),
                },
            },
        ]);
        let text = manifest.canonical();
        let paths: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.rsplit('\t').next().unwrap())
            .collect();
        assert_eq!(paths, ["bin/hello", "log", "static/index.html"]);
        assert!(text.contains("symlink\t../../shared/log\tlog"), "{text}");
        assert_eq!(Manifest::parse(&text), Some(manifest));
    }

    #[test]
    fn ids_depend_on_content_mode_and_path_only() {
        let a = Manifest::new(vec![file("a", b"1", 0o644), file("b", b"2", 0o644)]);
        let same = Manifest::new(vec![file("b", b"2", 0o644), file("a", b"1", 0o644)]);
        assert_eq!(a.id(), same.id(), "order of listing does not matter");
        assert_ne!(
            a.id(),
            Manifest::new(vec![file("a", b"1", 0o755), file("b", b"2", 0o644)]).id()
        );
        assert_ne!(
            a.id(),
            Manifest::new(vec![file("a", b"1", 0o644), file("c", b"2", 0o644)]).id()
        );
        assert_ne!(
            a.id(),
            Manifest::new(vec![file("a", b"1", 0o644), file("b", b"3", 0o644)]).id()
        );
    }

    #[test]
    fn release_ids_cover_rendered_files() {
        let artifact = "ab".repeat(32);
        let one = Manifest::new(vec![file("etc/app.toml", b"port = 1\n", 0o644)]);
        let two = Manifest::new(vec![file("etc/app.toml", b"port = 2\n", 0o644)]);
        assert_eq!(release_id(&artifact, &one).len(), RELEASE_ID_LEN);
        assert_eq!(release_id(&artifact, &one), release_id(&artifact, &one));
        assert_ne!(release_id(&artifact, &one), release_id(&artifact, &two));
        assert_ne!(
            release_id(&artifact, &one),
            release_id(&"cd".repeat(32), &one)
        );
    }

    #[test]
    fn a_file_over_a_directory_is_found() {
        let fine = Manifest::new(vec![file("a", b"", 0o644), file("a.txt", b"", 0o644)]);
        assert_eq!(fine.file_over_directory(), None);
        let clash = Manifest::new(vec![
            file("public", b"", 0o644),
            file("public.txt", b"", 0o644),
            file("public/index.html", b"", 0o644),
        ]);
        assert_eq!(
            clash.file_over_directory(),
            Some(("public", "public/index.html"))
        );
    }

    #[test]
    fn content_mtimes_are_fixed_and_differ_with_content() {
        assert_eq!(
            content_mtime(&blake3::hash(b"x")),
            content_mtime(&blake3::hash(b"x"))
        );
        assert_ne!(
            content_mtime(&blake3::hash(b"x")),
            content_mtime(&blake3::hash(b"y"))
        );
    }

    #[test]
    fn nested_shared_links_climb_out_of_the_release() {
        assert_eq!(shared_link("var/log"), "../../../shared/var/log");
    }
}
