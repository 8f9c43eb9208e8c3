//! What `build` and `check` report: the releases built, a bundle written
//! or published, two builds compared, and what was checked.

use landfall::bundle::{BundleManifest, Digest};
use landfall::ops::build::BuildOutput;
use landfall::ops::check::CheckReport;

use super::{Printer, counted, json_line};
use crate::cli::MessageFormat;
use crate::json::Line;

impl Printer {
    /// What `build` produced, on stdout.
    pub(crate) fn build_report(&self, output: &BuildOutput) {
        let json = self.format == MessageFormat::Json;
        match output {
            BuildOutput::Reproducible {
                first,
                second,
                differences,
            } if json => json_line(&Line::Reproducible {
                ok: first == second,
                first,
                second,
                differences,
            }),
            BuildOutput::Reproducible {
                first,
                second,
                differences,
            } => {
                for (artifact, id) in &first.artifacts {
                    let other = &second.artifacts[artifact];
                    let verdict = if id == other {
                        "identical"
                    } else {
                        "DIFFERENT"
                    };
                    println!("{artifact}  {id}  {other}  {verdict}");
                }
                for difference in differences {
                    println!("  differs: {difference}");
                }
            }
            BuildOutput::Bundle {
                location,
                digest,
                manifest,
            } if json => json_line(&Line::Bundle {
                dir: location.clone(),
                digest: digest.to_string(),
                manifest,
            }),
            BuildOutput::Bundle {
                location,
                digest,
                manifest,
            } => bundle(location, digest, manifest),
            BuildOutput::Releases { env, built } if json => {
                let releases = built.release_ids();
                json_line(&Line::Manifest {
                    env,
                    revision: &built.revision,
                    artifacts: &built.assembled,
                    releases: &releases,
                });
            }
            BuildOutput::Releases { built, .. } => {
                for a in &built.assembled {
                    println!("{}  {}", a.artifact, a.id);
                    for entry in &a.manifest.entries {
                        println!("    {}", entry.path);
                    }
                }
                for r in &built.releases {
                    println!("{}  {}  {}", r.target.host, r.target.artifact, r.release.id);
                }
            }
        }
    }

    /// What `check` checked: a JSON line whatever it found, and a line for
    /// a person when all is well.
    pub(crate) fn check_report(&self, report: &CheckReport) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Checked {
                ok: report.errors.is_empty(),
                artifacts: report.artifacts,
                environments: &report.environments,
                hosts: report.hosts,
            });
        } else if report.errors.is_empty() && !self.quiet {
            eprintln!(
                "{:>12} {}, {} ({}), {}",
                "Checked",
                counted(report.artifacts as u64, "artifact"),
                counted(report.environments.len() as u64, "environment"),
                report.environments.join(", "),
                counted(report.hosts as u64, "host")
            );
        }
    }
}

/// A bundle written or published: where, the digest that pins it, and
/// its artifacts.
fn bundle(location: &str, digest: &Digest, manifest: &BundleManifest) {
    println!("bundle {location}");
    println!("digest {digest}");
    for a in &manifest.artifacts {
        println!("{}  {}", a.name, a.id);
    }
    eprintln!("Deploy exactly this bundle with: cargo deploy ENV --from '{location}#{digest}'");
}
