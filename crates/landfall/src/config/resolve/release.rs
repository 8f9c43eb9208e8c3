//! What an artifact puts in its release directory besides its binaries:
//! `files` (source trees of the workspace, listed here), `templates`
//! (read here, rendered per host by the plan) and the `shared`
//! directories linked into it. Every destination is claimed once
//! ([`Claims`]), so that two sources never write one path, and none is a
//! path landfall keeps for itself.

use std::collections::HashMap;
use std::fs;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::{Checker, clean_components};
use crate::config::{FileSource, Template, Workspace, raw};
use crate::diag::SourceFile;

/// The paths of a release claimed so far, each with the span that claims
/// it, and each directory above them with the first of its paths (by
/// name): a claim is looked up, not compared with every other.
pub(super) struct Claims<'a> {
    /// The artifact whose release this is, for messages.
    artifact: &'a str,
    paths: HashMap<String, Range<usize>>,
    dirs: HashMap<String, String>,
}

/// Why a path cannot be claimed, with the span of the claim it conflicts
/// with.
enum Conflict<'c> {
    /// It is claimed already.
    Twice(Range<usize>),
    /// A directory above it is claimed as a file.
    FileAbove(&'c str, Range<usize>),
    /// It is a directory of claimed paths, the first of them this one.
    FilesBelow(&'c str, Range<usize>),
}

impl<'a> Claims<'a> {
    pub(super) fn new(artifact: &'a str) -> Claims<'a> {
        Claims {
            artifact,
            paths: HashMap::new(),
            dirs: HashMap::new(),
        }
    }

    /// The artifact whose release this is.
    pub(super) fn artifact(&self) -> &'a str {
        self.artifact
    }

    /// Claims `dst` for the source at `span`, or reports the claim it
    /// conflicts with.
    pub(super) fn claim(&mut self, check: &mut Checker, dst: &str, span: Range<usize>) {
        let name = self.artifact;
        let conflict = match self.conflict(dst) {
            Some(Conflict::Twice(first)) => Some((
                format!("`{dst}` is written twice in artifact `{name}`"),
                first,
            )),
            Some(Conflict::FileAbove(parent, first)) => Some((
                format!("`{parent}` is both a file and a directory in artifact `{name}`"),
                first,
            )),
            Some(Conflict::FilesBelow(child, first)) => Some((
                format!(
                    "`{dst}` is both a file and the directory of `{child}` in artifact `{name}`"
                ),
                first,
            )),
            None => None,
        };
        if let Some((message, first)) = conflict {
            let (line, _) = crate::diag::line_column(&check.file.text, first.start);
            check.error(span, message, format!("conflicts with line {line}"));
        } else {
            self.insert(dst, span);
        }
    }

    fn conflict(&self, path: &str) -> Option<Conflict<'_>> {
        if let Some(first) = self.paths.get(path) {
            return Some(Conflict::Twice(first.clone()));
        }
        let above = path
            .match_indices('/')
            .find_map(|(i, _)| self.paths.get_key_value(&path[..i]));
        if let Some((dir, first)) = above {
            return Some(Conflict::FileAbove(dir, first.clone()));
        }
        let below = self.dirs.get(path)?;
        Some(Conflict::FilesBelow(below, self.paths[below].clone()))
    }

    fn insert(&mut self, path: &str, span: Range<usize>) {
        for (i, _) in path.match_indices('/') {
            match self.dirs.get_mut(&path[..i]) {
                Some(first) if path < first.as_str() => *first = path.to_string(),
                Some(_) => {}
                None => {
                    self.dirs.insert(path[..i].to_string(), path.to_string());
                }
            }
        }
        self.paths.insert(path.to_string(), span);
    }

    /// `path` if it is claimed, or else the first claimed path below it.
    fn at_or_below(&self, path: &str) -> Option<&str> {
        match self.paths.get_key_value(path) {
            Some((path, _)) => Some(path),
            None => self.dirs.get(path).map(String::as_str),
        }
    }
}

/// `files`: each source listed, file by file, with its destination.
pub(super) fn resolve_files(
    check: &mut Checker,
    workspace: &Workspace,
    claims: &mut Claims<'_>,
    raw: Vec<Spanned<raw::FileEntry>>,
) -> Vec<FileSource> {
    let mut files = Vec::new();
    for entry in raw {
        let entry_span = entry.span();
        let entry = entry.into_inner();
        let mode = entry.mode.as_ref().and_then(|m| parse_mode(check, m));
        let Some(dst) = check_dst(check, &entry.dst) else {
            continue;
        };
        let Some(src) = check_src(check, workspace, &entry.src) else {
            continue;
        };
        for (src, dst) in list_sources(check, workspace, &src, &dst, entry.src.span()) {
            claims.claim(check, &dst, entry_span.clone());
            files.push(FileSource { src, dst, mode });
        }
    }
    files
}

/// `templates`: each read from `templates/`, to be rendered per host.
pub(super) fn resolve_templates(
    check: &mut Checker,
    workspace: &Workspace,
    claims: &mut Claims<'_>,
    raw: Vec<Spanned<raw::TemplateEntry>>,
) -> Vec<Template> {
    let mut templates = Vec::new();
    for entry in raw {
        let entry_span = entry.span();
        let entry = entry.into_inner();
        let mode = entry.mode.as_ref().and_then(|m| parse_mode(check, m));
        let Some(dst) = check_dst(check, &entry.dst) else {
            continue;
        };
        let Some(text) = read_template(check, workspace, &entry.src) else {
            continue;
        };
        claims.claim(check, &dst, entry_span.clone());
        let src = entry.src.into_inner();
        let source = Arc::new(SourceFile {
            display: format!("templates/{src}"),
            text,
        });
        templates.push(Template {
            name: src,
            dst,
            mode,
            source,
        });
    }
    templates
}

/// The text of the template `src` names under `templates/`.
fn read_template(
    check: &mut Checker,
    workspace: &Workspace,
    src: &Spanned<String>,
) -> Option<String> {
    let span = src.span();
    let src = src.get_ref();
    if src.is_empty() || src.starts_with('/') || !clean_components(src) {
        check.error(
            span,
            "template `src` must be a relative path under `templates/`",
            "",
        );
        return None;
    }
    let path = workspace.root.join("templates").join(src);
    // A template, the templates directory, or one on the way, that is
    // a link must resolve inside the workspace, as under `files`; and
    // it must be a file, which a FIFO or a device is not.
    if let Some(link) = crate::files::link_leaving(&workspace.root, &path) {
        check.error(
            span,
            format!(
                "`{}` is a link that points outside the workspace, which a template \
                 is not read through",
                workspace.display(&link)
            ),
            "copy what it points to into the workspace",
        );
        return None;
    }
    if let Ok(meta) = fs::metadata(&path)
        && !meta.is_file()
    {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            special_kind(meta.file_type())
        };
        check.error(
            span,
            format!("template `templates/{src}` is {kind}, not a file"),
            "",
        );
        return None;
    }
    match fs::read(&path) {
        Ok(bytes) => {
            let Ok(text) = String::from_utf8(bytes) else {
                let message = format!("template `templates/{src}` is not UTF-8 text");
                check.error(span, message, "");
                return None;
            };
            Some(text)
        }
        Err(err) => {
            check.error(
                span,
                format!("cannot read template `templates/{src}`: {err}"),
                "no such template",
            );
            None
        }
    }
}

/// `shared`: directories kept across releases, none of them over a path
/// of the release.
pub(super) fn resolve_shared(
    check: &mut Checker,
    claims: &Claims<'_>,
    raw: Vec<Spanned<String>>,
) -> Vec<String> {
    let mut shared = Vec::new();
    for dir in raw {
        let Some(dst) = check_dst(check, &dir) else {
            continue;
        };
        let inside = claims.at_or_below(&dst);
        if let Some(inside) = inside {
            check.error(
                dir.span(),
                format!("shared directory `{dst}` overlaps `{inside}` of the release"),
                "",
            );
        }
        shared.push(dst);
    }
    shared
}

fn parse_mode(check: &mut Checker, mode: &Spanned<String>) -> Option<u32> {
    let text = mode.get_ref();
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(value) if (3..=4).contains(&digits.len()) && value <= 0o7777 => Some(value),
        _ => {
            check.error(
                mode.span(),
                format!("invalid mode `{text}`"),
                "write an octal mode such as `0644` or `0640`",
            );
            None
        }
    }
}

fn check_dst(check: &mut Checker, dst: &Spanned<String>) -> Option<String> {
    let text = dst.get_ref().trim_end_matches('/');
    if dst.get_ref().starts_with('/') {
        check.error(
            dst.span(),
            format!("`{}` is absolute", dst.get_ref()),
            "destinations are relative to the release directory",
        );
        None
    } else if text.split('/').any(|c| c == "..") {
        check.error(
            dst.span(),
            format!("`{}` escapes the release directory", dst.get_ref()),
            "`..` is not allowed here",
        );
        None
    } else if text.is_empty() || !clean_components(text) {
        check.error(
            dst.span(),
            format!(
                "invalid destination `{}`",
                crate::diag::shown(dst.get_ref())
            ),
            "use a relative path without `.`, `..` or control characters",
        );
        None
    } else if crate::assemble::reserved(text)
        || text
            .split('/')
            .next()
            .is_some_and(|top| top == crate::service::SERVICE_DIR)
    {
        check.error(
            dst.span(),
            format!("`{text}` is landfall's own in every release"),
            "choose another destination",
        );
        None
    } else {
        Some(text.to_string())
    }
}

fn check_src(check: &mut Checker, workspace: &Workspace, src: &Spanned<String>) -> Option<PathBuf> {
    let rel = Path::new(src.get_ref());
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        check.error(
            src.span(),
            format!("`{}` is outside the workspace", src.get_ref()),
            "sources are workspace-relative",
        );
        return None;
    }
    let path = workspace.root.join(rel);
    if fs::symlink_metadata(&path).is_err() {
        check.error(
            src.span(),
            format!("no such file or directory `{}`", src.get_ref()),
            "",
        );
        return None;
    }
    Some(path)
}

/// Lists the files under a source (a file or a directory, hidden files
/// included), sorted, with their destinations.
fn list_sources(
    check: &mut Checker,
    workspace: &Workspace,
    src: &Path,
    dst: &str,
    span: Range<usize>,
) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let root = fs::canonicalize(&workspace.root).unwrap_or_else(|_| workspace.root.clone());
    // A symlink (to a file or a directory) must resolve inside the
    // workspace; one that escapes is reported and not followed.
    let mut escaping = Vec::new();
    // Sorted by name: the paths of one directory differ only there, and
    // comparing them whole spares taking each name apart.
    let walker = walkdir::WalkDir::new(src)
        .follow_links(true)
        .sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()))
        .into_iter();
    let target_dir = fs::canonicalize(&workspace.target_dir).ok();
    let walker = walker.filter_entry(|entry| {
        // A repository's own data and the build's output are never a
        // release's files, even under `src = "."`.
        if entry.depth() > 0
            && (entry.file_name() == ".git"
                || target_dir.as_deref().is_some_and(|t| entry.path() == t)
                || (entry.depth() == 1
                    && src == workspace.root.as_path()
                    && entry.file_name() == "target"))
        {
            return false;
        }
        let inside = !entry.path_is_symlink()
            || fs::canonicalize(entry.path()).is_ok_and(|target| target.starts_with(&root));
        if !inside {
            escaping.push(entry.path().to_path_buf());
        }
        inside
    });
    let mut entries = Vec::new();
    for entry in walker {
        match entry {
            Ok(entry) if entry.file_type().is_dir() => {}
            Ok(entry) if !entry.file_type().is_file() => {
                let kind = special_kind(entry.file_type());
                check.error(
                    span.clone(),
                    format!(
                        "`{}` is {kind}: only files, directories and links are deployed",
                        workspace.display(entry.path())
                    ),
                    "",
                );
            }
            Ok(entry) => entries.push(entry.into_path()),
            Err(err) => {
                check.error(
                    span.clone(),
                    format!("cannot read `{}`: {err}", workspace.display(src)),
                    "",
                );
            }
        }
    }
    for path in escaping {
        check.error(
            span.clone(),
            format!(
                "symlink `{}` points outside the workspace",
                workspace.display(&path)
            ),
            "copy what it points to into the workspace",
        );
    }
    for path in entries {
        let path = path.as_path();
        let rel = path.strip_prefix(src).unwrap_or(Path::new(""));
        let Some(rel) = rel.to_str() else {
            check.error(
                span.clone(),
                format!("file name `{}` is not UTF-8", workspace.display(path)),
                "",
            );
            continue;
        };
        let dst = if rel.is_empty() {
            dst.to_string()
        } else {
            format!("{dst}/{rel}")
        };
        if !clean_components(&dst) {
            check.error(
                span.clone(),
                format!(
                    "file name `{}` has control characters",
                    crate::diag::shown(&dst)
                ),
                "",
            );
            continue;
        }
        out.push((path.to_path_buf(), dst));
    }
    out
}

/// What a file that is neither a regular file nor a directory is, as a
/// message says it.
fn special_kind(kind: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}
