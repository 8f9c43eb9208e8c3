//! What the command line says to a person who left something out, and how
//! it counts.

use crate::support::Workspace;

#[test]
fn deploy_without_an_environment_lists_them_and_exits_2() {
    let ws = Workspace::hello_service();
    ws.write(
        "environments/staging.toml",
        &ws.read("environments/dev.toml"),
    );
    let out = ws.run(&[]);
    out.assert_code(2).assert_says(&[
        "no environment given: `cargo deploy ENV`, where ENV is one of dev, staging",
        "Usage: cargo deploy [OPTIONS] [ENV]",
    ]);
    let json = ws.run(&["--message-format", "json"]);
    json.assert_code(2);
    assert!(
        json.stdout.contains("\"event\":\"error\"") && json.stdout.contains("dev, staging"),
        "{}",
        json.stdout
    );
    // None at all: where they would be, and what writes one.
    std::fs::remove_dir_all(ws.path("environments")).unwrap();
    let none = ws.run(&[]);
    none.assert_code(2)
        .assert_says(&["holds none (`cargo deploy init` writes"]);
}

#[test]
fn one_of_a_thing_is_said_in_the_singular() {
    let ws = Workspace::hello_service();
    let out = ws.run(&["check"]);
    out.assert_code(0)
        .assert_says(&["Checked 2 artifacts, 1 environment (dev), 2 hosts"]);
}
