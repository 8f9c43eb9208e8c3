//! Where each variable of a host comes from, for `cargo deploy config
//! --annotate`: deploy.toml, the environment, the host or the command line,
//! with file and line, and the values it overrode.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Environment, Host, Project};
use crate::diag::SourceFile;

/// The layers of variables, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Deploy,
    Environment,
    Host,
    CommandLine,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Origin {
    pub layer: Layer,
    /// `file:line`, or `--var` for the command line.
    pub at: String,
}

/// One variable, by its dotted path, with the value a host sees.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Variable {
    pub key: String,
    #[schemars(with = "serde_json::Value")]
    pub value: toml::Value,
    pub origin: Origin,
    /// Weaker layers that set it too, weakest first.
    pub overrides: Vec<Origin>,
}

/// The file and table path a layer's keys are written at.
type Source<'a> = Option<(&'a SourceFile, &'a [&'a str])>;

/// The variables of `host`, each with where it came from.
pub fn annotate(project: &Project, env: &Environment, host: &Host) -> Vec<Variable> {
    let host_path = ["hosts", host.name.as_str(), "vars"];
    let layers: [(Layer, &toml::Table, Source<'_>); 4] = [
        (
            Layer::Deploy,
            &project.vars,
            Some((&project.file, &["vars"][..])),
        ),
        (
            Layer::Environment,
            &env.vars,
            Some((&env.file, &["vars"][..])),
        ),
        (Layer::Host, &host.vars, Some((&env.file, &host_path[..]))),
        (Layer::CommandLine, &env.overrides, None),
    ];
    let merged = crate::template::host_vars(project, env, host);
    let mut set_by: BTreeMap<String, Vec<Origin>> = BTreeMap::new();
    for (layer, table, source) in layers {
        let lines = source
            .map(|(file, path)| key_lines(&file.text, path))
            .unwrap_or_default();
        for (key, _) in leaves(table) {
            let at = match source {
                Some((file, _)) => match lines.get(&key) {
                    Some(line) => format!("{}:{line}", file.display),
                    None => file.display.clone(),
                },
                None => "--var".to_string(),
            };
            set_by.entry(key).or_default().push(Origin { layer, at });
        }
    }
    leaves(&merged)
        .into_iter()
        .map(|(key, value)| {
            let mut origins = set_by.remove(&key).unwrap_or_default();
            let origin = origins.pop().unwrap_or(Origin {
                layer: Layer::Deploy,
                at: String::new(),
            });
            Variable {
                key,
                value: value.clone(),
                origin,
                overrides: origins,
            }
        })
        .collect()
}

/// Every non-table value of `table` by dotted path (an empty table counts
/// as a value).
pub fn leaves(table: &toml::Table) -> Vec<(String, &toml::Value)> {
    fn walk<'t>(prefix: &str, table: &'t toml::Table, out: &mut Vec<(String, &'t toml::Value)>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                dotted_key(key)
            } else {
                format!("{prefix}.{}", dotted_key(key))
            };
            match value {
                toml::Value::Table(inner) if !inner.is_empty() => walk(&path, inner, out),
                _ => out.push((path, value)),
            }
        }
    }
    let mut out = Vec::new();
    walk("", table, &mut out);
    out
}

/// A key as TOML writes it: bare where it can be, quoted otherwise.
fn dotted_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}

/// The line of every leaf key under the table at `path` of a TOML text.
fn key_lines(text: &str, path: &[&str]) -> BTreeMap<String, usize> {
    use toml::de::{DeTable, DeValue};
    fn walk(text: &str, prefix: &str, table: &DeTable<'_>, out: &mut BTreeMap<String, usize>) {
        for (key, value) in table {
            let name = dotted_key(key.get_ref());
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            match value.get_ref() {
                DeValue::Table(inner) if !inner.is_empty() => walk(text, &path, inner, out),
                _ => {
                    let line = text[..key.span().start.min(text.len())]
                        .matches('\n')
                        .count()
                        + 1;
                    out.insert(path, line);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    let Ok(root) = DeTable::parse(text) else {
        return out;
    };
    let mut table = root.get_ref();
    for segment in path {
        let next = table
            .iter()
            .find(|(k, _)| k.get_ref() == segment)
            .map(|(_, v)| v.get_ref());
        match next {
            Some(DeValue::Table(inner)) => table = inner,
            _ => return out,
        }
    }
    walk(text, "", table, &mut out);
    out
}

/// Parses `KEY=VALUE` from the command line. `KEY` may be dotted; `VALUE`
/// is read as a TOML value when it is one (`8080`, `true`, `[1, 2]`) and
/// as a string otherwise.
pub fn parse_override(arg: &str, into: &mut toml::Table) -> Result<(), String> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(format!("`--var {arg}`: expected KEY=VALUE"));
    };
    let segments: Vec<&str> = key.split('.').collect();
    let valid = segments.iter().all(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !valid {
        return Err(format!(
            "`--var {arg}`: `{key}` is not a variable name (letters, digits, `_` and `-`, \
             dotted for tables)"
        ));
    }
    let value = if value.contains('\n') {
        toml::Value::String(value.to_string())
    } else {
        toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .filter(|t| t.len() == 1)
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()))
    };
    let (last, parents) = segments.split_last().expect("split yields one segment");
    let mut table = into;
    for segment in parents {
        let entry = table
            .entry((*segment).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("made a table");
    }
    table.insert((*last).to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::Fixture;

    #[test]
    fn host_beats_environment_beats_deploy_and_the_command_line_beats_all() {
        let fixture = Fixture::new(&[
            (
                "deploy.toml",
                "[vars]\nport = 80\ngreeting = \"hi\"\ndb = { host = \"db\", port = 5432 }\n\
                 \n[artifact.web]\nroles = [\"web\"]\npath = \"/srv/web\"\n",
            ),
            (
                "environments/dev.toml",
                "[vars]\nport = 81\ndb.port = 6432\n\n[hosts.web1]\nroles = [\"web\"]\n\
                 vars = { port = 82 }\n[hosts.web2]\nroles = [\"web\"]\n",
            ),
        ]);
        let (project, mut env) = fixture.load("dev");
        parse_override("greeting=hello there", &mut env.overrides).unwrap();
        let show = |host: usize| -> Vec<String> {
            annotate(&project, &env, &env.hosts[host])
                .iter()
                .map(|v| {
                    let over: Vec<&str> = v.overrides.iter().map(|o| o.at.as_str()).collect();
                    format!(
                        "{} = {} @ {} < {}",
                        v.key,
                        v.value,
                        v.origin.at,
                        over.join(" < ")
                    )
                })
                .collect()
        };
        assert_eq!(
            show(0),
            [
                "db.host = \"db\" @ deploy.toml:4 < ",
                "db.port = 6432 @ environments/dev.toml:3 < deploy.toml:4",
                "greeting = \"hello there\" @ --var < deploy.toml:3",
                "port = 82 @ environments/dev.toml:7 < deploy.toml:2 < environments/dev.toml:2",
            ]
        );
        assert_eq!(
            show(1)[3],
            "port = 81 @ environments/dev.toml:2 < deploy.toml:2"
        );
    }

    #[test]
    fn command_line_values_are_typed_when_they_can_be() {
        let mut t = toml::Table::new();
        for arg in [
            "a=8080",
            "b=true",
            "c=hello world",
            "d.e=[1, 2]",
            "f=x = 1",
            "g=",
        ] {
            parse_override(arg, &mut t).unwrap();
        }
        assert_eq!(
            toml::to_string(&t).unwrap(),
            "a = 8080\nb = true\nc = \"hello world\"\nf = \"x = 1\"\ng = \"\"\n\n[d]\ne = [1, 2]\n"
        );
        assert!(
            parse_override("nokey", &mut t)
                .unwrap_err()
                .contains("expected KEY=VALUE")
        );
        assert!(parse_override("a..b=1", &mut t).is_err());
        assert!(parse_override("$(x)=1", &mut t).is_err());
    }
}
