//! `--var KEY=VALUE` overrides as a release records them and `status`
//! shows them: a value is masked when its key says it is a credential, or
//! names a secret, or when the value is, or holds, a secret's value.

use super::{MASK, Mask};

/// A `--var KEY=VALUE` as a release records it: see
/// [`Secrets::recorded_override`](super::Secrets::recorded_override).
pub(super) fn recorded(table: Option<&toml::Table>, mask: &Mask, var: &str) -> String {
    let Some((key, value)) = var.split_once('=') else {
        return var.to_string();
    };
    let mut keys = Vec::new();
    let mut values = Vec::new();
    if let Some(table) = table {
        leaves("", table, &mut keys, &mut values);
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    let secret = names_secret(key)
        || keys
            .iter()
            .any(|k| k == key || k.rsplit('.').next() == Some(last))
        || values.iter().any(|v| v == value)
        || mask.apply(value) != value;
    if secret {
        format!("{key}={MASK}")
    } else {
        var.to_string()
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
/// `SECRET_WORDS` in it, in any case.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secrets;

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
}
