//! Bundles: build once, verify, and deploy the same bytes elsewhere.

use std::fs;

use crate::support::Bed;

#[test]
fn a_bundle_is_reproducible_verified_and_deployed_without_building() {
    let bed = Bed::new();
    bed.ws.git_commit("release 1");

    // Two clean clones of the same commit give byte-identical manifests.
    let clones = [bed.ws.clone_repo(), bed.ws.clone_repo()];
    let manifests: Vec<Vec<u8>> = clones
        .iter()
        .map(|clone| {
            clone
                .run(&["build", "testbed", "--out", "bundle"])
                .assert_code(0);
            fs::read(clone.path("bundle/landfall-bundle.json")).unwrap()
        })
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&manifests[0]),
        String::from_utf8_lossy(&manifests[1])
    );
    let manifest: serde_json::Value = serde_json::from_slice(&manifests[0]).unwrap();
    assert_eq!(manifest["schema"], "landfall-bundle/1");
    assert_eq!(manifest["revision"], bed.ws.git(&["rev-parse", "HEAD"]));
    assert!(
        manifest["toolchain"]
            .as_str()
            .unwrap()
            .starts_with("rustc ")
    );
    let bundle = clones[0].path("bundle");

    // A bundle with one byte flipped is refused before any host is
    // contacted.
    let tampered = tempfile::tempdir().unwrap();
    let copy = tampered.path().join("bundle");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&bundle)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let binary = copy.join("artifacts/app/bin/hello");
    let mut bytes = fs::read(&binary).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&binary, bytes).unwrap();
    let sessions: Vec<usize> = bed.hosts().iter().map(|(h, _)| bed.sessions(h)).collect();
    let refused = bed
        .ws
        .run(&["deploy", "testbed", "--from", copy.to_str().unwrap()]);
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("`artifacts/app/bin/hello` does not match its blake3"),
        "{}",
        refused.stderr
    );
    for ((host, _), before) in bed.hosts().iter().zip(&sessions) {
        assert_eq!(bed.sessions(host), *before, "{host} was not contacted");
        assert_eq!(bed.current(host, "hello/app"), None);
    }

    // The bundle deploys without building: the release ids on the hosts
    // are the manifest's.
    let out = bed.deploy(&["--from", bundle.to_str().unwrap()]);
    out.assert_code(0);
    assert!(
        !out.events().iter().any(|e| e["event"] == "build_started"),
        "{}",
        out.stdout
    );
    assert!(
        !bed.ws.path("target/landfall/build").exists(),
        "nothing was built"
    );
    let releases = manifest["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 6);
    for release in releases {
        let host = release["host"].as_str().unwrap();
        let path = format!("hello/{}", release["artifact"].as_str().unwrap());
        assert_eq!(
            bed.current(host, &path).as_deref(),
            release["release"].as_str(),
            "{release}"
        );
    }
}

#[test]
fn a_local_bundle_changed_after_it_was_built_is_refused_when_pinned() {
    let ws = crate::support::Workspace::hello_built();
    ws.git_commit("first");
    let built = ws.run(&[
        "build",
        "dev",
        "--out",
        "bundle",
        "--message-format",
        "json",
    ]);
    built.assert_code(0);
    let digest = built.events_of("bundle").remove(0)["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = ws.path("bundle/landfall-bundle.json");
    assert_eq!(
        digest,
        format!(
            "blake3:{}",
            blake3::hash(&fs::read(&manifest).unwrap()).to_hex()
        )
    );
    // The manifest is changed where its files still match it: here, a
    // host's release id, which the bundle's own checks cannot see.
    let text = fs::read_to_string(&manifest).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["revision"] = "0000000000000000000000000000000000000000".into();
    fs::write(
        &manifest,
        serde_json::to_string_pretty(&value).unwrap() + "\n",
    )
    .unwrap();
    let pinned = format!("bundle#{digest}");
    let refused = ws.run(&["deploy", "dev", "--local", "--from", &pinned]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains(&digest) && refused.stderr.contains("is not the one pinned"),
        "{}",
        refused.stderr
    );
    assert!(
        !ws.path("target/landfall/local").exists(),
        "a host was written to"
    );
    // A pin that is no digest is refused as such.
    let malformed = ws.run(&["deploy", "dev", "--local", "--from", "bundle#blake3:zz"]);
    malformed.assert_code(2);
    assert!(
        malformed.stderr.contains("is not a bundle digest"),
        "{}",
        malformed.stderr
    );
}
