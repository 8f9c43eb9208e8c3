//! Reports of what hosts hold: `status` (each target's releases, with
//! their provenance and last activation, its service and its lock, then
//! the orphans found), the orphans `prune` would remove, and `config`
//! (each variable of a host, with where its value comes from).

use std::fmt::Write as _;

use landfall::assemble::Provenance;
use landfall::config::provenance::{Layer, Variable};
use landfall::deploy::{LogEntry, ServiceState};
use landfall::event::Event;
use landfall::inert::inert;
use landfall::ops::prune::HostOrphans;
use landfall::ops::status::TargetStatus;

use super::{BAD, DIM, GOOD, INFO, Printer, WARN, json_line, short, shown_error};
use crate::cli::MessageFormat;
use crate::json::{FoundOrphan, Line};

impl Printer {
    /// One host's variables, on stdout: TOML people can read, with each
    /// value's origin as a comment when `annotate` is set.
    pub(crate) fn config_report(&self, env: &str, host: &str, vars: &[Variable], annotate: bool) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Config { env, host, vars });
            return;
        }
        println!("# host `{host}` of environment `{env}`");
        let lines: Vec<String> = vars
            .iter()
            .map(|v| format!("{} = {}", v.key, v.value))
            .collect();
        let width = lines.iter().map(String::len).max().unwrap_or(0);
        for (line, var) in lines.iter().zip(vars) {
            if !annotate {
                println!("{line}");
                continue;
            }
            let mut origin = match var.origin.layer {
                Layer::Deploy => var.origin.at.clone(),
                Layer::Environment => format!("{} (environment)", var.origin.at),
                Layer::Host => format!("{} (host `{host}`)", var.origin.at),
                Layer::CommandLine => format!("{} (command line)", var.origin.at),
            };
            if !var.overrides.is_empty() {
                let over: Vec<&str> = var.overrides.iter().map(|o| o.at.as_str()).collect();
                origin = format!("{origin}, overrides {}", over.join(", "));
            }
            println!("{line:width$}  {DIM}# {origin}{DIM:#}");
        }
        println!();
    }

    pub(crate) fn status_report(
        &self,
        env: &str,
        report: &[TargetStatus],
        orphans: &[HostOrphans],
    ) {
        let found: Vec<FoundOrphan<'_>> = orphans
            .iter()
            .flat_map(|h| {
                h.orphans.iter().map(|orphan| FoundOrphan {
                    host: &h.host,
                    orphan,
                })
            })
            .collect();
        if self.format == MessageFormat::Json {
            json_line(&Line::Status {
                env,
                hosts: report,
                orphans: &found,
            });
            return;
        }
        targets_report(report);
        if !found.is_empty() {
            println!(
                "{WARN}orphans{WARN:#} {DIM}(no longer in deploy.toml for these hosts; `cargo deploy prune {env}` removes them){DIM:#}"
            );
            for o in &found {
                println!("  {}", describe_orphan(o));
            }
        }
        for h in orphans {
            if let Some(err) = &h.error
                && report.iter().all(|t| t.host != h.host || t.error.is_none())
            {
                println!(
                    "{INFO}{}{INFO:#} {BAD}orphans unknown{BAD:#}: {}",
                    h.host,
                    shown_error(err)
                );
            }
        }
    }

    /// What `prune` would remove, before it asks.
    pub(crate) fn orphans_report(&self, orphans: &[HostOrphans]) {
        if self.format == MessageFormat::Json {
            for h in orphans {
                for orphan in &h.orphans {
                    json_line(&Line::Event(&Event::Orphan {
                        host: h.host.clone(),
                        orphan: orphan.clone(),
                    }));
                }
            }
            return;
        }
        for h in orphans {
            for orphan in &h.orphans {
                eprintln!(
                    "{WARN}{:>12}{WARN:#} {}",
                    "Orphan",
                    describe_orphan(&FoundOrphan {
                        host: &h.host,
                        orphan
                    })
                );
            }
        }
    }
}

/// Each target of `status`: its host, artifact and path, then what the
/// host reported of it.
fn targets_report(report: &[TargetStatus]) {
    for target in report {
        println!(
            "{INFO}{}{INFO:#} {} {DIM}{}{DIM:#}",
            target.host, target.artifact, target.path
        );
        // Everything below but the styles is what the host reported.
        if let Some(err) = &target.error {
            println!("  {BAD}unreachable{BAD:#}: {}", shown_error(err));
            continue;
        }
        match &target.lock {
            // `waits for promotion: deploy ID, batch N of M, since T`.
            Some(lock) if target.waiting.is_some() => println!("  {WARN}{}{WARN:#}", inert(lock)),
            Some(lock) => println!("  {WARN}locked{WARN:#}: {}", inert(lock)),
            None => {}
        }
        if let Some(service) = &target.service {
            let serves = if target.beside.is_some() {
                ", serves"
            } else {
                ""
            };
            println!("{}{serves}", describe_service(service));
        }
        if let Some(beside) = &target.beside {
            println!("{}, beside it: a hand-over", describe_service(beside));
        }
        if target.releases.is_empty() {
            println!("  no releases");
        }
        for release in &target.releases {
            let marker = if release.current {
                format!("{GOOD}*{GOOD:#}")
            } else {
                " ".to_string()
            };
            let made = release
                .provenance
                .as_ref()
                .map_or_else(|| "no provenance recorded".to_string(), describe_provenance);
            let last = release
                .activated
                .as_ref()
                .map_or_else(String::new, describe_activation);
            println!(
                "  {marker} {}  {DIM}{}{}{DIM:#}",
                inert(&release.id),
                inert(&made),
                inert(&last)
            );
        }
        if let Some(sbom) = &target.sbom {
            sbom_report(sbom);
        }
    }
}

/// The components of a current release's bill of materials, a line each:
/// name and version, in two columns.
fn sbom_report(document: &serde_json::Value) {
    let mut components = landfall::sbom::components(document);
    components.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    if components.is_empty() {
        println!("  {WARN}sbom{WARN:#}: no components listed");
        return;
    }
    println!("  sbom {DIM}({} components){DIM:#}", components.len());
    // What the host's file says, made inert.
    let rows: Vec<(String, String)> = components
        .iter()
        .map(|c| {
            (
                inert(&c.name).into_owned(),
                inert(c.version.as_deref().unwrap_or("-")).into_owned(),
            )
        })
        .collect();
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    for (name, version) in rows {
        println!("    {name:<width$}  {DIM}{version}{DIM:#}");
    }
}

/// An orphan as a line: its host, artifact and path, its current release
/// and its service.
pub(super) fn describe_orphan(o: &FoundOrphan<'_>) -> String {
    let current = o.orphan.current.as_deref().map_or_else(
        || "no current release".to_string(),
        |c| format!("current {}", short(c)),
    );
    let service = o
        .orphan
        .service
        .as_deref()
        .map_or_else(String::new, |s| format!(", runs service {s}"));
    // What a host reported of its orphans.
    format!(
        "{} {} {DIM}{}{DIM:#} ({})",
        o.host,
        inert(&o.orphan.artifact),
        inert(&o.orphan.path),
        inert(&format!("{current}{service}"))
    )
}

/// A target's service as the manager reported it: its state, pid and how
/// long it has been up, or since when.
fn describe_service(service: &ServiceState) -> String {
    let style = if service.running() { GOOD } else { BAD };
    let mut line = format!(
        "  service {} ({}): {style}{}{style:#}",
        inert(&service.name),
        inert(&service.manager),
        inert(&service.state)
    );
    if let Some(pid) = service.pid {
        let _ = write!(line, ", pid {pid}");
    }
    match &service.since {
        // supervisord says how long it has been up.
        Some(up) if up.starts_with("up ") => {
            let _ = write!(line, ", {}", inert(up));
        }
        Some(since) => {
            let _ = write!(line, ", since {}", inert(since));
        }
        None => {}
    }
    line
}

/// Where a release comes from: its commit, the bundle and the overrides
/// it was made with, and who made it, when.
fn describe_provenance(p: &Provenance) -> String {
    let mut made = match &p.revision {
        Some(rev) => format!("built from {}", landfall::git::short(rev)),
        None => "built from no git revision".to_string(),
    };
    if p.dirty {
        made.push_str(" with uncommitted changes");
    }
    if let Some(bundle) = &p.bundle {
        let _ = write!(made, ", bundle {bundle}");
    }
    for over in &p.overrides {
        let _ = write!(made, ", --var {over}");
    }
    format!("{made}, by {}@{} {}", p.user, p.from, p.time)
}

/// The last switch to a release: what it was, when, by whom, and in
/// which deploy.
fn describe_activation(e: &LogEntry) -> String {
    // What the entry did to this release.
    let what = match e.event.as_str() {
        "activated" => "deployed",
        "rollback" => "rolled back to",
        "rolled_back" => "switched back to",
        other => other,
    };
    let deploy = e
        .deploy
        .as_ref()
        .map_or_else(String::new, |id| format!(" (deploy {id})"));
    format!("; {what} {} by {}@{}{deploy}", e.time, e.user, e.from)
}
