//! The age file itself: decryption into memory, with errors that tell a
//! file not encrypted to this identity from one that is corrupted;
//! encryption to the recipients; and the decrypted TOML parsed without
//! ever showing a line of it.

use std::io::{self, Read as _, Write as _};
use std::path::Path;

use super::recipients::{describe_stanzas, stanzas};
use super::{Identities, Recipient};
use crate::error::{Error, Result};

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
pub(super) enum Undecrypted {
    /// It is whole, but encrypted to none of the identities tried.
    NotARecipient(Error),
    /// It is not an age file, or it was altered.
    Unreadable(Error),
}

pub(super) fn try_decrypt(
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

pub(super) fn corrupt(display: &str, err: &age::DecryptError) -> Error {
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

/// Encrypts `plaintext` to `recipients` into `path`, which readers see
/// whole, old or new, never a part.
pub fn write_encrypted(path: &Path, plaintext: &[u8], recipients: &[Recipient]) -> Result<()> {
    crate::files::write_atomically(path, &encrypt(plaintext, recipients)?)
}

/// Encrypts `plaintext` to every recipient.
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::secrets::parse_recipient;

    /// A new identity, and its recipient.
    pub(in crate::secrets) fn x25519() -> (age::x25519::Identity, String) {
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
    fn parse_errors_never_show_the_line() {
        let err = parse(b"a = 1\nb = \"sekrit\n", "s.age").unwrap_err();
        assert!(err.starts_with("`s.age` (decrypted):2:"), "{err}");
        assert!(!err.contains("sekrit"), "{err}");
    }
}
