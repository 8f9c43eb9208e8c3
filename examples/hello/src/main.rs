//! `hello`: the small HTTP service that landfall's examples and tests deploy.
//!
//! It serves a greeting, a health check, static files and its metrics (for
//! Prometheus), and doubles as the HTTP client that deploy hooks use to
//! probe it, so that a deployment needs no tool beyond the service itself.
//! With `errors` in its configuration it fails that share of its greetings,
//! as a bad release would, while its health check passes.
//!
//! It is also a model of a service that can be restarted without refusing or
//! dropping a request, with the new instance started beside the old one:
//!
//! - It listens on the socket a service manager hands over (`LISTEN_FDS`),
//!   or else binds its address itself with `SO_REUSEPORT`, so that two
//!   instances can listen at once (see `listen`).
//! - With `warmup` in its configuration it waits that long before it binds
//!   its address or accepts on the handed socket, standing for a service
//!   that must prepare before it can answer: until then, connections go to
//!   the old instance.
//! - It tells systemd when it is ready (`READY=1`) and when it is stopping
//!   (`STOPPING=1`); without `NOTIFY_SOCKET` in its environment, it tells
//!   no one.
//! - On SIGTERM or SIGINT it stops accepting at once, finishes the answers
//!   in flight within a grace, and exits (see `http::serve`).

mod config;
mod http;
mod listen;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::listen::{Stop, Woken};

const USAGE: &str = "\
usage: hello serve --config PATH [--check]
       hello probe URL [--timeout SECONDS]
       hello --version";

/// How long `probe` waits for an answer unless told otherwise.
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Exit status for a usage, configuration or URL error: the caller asked for
/// something that cannot work, as opposed to something that failed.
const EXIT_USAGE: u8 = 2;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    Serve { config: PathBuf, check: bool },
    Probe { url: String, timeout: Duration },
    Version,
    Help,
}

fn main() -> ExitCode {
    let command = std::env::args_os()
        .skip(1)
        .map(OsString::into_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|arg| format!("argument `{}` is not valid utf-8", arg.display()))
        .and_then(parse_args);
    match command {
        Ok(Command::Serve { config, check }) => serve(&config, check),
        Ok(Command::Probe { url, timeout }) => probe(&url, timeout),
        Ok(Command::Version) => {
            println!("hello {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let command = match args.next().as_deref() {
        Some("serve") => return parse_serve(args),
        Some("probe") => return parse_probe(args),
        Some("--version") => Command::Version,
        Some("-h" | "--help") => Command::Help,
        Some(other) => return Err(format!("unknown argument `{other}`")),
        None => return Err("missing command".to_owned()),
    };
    match args.next() {
        Some(extra) => Err(format!("unexpected argument `{extra}`")),
        None => Ok(command),
    }
}

fn parse_serve(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut config = None;
    let mut check = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" if config.is_some() => return Err("`--config` given twice".to_owned()),
            "--config" => config = Some(args.next().ok_or("`--config` needs a path")?),
            "--check" if check => return Err("`--check` given twice".to_owned()),
            "--check" => check = true,
            _ => return Err(format!("unexpected argument `{arg}`")),
        }
    }
    let config = config.ok_or("`serve` needs `--config PATH`")?;
    Ok(Command::Serve {
        config: PathBuf::from(config),
        check,
    })
}

fn parse_probe(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut url = None;
    let mut timeout = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--timeout" if timeout.is_some() => return Err("`--timeout` given twice".to_owned()),
            "--timeout" => {
                let seconds = args.next().ok_or("`--timeout` needs a number of seconds")?;
                timeout = Some(parse_timeout(&seconds)?);
            }
            _ if arg.starts_with('-') || url.is_some() => {
                return Err(format!("unexpected argument `{arg}`"));
            }
            _ => url = Some(arg),
        }
    }
    let url = url.ok_or("`probe` needs a URL")?;
    Ok(Command::Probe {
        url,
        timeout: timeout.unwrap_or(DEFAULT_PROBE_TIMEOUT),
    })
}

/// Parses a timeout in seconds; fractions such as `0.5` are allowed.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .filter(|timeout| !timeout.is_zero())
        .ok_or_else(|| format!("`--timeout` expects a positive number of seconds, found `{text}`"))
}

/// Runs `hello serve`: until a signal stops it, or it fails.
fn serve(config_path: &std::path::Path, check: bool) -> ExitCode {
    let config = match config::load(config_path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if check {
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    // Signals are handled from the start, so that a stop during the warm-up
    // ends it rather than killing the process.
    let stop = match Stop::new().map(Arc::new) {
        Ok(stop) => stop,
        Err(err) => {
            eprintln!("error: cannot make the pipe that wakes the service on a stop: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = stop_on_signal(&stop) {
        eprintln!("error: cannot handle signals: {err}");
        return ExitCode::FAILURE;
    }
    // A socket handed over by the service manager (systemd's socket
    // activation, `LISTEN_FDS`) is used as it is: the manager keeps it open
    // across restarts, so that no connection is refused meanwhile. It is
    // taken before the warm-up, so that an unusable one fails at once.
    let handed = match listenfd::ListenFd::from_env().take_tcp_listener(0) {
        Ok(handed) => handed,
        Err(err) => {
            eprintln!("error: the socket the service manager handed over is unusable: {err}");
            return ExitCode::FAILURE;
        }
    };
    if !config.warmup.is_zero() {
        announce(&format!("hello: warming up for {:?}", config.warmup));
        if stop.sleep(config.warmup) == Woken::Stop {
            announce("hello: stopped");
            return ExitCode::SUCCESS;
        }
    }
    let (listener, own, from) = match handed {
        Some(listener) => (listener, false, " (a socket of the service manager)"),
        None => match listen::bind(&config.listen) {
            Ok(listener) => (listener, true, ""),
            Err(err) => {
                eprintln!("error: cannot listen on {}: {err}", config.listen);
                return ExitCode::FAILURE;
            }
        },
    };
    // The bound address, rather than the configured one, shows the real port
    // when the configuration asks for port 0.
    let address = listener
        .local_addr()
        .map_or_else(|_| config.listen.clone(), |address| address.to_string());
    announce(&format!("hello: listening on {address}{from}"));
    if let Err(err) = sd_notify::notify(&[NotifyState::Ready]) {
        eprintln!("hello: cannot tell the service manager that the service is ready: {err}");
    }
    let static_root = PathBuf::from(&config.static_dir);
    let site = http::Site::new(config, static_root);
    if let Err(err) = http::serve(listener, own, &Arc::new(site), &stop, STOP_GRACE) {
        eprintln!("error: cannot serve on {address}: {err}");
        return ExitCode::FAILURE;
    }
    announce("hello: stopped");
    ExitCode::SUCCESS
}

/// Prints a line about the service's state and flushes it at once: whoever
/// started the service may wait for such a line (`hello: listening on …`
/// says it is ready). A closed stdout must not stop the service, so a failed
/// write is ignored.
fn announce(line: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// How long a stopping server waits for the answers in flight.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// On the first SIGTERM or SIGINT, requests `stop`, which wakes the accept
/// loop (or the warm-up) at once, and tells the service manager that the
/// service is stopping.
fn stop_on_signal(stop: &Arc<Stop>) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stop.request();
            if let Err(err) = sd_notify::notify(&[NotifyState::Stopping]) {
                eprintln!(
                    "hello: cannot tell the service manager that the service is stopping: {err}"
                );
            }
        }
    });
    Ok(())
}

/// Runs `hello probe`.
fn probe(url: &str, timeout: Duration) -> ExitCode {
    let target = match http::parse_url(url) {
        Ok(target) => target,
        Err(message) => {
            eprintln!("hello: probe {url}: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match http::probe(&target, timeout) {
        Ok(reply) => {
            let mut stdout = io::stdout().lock();
            // The body is only informative; the verdict is the exit status,
            // so a closed stdout does not change it.
            let _ = stdout.write_all(&reply.body).and_then(|()| stdout.flush());
            if (200..300).contains(&reply.status) {
                ExitCode::SUCCESS
            } else {
                eprintln!("hello: probe {url}: status {}", reply.status);
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("hello: probe {url}: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|&arg| arg.to_owned()))
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse(&["--version"]), Ok(Command::Version));
        assert_eq!(
            parse(&["serve", "--config", "etc/hello.toml"]),
            Ok(Command::Serve {
                config: PathBuf::from("etc/hello.toml"),
                check: false
            })
        );
        assert_eq!(
            parse(&["serve", "--check", "--config", "etc/hello.toml"]),
            Ok(Command::Serve {
                config: PathBuf::from("etc/hello.toml"),
                check: true
            })
        );
        assert_eq!(
            parse(&["probe", "http://127.0.0.1:1/health"]),
            Ok(Command::Probe {
                url: "http://127.0.0.1:1/health".to_owned(),
                timeout: Duration::from_secs(2)
            })
        );
        assert_eq!(
            parse(&["probe", "--timeout", "0.5", "http://127.0.0.1:1/"]),
            Ok(Command::Probe {
                url: "http://127.0.0.1:1/".to_owned(),
                timeout: Duration::from_millis(500)
            })
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        for args in [
            &[][..],
            &["--version", "extra"],
            &["launch"],
            &["serve"],
            &["serve", "--config"],
            &["serve", "--config", "a", "--config", "b"],
            &["serve", "--config", "a", "--verbose"],
            &["probe"],
            &["probe", "http://h:1/", "http://h:2/"],
            &["probe", "http://h:1/", "--timeout"],
            &["probe", "http://h:1/", "--timeout", "0"],
            &["probe", "http://h:1/", "--timeout", "-1"],
            &["probe", "http://h:1/", "--timeout", "soon"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should be rejected");
        }
    }
}
