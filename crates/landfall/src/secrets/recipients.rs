//! Recipients: the keys an environment's secrets are encrypted to (age
//! x25519 keys and OpenSSH public keys, as `[secrets] recipients` lists
//! them), the recipient stanzas of an age file's header, and how the two
//! differ, described in warnings and messages.

use std::fmt::Write as _;
use std::str::FromStr;

use base64::Engine as _;
use sha2::Digest as _;

use crate::config::Environment;
use crate::error::{Error, Result};

/// A recipient of an environment's secrets.
#[derive(Debug)]
pub enum Recipient {
    X25519(age::x25519::Recipient),
    Ssh(Box<age::ssh::Recipient>),
}

impl Recipient {
    pub(super) fn as_age(&self) -> &dyn age::Recipient {
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
pub(super) fn describe_stanzas(stanzas: &[Stanza], recipients: &[String]) -> String {
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

/// The error of an environment that lists no recipients.
pub(super) fn no_recipients(env: &Environment) -> Error {
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

/// Warnings for the recipients the file at `display` (its bytes
/// `ciphertext`) lacks, and those it has that `env` no longer lists.
pub(super) fn drift_warnings(ciphertext: &[u8], env: &Environment, display: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(stanzas) = stanzas(ciphertext) {
        let drift = drift(&stanzas, &env.recipients);
        for missing in &drift.missing {
            warnings.push(format!(
                "`{display}` is not encrypted to `{}`, listed in `environments/{}.toml`: \
                 run `cargo deploy secrets recipients {} --rekey`",
                abbreviate_key(missing),
                env.name,
                env.name
            ));
        }
        for extra in &drift.extra {
            warnings.push(format!(
                "`{display}` is still encrypted to {extra}, no longer listed in \
                 `environments/{}.toml`: run `cargo deploy secrets recipients {} --rekey`",
                env.name, env.name
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::crypt::tests::x25519;
    use crate::secrets::encrypt;

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
}
