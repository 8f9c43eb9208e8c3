//! Services: an artifact that runs as a long-lived process under systemd
//! or supervisord, its definition rendered per host into the release.
//!
//! A service adds its own files to a release, under [`SERVICE_DIR`]:
//!
//! - `run`, the launcher the manager starts: it enters its release
//!   directory and `exec`s the service's command, so the process is the
//!   service itself and keeps the release it started from as its working
//!   directory;
//! - `env`, the environment, one `KEY='value'` per line (read by systemd as
//!   an `EnvironmentFile=`, and by `--local` with sh); private when a value
//!   reads a secret;
//! - `unit`, the systemd service unit or the supervisord program, and
//!   `socket`, the systemd socket unit that holds `listen`'s sockets.
//!
//! Being files of the release, they are covered by its id, and a rollback
//! installs the definition the release was made with. The rest (manager,
//! name, the readiness check) goes into the release's activation, where the
//! host's steps read it. This module does no IO.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Hook, Manager, Project, Service};
use crate::diag::Diagnostic;
use crate::plan::RenderedFile;
use crate::process::quote;

/// The directory of a release that holds its service's files.
pub const SERVICE_DIR: &str = ".landfall-service";

/// A service rendered for one host.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedService {
    pub manager: Manager,
    pub name: String,
    /// The command, as rendered.
    pub exec: String,
    /// The readiness check as written (rendered), e.g. `http://…/health`.
    pub ready: Option<String>,
    /// The readiness check as the sh command the host runs.
    #[serde(skip)]
    pub ready_command: Option<String>,
    #[serde(serialize_with = "crate::plan::seconds")]
    pub ready_timeout: Duration,
    #[serde(serialize_with = "crate::plan::seconds")]
    pub stop_timeout: Duration,
    pub reload: bool,
    pub listen: Vec<String>,
    /// The release's service files (see the module's documentation).
    #[serde(skip)]
    pub files: Vec<RenderedFile>,
}

/// Renders one field of a service with a context of its own, so that what
/// each field read of the secrets is known: as a shell command (values
/// quoted, like hooks) or as plain text. Returns the text and whether it
/// read a secret.
pub(crate) type Render<'r> = dyn FnMut(&Hook, bool) -> Result<(String, bool), Diagnostic> + 'r;

/// Whether a field is a shell command: `exec`, and `ready = "exec:…"`.
fn is_command(key: &str, hook: &Hook) -> bool {
    key == "exec" || (key == "ready" && hook.text.trim_start().starts_with("exec:"))
}

/// Renders `service` of artifact `artifact` (deployed at `path`) for host
/// `host`, with `render` (the host's template context; `masked` renders
/// with every secret masked, for what a dry run may show).
pub(crate) fn render(
    project: &Project,
    artifact: &str,
    path: &str,
    host: &str,
    service: &Service,
    render: &mut Render<'_>,
    masked: &mut Render<'_>,
) -> Result<RenderedService, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let error = |errors: &mut Vec<Diagnostic>, hook: &Hook, message: String, label: &str| {
        errors.push(Diagnostic::error(message).at(&project.file, hook.span.clone(), label));
    };
    // One line of text that reads no secret: the command, the addresses
    // and the readiness check are shown, and written where anyone may
    // read them.
    let public = |errors: &mut Vec<Diagnostic>,
                  hook: &Hook,
                  key: &str,
                  render: &mut Render<'_>|
     -> Option<String> {
        match render(hook, is_command(key, hook)) {
            Err(diag) => {
                errors.push(diag);
                None
            }
            Ok((_, true)) => {
                error(
                    errors,
                    hook,
                    format!("the service's `{key}` reads a secret (host `{host}`)"),
                    "secrets go in `environment`, which is kept private",
                );
                None
            }
            Ok((text, false)) if text.contains(['\n', '\r']) || text.trim().is_empty() => {
                error(
                    errors,
                    hook,
                    format!(
                        "the service's `{key}` must render to one line that is not empty \
                         (host `{host}`)"
                    ),
                    "",
                );
                None
            }
            Ok((text, false)) => Some(text.trim().to_string()),
        }
    };
    let exec = public(&mut errors, &service.exec, "exec", render);
    let mut listen = Vec::new();
    for address in &service.listen {
        if let Some(text) = public(&mut errors, address, "listen", render) {
            if text.parse::<SocketAddr>().is_ok() {
                listen.push(text);
            } else {
                error(
                    &mut errors,
                    address,
                    format!(
                        "`listen` renders `{text}` for host `{host}`, which is not an address and port"
                    ),
                    "write e.g. `127.0.0.1:8080` or `[::1]:8080`",
                );
            }
        }
    }
    let ready = service
        .ready
        .as_ref()
        .and_then(|hook| Some((hook, public(&mut errors, hook, "ready", render)?)));
    let ready_command = match &ready {
        Some((hook, text)) => match ready_command(text) {
            Ok(command) => Some(command),
            Err(why) => {
                error(
                    &mut errors,
                    hook,
                    format!("`ready` renders `{text}` for host `{host}`: {why}"),
                    "",
                );
                None
            }
        },
        None => None,
    };
    let mut environment = Vec::new();
    let mut masked_environment = Vec::new();
    let mut secret = false;
    for (key, hook) in &service.environment {
        match render(hook, false) {
            Ok((value, read)) => {
                if value.contains(['\n', '\r']) {
                    error(
                        &mut errors,
                        hook,
                        format!("`{key}` renders to more than one line for host `{host}`"),
                        "an environment value is one line",
                    );
                    continue;
                }
                if service.manager == Manager::Supervisor
                    && let Some(why) = supervisor_cannot_hold(&value)
                {
                    error(
                        &mut errors,
                        hook,
                        format!(
                            "`{key}` renders to a value supervisord cannot hold, for host \
                             `{host}`: {why}"
                        ),
                        "",
                    );
                    continue;
                }
                secret |= read;
                let shown = if read {
                    masked(hook, false)
                        .map_or_else(|_| crate::secrets::MASK.to_string(), |(v, _)| v)
                } else {
                    value.clone()
                };
                environment.push((key.clone(), value));
                masked_environment.push((key.clone(), shown));
            }
            Err(diag) => errors.push(diag),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let exec = exec.unwrap_or_default();
    let spec = Spec {
        project: &project.name,
        artifact,
        path,
        service,
        listen: &listen,
    };
    let mut files = vec![RenderedFile {
        dst: format!("{SERVICE_DIR}/run"),
        mode: 0o755,
        contents: launcher(&spec, &exec).into_bytes(),
        secret: false,
        masked: None,
    }];
    let private = if secret { 0o600 } else { 0o644 };
    files.push(RenderedFile {
        dst: format!("{SERVICE_DIR}/env"),
        mode: private,
        contents: env_file(&environment).into_bytes(),
        secret,
        masked: secret.then(|| env_file(&masked_environment).into_bytes()),
    });
    match service.manager {
        Manager::Systemd | Manager::SystemdUser => {
            files.push(RenderedFile {
                dst: format!("{SERVICE_DIR}/unit"),
                mode: 0o644,
                contents: systemd_service(&spec).into_bytes(),
                secret: false,
                masked: None,
            });
            if !listen.is_empty() {
                files.push(RenderedFile {
                    dst: format!("{SERVICE_DIR}/socket"),
                    mode: 0o644,
                    contents: systemd_socket(&spec).into_bytes(),
                    secret: false,
                    masked: None,
                });
            }
        }
        Manager::Supervisor => files.push(RenderedFile {
            dst: format!("{SERVICE_DIR}/unit"),
            mode: private,
            contents: supervisor_program(&spec, &environment).into_bytes(),
            secret,
            masked: secret.then(|| supervisor_program(&spec, &masked_environment).into_bytes()),
        }),
    }
    Ok(RenderedService {
        manager: service.manager,
        name: service.name.clone(),
        exec,
        ready: ready.map(|(_, text)| text),
        ready_command,
        ready_timeout: service.ready_timeout,
        stop_timeout: service.stop_timeout,
        reload: service.reload,
        listen,
        files,
    })
}

/// What every definition is made from.
struct Spec<'a> {
    project: &'a str,
    artifact: &'a str,
    path: &'a str,
    service: &'a Service,
    listen: &'a [String],
}

impl Spec<'_> {
    fn header(&self, comment: &str) -> String {
        format!(
            "{comment} Service `{}` of artifact `{}` of project `{}`, written by landfall.\n\
             {comment} Each activation installs the definition of the release it activates:\n\
             {comment} change deploy.toml, not this file.\n",
            self.service.name, self.artifact, self.project
        )
    }

    fn launcher(&self) -> String {
        format!("{}/current/{SERVICE_DIR}/run", self.path)
    }
}

/// The launcher the manager starts, from `current`: it enters the release
/// it belongs to and becomes the service.
fn launcher(spec: &Spec<'_>, exec: &str) -> String {
    format!(
        "#!/bin/sh\n{}\
         # Runs the service from its release, in the foreground.\n\
         cd -P -- \"${{0%/*}}/..\" || exit 1\n\
         LANDFALL_RELEASE=${{PWD##*/}}\n\
         export LANDFALL_RELEASE\n\
         exec {exec}\n",
        spec.header("#")
    )
}

/// The environment, as both sh and systemd's `EnvironmentFile=` read it.
fn env_file(environment: &[(String, String)]) -> String {
    let mut text = String::from("# The service's environment, written by landfall.\n");
    for (key, value) in environment {
        let _ = writeln!(text, "{key}={}", double_quoted(value));
    }
    text
}

/// A value in double quotes, with `\`, `"`, `$` and `` ` `` escaped by a
/// backslash: sh and systemd (which takes a quote only at the start of a
/// value, and no `'` inside single quotes) read it the same.
fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Why supervisord cannot hold `value` in a program's `environment=`,
/// if it cannot: it splits that line with Python's `shlex` without
/// escapes, takes ` ;` and ` #` for comments, and strips quotes from the
/// ends of each value.
fn supervisor_cannot_hold(value: &str) -> Option<&'static str> {
    if value.contains(" ;") || value.contains(" #") {
        Some("supervisord reads ` ;` and ` #` as the start of a comment")
    } else if value.contains('"') && value.contains('\'') {
        Some("supervisord cannot quote a value that holds both `'` and `\"`")
    } else if value.starts_with(['"', '\'']) || value.ends_with(['"', '\'']) {
        Some("supervisord strips quotes from the ends of a value")
    } else {
        None
    }
}

fn systemd_service(spec: &Spec<'_>) -> String {
    let service = spec.service;
    let mut text = spec.header("#");
    let _ = write!(
        text,
        "\n[Unit]\nDescription={} of {} (landfall)\nAfter=network.target\n",
        spec.artifact, spec.project
    );
    if !spec.listen.is_empty() {
        let _ = writeln!(
            text,
            "Requires={name}.socket\nAfter={name}.socket",
            name = service.name
        );
    }
    let _ = write!(
        text,
        "\n[Service]\nType=exec\nExecStart={launcher}\nSyslogIdentifier={name}\n\
         Environment=LANDFALL_PATH={path}\nEnvironmentFile={path}/current/{SERVICE_DIR}/env\n",
        launcher = spec.launcher(),
        name = service.name,
        path = spec.path,
    );
    if let Some(user) = &service.user {
        let _ = writeln!(text, "User={user}");
    }
    let _ = write!(
        text,
        "Restart=on-failure\nRestartSec=1s\nTimeoutStopSec={}\nKillMode=mixed\n",
        crate::steps::timeout_seconds(service.stop_timeout)
    );
    if service.reload {
        text.push_str("ExecReload=/bin/kill -HUP $MAINPID\n");
    }
    let target = match service.manager {
        Manager::SystemdUser => "default.target",
        _ => "multi-user.target",
    };
    let _ = write!(text, "\n[Install]\nWantedBy={target}\n");
    text
}

fn systemd_socket(spec: &Spec<'_>) -> String {
    let mut text = spec.header("#");
    let _ = write!(
        text,
        "\n[Unit]\nDescription=Sockets of {} of {} (landfall)\n\n[Socket]\n",
        spec.artifact, spec.project
    );
    for address in spec.listen {
        let _ = writeln!(text, "ListenStream={address}");
    }
    text.push_str("\n[Install]\nWantedBy=sockets.target\n");
    text
}

/// A supervisord `[program:…]`. Its log is the artifact's, in
/// `.landfall/service.log`.
fn supervisor_program(spec: &Spec<'_>, environment: &[(String, String)]) -> String {
    let service = spec.service;
    // No escapes: a value is quoted with the quote it does not hold (see
    // `supervisor_cannot_hold`); `%` is doubled, as supervisord expands
    // `%(name)s`.
    let escape = |value: &str| {
        let quote = if value.contains('"') { '\'' } else { '"' };
        format!("{quote}{}{quote}", value.replace('%', "%%"))
    };
    let mut env = format!("LANDFALL_PATH={}", escape(spec.path));
    for (key, value) in environment {
        let _ = write!(env, ",{key}={}", escape(value));
    }
    let mut text = spec.header(";");
    let _ = write!(
        text,
        "\n[program:{name}]\ncommand={launcher}\ndirectory={path}\n",
        name = service.name,
        launcher = spec.launcher(),
        path = spec.path,
    );
    if let Some(user) = &service.user {
        let _ = writeln!(text, "user={user}");
    }
    let _ = write!(
        text,
        "environment={env}\nautostart=true\nautorestart=true\nstartsecs=1\nstartretries=3\n\
         stopsignal=TERM\nstopwaitsecs={stop}\nstopasgroup=true\nkillasgroup=true\n\
         redirect_stderr=true\nstdout_logfile={path}/.landfall/service.log\n\
         stdout_logfile_maxbytes=10MB\nstdout_logfile_backups=3\n",
        stop = crate::steps::timeout_seconds(service.stop_timeout),
        path = spec.path,
    );
    text
}

/// The sh command that checks `ready` once: an HTTP request that must
/// succeed (curl, or wget), a TCP connection (nc, or bash), or the given
/// command.
fn ready_command(ready: &str) -> Result<String, &'static str> {
    if let Some(command) = ready.strip_prefix("exec:") {
        let command = command.trim();
        if command.is_empty() {
            return Err("`exec:` needs a command");
        }
        return Ok(command.to_string());
    }
    if ready.starts_with("http://") || ready.starts_with("https://") {
        let url = quote(ready);
        return Ok(format!(
            "if command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null --max-time 5 {url}; \
             elif command -v wget >/dev/null 2>&1; then wget -q -T 5 -O /dev/null {url}; \
             else echo 'ready: neither curl nor wget is installed on this host' >&2; exit 1; fi"
        ));
    }
    let Some(address) = ready.strip_prefix("tcp://") else {
        return Err("it must start with `http://`, `https://`, `tcp://` or `exec:`");
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or("`tcp://` needs a host and a port, e.g. `tcp://127.0.0.1:8080`")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err("`tcp://` needs a host and a port, e.g. `tcp://127.0.0.1:8080`");
    }
    let (host, port) = (quote(host), quote(port));
    Ok(format!(
        "if command -v nc >/dev/null 2>&1; then nc -z -w 5 {host} {port}; \
         elif command -v bash >/dev/null 2>&1; then bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' {host} {port}; \
         else echo 'ready: neither nc nor bash is installed on this host' >&2; exit 1; fi"
    ))
}

/// The sudoers rules that let `user`, not root, manage the system services
/// of `services` (artifact, path and service): exactly the commands the
/// host's steps run as root for them, and nothing else. `systemd-user`
/// services need none. Install them with `visudo -f /etc/sudoers.d/NAME`.
pub fn sudoers(user: &str, services: &[(&str, &str, &Service)]) -> String {
    let mut text = String::new();
    for (artifact, path, service) in services {
        let name = &service.name;
        let nopasswd = format!("{user} ALL=(root) NOPASSWD:");
        let install = |mode: &str, dst: &str| {
            format!(
                "{nopasswd} /usr/bin/install -m {mode} {path}/releases/*/{SERVICE_DIR}/unit {dst}.landfall-new, \\\n    \
                 /usr/bin/mv -f {dst}.landfall-new {dst}\n"
            )
        };
        let _ = writeln!(
            text,
            "# landfall: {user} manages service `{name}` (artifact `{artifact}`, {path}) as root."
        );
        match service.manager {
            Manager::SystemdUser => {
                let _ = writeln!(text, "# A user's own systemd needs no rule.\n");
            }
            Manager::Systemd => {
                let dir = "/etc/systemd/system";
                let unit = format!("{dir}/{name}.service");
                let socket = format!("{dir}/{name}.socket");
                text.push_str(&install("644", &unit));
                let _ = writeln!(
                    text,
                    "{nopasswd} /usr/bin/install -m 644 {path}/releases/*/{SERVICE_DIR}/socket {socket}.landfall-new, \\\n    \
                     /usr/bin/mv -f {socket}.landfall-new {socket}, \\\n    \
                     /usr/bin/rm -f {socket}, /usr/bin/rm -f {unit} {socket}"
                );
                let _ = writeln!(
                    text,
                    "{nopasswd} /usr/bin/systemctl daemon-reload, \\\n    \
                     /usr/bin/systemctl enable --quiet {name}.service, \\\n    \
                     /usr/bin/systemctl enable --quiet --now {name}.socket, \\\n    \
                     /usr/bin/systemctl restart {name}.service, /usr/bin/systemctl reload {name}.service, \\\n    \
                     /usr/bin/systemctl stop {name}.service {name}.socket, \\\n    \
                     /usr/bin/systemctl disable --quiet --now {name}.service, \\\n    \
                     /usr/bin/systemctl disable --quiet --now {name}.socket\n"
                );
            }
            Manager::Supervisor => {
                let conf = format!("/etc/supervisor/conf.d/{name}.conf");
                text.push_str(&install("600", &conf));
                let _ = writeln!(
                    text,
                    "{nopasswd} /usr/bin/rm -f {conf}, /usr/bin/supervisorctl reread, \\\n    \
                     /usr/bin/supervisorctl update {name}, /usr/bin/supervisorctl start {name}, \\\n    \
                     /usr/bin/supervisorctl restart {name}, /usr/bin/supervisorctl stop {name}, \\\n    \
                     /usr/bin/supervisorctl status {name}, /usr/bin/supervisorctl signal HUP {name}\n"
                );
            }
        }
    }
    text
}

/// The service's part of a release's activation: sh assignments, every
/// value quoted (see `landfall_recorded` in `steps.sh`).
pub(crate) fn activation(service: Option<&RenderedService>) -> String {
    let Some(service) = service else {
        return String::new();
    };
    let seconds = crate::steps::timeout_seconds;
    // The binary the command starts: a reload (rather than a restart) is
    // only for a release whose binary is the same.
    let bin = service.exec.split_whitespace().next().unwrap_or_default();
    format!(
        "service_manager={}\nservice_name={}\nservice_ready={}\nready_timeout={}\n\
         stop_timeout={}\nservice_reload={}\nservice_bin={}\n",
        service.manager.as_str(),
        quote(&service.name),
        quote(service.ready_command.as_deref().unwrap_or("")),
        seconds(service.ready_timeout),
        seconds(service.stop_timeout),
        u8::from(service.reload),
        quote(bin),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::Fixture;
    use crate::secrets::Secrets;

    /// A project whose artifact `web`, deployed at `path`, runs a service
    /// with these keys (TOML lines).
    fn fixture(path: &str, service: &str) -> Fixture {
        Fixture::new(&[
            (
                "deploy.toml",
                &format!(
                    "[project]\nname = \"shop\"\n[vars]\nport = 8080\n\n\
                     [artifact.web]\nroles = [\"web\"]\npath = \"{path}\"\n\n\
                     [artifact.web.service]\n{service}\n"
                ),
            ),
            (
                "environments/dev.toml",
                "[hosts.web1]\nroles = [\"web\"]\nvars = { port = 81 }\n",
            ),
        ])
    }

    fn rendered(fixture: &Fixture) -> Result<RenderedService, String> {
        let (project, env) = fixture.load("dev");
        let secrets = Secrets::placeholders();
        crate::plan::plan(&project, &env, &[], false, &secrets)
            .map(|mut plan| plan.targets.remove(0).service.expect("a service"))
            .map_err(|e| e.to_string())
    }

    fn file<'s>(service: &'s RenderedService, name: &str) -> &'s str {
        let file = service
            .files
            .iter()
            .find(|f| f.dst == format!("{SERVICE_DIR}/{name}"))
            .unwrap_or_else(|| panic!("no {name}"));
        std::str::from_utf8(&file.contents).unwrap()
    }

    /// `systemd-analyze verify` on the service's units, installed under
    /// their names in a directory of their own, with the release's
    /// launcher where the unit expects it: systemd itself says whether it
    /// would load them.
    #[test]
    fn systemd_accepts_the_units_it_is_given() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("srv").join("web");
        let path = path.to_str().unwrap();
        let fixture = fixture(
            path,
            "manager = \"systemd\"\nexec = \"bin/web --port {{ vars.port }}\"\nuser = \"daemon\"\n\
             environment = { RUST_LOG = \"info\", GREETING = \"it's 100% \\\"fine\\\"\" }\n\
             listen = [\"127.0.0.1:{{ vars.port }}\", \"[::1]:{{ vars.port }}\"]\n\
             ready = \"http://127.0.0.1:{{ vars.port }}/health\"\nstop_timeout = \"1m\"\nreload = true",
        );
        let service = rendered(&fixture).unwrap();
        assert_eq!(service.name, "shop-web");
        assert_eq!(service.listen, ["127.0.0.1:81", "[::1]:81"]);
        let release = std::path::Path::new(path).join("current").join(SERVICE_DIR);
        std::fs::create_dir_all(&release).unwrap();
        for f in &service.files {
            let name = f.dst.rsplit('/').next().unwrap();
            std::fs::write(release.join(name), &f.contents).unwrap();
            std::fs::set_permissions(
                release.join(name),
                std::os::unix::fs::PermissionsExt::from_mode(f.mode),
            )
            .unwrap();
        }
        let units = root.path().join("units");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(units.join("shop-web.service"), file(&service, "unit")).unwrap();
        std::fs::write(units.join("shop-web.socket"), file(&service, "socket")).unwrap();
        let unit = file(&service, "unit");
        for line in [
            &format!("ExecStart={path}/current/.landfall-service/run"),
            &format!("EnvironmentFile={path}/current/.landfall-service/env"),
            "User=daemon",
            "TimeoutStopSec=60",
            "Requires=shop-web.socket",
            "ExecReload=/bin/kill -HUP $MAINPID",
        ] {
            assert!(unit.lines().any(|l| l == line), "no `{line}` in\n{unit}");
        }
        let output = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(units.join("shop-web.socket"))
            .arg(units.join("shop-web.service"))
            .output()
            .expect("systemd-analyze (from systemd) checks the units: install systemd");
        let said = String::from_utf8_lossy(&output.stderr);
        // Only what concerns these units: systemd may warn of its own.
        let ours: Vec<&str> = said.lines().filter(|l| l.contains("shop-web")).collect();
        assert!(output.status.success() && ours.is_empty(), "{said}");
        // The environment reaches the service byte for byte through sh,
        // as under `--local`; systemd reads the same quoting.
        let env = file(&service, "env");
        let out = crate::process::run(
            &crate::process::Cmd::new("sh")
                .arg("-c")
                .arg(format!("{env}printf '%s|%s' \"$RUST_LOG\" \"$GREETING\"")),
        )
        .unwrap();
        assert_eq!(out.stdout_text(), "info|it's 100% \"fine\"");
    }

    #[test]
    fn supervisor_programs_keep_values_and_logs_in_the_artifact() {
        let fixture = fixture(
            "/srv/web",
            "manager = \"supervisor\"\nexec = \"bin/web\"\nname = \"web\"\n\
             environment = { A = \"50% \\\"off\\\" now\", B = \"it's \\\\ here\" }",
        );
        let service = rendered(&fixture).unwrap();
        let program = file(&service, "unit");
        for line in [
            "[program:web]",
            "command=/srv/web/current/.landfall-service/run",
            "environment=LANDFALL_PATH=\"/srv/web\",A='50%% \"off\" now',B=\"it's \\ here\"",
            "stdout_logfile=/srv/web/.landfall/service.log",
            "stopwaitsecs=30",
        ] {
            assert!(
                program.lines().any(|l| l == line),
                "no `{line}` in\n{program}"
            );
        }
        assert!(!service.files.iter().any(|f| f.dst.ends_with("/socket")));
    }

    #[test]
    fn rendered_fields_are_checked_for_each_host() {
        let err = |service: &str| rendered(&fixture("/srv/web", service)).unwrap_err();
        let message = err(
            "manager = \"systemd\"\nexec = \"bin/web\"\nlisten = [\"localhost:{{ vars.port }}\"]",
        );
        assert!(
            message.contains(
                "`listen` renders `localhost:81` for host `web1`, which is not an address and port"
            ),
            "{message}"
        );
        let message = err("manager = \"systemd\"\nexec = \"bin/web {{ secrets.token }}\"");
        assert!(
            message.contains("the service's `exec` reads a secret"),
            "{message}"
        );
        let message =
            err("manager = \"systemd\"\nexec = \"bin/web\"\nready = \"tcp://{{ vars.port }}\"");
        assert!(message.contains("`ready` renders `tcp://81`"), "{message}");
        let message =
            err("manager = \"supervisor\"\nexec = \"bin/web\"\nenvironment = { X = \"a ;b\" }");
        assert!(
            message.contains("` ;` and ` #` as the start of a comment"),
            "{message}"
        );
        let message = err(
            "manager = \"supervisor\"\nexec = \"bin/web\"\nenvironment = { X = \"it's \\\"q\\\" x\" }",
        );
        assert!(message.contains("both `'` and `\"`"), "{message}");
        let message =
            err("manager = \"supervisor\"\nexec = \"bin/web\"\nenvironment = { X = \"'q'\" }");
        assert!(message.contains("strips quotes from the ends"), "{message}");
    }

    #[test]
    fn values_in_double_quotes_survive_sh() {
        let nasty = "it's $(echo pwned) `id` \"q\" \\ \\\\ %h $HOME";
        let text = env_file(&[("V".into(), nasty.into())]);
        let out = crate::process::run(
            &crate::process::Cmd::new("sh")
                .arg("-c")
                .arg(format!("{text}printf %s \"$V\"")),
        )
        .unwrap();
        assert_eq!(out.stdout_text(), nasty);
    }

    #[test]
    fn ready_checks_become_commands() {
        assert!(
            ready_command("http://127.0.0.1:8080/health")
                .unwrap()
                .contains("curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8080/health")
        );
        assert!(
            ready_command("tcp://[::1]:80")
                .unwrap()
                .contains("nc -z -w 5 ::1 80")
        );
        assert_eq!(ready_command("exec: bin/x check").unwrap(), "bin/x check");
        assert!(ready_command("tcp://host").is_err());
        assert!(ready_command("tcp://host:http").is_err());
        assert!(ready_command("exec:").is_err());
    }
}
