//! Release pipelines: protected environments, and `init`.

use std::path::Path;
use std::process::Command;

use crate::support::{Outcome, Workspace};

fn deploy(ws: &Workspace, extra: &[&str]) -> Outcome {
    let mut args = vec!["deploy", "dev", "--local"];
    args.extend_from_slice(extra);
    ws.run_with(&args, &[("CI", Path::new("true"))])
}

#[test]
fn a_protected_environment_needs_a_clean_tree_its_branch_and_a_confirmation() {
    let ws = Workspace::hello_built();
    ws.edit(
        "environments/dev.toml",
        "jobs = 4",
        "jobs = 4\nprotect = true\nbranch = \"main\"",
    );
    ws.git_commit("protected dev");
    ws.git(&["branch", "-M", "main"]);
    let nothing_deployed = |ws: &Workspace| {
        assert!(
            !ws.path("target/landfall/local/dev").exists(),
            "nothing was deployed"
        );
    };

    // Under CI nobody can be asked: only `--yes` confirms.
    let out = deploy(&ws, &[]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("confirm the deploy with `--yes`"),
        "{}",
        out.stderr
    );
    nothing_deployed(&ws);
    deploy(&ws, &["--dry-run"]).assert_code(0);

    // A dirty tree is refused, even confirmed; a dry run only warns.
    ws.write("NOTES.md", "uncommitted\n");
    let out = deploy(&ws, &["--yes"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("uncommitted changes") && out.stderr.contains("--allow-dirty"),
        "{}",
        out.stderr
    );
    nothing_deployed(&ws);
    let dry = deploy(&ws, &["--dry-run"]);
    dry.assert_code(0);
    assert!(
        dry.stderr.contains("a deploy would be refused"),
        "{}",
        dry.stderr
    );
    std::fs::remove_file(ws.path("NOTES.md")).unwrap();

    // Another branch is refused.
    ws.git(&["checkout", "-q", "-b", "feature"]);
    let out = deploy(&ws, &["--yes"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("deployed from branch `main`, and this is branch `feature`"),
        "{}",
        out.stderr
    );
    nothing_deployed(&ws);
    deploy(&ws, &["--dry-run"]).assert_code(0);

    // On its branch, clean and confirmed, it deploys.
    ws.git(&["checkout", "-q", "main"]);
    let out = deploy(&ws, &["--yes", "--message-format", "json"]);
    out.assert_code(0);
    assert!(
        out.statuses().iter().all(|(_, s)| s == "deployed"),
        "{:?}",
        out.statuses()
    );
}

#[test]
fn init_scaffolds_a_new_cargo_package_that_then_deploys_locally() {
    let (_dir, root) = crate::support::new_package();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cargo-deploy"))
            .args(args)
            .current_dir(&root)
            .env("NO_COLOR", "1")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["init", "--message-format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    for file in [
        "deploy.toml",
        "environments/dev.toml",
        "templates/shop.toml.j2",
        "Cargo.lock",
    ] {
        assert!(root.join(file).is_file(), "{file} was written");
    }
    let (code, stderr) = run(&["deploy", "dev", "--local"]);
    assert_eq!(code, Some(0), "{stderr}");
    let current = root.join("target/landfall/local/dev/local/srv/shop/current");
    let output = Command::new(current.join("bin/shop")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "Hello, world!\n");
    let config = std::fs::read_to_string(current.join("etc/shop.toml")).unwrap();
    assert!(config.contains("name = \"shop\""), "{config}");

    // It never overwrites.
    let (code, stderr) = run(&["init"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("`deploy.toml` exists already"), "{stderr}");
}

#[test]
fn colours_only_on_a_terminal_or_when_asked() {
    let ws = Workspace::hello_built();
    let stderr = |color: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-deploy"));
        cmd.args(["deploy", "nowhere", "--local"]);
        if let Some(color) = color {
            cmd.args(["--color", color]);
        }
        let out = cmd
            .current_dir(ws.root())
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // stderr is a pipe here: plain lines.
    let plain = stderr(None);
    assert!(plain.starts_with("error: "), "{plain}");
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
    assert!(!stderr(Some("never")).contains('\u{1b}'));
    assert!(stderr(Some("always")).contains("\u{1b}["));
}
