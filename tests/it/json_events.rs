//! `--message-format json`: every line of real runs of every command is
//! validated against `docs/json-events.schema.json`, the schema the types
//! that print the lines derive (JSON Schema, draft 2020-12).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{Outcome, Workspace, repo};

pub(crate) fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join("docs/json-events.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).expect("the schema is valid JSON Schema")
}

/// Checks every stdout line of a run; returns the event names seen.
pub(crate) fn check_run(schema: &jsonschema::Validator, what: &str, out: &Outcome) -> Vec<String> {
    let mut seen = Vec::new();
    for line in out.stdout.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {line}"));
        if let Err(problem) = schema.validate(&value) {
            panic!("{what}: the line does not fit the schema: {problem}\n{line}");
        }
        seen.push(value["event"].as_str().unwrap().to_string());
    }
    seen
}

#[test]
fn the_schema_refuses_what_the_format_does_not_allow() {
    let schema = schema();
    let fits = |line: &str| schema.is_valid(&serde_json::from_str(line).unwrap());
    let summary = r#"{"event":"summary","ok":true,"env":"dev","dry_run":false,"hosts":[],"round_trips":{},"timings":{"build":0.0,"assemble":0.0,"push":0.0,"activate":0.0}}"#;
    assert!(fits(summary));
    assert!(!fits(&summary.replace(r#""hosts":[],"#, "")));
    assert!(!fits(&summary.replace(r#""ok":true"#, r#""ok":"yes""#)));
    assert!(!fits(
        &summary.replace(r#""event":"summary""#, r#""event":"teleported""#)
    ));
    assert!(fits(
        r#"{"event":"removed","host":"a","artifact":"b","releases":["ab12"]}"#
    ));
    assert!(!fits(r#"{"event":"removed","host":"a","artifact":"b"}"#));
    assert!(
        !fits(r#"{"event":"build-started","bins":[]}"#),
        "names are snake_case"
    );
    assert!(fits(r#"{"event":"build_started","bins":[]}"#));
}

#[test]
fn every_command_prints_events_that_fit_the_schema() {
    let schema = schema();
    let ws = Workspace::hello_built();
    let json = |args: &[&str]| {
        // After the command's name, before a `--` that ends the options.
        let mut all = vec![args[0], "--message-format", "json"];
        all.extend(&args[1..]);
        ws.run(&all)
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut run = |what: &str, out: Outcome, code: i32| {
        out.assert_code(code);
        seen.extend(check_run(&schema, what, &out));
    };

    run("deploy", json(&["deploy", "dev", "--local"]), 0);
    run(
        "dry run",
        json(&[
            "deploy",
            "dev",
            "--local",
            "--dry-run",
            "--var",
            "greeting=hi",
        ]),
        0,
    );
    for greeting in ["one", "two", "three"] {
        let var = format!("greeting={greeting}");
        run(
            "redeploy",
            json(&["deploy", "dev", "--local", "--var", &var]),
            0,
        );
    }
    run(
        "unhealthy",
        json(&[
            "deploy",
            "dev",
            "--local",
            "--var",
            "healthy=false",
            "--var",
            "greeting=x",
        ]),
        1,
    );
    run(
        "pre_activate fails",
        json(&["deploy", "dev", "--local", "--var", "port=none"]),
        1,
    );
    run("status", json(&["status", "dev", "--local"]), 0);
    run("rollback", json(&["rollback", "dev", "--local"]), 0);
    run(
        "exec",
        json(&["exec", "dev", "--local", "--", "echo", "hi"]),
        0,
    );
    run("config", json(&["config", "dev", "--annotate"]), 0);
    run("check", json(&["check"]), 0);
    run("build", json(&["build", "dev"]), 0);
    ws.git_commit("for a bundle");
    let bundle = ws.path("bundle");
    run(
        "bundle",
        json(&["build", "dev", "--out", bundle.to_str().unwrap()]),
        0,
    );
    run(
        "unknown environment",
        json(&["deploy", "nowhere", "--local"]),
        2,
    );
    ws.write("deploy.toml", "[artifact.x]\nroles = 3\n");
    run("bad configuration", json(&["check"]), 2);

    // The example as a service: its state in `status`, and its log.
    let service = Workspace::hello_service_built();
    let json = |args: &[&str]| {
        let mut all = vec![args[0], "--message-format", "json"];
        all.extend(&args[1..]);
        service.run(&all)
    };
    run("service deploy", json(&["deploy", "dev", "--local"]), 0);
    let status = json(&["status", "dev", "--local"]);
    assert!(
        status
            .stdout
            .contains("\"service\":{\"manager\":\"process\""),
        "{}",
        status.stdout
    );
    run("service status", status, 0);
    run("logs", json(&["logs", "dev", "--local", "-n", "1"]), 0);

    // Rollouts, `once`, the top-level hooks, and orphans pruned.
    let rollout = Workspace::hello_built();
    rollout.roll_out_app("canary = 1\npause = \"1s\"");
    rollout.edit(
        "deploy.toml",
        "health_timeout = \"10s\"",
        "health_timeout = \"2s\"\nonce = \"true\"",
    );
    rollout.write(
        "deploy.toml",
        &format!(
            "{}\n[hooks]\nbefore = \"echo before\"\nafter = \"echo after\"\n",
            rollout.read("deploy.toml")
        ),
    );
    let json = |args: &[&str]| {
        let mut all = vec![args[0], "--message-format", "json"];
        all.extend(&args[1..]);
        rollout.run(&all)
    };
    run("rollout", json(&["deploy", "dev", "--local"]), 0);
    run(
        "a canary fails",
        json(&["deploy", "dev", "--local", "--var", "healthy=false"]),
        1,
    );
    rollout.remove_site();
    run("without site", json(&["deploy", "dev", "--local"]), 0);
    run("orphans", json(&["status", "dev", "--local"]), 0);
    run("prune", json(&["prune", "dev", "--local", "--yes"]), 0);

    for event in [
        "batch",
        "pause",
        "rollout_stopped",
        "once",
        "hook",
        "orphan",
        "pruned",
        "build_started",
        "build_finished",
        "assembled",
        "probed",
        "would_deploy",
        "pushed",
        "activated",
        "rolled_back",
        "failed",
        "removed",
        "summary",
        "status",
        "log",
        "exec",
        "output",
        "config",
        "checked",
        "manifest",
        "bundle",
        "error",
    ] {
        assert!(
            seen.contains(event),
            "no `{event}` event was seen: {seen:?}"
        );
    }
}
