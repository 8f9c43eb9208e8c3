//! Services: an artifact that runs as a long-lived process under systemd
//! or supervisord, its definition rendered per host into the release.
//!
//! A service adds its own files to a release, under [`SERVICE_DIR`]:
//!
//! - `run`, the launcher the manager starts: it enters its release
//!   directory and `exec`s the service's command, so the process is the
//!   service itself and keeps the release it started from as its working
//!   directory;
//! - `env`, the environment, one `KEY="value"` per line, read by the
//!   launcher as the account the service runs as; private when a value
//!   reads a secret;
//! - `unit`, the systemd service unit or the supervisord program, and
//!   `socket`, the systemd socket unit that holds `listen`'s sockets.
//!
//! Being files of the release, they are covered by its id, and a rollback
//! installs the definition the release was made with. The rest (manager,
//! name, the account, the readiness check) goes into the release's
//! activation, where the host's steps read it. This module does no IO.
//!
//! The manager reads the definition as root, so the definition names
//! nothing the deploy account could replace: no `EnvironmentFile=` (the
//! launcher reads the environment, as the service's own account), and
//! supervisord's log under `/var/log/supervisor`, not in the artifact. It
//! always names the account the service runs as: the service's `user`, else
//! the environment's `user` (the deploy user), else the host adds the
//! account that deploys, and refuses root unless it was written (see
//! `landfall_definition` in `steps.sh`).
//!
//! A deploy user that is not root manages system services through the
//! sudo rules [`sudoers`] writes (`init --sudoers ENV`): every command
//! with all its arguments, none that installs a definition, which only
//! root does.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Artifact, Hook, Manager, Project, Service};
use crate::diag::Diagnostic;
use crate::plan::RenderedFile;
use crate::process::quote;

/// The directory of a release that holds its service's files.
pub const SERVICE_DIR: &str = ".landfall-service";

/// Where, in an artifact's path, the two slots of a service with `overlap`
/// are: `blue` and `green`, each a link to the release its instance runs.
/// A new release starts in the slot that does not serve, beside the one
/// that does (see `handover.sh`).
pub const SLOTS: &str = ".landfall/slots";

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
    /// Whether a new release starts beside the one that serves (see
    /// [`crate::config::Service::overlap`]).
    pub overlap: bool,
    /// Whether the service says it is ready with `sd_notify`.
    pub notify: bool,
    pub listen: Vec<String>,
    /// The account the definition names (a system manager's service whose
    /// configuration names one): the host adds the deploying account to a
    /// definition that names none.
    pub user: Option<String>,
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

/// Renders `service` of `artifact` for host `host`, with `render` (the
/// host's template context; `masked` renders with every secret masked, for
/// what a dry run may show). `deploy_user` is the environment's `user`, if
/// it names one.
pub(crate) fn render(
    project: &Project,
    artifact: &Artifact,
    service: &Service,
    host: &str,
    deploy_user: Option<&str>,
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
    if let Some((hook, text)) = &ready
        && service.overlap
        && let Some(shared) = shared_address(text, &listen)
    {
        error(
            &mut errors,
            hook,
            format!(
                "`ready` renders `{text}` for host `{host}`, which reaches `{shared}`, an address \
                 of `listen`: during a hand-over both instances share it, and the old one would answer"
            ),
            match service.manager {
                Manager::Supervisor => {
                    "under supervisord a new instance is ready once it listens on `listen` \
                     itself: drop `ready`, or check with `exec:` or an address of the instance's \
                     own; or `overlap = false`"
                }
                Manager::Systemd | Manager::SystemdUser => {
                    "prove the new instance ready on itself: `notify = true` (sd_notify \
                     `READY=1`), an `exec:` check, or an address of the instance's own; or \
                     `overlap = false`"
                }
            },
        );
    }
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
    // A user's own systemd runs its services as that user: only a system
    // manager is told which account to use.
    let user = match service.manager {
        Manager::SystemdUser => None,
        Manager::Systemd | Manager::Supervisor => {
            service.user.as_deref().or(deploy_user).map(str::to_string)
        }
    };
    let spec = Spec {
        project: &project.name,
        artifact: &artifact.name,
        path: &artifact.path,
        service,
        user: user.as_deref(),
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
            mode: 0o644,
            contents: supervisor_program(&spec).into_bytes(),
            secret: false,
            masked: None,
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
        overlap: service.overlap,
        notify: service.notify,
        listen,
        user,
        files,
    })
}

/// What every definition is made from.
struct Spec<'a> {
    project: &'a str,
    artifact: &'a str,
    path: &'a str,
    service: &'a Service,
    /// The account named in the definition, if the configuration named one.
    user: Option<&'a str>,
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

    /// The launcher the manager starts: `current`'s, or with `overlap`
    /// the one of the release the instance's slot points at (systemd's
    /// `%i` is the slot, see [`SLOTS`]).
    fn launcher(&self) -> String {
        if self.service.overlap {
            format!("{}/{SLOTS}/%i/{SERVICE_DIR}/run", self.path)
        } else {
            format!("{}/current/{SERVICE_DIR}/run", self.path)
        }
    }
}

/// The launcher the manager starts, from `current`: it enters the release
/// it belongs to, marks in the service's log where the release started
/// (`-- release ID started --`, which `logs` reads), reads its environment (as the account the
/// service runs as, so that root never reads a file the deploy account may
/// replace) and becomes the service.
fn launcher(spec: &Spec<'_>, exec: &str) -> String {
    format!(
        "#!/bin/sh\n{}\
         # Runs the service from its release, in the foreground.\n\
         cd -P -- \"${{0%/*}}/..\" || exit 1\n\
         LANDFALL_RELEASE=${{PWD##*/}}\n\
         export LANDFALL_RELEASE\n\
         {stamped}\
         printf '%s\\n' \"-- release $LANDFALL_RELEASE started --\"\n\
         set -a\n\
         . ./{SERVICE_DIR}/env || exit 1\n\
         set +a\n\
         exec {exec}\n",
        spec.header("#"),
        stamped = STAMPED_OUTPUT
            .replace("STAMP_STRFTIME", STAMP_STRFTIME)
            .replace("STAMP_SRAND", STAMP_SRAND),
    )
}

/// The launcher's part that writes the time before each line of the
/// service's output, where no journal keeps the output with the time of
/// each line (the systemd unit says `LANDFALL_LOG=journal`): supervisord's
/// log and `--local`'s. One awk prefixes each line with the time it read
/// it, in UTC (ISO 8601, to the second), and writes it at once: with
/// `strftime` where the awk has it (gawk, busybox, mawk 1.3.4), else with
/// the time POSIX's `srand` returns, converted by hand (mawk 1.3.3). Each
/// is tried first, and a host where neither works writes the lines as they
/// are. That awk reads the service's output from a FIFO, not a pipe the
/// launcher waits on: the service is still the process the manager
/// started, its exit status and signals its own. The awk is no child of
/// the service, and ignores the signals meant for it, so that it writes
/// the service's last words before it ends with the output.
const STAMPED_OUTPUT: &str = r#"# Unless a journal keeps the output with the time of each line, each line
# is written after the time it was read (UTC) by one awk, which reads it
# from a FIFO and outlives the signals meant for the service: the service
# is still this process.
stamp=
if [ "${LANDFALL_LOG:-}" != journal ]; then
  # shellcheck disable=SC2016 # Programs of awk, whose `$0` is its own.
  for stamp in 'STAMP_STRFTIME' 'STAMP_SRAND' ''; do
    [ -n "$stamp" ] || break
    case $(echo x | TZ=UTC0 awk "$stamp" 2>/dev/null) in
    [12][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]Z\ x) break ;;
    esac
  done
fi
if [ -n "$stamp" ] && lines=$(mktemp -d "${TMPDIR:-/tmp}/landfall-log.XXXXXX"); then
  if mkfifo "$lines/fifo"; then
    (
      trap '' HUP INT QUIT TERM
      TZ=UTC0
      export TZ
      # mawk reads a pipe by blocks, unless told to read it by lines.
      case $(awk -W version 2>&1 </dev/null) in mawk*) set -- -W interactive ;; esac
      exec awk "$@" "$stamp" <"$lines/fifo" &
    )
    exec >"$lines/fifo" 2>&1
  fi
  rm -rf "$lines"
fi
"#;

/// The awk program that writes each line after its time with `strftime`
/// (run with `TZ=UTC0`).
const STAMP_STRFTIME: &str = r#"{ print strftime("%Y-%m-%dT%H:%M:%SZ") " " $0; fflush() }"#;

/// The awk program that writes each line after its time where awk has no
/// `strftime`: POSIX's `srand()` returns the seed it replaces, the time of
/// the call before, in seconds since the epoch, made a date and time of
/// day by Howard Hinnant's `civil_from_days`.
const STAMP_SRAND: &str = r#"function iso(t,  s, z, era, doe, yoe, doy, mp, m, d) {
      s = t % 86400; z = (t - s) / 86400 + 719468
      era = int(z / 146097); doe = z - era * 146097
      yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
      doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100))
      mp = int((5 * doy + 2) / 153); d = doy - int((153 * mp + 2) / 5) + 1
      m = mp < 10 ? mp + 3 : mp - 9
      return sprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", yoe + era * 400 + (m <= 2), m, d,
        int(s / 3600), int(s / 60) % 60, s % 60)
    }
    { srand(); t = srand(); if (t != last) { last = t; now = iso(t) }
      print now " " $0; fflush() }"#;

/// The environment, as the launcher reads it with sh.
fn env_file(environment: &[(String, String)]) -> String {
    let mut text = String::from("# The service's environment, written by landfall.\n");
    for (key, value) in environment {
        let _ = writeln!(text, "{key}={}", double_quoted(value));
    }
    text
}

/// A value in double quotes, with `\`, `"`, `$` and `` ` `` escaped by a
/// backslash, as sh reads it.
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

/// The systemd service unit. `[Service]` comes last, so that the host can
/// add `User=` to a unit whose configuration names no account.
fn systemd_service(spec: &Spec<'_>) -> String {
    let service = spec.service;
    let mut text = spec.header("#");
    let _ = write!(
        text,
        "\n[Unit]\nDescription={} of {} (landfall{})\nAfter=network.target\n",
        spec.artifact,
        spec.project,
        if service.overlap { ", slot %i" } else { "" }
    );
    if !spec.listen.is_empty() {
        let _ = writeln!(
            text,
            "Requires={name}.socket\nAfter={name}.socket",
            name = service.name
        );
    }
    let target = match service.manager {
        Manager::SystemdUser => "default.target",
        _ => "multi-user.target",
    };
    let _ = write!(
        text,
        "\n[Install]\nWantedBy={target}\n\n[Service]\nType={kind}\nExecStart={launcher}\n\
         SyslogIdentifier={name}\nEnvironment=LANDFALL_PATH={path}\n\
         Environment=LANDFALL_LOG=journal\n",
        kind = if service.notify { "notify" } else { "exec" },
        launcher = spec.launcher(),
        name = service.name,
        path = spec.path,
    );
    if service.notify {
        // Ready when it says so, within `ready_timeout`: `systemctl start`
        // waits for it.
        let _ = writeln!(
            text,
            "TimeoutStartSec={}",
            crate::steps::timeout_seconds(service.ready_timeout)
        );
    }
    if service.overlap {
        // Each instance is given the sockets the socket unit holds, the
        // same ones: the instance that starts beside the one that serves
        // accepts from them too.
        let _ = writeln!(text, "Environment=LANDFALL_SLOT=%i");
        if !spec.listen.is_empty() {
            let _ = writeln!(text, "Sockets={}.socket", service.name);
        }
    }
    let _ = write!(
        text,
        "Restart=on-failure\nRestartSec=1s\nTimeoutStopSec={}\nKillMode=mixed\n",
        crate::steps::timeout_seconds(service.stop_timeout)
    );
    if service.reload {
        text.push_str("ExecReload=/bin/kill -HUP $MAINPID\n");
    }
    if let Some(user) = spec.user {
        let _ = writeln!(text, "User={user}");
    }
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
    if spec.service.overlap {
        // A connection while no instance runs (none started yet, or the
        // one that served gave up) starts the blue one: a slot that does
        // not serve points at the current release too.
        let _ = writeln!(text, "Service={}@blue.service", spec.service.name);
    }
    text.push_str("\n[Install]\nWantedBy=sockets.target\n");
    text
}

/// A supervisord `[program:…]`. supervisord opens the log as root, so it is
/// written where only root writes, `/var/log/supervisor/NAME.log`; the
/// environment is the launcher's to read. The program is the file's only
/// section, so that the host can add `user=` to one whose configuration
/// names no account.
fn supervisor_program(spec: &Spec<'_>) -> String {
    let service = spec.service;
    let mut text = spec.header(";");
    // With `overlap`, a program per slot, each installed in a file of its
    // own with `@SLOT@` and `@AUTOSTART@` filled in by the host (see
    // `landfall_definition` in `service.sh`); the two write one log.
    let (program, launcher, slot, autostart) = if service.overlap {
        (
            format!("{}@@SLOT@", service.name),
            format!("{}/{SLOTS}/@SLOT@/{SERVICE_DIR}/run", spec.path),
            ",LANDFALL_SLOT=\"@SLOT@\"",
            "@AUTOSTART@",
        )
    } else {
        (service.name.clone(), spec.launcher(), "", "true")
    };
    let _ = write!(
        text,
        "\n[program:{program}]\ncommand={launcher}\ndirectory={path}\n\
         environment=LANDFALL_PATH=\"{path}\"{slot}\nautostart={autostart}\nautorestart=true\nstartsecs=1\n\
         startretries=3\nstopsignal=TERM\nstopwaitsecs={stop}\nstopasgroup=true\n\
         killasgroup=true\nredirect_stderr=true\nstdout_logfile={log}\n\
         stdout_logfile_maxbytes=10MB\nstdout_logfile_backups=3\n",
        path = spec.path,
        stop = crate::steps::timeout_seconds(service.stop_timeout),
        log = supervisor_log(&service.name),
    );
    if let Some(user) = spec.user {
        let _ = writeln!(text, "user={user}");
    }
    text
}

/// Where supervisord writes the output of program `name`.
pub fn supervisor_log(name: &str) -> String {
    format!("/var/log/supervisor/{name}.log")
}

/// The address of `listen` that the readiness check `ready` reaches, if
/// any: the same port, on the same address or where either is every
/// address (`0.0.0.0`, `[::]`) or a name. Such a check cannot tell two
/// instances that share the sockets apart.
fn shared_address<'l>(ready: &str, listen: &'l [String]) -> Option<&'l str> {
    let rest = ready
        .strip_prefix("http://")
        .or_else(|| ready.strip_prefix("https://"))
        .or_else(|| ready.strip_prefix("tcp://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse::<u16>().ok()?),
        _ if ready.starts_with("https://") => (authority, 443),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = host.parse::<std::net::IpAddr>().ok();
    listen.iter().map(String::as_str).find(|address| {
        address.parse::<SocketAddr>().is_ok_and(|address| {
            address.port() == port
                && match ip {
                    Some(ip) => {
                        ip == address.ip() || ip.is_unspecified() || address.ip().is_unspecified()
                    }
                    None => true,
                }
        })
    })
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

/// Where supervisorctl is told to read supervisord's configuration (see
/// `landfall_supervisorctl` in `steps.sh`): given with `-c`, since
/// supervisorctl would otherwise look in the directory it is started
/// from, which the deploy account chooses.
pub const SUPERVISOR_CONFS: [&str; 2] =
    ["/etc/supervisor/supervisord.conf", "/etc/supervisord.conf"];

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
        "service_manager={}\nservice_name={}\nservice_user={}\nservice_ready={}\n\
         ready_timeout={}\nstop_timeout={}\nservice_reload={}\nservice_bin={}\n\
         service_overlap={}\nservice_listen={}\n",
        service.manager.as_str(),
        quote(&service.name),
        quote(service.user.as_deref().unwrap_or("")),
        quote(service.ready_command.as_deref().unwrap_or("")),
        seconds(service.ready_timeout),
        seconds(service.stop_timeout),
        u8::from(service.reload),
        quote(bin),
        u8::from(service.overlap),
        quote(&service.listen.join(" ")),
    )
}

mod sudoers;

pub use sudoers::sudoers;

#[cfg(test)]
mod tests;
