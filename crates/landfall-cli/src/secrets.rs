//! `cargo deploy secrets edit|set|show|recipients`: the encrypted secrets
//! of an environment, as an operator handles them.
//!
//! Editing is the one place plaintext touches a disk: a file of mode 0600
//! in a fresh 0700 directory (in `/dev/shm` where there is one), removed
//! on every way out, Ctrl-C included.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use landfall::Error;
use landfall::config::{Environment, Project, provenance};
use landfall::secrets::{self, Identities, Recipient};

use crate::cli::{RecipientsArgs, SecretsCommand, SetArgs, ShowArgs};
use crate::commands::{Ctx, EXIT_FAILED, EXIT_OK};
use crate::render::{self, eprintln, println};

/// Set by Ctrl-C (or SIGTERM) while secrets are being edited: the editor
/// gets the signal too, and landfall cleans up once it has exited.
static INTERRUPTED: std::sync::LazyLock<std::sync::Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(AtomicBool::new(false)));

pub(crate) fn run(ctx: &Ctx<'_>, command: &SecretsCommand) -> u8 {
    let result = match command {
        SecretsCommand::Edit(args) => edit(ctx, &args.env),
        SecretsCommand::Show(args) => show(ctx, args),
        SecretsCommand::Set(args) => set(ctx, args),
        SecretsCommand::Recipients(args) => recipients(ctx, args),
    };
    result.unwrap_or_else(|err| Ctx::fail(&err))
}

/// The secrets file of an environment: its absolute path and how to name it.
fn secrets_file(project: &Project, env: &Environment) -> (PathBuf, String) {
    let relative = secrets::relative_path(&env.name);
    (
        project.workspace.root.join(&relative),
        relative.display().to_string(),
    )
}

fn no_secrets(display: &str, env: &Environment) -> Error {
    Error::Usage(format!(
        "environment `{0}` has no secrets: `{display}` does not exist (create it with \
         `cargo deploy secrets edit {0}`)",
        env.name
    ))
}

fn read_existing(path: &Path, display: &str, env: &Environment) -> Result<Vec<u8>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(no_secrets(display, env)),
        Err(e) => Err(Error::Usage(format!("cannot read `{display}`: {e}"))),
    }
}

fn decrypt(
    ciphertext: &[u8],
    identities: &Identities,
    display: &str,
    env: &Environment,
) -> Result<Vec<u8>, Error> {
    secrets::decrypt(ciphertext, identities, &env.recipients, display, &env.name)
}

fn write_encrypted(path: &Path, plaintext: &[u8], recipients: &[Recipient]) -> Result<(), Error> {
    secrets::write_encrypted(path, plaintext, recipients)
}

/// The most a secret's value read by `secrets set` may hold.
const MAX_VALUE_BYTES: u64 = 64 * 1024;

/// `secrets set ENV NAME`: one secret set to what standard input holds.
fn set(ctx: &Ctx<'_>, args: &SetArgs) -> Result<u8, Error> {
    use std::io::{IsTerminal as _, Read as _};
    let segments: Vec<&str> = args.name.split('.').collect();
    if segments.iter().any(|s| {
        s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }) {
        return Err(Error::Usage(format!(
            "`secrets set {} {}`: a secret's name is made of letters, digits, `_` and `-`, \
             with `.` between the names of tables",
            args.env,
            landfall::diag::shown(&args.name)
        )));
    }
    let (project, env) = ctx.load(&args.env)?;
    let recipients = secrets::recipients(&env)?;
    let (path, display) = secrets_file(&project, &env);
    let stdin = std::io::stdin();
    if stdin.is_terminal() && !ctx.global.quiet {
        eprintln!(
            "{:>12} the value of `{}` (end it with Ctrl-D)",
            "Reading", args.name
        );
    }
    let mut value = Vec::new();
    stdin
        .lock()
        .take(MAX_VALUE_BYTES + 1)
        .read_to_end(&mut value)
        .map_err(|e| Error::Usage(format!("cannot read standard input: {e}")))?;
    if value.len() as u64 > MAX_VALUE_BYTES {
        return Err(Error::Usage(format!(
            "the value of `{}` on standard input is longer than {MAX_VALUE_BYTES} bytes",
            args.name
        )));
    }
    let mut value = String::from_utf8(value).map_err(|_| {
        Error::Usage(format!(
            "the value of `{}` on standard input is not UTF-8 text",
            args.name
        ))
    })?;
    // `echo VALUE |` and a line typed end with a newline that is no part
    // of the value.
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(Error::Usage(format!(
            "the value of `{}` on standard input is empty; nothing was changed",
            args.name
        )));
    }
    let mut table = if path.exists() {
        let ciphertext = read_existing(&path, &display, &env)?;
        let plaintext = decrypt(&ciphertext, &secrets::identities()?, &display, &env)?;
        secrets::parse(&plaintext, &display).map_err(Error::Usage)?
    } else {
        toml::Table::new()
    };
    let (leaf, tables) = segments
        .split_last()
        .expect("split gives one name at least");
    let mut current = &mut table;
    for (i, segment) in tables.iter().enumerate() {
        let entry = current
            .entry((*segment).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| {
            Error::Usage(format!(
                "`{}` in `{display}` is a value, not a table of secrets",
                segments[..=i].join(".")
            ))
        })?;
    }
    if current.get(*leaf).is_some_and(toml::Value::is_table) {
        return Err(Error::Usage(format!(
            "`{}` in `{display}` is a table of secrets, not one",
            args.name
        )));
    }
    current.insert((*leaf).to_string(), toml::Value::String(value));
    let document = toml::to_string(&table).expect("TOML tables serialise");
    write_encrypted(&path, document.as_bytes(), &recipients)?;
    status(
        ctx,
        "Encrypted",
        &format!(
            "`{display}`: `{}` set, {}, for {}",
            args.name,
            plural(leaf_keys(&table).len(), "secret"),
            plural(recipients.len(), "recipient")
        ),
    );
    for key in secrets::too_short_to_mask(&table) {
        render::warning(&format!(
            "secret `{key}` is shorter than {} characters and cannot be masked in output",
            secrets::MIN_MASKED_LEN
        ));
    }
    Ok(EXIT_OK)
}

/// Whether the user named an editor (`$VISUAL` or `$EDITOR`).
fn editor_named() -> bool {
    ["VISUAL", "EDITOR"]
        .into_iter()
        .filter_map(|var| std::env::var(var).ok())
        .any(|value| !value.trim().is_empty())
}

fn edit(ctx: &Ctx<'_>, env_name: &str) -> Result<u8, Error> {
    use std::io::IsTerminal as _;
    // vi on a pipe would wait for keys that never come. An editor the user
    // named may work without a terminal (a script, `sed -i`): theirs.
    if !std::io::stdin().is_terminal() && !editor_named() {
        return Err(Error::Usage(format!(
            "`secrets edit` opens an editor on a terminal, and standard input is not one: \
             set a secret without one with `printf %s VALUE | cargo deploy secrets set {env_name} NAME` \
             (or name an editor that needs no terminal in $EDITOR)"
        )));
    }
    let (project, env) = ctx.load(env_name)?;
    // Refuse before the editor opens: an edit that cannot be saved is lost.
    let recipients = secrets::recipients(&env)?;
    let (path, display) = secrets_file(&project, &env);
    let original = if path.exists() {
        let ciphertext = read_existing(&path, &display, &env)?;
        decrypt(&ciphertext, &secrets::identities()?, &display, &env)?
    } else {
        format!(
            "# The secrets of environment `{}`, read by templates as `secrets.KEY`.\n\
             # TOML; this file is encrypted again when the editor exits.\n",
            env.name
        )
        .into_bytes()
    };

    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, std::sync::Arc::clone(&INTERRUPTED))
            .map_err(|e| Error::Failed(format!("cannot handle Ctrl-C while editing: {e}")))?;
    }
    let dir = private_dir()?;
    let file = dir.path().join(format!("{}.toml", env.name));
    write_private(&file, &original)?;

    let mut last_invalid: Option<Vec<u8>> = None;
    loop {
        let code = editor(&file)
            .status()
            .map_err(|e| Error::Failed(format!("cannot start the editor: {e}")))?
            .code();
        if INTERRUPTED.load(Ordering::SeqCst) || code != Some(0) {
            let why = if INTERRUPTED.load(Ordering::SeqCst) {
                "interrupted".to_string()
            } else {
                match code {
                    Some(code) => format!("the editor exited with status {code}"),
                    None => "the editor was killed".to_string(),
                }
            };
            render::error(&format!("{why}: edit abandoned, `{display}` is unchanged"));
            return Ok(EXIT_FAILED);
        }
        let edited = fs::read(&file)
            .map_err(|e| Error::Failed(format!("cannot read back the edited secrets: {e}")))?;
        if edited == original {
            status(ctx, "Unchanged", &format!("`{display}`: no changes"));
            return Ok(EXIT_OK);
        }
        match secrets::parse(&edited, &display) {
            Ok(table) => {
                write_encrypted(&path, &edited, &recipients)?;
                let count = recipients.len();
                status(
                    ctx,
                    "Encrypted",
                    &format!(
                        "`{display}`: {}, for {}",
                        plural(table.len(), "secret"),
                        plural(count, "recipient")
                    ),
                );
                for key in secrets::too_short_to_mask(&table) {
                    render::warning(&format!(
                        "secret `{key}` is shorter than {} characters and cannot be masked in output",
                        secrets::MIN_MASKED_LEN
                    ));
                }
                return Ok(EXIT_OK);
            }
            Err(message) => {
                render::error(&message);
                if last_invalid.as_ref() == Some(&edited) {
                    render::error(&format!(
                        "the secrets are still invalid and were saved unchanged: edit abandoned, \
                         `{display}` is unchanged"
                    ));
                    return Ok(EXIT_FAILED);
                }
                eprintln!(
                    "{:>12} the editor again to fix it (save it unchanged to give up)",
                    "Opening"
                );
                last_invalid = Some(edited);
            }
        }
    }
}

fn status(ctx: &Ctx<'_>, verb: &str, text: &str) {
    if !ctx.global.quiet {
        eprintln!("{verb:>12} {text}");
    }
}

/// The user's editor on `file`, through the shell as git does, so that
/// `EDITOR="code --wait"` works.
fn editor(file: &Path) -> std::process::Command {
    let editor = ["VISUAL", "EDITOR"]
        .into_iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string());
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("landfall-editor")
        .arg(file);
    cmd
}

/// A fresh directory only the user can enter, in memory where possible.
fn private_dir() -> Result<tempfile::TempDir, Error> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("landfall-secrets-")
        .tempdir_in(&base)
        .map_err(|e| {
            Error::Failed(format!(
                "cannot create a private directory in `{}`: {e}",
                base.display()
            ))
        })?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::Failed(format!("cannot protect `{}`: {e}", dir.path().display())))?;
    Ok(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes).map(|()| f))
        .map_err(|e| Error::Failed(format!("cannot write `{}`: {e}", path.display())))?;
    file.flush()
        .map_err(|e| Error::Failed(format!("cannot write `{}`: {e}", path.display())))
}

fn show(ctx: &Ctx<'_>, args: &ShowArgs) -> Result<u8, Error> {
    let (project, env) = ctx.load(&args.env)?;
    let (path, display) = secrets_file(&project, &env);
    if !path.exists() {
        return Err(no_secrets(&display, &env));
    }
    let loaded = secrets::load(&project, &env)?;
    for warning in &loaded.warnings {
        render::warning(warning);
    }
    let table = loaded.table().expect("decrypted secrets have values");
    if args.all {
        let document = toml::to_string(table).expect("TOML tables serialise");
        println!("{}", document.trim_end());
        return Ok(EXIT_OK);
    }
    if let Some(key) = &args.key {
        let mut value: Option<&toml::Value> = None;
        let mut current = Some(table);
        for segment in key.split('.') {
            value = current.and_then(|t| t.get(segment));
            current = value.and_then(toml::Value::as_table);
        }
        return match value {
            // Raw, so that `$(cargo deploy secrets show prod token)` works.
            Some(toml::Value::String(text)) => {
                println!("{text}");
                Ok(EXIT_OK)
            }
            Some(other) => {
                println!("{other}");
                Ok(EXIT_OK)
            }
            None => Err(Error::Usage(format!(
                "no secret `{key}` in `{display}` (secrets: {})",
                leaf_keys(table).join(", ")
            ))),
        };
    }
    for key in leaf_keys(table) {
        println!("{key} = {}", secrets::MASK);
    }
    if !ctx.global.quiet {
        eprintln!(
            "{:>12} values with `cargo deploy secrets show {} KEY` or `--all`",
            "Print", env.name
        );
    }
    Ok(EXIT_OK)
}

/// Dotted paths of every value of a table.
fn leaf_keys(table: &toml::Table) -> Vec<String> {
    provenance::leaves(table)
        .into_iter()
        .filter(|(_, value)| !value.is_table())
        .map(|(key, _)| key)
        .collect()
}

fn recipients(ctx: &Ctx<'_>, args: &RecipientsArgs) -> Result<u8, Error> {
    let (project, env) = ctx.load(&args.env)?;
    let recipients = secrets::recipients(&env)?;
    let (path, display) = secrets_file(&project, &env);
    let ciphertext = if path.exists() {
        Some(read_existing(&path, &display, &env)?)
    } else {
        None
    };
    let drift = ciphertext
        .as_deref()
        .and_then(secrets::stanzas)
        .map(|stanzas| secrets::drift(&stanzas, &env.recipients));
    println!(
        "# recipients of `{display}`, from `environments/{}.toml`",
        env.name
    );
    for recipient in &env.recipients {
        let state = match &drift {
            None if ciphertext.is_none() => "no file yet",
            None => "unknown: the file's header cannot be read",
            Some(d) if d.missing.iter().any(|m| m.starts_with(recipient.as_str())) => {
                if recipient.starts_with("ssh-") {
                    "NOT in the file"
                } else {
                    "maybe not in the file (age keys are counted, not named)"
                }
            }
            Some(_) => "in the file",
        };
        println!("{}  # {state}", secrets::abbreviate_key(recipient));
    }
    if let Some(drift) = &drift {
        for extra in &drift.extra {
            println!("# also in the file, no longer listed: {extra}");
        }
    }
    let drifted = drift.as_ref().is_some_and(|d| !d.is_empty());
    if args.rekey {
        let Some(ciphertext) = ciphertext else {
            return Err(Error::Usage(format!(
                "nothing to re-encrypt: `{display}` does not exist"
            )));
        };
        let plaintext = decrypt(&ciphertext, &secrets::identities()?, &display, &env)?;
        write_encrypted(&path, &plaintext, &recipients)?;
        let count = recipients.len();
        status(
            ctx,
            "Re-encrypted",
            &format!("`{display}` for {}", plural(count, "recipient")),
        );
    } else if drifted {
        render::warning(&format!(
            "`{display}` is not encrypted to exactly these recipients: run `cargo deploy secrets \
             recipients {} --rekey`",
            env.name
        ));
    }
    Ok(EXIT_OK)
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
