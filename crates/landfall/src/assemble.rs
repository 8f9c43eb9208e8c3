//! Assembly: artifact trees, their canonical manifests and blake3 ids, the
//! local content-addressed store, and per-host release trees.
//!
//! An artifact tree (binaries, copied files, links to shared directories)
//! is the same for every host and lives in the store under its artifact id.
//! A release adds one host's rendered templates; its id covers the artifact
//! id and the rendered files, and its staged tree (hard links into the
//! store plus the rendered files) is what a transport copies to the host.
//!
//! Modes are normalised (0755 executables, 0644 others, or the declared
//! mode). Every file's mtime is derived from its content hash: fixed for
//! the same bytes on any machine, and different whenever the bytes differ,
//! so that a size-and-mtime comparison (rsync's quick check, or the local
//! transport's) never mistakes a changed file for an unchanged one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::{Artifact, Project};
use crate::error::{Error, Result};
use crate::hash::{HashCache, write_atomically};
use crate::plan::Target;

/// One entry of a release tree. Directories are implied by the paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Relative, `/`-separated.
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    File {
        mode: u32,
        size: u64,
        #[serde(serialize_with = "hex")]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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

/// The mtime a file with this content gets: seconds within 2^30 of
/// 2001-09-09 and nanoseconds, both taken from the hash.
pub fn content_mtime(hash: &blake3::Hash) -> SystemTime {
    let bytes = hash.as_bytes();
    let secs = 1_000_000_000
        + u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) >> 2);
    let nanos = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) % 1_000_000_000;
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// A relative link from `<path>/releases/<id>/<dir>` to `<path>/shared/<dir>`.
fn shared_link(dir: &str) -> String {
    let depth = dir.split('/').count() + 1;
    format!("{}shared/{dir}", "../".repeat(depth))
}

/// Paths of landfall's local state under `target/landfall/`.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn new(project: &Project) -> Store {
        Store {
            root: project.workspace.landfall_dir(),
        }
    }

    pub fn artifact_dir(&self, id: &str) -> PathBuf {
        self.root.join("store").join(id)
    }

    pub fn stage_dir(&self, release: &str) -> PathBuf {
        self.root.join("stage").join(release)
    }

    pub fn hash_cache(&self) -> PathBuf {
        self.root.join("hash-cache.json")
    }
}

/// An artifact tree in the store.
#[derive(Debug, Clone, Serialize)]
pub struct Assembled {
    pub artifact: String,
    /// The full blake3 hex of the manifest.
    pub id: String,
    #[serde(skip)]
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// True if the store already held this tree.
    pub reused: bool,
}

/// Hashes an artifact's inputs and makes sure its tree is in the store.
pub fn assemble(
    store: &Store,
    artifact: &Artifact,
    binaries: &BTreeMap<String, PathBuf>,
    cache: &mut HashCache,
) -> Result<Assembled> {
    let mut inputs: Vec<(String, PathBuf, Option<u32>)> = Vec::new();
    for bin in &artifact.bins {
        let path = binaries
            .get(&bin.name)
            .ok_or_else(|| Error::Failed(format!("binary `{}` was not built", bin.name)))?;
        inputs.push((format!("bin/{}", bin.name), path.clone(), Some(0o755)));
    }
    for file in &artifact.files {
        inputs.push((file.dst.clone(), file.src.clone(), file.mode));
    }
    let paths: Vec<&Path> = inputs.iter().map(|(_, src, _)| src.as_path()).collect();
    let facts = cache.hash_files(&paths)?;

    let mut entries = Vec::new();
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
        sources.insert(dst.clone(), src.clone());
    }
    for dir in &artifact.shared {
        entries.push(Entry {
            path: dir.clone(),
            kind: EntryKind::Symlink {
                target: shared_link(dir),
            },
        });
    }
    let manifest = Manifest::new(entries);
    let id = manifest.id().to_hex().to_string();
    let dir = store.artifact_dir(&id);
    let reused = dir.is_dir();
    if !reused {
        materialise(&dir, &manifest, |path, out| {
            let src = &sources[path];
            let mut input = fs::File::open(src).map_err(Error::io("cannot read", src))?;
            io::copy(&mut input, out).map_err(Error::io("cannot copy", src))?;
            Ok(())
        })?;
        write_atomically(
            &store.root.join("store").join(format!("{id}.manifest")),
            manifest.canonical().as_bytes(),
        )?;
    }
    Ok(Assembled {
        artifact: artifact.name.clone(),
        id,
        dir,
        manifest,
        reused,
    })
}

/// A release: an artifact with one host's rendered files, staged locally.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    /// The first 20 hex characters of the release hash.
    pub id: String,
    pub artifact: String,
    pub artifact_id: String,
    #[serde(skip)]
    pub stage: PathBuf,
    #[serde(skip)]
    pub manifest: Manifest,
    /// Some of its rendered files hold secrets: the staged copy is removed
    /// once the release is pushed.
    #[serde(skip)]
    pub secret: bool,
}

pub const RELEASE_ID_LEN: usize = 20;

/// The release id: blake3 of the artifact id and the rendered files.
pub fn release_id(artifact_id: &str, rendered: &Manifest) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"landfall-release-v1\n");
    hasher.update(artifact_id.as_bytes());
    hasher.update(b"\n");
    hasher.update(rendered.canonical().as_bytes());
    hasher.finalize().to_hex()[..RELEASE_ID_LEN].to_string()
}

/// Computes a target's release and stages its tree (hard links into the
/// store, plus the rendered files) unless it is staged already.
pub fn stage(store: &Store, assembled: &Assembled, target: &Target) -> Result<Release> {
    let rendered: Vec<Entry> = target
        .rendered
        .iter()
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
    let mut all = assembled.manifest.entries.clone();
    all.extend(rendered_manifest.entries);
    let manifest = Manifest::new(all);
    let dir = store.stage_dir(&id);
    if !dir.is_dir() {
        let contents: BTreeMap<&str, &[u8]> = target
            .rendered
            .iter()
            .map(|f| (f.dst.as_str(), f.contents.as_slice()))
            .collect();
        materialise_linked(&dir, &manifest, &assembled.dir, &contents)?;
    }
    Ok(Release {
        id,
        artifact: assembled.artifact.clone(),
        artifact_id: assembled.id.clone(),
        stage: dir,
        manifest,
        secret: target.rendered.iter().any(|f| f.secret),
    })
}

/// Builds a tree in `<dir>.partial` and renames it into place, writing each
/// file's bytes with `write`.
fn materialise(
    dir: &Path,
    manifest: &Manifest,
    mut write: impl FnMut(&str, &mut fs::File) -> Result<()>,
) -> Result<()> {
    let partial = partial_of(dir);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
    }
    fs::create_dir_all(&partial).map_err(Error::io("cannot create", &partial))?;
    for entry in &manifest.entries {
        let path = partial.join(&entry.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
        }
        match &entry.kind {
            EntryKind::File { mode, hash, .. } => {
                let mut out = fs::File::create(&path).map_err(Error::io("cannot create", &path))?;
                write(&entry.path, &mut out)?;
                finish_file(&out, &path, *mode, hash)?;
            }
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &path)
                    .map_err(Error::io("cannot create symlink", &path))?;
            }
        }
    }
    fs::rename(&partial, dir).map_err(Error::io("cannot rename", &partial))
}

/// Like [`materialise`], but files present in `linked_from` are hard links
/// and the others come from `contents`.
fn materialise_linked(
    dir: &Path,
    manifest: &Manifest,
    linked_from: &Path,
    contents: &BTreeMap<&str, &[u8]>,
) -> Result<()> {
    let partial = partial_of(dir);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
    }
    fs::create_dir_all(&partial).map_err(Error::io("cannot create", &partial))?;
    for entry in &manifest.entries {
        let path = partial.join(&entry.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
        }
        match (&entry.kind, contents.get(entry.path.as_str())) {
            (EntryKind::File { mode, hash, .. }, Some(bytes)) => {
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
                finish_file(&file, &path, *mode, hash)?;
            }
            (EntryKind::File { .. }, None) => {
                let source = linked_from.join(&entry.path);
                link_or_copy(&source, &path)?;
            }
            (EntryKind::Symlink { target }, _) => {
                std::os::unix::fs::symlink(target, &path)
                    .map_err(Error::io("cannot create symlink", &path))?;
            }
        }
    }
    fs::rename(&partial, dir).map_err(Error::io("cannot rename", &partial))
}

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
