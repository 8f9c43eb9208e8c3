//! Secrets: `secrets/ENV.toml.age`, a TOML document encrypted with age to
//! the recipients an environment lists under `[secrets]`.
//!
//! This module owns the encrypted file: finding the user's identity,
//! decrypting into memory, encrypting to the recipients, reading the
//! recipients a file was encrypted to from its header, and the [`Mask`]
//! that keeps secret values out of everything landfall prints. It never
//! writes plaintext to disk; editing through a temporary file is the
//! binary's business.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use sha2::Digest as _;

use crate::config::{Environment, Project};
use crate::error::{Error, Result};

/// What a secret value is replaced with wherever landfall prints.
pub const MASK: &str = "********";

/// Values shorter than this are not masked: replacing every `on` or `80`
/// in the output would hide more than it protects.
pub const MIN_MASKED_LEN: usize = 4;

/// The variable naming an age identity file (x25519 keys, or an OpenSSH
/// private key).
pub const IDENTITY_VAR: &str = "LANDFALL_AGE_IDENTITY";

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
        let Some((key, value)) = var.split_once('=') else {
            return var.to_string();
        };
        let mut keys = Vec::new();
        let mut values = Vec::new();
        if let Some(table) = &self.table {
            leaves("", table, &mut keys, &mut values);
        }
        let last = key.rsplit('.').next().unwrap_or(key);
        let secret = names_secret(key)
            || keys
                .iter()
                .any(|k| k == key || k.rsplit('.').next() == Some(last))
            || values.iter().any(|v| v == value)
            || self.mask.apply(value) != value;
        if secret {
            format!("{key}={MASK}")
        } else {
            var.to_string()
        }
    }
}

/// The words that, in a variable's key, say that its value is a
/// credential: `--var db_password=…` is masked even when the environment's
/// secrets do not hold it.
const SECRET_WORDS: [&str; 6] = [
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "private",
];

/// Whether a variable's key says that its value is a credential: one of
/// [`SECRET_WORDS`] in it, in any case.
pub fn names_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

/// A `--var KEY=VALUE` as recorded, for `status` where no secret is
/// decrypted: its value masked when its key names a secret (see
/// [`names_secret`]), which a release recorded before landfall masked
/// overrides may hold in the clear.
pub fn shown_override(var: &str) -> String {
    match var.split_once('=') {
        Some((key, _)) if names_secret(key) => format!("{key}={MASK}"),
        _ => var.to_string(),
    }
}

/// Every leaf of a secrets table: its dotted key and its value as text.
fn leaves(prefix: &str, table: &toml::Table, keys: &mut Vec<String>, values: &mut Vec<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => leaves(&key, inner, keys, values),
            toml::Value::String(text) => {
                keys.push(key);
                values.push(text.clone());
            }
            other => {
                keys.push(key);
                values.push(other.to_string());
            }
        }
    }
}

/// Replaces secret values in text by [`MASK`].
#[derive(Debug, Clone, Default)]
pub struct Mask {
    /// Longest first, so that a value containing another is masked whole.
    values: Vec<String>,
}

impl Mask {
    fn add_table(&mut self, table: &toml::Table) {
        for value in table.values() {
            self.add_value(value);
        }
        self.normalise();
    }

    /// Longest first, each once.
    fn normalise(&mut self) {
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        self.values.dedup();
    }

    fn add_value(&mut self, value: &toml::Value) {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Boolean(_) => return,
            toml::Value::Array(items) => {
                for item in items {
                    self.add_value(item);
                }
                return;
            }
            toml::Value::Table(table) => {
                for item in table.values() {
                    self.add_value(item);
                }
                return;
            }
        };
        if text.chars().count() < MIN_MASKED_LEN {
            return;
        }
        // A multi-line value may be printed a line at a time.
        if text.contains('\n') {
            for line in text.lines().filter(|l| l.trim().len() >= MIN_MASKED_LEN) {
                self.values.push(line.to_string());
            }
        }
        // A hook holds the value shell-quoted, and its text may be shown.
        let quoted = crate::process::quote(&text);
        if quoted != text {
            self.add_text(quoted);
        }
        self.add_text(text);
    }

    fn add_text(&mut self, text: String) {
        // In JSON output, quotes and backslashes arrive escaped.
        let json = serde_json::to_string(&text).expect("strings serialise");
        let json = &json[1..json.len() - 1];
        if json != text {
            self.values.push(json.to_string());
        }
        self.values.push(text);
    }

    /// Adds another environment's values.
    pub fn extend(&mut self, other: &Mask) {
        self.values.extend(other.values.iter().cloned());
        self.normalise();
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn apply<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), MASK));
            }
        }
        out
    }
}

/// Secret values that are too short to be masked, by dotted key.
pub fn too_short_to_mask(table: &toml::Table) -> Vec<String> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::String(s) if s.chars().count() < MIN_MASKED_LEN => {
                out.push(prefix.to_string());
            }
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(&format!("{prefix}.{k}"), v, out);
                }
            }
            toml::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (k, v) in table {
        walk(k, v, &mut out);
    }
    out
}

/// Identities to decrypt with, and how to name them in messages.
pub struct Identities {
    /// Where they came from, e.g. "`~/.ssh/id_ed25519` (ssh key)".
    pub description: String,
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
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

/// A recipient of an environment's secrets.
#[derive(Debug)]
pub enum Recipient {
    X25519(age::x25519::Recipient),
    Ssh(Box<age::ssh::Recipient>),
}

impl Recipient {
    fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::Ssh(r) => r.as_ref(),
        }
    }
}

/// Parses a recipient as written under `[secrets] recipients`: an age
/// x25519 key (`age1…`) or an OpenSSH public key line.
pub fn parse_recipient(text: &str) -> Result<Recipient, String> {
    let text = text.trim();
    if text.starts_with("age1") {
        return age::x25519::Recipient::from_str(text)
            .map(Recipient::X25519)
            .map_err(|e| format!("not a valid age recipient: {e}"));
    }
    if text.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(text)
            .map(|r| Recipient::Ssh(Box::new(r)))
            .map_err(|e| match e {
                age::ssh::ParseRecipientKeyError::Unsupported(kind) => {
                    format!("ssh keys of type `{kind}` cannot receive age files (use ssh-ed25519 or ssh-rsa)")
                }
                age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => {
                    "this ssh-rsa key is too small (under 2048 bits)".to_string()
                }
                other => format!("not a valid ssh public key: {other:?}"),
            });
    }
    Err("a recipient is an age key (`age1…`) or an ssh public key (`ssh-ed25519 AAAA…`)".into())
}

/// The tag age writes into an ssh stanza: the first 4 bytes of the SHA-256
/// of the key's wire form, base64.
pub fn ssh_tag(public_key_line: &str) -> Option<String> {
    let mut words = public_key_line.split_whitespace();
    let kind = words.next()?;
    if !kind.starts_with("ssh-") {
        return None;
    }
    let wire = base64::engine::general_purpose::STANDARD
        .decode(words.next()?)
        .ok()?;
    let digest = sha2::Sha256::digest(&wire);
    Some(base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..4]))
}

/// One recipient stanza of an age header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// `X25519`, `ssh-ed25519`, `ssh-rsa`, …
    pub kind: String,
    /// The key tag, for ssh stanzas.
    pub tag: Option<String>,
}

/// Reads the recipient stanzas of a binary age file's header; `None` if it
/// is not one.
pub fn stanzas(file: &[u8]) -> Option<Vec<Stanza>> {
    let header_end = file.windows(5).position(|w| w == b"\n--- ")?;
    let header = std::str::from_utf8(&file[..header_end]).ok()?;
    let mut lines = header.lines();
    if lines.next()? != "age-encryption.org/v1" {
        return None;
    }
    Some(
        lines
            .filter_map(|line| line.strip_prefix("-> "))
            // Random stanzas that keep parsers honest, not recipients.
            .filter(|args| {
                !args
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .ends_with("-grease")
            })
            .map(|args| {
                let mut words = args.split(' ');
                let kind = words.next().unwrap_or_default().to_string();
                let tag = kind.starts_with("ssh-").then(|| words.next()).flatten();
                Stanza {
                    kind,
                    tag: tag.map(str::to_string),
                }
            })
            .collect(),
    )
}

/// How a file's recipients differ from those the environment lists.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecipientDrift {
    /// Listed in the environment, absent from the file.
    pub missing: Vec<String>,
    /// In the file, no longer listed (described, since the file only
    /// holds tags).
    pub extra: Vec<String>,
}

impl RecipientDrift {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares a file's stanzas with the environment's recipients. ssh keys
/// are matched by tag; age x25519 stanzas name no key, so only their count
/// can be compared.
pub fn drift(stanzas: &[Stanza], recipients: &[String]) -> RecipientDrift {
    let mut drift = RecipientDrift::default();
    let mut file_tags: Vec<&str> = stanzas.iter().filter_map(|s| s.tag.as_deref()).collect();
    let mut listed_x25519 = Vec::new();
    for recipient in recipients {
        match ssh_tag(recipient) {
            Some(tag) => match file_tags.iter().position(|t| *t == tag) {
                Some(i) => {
                    file_tags.remove(i);
                }
                None => drift.missing.push(recipient.clone()),
            },
            None => listed_x25519.push(recipient.clone()),
        }
    }
    for tag in file_tags {
        drift.extra.push(format!("an ssh key with tag {tag}"));
    }
    let in_file = stanzas.iter().filter(|s| s.kind == "X25519").count();
    if in_file < listed_x25519.len() {
        // Which ones is unknowable; name them all as possibly missing.
        drift.missing.extend(
            listed_x25519
                .iter()
                .map(|r| format!("{r} (one of the age keys)")),
        );
    } else if in_file > listed_x25519.len() {
        drift
            .extra
            .push(format!("{} age key(s)", in_file - listed_x25519.len()));
    }
    drift
}

/// Describes a file's recipients for an error message, naming the
/// environment's ssh keys where their tags match.
fn describe_stanzas(stanzas: &[Stanza], recipients: &[String]) -> String {
    let mut parts = Vec::new();
    let x25519 = stanzas.iter().filter(|s| s.kind == "X25519").count();
    if x25519 > 0 {
        parts.push(format!("{x25519} age key(s)"));
    }
    for stanza in stanzas.iter().filter(|s| s.kind != "X25519") {
        let named = stanza.tag.as_deref().and_then(|tag| {
            recipients
                .iter()
                .find(|r| ssh_tag(r).as_deref() == Some(tag))
        });
        match (named, &stanza.tag) {
            (Some(line), _) => parts.push(format!("`{}`", abbreviate_key(line))),
            (None, Some(tag)) => parts.push(format!("{} key with tag {tag}", stanza.kind)),
            (None, None) => parts.push(stanza.kind.clone()),
        }
    }
    parts.join(", ")
}

/// `ssh-ed25519 AAAAC3Nz…Xy9 ops@laptop`: enough to recognise a key.
pub fn abbreviate_key(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [kind, key, rest @ ..] if key.len() > 16 => {
            let mut out = format!("{kind} {}…{}", &key[..8], &key[key.len() - 6..]);
            for word in rest {
                let _ = write!(out, " {word}");
            }
            out
        }
        [key] if key.len() > 20 => format!("{}…{}", &key[..10], &key[key.len() - 6..]),
        _ => line.to_string(),
    }
}

/// Decrypts an environment's secrets file. `display` names the file and
/// `env_file` the environment file in messages.
pub fn decrypt(
    ciphertext: &[u8],
    identities: &Identities,
    recipients: &[String],
    display: &str,
    env_name: &str,
) -> Result<Vec<u8>> {
    try_decrypt(ciphertext, identities, recipients, display, env_name).map_err(|e| match e {
        Undecrypted::NotARecipient(err) | Undecrypted::Unreadable(err) => err,
    })
}

/// Why a secrets file did not decrypt.
enum Undecrypted {
    /// It is whole, but encrypted to none of the identities tried.
    NotARecipient(Error),
    /// It is not an age file, or it was altered.
    Unreadable(Error),
}

fn try_decrypt(
    ciphertext: &[u8],
    identities: &Identities,
    recipients: &[String],
    display: &str,
    env_name: &str,
) -> std::result::Result<Vec<u8>, Undecrypted> {
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(ciphertext))
        .map_err(|e| Undecrypted::Unreadable(corrupt(display, &e)))?;
    let mut reader = decryptor
        .decrypt(identities.identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => {
                let holders = stanzas(ciphertext).map_or_else(
                    || "recipients that cannot be read from its header".into(),
                    |s| describe_stanzas(&s, recipients),
                );
                Undecrypted::NotARecipient(Error::Usage(format!(
                    "cannot decrypt `{display}` with the identity {}: the file is encrypted to {holders}; \
                     someone who holds one of those keys must add yours to `[secrets] recipients` in \
                     `environments/{env_name}.toml` and run `cargo deploy secrets recipients {env_name} --rekey`",
                    identities.description
                )))
            }
            other => Undecrypted::Unreadable(corrupt(display, &other)),
        })?;
    let mut plaintext = Vec::new();
    reader.read_to_end(&mut plaintext).map_err(|e| {
        Undecrypted::Unreadable(Error::Usage(format!(
            "`{display}` is corrupted: its contents do not decrypt ({e})"
        )))
    })?;
    Ok(plaintext)
}

fn corrupt(display: &str, err: &age::DecryptError) -> Error {
    let why = match err {
        age::DecryptError::InvalidHeader
        | age::DecryptError::UnknownFormat
        | age::DecryptError::Io(_) => "it is not an age file (its header is invalid)".to_string(),
        age::DecryptError::InvalidMac => {
            "its header was altered (the MAC does not match)".to_string()
        }
        age::DecryptError::DecryptionFailed => "its contents do not decrypt".to_string(),
        other => other.to_string(),
    };
    Error::Usage(format!("`{display}` is corrupted: {why}"))
}

/// Encrypts `plaintext` to every recipient.
/// Encrypts `plaintext` to `recipients` into `path`, which readers see
/// whole, old or new, never a part.
pub fn write_encrypted(path: &Path, plaintext: &[u8], recipients: &[Recipient]) -> Result<()> {
    crate::files::write_atomically(path, &encrypt(plaintext, recipients)?)
}

pub fn encrypt(plaintext: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(Recipient::as_age))
        .map_err(|e| Error::Failed(format!("cannot encrypt: {e}")))?;
    let mut out = Vec::new();
    let write = |out: &mut Vec<u8>| -> io::Result<()> {
        let mut writer = encryptor.wrap_output(out)?;
        writer.write_all(plaintext)?;
        writer.finish()?;
        Ok(())
    };
    write(&mut out).map_err(|e| Error::Failed(format!("cannot encrypt: {e}")))?;
    Ok(out)
}

/// Parses decrypted secrets. Errors give the line and column but never the
/// line itself, which may hold a secret.
pub fn parse(plaintext: &[u8], display: &str) -> Result<toml::Table, String> {
    let text = std::str::from_utf8(plaintext)
        .map_err(|_| format!("`{display}` (decrypted) is not UTF-8 text"))?;
    toml::from_str::<toml::Table>(text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        format!("`{display}` (decrypted){at}: {}", e.message())
    })
}

fn no_recipients(env: &Environment) -> Error {
    Error::Usage(format!(
        "environment `{0}` lists no recipients for its secrets: add \
         `[secrets] recipients = [\"age1…\" or \"ssh-ed25519 AAAA…\"]` to `environments/{0}.toml`",
        env.name
    ))
}

/// The environment's recipients, parsed; an error if it lists none.
pub fn recipients(env: &Environment) -> Result<Vec<Recipient>> {
    if env.recipients.is_empty() {
        return Err(no_recipients(env));
    }
    env.recipients
        .iter()
        .map(|r| parse_recipient(r).map_err(|e| Error::Usage(format!("recipient `{r}`: {e}"))))
        .collect()
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
    let path = project.workspace.root.join(&relative);
    let display = relative.display().to_string();
    // Another project's secrets are not this one's to render.
    if let Some(link) = crate::files::link_leaving(&project.workspace.root, &path) {
        return Err(Error::Usage(format!(
            "`{}` is a link that points outside the workspace, which secrets are not read \
             through",
            project.workspace.display(&link)
        )));
    }
    let ciphertext = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Secrets::none()),
        Err(e) => return Err(Error::Usage(format!("cannot read `{display}`: {e}"))),
    };
    if env.recipients.is_empty() {
        return Err(no_recipients(env));
    }
    let as_placeholders = |why: &Error| {
        let mut secrets = Secrets::placeholders();
        secrets.warnings.push(format!(
            "templates of environment `{}` are checked with every secret as a placeholder: {why}",
            env.name
        ));
        secrets
    };
    let identities = match identities() {
        Ok(identities) => identities,
        Err(err) if placeholders => {
            // The file must still be an age file.
            age::Decryptor::new_buffered(age::armor::ArmoredReader::new(&ciphertext[..]))
                .map_err(|e| corrupt(&display, &e))?;
            return Ok(as_placeholders(&err));
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
        Err(Undecrypted::NotARecipient(err)) if placeholders => return Ok(as_placeholders(&err)),
        Err(Undecrypted::NotARecipient(err) | Undecrypted::Unreadable(err)) => return Err(err),
    };
    let table = parse(&plaintext, &display).map_err(Error::Usage)?;
    let mut secrets = Secrets::from_table(table);
    if let Some(stanzas) = stanzas(&ciphertext) {
        let drift = drift(&stanzas, &env.recipients);
        for missing in &drift.missing {
            secrets.warnings.push(format!(
                "`{display}` is not encrypted to `{}`, listed in `environments/{}.toml`: \
                 run `cargo deploy secrets recipients {} --rekey`",
                abbreviate_key(missing),
                env.name,
                env.name
            ));
        }
        for extra in &drift.extra {
            secrets.warnings.push(format!(
                "`{display}` is still encrypted to {extra}, no longer listed in \
                 `environments/{}.toml`: run `cargo deploy secrets recipients {} --rekey`",
                env.name, env.name
            ));
        }
    }
    for key in too_short_to_mask(secrets.table().expect("decrypted")) {
        secrets.warnings.push(format!(
            "secret `{key}` of environment `{}` is shorter than {MIN_MASKED_LEN} characters and \
             cannot be masked in output",
            env.name
        ));
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_naming_or_holding_a_secret_are_recorded_masked() {
        let table: toml::Table =
            toml::from_str("admin_token = \"tok-123456\"\n[db]\npassword = \"pw\"\n").unwrap();
        let secrets = Secrets::from_table(table);
        for (given, recorded) in [
            ("greeting=hello", "greeting=hello"),
            ("admin_token=other", "admin_token=********"),
            ("db.password=x", "db.password=********"),
            ("password=x", "password=********"),
            ("note=pw", "note=********"),
            ("note=say tok-123456 twice", "note=********"),
            ("SMTP_Passwd=x", "SMTP_Passwd=********"),
            ("api_token=x", "api_token=********"),
        ] {
            assert_eq!(secrets.recorded_override(given), recorded, "{given}");
        }
        assert_eq!(shown_override("db_secret=x"), "db_secret=********");
        assert_eq!(shown_override("port=8080"), "port=8080");
    }

    fn x25519() -> (age::x25519::Identity, String) {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        (identity, public)
    }

    #[test]
    fn round_trip_and_wrong_identity() {
        let (me, my_key) = x25519();
        let (_, other_key) = x25519();
        let recipients = [parse_recipient(&my_key).unwrap()];
        let file = encrypt(b"token = \"abcdef\"\n", &recipients).unwrap();
        let mine = Identities {
            description: "mine".into(),
            identities: vec![Box::new(me)],
        };
        let plain = decrypt(&file, &mine, std::slice::from_ref(&my_key), "s.age", "prod").unwrap();
        assert_eq!(plain, b"token = \"abcdef\"\n");

        let (stranger, _) = x25519();
        let theirs = Identities {
            description: "`stranger`".into(),
            identities: vec![Box::new(stranger)],
        };
        let err = decrypt(&file, &theirs, &[other_key], "s.age", "prod")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot decrypt `s.age` with the identity `stranger`: the file is encrypted to 1 age key(s)"), "{err}");
        assert!(err.contains("secrets recipients prod --rekey"), "{err}");

        let mut flipped = file.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        let err = decrypt(&flipped, &mine, &[], "s.age", "prod")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "`s.age` is corrupted: its contents do not decrypt (decryption error)"
        );
        let err = decrypt(b"plain text", &mine, &[], "s.age", "prod")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "`s.age` is corrupted: it is not an age file (its header is invalid)"
        );
    }

    #[test]
    fn ssh_recipients_are_matched_by_tag() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN ops@laptop";
        let (_, age_key) = x25519();
        let recipients = [
            parse_recipient(key).unwrap(),
            parse_recipient(&age_key).unwrap(),
        ];
        let file = encrypt(b"a = 1", &recipients).unwrap();
        let found = stanzas(&file).unwrap();
        let tag = ssh_tag(key).unwrap();
        assert_eq!(
            found,
            [
                Stanza {
                    kind: "ssh-ed25519".into(),
                    tag: Some(tag.clone())
                },
                Stanza {
                    kind: "X25519".into(),
                    tag: None
                },
            ]
        );
        assert!(drift(&found, &[key.to_string(), age_key.clone()]).is_empty());
        let (_, new_key) = x25519();
        let d = drift(&found, &[age_key.clone(), new_key.clone()]);
        assert_eq!(d.extra, [format!("an ssh key with tag {tag}")]);
        assert_eq!(d.missing.len(), 2, "{d:?}");
        assert_eq!(
            describe_stanzas(&found, &[key.to_string()]),
            "1 age key(s), `ssh-ed25519 AAAAC3Nz…Z6isGN ops@laptop`"
        );
    }

    #[test]
    fn recipients_are_checked() {
        assert!(
            parse_recipient("age1nope")
                .unwrap_err()
                .starts_with("not a valid age recipient")
        );
        assert!(
            parse_recipient("hello")
                .unwrap_err()
                .starts_with("a recipient is an age key")
        );
        assert!(parse_recipient("ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn masks_long_values_everywhere_and_longest_first() {
        let table: toml::Table = toml::from_str(
            "pw = \"hunter22\"\nlong = \"hunter22-and-more\"\nport = 5432\nshort = \"ab\"\n[db]\nkey = \"line one\\nline two\"\n",
        )
        .unwrap();
        let secrets = Secrets::from_table(table.clone());
        assert_eq!(
            secrets
                .mask()
                .apply("x=hunter22 y=hunter22-and-more p=5432 s=ab\nline two"),
            "x=******** y=******** p=******** s=ab\n********"
        );
        assert_eq!(too_short_to_mask(&table), ["short"]);
    }

    #[test]
    fn masks_values_as_hooks_quote_them() {
        let table: toml::Table = toml::from_str("pw = \"it's a secret\"\n").unwrap();
        let secrets = Secrets::from_table(table);
        let hook = format!("login {}", crate::process::quote("it's a secret"));
        assert_eq!(secrets.mask().apply(&hook), "login ********");
    }

    #[test]
    fn parse_errors_never_show_the_line() {
        let err = parse(b"a = 1\nb = \"sekrit\n", "s.age").unwrap_err();
        assert!(err.starts_with("`s.age` (decrypted):2:"), "{err}");
        assert!(!err.contains("sekrit"), "{err}");
    }
}
