//! Templates: per-host rendering of configuration files and hook commands
//! with minijinja.
//!
//! Undefined values are errors and a final newline is kept. Files are not
//! escaped: their output is byte for byte what the template says. Hooks
//! are shell commands, so every value interpolated into one is
//! shell-quoted: a variable holding `$(reboot)` or `'; rm -rf /` stays one
//! word of data. `{{ x | safe }}` opts out, for a deliberate fragment of
//! shell. Errors point into the template with its line, for the host being
//! rendered. A rendering stops as soon as it passes [`RENDERED_LIMIT`]: a
//! loop gone wrong is an error, not gigabytes in memory.
//!
//! A template sees `env`, `host`, `hosts`, `vars`, `secrets` and
//! `artifact` (see [`Context`]), and can call `hosts_with_role()`.
//! `secrets` notes whether a rendering read it, which makes a file private
//! (0600 unless its mode is given); or, for the commands that need no
//! identity and for masked renderings, it stands for every secret as the
//! mask, `********`.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use minijinja::value::{Enumerator, Object, ObjectRepr, Serde, Value};
use minijinja::{AutoEscape, Environment as Jinja, UndefinedBehavior};
use serde::Serialize;

use crate::config::{Artifact, Environment, Host, Project, merge_vars};
use crate::diag::{Diagnostic, SourceFile};
use crate::secrets::{self, Secrets};

/// What a template sees, for one host and one artifact.
#[derive(Debug, Serialize)]
pub(crate) struct Context<'a> {
    pub(crate) env: &'a str,
    pub(crate) host: HostView<'a>,
    pub(crate) hosts: Vec<HostView<'a>>,
    pub(crate) vars: toml::Table,
    /// A `SecretsObject`: it notes whether a template read it.
    pub(crate) secrets: Value,
    pub(crate) artifact: ArtifactView<'a>,
    /// In a rollout check only: the hosts on the new release, and the
    /// others (see [`crate::plan::checks`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) new: Option<crate::plan::checks::SetView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) old: Option<crate::plan::checks::SetView>,
    #[serde(skip)]
    secrets_read: Arc<AtomicBool>,
}

impl Context<'_> {
    /// Whether the last [`render`] with this context read a secret.
    pub(crate) fn read_secrets(&self) -> bool {
        self.secrets_read.load(Ordering::Relaxed)
    }
}

/// `secrets` in templates. Reading any of it marks the rendering as
/// secret-bearing, which makes the file private (0600) unless its mode is
/// given.
#[derive(Debug)]
struct SecretsObject {
    /// `None`: every value is a placeholder.
    values: Option<Value>,
    read: Arc<AtomicBool>,
}

impl Object for SecretsObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        // `secrets.x is defined` reads nothing when there is no `x`.
        let value = match &self.values {
            Some(values) => values.get_item(key).ok().filter(|v| !v.is_undefined()),
            None => Some(Value::from_object(Placeholder)),
        };
        if value.is_some() {
            self.read.store(true, Ordering::Relaxed);
        }
        value
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = match &self.values {
            Some(values) => values.try_iter().map(Iterator::collect).unwrap_or_default(),
            None => Vec::new(),
        };
        if !keys.is_empty() {
            self.read.store(true, Ordering::Relaxed);
        }
        Enumerator::Values(keys)
    }
}

/// A secret whose value is not known: renders as the mask, and so does
/// any part of it.
#[derive(Debug)]
struct Placeholder;

impl Object for Placeholder {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from_object(Placeholder))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(secrets::MASK)
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HostView<'a> {
    pub(crate) name: &'a str,
    pub(crate) address: &'a str,
    pub(crate) roles: &'a [String],
    pub(crate) vars: &'a toml::Table,
}

#[derive(Debug, Serialize)]
pub(crate) struct ArtifactView<'a> {
    pub(crate) name: &'a str,
    pub(crate) path: &'a str,
    pub(crate) roles: &'a [String],
    pub(crate) bins: Vec<&'a str>,
}

fn host_view(host: &Host) -> HostView<'_> {
    HostView {
        name: &host.name,
        address: &host.address,
        roles: &host.roles,
        vars: &host.vars,
    }
}

/// The variables of a host: deploy.toml < environment < host < command
/// line.
pub(crate) fn host_vars(project: &Project, env: &Environment, host: &Host) -> toml::Table {
    let mut vars = project.vars.clone();
    merge_vars(&mut vars, &env.vars);
    merge_vars(&mut vars, &host.vars);
    merge_vars(&mut vars, &env.overrides);
    vars
}

pub(crate) fn context<'a>(
    project: &Project,
    env: &'a Environment,
    host: &'a Host,
    artifact: &'a Artifact,
    secrets: &Secrets,
) -> Context<'a> {
    let read = Arc::new(AtomicBool::new(false));
    Context {
        env: &env.name,
        host: host_view(host),
        hosts: env.hosts.iter().map(host_view).collect(),
        vars: host_vars(project, env, host),
        secrets: Value::from_object(SecretsObject {
            values: secrets.table().map(|t| Value::from(Serde(t))),
            read: read.clone(),
        }),
        artifact: ArtifactView {
            name: &artifact.name,
            path: &artifact.path,
            roles: &artifact.roles,
            bins: artifact.bins.iter().map(|b| b.name.as_str()).collect(),
        },
        new: None,
        old: None,
        secrets_read: read,
    }
}

/// The most a template (a file, or a hook) may render to.
pub(crate) const RENDERED_LIMIT: usize = 64 << 20;

/// A rendering's output, refused once it would pass [`RENDERED_LIMIT`].
#[derive(Debug, Default)]
struct Bounded {
    out: Vec<u8>,
    over: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > RENDERED_LIMIT {
            self.over = true;
            return Err(std::io::Error::other("the rendering is too large"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The name hooks are rendered under: it selects shell quoting.
const HOOK: &str = "<hook>";

/// The escaping of hooks: every interpolated value becomes one shell word.
const SHELL: AutoEscape = AutoEscape::Custom(std::borrow::Cow::Borrowed("sh"));

/// A template environment configured the way landfall renders: files
/// verbatim, hooks with every interpolated value shell-quoted.
pub(crate) fn engine() -> Jinja<'static> {
    let mut jinja = Jinja::new();
    jinja.set_undefined_behavior(UndefinedBehavior::Strict);
    jinja.set_auto_escape_callback(|name| {
        if name == HOOK {
            SHELL
        } else {
            AutoEscape::None
        }
    });
    jinja.set_formatter(|out, state, value| {
        if *state.auto_escape() == SHELL && !value.is_safe() {
            let text = value.to_string();
            // sh cannot hold a NUL: a value with one would run as
            // something else than it says.
            if text.contains('\0') {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "a value holds a NUL character, which no shell command can",
                ));
            }
            let word = crate::process::quote(&text);
            out.write_str(&word).map_err(minijinja::Error::from)
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    jinja.add_filter("toml", toml_value);
    jinja.set_debug(true);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("the default syntax is valid");
    jinja.set_syntax(syntax);
    jinja
}

/// `{{ value | toml }}`: the value written as a TOML value (a string
/// quoted and escaped, a table inline), so that whatever a variable holds,
/// the rendered file parses and reads back the same value. `tojson` does
/// the same for JSON.
fn toml_value(value: &Value) -> Result<String, minijinja::Error> {
    let invalid = |why: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, why);
    if value.is_undefined() || value.is_none() {
        return Err(invalid(format!(
            "`toml` cannot write {value:?}: TOML has no null"
        )));
    }
    let toml = toml::Value::try_from(value)
        .map_err(|err| invalid(format!("`toml` cannot write this value: {err}")))?;
    Ok(toml.to_string())
}

/// Where a template's text sits in its source file.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// Verbatim, from this byte offset: errors point at the exact spot.
    At(usize),
    /// Somewhere in this span, transformed (a TOML string with escapes):
    /// errors point at the whole span.
    Within(Range<usize>),
}

impl Origin {
    /// The origin of a TOML string value whose span (quotes included) is
    /// `span`: exact when the raw text between the delimiters is the value.
    pub(crate) fn of_toml_string(file_text: &str, span: Range<usize>, value: &str) -> Origin {
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

/// Renders a file's `text`, which comes from `source` at `origin`, for one
/// host, verbatim; errors point into the source.
pub(crate) fn render(
    jinja: &Jinja<'_>,
    source: &Arc<SourceFile>,
    text: &str,
    origin: &Origin,
    context: &Context<'_>,
) -> Result<String, Diagnostic> {
    render_named(jinja, "<file>", source, text, origin, context)
}

/// Renders a hook's command for one host, with every interpolated value
/// shell-quoted (unless marked `safe`); errors point into the source.
pub(crate) fn render_hook(
    jinja: &Jinja<'_>,
    source: &Arc<SourceFile>,
    text: &str,
    origin: &Origin,
    context: &Context<'_>,
) -> Result<String, Diagnostic> {
    render_named(jinja, HOOK, source, text, origin, context)
}

fn render_named(
    jinja: &Jinja<'_>,
    name: &str,
    source: &Arc<SourceFile>,
    text: &str,
    origin: &Origin,
    context: &Context<'_>,
) -> Result<String, Diagnostic> {
    context.secrets_read.store(false, Ordering::Relaxed);
    let mut output = Bounded::default();
    let result = jinja
        .template_from_named_str(name, text)
        .and_then(|template| template.render_captured_to(Value::from(Serde(context)), &mut output))
        .map(|_| String::from_utf8(output.out).expect("templates write text"));
    result.map_err(|err| {
        let mut message = format!(
            "cannot render `{}` for host `{}`",
            source.display, context.host.name
        );
        if output.over {
            message = format!(
                "{message}: it renders to more than {} MiB, the most a template may render to",
                RENDERED_LIMIT >> 20
            );
        } else if let Some(detail) = err.detail() {
            message = format!("{message}: {detail}");
        } else {
            message = format!("{message}: {}", err.kind());
        }
        let span = match (origin, err.range()) {
            // Its output, not a part of it, is too large: the template is
            // named by its first line, not shown whole.
            (Origin::At(offset), _) if output.over => {
                *offset..offset + text.find('\n').unwrap_or(text.len())
            }
            (Origin::At(offset), Some(r)) => offset + r.start..offset + r.end,
            (Origin::At(offset), None) => *offset..offset + text.len(),
            (Origin::Within(span), _) => span.clone(),
        };
        let label = if output.over {
            "this template".to_string()
        } else {
            err.kind().to_string()
        };
        let diag = Diagnostic::error(message).at(source, span, label);
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
pub(crate) fn add_functions(jinja: &mut Jinja<'_>, env: &Environment) {
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
        let secrets: toml::Table = toml::from_str("token = \"s3cr3t-t0ken\"").unwrap();
        ctx_render_with(text, Some(&secrets)).map(|(text, _)| text)
    }

    /// Renders with these secrets (`None`: placeholders); also says
    /// whether the template read them.
    fn ctx_render_with(
        text: &str,
        secrets: Option<&toml::Table>,
    ) -> Result<(String, bool), Diagnostic> {
        with_context("port = 8080\nname = \"<b>&\"", secrets, |ctx| {
            let src = source(text);
            render(&engine(), &src, text, &Origin::At(0), ctx).map(|out| (out, ctx.read_secrets()))
        })
    }

    fn hook_render(vars: &str, text: &str) -> Result<String, Diagnostic> {
        with_context(vars, None, |ctx| {
            render_hook(&engine(), &source(text), text, &Origin::At(0), ctx)
        })
    }

    /// Calls `f` with a context for host `web1` of `prod` with these
    /// variables and secrets (`None`: placeholders).
    fn with_context<R>(
        vars: &str,
        secrets: Option<&toml::Table>,
        f: impl FnOnce(&Context<'_>) -> R,
    ) -> R {
        let read = Arc::new(AtomicBool::new(false));
        let table: toml::Table = toml::from_str(vars).unwrap();
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
            secrets: Value::from_object(SecretsObject {
                values: secrets.map(|t| Value::from(Serde(t))),
                read: read.clone(),
            }),
            artifact: ArtifactView {
                name: "web",
                path: "/srv/web",
                roles: &roles,
                bins: vec!["hello"],
            },
            new: None,
            old: None,
            secrets_read: read,
        };
        f(&ctx)
    }

    /// `| toml` writes any value so that the file parses and reads back
    /// exactly that value; `| tojson` likewise for JSON.
    #[test]
    fn the_toml_and_tojson_filters_write_values_that_read_back_the_same() {
        let vars = r#"
quote = "in\"fo"
tricky = "back\\slash 'single' \"double\"\nnew line\ttab \u0001 é ✓ \"\"\" '''"
number = 8080
ratio = 0.25
yes = true
list = ["a \"b\"", 'c\d']
table = { host = "db\"1", port = 5432, nested = { on = false } }
"#;
        let expected: toml::Table = toml::from_str(vars).unwrap();
        let render_text = |text: &str, vars: &str| {
            with_context(vars, None, |ctx| {
                render(&engine(), &source(text), text, &Origin::At(0), ctx)
            })
        };
        let template = "quote = {{ vars.quote | toml }}\n\
            tricky = {{ vars.tricky | toml }}\n\
            number = {{ vars.number | toml }}\n\
            ratio = {{ vars.ratio | toml }}\n\
            yes = {{ vars.yes | toml }}\n\
            list = {{ vars.list | toml }}\n\
            table = {{ vars.table | toml }}\n";
        let rendered = render_text(template, vars).unwrap();
        let read: toml::Table =
            toml::from_str(&rendered).unwrap_or_else(|err| panic!("not TOML:\n{rendered}\n{err}"));
        assert_eq!(read, expected, "{rendered}");

        let json = render_text("{{ vars | tojson }}", vars).unwrap();
        let read: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(read, serde_json::to_value(&expected).unwrap(), "{json}");

        // A secret that is not known is written as the quoted mask.
        let rendered = render_text("token = {{ secrets.token | toml }}", "").unwrap();
        assert_eq!(rendered, format!("token = \"{}\"", secrets::MASK));
        // Nothing is not a TOML value: an error, not an empty value.
        let err = render_text("x = {{ none | toml }}", "").unwrap_err();
        assert!(err.to_string().contains("TOML has no null"), "{err}");
    }

    #[test]
    fn hooks_quote_every_interpolated_value() {
        let vars = r#"
evil = "$(touch /tmp/pwned) `id` 'q' \"d\"; x\n -rf"
port = 8080
plain = "a-b_c.d/e:f@g"
empty = ""
list = ["a b", "c"]
"#;
        let hook = |text| hook_render(vars, text).unwrap();
        // Plain words stay as they are, so ordinary hooks read the same.
        assert_eq!(
            hook("curl http://{{ vars.plain }}:{{ vars.port }}/health"),
            "curl http://a-b_c.d/e:f@g:8080/health"
        );
        assert_eq!(hook("x={{ vars.empty }}"), "x=''");
        // Anything else is one quoted word, whatever it holds.
        let evil = hook("echo {{ vars.evil }}");
        assert_eq!(
            evil,
            format!(
                "echo {}",
                crate::process::quote("$(touch /tmp/pwned) `id` 'q' \"d\"; x\n -rf")
            )
        );
        // Filters' results are quoted too; `safe` is the deliberate way out.
        assert_eq!(
            hook("{{ vars.list | join(' ') }}; {{ 'ls -l' | safe }}"),
            "'a b c'; ls -l"
        );
        assert_eq!(hook("{{ host.name }} {{ env }}"), "web1 prod");
        // Files are never quoted.
        assert_eq!(
            with_context(vars, None, |ctx| {
                let text = "{{ vars.evil }}";
                render(&engine(), &source(text), text, &Origin::At(0), ctx).unwrap()
            }),
            "$(touch /tmp/pwned) `id` 'q' \"d\"; x\n -rf"
        );
    }

    #[test]
    fn quoted_hook_values_reach_a_real_shell_intact() {
        let vars = r#"evil = "it's $(echo pwned) `echo pwned` ; echo pwned\n-x ${HOME} \\ *""#;
        let hook = hook_render(vars, "printf %s {{ vars.evil }}").unwrap();
        let out =
            crate::process::run(&crate::process::Cmd::new("sh").arg("-c").arg(&hook)).unwrap();
        assert_eq!(
            out.stdout_text(),
            "it's $(echo pwned) `echo pwned` ; echo pwned\n-x ${HOME} \\ *"
        );
    }

    #[test]
    fn reading_a_secret_is_noticed() {
        let secrets: toml::Table =
            toml::from_str("token = \"abc\"\n[db]\npassword = \"pw\"").unwrap();
        let render = |text| ctx_render_with(text, Some(&secrets)).unwrap();
        assert_eq!(render("port={{ vars.port }}"), ("port=8080".into(), false));
        assert_eq!(render("t={{ secrets.token }}"), ("t=abc".into(), true));
        assert_eq!(render("p={{ secrets.db.password }}"), ("p=pw".into(), true));
        assert_eq!(
            render("{% for k in secrets %}{{ k }} {% endfor %}"),
            ("db token ".into(), true)
        );
        let err = ctx_render_with("{{ secrets.nope }}", Some(&secrets)).unwrap_err();
        assert!(err.message.contains("undefined"), "{}", err.message);
        assert_eq!(
            render("{% if secrets.nope is defined %}x{% endif %}"),
            (String::new(), false)
        );
    }

    #[test]
    fn placeholders_stand_for_any_secret() {
        assert_eq!(
            ctx_render_with("{{ secrets.db.password }}:{{ secrets.x }}", None).unwrap(),
            ("********:********".into(), true)
        );
    }

    /// A template that rendered to gigabytes was held whole: rendering
    /// stops at the limit, with an error that names template and host.
    #[test]
    fn a_template_that_renders_past_the_limit_is_refused() {
        let text = "head\n{% for i in range(100) %}{{ 'x' * 1048576 }}{% endfor %}\n";
        let err = ctx_render(text).unwrap_err();
        let shown = err.render(false);
        assert!(
            shown.contains("cannot render `t.j2` for host `web1`: it renders to more than 64 MiB"),
            "{shown}"
        );
        // At the limit it renders.
        let text = "{% for i in range(64) %}{{ 'x' * 1048576 }}{% endfor %}";
        assert_eq!(ctx_render(text).unwrap().len(), RENDERED_LIMIT);
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
