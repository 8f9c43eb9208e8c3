//! Developer tasks: `cargo xtask test`, `lint`, `demo`, `man`, `testbed`
//! and `bench` (what each does: `USAGE`).
//!
//! Written with xshell, and built for debug as the tests are; `bench` runs
//! itself again built for release, since it measures this process too.
//! `test` is README.md's test command and CI's: it checks the test bed's
//! table of prerequisites, installs what is missing when it runs as root
//! (or says the one command that would, and exits 2), then runs the lint,
//! every unit test and the integration tests (`suite.rs`). `man` includes
//! the binary's own `cli.rs`, so that the pages say what `--help` says.
//! `demo` deploys through the library, as a user's own xtask would.

mod bench;
/// `cargo deploy`'s command line, the one its binary parses, for `man`.
#[path = "../../crates/landfall-cli/src/cli.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "only the command's description is used here"
)]
mod cli;
mod suite;

use anyhow::{Context, Result, bail, ensure};
use xshell::{Shell, cmd};

const USAGE: &str = "usage: cargo xtask <test|lint|demo|man|testbed|bench>
  test [--fast] [--jobs N]
                       install what the tests need that is missing (as root; otherwise say
                       the one command that would, and exit 2), then the lint and every
                       test, the integration tests each in a process of its own, N at once
                       (twice the CPUs), timed: the slowest are listed, every time is in
                       target/test-times.tsv; --fast: the tests that start no host nor
                       service manager
  lint                 cargo fmt --check, shellcheck over every shell script (the host
                       steps are checked by a library test), and cargo clippy with
                       warnings denied
  demo                 deploy examples/hello locally through landfall's library and ask
                       each host for its greeting
  man [DIR]            write the man pages of `cargo deploy` and each of its commands
                       (cargo-deploy.1, cargo-deploy-status.1, …) to DIR (target/man)
  testbed up [N] [--systemd]
                       start N (default 3) real sshd hosts under target/testbed/; with
                       --systemd, each under a systemd of its own (PID 1 of its namespaces)
  testbed down         stop them and every process they started
  testbed status       list the hosts and whether they run
  bench [--runs N] [--large-runs N] [--hosts 1,8,32,64]
                       landfall against a hand-written rsync+ssh deploy on the test bed,
                       each with ssh connections opened for the run (cold) and kept from
                       an earlier one (warm); --runs (5) for fleets of up to 8 hosts,
                       --large-runs (2, or --runs if fewer) for larger ones (needs root, sshd,
                       rsync and nftables; see docs/benchmarks.md)
  bench restarts [--runs N] [--only WORD] [--migrate-req]
                       what a deploy that restarts the example's service costs its clients
                       (refused, cut, latency added), stop-then-start against the hand-over,
                       under systemd, supervisord and --local; N deploys per setup (10);
                       --migrate-req: in a network namespace of its own where
                       net.ipv4.tcp_migrate_req is 1";

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    let sh = Shell::new()?;
    sh.change_dir(env!("CARGO_MANIFEST_DIR"));
    sh.change_dir("..");
    match task.as_deref() {
        Some("test") => test(&sh, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("lint") => lint(&sh),
        Some("demo") => demo(&sh),
        Some("man") => man(&sh, std::env::args().nth(2)),
        Some("testbed") => testbed(&sh, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("bench") if cfg!(debug_assertions) => {
            // What the benchmarks measure in this process (hashing, for
            // one) is measured as released.
            let args: Vec<String> = std::env::args().skip(1).collect();
            cmd!(
                sh,
                "cargo run --quiet --release --package xtask -- {args...}"
            )
            .run()?;
            Ok(())
        }
        Some("bench") => bench::bench(&sh, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// Writes the man pages of `cargo deploy`, generated from the command line
/// its binary parses, so that they say what `--help` says.
fn man(sh: &Shell, dir: Option<String>) -> Result<()> {
    use clap::CommandFactory;
    let dir = sh
        .current_dir()
        .join(dir.unwrap_or_else(|| "target/man".to_string()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    // Pages are named after the binary, as `man cargo-deploy` finds it.
    let command = cli::Cli::command()
        .name("cargo-deploy")
        .bin_name("cargo deploy");
    clap_mangen::generate_to(command, &dir)
        .with_context(|| format!("cannot write the man pages to {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".1"))
        .collect();
    pages.sort();
    println!("{}: {}", dir.display(), pages.join(" "));
    Ok(())
}

/// The programs the tests that start no host need (see `test --fast`).
const FAST_TOOLS: [&str; 8] = [
    "git",
    "rsync",
    "ssh",
    "systemd-analyze",
    "dash",
    "busybox",
    "awk",
    "shellcheck",
];

/// `cargo xtask test [--fast]`: the prerequisites, then the lint and the
/// whole suite, or, with `--fast`, the tests that start no host nor
/// service manager (the library's, the host steps' under dash and
/// busybox, the binary's and the test bed's own).
fn test(sh: &Shell, args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask test [--fast] [--jobs N]";
    let (mut fast, mut jobs) = (false, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--fast" => fast = true,
            "--jobs" => {
                let n = args.next().and_then(|n| n.parse::<usize>().ok());
                jobs = Some(n.filter(|&n| n > 0).with_context(|| usage.to_string())?);
            }
            _ => bail!("{usage}"),
        }
    }
    let root = is_root();
    let missing: Vec<&landfall_testbed::prerequisites::Tool> =
        landfall_testbed::prerequisites::missing()
            .into_iter()
            .filter(|tool| !fast || FAST_TOOLS.contains(&tool.name))
            .collect();
    if !missing.is_empty() {
        if !root {
            // Without sudo, Debian's packages are root's to install.
            let (how, sudo) = if missing.iter().any(|t| t.name == "sudo") {
                ("run as root", "")
            } else {
                ("run", "sudo ")
            };
            eprintln!(
                "the tests need what is not installed here: {}\n{how}:\n  {}",
                missing
                    .iter()
                    .map(|t| format!("{} ({})", t.name, t.why))
                    .collect::<Vec<_>>()
                    .join(", "),
                install_command(&missing, sudo)
            );
            std::process::exit(2);
        }
        install(sh, &missing)?;
    }
    // Every cargo below selects the whole workspace, so that each builds
    // the dependencies with the same features and none builds them again.
    if fast {
        cmd!(sh, "cargo test --workspace --lib --bins --test steps_sh").run()?;
        return Ok(());
    }
    if !root {
        eprintln!(
            "the test bed starts hosts in namespaces of their own, which needs root: \
             run `sudo cargo xtask test` (or `cargo xtask test --fast`)"
        );
        std::process::exit(2);
    }
    lint(sh)?;
    // Every target but the integration tests, as `cargo test` runs them;
    // then those, each a process of its own, timed.
    let tests: Vec<String> = suite::test_targets(&sh.current_dir())?
        .into_iter()
        .filter(|name| name != suite::TARGET)
        .flat_map(|name| ["--test".to_string(), name])
        .collect();
    cmd!(sh, "cargo test --workspace --lib --bins {tests...}").run()?;
    cmd!(sh, "cargo test --workspace --doc").run()?;
    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get) * 2
    });
    suite::run(&sh.current_dir(), jobs)
}

/// Whether this runs as root, as `/proc/self/status` says.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Debian's packages, then cargo's, then pip's, each named once.
fn sources(
    missing: &[&landfall_testbed::prerequisites::Tool],
) -> (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>) {
    use landfall_testbed::prerequisites::Source;
    let (mut apt, mut cargo, mut pip) = (Vec::new(), Vec::new(), Vec::new());
    for tool in missing {
        let (list, item) = match tool.source {
            Source::Apt(package) => (&mut apt, package),
            Source::Cargo(args) => (&mut cargo, args),
            Source::Pip(packages) => (&mut pip, packages),
        };
        if !list.contains(&item) {
            list.push(item);
        }
    }
    (apt, cargo, pip)
}

/// The one command that installs `missing`, Debian's packages through
/// `sudo` (the prefix given).
fn install_command(missing: &[&landfall_testbed::prerequisites::Tool], sudo: &str) -> String {
    let (apt, cargo, pip) = sources(missing);
    let mut steps = Vec::new();
    if !apt.is_empty() {
        steps.push(format!(
            "{sudo}apt-get update && {sudo}apt-get install -y {}",
            apt.join(" ")
        ));
    }
    steps.extend(cargo.iter().map(|args| format!("cargo install {args}")));
    steps.extend(
        pip.iter()
            .map(|packages| format!("python3 -m pip install {packages}")),
    );
    steps.join(" && ")
}

/// Installs `missing`, as root, naming each as it goes.
fn install(sh: &Shell, missing: &[&landfall_testbed::prerequisites::Tool]) -> Result<()> {
    for tool in missing {
        eprintln!(
            "installing {} ({}): {}",
            tool.name,
            tool.why,
            tool.source.command()
        );
    }
    let (apt, cargo, pip) = sources(missing);
    if !apt.is_empty() {
        let _frontend = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
        cmd!(sh, "apt-get update -qq").run()?;
        cmd!(sh, "apt-get install -y -qq {apt...}").run()?;
    }
    for args in cargo {
        let args: Vec<&str> = args.split(' ').collect();
        cmd!(sh, "cargo install {args...}").run()?;
    }
    for packages in pip {
        let packages: Vec<&str> = packages.split(' ').collect();
        cmd!(sh, "python3 -m pip install --quiet {packages...}").run()?;
    }
    let still: Vec<&str> = landfall_testbed::prerequisites::missing()
        .iter()
        .filter(|t| missing.iter().any(|m| m.name == t.name))
        .map(|t| t.name)
        .collect();
    ensure!(
        still.is_empty(),
        "still missing once installed: {}",
        still.join(", ")
    );
    Ok(())
}

fn lint(sh: &Shell) -> Result<()> {
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    shellcheck(sh)?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    Ok(())
}

/// The parts of the host steps. They have no `#!` line and are no script
/// on their own: landfall joins them, with the calls of each run, into one
/// script that it feeds to `sh -s`. A test of the library checks them as
/// POSIX sh with shellcheck, with a call of every step, whose assignments
/// the steps read (`steps::call::tests::the_steps_and_their_calls_pass_shellcheck`).
const HOST_STEPS: &str = "crates/landfall/src/steps/sh/";

/// Runs shellcheck over every shell script of the repository (tracked, or
/// new and not ignored) but the parts of the host steps, reporting every
/// finding down to style. `--norc` keeps a developer's own `.shellcheckrc`
/// from making the lint pass where CI fails.
fn shellcheck(sh: &Shell) -> Result<()> {
    if cmd!(sh, "shellcheck --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        bail!("`shellcheck` is not installed: install it with apt-get install shellcheck");
    }
    let scripts: Vec<String> = shell_scripts(sh)?
        .into_iter()
        .filter(|path| !path.starts_with(HOST_STEPS))
        .collect();
    if scripts.is_empty() {
        return Ok(());
    }
    cmd!(sh, "shellcheck --norc --severity=style {scripts...}").run()?;
    Ok(())
}

/// Every file of the repository, tracked or new and not ignored, named
/// `*.sh` or starting with a `#!` line that runs a shell.
fn shell_scripts(sh: &Shell) -> Result<Vec<String>> {
    let listed = cmd!(sh, "git ls-files -z --cached --others --exclude-standard").read()?;
    let mut scripts = Vec::new();
    for path in listed.split('\0').filter(|path| !path.is_empty()) {
        let file = sh.current_dir().join(path);
        // A file deleted from the work tree but not from the index.
        if !file.is_file() {
            continue;
        }
        if file.extension().is_some_and(|ext| ext == "sh") || runs_a_shell(&file)? {
            scripts.push(path.to_string());
        }
    }
    scripts.sort();
    scripts.dedup();
    Ok(scripts)
}

/// Whether `file` starts with a `#!` line whose interpreter is a shell,
/// directly (`#!/bin/sh`) or through env (`#!/usr/bin/env bash`).
fn runs_a_shell(file: &std::path::Path) -> Result<bool> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(128);
    std::fs::File::open(file)
        .and_then(|f| f.take(128).read_to_end(&mut head))
        .with_context(|| format!("cannot read `{}`", file.display()))?;
    let Some(line) = head.strip_prefix(b"#!") else {
        return Ok(false);
    };
    let line = String::from_utf8_lossy(line);
    let mut words = line.lines().next().unwrap_or_default().split_whitespace();
    let mut interpreter = words.next().unwrap_or_default();
    if interpreter.ends_with("/env") {
        interpreter = words
            .find(|word| !word.starts_with('-'))
            .unwrap_or_default();
    }
    let name = interpreter.rsplit('/').next().unwrap_or_default();
    Ok(matches!(name, "sh" | "bash" | "dash" | "ksh" | "ash"))
}

/// Deploys examples/hello to its local hosts through landfall's library,
/// with the operation `cargo deploy dev --local` runs, then asks each
/// service.
fn demo(sh: &Shell) -> Result<()> {
    use landfall::ops::deploy::{DeployRequest, deploy};

    /// Every event on stderr as JSON; no one to ask.
    struct Events;
    impl landfall::ops::Frontend for Events {
        fn event(&self, event: landfall::event::Event) {
            if let Ok(line) = serde_json::to_string(&event) {
                eprintln!("{line}");
            }
        }
        fn diagnostics(&self, warnings: &[landfall::diag::Diagnostic]) {
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
        }
        fn hide(&self, _: &landfall::secrets::Mask) {}
        fn can_ask(&self) -> bool {
            false
        }
        fn ask(&self, _: &str) -> landfall::Result<bool> {
            Ok(false)
        }
    }

    let settings = landfall::ops::Settings {
        manifest_path: Some(sh.current_dir().join("Cargo.toml")),
        ..landfall::ops::Settings::default()
    };
    let request = DeployRequest {
        env: "dev".into(),
        local: true,
        ..DeployRequest::default()
    };
    let summary = deploy(&settings, &request, &Events)?;
    for outcome in &summary.hosts {
        println!(
            "{} {}: {}",
            outcome.host,
            outcome.artifact,
            outcome.status.name()
        );
    }
    if !summary.ok {
        bail!("the deploy failed");
    }
    for port in ["18081", "18082"] {
        let answer = cmd!(
            sh,
            "cargo run --quiet --release -p hello -- probe http://127.0.0.1:{port}/"
        )
        .read()
        .with_context(|| format!("the service on port {port} does not answer"))?;
        println!("127.0.0.1:{port}: {answer}");
    }
    Ok(())
}

fn testbed(sh: &Shell, args: &[String]) -> Result<()> {
    use landfall_testbed::{Init, Testbed};
    let dir = sh.current_dir().join("target/testbed");
    match args.first().map(String::as_str) {
        Some("up") => {
            let mut count = None;
            let mut init = Init::Plain;
            for arg in &args[1..] {
                match arg.as_str() {
                    "--systemd" => init = Init::Systemd,
                    n if count.is_none() => {
                        count = Some(n.parse().context("N must be a number")?);
                    }
                    _ => bail!("{USAGE}"),
                }
            }
            let testbed = Testbed::up_well_known(&dir, count.unwrap_or(3), init)?;
            // The example's service runs under supervisord.
            for host in &testbed.hosts {
                testbed.start_supervisord(&host.name)?;
            }
            for host in &testbed.hosts {
                println!(
                    "{}  {}:{}  /srv = {}",
                    host.name,
                    host.address,
                    host.port,
                    testbed.srv(&host.name).display()
                );
            }
            if init == Init::Systemd {
                println!("each host runs a systemd of its own, its sshd one of its units");
            }
            println!("ssh -F {} host1", testbed.ssh_config().display());
            Ok(())
        }
        Some("down") if args.len() == 1 => Testbed::open(&dir)?.down(),
        Some("status") if args.len() == 1 => {
            let testbed = Testbed::open(&dir)?;
            let running = testbed.running();
            let init = match testbed.init {
                Init::Plain => "",
                Init::Systemd => "  (systemd)",
            };
            for host in &testbed.hosts {
                let state = if running.contains(&host.name) {
                    "running"
                } else {
                    "stopped"
                };
                println!(
                    "{}  {}:{}  {state}{init}",
                    host.name, host.address, host.port
                );
            }
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}
