//! Diagnostics: errors and warnings that point into a configuration file or
//! a template.
//!
//! A [`Diagnostic`] carries the file's text and a byte span, so that it can
//! be rendered with the offending line shown (via `annotate-snippets`). This
//! module owns rendering to plain or styled text; it knows nothing of
//! terminals: the binary decides whether to style.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

/// `text` as a message shows a value from the user: a newline and a tab
/// as `\n` and `\t`, so that the message stays on its line, every other
/// control character inert as [`crate::inert`] shows it, and everything
/// else, quotes included, as written.
pub fn shown(text: &str) -> String {
    let text = crate::inert::inert(text);
    text.chars()
        .fold(String::with_capacity(text.len()), |mut out, c| {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
            out
        })
}

/// A file whose text diagnostics can point into.
#[derive(Debug)]
pub struct SourceFile {
    /// The path shown to the user, relative to the workspace where possible.
    pub display: String,
    pub text: String,
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A message with an optional location in a source file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    pub notes: Vec<String>,
}

/// A span in a source file, with a label shown under it.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: Arc<SourceFile>,
    pub span: Range<usize>,
    pub label: String,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            location: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    #[must_use]
    pub fn at(
        mut self,
        file: &Arc<SourceFile>,
        span: Range<usize>,
        label: impl Into<String>,
    ) -> Diagnostic {
        // Renderers slice the text by the span: keep it inside the text and
        // on character boundaries.
        let text = &file.text;
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let mut end = span.end.clamp(start, text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let span = start..end;
        self.location = Some(Location {
            file: Arc::clone(file),
            span,
            label: label.into(),
        });
        self
    }

    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// `file:line:column` of the diagnostic, if it has a location.
    pub fn position(&self) -> Option<String> {
        let loc = self.location.as_ref()?;
        let (line, column) = line_column(&loc.file.text, loc.span.start);
        Some(format!("{}:{line}:{column}", loc.file.display))
    }

    /// Renders the diagnostic with its source line, styled for a terminal or
    /// as plain text.
    pub fn render(&self, styled: bool) -> String {
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let mut title = level.primary_title(self.message.as_str());
        let mut report: Vec<Group<'_>> = Vec::new();
        if let Some(loc) = &self.location {
            let snippet = Snippet::source(loc.file.text.as_str())
                .path(loc.file.display.as_str())
                .fold(true)
                .annotation(
                    AnnotationKind::Primary
                        .span(loc.span.clone())
                        .label(loc.label.as_str()),
                );
            report.push(title.element(snippet));
        } else {
            // A title without elements still renders as a group of its own.
            title = title.id("");
            report.push(Group::with_title(title));
        }
        for note in &self.notes {
            report.push(Group::with_title(
                Level::NOTE.secondary_title(note.as_str()),
            ));
        }
        let renderer = if styled {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        renderer.render(&report)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position() {
            Some(pos) => write!(f, "{pos}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// One-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Several diagnostics at once, so that a user fixes all of them in one go.
#[derive(Debug, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diag) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diag}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 10), (2, 4));
    }

    #[test]
    fn rendering_shows_the_line() {
        let file = Arc::new(SourceFile {
            display: "deploy.toml".into(),
            text: "[project]\nnme = 1\n".into(),
        });
        let diag = Diagnostic::error("unknown field `nme`").at(&file, 10..13, "not a known key");
        let text = diag.render(false);
        assert!(text.contains("deploy.toml:2:1"), "{text}");
        assert!(text.contains("nme = 1"), "{text}");
        assert_eq!(diag.to_string(), "deploy.toml:2:1: unknown field `nme`");
    }
}
