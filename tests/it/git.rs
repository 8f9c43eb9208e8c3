//! Git artifacts ("git bouncing") on the test bed: the commit travels from
//! the workspace's repository to a bare repository on each host over the
//! run's ssh connection, so hosts need no access to any git server.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use landfall_testbed::Scoped;

use crate::support::Bed;
use crate::support::{Outcome, Workspace, http_get_at};

const SITE: &str = "hello/site";

/// Makes the example's `site` artifact a git artifact: the `docs/`
/// directory of the repository, with a build step run on the host.
fn git_site(ws: &Workspace) {
    let deploy = ws.read("deploy.toml");
    let start = deploy
        .find("[artifact.site]")
        .expect("deploy.toml has a site");
    ws.write(
        "deploy.toml",
        &format!(
            "{}[artifact.site]\nroles = [\"web\"]\npath = \"/srv/hello/site\"\n\
             transport = \"git\"\nsubdir = \"docs\"\nkeep = 3\n\n\
             [artifact.site.hooks]\nbuild = \"sh build.sh\"\n",
            &deploy[..start]
        ),
    );
    ws.write("docs/public/index.html", "<h1>The hello site</h1>\n");
    ws.write("docs/public/old.txt", "to be deleted\n");
    ws.write(
        "docs/build.sh",
        "printf 'built %s on %s\\n' \"$LANDFALL_RELEASE\" \"$LANDFALL_HOST\" >public/built.txt\n",
    );
}

/// The `pushed` events of an artifact, by host.
fn pushed(out: &Outcome, artifact: &str) -> Vec<serde_json::Value> {
    out.events()
        .into_iter()
        .filter(|e| e["event"] == "pushed" && e["artifact"] == artifact)
        .collect()
}

fn status_of(out: &Outcome, artifact: &str) -> Vec<String> {
    out.statuses()
        .into_iter()
        .filter(|(target, _)| target.ends_with(&format!("/{artifact}")))
        .map(|(_, status)| status)
        .collect()
}

/// git on a host's bare repository, seen from outside.
fn host_git(repo: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn a_commit_is_bounced_to_hosts_that_reach_no_git_server() {
    let bed = Bed::new();
    git_site(&bed.ws);
    let first = bed.ws.git_commit("site from git");
    // Nothing to fetch from: the workspace has no remote, and neither will
    // the hosts' repositories.
    assert_eq!(bed.ws.git(&["remote"]), "");

    let out = bed.deploy(&[]);
    out.assert_code(0);
    let first_push = pushed(&out, "site");
    assert_eq!(first_push.len(), 3, "{}", out.stdout);
    let all_objects = first_push[0]["objects"].as_u64().unwrap();
    for (host, address) in bed.hosts() {
        let repo = bed.srv(&host, SITE).join(".landfall/repo.git");
        assert_eq!(
            host_git(&repo, &["rev-parse", "refs/landfall/pushed"]).1,
            first
        );
        let (has_remote, _) = host_git(&repo, &["config", "--get-regexp", "^remote\\."]);
        assert!(!has_remote, "{host}'s repository has no remote");
        let release = out.release_of(&host, "site");
        // The service serves what the build step made on the host.
        assert_eq!(
            http_get_at(&address, bed.port, "/static/built.txt"),
            Some((200, format!("built {release} on {host}\n")))
        );
        let page = http_get_at(&address, bed.port, "/static/index.html").unwrap();
        assert_eq!(page, (200, "<h1>The hello site</h1>\n".to_string()));
    }

    // Done-when 6: a dry run lists what HEAD would change, and changes
    // nothing.
    bed.ws
        .write("docs/public/index.html", "<h1>The new hello site</h1>\n");
    bed.ws.write("docs/public/new.txt", "new\n");
    fs::remove_file(bed.ws.path("docs/public/old.txt")).unwrap();
    let second = bed
        .ws
        .git_commit("one page changed, one added, one deleted");
    let dry = bed.deploy(&["--dry-run"]);
    dry.assert_code(0);
    let predictions: Vec<serde_json::Value> = dry
        .events()
        .into_iter()
        .filter(|e| e["event"] == "would_deploy" && e["artifact"] == "site")
        .collect();
    assert_eq!(predictions.len(), 3, "{}", dry.stdout);
    for p in &predictions {
        assert_eq!(
            p["changed"],
            serde_json::json!(["public/index.html"]),
            "{p}"
        );
        assert_eq!(p["added"], serde_json::json!(["public/new.txt"]), "{p}");
        assert_eq!(p["removed"], serde_json::json!(["public/old.txt"]), "{p}");
        assert!(p["hooks"].as_array().unwrap().contains(&"build".into()));
    }
    for (host, _) in bed.hosts() {
        assert_eq!(
            bed.current(&host, SITE),
            Some(out.release_of(&host, "site"))
        );
    }

    // Done-when 2: only the new objects travel, and the deleted file is
    // gone from the new release.
    let out = bed.deploy(&[]);
    out.assert_code(0);
    assert_eq!(status_of(&out, "site"), ["deployed"; 3]);
    assert_eq!(status_of(&out, "app"), ["unchanged"; 3]);
    for event in pushed(&out, "site") {
        // git's own count: the commit, three trees (root, docs,
        // docs/public) and two blobs.
        assert_eq!(event["objects"], 6, "{event}");
        assert!(
            all_objects > 6,
            "the first push sent the history: {all_objects}"
        );
    }
    for (host, address) in bed.hosts() {
        let current = bed.srv(&host, SITE).join("current");
        assert!(!current.join("public/old.txt").exists());
        assert_eq!(
            fs::read_to_string(current.join("public/new.txt")).unwrap(),
            "new\n"
        );
        let page = http_get_at(&address, bed.port, "/static/index.html").unwrap();
        assert_eq!(page.1, "<h1>The new hello site</h1>\n");
        let repo = bed.srv(&host, SITE).join(".landfall/repo.git");
        assert_eq!(
            host_git(&repo, &["rev-parse", "refs/landfall/pushed"]).1,
            second
        );
    }
    let deployed: Vec<String> = bed
        .hosts()
        .iter()
        .map(|(h, _)| out.release_of(h, "site"))
        .collect();

    // Done-when 3: new commits with the same tree are unchanged: an empty
    // commit, a change outside `docs/`, and squashing them (a rebase that
    // keeps the tree).
    bed.ws.git_commit("empty");
    let out = bed.deploy(&[]);
    out.assert_code(0);
    assert_eq!(status_of(&out, "site"), ["unchanged"; 3]);
    bed.ws.write("NOTES.md", "not part of the site\n");
    bed.ws.git_commit("notes");
    bed.ws.git(&["reset", "--soft", "HEAD~2"]);
    bed.ws.git(&["commit", "-q", "-m", "squashed"]);
    let out = bed.deploy(&[]);
    out.assert_code(0);
    assert_eq!(status_of(&out, "site"), ["unchanged"; 3]);
    assert!(pushed(&out, "site").is_empty());
    for ((host, _), release) in bed.hosts().iter().zip(&deployed) {
        assert_eq!(bed.current(host, SITE).as_ref(), Some(release));
    }

    // A working tree with changes HEAD does not have is refused before any
    // host is contacted; `--allow-dirty` deploys HEAD and says so.
    bed.ws
        .write("docs/public/index.html", "<h1>uncommitted</h1>\n");
    let refused = bed.deploy(&[]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("docs/public/index.html")
            && refused.stderr.contains("--allow-dirty"),
        "{}",
        refused.stderr
    );
    bed.ws.write("docs/public/extra.txt", "committed\n");
    bed.ws.git(&["add", "docs/public/extra.txt"]);
    bed.ws
        .git(&["commit", "-q", "-m", "extra", "--", "docs/public/extra.txt"]);
    let out = bed.deploy(&["--allow-dirty"]);
    out.assert_code(0);
    assert_eq!(status_of(&out, "site"), ["deployed"; 3]);
    assert!(
        out.events().iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("without the working tree's changes to docs/public/index.html")),
        "{}",
        out.stdout
    );
    let status = bed
        .ws
        .run(&["status", "testbed", "--message-format", "json"]);
    status.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    for (host, address) in bed.hosts() {
        let page = http_get_at(&address, bed.port, "/static/index.html").unwrap();
        assert_eq!(
            page.1, "<h1>The new hello site</h1>\n",
            "HEAD, not the working tree"
        );
        let target = report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["host"] == host.as_str() && t["artifact"] == "site")
            .unwrap();
        let revision = target["releases"][0]["activated"]["revision"]
            .as_str()
            .unwrap();
        assert!(revision.ends_with("+dirty"), "{target}");
    }
}

/// A workspace whose two test bed hosts get one git artifact only (no
/// binaries to build).
fn docs_only(testbed: &Scoped) -> Workspace {
    let ws = Workspace::hello();
    let mut env = format!(
        "[environment]\nssh_config = \"{}\"\n",
        testbed.ssh_config().display()
    );
    for host in &testbed.hosts {
        let _ = write!(env, "\n[hosts.{}]\nroles = [\"docs\"]\n", host.name);
    }
    ws.write("environments/testbed.toml", &env);
    let deploy = ws.read("deploy.toml");
    ws.write(
        "deploy.toml",
        &format!(
            "{deploy}\n[artifact.docs]\nroles = [\"docs\"]\npath = \"/srv/docs\"\n\
             transport = \"git\"\nsubdir = \"docs\"\n\
             templates = [{{ src = \"docs.conf.j2\", dst = \"etc/docs.conf\" }}]\n\n\
             [artifact.docs.hooks]\nbuild = \"sh build.sh\"\n"
        ),
    );
    ws.write("templates/docs.conf.j2", "host = {{ host.name }}\n");
    ws.write("docs/index.html", "<h1>v1</h1>\n");
    ws.write(
        "docs/build.sh",
        "echo building; mkdir -p out && cp index.html out/\n",
    );
    ws
}

#[test]
fn amended_history_deploys_and_a_failing_build_leaves_current_alone() {
    let testbed = Scoped::up(2).expect("the test bed starts");
    let ws = docs_only(&testbed);
    ws.git_commit("docs v1");
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy", "testbed", "--message-format", "json"];
        args.extend_from_slice(extra);
        ws.run(&args)
    };
    let out = deploy(&[]);
    out.assert_code(0);
    let srv = |host: &str| testbed.srv(host).join("docs");
    for host in &testbed.hosts {
        let current = srv(&host.name).join("current");
        assert_eq!(
            fs::read_to_string(current.join("out/index.html")).unwrap(),
            "<h1>v1</h1>\n"
        );
        assert_eq!(
            fs::read_to_string(current.join("etc/docs.conf")).unwrap(),
            format!("host = {}\n", host.name)
        );
    }

    // `--local` makes the same releases, through a bare repository of its
    // own, with the build step run here.
    let local = ws.run(&["deploy", "testbed", "--local", "--message-format", "json"]);
    local.assert_code(0);
    for host in &testbed.hosts {
        let release = out.release_of(&host.name, "docs");
        assert_eq!(local.release_of(&host.name, "docs"), release);
        let dir = ws.path(&format!(
            "target/landfall/local/testbed/{}/srv/docs",
            host.name
        ));
        assert!(dir.join(".landfall/repo.git").is_dir());
        assert_eq!(
            fs::read_to_string(dir.join("current/out/index.html")).unwrap(),
            "<h1>v1</h1>\n"
        );
    }

    // Done-when 4: the deployed commit is amended (a history rewrite); the
    // next deploy force-updates the host's repository.
    ws.write("docs/index.html", "<h1>v1, amended</h1>\n");
    ws.git(&["commit", "-q", "-a", "--amend", "-m", "docs v1 (amended)"]);
    let amended = ws.git(&["rev-parse", "HEAD"]);
    let out = deploy(&[]);
    out.assert_code(0);
    assert_eq!(status_of(&out, "docs"), ["deployed"; 2]);
    let good: Vec<String> = testbed
        .hosts
        .iter()
        .map(|h| {
            let current = srv(&h.name).join("current");
            assert_eq!(
                fs::read_to_string(current.join("out/index.html")).unwrap(),
                "<h1>v1, amended</h1>\n"
            );
            let repo = srv(&h.name).join(".landfall/repo.git");
            assert_eq!(
                host_git(&repo, &["rev-parse", "refs/landfall/pushed"]).1,
                amended
            );
            out.release_of(&h.name, "docs")
        })
        .collect();

    // Done-when 5: a build that fails on the host shows its output, exits
    // 1, and leaves `current` and the releases as they were.
    ws.write(
        "docs/build.sh",
        "echo compiling docs; echo 'error: no rule to make target out/index.html' >&2; exit 2\n",
    );
    ws.write("docs/index.html", "<h1>v2</h1>\n");
    ws.git_commit("a broken build");
    let releases = |host: &str| {
        let mut names: Vec<String> = fs::read_dir(srv(host).join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before: Vec<Vec<String>> = testbed.hosts.iter().map(|h| releases(&h.name)).collect();
    let out = deploy(&[]);
    out.assert_code(1);
    assert_eq!(status_of(&out, "docs"), ["failed"; 2]);
    let failed = out.events_of("failed");
    assert_eq!(failed.len(), 2, "{}", out.stdout);
    for event in &failed {
        assert_eq!(event["phase"], "build", "{event}");
        let message = event["message"].as_str().unwrap();
        assert!(
            message.contains("error: no rule to make target out/index.html"),
            "{message}"
        );
        assert!(message.contains("`current` is untouched"), "{message}");
    }
    for ((host, release), before) in testbed.hosts.iter().zip(&good).zip(&before) {
        let current = srv(&host.name).join("current");
        assert_eq!(
            fs::read_link(&current)
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            release.as_str()
        );
        assert_eq!(
            fs::read_to_string(current.join("out/index.html")).unwrap(),
            "<h1>v1, amended</h1>\n"
        );
        assert_eq!(
            &releases(&host.name),
            before,
            "no release and no upload left behind"
        );
        assert!(!srv(&host.name).join(".landfall/lock").exists());
    }

    // Fixed, it converges.
    ws.write("docs/build.sh", "mkdir -p out && cp index.html out/\n");
    ws.git_commit("build fixed");
    let out = deploy(&[]);
    out.assert_code(0);
    for host in &testbed.hosts {
        let current = srv(&host.name).join("current");
        assert_eq!(
            fs::read_to_string(current.join("out/index.html")).unwrap(),
            "<h1>v2</h1>\n"
        );
    }
}
