//! Releases: an artifact with one host's rendered files. Its id, which
//! covers the artifact id and the release's own files; its stage, which
//! holds only those files and its manifest; the names landfall keeps for
//! itself in every release directory; and the provenance a host records
//! with it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use super::tree::{Source, link_or_copy, materialise_from};
use super::{Assembled, Entry, EntryKind, Manifest, Store};
use crate::error::{Error, Result};
use crate::plan::Target;

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
pub const RESERVED_FILES: [&str; 4] = [
    MANIFEST_FILE,
    crate::plan::ACTIVATION_FILE,
    PROVENANCE_FILE,
    crate::sbom::SBOM_FILE,
];

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
    let manifest = release_manifest(assembled, &rendered_manifest, target)?;
    let dir = store.stage_dir(&id);
    // A stage is complete once its manifest is written, which comes last.
    if !dir.join(MANIFEST_FILE).is_file() {
        write_stage(store, &id, &manifest, &rendered_manifest, target)?;
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

/// The whole release's manifest: the artifact's entries, with the rendered
/// files over them; refused if a path is both a directory and a file, or
/// if the artifact or a template writes a name landfall keeps.
fn release_manifest(
    assembled: &Assembled,
    rendered: &Manifest,
    target: &Target,
) -> Result<Manifest> {
    let mut all: Vec<Entry> = assembled
        .manifest
        .entries
        .iter()
        .filter(|e| !rendered.entries.iter().any(|r| r.path == e.path))
        .cloned()
        .collect();
    all.extend(rendered.entries.iter().cloned());
    let manifest = Manifest::new(all);
    if let Some((dir, inside)) = manifest.file_over_directory() {
        return Err(Error::Usage(format!(
            "artifact `{}` on `{}`: `{dir}` is a directory of the release and a file of it \
             (`{inside}` is inside it)",
            target.artifact, target.host
        )));
    }
    // An artifact with binaries has its bill of materials, which landfall
    // wrote; no other file of it may take a reserved name.
    let own = assembled
        .manifest
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .filter(|p| !(assembled.sbom && *p == crate::sbom::SBOM_FILE));
    let templates = target.rendered.iter().map(|f| f.dst.as_str());
    if let Some(path) = own.chain(templates).find(|p| reserved(p)) {
        return Err(Error::Usage(format!(
            "artifact `{}` has a file `{path}`, and that name is landfall's own in every release",
            target.artifact
        )));
    }
    Ok(manifest)
}

/// Writes the stage of the release `id`: its rendered files (`rendered`)
/// and its manifest, a copy of which is kept beside it.
fn write_stage(
    store: &Store,
    id: &str,
    manifest: &Manifest,
    rendered: &Manifest,
    target: &Target,
) -> Result<()> {
    let dir = store.stage_dir(id);
    let canonical = manifest.canonical();
    let mut contents: BTreeMap<&str, &[u8]> = target
        .release_files()
        .map(|f| (f.dst.as_str(), f.contents.as_slice()))
        .collect();
    contents.insert(MANIFEST_FILE, canonical.as_bytes());
    let mut own = rendered.entries.clone();
    own.push(manifest_entry(&canonical));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(Error::io("cannot remove", &dir))?;
    }
    materialise_from(&dir, &Manifest::new(own), |path| {
        Source::Bytes(contents[path])
    })?;
    // Kept beside the stage, which goes once a release with secrets is
    // pushed: a later push sends only what differs from it.
    let kept = store.release_manifest(id);
    let _ = fs::remove_file(&kept);
    link_or_copy(&dir.join(MANIFEST_FILE), &kept)
}

/// The entry of a release's own [`MANIFEST_FILE`], of `canonical`.
pub(super) fn manifest_entry(canonical: &str) -> Entry {
    Entry {
        path: MANIFEST_FILE.to_string(),
        kind: EntryKind::File {
            mode: 0o644,
            size: canonical.len() as u64,
            hash: blake3::hash(canonical.as_bytes()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::manifest::tests::file;

    #[test]
    fn the_bill_of_materials_is_a_name_landfall_keeps() {
        assert!(reserved(".landfall-sbom.cdx.json"));
        assert!(!reserved("etc/.landfall-sbom.cdx.json"));
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
}
