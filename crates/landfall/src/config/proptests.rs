//! Property tests of the configuration: whatever a user writes, reading it
//! and planning it never panics (errors are fine); and a valid
//! configuration, resolved and written back, resolves to itself.

use std::fs;

use proptest::prelude::*;
use proptest::test_runner::Config;
use toml::{Table, Value};

use super::load_environment;
use super::tests::{Fixture, root};
use crate::error::Error;
use crate::plan;
use crate::secrets::Secrets;

/// landfall's own keys, so that generated documents reach past the first
/// unknown-key error.
const KEYS: &[&str] = &[
    "project",
    "name",
    "build",
    "profile",
    "features",
    "target",
    "vars",
    "artifact",
    "app",
    "web",
    "roles",
    "path",
    "bins",
    "files",
    "templates",
    "src",
    "dst",
    "mode",
    "shared",
    "keep",
    "transport",
    "subdir",
    "after",
    "max_parallel",
    "hooks",
    "pre_activate",
    "activate",
    "health",
    "health_timeout",
    "timeout",
    "local",
    "environment",
    "protect",
    "branch",
    "jobs",
    "user",
    "ssh_config",
    "on_failure",
    "host_keys",
    "store",
    "hosts",
    "web1",
    "address",
    "secrets",
    "recipients",
    "port",
];

/// Values that mean something to landfall, valid and not.
const WORDS: &[&str] = &[
    "web",
    "db",
    "/srv/app",
    "/srv/app/sub",
    "srv/rel",
    "/srv/../etc",
    "../x",
    "/abs",
    "static",
    "static/sub",
    "conf/app.conf",
    "t.j2",
    "u.j2",
    "../t.j2",
    "etc/app.conf",
    "bin/svc",
    "svc",
    "rsync",
    "git",
    "rollback-all",
    "stop",
    "30s",
    "0s",
    "soon",
    "0644",
    "999",
    "age1nope",
    "$(touch x)",
    "-rf",
    "a\nb",
    "{{ vars.port }}",
    "echo {{ host.name }}",
    "{{",
    "",
    "..",
    ".",
    "log",
    "release",
    "web1",
    "app",
    "\u{0}",
    "é",
    "a b",
];

/// Pieces of templates and hooks, valid and not.
const PIECES: &[&str] = &[
    "text ",
    "\n",
    "{{ vars.port }}",
    "{{ host.name }}",
    "{{ host.vars.port }}",
    "{{ env }}",
    "{{ artifact.path }}",
    "{{ secrets.token }}",
    "{{ secrets.db.password }}",
    "{% if secrets.x is defined %}x{% endif %}",
    "{{ hosts_with_role('web') | map(attribute='name') | join(',') }}",
    "{% for h in hosts %}{{ h.name }} {% endfor %}",
    "{{ vars.nope }}",
    "{{ 1 / 0 }}",
    "{{ vars | safe }}",
    "{% if %}",
    "{% endif %}",
    "{{",
    "}}",
    "{#",
    "{% raw %}",
    "{{ 'é' * 3 }}",
    "{{ vars.port | e }}",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(String::from),
        1 => ".{0,10}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(String::from),
        1 => "[a-z _.\"-]{1,6}",
    ]
}

/// A scalar: no dates, and only finite floats (NaN equals nothing).
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => word().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::Integer),
        2 => (-3i64..40).prop_map(Value::Integer),
        1 => any::<bool>().prop_map(Value::Boolean),
        1 => (-1e6f64..1e6).prop_map(Value::Float),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|map| Value::Table(map.into_iter().collect())),
        ]
    })
}

/// A TOML document as text, biased towards landfall's keys, sometimes with
/// a few characters of garbage inserted.
fn document(table: BoxedStrategy<Table>) -> BoxedStrategy<String> {
    damaged(
        table
            .prop_map(|table| toml::to_string(&table).unwrap_or_default())
            .boxed(),
    )
}

/// The text, sometimes with a few characters of garbage inserted.
fn damaged(text: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (text, any::<prop::sample::Index>(), ".{0,6}", 0..16)
        .prop_map(|(mut text, at, garbage, damage)| {
            if damage == 0 {
                let boundaries: Vec<usize> = text
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([text.len()])
                    .collect();
                text.insert_str(boundaries[at.index(boundaries.len())], &garbage);
            }
            text
        })
        .boxed()
}

/// One of `pool`, as a string.
fn one_of(pool: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(pool)
        .prop_map(|s| Value::String(s.to_string()))
        .boxed()
}

/// An array of some of `pool`.
fn some_of(pool: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::collection::vec(prop::sample::select(pool), 0..3)
        .prop_map(|items| {
            Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
        })
        .boxed()
}

/// A value for one of landfall's keys: mostly a valid one, sometimes a
/// word that means something elsewhere, sometimes anything at all.
fn field(key: &'static str) -> BoxedStrategy<Value> {
    let fitting: BoxedStrategy<Value> = match key {
        "roles" => prop::collection::vec(prop::sample::select(&["web", "db"][..]), 1..3)
            .prop_map(|r| Value::Array(r.into_iter().map(|s| Value::String(s.into())).collect()))
            .boxed(),
        "after" => some_of(&["app", "web", "db"]),
        "bins" => some_of(&["svc"]),
        "shared" => some_of(&["log", "data"]),
        "features" => some_of(&["tls", "metrics"]),
        "recipients" => some_of(&[RECIPIENT]),
        "path" => one_of(&["/srv/app", "/srv/web", "/srv/db"]),
        "src" => one_of(&["static", "static/sub", "conf/app.conf", "t.j2", "u.j2"]),
        "dst" => one_of(&["f0", "f1", "etc/t", "etc/u", "public"]),
        "mode" => one_of(&["0644", "0755", "0600"]),
        "transport" => one_of(&["rsync", "git"]),
        "subdir" => one_of(&["static"]),
        "health_timeout" | "timeout" => one_of(&["30s", "1s", "1m 30s", "0s"]),
        "name" => one_of(&["svc", "web1"]),
        "profile" => one_of(&["release", "dev"]),
        "target" => one_of(&["x86_64-unknown-linux-musl"]),
        "address" => one_of(&["10.0.0.1", "db.example.com", "[::1]"]),
        "user" => one_of(&["deploy"]),
        "branch" => one_of(&["main"]),
        "ssh_config" => one_of(&["ssh_config"]),
        "on_failure" => one_of(&["stop", "rollback-all"]),
        "host_keys" => one_of(&["strict", "accept-new", "ask"]),
        "store" => one_of(&[
            "s3://releases/shop",
            "s3://releases",
            "s3://A/b",
            "http://x",
        ]),
        "keep" => (1i64..5).prop_map(Value::Integer).boxed(),
        "max_parallel" => (0i64..3).prop_map(Value::Integer).boxed(),
        "jobs" => (1i64..8).prop_map(Value::Integer).boxed(),
        "protect" => any::<bool>().prop_map(Value::Boolean).boxed(),
        "files" | "templates" => prop::collection::vec(
            table_with(&["src", "dst"], &["mode"]).prop_map(Value::Table),
            0..3,
        )
        .prop_map(Value::Array)
        .boxed(),
        "hooks" => table_of(&[
            "build",
            "pre_activate",
            "activate",
            "health",
            "health_timeout",
            "timeout",
            "local",
        ])
        .prop_map(Value::Table)
        .boxed(),
        "local" => table_of(&[
            "build",
            "pre_activate",
            "activate",
            "health",
            "health_timeout",
            "timeout",
        ])
        .prop_map(Value::Table)
        .boxed(),
        "build" | "pre_activate" | "activate" | "health" => {
            template().prop_map(Value::String).boxed()
        }
        "vars" => prop::collection::btree_map(key_name(), value(), 0..4)
            .prop_map(|map| Value::Table(map.into_iter().collect()))
            .boxed(),
        _ => word().prop_map(Value::String).boxed(),
    };
    prop_oneof![
        24 => fitting,
        1 => word().prop_map(Value::String),
        1 => value(),
    ]
    .boxed()
}

fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["port", "bind", "name", "db"]).prop_map(String::from),
        1 => key(),
    ]
}

/// A table with some of these keys, each with a [`field`], and sometimes
/// a key of no meaning.
fn table_of(keys: &'static [&'static str]) -> BoxedStrategy<Table> {
    table_with(&[], keys)
}

/// A table with the `required` keys (usually), some of the `optional`
/// ones, each with a [`field`], and sometimes a key of no meaning.
fn table_with(
    required: &'static [&'static str],
    optional: &'static [&'static str],
) -> BoxedStrategy<Table> {
    (
        prop::sample::subsequence(optional.to_vec(), 0..=optional.len()),
        prop::bool::weighted(0.95),
        prop::option::weighted(0.03, (key(), value())),
    )
        .prop_flat_map(move |(keys, complete, extra)| {
            let fields: Vec<_> = required
                .iter()
                .copied()
                .filter(|_| complete)
                .chain(keys)
                .map(|key| field(key).prop_map(move |value| (key.to_string(), value)))
                .collect();
            (fields, Just(extra))
        })
        .prop_map(|(fields, extra)| fields.into_iter().chain(extra).collect())
        .boxed()
}

/// A table of named tables, such as `[artifact.NAME]` or `[hosts.NAME]`.
fn named(names: Vec<&'static str>, body: BoxedStrategy<Table>) -> BoxedStrategy<Value> {
    prop::collection::btree_map(prop::sample::select(names), body, 1..4)
        .prop_map(|map| {
            Value::Table(
                map.into_iter()
                    .map(|(name, table)| (name.to_string(), Value::Table(table)))
                    .collect(),
            )
        })
        .boxed()
}

/// A `deploy.toml`: made of landfall's keys, or a valid one; either
/// sometimes damaged.
fn any_deploy() -> impl Strategy<Value = String> {
    prop_oneof![deploy_document(), damaged(deploy_toml().boxed())]
}

fn any_environment() -> impl Strategy<Value = String> {
    prop_oneof![environment_document(), damaged(environment_toml().boxed())]
}

fn deploy_document() -> impl Strategy<Value = String> {
    let artifact = table_with(
        &["roles", "path"],
        &[
            "bins",
            "files",
            "templates",
            "shared",
            "keep",
            "transport",
            "subdir",
            "after",
            "max_parallel",
            "hooks",
        ],
    );
    let file = (
        table_of(&["name"]),
        table_of(&["profile", "features", "target"]),
        field("vars"),
        named(vec!["app", "app", "web", "web", "db", "db", "-x"], artifact),
        prop::option::weighted(0.03, (key(), value())),
    )
        .prop_map(|(project, build, vars, artifacts, extra)| {
            let mut file = Table::new();
            file.insert("project".into(), Value::Table(project));
            file.insert("build".into(), Value::Table(build));
            file.insert("vars".into(), vars);
            file.insert("artifact".into(), artifacts);
            file.extend(extra);
            file
        });
    document(file.boxed())
}

fn environment_document() -> impl Strategy<Value = String> {
    let section = table_of(&[
        "protect",
        "branch",
        "jobs",
        "user",
        "ssh_config",
        "on_failure",
        "host_keys",
        "store",
    ]);
    let host = table_with(&["roles"], &["address", "vars"]);
    let file = (
        section,
        field("vars"),
        named(
            vec!["web1", "web1", "web2", "web2", "db1", "db1", "web 2"],
            host,
        ),
        prop::option::weighted(0.5, table_of(&["recipients"])),
        prop::option::weighted(0.03, (key(), value())),
    )
        .prop_map(|(section, vars, hosts, secrets, extra)| {
            let mut file = Table::new();
            file.insert("environment".into(), Value::Table(section));
            file.insert("vars".into(), vars);
            file.insert("hosts".into(), hosts);
            if let Some(secrets) = secrets {
                file.insert("secrets".into(), Value::Table(secrets));
            }
            file.extend(extra);
            file
        });
    document(file.boxed())
}

fn template() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..8).prop_map(|p| p.concat())
}

/// Renders every diagnostic of an error, plain and styled, as the binary
/// would.
fn show(err: &Error) {
    if let Error::Config(diags) = err {
        for diag in &diags.0 {
            let _ = diag.render(false);
            let _ = diag.render(true);
        }
    }
    let _ = err.to_string();
}

/// Reads, resolves and plans a workspace with these files, as every
/// command does; returns nothing, and must not panic.
fn read_and_plan(deploy: &str, environment: &str, template: &str) {
    let fixture = Fixture::new(&[
        ("deploy.toml", deploy),
        ("environments/dev.toml", environment),
        ("templates/t.j2", template),
        ("templates/u.j2", "{{ host.name }}\n"),
        ("static/a.txt", "a"),
        ("static/sub/b.txt", "b"),
        ("conf/app.conf", "c"),
    ]);
    let project = match fixture.project() {
        Ok(project) => project,
        Err(err) => return show(&err),
    };
    let _ = project.to_toml();
    let env = match load_environment(&project, "dev") {
        Ok(env) => env,
        Err(err) => return show(&err),
    };
    let _ = env.to_toml(&project.environments_dir());
    let secrets = toml::from_str::<Table>("token = \"t0k3n-value\"\n[db]\npassword = \"pw\"\n")
        .map(Secrets::from_table)
        .unwrap();
    for local in [false, true] {
        for secrets in [Secrets::none(), Secrets::placeholders(), secrets.clone()] {
            match plan::plan(&project, &env, &[], local, &secrets) {
                Ok(plan) => drop(serde_json::to_string(&plan)),
                Err(err) => show(&err),
            }
        }
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // A failure is printed with its smallest input; nothing is written
        // into the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn reading_and_planning_any_document_never_panics(
        deploy in any_deploy(),
        environment in any_environment(),
        template in template(),
    ) {
        read_and_plan(&deploy, &environment, &template);
    }
}

// Valid configurations, generated as TOML tables.

const RECIPIENT: &str = "age1d3yeqr8sxyaxnfvpya5n8g69vx9aww9c963t0emzyrx7x429kc6q5lm8rx";

fn vars() -> impl Strategy<Value = Table> {
    prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9 _.-]{0,6}", value(), 0..5)
        .prop_map(|map| map.into_iter().collect())
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String((*s).into())).collect())
}

fn hooks() -> impl Strategy<Value = Table> {
    let text = || {
        prop::option::of(prop_oneof![
            prop::sample::select(PIECES).prop_map(String::from),
            "[^\u{0}]{0,16}",
        ])
    };
    (text(), text(), text(), text(), duration(), duration()).prop_map(
        |(build, pre_activate, activate, health, health_timeout, timeout)| {
            let mut table = Table::new();
            for (name, hook) in [
                ("build", build),
                ("pre_activate", pre_activate),
                ("activate", activate),
                ("health", health),
            ] {
                if let Some(hook) = hook {
                    table.insert(name.into(), Value::String(hook));
                }
            }
            for (key, limit) in [("health_timeout", health_timeout), ("timeout", timeout)] {
                if let Some(limit) = limit {
                    table.insert(key.into(), Value::String(limit.into()));
                }
            }
            table
        },
    )
}

fn duration() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec![
        "1s", "30s", "1m 30s", "2h", "500ms",
    ]))
}

fn mode() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec![
        "0644", "0600", "0755", "640", "0o700",
    ]))
}

/// Artifact `a{index}`, which may come after any artifact before it.
fn artifact(index: usize) -> impl Strategy<Value = (String, Table)> {
    let earlier: Vec<String> = (0..index).map(|i| format!("a{i}")).collect();
    let files = prop::collection::vec(
        (
            prop::sample::select(vec!["static", "static/sub", "conf/app.conf"]),
            mode(),
        ),
        0..3,
    );
    let templates =
        prop::collection::vec((prop::sample::select(vec!["t.j2", "u.j2"]), mode()), 0..3);
    (
        (
            prop::sample::subsequence(vec!["web", "db", "cache"], 0..=3),
            any::<bool>(),
            files,
            templates,
            prop::sample::subsequence(vec!["log", "var/data"], 0..=2),
            prop::option::of(1i64..10),
        ),
        (
            prop::option::of(prop::sample::select(vec!["", "static"])),
            prop::option::of(0i64..5),
            hooks(),
            prop::option::of(hooks()),
            prop::sample::subsequence(earlier.clone(), 0..=earlier.len()),
        ),
    )
        .prop_map(
            move |(
                (roles, bins, files, templates, shared, keep),
                (git, max_parallel, hooks, local, after),
            )| {
                let mut table = Table::new();
                table.insert("roles".into(), strings(&roles));
                table.insert("path".into(), Value::String(format!("/srv/a{index}")));
                let entry = |src: &str, dst: String, mode: Option<&str>| {
                    let mut entry = Table::new();
                    entry.insert("src".into(), Value::String(src.into()));
                    entry.insert("dst".into(), Value::String(dst));
                    if let Some(mode) = mode {
                        entry.insert("mode".into(), Value::String(mode.into()));
                    }
                    Value::Table(entry)
                };
                let files = files
                    .iter()
                    .enumerate()
                    .map(|(i, (src, mode))| entry(src, format!("f{i}"), *mode))
                    .collect();
                table.insert("files".into(), Value::Array(files));
                let templates = templates
                    .iter()
                    .enumerate()
                    .map(|(i, (src, mode))| entry(src, format!("etc/t{i}"), *mode))
                    .collect();
                table.insert("templates".into(), Value::Array(templates));
                table.insert("shared".into(), strings(&shared));
                if let Some(keep) = keep {
                    table.insert("keep".into(), Value::Integer(keep));
                }
                match git {
                    Some(subdir) => {
                        table.insert("transport".into(), Value::String("git".into()));
                        if !subdir.is_empty() {
                            table.insert("subdir".into(), Value::String(subdir.into()));
                        }
                    }
                    None if bins => {
                        table.insert("bins".into(), strings(&["svc"]));
                    }
                    None => {}
                }
                // 3 and 4 stand for a `[rollout]` table instead.
                match max_parallel {
                    Some(3) => {
                        let rollout: Table = toml::from_str(
                            "canary = 1\nbatch = \"50%\"\npause = \"1s\"\nmax_fail = \"25%\"",
                        )
                        .expect("a valid table");
                        table.insert("rollout".into(), Value::Table(rollout));
                    }
                    Some(4) => {
                        let rollout: Table =
                            toml::from_str("batch = 2\nmax_fail = 1").expect("a valid table");
                        table.insert("rollout".into(), Value::Table(rollout));
                    }
                    Some(max) => {
                        table.insert("max_parallel".into(), Value::Integer(max));
                    }
                    None => {}
                }
                let mut hooks = hooks;
                if let Some(local) = local {
                    hooks.insert("local".into(), Value::Table(local));
                }
                table.insert("hooks".into(), Value::Table(hooks));
                let after: Vec<&str> = after.iter().map(String::as_str).collect();
                table.insert("after".into(), strings(&after));
                (format!("a{index}"), table)
            },
        )
}

fn deploy_toml() -> impl Strategy<Value = String> {
    let project = (
        prop::option::of(prop::sample::select(vec!["svc", "my-app", "x.y"])),
        prop::option::of(prop::sample::select(vec!["release", "dev"])),
        prop::collection::vec("[a-z]{1,5}", 0..3),
        prop::option::of(Just("x86_64-unknown-linux-musl")),
    );
    (1usize..4)
        .prop_flat_map(move |count| {
            let artifacts: Vec<_> = (0..count).map(artifact).collect();
            (project.clone(), vars(), artifacts)
        })
        .prop_map(|((name, profile, features, target), vars, artifacts)| {
            let mut file = Table::new();
            let mut project = Table::new();
            if let Some(name) = name {
                project.insert("name".into(), Value::String(name.into()));
            }
            file.insert("project".into(), Value::Table(project));
            let mut build = Table::new();
            if let Some(profile) = profile {
                build.insert("profile".into(), Value::String(profile.into()));
            }
            let features: Vec<&str> = features.iter().map(String::as_str).collect();
            build.insert("features".into(), strings(&features));
            if let Some(target) = target {
                build.insert("target".into(), Value::String(target.into()));
            }
            file.insert("build".into(), Value::Table(build));
            file.insert("vars".into(), Value::Table(vars));
            file.insert(
                "artifact".into(),
                Value::Table(
                    artifacts
                        .into_iter()
                        .map(|(name, t)| (name, Value::Table(t)))
                        .collect(),
                ),
            );
            toml::to_string(&file).unwrap()
        })
}

fn environment_toml() -> impl Strategy<Value = String> {
    let host = (
        prop::option::of(prop::sample::select(vec![
            "10.0.0.1",
            "db.example.com",
            "[::1]",
            "deploy@web1",
        ])),
        prop::sample::subsequence(vec!["web", "db", "cache"], 0..=3),
        vars(),
    );
    let section = (
        prop::option::of(any::<bool>()),
        prop::option::of("[a-z]{1,6}"),
        prop::option::of(1i64..64),
        prop::option::of(prop::sample::select(vec!["deploy", "root", "a.b-c_d"])),
        prop::option::of(prop::sample::select(vec!["ssh_config", "../ssh/config"])),
        prop::option::of(prop::sample::select(vec!["rollback-all", "stop"])),
        prop::option::of(prop::sample::select(vec!["strict", "accept-new"])),
        prop::option::of(prop::sample::select(vec![
            "s3://releases/shop/",
            "s3://releases",
        ])),
    );
    (
        section,
        vars(),
        prop::collection::btree_map(
            prop::sample::select(vec!["h0", "h1", "h2", "web-1.example"]),
            host,
            1..4,
        ),
        any::<bool>(),
    )
        .prop_map(
            |(
                (protect, branch, jobs, user, ssh_config, on_failure, host_keys, store),
                vars,
                hosts,
                secrets,
            )| {
                let mut section = Table::new();
                if let Some(protect) = protect {
                    section.insert("protect".into(), Value::Boolean(protect));
                }
                if let Some(branch) = branch {
                    section.insert("branch".into(), Value::String(branch));
                }
                if let Some(jobs) = jobs {
                    section.insert("jobs".into(), Value::Integer(jobs));
                }
                for (key, value) in [
                    ("user", user),
                    ("ssh_config", ssh_config),
                    ("on_failure", on_failure),
                    ("host_keys", host_keys),
                    ("store", store),
                ] {
                    if let Some(value) = value {
                        section.insert(key.into(), Value::String(value.into()));
                    }
                }
                let hosts: Table = hosts
                    .into_iter()
                    .map(|(name, (address, roles, vars))| {
                        let mut host = Table::new();
                        if let Some(address) = address {
                            host.insert("address".into(), Value::String(address.into()));
                        }
                        host.insert("roles".into(), strings(&roles));
                        host.insert("vars".into(), Value::Table(vars));
                        (name.to_string(), Value::Table(host))
                    })
                    .collect();
                let mut file = Table::new();
                file.insert("environment".into(), Value::Table(section));
                file.insert("vars".into(), Value::Table(vars));
                file.insert("hosts".into(), Value::Table(hosts));
                if secrets {
                    let mut secrets = Table::new();
                    secrets.insert("recipients".into(), strings(&[RECIPIENT]));
                    file.insert("secrets".into(), Value::Table(secrets));
                }
                toml::to_string(&file).unwrap()
            },
        )
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn a_resolved_configuration_written_back_resolves_to_itself(
        deploy in deploy_toml(),
        environment in environment_toml(),
    ) {
        let fixture = Fixture::new(&[
            ("deploy.toml", deploy.as_str()),
            ("environments/dev.toml", environment.as_str()),
            ("templates/t.j2", "{{ host.name }} {{ vars | safe }}\n"),
            ("templates/u.j2", "{{ env }}\n"),
            ("static/a.txt", "a"),
            ("static/.hidden", "h"),
            ("static/sub/b.txt", "b"),
            ("conf/app.conf", "c"),
        ]);
        let project = fixture.project().map_err(|e| TestCaseError::fail(format!("{e}\n{deploy}")))?;
        let env = match load_environment(&project, "dev") {
            Ok(env) => env,
            // An environment no artifact goes to is refused: rightly so,
            // if indeed no host has a role of any artifact.
            Err(e) if e.to_string().contains("a deploy would reach no host at all") => {
                let raw: toml::Table = environment.parse().unwrap();
                let host_roles: Vec<&str> = raw["hosts"]
                    .as_table()
                    .unwrap()
                    .values()
                    .flat_map(|h| h["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()))
                    .collect();
                prop_assert!(
                    !project
                        .artifacts
                        .iter()
                        .any(|a| a.roles.iter().any(|r| host_roles.contains(&r.as_str()))),
                    "{e}\n{deploy}\n{environment}"
                );
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{environment}"))),
        };

        let deploy_again = project.to_toml();
        let environment_again = env.to_toml(&project.environments_dir());
        fs::write(root(&fixture).join("deploy.toml"), &deploy_again).unwrap();
        fs::write(root(&fixture).join("environments/dev.toml"), &environment_again).unwrap();
        let project_again = fixture
            .project()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{deploy_again}")))?;
        let env_again = load_environment(&project_again, "dev")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{environment_again}")))?;

        prop_assert_eq!(&project_again, &project, "written back as:\n{}", deploy_again);
        prop_assert_eq!(&env_again, &env, "written back as:\n{}", environment_again);
        // Writing is stable: the model writes the same text again.
        prop_assert_eq!(project_again.to_toml(), deploy_again);
        prop_assert_eq!(env_again.to_toml(&project_again.environments_dir()), environment_again);
    }
}
