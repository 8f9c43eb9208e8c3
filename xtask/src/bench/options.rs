//! The command line of `cargo xtask bench` (and of `bench restarts`):
//! how many runs per figure, and which fleet sizes.

use anyhow::{Context, Result, bail, ensure};

/// The largest fleet measured `--runs` times; larger ones are measured
/// `--large-runs` times, so that the whole benchmark stays within about
/// 40 minutes on two cores.
const SMALL_FLEET: usize = 8;

/// What `cargo xtask bench` was asked for.
pub(crate) struct Options {
    pub(crate) runs: usize,
    /// Runs per figure for fleets of more than [`SMALL_FLEET`] hosts;
    /// `None`: `runs`, but at most 2.
    pub(crate) large_runs: Option<usize>,
    pub(crate) fleets: Vec<usize>,
}

impl Options {
    /// How many times each figure of a fleet of `k` hosts is measured.
    pub(crate) fn runs_for(&self, k: usize) -> usize {
        if k <= SMALL_FLEET {
            self.runs
        } else {
            self.large_runs.unwrap_or(self.runs.min(2))
        }
    }
}

pub(crate) fn options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 5,
        large_runs: None,
        fleets: vec![1, 8, 32, 64],
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("`{arg}` needs a value"))?;
        match arg.as_str() {
            "--runs" => options.runs = value.parse().context("--runs takes a number")?,
            "--large-runs" => {
                options.large_runs = Some(value.parse().context("--large-runs takes a number")?);
            }
            "--hosts" => {
                options.fleets = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--hosts takes numbers separated by commas, such as 1,8,64")?;
            }
            _ => bail!("unknown option `{arg}`"),
        }
    }
    ensure!(options.runs >= 1, "--runs must be at least 1");
    ensure!(
        options.large_runs != Some(0),
        "--large-runs must be at least 1"
    );
    ensure!(
        !options.fleets.is_empty() && options.fleets.iter().all(|k| (1..=250).contains(k)),
        "--hosts takes fleet sizes from 1 to 250"
    );
    options.fleets.sort_unstable();
    options.fleets.dedup();
    Ok(options)
}
