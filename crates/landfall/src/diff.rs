//! Predicted changes: unified diffs of the text files that differ between a
//! host's current release and the new one, for `--dry-run`.
//!
//! Pure: the caller fetches the old files and knows the new ones. Files
//! rendered with secrets are diffed from their masked rendering, and the
//! old side is masked line by line against it, so that neither a current
//! nor a rotated secret value ever appears.

use serde::Serialize;

use crate::secrets::MASK;

/// Files bigger than this are reported as changed, not diffed.
pub const MAX_DIFF_BYTES: u64 = 256 * 1024;

/// Lines of a file's diff shown in the output; the whole diff goes to a
/// file.
pub const SHOWN_LINES: usize = 40;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FileDiff {
    pub path: String,
    pub kind: DiffKind,
    /// The unified diff, cut to [`SHOWN_LINES`] lines; empty unless `text`.
    pub diff: String,
    /// Lines of the whole diff.
    pub lines: usize,
    #[serde(skip)]
    pub full: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    Text,
    /// Not text: said to have changed, nothing more.
    Binary,
    /// Bigger than [`MAX_DIFF_BYTES`] on one side.
    Large,
    /// Holds secrets and its template cannot be rendered masked.
    Hidden,
}

/// One side of a file: `None` where the file does not exist.
#[derive(Debug, Clone, Copy)]
pub enum Side<'a> {
    Absent,
    /// Known to exist but not fetched (too big).
    Large,
    Plain(&'a [u8]),
    /// A file rendered with secrets: what may be shown, and the real
    /// contents (to tell which of its lines carry secrets).
    Secret {
        masked: Option<&'a [u8]>,
        real: &'a [u8],
    },
}

/// Diffs one file. `old_secret` says the old file may hold secrets (it was
/// private), even if the new one holds none.
pub fn file_diff(path: &str, old: Side<'_>, new: Side<'_>, old_secret: bool) -> FileDiff {
    let mut out = FileDiff {
        path: path.to_string(),
        kind: DiffKind::Text,
        diff: String::new(),
        lines: 0,
        full: String::new(),
    };
    let old_text = match old {
        Side::Absent => Some(""),
        Side::Plain(bytes) | Side::Secret { real: bytes, .. } => text(bytes),
        Side::Large => {
            out.kind = DiffKind::Large;
            return out;
        }
    };
    let (new_text, real) = match new {
        Side::Absent => (Some(""), None),
        Side::Plain(bytes) => (text(bytes), None),
        Side::Large => {
            out.kind = DiffKind::Large;
            return out;
        }
        Side::Secret { masked: None, .. } => {
            out.kind = DiffKind::Hidden;
            return out;
        }
        Side::Secret {
            masked: Some(masked),
            real,
        } => (text(masked), text(real)),
    };
    let (Some(old_text), Some(new_text)) = (old_text, new_text) else {
        out.kind = DiffKind::Binary;
        return out;
    };
    let old_shown = match real {
        Some(real) => mask_old(old_text, real, new_text),
        None if old_secret => mask_old(old_text, new_text, new_text),
        None => old_text.to_string(),
    };
    let a = if matches!(old, Side::Absent) {
        "/dev/null".to_string()
    } else {
        format!("a/{path}")
    };
    let b = if matches!(new, Side::Absent) {
        "/dev/null".to_string()
    } else {
        format!("b/{path}")
    };
    let diff = similar::TextDiff::from_lines(old_shown.as_str(), new_text);
    let full = diff
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string()
        .replace(CHANGED, "");
    out.lines = full.lines().count();
    out.diff = full
        .split_inclusive('\n')
        .take(SHOWN_LINES)
        .collect::<String>();
    out.full = full;
    out
}

/// Marks a masked line whose secret changed (see [`mask_old`]).
const CHANGED: &str = "\0";

fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// The old file as it may be shown next to a new one rendered with
/// secrets (`real`, shown as `masked`). A line the new file has without a
/// secret is safe; a line that fits a masked line of the new file (same
/// text around the masks) is shown masked the same way; any other line
/// may hold a secret since changed and is masked whole.
///
/// A line whose secret changed is marked with a NUL, which no text file
/// holds, so that it differs from the new line though both read the same;
/// the marks are removed from the finished diff.
fn mask_old(old: &str, real: &str, masked: &str) -> String {
    let real: std::collections::HashSet<&str> = real.lines().collect();
    let safe: std::collections::HashSet<&str> =
        masked.lines().filter(|l| real.contains(l)).collect();
    let shapes: Vec<Vec<&str>> = masked
        .lines()
        .filter(|l| l.contains(MASK))
        .map(|l| l.split(MASK).collect())
        .collect();
    old.split_inclusive('\n')
        .map(|line| {
            let (body, end) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            if safe.contains(body) {
                return line.to_string();
            }
            let changed = if real.contains(body) { "" } else { CHANGED };
            match shapes.iter().find(|parts| fits(body, parts)) {
                Some(parts) => format!("{}{changed}{end}", parts.join(MASK)),
                None => format!("{MASK}{changed}{end}"),
            }
        })
        .collect()
}

/// Whether `line` is `parts` joined by some text in place of each mask.
fn fits(line: &str, parts: &[&str]) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() < 2 || !line.starts_with(first) || !line.ends_with(last) {
        return false;
    }
    if line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_files_get_unified_diffs() {
        let d = file_diff(
            "etc/a.toml",
            Side::Plain(b"a = 1\nb = 2\n"),
            Side::Plain(b"a = 1\nb = 3\n"),
            false,
        );
        assert_eq!(d.kind, DiffKind::Text);
        assert_eq!(
            d.diff,
            "--- a/etc/a.toml\n+++ b/etc/a.toml\n@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n+b = 3\n"
        );
        assert_eq!(d.lines, 6);
        let added = file_diff("x", Side::Absent, Side::Plain(b"new\n"), false);
        assert!(
            added.diff.starts_with("--- /dev/null\n+++ b/x\n"),
            "{}",
            added.diff
        );
    }

    #[test]
    fn binary_and_large_files_only_say_so() {
        let d = file_diff(
            "bin/x",
            Side::Plain(b"\x7fELF\0\0"),
            Side::Plain(b"\x7fELF\0\x01"),
            false,
        );
        assert_eq!((d.kind, d.diff.as_str()), (DiffKind::Binary, ""));
        assert_eq!(
            file_diff("x", Side::Large, Side::Plain(b"a"), false).kind,
            DiffKind::Large
        );
    }

    #[test]
    fn long_diffs_are_cut() {
        let new: String = (0..100)
            .map(|i| format!("line {i}\n"))
            .collect::<Vec<_>>()
            .concat();
        let d = file_diff("x", Side::Plain(b""), Side::Plain(new.as_bytes()), false);
        assert_eq!(d.diff.lines().count(), SHOWN_LINES);
        assert_eq!(d.lines, 103);
        assert_eq!(d.full.lines().count(), 103);
    }

    #[test]
    fn neither_the_new_nor_a_rotated_secret_shows() {
        let old = b"port = 80\ntoken = \"old-secret\"\nremoved = \"old-other-secret\"\n";
        let real = b"port = 81\ntoken = \"new-secret\"\n";
        let masked = b"port = 81\ntoken = \"********\"\n";
        let d = file_diff(
            "etc/a.toml",
            Side::Plain(old),
            Side::Secret {
                masked: Some(masked),
                real,
            },
            true,
        );
        assert!(!d.full.contains("secret"), "{}", d.full);
        assert_eq!(
            d.full,
            "--- a/etc/a.toml\n+++ b/etc/a.toml\n@@ -1,3 +1,2 @@\n-********\n-token = \"********\"\n-********\n+port = 81\n+token = \"********\"\n",
            "the rotated token shows as changed, masked on both sides"
        );
        let hidden = file_diff(
            "x",
            Side::Plain(old),
            Side::Secret { masked: None, real },
            true,
        );
        assert_eq!((hidden.kind, hidden.full.as_str()), (DiffKind::Hidden, ""));
    }

    #[test]
    fn unchanged_lines_of_a_secret_file_show_as_they_are() {
        let old = b"# header\ntoken = \"same\"\nport = 1\n";
        let real = b"# header\ntoken = \"same\"\nport = 1\nextra = true\n";
        let masked = b"# header\ntoken = \"********\"\nport = 1\nextra = true\n";
        let d = file_diff(
            "x",
            Side::Plain(old),
            Side::Secret {
                masked: Some(masked),
                real,
            },
            true,
        );
        assert_eq!(
            d.full,
            "--- a/x\n+++ b/x\n@@ -1,3 +1,4 @@\n # header\n token = \"********\"\n port = 1\n+extra = true\n"
        );
    }
}
