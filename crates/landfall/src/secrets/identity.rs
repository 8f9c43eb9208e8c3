//! The user's identity, which decrypts secrets: the file
//! `$LANDFALL_AGE_IDENTITY`, or `~/.ssh/id_ed25519` and `~/.ssh/id_rsa`,
//! read as an age identity file or an unencrypted OpenSSH key, within a
//! bound, and described for messages by its public keys.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::recipients::ssh_tag;
use crate::error::{Error, Result};

/// The variable naming an age identity file (x25519 keys, or an OpenSSH
/// private key).
pub const IDENTITY_VAR: &str = "LANDFALL_AGE_IDENTITY";

/// Identities to decrypt with, and how to name them in messages.
pub struct Identities {
    /// Where they came from, e.g. "`~/.ssh/id_ed25519` (ssh key)".
    pub description: String,
    pub(super) identities: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// The user's identity: the file `$LANDFALL_AGE_IDENTITY`, or failing that
/// `~/.ssh/id_ed25519` and `~/.ssh/id_rsa`.
pub fn identities() -> Result<Identities> {
    if let Some(path) = std::env::var_os(IDENTITY_VAR).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return identity_file(
            &path,
            &format!("`{}` (from {IDENTITY_VAR})", path.display()),
        );
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates: Vec<PathBuf> = home
        .iter()
        .flat_map(|h| ["id_ed25519", "id_rsa"].map(|k| h.join(".ssh").join(k)))
        .filter(|p| p.is_file())
        .collect();
    if candidates.is_empty() {
        return Err(Error::Usage(format!(
            "no identity to decrypt secrets with: set {IDENTITY_VAR} to an age identity file \
             or an OpenSSH private key, or create `~/.ssh/id_ed25519`"
        )));
    }
    let mut all = Identities {
        description: String::new(),
        identities: Vec::new(),
    };
    let mut names = Vec::new();
    for path in &candidates {
        let one = identity_file(path, &format!("`{}`", path.display()))?;
        names.push(one.description);
        all.identities.extend(one.identities);
    }
    all.description = names.join(" and ");
    Ok(all)
}

/// The most an identity file may hold: keys are a few kilobytes.
const IDENTITY_MAX: u64 = 1024 * 1024;

/// Reads an identity file: a regular file (not a device or a FIFO, which
/// could be read forever) of at most [`IDENTITY_MAX`] bytes.
fn read_identity(path: &Path, name: &str) -> Result<String> {
    use std::io::Read as _;
    let cannot =
        |e: &dyn std::fmt::Display| Error::Usage(format!("cannot read the identity {name}: {e}"));
    let meta = std::fs::metadata(path).map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(cannot(&"it is not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| cannot(&e))?
        .take(IDENTITY_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| cannot(&e))?;
    if text.len() as u64 > IDENTITY_MAX {
        return Err(cannot(&format!(
            "it is larger than {IDENTITY_MAX} bytes, which no key is"
        )));
    }
    Ok(text)
}

fn identity_file(path: &Path, name: &str) -> Result<Identities> {
    let text = read_identity(path, name)?;
    if text.contains("-----BEGIN") {
        let identity = age::ssh::Identity::from_buffer(text.as_bytes(), None)
            .map_err(|e| Error::Usage(format!("the identity {name} is not a usable key: {e}")))?;
        return match identity {
            age::ssh::Identity::Unencrypted(_) => Ok(Identities {
                description: format!("{name} (ssh key{})", public_key_note(path)),
                identities: vec![Box::new(identity)],
            }),
            age::ssh::Identity::Encrypted(_) => Err(Error::Usage(format!(
                "the ssh key {name} is protected by a passphrase, which landfall does not ask \
                 for: point {IDENTITY_VAR} at an age identity file or an unencrypted key"
            ))),
            age::ssh::Identity::Unsupported(_) => Err(Error::Usage(format!(
                "the ssh key {name} is of a kind age cannot decrypt with (use ssh-ed25519 or ssh-rsa)"
            ))),
        };
    }
    let file = age::IdentityFile::from_buffer(text.as_bytes()).map_err(|e| {
        Error::Usage(format!(
            "the identity {name} is not an age identity file: {e}"
        ))
    })?;
    let publics: Vec<String> = text
        .lines()
        .filter_map(|l| age::x25519::Identity::from_str(l.trim()).ok())
        .map(|i| i.to_public().to_string())
        .collect();
    let identities = file
        .into_identities()
        .map_err(|e| Error::Usage(format!("the identity {name} cannot be used: {e}")))?;
    if identities.is_empty() {
        return Err(Error::Usage(format!("the identity {name} holds no key")));
    }
    Ok(Identities {
        description: format!("{name} ({})", publics.join(", ")),
        identities,
    })
}

/// ", SHA tag XXXX" for an ssh key whose public half sits next to it.
fn public_key_note(private: &Path) -> String {
    let public = private.with_extension("pub");
    std::fs::read_to_string(public)
        .ok()
        .and_then(|text| ssh_tag(text.trim()))
        .map(|tag| format!(", tag {tag}"))
        .unwrap_or_default()
}
