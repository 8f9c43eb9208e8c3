//! `cargo deploy build`: the manifest and reproducibility.

use std::collections::BTreeMap;

use crate::support::Workspace;

#[test]
fn build_prints_artifact_and_release_ids() {
    let ws = Workspace::hello_built();
    let out = ws.run(&["build", "dev", "--message-format", "json"]);
    out.assert_code(0);
    let manifest = &out.events()[out.events().len() - 1];
    assert_eq!(manifest["event"], "manifest");
    let artifacts = manifest["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 2);
    let app = artifacts.iter().find(|a| a["artifact"] == "app").unwrap();
    assert_eq!(app["id"].as_str().unwrap().len(), 64);
    let paths: Vec<&str> = app["manifest"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            ".landfall-sbom.cdx.json",
            "bin/hello",
            "bin/restart",
            "log",
            "run"
        ]
    );
    assert_eq!(manifest["releases"].as_array().unwrap().len(), 4);
    assert!(
        !ws.path("target/landfall/local").exists(),
        "build deploys nothing"
    );
}

#[test]
fn check_reproducible_builds_twice_and_finds_identical_ids() {
    let ws = Workspace::hello_built();
    let out = ws.run(&[
        "build",
        "dev",
        "--check-reproducible",
        "--message-format",
        "json",
    ]);
    out.assert_code(0);
    let report = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "reproducible")
        .unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["first"], report["second"]);
    assert_eq!(report["first"]["artifacts"].as_object().unwrap().len(), 2);

    // The same ids as a build in the workspace itself.
    let normal = ws.run(&["build", "dev", "--message-format", "json"]);
    normal.assert_code(0);
    let manifest = normal.events().pop().unwrap();
    for artifact in manifest["artifacts"].as_array().unwrap() {
        let name = artifact["artifact"].as_str().unwrap();
        assert_eq!(report["first"]["artifacts"][name], artifact["id"], "{name}");
    }
}

/// Adds two packages to the workspace: `shared`, a library with a feature
/// `loud`, which `hello` now depends on too; and `other`, whose binary
/// prints whether its default feature `greeting` is on and what `shared`
/// says (its feature `loud` turns on `shared`'s).
fn add_two_packages(ws: &Workspace) {
    ws.write(
        "examples/shared/Cargo.toml",
        "[package]\nname = \"shared\"\nversion = \"0.1.0\"\nedition.workspace = true\npublish = false\n\n\
         [features]\nloud = []\n",
    );
    ws.write(
        "examples/shared/src/lib.rs",
        "pub fn word() -> &'static str {\n    if cfg!(feature = \"loud\") { \"HELLO\" } else { \"hello\" }\n}\n",
    );
    ws.write(
        "examples/other/Cargo.toml",
        "[package]\nname = \"other\"\nversion = \"0.1.0\"\nedition.workspace = true\npublish = false\n\n\
         [features]\ndefault = [\"greeting\"]\ngreeting = []\nloud = [\"shared/loud\"]\n\n\
         [dependencies]\nshared = { path = \"../shared\" }\n",
    );
    ws.write(
        "examples/other/src/main.rs",
        "fn main() {\n    let greeting = if cfg!(feature = \"greeting\") { \"on\" } else { \"off\" };\n    \
         println!(\"greeting {greeting}, {}\", shared::word());\n}\n",
    );
    let hello = ws.read("examples/hello/Cargo.toml");
    ws.write(
        "examples/hello/Cargo.toml",
        &format!("{hello}shared = {{ path = \"../shared\" }}\n"),
    );
    ws.edit(
        "Cargo.toml",
        "members = [\"examples/hello\"]",
        "members = [\"examples/hello\", \"examples/shared\", \"examples/other\"]",
    );
    crate::support::update_lock(ws.root());
}

/// `build`'s manifest: each artifact's id, and the hash of each of its
/// files by path.
fn built(ws: &Workspace, args: &[&str]) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let mut all = vec!["build", "dev", "--message-format", "json"];
    all.extend(args);
    let out = ws.run(&all);
    out.assert_code(0);
    let manifest = out.events_of("manifest").pop().expect("a manifest");
    manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let files = a["manifest"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    let hash = e["hash"].as_str().unwrap_or_default().to_string();
                    (e["path"].as_str().unwrap().to_string(), hash)
                })
                .collect();
            let name = a["artifact"].as_str().unwrap().to_string();
            (name, (a["id"].as_str().unwrap().to_string(), files))
        })
        .collect()
}

/// What a built binary prints.
fn run_binary(ws: &Workspace, path: &str) -> String {
    let output = std::process::Command::new(ws.path(path)).output().unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Each artifact builds its package with its own features, in a cargo
/// invocation of its own: a new service with other features rebuilds
/// nothing of the others, one binary built with two sets of features is
/// two binaries, `no_default_features` applies to every build, and
/// `--artifact` builds only what it names.
#[test]
fn each_artifact_builds_its_package_with_its_features_and_nothing_else() {
    let ws = Workspace::hello_built();
    add_two_packages(&ws);
    let before = built(&ws, &[]);
    let hello_binary = ws.path("target/landfall/build/release/hello");
    let mtime = |path: &std::path::Path| std::fs::metadata(path).unwrap().modified().unwrap();
    let hello_built_at = mtime(&hello_binary);

    // A service of another package, with a feature of the library hello
    // uses too: one cargo invocation for both would build the library with
    // that feature for hello as well, and rebuild it.
    let deploy = ws.read("deploy.toml");
    ws.write(
        "deploy.toml",
        &format!(
            "{deploy}\n[artifact.other]\nroles = [\"web\"]\npath = \"/srv/hello/other\"\n\
             bins = [\"other\"]\npackage = \"other\"\nfeatures = [\"loud\"]\n"
        ),
    );
    let with_other = built(&ws, &[]);
    assert_eq!(with_other["app"].0, before["app"].0, "app is unchanged");
    assert_eq!(
        mtime(&hello_binary),
        hello_built_at,
        "hello was not rebuilt"
    );
    assert_eq!(
        run_binary(&ws, "target/landfall/build/release/other"),
        "greeting on, HELLO"
    );

    // The same binary without the feature, for another artifact: two
    // builds, two binaries, each kept.
    let deploy = ws.read("deploy.toml");
    ws.write(
        "deploy.toml",
        &format!(
            "{deploy}\n[artifact.quiet]\nroles = [\"web\"]\npath = \"/srv/hello/quiet\"\nbins = [\"other\"]\n"
        ),
    );
    let both = built(&ws, &[]);
    let loud = &both["other"].1["bin/other"];
    let quiet = &both["quiet"].1["bin/other"];
    assert_ne!(loud, quiet, "two builds of `other`");
    assert_eq!(
        loud, &with_other["other"].1["bin/other"],
        "the loud build is the same"
    );
    assert_eq!(both["app"].0, before["app"].0);

    // Without default features: the greeting is off.
    ws.edit(
        "deploy.toml",
        "[build]\n",
        "[build]\nno_default_features = true\n",
    );
    // (Only `quiet` is built, so that cargo's own copy of `other` is its.)
    let bare = built(&ws, &["--artifact", "quiet"]);
    assert_ne!(bare["quiet"].1["bin/other"], *quiet);
    assert_eq!(
        run_binary(&ws, "target/landfall/build/release/other"),
        "greeting off, hello"
    );

    // `--artifact`: only that artifact, and only its binary is built.
    let out = ws.run(&[
        "build",
        "dev",
        "--artifact",
        "quiet",
        "--message-format",
        "json",
    ]);
    out.assert_code(0);
    let started = out.events_of("build_started");
    assert_eq!(started.len(), 1, "{}", out.stdout);
    assert_eq!(started[0]["bins"], serde_json::json!(["other"]));
    let manifest = out.events_of("manifest").pop().unwrap();
    let names: Vec<&str> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["artifact"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["quiet"]);
    let out = ws.run(&["build", "dev", "--artifact", "nope"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("`--artifact nope`: deploy.toml has no such artifact"),
        "{}",
        out.stderr
    );
}

/// The highest version of glibc a binary needs, from its dynamic symbols.
fn highest_glibc(binary: &std::path::Path) -> (u32, u32) {
    let output = std::process::Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .expect("objdump (binutils) runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let versions: Vec<(u32, u32)> = text
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .collect();
    assert!(!versions.is_empty(), "no GLIBC symbol in:\n{text}");
    versions.into_iter().max().unwrap()
}

/// `[build] cargo` replaces `cargo build`: with cargo-zigbuild and a target
/// that names a glibc version, the binary needs no later glibc, and it
/// deploys and serves like any other.
#[test]
fn cargo_zigbuild_pins_the_glibc_floor() {
    landfall_testbed::require("cargo-zigbuild");
    landfall_testbed::require("objdump");
    let ws = Workspace::hello_built();
    ws.edit(
        "deploy.toml",
        "[build]\n",
        "[build]\ncargo = [\"cargo\", \"zigbuild\"]\ntarget = \"x86_64-unknown-linux-gnu.2.17\"\n",
    );
    ws.run(&["check", "dev"]).assert_code(0);
    ws.run(&["deploy", "dev", "--local"]).assert_code(0);
    let binary = ws.path("target/landfall/build/x86_64-unknown-linux-gnu/release/hello");
    let (major, minor) = highest_glibc(&binary);
    assert!(
        (major, minor) <= (2, 17),
        "the binary needs GLIBC_{major}.{minor}"
    );
    // The host's own build needs a later one, so the pin did something.
    let native = ws.path("target/landfall/build/release/hello");
    assert!(!native.exists() || highest_glibc(&native) > (2, 17));
    // The health hook passed; the service answers as ever.
    let (status, greeting) = crate::support::http_get(ws.listen[0], "/").expect("hello answers");
    assert_eq!(status, 200);
    assert!(greeting.contains("hello"), "{greeting}");
}
