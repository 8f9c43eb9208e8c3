//! What commands and services print on hosts: `exec`'s output line by
//! line as it comes (`host | line`), or kept per host ([`Spools`]) and
//! shown once every host is done, one block per distinct output
//! (`--group`), then the hosts that failed; and `logs`' lines. Every line
//! a host printed is shown inert.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::sync::{Mutex, PoisonError};

use landfall::deploy::Summary;
use landfall::inert::inert;
use landfall::ops::exec::ExecResult;

use super::{BAD, DIM, INFO, Printer, counted, error, json_line, masked, shown_error, warning};
use crate::cli::MessageFormat;
use crate::json::Line;

impl Printer {
    /// One line a command printed on a host, as it comes: `host | line` on
    /// stdout, or a JSON `output` event.
    pub(crate) fn output_line(&self, host: &str, width: usize, line: &str) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Output { host, line });
        } else {
            println!(
                "{}",
                masked(&format!("{INFO}{host:width$}{INFO:#} | {}", inert(line)))
            );
        }
    }

    /// The end of `exec`: with `group` (each host's output kept in it),
    /// one block per distinct output with the hosts that gave it, failed
    /// ones first; then the hosts that failed, each with why. Under JSON,
    /// an `exec` event per host and a summary.
    pub(crate) fn exec_report(&self, env: &str, results: &[ExecResult], group: Option<Spools>) {
        if self.format == MessageFormat::Json {
            for result in results {
                json_line(&Line::Exec(result));
            }
            let ok = results.iter().all(ExecResult::success);
            json_line(&Line::Summary(&Summary::without_hosts(env, ok, false)));
            return;
        }
        if let Some(spools) = group {
            print_groups(results, spools);
        }
        print_failures(results);
    }

    /// One line of a service's log, on stdout, as it comes: prefixed by
    /// `label` (the host, or host/artifact), or a JSON line.
    pub(crate) fn log_line(
        &self,
        label: &str,
        width: usize,
        host: &str,
        artifact: &str,
        text: &str,
    ) {
        if self.format == MessageFormat::Json {
            json_line(&Line::Log {
                host,
                artifact,
                line: text,
            });
            return;
        }
        println!("{INFO}{label:width$}{INFO:#} | {}", inert(text));
    }
}

/// `exec --group`: one block per distinct output, with the hosts that gave
/// it, failed ones first.
fn print_groups(results: &[ExecResult], spools: Spools) {
    let mut outputs = spools.finish();
    // Failed hosts' blocks first, then by the hosts' order.
    let mut blocks: Vec<Block<'_>> = Vec::new();
    for result in results {
        let output = outputs.remove(&result.host);
        let failed = !result.success();
        let error = result.error.as_deref();
        match blocks.iter_mut().find(|(f, e, o, _)| {
            *f == failed && *e == error && same_output(o.as_ref(), output.as_ref())
        }) {
            Some((_, _, _, hosts)) => hosts.push(&result.host),
            None => blocks.push((failed, error, output, vec![&result.host])),
        }
    }
    blocks.sort_by_key(|(failed, _, _, _)| !*failed);
    for (failed, error, output, hosts) in &blocks {
        let style = if *failed { BAD } else { INFO };
        println!("{DIM}----------------{DIM:#}");
        println!("{style}{}{style:#}", hosts.join(","));
        println!("{DIM}----------------{DIM:#}");
        if let Some(output) = output {
            print_spooled(output);
        }
        if let Some(error) = error {
            println!("{}", shown_error(error));
        }
    }
}

/// Each host's standard error, then the hosts that failed, each with why.
fn print_failures(results: &[ExecResult]) {
    let width = results.iter().map(|r| r.host.len()).max().unwrap_or(0);
    let mut failed = Vec::new();
    for result in results {
        for line in result.stderr.lines() {
            eprintln!("{INFO}{:width$}{INFO:#} | {}", result.host, inert(line));
        }
        if result.success() {
            continue;
        }
        let why = match (&result.error, result.code) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) => format!("exit status {code}"),
            (None, None) => "killed by a signal".to_string(),
        };
        eprintln!("{BAD}{:width$}{BAD:#} | {}", result.host, shown_error(&why));
        failed.push(result.host.as_str());
    }
    if !failed.is_empty() {
        error(&format!(
            "the command failed on {} of {}: {}",
            failed.len(),
            counted(results.len() as u64, "host"),
            failed.join(", ")
        ));
    }
}

/// A block of `exec --group`: whether its hosts failed, their error, their
/// output, and the hosts.
type Block<'a> = (bool, Option<&'a str>, Option<File>, Vec<&'a str>);

/// Each host's output of `exec --group`, kept until every host is done in
/// a file of its own that only this user can read and that is gone with
/// it: a host may print more than memory holds.
#[derive(Debug, Default)]
pub(crate) struct Spools {
    files: Mutex<BTreeMap<String, Spool>>,
}

#[derive(Debug)]
enum Spool {
    Kept(BufWriter<File>),
    /// It could not be written (a full disk), for this reason.
    Lost(String),
}

impl Spools {
    /// Keeps one line of `host`'s output.
    pub(crate) fn line(&self, host: &str, line: &str) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let spool = files.entry(host.to_string()).or_insert_with(|| {
            tempfile::tempfile().map_or_else(
                |err| Spool::Lost(err.to_string()),
                |file| Spool::Kept(BufWriter::new(file)),
            )
        });
        if let Spool::Kept(file) = spool
            && let Err(err) = writeln!(file, "{line}")
        {
            *spool = Spool::Lost(err.to_string());
        }
    }

    /// Each host's output, to read from its start; a warning for each
    /// that could not be kept.
    fn finish(self) -> BTreeMap<String, File> {
        let files = self
            .files
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut kept = BTreeMap::new();
        for (host, spool) in files {
            let file = match spool {
                Spool::Kept(file) => file.into_inner().map_err(|err| err.error().to_string()),
                Spool::Lost(why) => Err(why),
            };
            match file {
                Ok(file) => {
                    kept.insert(host, file);
                }
                Err(why) => warning(&format!("the output of `{host}` could not be kept: {why}")),
            }
        }
        kept
    }
}

/// Whether two hosts' outputs are the same, read a piece at a time.
fn same_output(a: Option<&File>, b: Option<&File>) -> bool {
    use std::os::unix::fs::FileExt as _;
    let len = |f: Option<&File>| f.and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
    if len(a) != len(b) {
        return false;
    }
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let (mut left, mut right) = ([0u8; 8192], [0u8; 8192]);
    let mut at = 0;
    loop {
        match (a.read_at(&mut left, at), b.read_at(&mut right, at)) {
            (Ok(0), Ok(0)) => return true,
            (Ok(n), Ok(m)) if n == m && left[..n] == right[..n] => at += n as u64,
            _ => return false,
        }
    }
}

/// Prints a host's kept output, line by line, inert.
fn print_spooled(file: &File) {
    use std::io::{BufRead as _, Seek as _};
    let mut file = file;
    if file.rewind().is_err() {
        return;
    }
    // Its lines were cut as they came, so none is long.
    for line in std::io::BufReader::new(file).split(b'\n') {
        let Ok(line) = line else { return };
        println!("{}", landfall::inert::inert_bytes(&line));
    }
}
