use std::path::{Path, PathBuf};

use super::*;

/// The repository's workspace, whose `examples/hello` is the service
/// landfall's examples deploy.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository's root")
}

fn hello() -> Vec<BinTarget> {
    vec![BinTarget {
        name: "hello".into(),
        package: "hello".into(),
        features: Vec::new(),
    }]
}

fn settings() -> BuildSettings {
    BuildSettings {
        profile: "release".into(),
        features: Vec::new(),
        no_default_features: false,
        target: None,
        command: vec!["cargo".into(), "build".into()],
    }
}

fn hello_document() -> Vec<u8> {
    let graph = describe(&repository(), &settings(), &hello()).expect("hello is described");
    graph
        .document("app", &hello())
        .expect("hello has a document")
}

/// The official `CycloneDX` 1.5 schema, with the two it refers to, vendored
/// in `tests/data/cyclonedx` and resolved from there alone.
struct Vendored;

impl jsonschema::Retrieve for Vendored {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .strip_prefix("http://cyclonedx.org/schema/")
            .ok_or_else(|| format!("`{}` is not vendored", uri.as_str()))?;
        Ok(schema(name))
    }
}

fn schema(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cyclonedx")
        .join(name);
    let text = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_slice(&text).expect("a schema is JSON")
}

#[test]
fn the_bill_of_materials_of_hello_is_valid_cyclonedx_1_5() {
    let document: serde_json::Value =
        serde_json::from_slice(&hello_document()).expect("the document is JSON");
    let validator = jsonschema::options()
        .with_retriever(Vendored)
        .build(&schema("bom-1.5.schema.json"))
        .expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The schema is applied, not skipped: a hash the specification does
    // not know is refused.
    let mut wrong = document.clone();
    wrong["components"][1]["hashes"] = serde_json::json!([{"alg": "BLAKE9", "content": "00"}]);
    assert!(!validator.is_valid(&wrong));
}

#[test]
fn two_descriptions_of_hello_give_the_same_bytes_and_name_its_dependencies() {
    let first = hello_document();
    assert_eq!(first, hello_document());
    let document: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let listed = components(&document);
    assert!(listed.iter().any(|c| c.name == "hello"), "{listed:?}");
    let socket2 = document["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "socket2")
        .expect("hello depends on socket2");
    let version = socket2["version"].as_str().unwrap();
    assert_eq!(socket2["purl"], format!("pkg:cargo/socket2@{version}"));
    assert_eq!(socket2["hashes"][0]["alg"], "SHA-256");
    assert_eq!(socket2["hashes"][0]["content"].as_str().unwrap().len(), 64);
    // Only the build's target: socket2 needs windows-sys on Windows alone.
    assert!(
        !listed.iter().any(|c| c.name == "windows-sys"),
        "{listed:?}"
    );
    // landfall's own dependencies are not hello's.
    assert!(!listed.iter().any(|c| c.name == "blake3"), "{listed:?}");
    let text = String::from_utf8(first).unwrap();
    assert!(!text.contains(&repository().display().to_string()));
    let roots = document["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == "artifact")
        .unwrap();
    assert_eq!(
        roots["dependsOn"],
        serde_json::json!(["pkg:cargo/hello@0.1.0"])
    );
}

#[test]
fn the_serial_number_is_shaped_as_the_schema_wants() {
    let serial = serial_number(b"{}");
    assert_eq!(serial.len(), "urn:uuid:".len() + 36);
    assert_eq!(&serial[9 + 14..9 + 15], "5");
    assert!(matches!(&serial[9 + 19..9 + 20], "8" | "9" | "a" | "b"));
    assert_ne!(serial, serial_number(b"[]"));
}

#[test]
fn an_artifact_without_binaries_has_no_bill_of_materials() {
    assert_eq!(Graph::default().document("site", &[]), None);
}

fn id(repr: &str) -> PackageId {
    PackageId { repr: repr.into() }
}

fn package(name: &str, source: Source, checksum: Option<&str>) -> Package {
    Package {
        name: name.into(),
        version: "1.0.0".into(),
        source,
        checksum: checksum.map(str::to_string),
    }
}

#[test]
fn git_sources_and_packages_of_one_name_and_version_are_told_apart() {
    let registry = "registry+https://github.com/rust-lang/crates.io-index";
    let git = "git+https://example.com/dep.git?branch=main#0123abcd";
    let mut graph = Resolved::default();
    graph
        .packages
        .insert(id("app"), package("app", Source::Path, None));
    graph.packages.insert(
        id("dep-registry"),
        package(
            "dep",
            Source::Registry(registry.into()),
            Some(&"ab".repeat(32)),
        ),
    );
    graph.packages.insert(
        id("dep-git"),
        package(
            "dep",
            Source::Git(git.trim_start_matches("git+").into()),
            None,
        ),
    );
    graph.edges.insert(
        id("app"),
        [id("dep-registry"), id("dep-git")].into_iter().collect(),
    );
    graph.edges.insert(id("dep-registry"), BTreeSet::new());
    graph.edges.insert(id("dep-git"), BTreeSet::new());
    graph.bins.insert("app".into(), id("app"));
    let bins = [BinTarget {
        name: "app".into(),
        package: "app".into(),
        features: Vec::new(),
    }];
    let graph = Graph {
        builds: [(("app".to_string(), Vec::new()), graph)].into(),
    };
    let text = graph.document("app", &bins).unwrap();
    let document: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let refs: Vec<&str> = document["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        [
            "pkg:cargo/app@1.0.0",
            "pkg:cargo/dep@1.0.0#https://example.com/dep.git?branch=main#0123abcd",
            "pkg:cargo/dep@1.0.0#registry+https://github.com/rust-lang/crates.io-index",
        ]
    );
    let from_git = &document["components"][1];
    assert_eq!(from_git["purl"], "pkg:cargo/dep@1.0.0");
    assert_eq!(from_git["externalReferences"][0]["type"], "vcs");
    assert!(from_git.get("hashes").is_none());
    let app = &document["dependencies"][1];
    assert_eq!(app["ref"], "pkg:cargo/app@1.0.0");
    assert_eq!(app["dependsOn"].as_array().unwrap().len(), 2);
    let validator = jsonschema::options()
        .with_retriever(Vendored)
        .build(&schema("bom-1.5.schema.json"))
        .unwrap();
    assert!(validator.is_valid(&document));
}
