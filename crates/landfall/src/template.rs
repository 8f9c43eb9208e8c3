//! Templates: per-host rendering of configuration files and hook commands
//! with minijinja.
//!
//! Undefined values are errors, nothing is auto-escaped and the output is
//! byte for byte what the template says (a final newline is kept). Errors
//! point into the template with its line, for the host being rendered.

use std::ops::Range;
use std::sync::Arc;

use minijinja::value::{Serde, Value};
use minijinja::{Environment as Jinja, UndefinedBehavior};
use serde::Serialize;

use crate::config::{Artifact, Environment, Host, Project, merge_vars};
use crate::diag::{Diagnostic, SourceFile};

/// What a template sees, for one host and one artifact.
#[derive(Debug, Serialize)]
pub struct Context<'a> {
    pub env: &'a str,
    pub host: HostView<'a>,
    pub hosts: Vec<HostView<'a>>,
    pub vars: toml::Table,
    pub secrets: toml::Table,
    pub artifact: ArtifactView<'a>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostView<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub roles: &'a [String],
    pub vars: &'a toml::Table,
}

#[derive(Debug, Serialize)]
pub struct ArtifactView<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub roles: &'a [String],
    pub bins: Vec<&'a str>,
}

fn host_view(host: &Host) -> HostView<'_> {
    HostView {
        name: &host.name,
        address: &host.address,
        roles: &host.roles,
        vars: &host.vars,
    }
}

/// The variables of a host: deploy.toml < environment < host.
pub fn host_vars(project: &Project, env: &Environment, host: &Host) -> toml::Table {
    let mut vars = project.vars.clone();
    merge_vars(&mut vars, &env.vars);
    merge_vars(&mut vars, &host.vars);
    vars
}

pub fn context<'a>(
    project: &Project,
    env: &'a Environment,
    host: &'a Host,
    artifact: &'a Artifact,
) -> Context<'a> {
    Context {
        env: &env.name,
        host: host_view(host),
        hosts: env.hosts.iter().map(host_view).collect(),
        vars: host_vars(project, env, host),
        secrets: toml::Table::new(),
        artifact: ArtifactView {
            name: &artifact.name,
            path: &artifact.path,
            roles: &artifact.roles,
            bins: artifact.bins.iter().map(|b| b.name.as_str()).collect(),
        },
    }
}

/// A template environment configured the way landfall renders.
pub fn engine() -> Jinja<'static> {
    let mut jinja = Jinja::new();
    jinja.set_undefined_behavior(UndefinedBehavior::Strict);
    jinja.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    jinja.set_debug(true);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("the default syntax is valid");
    jinja.set_syntax(syntax);
    jinja
}

/// Where a template's text sits in its source file.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Verbatim, from this byte offset: errors point at the exact spot.
    At(usize),
    /// Somewhere in this span, transformed (a TOML string with escapes):
    /// errors point at the whole span.
    Within(Range<usize>),
}

impl Origin {
    /// The origin of a TOML string value whose span (quotes included) is
    /// `span`: exact when the raw text between the delimiters is the value.
    pub fn of_toml_string(file_text: &str, span: Range<usize>, value: &str) -> Origin {
        let raw = &file_text[span.clone()];
        for delimiter in ["\"\"\"", "'''", "\"", "'"] {
            let Some(inner) = raw
                .strip_prefix(delimiter)
                .and_then(|r| r.strip_suffix(delimiter))
            else {
                continue;
            };
            // TOML drops a newline right after an opening triple quote.
            let skipped = if delimiter.len() == 3 {
                inner.len()
                    - inner
                        .trim_start_matches("\r\n")
                        .trim_start_matches('\n')
                        .len()
            } else {
                0
            };
            if &inner[skipped..] == value {
                return Origin::At(span.start + delimiter.len() + skipped);
            }
            break;
        }
        Origin::Within(span)
    }
}

/// Renders `text`, which comes from `source` at `origin`, for one host;
/// errors point into the source.
pub fn render(
    jinja: &Jinja<'_>,
    source: &Arc<SourceFile>,
    text: &str,
    origin: &Origin,
    context: &Context<'_>,
) -> Result<String, Diagnostic> {
    let result = jinja.render_str(text, Value::from(Serde(context)));
    result.map_err(|err| {
        let mut message = format!(
            "cannot render `{}` for host `{}`",
            source.display, context.host.name
        );
        if let Some(detail) = err.detail() {
            message = format!("{message}: {detail}");
        } else {
            message = format!("{message}: {}", err.kind());
        }
        let span = match (origin, err.range()) {
            (Origin::At(offset), Some(r)) => offset + r.start..offset + r.end,
            (Origin::At(offset), None) => *offset..offset + text.len(),
            (Origin::Within(span), _) => span.clone(),
        };
        let diag = Diagnostic::error(message).at(source, span, err.kind().to_string());
        match err.kind() {
            minijinja::ErrorKind::UndefinedError => diag.note(format!(
                "known variables: {}",
                context
                    .vars
                    .keys()
                    .map(|k| format!("vars.{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => diag,
        }
    })
}

/// Registers the functions templates may call, which need the whole
/// environment.
pub fn add_functions(jinja: &mut Jinja<'_>, env: &Environment) {
    let hosts: Vec<(Vec<String>, Value)> = env
        .hosts
        .iter()
        .map(|h| (h.roles.clone(), Value::from(Serde(host_view(h)))))
        .collect();
    jinja.add_function("hosts_with_role", move |role: &str| -> Value {
        hosts
            .iter()
            .filter(|(roles, _)| roles.iter().any(|r| r == role))
            .map(|(_, v)| v.clone())
            .collect()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            display: "t.j2".into(),
            text: text.into(),
        })
    }

    fn ctx_render(text: &str) -> Result<String, Diagnostic> {
        let table: toml::Table = toml::from_str("port = 8080\nname = \"<b>&\"").unwrap();
        let roles = vec!["web".to_string()];
        let empty = toml::Table::new();
        let host = HostView {
            name: "web1",
            address: "10.0.0.1",
            roles: &roles,
            vars: &empty,
        };
        let ctx = Context {
            env: "prod",
            host: host.clone(),
            hosts: vec![host],
            vars: table,
            secrets: toml::Table::new(),
            artifact: ArtifactView {
                name: "web",
                path: "/srv/web",
                roles: &roles,
                bins: vec!["hello"],
            },
        };
        let src = source(text);
        render(&engine(), &src, text, &Origin::At(0), &ctx)
    }

    #[test]
    fn renders_byte_exact_without_escaping() {
        assert_eq!(
            ctx_render("a={{ vars.name }}\nport={{ vars.port }}\n\n").unwrap(),
            "a=<b>&\nport=8080\n\n"
        );
        assert_eq!(
            ctx_render("{{ host.name }}@{{ env }}:{{ artifact.path }}").unwrap(),
            "web1@prod:/srv/web"
        );
    }

    #[test]
    fn undefined_values_are_errors_with_a_location() {
        let err = ctx_render("ok\nx = {{ vars.nope }}\n").unwrap_err();
        assert_eq!(
            err.position().as_deref(),
            Some("t.j2:2:8"),
            "{}",
            err.render(false)
        );
        assert!(err.message.contains("for host `web1`"), "{}", err.message);
    }

    #[test]
    fn origins_are_exact_only_for_verbatim_strings() {
        let file = "a = \"x {{ y }}\"\nb = \"q\\\"{{ y }}\"\nc = \"\"\"\nz {{ y }}\"\"\"\n";
        let span = |key: &str| {
            let start = file.find(&format!("{key} = ")).unwrap() + 4;
            start..file[start..].find('\n').map_or(file.len(), |e| start + e)
        };
        assert!(matches!(
            Origin::of_toml_string(file, span("a"), "x {{ y }}"),
            Origin::At(5)
        ));
        assert!(matches!(
            Origin::of_toml_string(file, span("b"), "q\"{{ y }}"),
            Origin::Within(_)
        ));
        let c = file.find("c = ").unwrap() + 4..file.len() - 1;
        assert!(
            matches!(Origin::of_toml_string(file, c, "z {{ y }}"), Origin::At(o) if file[o..].starts_with('z'))
        );
    }
}
