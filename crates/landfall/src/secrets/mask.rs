//! The [`Mask`]: every secret value, as landfall may print it (whole, a
//! line at a time, shell-quoted for a hook, escaped for JSON), replaced by
//! [`MASK`] in text; and the values too short to be masked.

use std::borrow::Cow;

/// What a secret value is replaced with wherever landfall prints.
pub const MASK: &str = "********";

/// Values shorter than this are not masked: replacing every `on` or `80`
/// in the output would hide more than it protects.
pub const MIN_MASKED_LEN: usize = 4;

/// Replaces secret values in text by [`MASK`].
#[derive(Debug, Clone, Default)]
pub struct Mask {
    /// Longest first, so that a value containing another is masked whole.
    values: Vec<String>,
}

impl Mask {
    pub(super) fn add_table(&mut self, table: &toml::Table) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secrets;

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
}
