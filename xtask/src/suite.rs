//! The integration tests (`tests/it`), each test a process of its own,
//! `jobs` at once, each timed: the table of the slowest that `cargo xtask
//! test` prints after them, and every test's time in
//! `target/test-times.tsv`, are what the budget in `docs/testing.md` is
//! checked against. (nextest does the same; built from source it would
//! add minutes to every fresh machine's first run.)

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The integration tests' target.
pub(crate) const TARGET: &str = "it";

/// How many of the slowest tests the table shows.
const SLOWEST: usize = 10;

/// One test's run.
struct Ran {
    name: String,
    took: Duration,
    passed: bool,
}

/// Builds the integration tests, runs each in a process of its own,
/// `jobs` at once, and prints the slowest; fails if any failed.
pub(crate) fn run(root: &Path, jobs: usize) -> Result<()> {
    let root = &root.canonicalize()?;
    let binary = build(root)?;
    let listed = Command::new(&binary)
        .args(["--list", "--format", "terse"])
        .output()
        .context("cannot list the integration tests")?;
    let names: VecDeque<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_string)
        .collect();
    let total = names.len();
    eprintln!("running {total} integration tests, {jobs} at once");
    let queue = Mutex::new(names);
    let done: Mutex<Vec<Ran>> = Mutex::new(Vec::new());
    let started = Instant::now();
    // Tests find the repository as cargo runs them: from their package.
    let dir = root.join("crates/landfall-cli");
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let Some(name) = queue.lock().expect("not poisoned").pop_front() else {
                        return;
                    };
                    let began = Instant::now();
                    let output = Command::new(&binary)
                        .args(["--exact", &name, "--test-threads", "1"])
                        .current_dir(&dir)
                        .output();
                    let took = began.elapsed();
                    let passed = output.as_ref().is_ok_and(|o| o.status.success());
                    let mut done = done.lock().expect("not poisoned");
                    let n = done.len() + 1;
                    eprintln!(
                        "{} [{:>7.2}s] ({n}/{total}) {name}",
                        if passed { "    PASS" } else { "    FAIL" },
                        took.as_secs_f64()
                    );
                    if !passed {
                        match &output {
                            Ok(o) => eprintln!(
                                "{}{}",
                                String::from_utf8_lossy(&o.stdout),
                                String::from_utf8_lossy(&o.stderr)
                            ),
                            Err(err) => eprintln!("cannot run it: {err}"),
                        }
                    }
                    done.push(Ran { name, took, passed });
                }
            });
        }
    });
    let mut ran = done.into_inner().expect("not poisoned");
    ran.sort_by_key(|r| std::cmp::Reverse(r.took));
    let mut times = String::new();
    for r in &ran {
        let result = if r.passed { "ok" } else { "FAILED" };
        let _ = writeln!(times, "{:.2}\t{}\t{result}", r.took.as_secs_f64(), r.name);
    }
    let file = root.join("target/test-times.tsv");
    std::fs::write(&file, times).with_context(|| format!("cannot write {}", file.display()))?;
    eprintln!("\nthe {SLOWEST} slowest (all in {}):", file.display());
    for r in ran.iter().take(SLOWEST) {
        eprintln!("  {:>7.2}s  {}", r.took.as_secs_f64(), r.name);
    }
    let failed: Vec<&str> = ran
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect();
    eprintln!(
        "\n{} passed, {} failed, in {:.0}s",
        ran.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// Builds the integration tests' binary; its path.
fn build(root: &Path) -> Result<PathBuf> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "test",
            "--package",
            "landfall-cli",
            "--test",
            "it",
            "--no-run",
            "--message-format",
            "json",
        ])
        .current_dir(root)
        .output()
        .context("cannot run cargo")?;
    if !output.status.success() {
        bail!(
            "cannot build the integration tests:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == TARGET)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built no `it` binary")
}

/// The names of the workspace's test targets (`tests/*.rs` of each
/// member, and `tests/it`), as cargo's metadata lists them.
pub(crate) fn test_targets(root: &Path) -> Result<Vec<String>> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let names: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    if !names.iter().any(|n| n == TARGET) {
        bail!("the workspace has no `{TARGET}` test target");
    }
    Ok(names)
}
