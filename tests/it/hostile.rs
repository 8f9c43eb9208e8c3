//! Hostile values on real hosts: values that try to inject shell commands
//! (`$(…)`, backticks, quotes, newlines, spaces, leading `-`) are put
//! everywhere a user can put a value that reaches a host: variables of
//! deploy.toml, of a host and of the command line, a template's output,
//! the names of files, the artifact's path, a shared directory, hooks that
//! interpolate variables, and `exec`'s arguments. Each must arrive intact,
//! byte for byte, and no command hidden in one may run: every one would
//! create a file `pwned-N`, and none may exist, on any host or here.
//! (Values that must not reach a host at all, such as a host name with a
//! space or an address that is an ssh option, are refused before: see
//! `bad_input`.)

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::Bed;

/// Each a value that runs `touch …/pwned-N` if a shell ever reads it as
/// code, with its name in deploy.toml.
const VALUES: &[(&str, &str)] = &[
    ("subst", "$(touch /srv/pwned-1)"),
    ("backticks", "`touch /srv/pwned-2`"),
    ("single", "'; touch /srv/pwned-3; '"),
    ("double", "\"; touch /srv/pwned-4; \""),
    ("newline", "a\ntouch /srv/pwned-5"),
    ("semicolon", "x; touch /srv/pwned-6"),
    ("spaces", "two  spaces and a\ttab"),
    ("dash", "-rf"),
    ("glob", "*"),
    ("dollar", "${HOME} $HOME \\$ \\"),
];

/// A host variable and command-line variables (which are not TOML, so
/// `--var` takes them as strings), hostile too.
const HOST_VALUE: &str = "$(touch /srv/pwned-7)|`touch /srv/pwned-8`";
const CLI_VALUE: &str = "it's $(touch /srv/pwned-9)";
const CLI_VALUE_2: &str = "`touch /srv/pwned-10` \"";

/// The artifact's base directory, a shared directory, and the names of a
/// copied directory, a copied file and a rendered file.
const PATH: &str = "/srv/it's a $(touch pwned-11) `dir`";
const SHARED: &str = "out put";
const FILES_DST: &str = "odd dir/-rf";
const FILE_NAME: &str = "a 'b' $(touch pwned-12) `c`.txt";
const RENDERED: &str = "etc/it's $(touch pwned-13).txt";

/// A TOML basic string holding `text`.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The deployment: one artifact, `odd`, whose every name and hook carries
/// hostile values, and no binaries (nothing to build).
fn deploy_toml() -> String {
    // `cli` is set with `--var` for each deploy.
    let mut vars = "cli = \"unset\"\n".to_string();
    for (name, value) in VALUES {
        let _ = writeln!(vars, "{name} = {}", toml_string(value));
    }
    let words: Vec<String> = VALUES
        .iter()
        .map(|(name, _)| format!("{{{{ vars.{name} }}}}"))
        .collect();
    let activate = format!(
        "printf '[%s]\\n' {} {{{{ host.vars.mine }}}} {{{{ vars.cli }}}} > '{SHARED}/activated.txt'",
        words.join(" ")
    );
    format!(
        "[project]\nname = \"hostile\"\n\n[vars]\n{vars}\n\
         [artifact.odd]\nroles = [\"web\"]\npath = {path}\n\
         files = [{{ src = \"hostile\", dst = {files_dst} }}]\n\
         templates = [{{ src = \"values.j2\", dst = {rendered} }}]\n\
         shared = [{shared}]\n\n\
         [artifact.odd.hooks]\n\
         pre_activate = {pre}\n\
         activate = {activate}\n\
         health = {health}\n\
         health_timeout = \"5s\"\n",
        path = toml_string(PATH),
        files_dst = toml_string(FILES_DST),
        rendered = toml_string(RENDERED),
        shared = toml_string(SHARED),
        pre = toml_string(&format!(
            "printf '%s' {{{{ vars.dash }}}} {{{{ vars.glob }}}} > '{SHARED}/pre.txt'"
        )),
        activate = toml_string(&activate),
        health = toml_string(&format!("test -s '{SHARED}/activated.txt'")),
    )
}

/// What the hook writes: one `[value]` line per value.
fn activated(cli: &str) -> String {
    let mut text = String::new();
    for value in VALUES.iter().map(|(_, v)| *v).chain([HOST_VALUE, cli]) {
        let _ = writeln!(text, "[{value}]");
    }
    text
}

/// What the template renders: every value as it is.
const TEMPLATE: &str = "{% for key in [\"subst\", \"backticks\", \"single\", \"double\", \
                        \"newline\", \"semicolon\", \"spaces\", \"dash\", \"glob\", \"dollar\"] %}\
                        {{ key }}={{ vars[key] }}\n{% endfor %}host={{ host.vars.mine }}\n\
                        cli={{ vars.cli }}\n";

fn rendered(cli: &str) -> String {
    let mut text = String::new();
    for (key, value) in VALUES {
        let _ = writeln!(text, "{key}={value}");
    }
    let _ = write!(text, "host={HOST_VALUE}\ncli={cli}\n");
    text
}

fn is_pwned(name: &str) -> bool {
    name.strip_prefix("pwned-")
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// Every file called `pwned-N` in `dir` itself.
fn pwned_in(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| is_pwned(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect()
}

/// Every file or directory called `pwned-N` under `dir`, links not
/// followed.
fn pwned_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_pwned(&name) {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(pwned_under(&path));
        }
    }
    found
}

#[test]
fn hostile_values_arrive_intact_and_never_run() {
    let bed = Bed::new();
    let ws = &bed.ws;
    ws.write("deploy.toml", &deploy_toml());
    ws.write("templates/values.j2", TEMPLATE);
    ws.write(&format!("hostile/{FILE_NAME}"), "copied as it is\n");
    ws.write("hostile/-n", "a file named like an option\n");
    for (host, _) in bed.hosts() {
        ws.edit(
            "environments/testbed.toml",
            &format!("[hosts.{host}]\nroles = [\"web\"]\nvars = {{"),
            &format!(
                "[hosts.{host}]\nroles = [\"web\"]\nvars = {{ mine = {},",
                toml_string(HOST_VALUE)
            ),
        );
    }
    let cli = format!("cli={CLI_VALUE}");
    ws.run(&["check", "testbed"]).assert_code(0);

    // The dry run reads every host and shows the hooks; it changes nothing.
    let dry = bed.deploy(&["--dry-run", "--var", &cli]);
    dry.assert_code(0);

    let out = bed.deploy(&["--var", &cli, "--only", "@web"]);
    out.assert_code(0);
    assert!(
        out.statuses().iter().all(|(_, s)| s == "deployed"),
        "{:?}",
        out.statuses()
    );
    let base = PATH.trim_start_matches("/srv/");
    for (host, _) in bed.hosts() {
        let current = bed.srv(&host, base).join("current");
        assert_eq!(
            fs::read_to_string(current.join(RENDERED)).unwrap(),
            rendered(CLI_VALUE),
            "{host}"
        );
        assert_eq!(
            fs::read_to_string(current.join(FILES_DST).join(FILE_NAME)).unwrap(),
            "copied as it is\n"
        );
        assert!(current.join(FILES_DST).join("-n").is_file());
        let shared = bed.srv(&host, base).join("shared").join(SHARED);
        assert_eq!(
            fs::read_to_string(shared.join("activated.txt")).unwrap(),
            activated(CLI_VALUE),
            "{host}"
        );
        assert_eq!(fs::read_to_string(shared.join("pre.txt")).unwrap(), "-rf*");
    }

    // Unchanged, then a new release, then back to the first: the hooks run
    // again with the values of each.
    bed.deploy(&["--var", &cli]).assert_code(0);
    let cli_2 = format!("cli={CLI_VALUE_2}");
    bed.deploy(&["--var", &cli_2]).assert_code(0);
    for (host, _) in bed.hosts() {
        let shared = bed.srv(&host, base).join("shared").join(SHARED);
        assert_eq!(
            fs::read_to_string(shared.join("activated.txt")).unwrap(),
            activated(CLI_VALUE_2)
        );
    }
    let back = ws.run(&[
        "rollback",
        "testbed",
        "--message-format",
        "json",
        "--var",
        &cli,
    ]);
    back.assert_code(0);
    for (host, _) in bed.hosts() {
        let current = bed.srv(&host, base).join("current");
        assert_eq!(
            fs::read_to_string(current.join(RENDERED)).unwrap(),
            rendered(CLI_VALUE)
        );
    }

    // `exec` passes each argument as one word.
    let args: Vec<&str> = VALUES.iter().map(|(_, v)| *v).collect();
    let mut command = vec![
        "exec",
        "testbed",
        "--message-format",
        "json",
        "--",
        "printf",
        "%s|",
    ];
    command.extend(&args);
    let exec = ws.run(&command);
    exec.assert_code(0);
    let expected: String = args.iter().flat_map(|a| [*a, "|"]).collect();
    let outputs = exec.events_of("exec");
    assert_eq!(outputs.len(), 3, "{}", exec.stdout);
    for output in outputs {
        assert_eq!(output["stdout"], expected.as_str(), "{output}");
    }

    // `status` reads the odd path back.
    ws.run(&["status", "testbed"]).assert_code(0);

    // A command would run where its shell is: in the workspace or a
    // release (relative names), in a host's `/srv` or this machine's
    // (absolute ones), or in the home directory an ssh session starts in.
    let mut pwned = pwned_under(ws.root());
    for (host, _) in bed.hosts() {
        pwned.extend(pwned_under(&bed.srv(&host, "")));
    }
    pwned.extend(pwned_under(Path::new("/srv")));
    for dir in [
        std::env::var_os("HOME").map(PathBuf::from),
        Some(std::env::temp_dir()),
    ] {
        pwned.extend(dir.iter().flat_map(|d| pwned_in(d)));
    }
    assert!(pwned.is_empty(), "injected commands ran: {pwned:?}");
}
