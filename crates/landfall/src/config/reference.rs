//! `docs/reference.md` against the code: every key of every table of
//! `deploy.toml` and of an environment file, every JSON event, every
//! `LANDFALL_*` variable and every exit status must be documented there.
//!
//! The keys are not listed here: they are read from the raw serde structs
//! themselves. Every one of them denies unknown fields, so a valid document
//! with `zz_unknown = 1` put into a table fails with serde's "unknown field
//! `zz_unknown`, expected one of `a`, `b`, …", which names every key that
//! table accepts. Each key is then classified by what its value may be (a
//! table, tables by name, an array of tables, or a value), and the tables
//! found that way are read in turn. A table the minimal documents below
//! lack, or a key whose value cannot be classified, fails the test: a key
//! cannot be added without being documented.

use std::collections::{BTreeMap, VecDeque};

use serde::de::DeserializeOwned;

use super::raw;

const REFERENCE: &str = include_str!("../../../../docs/reference.md");
const SCHEMA: &str = include_str!("../../../../docs/json-events.schema.json");

/// The files that set `LANDFALL_*` variables for hooks and services, or read
/// them.
const VARIABLE_SOURCES: [(&str, &str); 7] = [
    ("steps/sh/*.sh", include!("../steps/sh/parts.rs")),
    ("steps/script.rs", include_str!("../steps/script.rs")),
    ("steps/call.rs", include_str!("../steps/call.rs")),
    ("hooks.rs", include_str!("../hooks.rs")),
    ("service/mod.rs", include_str!("../service/mod.rs")),
    (
        "secrets/identity.rs",
        include_str!("../secrets/identity.rs"),
    ),
    ("transport/local.rs", include_str!("../transport/local.rs")),
];

/// Markers of the step scripts that no user sees.
const INTERNAL_VARIABLES: [&str; 2] = ["LANDFALL_INPUT_END", "LANDFALL_LIBRARY_END"];

/// The exit statuses of `cargo-deploy` (`landfall-cli`'s `EXIT_*` and the
/// signals it settles on), which this crate cannot see.
const EXIT_STATUSES: [u8; 6] = [0, 1, 2, 3, 130, 143];

/// The key put into a table to make serde list the keys it accepts.
const UNKNOWN: &str = "zz_unknown";

/// The smallest valid `deploy.toml` that holds every table the reference
/// documents, each with the keys it requires. A table added to the raw
/// structs must be added here too (the test says so).
const DEPLOY_TOML: &str = r#"
[project]
[build]
[vars]
[hooks]

[artifact.NAME]
path = "/srv/NAME"

[[artifact.NAME.files]]
src = "static"
dst = "static"

[[artifact.NAME.templates]]
src = "NAME.toml.j2"
dst = "etc/NAME.toml"

[artifact.NAME.rollout]
[[artifact.NAME.rollout.check]]
http = "http://NAME/"

[artifact.NAME.hooks]
[artifact.NAME.hooks.local]

[artifact.NAME.service]
manager = "systemd"
exec = "bin/NAME"
"#;

/// The smallest valid environment file that holds every table.
const ENVIRONMENT_TOML: &str = r"
[environment]
[vars]
[hosts.NAME]
[secrets]
";

/// A kind of configuration file.
struct File {
    /// As the reference's heading of the file names it.
    name: &'static str,
    minimal: &'static str,
    parse: fn(&str) -> Result<(), String>,
}

fn parse_as<T: DeserializeOwned>(text: &str) -> Result<(), String> {
    toml::from_str::<T>(text)
        .map(drop)
        .map_err(|err| err.message().to_string())
}

const FILES: [File; 2] = [
    File {
        name: "deploy.toml",
        minimal: DEPLOY_TOML,
        parse: parse_as::<raw::DeployFile>,
    },
    File {
        name: "environments/ENV.toml",
        minimal: ENVIRONMENT_TOML,
        parse: parse_as::<raw::EnvironmentFile>,
    },
];

/// A table of a file: where it is, from the document's root (`NAME` for a
/// table of tables by name), and whether it is an entry of an array.
#[derive(Debug, Clone)]
struct Table {
    path: Vec<String>,
    array: bool,
}

impl Table {
    /// As a heading of the reference names it: `[artifact.NAME.service]`,
    /// `[[artifact.NAME.files]]`, or the file itself for its root.
    fn name(&self, file: &File) -> String {
        match (self.path.is_empty(), self.array) {
            (true, _) => file.name.to_string(),
            (false, false) => format!("[{}]", self.path.join(".")),
            (false, true) => format!("[[{}]]", self.path.join(".")),
        }
    }

    fn child(&self, key: &str, array: bool) -> Table {
        let mut path = self.path.clone();
        path.push(key.to_string());
        Table { path, array }
    }
}

/// What the value of a key may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A table with keys of its own: `[artifact.NAME.rollout]`.
    Table,
    /// Tables by name: `[artifact.NAME]`.
    Named,
    /// An array of tables: `[[artifact.NAME.files]]`.
    Array,
    /// A table whose keys are the user's: `[vars]`.
    Free,
    /// Anything else: a string, a number, an array of values.
    Value,
}

/// The table at `path`, the first entry of an array standing for it.
fn table_at<'a>(doc: &'a mut toml::Table, path: &[String]) -> Option<&'a mut toml::Table> {
    let mut table = doc;
    for key in path {
        table = match table.get_mut(key)? {
            toml::Value::Table(inner) => inner,
            toml::Value::Array(items) => items.first_mut()?.as_table_mut()?,
            _ => return None,
        };
    }
    Some(table)
}

/// Parses the minimal document with `key = value` put into the table at
/// `path`, and returns serde's message if that fails.
fn probe(
    file: &File,
    doc: &toml::Table,
    path: &[String],
    key: &str,
    value: &str,
) -> Result<(), String> {
    let mut doc = doc.clone();
    let table = table_at(&mut doc, path)
        .unwrap_or_else(|| panic!("no table `{}` in the minimal {}", path.join("."), file.name));
    let parsed: toml::Table = toml::from_str(&format!("v = {value}")).expect("a TOML value");
    table.insert(key.to_string(), parsed["v"].clone());
    let text = toml::to_string(&doc).expect("a TOML document");
    (file.parse)(&text)
}

/// The keys serde lists after "unknown field `zz_unknown`", or `None` if
/// the message is another.
fn listed_keys(message: &str) -> Option<Vec<String>> {
    let rest = message.strip_prefix(&format!("unknown field `{UNKNOWN}`"))?;
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// Whether a probe failed because a table it put somewhere does not accept
/// `zz_unknown`: the value probed was a table of a struct.
fn denied(result: &Result<(), String>) -> bool {
    result
        .as_ref()
        .is_err_and(|message| listed_keys(message).is_some())
}

/// What the value of `key`, in the table at `path`, may be.
fn classify(file: &File, doc: &toml::Table, table: &Table, key: &str) -> Result<Shape, String> {
    let path = &table.path;
    let unknown = format!("{{ {UNKNOWN} = 1 }}");
    let as_table = probe(file, doc, path, key, &unknown);
    if denied(&as_table) {
        return Ok(Shape::Table);
    }
    if denied(&probe(
        file,
        doc,
        path,
        key,
        &format!("{{ zz_name = {unknown} }}"),
    )) {
        return Ok(Shape::Named);
    }
    if denied(&probe(file, doc, path, key, &format!("[{unknown}]"))) {
        return Ok(Shape::Array);
    }
    // A string tells a value from a table that failed none of the above:
    // serde names the type it expected.
    let message = match probe(file, doc, path, key, "\"zz\"") {
        Ok(()) if as_table.is_ok() => return Ok(Shape::Free),
        Ok(()) => return Ok(Shape::Value),
        Err(message) => message,
    };
    if message.contains("expected struct") {
        return Err(format!(
            "`{}` key `{key}` holds a table that accepts unknown keys: give its struct \
             `#[serde(deny_unknown_fields)]` ({message})",
            table.name(file)
        ));
    }
    if as_table.is_ok() {
        return Ok(Shape::Free);
    }
    let value = message.starts_with("invalid type: string")
        || message.starts_with("unknown variant `zz`")
        || message.starts_with("data did not match any variant");
    if value {
        Ok(Shape::Value)
    } else {
        Err(format!(
            "`{}` key `{key}`: cannot tell what its value is; `{key} = \"zz\"` fails with: {message}",
            table.name(file)
        ))
    }
}

/// The tables of a file and the keys of each, read from its raw structs.
/// Problems (a table the minimal document lacks, a key that cannot be
/// classified) are pushed onto `problems`.
fn tables_of(file: &File, problems: &mut Vec<String>) -> Vec<(Table, Vec<String>)> {
    let doc: toml::Table = toml::from_str(file.minimal).expect("the minimal document is TOML");
    if let Err(message) = (file.parse)(file.minimal) {
        panic!(
            "the minimal {} of reference.rs is not valid: {message}",
            file.name
        );
    }
    let mut found = Vec::new();
    let mut queue = VecDeque::from([Table {
        path: Vec::new(),
        array: false,
    }]);
    while let Some(table) = queue.pop_front() {
        let keys = match probe(file, &doc, &table.path, UNKNOWN, "1") {
            Err(message) => listed_keys(&message)
                .unwrap_or_else(|| panic!("`{}`: unexpected error: {message}", table.name(file))),
            Ok(()) => panic!("`{}` accepts any key", table.name(file)),
        };
        // A message whose form changed would list nothing, and pass.
        assert!(
            !keys.is_empty(),
            "`{}`: no keys read from serde's message",
            table.name(file)
        );
        for key in &keys {
            let child = match classify(file, &doc, &table, key) {
                Ok(Shape::Table) => table.child(key, false),
                Ok(Shape::Named) => table.child(key, false).child("NAME", false),
                Ok(Shape::Array) => table.child(key, true),
                Ok(Shape::Free | Shape::Value) => continue,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let mut probe_doc = doc.clone();
            if table_at(&mut probe_doc, &child.path).is_none() {
                problems.push(format!(
                    "`{}` key `{key}` holds a table that reference.rs does not know: add `{}` \
                     with the keys it requires to the minimal {} in \
                     crates/landfall/src/config/reference.rs, and document it in \
                     docs/reference.md",
                    table.name(file),
                    child.name(file),
                    file.name
                ));
                continue;
            }
            queue.push_back(child);
        }
        found.push((table, keys));
    }
    found
}

/// A heading of the reference and the lines under it, up to the next
/// heading.
struct Section<'a> {
    level: usize,
    title: &'a str,
    lines: Vec<&'a str>,
}

/// The reference split on its headings (`#` lines outside code blocks).
fn sections(text: &str) -> Vec<Section<'_>> {
    let mut sections = vec![Section {
        level: 0,
        title: "",
        lines: Vec::new(),
    }];
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        let level = line.bytes().take_while(|&b| b == b'#').count();
        if !fenced && level > 0 && line[level..].starts_with(' ') {
            sections.push(Section {
                level,
                title: line[level..].trim(),
                lines: Vec::new(),
            });
        } else if let Some(section) = sections.last_mut() {
            section.lines.push(line);
        }
    }
    sections
}

/// The part of the reference under the first heading of level 2 whose
/// title contains `needle`: that section and those nested in it.
fn part<'s, 'a>(sections: &'s [Section<'a>], needle: &str) -> Option<&'s [Section<'a>]> {
    let start = sections
        .iter()
        .position(|s| s.level == 2 && s.title.contains(needle))?;
    let end = sections[start + 1..]
        .iter()
        .position(|s| s.level <= 2)
        .map_or(sections.len(), |i| start + 1 + i);
    Some(&sections[start..end])
}

/// Whether a section lists `name` in a table row or a list item that starts
/// with it in backticks.
fn lists(lines: &[&str], name: &str) -> bool {
    let quoted = format!("`{name}`");
    lines.iter().any(|line| {
        let line = line.trim_start();
        line.strip_prefix('|')
            .or_else(|| line.strip_prefix("- "))
            .is_some_and(|rest| rest.trim_start().starts_with(&quoted))
    })
}

#[test]
fn every_key_of_every_table_is_in_the_reference() {
    let all = sections(REFERENCE);
    let mut problems = Vec::new();
    let mut counts = Vec::new();
    for file in &FILES {
        let tables = tables_of(file, &mut problems);
        let keys: usize = tables.iter().map(|(_, keys)| keys.len()).sum();
        counts.push(format!(
            "{}: {} tables, {keys} keys",
            file.name,
            tables.len()
        ));
        let Some(sections) = part(&all, &format!("`{}`", file.name)) else {
            problems.push(format!(
                "docs/reference.md has no heading of level 2 that names `{}`",
                file.name
            ));
            continue;
        };
        for (table, keys) in &tables {
            let name = table.name(file);
            let section = if table.path.is_empty() {
                Some(&sections[0])
            } else {
                sections
                    .iter()
                    .find(|s| s.title.contains(&format!("`{name}`")))
            };
            let Some(section) = section else {
                problems.push(format!(
                    "docs/reference.md has no heading `{name}` under `{}`",
                    file.name
                ));
                continue;
            };
            for key in keys {
                if !lists(&section.lines, key) {
                    problems.push(format!("`{name}` key `{key}` is not in docs/reference.md"));
                }
            }
        }
    }
    eprintln!("{}", counts.join("; "));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The events a schema names: every object whose `event` is a constant
/// (the library's events are one branch of the lines).
fn names<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(name) = value["properties"]["event"]["const"].as_str() {
                found.push(name);
            }
            map.values().for_each(|v| names(v, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| names(v, found)),
        _ => {}
    }
}

#[test]
fn every_json_event_is_in_the_reference() {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    let mut events = Vec::new();
    names(&schema, &mut events);
    assert!(events.contains(&"summary"), "{events:?}");
    let all = sections(REFERENCE);
    let under = part(&all, "`--message-format json`")
        .expect("docs/reference.md has a heading on `--message-format json`");
    let lines: Vec<&str> = under.iter().flat_map(|s| s.lines.iter().copied()).collect();
    let missing: Vec<String> = events
        .iter()
        .filter(|event| !lists(&lines, event))
        .map(|event| format!("event `{event}` is not in docs/reference.md"))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_landfall_variable_is_in_the_reference() {
    let all = sections(REFERENCE);
    let under = part(&all, "Environment variables")
        .expect("docs/reference.md has a heading `Environment variables`");
    let text: String = under
        .iter()
        .flat_map(|s| s.lines.iter().copied())
        .collect::<Vec<_>>()
        .join("\n");
    // Each name with the first file that uses it.
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for (source, code) in VARIABLE_SOURCES {
        for (at, _) in code.match_indices("LANDFALL_") {
            let name: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.len() > "LANDFALL_".len() && !INTERNAL_VARIABLES.contains(&name.as_str()) {
                names.entry(name).or_insert(source);
            }
        }
    }
    let missing: Vec<String> = names
        .iter()
        .filter(|(name, _)| !text.contains(&format!("`{name}`")))
        .map(|(name, source)| {
            format!("variable `{name}` (used in {source}) is not in docs/reference.md")
        })
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_exit_status_is_in_the_reference() {
    let all = sections(REFERENCE);
    let under = part(&all, "Exit status").expect("docs/reference.md has a heading `Exit status`");
    let lines: Vec<&str> = under.iter().flat_map(|s| s.lines.iter().copied()).collect();
    let missing: Vec<String> = EXIT_STATUSES
        .iter()
        .filter(|status| !lists(&lines, &status.to_string()))
        .map(|status| format!("exit status `{status}` is not in docs/reference.md"))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
