//! Developer tasks: `cargo xtask lint` and `cargo xtask demo`.

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

const USAGE: &str = "usage: cargo xtask <lint|demo>
  lint   cargo fmt --check and cargo clippy with warnings denied
  demo   deploy examples/hello locally and ask each host for its greeting";

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    let sh = Shell::new()?;
    sh.change_dir(env!("CARGO_MANIFEST_DIR"));
    sh.change_dir("..");
    match task.as_deref() {
        Some("lint") => lint(&sh),
        Some("demo") => demo(&sh),
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

fn demo(sh: &Shell) -> Result<()> {
    cmd!(
        sh,
        "cargo run --quiet --release -p landfall-cli -- deploy dev --local"
    )
    .run()?;
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
