//! What the shell reads from the hosts itself: `ls` (each selected host
//! with its roles, and the current release of each of its artifacts), and
//! the release ids completion offers, read when the shell starts and after
//! a deploy or a rollback. Its runs show no event but warnings.

use landfall::deploy::{Identity, Run};
use landfall::event::Event;
use landfall::{Error, plan};

use super::Shell;
use crate::commands;
use crate::render;

impl Shell<'_> {
    /// What is below the selection: each selected host with its roles, and
    /// each of its artifacts with its current release (read from the
    /// hosts).
    pub(super) fn ls(&self) {
        let hosts: Vec<String> = self
            .selected_hosts()
            .into_iter()
            .map(str::to_string)
            .collect();
        let report = self.with_run(&hosts, landfall::ops::status::read);
        let report = match report {
            Ok(report) => report,
            Err(err) => {
                render::error(&err.to_string());
                return;
            }
        };
        let width = hosts.iter().map(String::len).max().unwrap_or(0);
        for host in &hosts {
            let roles = self
                .env
                .host(host)
                .map(|h| h.roles.join(", "))
                .unwrap_or_default();
            println!("{host:width$}  @{roles}");
            for target in report.iter().filter(|t| &t.host == host) {
                if self.artifact().is_some_and(|a| a != target.artifact) {
                    continue;
                }
                let current = match (&target.error, &target.current) {
                    (Some(err), _) => format!("unreachable: {err}"),
                    (None, Some(current)) => current.clone(),
                    (None, None) => "not deployed".into(),
                };
                // What the host reported.
                let current = landfall::inert::inert(&current);
                println!("{:width$}    {:<12} {current}", "", target.artifact);
            }
        }
        self.note_releases(&report);
    }

    /// Reads the release ids on the hosts, for completion.
    pub(super) fn refresh_releases(&self) {
        let hosts: Vec<String> = self.env.hosts.iter().map(|h| h.name.clone()).collect();
        if let Ok(report) = self.with_run(&hosts, landfall::ops::status::read) {
            self.note_releases(&report);
        }
    }

    fn note_releases(&self, report: &[landfall::ops::status::TargetStatus]) {
        let mut names = self.names.lock().expect("not poisoned");
        // A completion is shown as it is: only what has the shape of a
        // release id (hex digits) is offered, whatever a host listed.
        for target in report {
            names.releases.extend(
                target
                    .releases
                    .iter()
                    .filter(|r| !r.id.is_empty() && r.id.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(|r| r.id.clone()),
            );
        }
    }

    /// Runs `f` with a run over `hosts` whose events are not shown (a
    /// warning aside).
    fn with_run<T>(
        &self,
        hosts: &[String],
        f: impl FnOnce(&Run<'_>, &plan::Plan) -> T,
    ) -> Result<T, Error> {
        let only: Vec<String> = hosts.to_vec();
        let secrets = landfall::secrets::Secrets::placeholders();
        let plan = plan::plan(self.project, self.env, &only, self.local, &secrets)?;
        let selected: Vec<&landfall::config::Host> = self
            .env
            .hosts
            .iter()
            .filter(|h| hosts.contains(&h.name))
            .collect();
        let transport =
            commands::transport(self.ctx, self.project, self.env, &selected, self.local)?;
        let identity = Identity::current(landfall::git::revision(&self.project.workspace.root));
        let report = |event: Event| {
            if let Event::Warning { .. } = event {
                self.ctx.printer.event(event);
            }
        };
        let run = Run {
            project: self.project,
            env: self.env,
            transport: transport.as_ref(),
            identity: &identity,
            jobs: self.env.jobs,
            events: &report,
            cancel: self.ctx.cancel,
        };
        Ok(f(&run, &plan))
    }
}
