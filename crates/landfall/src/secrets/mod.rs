//! Secrets: `secrets/ENV.toml.age`, a TOML document encrypted with age to
//! the recipients an environment lists under `[secrets]`.
//!
//! This module owns the encrypted file: finding the user's identity
//! (`identity`), decrypting into memory and encrypting to the recipients
//! (`crypt`), reading the recipients a file was encrypted to from its
//! header ([`recipients`]), and the [`Mask`] that keeps secret values out
//! of everything landfall prints (`mask`, and `overrides` for the
//! `--var` values a release records). Here: [`Secrets`], what templates
//! see, and [`load`], which reads an environment's file and decrypts it.
//! It never writes plaintext to disk; editing through a temporary file is
//! the binary's business.

mod crypt;
mod identity;
mod mask;
mod overrides;
mod recipients;

use std::io;
use std::path::{Path, PathBuf};

use crypt::{Undecrypted, corrupt, try_decrypt};
pub use crypt::{decrypt, encrypt, parse, write_encrypted};
pub use identity::{IDENTITY_VAR, Identities, identities};
pub use mask::{MASK, MIN_MASKED_LEN, Mask, too_short_to_mask};
pub use overrides::{names_secret, shown_override};
pub use recipients::{
    Recipient, RecipientDrift, Stanza, abbreviate_key, drift, parse_recipient, recipients, ssh_tag,
    stanzas,
};

use crate::config::{Environment, Project};
use crate::error::{Error, Result};

/// The encrypted secrets of an environment, relative to the workspace root.
pub fn relative_path(env: &str) -> PathBuf {
    Path::new("secrets").join(format!("{env}.toml.age"))
}

/// The decrypted secrets of an environment, as templates see them.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// `None` renders every secret as [`MASK`] whatever its name: for
    /// commands that need the plan's shape but never its files' contents
    /// (status, rollback, exec), so that they need no identity.
    table: Option<toml::Table>,
    mask: Mask,
    /// Problems that do not stop a deploy, such as recipients added to the
    /// environment but not yet to the file.
    pub warnings: Vec<String>,
}

impl Secrets {
    /// No secrets: `secrets.x` is undefined in templates.
    pub fn none() -> Secrets {
        Secrets {
            table: Some(toml::Table::new()),
            ..Secrets::default()
        }
    }

    /// Every `secrets.…` renders as [`MASK`].
    pub fn placeholders() -> Secrets {
        Secrets::default()
    }

    pub fn from_table(table: toml::Table) -> Secrets {
        let mut mask = Mask::default();
        mask.add_table(&table);
        Secrets {
            table: Some(table),
            mask,
            warnings: Vec::new(),
        }
    }

    /// The values, or `None` for placeholders.
    pub fn table(&self) -> Option<&toml::Table> {
        self.table.as_ref()
    }

    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// A `--var KEY=VALUE` as a release records it (and `status` shows
    /// it): its value replaced by [`MASK`] when the key names a secret (see
    /// [`names_secret`], or it is the dotted key, or the last part of one,
    /// of a secret of this environment), or when the value is a secret's
    /// value or holds one. Other values are kept as given, since an
    /// operator reads them to know what a release was made with.
    pub fn recorded_override(&self, var: &str) -> String {
        overrides::recorded(self.table.as_ref(), &self.mask, var)
    }
}

/// Reads and decrypts the secrets of `env`, if it has a secrets file.
pub fn load(project: &Project, env: &Environment) -> Result<Secrets> {
    load_with(project, env, false)
}

/// The secrets `check` renders with. It needs no identity: when this
/// machine has none that decrypts the file (a CI lint job, a teammate
/// without the key), every secret is a placeholder, and a warning says so.
/// The file must still be a whole age file, and the environment must list
/// its recipients.
pub fn load_for_check(project: &Project, env: &Environment) -> Result<Secrets> {
    load_with(project, env, true)
}

fn load_with(project: &Project, env: &Environment, placeholders: bool) -> Result<Secrets> {
    let relative = relative_path(&env.name);
    let display = relative.display().to_string();
    let Some(ciphertext) = read_encrypted(project, &relative)? else {
        return Ok(Secrets::none());
    };
    if env.recipients.is_empty() {
        return Err(recipients::no_recipients(env));
    }
    let identities = match identities() {
        Ok(identities) => identities,
        Err(err) if placeholders => {
            // The file must still be an age file.
            age::Decryptor::new_buffered(age::armor::ArmoredReader::new(&ciphertext[..]))
                .map_err(|e| corrupt(&display, &e))?;
            return Ok(as_placeholders(env, &err));
        }
        Err(err) => return Err(err),
    };
    let plaintext = match try_decrypt(
        &ciphertext,
        &identities,
        &env.recipients,
        &display,
        &env.name,
    ) {
        Ok(plaintext) => plaintext,
        Err(Undecrypted::NotARecipient(err)) if placeholders => {
            return Ok(as_placeholders(env, &err));
        }
        Err(Undecrypted::NotARecipient(err) | Undecrypted::Unreadable(err)) => return Err(err),
    };
    let table = parse(&plaintext, &display).map_err(Error::Usage)?;
    let mut secrets = Secrets::from_table(table);
    secrets
        .warnings
        .extend(recipients::drift_warnings(&ciphertext, env, &display));
    for key in too_short_to_mask(secrets.table().expect("decrypted")) {
        secrets.warnings.push(format!(
            "secret `{key}` of environment `{}` is shorter than {MIN_MASKED_LEN} characters and \
             cannot be masked in output",
            env.name
        ));
    }
    Ok(secrets)
}

/// The bytes of the secrets file at `relative`, or `None` if there is
/// none; never through a link that leaves the workspace.
fn read_encrypted(project: &Project, relative: &Path) -> Result<Option<Vec<u8>>> {
    let path = project.workspace.root.join(relative);
    // Another project's secrets are not this one's to render.
    if let Some(link) = crate::files::link_leaving(&project.workspace.root, &path) {
        return Err(Error::Usage(format!(
            "`{}` is a link that points outside the workspace, which secrets are not read \
             through",
            project.workspace.display(&link)
        )));
    }
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Usage(format!(
            "cannot read `{}`: {e}",
            relative.display()
        ))),
    }
}

/// Every secret as a placeholder, for `check` on a machine that cannot
/// decrypt them, and a warning that says why.
fn as_placeholders(env: &Environment, why: &Error) -> Secrets {
    let mut secrets = Secrets::placeholders();
    secrets.warnings.push(format!(
        "templates of environment `{}` are checked with every secret as a placeholder: {why}",
        env.name
    ));
    secrets
}
