//! Data-driven tests of resolution: a workspace is files in a temporary
//! directory; `load` resolves it or returns its diagnostics as text.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{Environment, Project, Workspace, load_environment, load_project};
use crate::error::Error;

pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
}

impl Fixture {
    /// A workspace with a binary `svc` and the given files.
    pub(crate) fn new(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        Fixture { dir }
    }

    /// Writes `text` to `path` in the workspace.
    pub(crate) fn write(&self, path: &str, text: &str) {
        fs::write(self.dir.path().join(path), text).unwrap();
    }

    pub(crate) fn workspace(&self) -> Workspace {
        let root = self.dir.path().to_path_buf();
        Workspace {
            manifest_path: root.join("Cargo.toml"),
            target_dir: root.join("target"),
            root_package: Some("svc".into()),
            bins: BTreeMap::from([("svc".to_string(), vec!["svc".to_string()])]),
            root,
        }
    }

    pub(crate) fn project(&self) -> Result<Project, Error> {
        load_project(self.workspace())
    }

    pub(crate) fn load(&self, env: &str) -> (Project, Environment) {
        let project = self.project().unwrap_or_else(|e| panic!("{e}"));
        let env = load_environment(&project, env).unwrap_or_else(|e| panic!("{e}"));
        (project, env)
    }
}

const ENV: &str =
    "[hosts.web1]\nroles = [\"web\"]\n\n[hosts.web2]\nroles = [\"web\"]\naddress = \"10.0.0.2\"\n";

/// The errors of a deploy.toml, one `file:line:column: message` per line.
fn errors(deploy: &str) -> String {
    let fixture = Fixture::new(&[
        ("deploy.toml", deploy),
        ("environments/dev.toml", ENV),
        ("static/a.txt", "a"),
    ]);
    match fixture.project() {
        Ok(_) => "ok".to_string(),
        Err(err) => err.to_string(),
    }
}

#[test]
fn defaults_are_applied_and_sources_listed() {
    let fixture = Fixture::new(&[
        (
            "deploy.toml",
            "[artifact.web]\nroles = [\"web\"]\npath = \"/srv/web/\"\nbins = [\"svc\"]\n\
             files = [{ src = \"static\", dst = \"public\" }]\nshared = [\"log\"]\n",
        ),
        ("static/b.txt", "b"),
        ("static/.hidden", "h"),
        ("static/sub/a.txt", "a"),
        ("environments/dev.toml", ENV),
    ]);
    let (project, env) = fixture.load("dev");
    assert_eq!(project.name, "svc", "the root package names the project");
    assert_eq!(project.build.profile, "release");
    let web = &project.artifacts[0];
    assert_eq!(web.path, "/srv/web");
    assert_eq!(web.keep, 5);
    assert_eq!(web.rollout, crate::config::Rollout::default());
    assert_eq!(web.hooks.health_timeout, Duration::from_secs(30));
    let dsts: Vec<&str> = web.files.iter().map(|f| f.dst.as_str()).collect();
    assert_eq!(
        dsts,
        ["public/.hidden", "public/b.txt", "public/sub/a.txt"],
        "hidden files are included, sorted"
    );
    assert_eq!(env.jobs, 16);
    assert_eq!(
        env.hosts[0].address, "web1",
        "the address defaults to the host's name"
    );
    assert_eq!(env.hosts[1].address, "10.0.0.2");
    assert!(env.warnings.is_empty());
}

#[test]
fn the_whole_workspace_as_files_leaves_out_git_and_the_build_output() {
    let fixture = Fixture::new(&[
        (
            "deploy.toml",
            "[artifact.web]\nroles = [\"web\"]\npath = \"/srv/web\"\n\
             files = [{ src = \".\", dst = \"all\" }]\n",
        ),
        (".git/HEAD", "ref: refs/heads/main\n"),
        ("sub/.git", "gitdir: ../.git/worktrees/sub\n"),
        ("target/debug/svc", "binary"),
        ("static/a.txt", "a"),
        ("environments/dev.toml", ENV),
    ]);
    let (project, _) = fixture.load("dev");
    let dsts: Vec<&str> = project.artifacts[0]
        .files
        .iter()
        .map(|f| f.dst.as_str())
        .collect();
    assert_eq!(
        dsts,
        [
            "all/deploy.toml",
            "all/environments/dev.toml",
            "all/static/a.txt"
        ]
    );
}

#[test]
fn artifacts_come_in_after_order() {
    let deploy = "[artifact.a]\npath = \"/a\"\nafter = [\"c\"]\n[artifact.b]\npath = \"/b\"\n\
                  [artifact.c]\npath = \"/c\"\nafter = [\"b\"]\n";
    let fixture = Fixture::new(&[("deploy.toml", deploy)]);
    let project = fixture.project().unwrap();
    let order: Vec<&str> = project.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(order, ["b", "c", "a"]);
}

#[test]
fn local_hooks_replace_only_what_they_name() {
    let deploy = "[artifact.a]\npath = \"/a\"\n[artifact.a.hooks]\nactivate = \"systemctl restart a\"\n\
                  health = \"curl -f localhost\"\nhealth_timeout = \"1m 30s\"\n\
                  [artifact.a.hooks.local]\nactivate = \"bin/restart\"\n";
    let fixture = Fixture::new(&[("deploy.toml", deploy)]);
    let project = fixture.project().unwrap();
    let a = &project.artifacts[0];
    assert_eq!(
        a.hooks.activate.as_ref().unwrap().text,
        "systemctl restart a"
    );
    assert_eq!(a.local_hooks.activate.as_ref().unwrap().text, "bin/restart");
    assert_eq!(
        a.local_hooks.health.as_ref().unwrap().text,
        "curl -f localhost"
    );
    assert_eq!(a.hooks.health_timeout, Duration::from_secs(90));
}

#[test]
fn errors_point_at_their_line() {
    let cases = [
        (
            "[artifact.a]\npath = \"/a\"\nkeep = 0\n",
            "deploy.toml:3:8: `keep` must be at least 1",
        ),
        (
            "[artifact.a]\npath = \"a\"\n",
            "deploy.toml:2:8: `path` of artifact `a` must be an absolute directory",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nafter = [\"b\"]\n",
            "deploy.toml:3:10: unknown artifact `b` in `after`",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nbins = [\"nope\"]\n",
            "deploy.toml:3:9: no binary target `nope` in the workspace",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nfiles = [{ src = \"static\", dst = \"../x\" }]\n",
            "deploy.toml:3:34: `../x` escapes the release directory",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nfiles = [{ src = \"static/a.txt\", dst = \"x\", mode = \"999\" }]\n",
            "deploy.toml:3:52: invalid mode `999`",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nfiles = [{ src = \"static/a.txt\", dst = \"x\" }, { src = \"static\", dst = \"x\" }]\n",
            "deploy.toml:3:47: `x` is both a file and a directory in artifact `a`",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nfiles = [{ src = \"static\", dst = \"x\" }, { src = \"static/a.txt\", dst = \"x\" }]\n",
            "deploy.toml:3:41: `x` is both a file and the directory of `x/a.txt` in artifact `a`",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nhooks = { health_timeout = \"soon\" }\n",
            "deploy.toml:3:28: invalid duration `soon`",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nnope = 1\n",
            "deploy.toml:3:1: unknown field `nope`",
        ),
        (
            "[artifact.a]\npath = \"/a\"\nafter = [\"b\"]\n[artifact.b]\npath = \"/b\"\nafter = [\"a\"]\n",
            "form a cycle",
        ),
    ];
    let mismatches: Vec<String> = cases
        .iter()
        .filter_map(|(deploy, expected)| {
            let got = errors(deploy);
            (!got.contains(expected))
                .then(|| format!("for\n{deploy}expected `{expected}` in:\n{got}\n"))
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// `confirm` is a window of whole seconds, rounded up; none, zero or a
/// negative one is refused where it is written.
#[test]
fn a_confirmation_window_is_whole_seconds_longer_than_zero() {
    let window = |confirm: &str| {
        let deploy =
            format!("[artifact.a]\npath = \"/a\"\n[artifact.a.rollout]\nconfirm = \"{confirm}\"\n");
        let fixture = Fixture::new(&[
            ("deploy.toml", deploy.as_str()),
            ("environments/dev.toml", ENV),
        ]);
        fixture
            .project()
            .map(|p| p.artifacts[0].rollout.confirm)
            .map_err(|e| e.to_string())
    };
    assert_eq!(window("30s"), Ok(Some(Duration::from_secs(30))));
    assert_eq!(window("1m 500ms"), Ok(Some(Duration::from_secs(61))));
    for (bad, says) in [
        (
            "0s",
            "deploy.toml:4:11: `confirm` must be longer than zero, not `0s`",
        ),
        (
            "-5s",
            "deploy.toml:4:11: `confirm` must be longer than zero, not `-5s`",
        ),
        ("soon", "deploy.toml:4:11: invalid duration `soon`"),
    ] {
        let got = window(bad).unwrap_err();
        assert!(got.contains(says), "{bad}: {got}");
    }
}

/// A service's path and names reach root's service manager and sudoers:
/// a `,` in a path became a second sudo command, and is refused where it
/// is written, as is every mark those grammars read.
#[test]
fn a_service_path_or_name_that_privileged_text_would_misread_is_refused() {
    let service = "[artifact.a.service]\nmanager = \"systemd\"\nexec = \"bin/a\"\n";
    for path in [
        "/srv/a,b",
        "/srv/a:b",
        "/srv/a b",
        "/srv/a%n",
        "/srv/a*",
        "/srv/~a",
        "/srv/a\\\\b",
    ] {
        let got = errors(&format!(
            "[artifact.a]\nroles = [\"web\"]\npath = \"{path}\"\n{service}"
        ));
        assert!(
            got.contains("runs a service, so its `path` must be plain")
                || got.contains("must not contain"),
            "`{path}`: {got}"
        );
    }
    for name in ["a,b", "ALL b", "a*", "a:b", "-a", ".a"] {
        let got = errors(&format!(
            "[artifact.a]\nroles = [\"web\"]\npath = \"/srv/a\"\n{service}name = \"{name}\"\n"
        ));
        assert!(got.contains("invalid service name"), "`{name}`: {got}");
    }
    for user in ["a,b", "root b", "a*"] {
        let got = errors(&format!(
            "[artifact.a]\nroles = [\"web\"]\npath = \"/srv/a\"\n{service}user = \"{user}\"\n"
        ));
        assert!(got.contains("invalid user"), "`{user}`: {got}");
    }
}

/// Two artifacts of one project naming one service would take it from
/// each other on every host they share.
#[test]
fn two_artifacts_running_one_service_name_are_refused() {
    let got = errors(
        "[artifact.a]\nroles = [\"web\"]\npath = \"/srv/a\"\n\
         [artifact.a.service]\nmanager = \"systemd\"\nexec = \"bin/a\"\nname = \"shop\"\n\
         [artifact.b]\nroles = [\"web\"]\npath = \"/srv/b\"\n\
         [artifact.b.service]\nmanager = \"supervisor\"\nexec = \"bin/b\"\nname = \"shop\"\n",
    );
    assert!(
        got.contains("artifacts `a` and `b` both run the service `shop`"),
        "{got}"
    );
    // A default name is the project's and the artifact's: two of them
    // may only meet when one is given.
    let got = errors(
        "[project]\nname = \"p\"\n[artifact.a]\nroles = [\"web\"]\npath = \"/srv/a\"\n\
         [artifact.a.service]\nmanager = \"systemd\"\nexec = \"bin/a\"\nname = \"p-b\"\n\
         [artifact.b]\nroles = [\"web\"]\npath = \"/srv/b\"\n\
         [artifact.b.service]\nmanager = \"systemd\"\nexec = \"bin/b\"\n",
    );
    assert!(got.contains("both run the service `p-b`"), "{got}");
}

/// A project is known on its hosts by its name and its id: `init` makes
/// one, an invalid one is refused where it is written, and a project
/// without one is warned of.
#[test]
fn a_project_has_an_id_or_is_warned_that_its_name_alone_identifies_it() {
    let got = errors("[project]\nname = \"p\"\nid = \"x y\"\n");
    assert!(
        got.contains("deploy.toml:3:6: invalid project id `x y`"),
        "{got}"
    );
    let fixture = Fixture::new(&[
        (
            "deploy.toml",
            "[project]\nname = \"p\"\n[artifact.a]\nroles = [\"web\"]\npath = \"/a\"\n",
        ),
        ("environments/dev.toml", ENV),
    ]);
    let project = fixture.project().unwrap();
    assert_eq!(project.token(), "p");
    let warned: Vec<String> = project.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warned.iter().any(|w| w.contains("`[project]` has no `id`")),
        "{warned:?}"
    );
    let id = crate::init::project_id();
    assert_eq!(id.len(), 32);
    assert_ne!(id, crate::init::project_id());
    let fixture = Fixture::new(&[
        (
            "deploy.toml",
            &format!(
                "[project]\nname = \"p\"\nid = \"{id}\"\n[artifact.a]\nroles = [\"web\"]\npath = \"/a\"\n"
            ),
        ),
        ("environments/dev.toml", ENV),
    ]);
    let project = fixture.project().unwrap();
    assert_eq!(project.token(), format!("p:{id}"));
    assert!(project.warnings.is_empty(), "{:?}", project.warnings);
}

#[test]
fn two_sources_writing_one_file_are_reported() {
    let deploy = "[artifact.a]\npath = \"/a\"\nfiles = [{ src = \"static/a.txt\", dst = \"x\" }, { src = \"static/a.txt\", dst = \"x\" }]\n";
    let got = errors(deploy);
    assert!(
        got.starts_with("deploy.toml:3:47: `x` is written twice in artifact `a`"),
        "{got}"
    );
}

#[test]
fn an_artifact_for_no_host_is_a_warning_and_no_artifact_for_any_host_an_error() {
    let fixture = Fixture::new(&[
        (
            "deploy.toml",
            "[artifact.db]\nroles = [\"db\"]\npath = \"/db\"\n\
             [artifact.web]\nroles = [\"web\"]\npath = \"/web\"\n",
        ),
        ("environments/dev.toml", ENV),
    ]);
    let (_, env) = fixture.load("dev");
    assert_eq!(env.warnings.len(), 1);
    assert_eq!(
        env.warnings[0].to_string(),
        "deploy.toml:1:1: artifact `db` goes to no host of `dev`"
    );
    // A role mistyped: nothing would be deployed anywhere.
    let typo = Fixture::new(&[
        (
            "deploy.toml",
            "[artifact.web]\nroles = [\"wbe\"]\npath = \"/web\"\n",
        ),
        ("environments/dev.toml", ENV),
    ]);
    let project = typo.project().unwrap();
    let err = load_environment(&project, "dev").unwrap_err();
    assert!(err.is_usage());
    assert!(
        err.to_string().starts_with(
            "deploy.toml:2:10: no host of environment `dev` has a role of artifact `web`"
        ),
        "{err}"
    );
}

#[test]
fn overlapping_artifact_paths_on_one_host_are_refused() {
    let deploy = "[artifact.a]\nroles = [\"web\"]\npath = \"/srv/a\"\n[artifact.b]\nroles = [\"web\"]\npath = \"/srv/a/b\"\n";
    let fixture = Fixture::new(&[("deploy.toml", deploy), ("environments/dev.toml", ENV)]);
    let project = fixture.project().unwrap();
    let err = load_environment(&project, "dev").unwrap_err().to_string();
    assert!(
        err.starts_with("environments/dev.toml:1:1: artifacts `a` and `b` overlap on host `web1`"),
        "{err}"
    );
}

#[test]
fn unknown_environments_name_the_file_and_list_the_others() {
    let fixture = Fixture::new(&[
        ("deploy.toml", ""),
        ("environments/dev.toml", ""),
        ("environments/prod.toml", ""),
    ]);
    let project = fixture.project().unwrap();
    let err = load_environment(&project, "stage").unwrap_err();
    assert!(err.is_usage());
    assert_eq!(
        err.to_string(),
        "unknown environment `stage`: no `environments/stage.toml` (environments: dev, prod)"
    );
    assert!(
        load_environment(&project, "../dev").is_err(),
        "names are not paths"
    );
}

#[test]
fn vars_merge_deploy_then_environment_then_host() {
    let fixture = Fixture::new(&[
        (
            "deploy.toml",
            "[vars]\nport = 1\ndb = { host = \"a\", pool = 5 }\n",
        ),
        (
            "environments/dev.toml",
            "[vars]\nport = 2\ndb = { host = \"b\" }\n[hosts.web1]\nvars = { port = 3 }\n",
        ),
    ]);
    let (project, env) = fixture.load("dev");
    let vars = crate::template::host_vars(&project, &env, &env.hosts[0]);
    assert_eq!(
        vars.to_string(),
        "port = 3\n\n[db]\nhost = \"b\"\npool = 5\n"
    );
}

/// The fixture's root, for plan tests.
pub(crate) fn root(fixture: &Fixture) -> &Path {
    fixture.dir.path()
}

/// `pause = "until promoted"` waits for a person, not for a time: the
/// rollout promotes, with no pause of its own.
#[test]
fn a_pause_until_promoted_waits_for_a_person() {
    let deploy = |pause: &str| {
        Fixture::new(&[
            (
                "deploy.toml",
                &format!(
                    "[artifact.web]\nroles = [\"web\"]\npath = \"/srv/web\"\n\n\
                     [artifact.web.rollout]\ncanary = 1\npause = \"{pause}\"\n"
                ),
            ),
            ("environments/dev.toml", ENV),
        ])
        .project()
    };
    let project = deploy("until promoted").unwrap_or_else(|e| panic!("{e}"));
    let rollout = &project.artifacts[0].rollout;
    assert!(rollout.promote);
    assert_eq!(rollout.pause, Duration::ZERO);
    let project = deploy("30s").unwrap_or_else(|e| panic!("{e}"));
    assert!(!project.artifacts[0].rollout.promote);
    let err = deploy("until promoted later").unwrap_err().to_string();
    assert!(
        err.contains("invalid duration `until promoted later`"),
        "{err}"
    );
}
