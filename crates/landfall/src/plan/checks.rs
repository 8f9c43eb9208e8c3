//! A rollout's checks rendered for one host (`[[artifact.X.rollout.check]]`):
//! an `http` URL, an `exec` command (its values shell-quoted, as a hook's)
//! and a Prometheus server and query.
//!
//! A query may name the hosts on the new release and the others, as
//! `new` and `old` (each with `hosts`, `addresses` and `instances`), which
//! only the rollout knows, batch after batch. They render here as markers,
//! which [`RenderedCheck::query_for`] replaces with regular expressions
//! for a query's label matcher, such as `instance=~"{{ new.instances }}"`.

use std::time::Duration;

use serde::Serialize;

use crate::config::{Bound, Check, Probe};

/// A check rendered for one host.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedCheck {
    pub name: String,
    pub timeout: Duration,
    pub probe: RenderedProbe,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RenderedProbe {
    Http {
        url: String,
        status: Option<u16>,
        body: Option<String>,
    },
    /// Run with `sh -c` on the deploying machine.
    Exec { command: String },
    Prometheus {
        server: String,
        /// With the markers of `new` and `old`.
        query: String,
        bound: Bound,
    },
}

impl RenderedCheck {
    /// What kind of check it is, as the configuration names it.
    pub fn kind(&self) -> &'static str {
        match self.probe {
            RenderedProbe::Http { .. } => "http",
            RenderedProbe::Exec { .. } => "exec",
            RenderedProbe::Prometheus { .. } => "prometheus",
        }
    }
}

/// The hosts of the artifact on the new release (`new`) and on another
/// one (`old`), each host as its name and address.
#[derive(Debug, Clone, Default)]
pub struct Sets<'a> {
    pub new: Vec<(&'a str, &'a str)>,
    pub old: Vec<(&'a str, &'a str)>,
}

/// `new` and `old` in a check's template: markers, replaced at run time.
#[derive(Debug, Serialize)]
pub(crate) struct SetView {
    hosts: String,
    addresses: String,
    instances: String,
}

impl SetView {
    pub(crate) fn markers(set: &str) -> SetView {
        SetView {
            hosts: marker(set, "hosts"),
            addresses: marker(set, "addresses"),
            instances: marker(set, "instances"),
        }
    }
}

fn marker(set: &str, field: &str) -> String {
    format!("\u{1}{set}.{field}\u{1}")
}

/// A regular expression that matches nothing, for an empty set: RE2, which
/// Prometheus uses, anchors it, and nothing follows the end.
const NOTHING: &str = "$.^";

impl RenderedProbe {
    /// The query with `new` and `old` written out for `sets`: each a
    /// regular expression (escaped for a query's string in double quotes)
    /// that matches any of the set's host names (`hosts`), addresses
    /// (`addresses`), or either, with or without a port (`instances`, for
    /// the `instance` label).
    pub fn query_for(query: &str, sets: &Sets<'_>) -> String {
        let mut out = query.to_string();
        for (set, hosts) in [("new", &sets.new), ("old", &sets.old)] {
            let names: Vec<&str> = hosts.iter().map(|(name, _)| *name).collect();
            let addresses: Vec<&str> = hosts.iter().map(|(_, address)| *address).collect();
            let mut either: Vec<&str> = names.iter().chain(&addresses).copied().collect();
            either.sort_unstable();
            either.dedup();
            let instances = if either.is_empty() {
                NOTHING.to_string()
            } else {
                format!("(?:{})(?::[0-9]+)?", alternation(&either))
            };
            out = out
                .replace(&marker(set, "hosts"), &alternation(&names))
                .replace(&marker(set, "addresses"), &alternation(&addresses))
                .replace(&marker(set, "instances"), &instances);
        }
        out
    }
}

/// `a|b|c`, each escaped for RE2 and then for a query's string; nothing
/// matches an empty one.
fn alternation(words: &[&str]) -> String {
    if words.is_empty() {
        return NOTHING.to_string();
    }
    words
        .iter()
        .map(|w| {
            let mut out = String::new();
            for c in w.chars() {
                if !c.is_ascii_alphanumeric() && c != '-' && c != '_' {
                    // `\.` in the expression is `\\.` in the string.
                    out.push_str("\\\\");
                }
                if c == '"' {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// What a check renders to for one host, given how each kind of field
/// renders: `text` verbatim, `command` shell-quoted, both with the
/// context's `new` and `old` as markers.
pub(crate) fn render<E>(
    check: &Check,
    text: &mut dyn FnMut(&crate::config::Hook) -> Result<String, E>,
    command: &mut dyn FnMut(&crate::config::Hook) -> Result<String, E>,
) -> Result<RenderedCheck, E> {
    let probe = match &check.probe {
        Probe::Http { url, status, body } => RenderedProbe::Http {
            url: text(url)?,
            status: *status,
            body: body.clone(),
        },
        Probe::Exec { command: c } => RenderedProbe::Exec {
            command: command(c)?,
        },
        Probe::Prometheus {
            server,
            query,
            bound,
        } => RenderedProbe::Prometheus {
            server: text(server)?,
            query: text(query)?,
            bound: *bound,
        },
    };
    Ok(RenderedCheck {
        name: check.name.clone(),
        timeout: check.timeout,
        probe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_become_regular_expressions_for_a_promql_string() {
        let query = format!(
            "rate(x{{instance=~\"{}\"}}) / rate(x{{instance=~\"{}\", host=~\"{}\"}})",
            marker("new", "instances"),
            marker("old", "instances"),
            marker("new", "hosts"),
        );
        let sets = Sets {
            new: vec![("web1", "127.0.0.2")],
            old: vec![],
        };
        assert_eq!(
            RenderedProbe::query_for(&query, &sets),
            "rate(x{instance=~\"(?:127\\\\.0\\\\.0\\\\.2|web1)(?::[0-9]+)?\"}) / \
             rate(x{instance=~\"$.^\", host=~\"web1\"})"
        );
    }

    #[test]
    fn a_set_of_several_hosts_is_an_alternation() {
        let sets = Sets {
            new: vec![("a", "10.0.0.1"), ("b-2", "10.0.0.2")],
            old: vec![("c", "c.example")],
        };
        assert_eq!(
            RenderedProbe::query_for(&marker("new", "addresses"), &sets),
            "10\\\\.0\\\\.0\\\\.1|10\\\\.0\\\\.0\\\\.2"
        );
        assert_eq!(
            RenderedProbe::query_for(&marker("new", "hosts"), &sets),
            "a|b-2"
        );
        assert_eq!(
            RenderedProbe::query_for(&marker("old", "instances"), &sets),
            "(?:c|c\\\\.example)(?::[0-9]+)?"
        );
    }
}
