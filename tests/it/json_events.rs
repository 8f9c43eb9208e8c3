//! `--message-format json`: every line of real runs of every command is
//! checked against `docs/json-events.schema.json`.
//!
//! The schema is JSON Schema (draft 2020-12). The checker below covers the
//! part of it that the schema uses (`type`, `properties`, `required`,
//! `additionalProperties`, `items`, `enum`, `const`, `oneOf`, local `$ref`,
//! `minimum`, and `pattern` of the form `^[CLASS]{N}$`), and fails loudly on
//! any other keyword, so the schema cannot silently outgrow it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{Outcome, Workspace, repo};

pub(crate) fn schema() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/json-events.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Checks `value` against `schema`; returns what is wrong, with a path.
fn check(root: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(rules) = schema.as_object() else {
        return Err(format!("{at}: the schema is not an object"));
    };
    for (keyword, rule) in rules {
        match keyword.as_str() {
            "$schema" | "title" | "$defs" | "description" => {}
            "$ref" => {
                let name = rule.as_str().unwrap().strip_prefix("#/$defs/").unwrap();
                check(root, &root["$defs"][name], value, at)?;
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    other => other
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap())
                        .collect(),
                };
                let ok = types.iter().any(|t| match *t {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    other => panic!("unknown type `{other}`"),
                });
                if !ok {
                    return Err(format!("{at}: {value} is not of type {types:?}"));
                }
            }
            "properties" => {
                for (name, sub) in rule.as_object().unwrap() {
                    if let Some(v) = value.get(name) {
                        check(root, sub, v, &format!("{at}.{name}"))?;
                    }
                }
            }
            "required" => {
                for name in rule.as_array().unwrap() {
                    let name = name.as_str().unwrap();
                    if value.get(name).is_none() {
                        return Err(format!("{at}: `{name}` is missing"));
                    }
                }
            }
            "additionalProperties" => {
                let known = rules.get("properties").and_then(Value::as_object);
                for (name, v) in value.as_object().into_iter().flatten() {
                    if known.is_some_and(|k| k.contains_key(name)) {
                        continue;
                    }
                    match rule {
                        Value::Bool(false) => return Err(format!("{at}: unexpected `{name}`")),
                        Value::Bool(true) => {}
                        sub => check(root, sub, v, &format!("{at}.{name}"))?,
                    }
                }
            }
            "items" => {
                for (i, v) in value.as_array().into_iter().flatten().enumerate() {
                    check(root, rule, v, &format!("{at}[{i}]"))?;
                }
            }
            "enum" => {
                if !rule.as_array().unwrap().contains(value) {
                    return Err(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "const" => {
                if rule != value {
                    return Err(format!("{at}: {value} is not {rule}"));
                }
            }
            "minimum" => {
                if value.as_f64().is_some_and(|v| v < rule.as_f64().unwrap()) {
                    return Err(format!("{at}: {value} is below {rule}"));
                }
            }
            "pattern" => {
                if let Some(text) = value.as_str()
                    && !matches_pattern(rule.as_str().unwrap(), text)
                {
                    return Err(format!("{at}: `{text}` does not match {rule}"));
                }
            }
            "oneOf" => {
                let fits: Vec<String> = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|sub| check(root, sub, value, at).err())
                    .collect();
                let matched = rule.as_array().unwrap().len() - fits.len();
                if matched != 1 {
                    return Err(format!(
                        "{at}: {value} matches {matched} of the alternatives, not one; {}",
                        closest(&fits)
                    ));
                }
            }
            other => panic!("the checker does not know the keyword `{other}`"),
        }
    }
    Ok(())
}

/// The most telling of the alternatives' complaints: the deepest one.
fn closest(errors: &[String]) -> String {
    errors
        .iter()
        .max_by_key(|e| e.split(':').next().unwrap_or("").len())
        .cloned()
        .unwrap_or_default()
}

/// `^[CLASS]{N}$`, where CLASS holds characters and `a-z` ranges.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    let inner = pattern
        .strip_prefix("^[")
        .and_then(|p| p.strip_suffix("}$"))
        .unwrap_or_else(|| panic!("unsupported pattern {pattern}"));
    let (class, count) = inner.split_once("]{").unwrap();
    let count: usize = count.parse().unwrap();
    let class: Vec<char> = class.chars().collect();
    let allowed = |c: char| {
        let mut i = 0;
        while i < class.len() {
            if i + 2 < class.len() && class[i + 1] == '-' {
                if (class[i]..=class[i + 2]).contains(&c) {
                    return true;
                }
                i += 3;
            } else {
                if class[i] == c {
                    return true;
                }
                i += 1;
            }
        }
        false
    };
    text.chars().count() == count && text.chars().all(allowed)
}

/// Checks every stdout line of a run; returns the event names seen.
pub(crate) fn check_run(root: &Value, what: &str, out: &Outcome) -> Vec<String> {
    let mut seen = Vec::new();
    for line in out.stdout.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {line}"));
        if let Err(problem) = check(root, root, &value, "$") {
            panic!("{what}: the line does not fit the schema: {problem}\n{line}");
        }
        seen.push(value["event"].as_str().unwrap().to_string());
    }
    seen
}

#[test]
fn the_checker_refuses_what_the_schema_does_not_allow() {
    let root = schema();
    let fits = |line: &str| check(&root, &root, &serde_json::from_str(line).unwrap(), "$");
    assert!(fits(r#"{"event":"summary","ok":true,"env":"dev","hosts":[]}"#).is_ok());
    assert!(fits(r#"{"event":"summary","ok":true,"env":"dev"}"#).is_err());
    assert!(fits(r#"{"event":"summary","ok":"yes","env":"dev","hosts":[]}"#).is_err());
    assert!(fits(r#"{"event":"summary","ok":true,"env":"dev","hosts":[],"extra":1}"#).is_err());
    assert!(fits(r#"{"event":"removed","host":"a","artifact":"b","releases":["xyz"]}"#).is_err());
    assert!(fits(r#"{"event":"teleported"}"#).is_err());
}

#[test]
fn every_command_prints_events_that_fit_the_schema() {
    let root = schema();
    let ws = Workspace::hello();
    let json = |args: &[&str]| {
        // After the command's name, before a `--` that ends the options.
        let mut all = vec![args[0], "--message-format", "json"];
        all.extend(&args[1..]);
        ws.run(&all)
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut run = |what: &str, out: Outcome, code: i32| {
        out.assert_code(code);
        seen.extend(check_run(&root, what, &out));
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
    let service = Workspace::hello_service();
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
    let rollout = Workspace::hello();
    rollout.edit(
        "deploy.toml",
        "after = [\"site\"]\n",
        "after = [\"site\"]\n\n[artifact.app.rollout]\ncanary = 1\npause = \"1s\"\n",
    );
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
        "rollout-stopped",
        "once",
        "hook",
        "orphan",
        "pruned",
        "build-started",
        "build-finished",
        "assembled",
        "probed",
        "would-deploy",
        "pushed",
        "activated",
        "rolled-back",
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
