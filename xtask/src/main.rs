//! Developer tasks: `cargo xtask lint`, `demo`, `testbed` and `bench`.

mod bench;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

const USAGE: &str = "usage: cargo xtask <lint|demo|testbed|bench>
  lint                 cargo fmt --check and cargo clippy with warnings denied
  demo                 deploy examples/hello locally through landfall's library and ask
                       each host for its greeting
  testbed up [N]       start N (default 3) real sshd hosts under target/testbed/
  testbed down         stop them and every process they started
  testbed status       list the hosts and whether they run
  bench [--runs N] [--hosts 1,4,8]
                       landfall against a hand-written rsync+ssh deploy on the test bed
                       (needs root, sshd, rsync and nftables; see docs/benchmarks.md)";

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    let sh = Shell::new()?;
    sh.change_dir(env!("CARGO_MANIFEST_DIR"));
    sh.change_dir("..");
    match task.as_deref() {
        Some("lint") => lint(&sh),
        Some("demo") => demo(&sh),
        Some("testbed") => testbed(&sh, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("bench") => bench::bench(&sh, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

fn lint(sh: &Shell) -> Result<()> {
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    Ok(())
}

/// Deploys examples/hello to its local hosts through landfall's library,
/// the pipeline `cargo deploy dev --local` runs, then asks each service.
fn demo(sh: &Shell) -> Result<()> {
    use landfall::deploy::{self, DeployOptions, Identity, Run};
    use landfall::{config, plan, secrets, transport};

    let project = landfall::load(Some(&sh.current_dir().join("Cargo.toml")))?;
    let env = config::load_environment(&project, "dev")?;
    let secrets = secrets::load(&project, &env)?;
    let plan = plan::plan(&project, &env, &[], true, &secrets)?;
    let report = |event: landfall::event::Event| {
        if let Ok(line) = serde_json::to_string(&event) {
            eprintln!("{line}");
        }
    };
    let built =
        landfall::build_releases(&project, &plan, &landfall::BuildOptions::default(), &report)?;
    let local = transport::Local::new(&project.workspace.landfall_dir(), &env.name);
    let identity = Identity::current(built.revision.clone());
    let run = Run {
        project: &project,
        env: &env,
        transport: &local,
        identity: &identity,
        jobs: env.jobs,
        events: &report,
    };
    let summary = deploy::deploy(&run, &plan, &built.releases, DeployOptions::default());
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
    use landfall_testbed::Testbed;
    let dir = sh.current_dir().join("target/testbed");
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["up"] | ["up", _] => {
            let count = args
                .get(1)
                .map_or(Ok(3), |n| n.parse())
                .context("N must be a number")?;
            let testbed = Testbed::up(&dir, count)?;
            for host in &testbed.hosts {
                println!(
                    "{}  {}:{}  /srv = {}",
                    host.name,
                    host.address,
                    host.port,
                    testbed.srv(&host.name).display()
                );
            }
            println!("ssh -F {} host1", testbed.ssh_config().display());
            Ok(())
        }
        ["down"] => Testbed::open(&dir)?.down(),
        ["status"] => {
            let testbed = Testbed::open(&dir)?;
            let running = testbed.running();
            for host in &testbed.hosts {
                let state = if running.contains(&host.name) {
                    "running"
                } else {
                    "stopped"
                };
                println!("{}  {}:{}  {state}", host.name, host.address, host.port);
            }
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}
