//! The sudo rules of `init --sudoers`: what a deploy user that is not root
//! may run as root to manage its services, each command with all its
//! arguments. No IO.

use std::fmt::Write as _;

use super::SUPERVISOR_CONFS;
use crate::config::{Manager, Service};

/// The sudoers rules that let `user`, not root, manage the system services
/// of `services` (artifact, path and service): exactly the commands the
/// host's steps run as root for them, each with all its arguments, so
/// that sudo allows no other (a rule without arguments, or with a `*`,
/// would allow any). They start, stop and reload the services; they do
/// not install definitions: whoever writes a definition decides what root
/// runs, so only root installs them (the host says what to install where,
/// when a release needs a definition that is not installed). `systemd-user`
/// services need none. Install them with `visudo -f /etc/sudoers.d/NAME`.
///
/// Every value written here was checked when the configuration was read:
/// account and service names hold letters, digits, `-`, `_` and `.` only,
/// none of which sudoers reads as anything but itself.
///
/// Fails, saying why, if `user` cannot be written in sudoers as itself:
/// a word of other characters, `ALL`, or a word sudoers would read as an
/// alias (capitals, digits and `_` only).
pub fn sudoers(user: &str, services: &[(&str, &str, &Service)]) -> Result<String, String> {
    if !sudoers_plain(user) || user.starts_with(['-', '.']) {
        return Err(format!(
            "the deploy user `{}` cannot be written in sudoers rules: an account name holds \
             letters, digits, `-`, `_` and `.`",
            crate::diag::shown(user)
        ));
    }
    if user
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "the deploy user `{user}` would be read by sudo as an alias (or `ALL`), not an account"
        ));
    }
    let mut text = String::new();
    let nopasswd = format!("{user} ALL=(root) NOPASSWD:");
    for (artifact, path, service) in services {
        let name = &service.name;
        // Checked when the configuration was read; said again here, where
        // a name that is not plain would become root's.
        if !sudoers_plain(name) {
            return Err(format!(
                "service name `{}` cannot be written in sudoers rules",
                crate::diag::shown(name)
            ));
        }
        let _ = writeln!(
            text,
            "# landfall: {user} starts, stops and reloads service `{name}` (artifact `{artifact}`, {path}) as root."
        );
        let commands: Vec<String> = match service.manager {
            Manager::SystemdUser => {
                let _ = writeln!(text, "# A user's own systemd needs no rule.\n");
                continue;
            }
            Manager::Systemd if service.overlap => {
                // Two instances, one per slot, each started, stopped and
                // enabled at boot by a rule of its own.
                let mut commands = Vec::new();
                for slot in ["blue", "green"] {
                    let unit = format!("{name}@{slot}.service");
                    commands.extend([
                        format!("/usr/bin/systemctl start {unit}"),
                        format!("/usr/bin/systemctl stop {unit}"),
                        format!("/usr/bin/systemctl enable --quiet {unit}"),
                        format!("/usr/bin/systemctl disable --quiet {unit}"),
                        format!("/usr/bin/systemctl disable --quiet --now {unit}"),
                    ]);
                }
                if !service.listen.is_empty() {
                    commands.push(format!("/usr/bin/systemctl start {name}.socket"));
                    commands.push(format!(
                        "/usr/bin/systemctl disable --quiet --now {name}.socket"
                    ));
                }
                // The service as it ran before its hand-over was turned
                // on, stopped once, by the first hand-over.
                commands.push(format!(
                    "/usr/bin/systemctl disable --quiet --now {name}.service"
                ));
                commands
            }
            Manager::Systemd => {
                let mut commands = vec![
                    format!("/usr/bin/systemctl restart {name}.service"),
                    format!("/usr/bin/systemctl reload {name}.service"),
                    format!("/usr/bin/systemctl disable --quiet --now {name}.service"),
                ];
                if !service.listen.is_empty() {
                    commands.push(format!("/usr/bin/systemctl start {name}.socket"));
                    commands.push(format!(
                        "/usr/bin/systemctl disable --quiet --now {name}.socket"
                    ));
                }
                commands
            }
            Manager::Supervisor if service.overlap => SUPERVISOR_CONFS
                .iter()
                .flat_map(|conf| {
                    let slots = ["blue", "green"].into_iter().flat_map(move |slot| {
                        ["status", "start", "stop", "pid"].map(|verb| {
                            format!("/usr/bin/supervisorctl -c {conf} {verb} {name}@{slot}")
                        })
                    });
                    // The program as it ran before its hand-over was
                    // turned on, stopped once, by the first hand-over.
                    slots.chain([format!("/usr/bin/supervisorctl -c {conf} stop {name}")])
                })
                .collect(),
            Manager::Supervisor => SUPERVISOR_CONFS
                .iter()
                .flat_map(|conf| {
                    ["status", "start", "stop", "restart", "signal HUP"]
                        .map(|verb| format!("/usr/bin/supervisorctl -c {conf} {verb} {name}"))
                })
                .collect(),
        };
        let _ = writeln!(text, "{nopasswd} {}\n", commands.join(", \\\n    "));
    }
    Ok(text)
}

/// Whether `word` holds only what sudoers reads as itself in a command's
/// arguments and a user list.
fn sudoers_plain(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}
