//! The step library: the sh functions of `steps/sh/*.sh`, joined in the
//! order `sh/parts.rs` gives into the one text a host receives, taken apart
//! into the lines that open a script and the functions with those each
//! calls, and how a script gets them (inline, or the host's own copy of the
//! whole, named after its hash). It renders no call; see `script.rs`.

/// The step functions: `steps/sh/*.sh` joined, as every host receives them.
pub(super) const FUNCTIONS: &str = include!("sh/parts.rs");

/// `steps.sh` taken apart: the lines outside any function (`set -u`,
/// `umask`), and each function's definition with the step functions it
/// calls. A script carries only the functions it needs, since every byte
/// of it crosses the network on every round trip.
pub(super) struct Library {
    pub(super) preamble: String,
    /// In file order: name, definition, the names it calls.
    pub(super) functions: Vec<(&'static str, &'static str, Vec<&'static str>)>,
    /// Every function, then the line that says the whole was read: what a
    /// host keeps (see [`Functions::Cached`]).
    pub(super) whole: String,
    /// The first 16 hex characters of the blake3 of `whole`, which names
    /// the host's copy.
    pub(super) hash: String,
}

pub(super) fn library() -> &'static Library {
    static LIBRARY: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(|| {
        let mut preamble = String::new();
        let mut functions = Vec::new();
        let mut rest = FUNCTIONS;
        while !rest.is_empty() {
            let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            let line = &rest[..line_end];
            if let Some(name) = line.strip_suffix("() {\n") {
                let end = rest.find("\n}\n").map_or(rest.len(), |i| i + "\n}\n".len());
                functions.push((name, &rest[..end], Vec::new()));
                rest = &rest[end..];
                continue;
            }
            if !line.starts_with('#') && !line.trim().is_empty() {
                preamble.push_str(line);
            }
            rest = &rest[line_end..];
        }
        let names: Vec<&'static str> = functions.iter().map(|(name, _, _)| *name).collect();
        for (name, definition, calls) in &mut functions {
            let body = &definition[name.len()..];
            let words: std::collections::HashSet<&str> = body
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .collect();
            calls.extend(names.iter().copied().filter(|other| words.contains(other)));
        }
        let mut whole: String = functions.iter().map(|(_, def, _)| *def).collect();
        let hash = blake3::hash(whole.as_bytes()).to_hex()[..16].to_string();
        // Set last: a copy that was cut short never says it is whole.
        whole.push_str("landfall_library=");
        whole.push_str(&hash);
        whole.push('\n');
        Library {
            preamble,
            functions,
            whole,
            hash,
        }
    })
}

/// How a script gets the step functions its calls need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Functions {
    /// In the script: the functions its steps call, and those they call.
    Inline,
    /// From the host's own copy of the whole library, which a script sent
    /// with [`Functions::Keep`] left there, named after its hash: only the
    /// calls cross the network. A host without it reports so (see
    /// [`super::Reply::library_missing`]) and runs none of the steps.
    Cached,
    /// The whole library in the script, which the host keeps for the
    /// scripts that come after it; if it cannot, it says so (see
    /// [`super::Reply::library_unkept`]) and runs the steps all the same.
    Keep,
}

/// The exit status of a script whose host lacks the library it needs.
pub(crate) const LIBRARY_MISSING: i32 = 97;

/// The host's copy of the library: in its user's cache directory, named
/// after the library's hash, so that hosts deployed to by different
/// versions of landfall keep one copy of each.
pub(super) const LIBRARY_FILE: &str =
    "landfall_lib=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/landfall/steps-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_functions_parse_as_posix_sh() {
        super::super::assert_parses_as_sh(FUNCTIONS);
    }

    #[test]
    fn every_function_of_the_steps_is_found() {
        assert_eq!(
            library().functions.len(),
            FUNCTIONS.matches("() {\n").count(),
            "every function of steps.sh is found"
        );
    }
}
