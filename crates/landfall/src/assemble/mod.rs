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
//!
//! A module per part: `manifest` (entries, the canonical text and ids,
//! content-derived mtimes), `store` (the directories under
//! `target/landfall/` and the objects of the store), `tree` (a tree
//! written from a manifest, file by file, and the copies and links that
//! keep modes and mtimes), `artifact` (an artifact's files hashed and
//! its tree put into the store), `git_tree` (a git artifact: its tree
//! read from git once, with its `files` on top), `release` (a release's
//! id, its stage, its provenance and the names landfall keeps in it) and
//! `delta` (what a release adds to one a host holds, for a push that
//! sends only that).

mod artifact;
mod delta;
mod git_tree;
mod manifest;
mod release;
mod store;
mod tree;

pub use artifact::{Assembled, GitTree, hash_files};
pub(crate) use artifact::{OwnFiles, assemble, hash_own_files, store_artifact};
pub use delta::{Delta, Gathered};
pub(crate) use git_tree::assemble_git;
pub use manifest::{Entry, EntryKind, Manifest, content_mtime};
pub use release::{
    GitRelease, MANIFEST_FILE, PROVENANCE_FILE, Provenance, RELEASE_ID_LEN, RESERVED_FILES,
    Release, release_id, reserved, stage,
};
pub use store::Store;
pub(crate) use tree::{Source, copy_file, finish_file, link_or_copy, materialise_from};
