//! The selection: a path of roles, hosts and artifacts (`cd @ROLE`,
//! `cd HOST`, `cd ARTIFACT`, `cd ..`, `cd /`), the hosts and the artifact
//! it stands for, and the `--only` and `--artifact` a command run over it
//! is given.

use super::Shell;
use super::line::Scope;

/// One step of the selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Role(String),
    Host(String),
    Artifact(String),
}

impl Step {
    pub(super) fn text(&self) -> String {
        match self {
            Step::Role(role) => format!("@{role}"),
            Step::Host(host) | Step::Artifact(host) => host.clone(),
        }
    }
}

impl Shell<'_> {
    /// The hosts the selection stands for, in name order.
    pub(super) fn selected_hosts(&self) -> Vec<&str> {
        self.env
            .hosts
            .iter()
            .filter(|h| {
                self.path.iter().all(|step| match step {
                    Step::Role(role) => h.roles.contains(role),
                    Step::Host(host) => &h.name == host,
                    Step::Artifact(artifact) => self
                        .project
                        .artifact(artifact)
                        .is_some_and(|a| h.receives(a)),
                })
            })
            .map(|h| h.name.as_str())
            .collect()
    }

    pub(super) fn artifact(&self) -> Option<&str> {
        self.path.iter().rev().find_map(|step| match step {
            Step::Artifact(artifact) => Some(artifact.as_str()),
            _ => None,
        })
    }

    /// `--only` for the selection: nothing for the whole environment, its
    /// role for one role, and otherwise each selected host by name (a
    /// role and an artifact, or two roles, select fewer hosts than either
    /// `--only` alone would).
    fn only(&self) -> Vec<String> {
        match self.path.as_slice() {
            [] => Vec::new(),
            [Step::Role(role)] => vec!["--only".into(), format!("@{role}")],
            _ => self
                .selected_hosts()
                .into_iter()
                .flat_map(|h| ["--only".to_string(), h.to_string()])
                .collect(),
        }
    }

    pub(super) fn scope(&self) -> Scope<'_> {
        Scope {
            env: &self.env.name,
            only: self.only(),
            artifact: self.artifact(),
            local: self.local,
            global: self.ctx.global,
        }
    }

    pub(super) fn cd(&mut self, rest: &[String]) -> Result<(), String> {
        let target = match rest {
            [] => "/",
            [one] => one.as_str(),
            _ => return Err("cd to one place at a time".into()),
        };
        for part in target.split('/') {
            match part {
                "" if target.starts_with('/') => self.path.clear(),
                "" | "." => {}
                ".." => {
                    self.path.pop();
                }
                role if role.starts_with('@') => {
                    let role = &role[1..];
                    let found = self.env.hosts.iter().any(|h| {
                        h.roles.iter().any(|r| r == role)
                            && self.selected_hosts().contains(&h.name.as_str())
                    });
                    if !found {
                        return Err(format!("no selected host has role `{role}`"));
                    }
                    self.path.push(Step::Role(role.to_string()));
                }
                name if self.env.host(name).is_some() => {
                    if !self.selected_hosts().contains(&name) {
                        return Err(format!("`{name}` is not in the selection: `cd /` first"));
                    }
                    self.path.push(Step::Host(name.to_string()));
                }
                name if self.project.artifact(name).is_some() => {
                    self.path.push(Step::Artifact(name.to_string()));
                    if self.selected_hosts().is_empty() {
                        self.path.pop();
                        return Err(format!("no selected host has artifact `{name}`"));
                    }
                }
                other => {
                    return Err(format!(
                        "no role, host or artifact `{other}` in `{}`",
                        self.env.name
                    ));
                }
            }
        }
        Ok(())
    }
}
