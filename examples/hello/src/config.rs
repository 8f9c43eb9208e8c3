//! The service's configuration file.
//!
//! The deploy tool renders this file from a template, using a small subset of
//! TOML: `key = value` lines, where a value is a basic double-quoted string,
//! an integer or a boolean, with `#` comments and blank lines, and no tables.
//! The subset is parsed by hand so that the service needs no TOML parser.
//! It has no floats: a fraction, such as the share of requests `errors`
//! fails, is written as a string (`errors = "0.05"`), and read exactly, as
//! a decimal, not as a binary float.

use std::fmt;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// The settings the service runs with, validated and with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// The address to listen on, as `HOST:PORT`.
    pub(crate) listen: String,
    pub(crate) greeting: String,
    pub(crate) healthy: bool,
    /// The name of the host the service runs as.
    pub(crate) name: String,
    /// Where `GET /static/<file>` reads from, relative to the working
    /// directory (the release directory).
    pub(crate) static_dir: String,
    /// The bearer token `GET /admin` requires; without one, there is no
    /// `/admin`.
    pub(crate) admin_token: Option<String>,
    /// How long the service prepares before it listens (`warmup = "3s"`):
    /// no connection reaches it before then. Zero, the default, means no
    /// warm-up.
    pub(crate) warmup: Duration,
    /// The share of requests to `/` answered `500 Internal Server Error`
    /// (`errors = "0.05"`: every 20th), standing for a release that fails
    /// some of its requests while its health check passes. None, the
    /// default, fails.
    pub(crate) errors: Share,
}

/// A share of requests, from 0 to 1, kept exactly as the decimal it was
/// written as: `numerator / denominator`, the denominator a power of ten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Share {
    numerator: u64,
    denominator: u64,
}

impl Share {
    /// No request at all.
    pub(crate) const NONE: Share = Share {
        numerator: 0,
        denominator: 1,
    };

    /// Whether the `n`th request (counted from 1) is one of the share. The
    /// requests picked are spread evenly and known in advance: the `n`th is
    /// picked when `floor(n * share)` passes `floor((n - 1) * share)`, so
    /// that a share of 0.05 picks exactly the 20th, the 40th, … and any
    /// first `n` requests hold `floor(n * share)` picked ones.
    pub(crate) fn picks(self, n: u64) -> bool {
        let whole =
            |n: u64| u128::from(n) * u128::from(self.numerator) / u128::from(self.denominator);
        n > 0 && whole(n) > whole(n - 1)
    }
}

/// A problem with the configuration file, located by file and, where there
/// is one, by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub(crate) file: String,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses the configuration file at `path`.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    match fs::read_to_string(path) {
        Ok(text) => parse(&file, &text),
        Err(err) => Err(ConfigError {
            file,
            line: None,
            message: format!("cannot read: {err}"),
        }),
    }
}

/// Parses configuration text; `file` is only used in error messages.
pub(crate) fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let mut listen = None;
    let mut greeting = None;
    let mut healthy = None;
    let mut name = None;
    let mut static_dir = None;
    let mut admin_token = None;
    let mut warmup = None;
    let mut errors = None;
    // Each key remembers the line that set it, so that a duplicate can point
    // back at the first occurrence.
    let mut seen: Vec<(&str, usize)> = Vec::new();

    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let at = |message: String| ConfigError {
            file: file.to_owned(),
            line: Some(number),
            message,
        };

        let Some((key, value)) = parse_line(raw).map_err(at)? else {
            continue;
        };
        let expected = match key {
            "listen" | "greeting" | "name" | "static_dir" | "admin_token" | "warmup" | "errors" => {
                Kind::String
            }
            "healthy" => Kind::Bool,
            _ => return Err(at(format!("unknown key `{key}`"))),
        };
        if let Some((_, first)) = seen.iter().find(|(seen_key, _)| *seen_key == key) {
            return Err(at(format!(
                "duplicate key `{key}` (first set on line {first})"
            )));
        }
        seen.push((key, number));
        if value.kind() != expected {
            return Err(at(format!(
                "key `{key}` expects {}, found {}",
                expected.describe(),
                value.kind().describe()
            )));
        }

        match (key, value) {
            ("listen", Value::String(text)) => {
                check_listen(&text).map_err(at)?;
                listen = Some(text);
            }
            ("greeting", Value::String(text)) => greeting = Some(text),
            ("name", Value::String(text)) => name = Some(text),
            ("static_dir", Value::String(text)) => static_dir = Some(text),
            ("admin_token", Value::String(text)) => admin_token = Some(text),
            ("warmup", Value::String(text)) => warmup = Some(parse_duration(&text).map_err(at)?),
            ("errors", Value::String(text)) => errors = Some(parse_share(&text).map_err(at)?),
            ("healthy", Value::Bool(flag)) => healthy = Some(flag),
            _ => unreachable!("keys and kinds were checked above"),
        }
    }

    let Some(listen) = listen else {
        return Err(ConfigError {
            file: file.to_owned(),
            line: None,
            message: "missing required key `listen`".to_owned(),
        });
    };
    Ok(Config {
        listen,
        greeting: greeting.unwrap_or_else(|| "hello".to_owned()),
        healthy: healthy.unwrap_or(true),
        name: name.unwrap_or_else(|| "hello".to_owned()),
        static_dir: static_dir.unwrap_or_else(|| "static".to_owned()),
        admin_token,
        warmup: warmup.unwrap_or(Duration::ZERO),
        errors: errors.unwrap_or(Share::NONE),
    })
}

/// A value as written in the file, before it is matched to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    String(String),
    Integer(i64),
    Bool(bool),
}

impl Value {
    fn kind(&self) -> Kind {
        match self {
            Value::String(_) => Kind::String,
            Value::Integer(_) => Kind::Integer,
            Value::Bool(_) => Kind::Bool,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Bool,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Bool => "a boolean",
        }
    }
}

/// Parses one line into a key and a value, or `None` for a blank or
/// comment-only line.
fn parse_line(raw: &str) -> Result<Option<(&str, Value)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line.starts_with('[') {
        return Err("tables are not supported".to_owned());
    }
    let Some((key, rest)) = line.split_once('=') else {
        return Err("expected `key = value`".to_owned());
    };
    let key = key.trim();
    // Only bare keys are part of the subset; a quoted or dotted key would be
    // silently misread otherwise.
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("invalid key `{key}`"));
    }
    Ok(Some((key, parse_value(rest.trim_start())?)))
}

/// Parses a value, with any trailing comment, from `text`, which starts at
/// the value's first character.
fn parse_value(text: &str) -> Result<Value, String> {
    if let Some(body) = text.strip_prefix('"') {
        let (string, rest) = parse_string(body)?;
        let rest = rest.trim_start();
        if !rest.is_empty() && !rest.starts_with('#') {
            return Err(format!("unexpected `{rest}` after the value"));
        }
        return Ok(Value::String(string));
    }
    // Outside a string a `#` can only start a comment, so the value is
    // whatever comes before it.
    let token = text
        .split_once('#')
        .map_or(text, |(value, _)| value)
        .trim_end();
    match token {
        "" => Err("missing value".to_owned()),
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        _ => token
            .parse()
            .map(Value::Integer)
            .map_err(|_| format!("invalid value `{token}`")),
    }
}

/// Parses the rest of a basic string whose opening quote has been consumed,
/// returning the string and the text after its closing quote.
fn parse_string(body: &str) -> Result<(String, &str), String> {
    let mut string = String::new();
    let mut chars = body.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((string, &body[index + 1..])),
            '\\' => match chars.next() {
                Some((_, '"')) => string.push('"'),
                Some((_, '\\')) => string.push('\\'),
                Some((_, 'n')) => string.push('\n'),
                Some((_, 't')) => string.push('\t'),
                Some((_, other)) => return Err(format!("unknown escape `\\{other}`")),
                None => break,
            },
            _ => string.push(c),
        }
    }
    Err("unterminated string".to_owned())
}

/// Parses the `warmup` duration: a whole number of seconds, with an optional
/// `s`, or of milliseconds, with `ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit): (&str, fn(u64) -> Duration) = match text.strip_suffix("ms") {
        Some(number) => (number, Duration::from_millis),
        None => (text.strip_suffix('s').unwrap_or(text), Duration::from_secs),
    };
    // Only plain digits: `u64`'s parser would also take a sign.
    Some(number)
        .filter(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|number| number.parse::<u64>().ok())
        .map(unit)
        .ok_or_else(|| {
            format!("key `warmup` expects a duration such as \"3s\" or \"500ms\", found `{text}`")
        })
}

/// The most decimal places of `errors`: a billionth of the requests is as
/// fine a share as a test can tell.
const SHARE_PLACES: usize = 9;

/// Parses the `errors` share: a decimal from 0 to 1, such as `0.05`, `1` or
/// `0`, with at most [`SHARE_PLACES`] decimal places.
fn parse_share(text: &str) -> Result<Share, String> {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let (whole, places) = text.split_once('.').unwrap_or((text, ""));
    let valid = digits(whole)
        && (places.is_empty() && !text.ends_with('.') || digits(places))
        && places.len() <= SHARE_PLACES;
    // Only plain digits reach the parsers: `u64`'s would also take a sign.
    let share = valid
        .then(|| {
            let denominator = 10u64.pow(u32::try_from(places.len()).ok()?);
            let whole: u64 = whole.parse().ok()?;
            let part: u64 = if places.is_empty() {
                0
            } else {
                places.parse().ok()?
            };
            let numerator = whole.checked_mul(denominator)?.checked_add(part)?;
            (numerator <= denominator).then_some(Share {
                numerator,
                denominator,
            })
        })
        .flatten();
    share.ok_or_else(|| {
        format!(
            "key `errors` expects a share of requests from 0 to 1 such as \"0.05\", found `{text}`"
        )
    })
}

/// Checks that `listen` has the form `HOST:PORT`, so that a typo is caught by
/// `--check` before activation rather than by a failed bind after it. The
/// host is not resolved here: name resolution belongs to the bind itself.
fn check_listen(value: &str) -> Result<(), String> {
    let valid = value.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(format!("key `listen` expects HOST:PORT, found `{value}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "etc/hello.toml";

    /// Parses `text`, expecting an error, and returns its line and message.
    fn error(text: &str) -> (Option<usize>, String) {
        let err = parse(FILE, text).expect_err("the configuration should be rejected");
        assert_eq!(err.file, FILE);
        (err.line, err.message)
    }

    #[test]
    fn parses_a_full_file() {
        let text = "\
# Rendered by landfall.

listen = \"127.0.0.1:8081\"   # where to listen
greeting = \"say \\\"hi\\\"\\t\\\\ # not a comment\\n\"
healthy = false # trailing comment
  name = \"web-1\"
static_dir = \"../../../site/current/public\"
";
        let config = parse(FILE, text).unwrap();
        assert_eq!(
            config,
            Config {
                listen: "127.0.0.1:8081".to_owned(),
                greeting: "say \"hi\"\t\\ # not a comment\n".to_owned(),
                healthy: false,
                name: "web-1".to_owned(),
                static_dir: "../../../site/current/public".to_owned(),
                admin_token: None,
                warmup: Duration::ZERO,
                errors: Share::NONE,
            }
        );
    }

    #[test]
    fn parses_a_share_of_errors() {
        let errors = |value: &str| {
            parse(
                FILE,
                &format!("listen = \"127.0.0.1:1\"\nerrors = \"{value}\"\n"),
            )
            .map(|config| config.errors)
        };
        let share = |numerator, denominator| {
            Ok(Share {
                numerator,
                denominator,
            })
        };
        assert_eq!(errors("0.05"), share(5, 100));
        assert_eq!(errors("0"), share(0, 1));
        assert_eq!(errors("1"), share(1, 1));
        assert_eq!(errors("1.000"), share(1000, 1000));
        assert_eq!(errors("0.5"), share(5, 10));
        assert_eq!(errors("0.000000001"), share(1, 1_000_000_000));
        for bad in [
            "",
            ".",
            "0.",
            ".5",
            "1.5",
            "2",
            "1.0001",
            "-0.1",
            "+0.1",
            "0,05",
            "5%",
            "0.05 ",
            "0.0000000001",
            "1e-2",
            "0x1",
            "99999999999999999999",
        ] {
            assert_eq!(
                errors(bad).unwrap_err().message,
                format!(
                    "key `errors` expects a share of requests from 0 to 1 such as \"0.05\", found `{bad}`"
                ),
                "{bad}"
            );
        }
        assert_eq!(
            error("listen = \"127.0.0.1:1\"\nerrors = 0\n"),
            (
                Some(2),
                "key `errors` expects a string, found an integer".to_owned()
            )
        );
        assert_eq!(
            error("listen = \"127.0.0.1:1\"\n\nerrors = \"0.5.1\"\n").0,
            Some(3)
        );
    }

    #[test]
    fn a_share_picks_its_requests_evenly_and_exactly() {
        let picked = |share: Share, requests: u64| {
            (1..=requests)
                .filter(|&n| share.picks(n))
                .collect::<Vec<_>>()
        };
        let share = |text: &str| parse_share(text).unwrap();
        assert_eq!(picked(share("0.05"), 100), [20, 40, 60, 80, 100]);
        assert_eq!(picked(share("0.25"), 10), [4, 8]);
        assert_eq!(picked(share("0.5"), 5), [2, 4]);
        assert_eq!(picked(share("1"), 3), [1, 2, 3]);
        assert!(picked(share("0"), 1000).is_empty());
        assert!(picked(Share::NONE, 1000).is_empty());
        // 0.29 is no binary float (`100.0 * 0.29` is 28.999999999999996):
        // read exactly, any first n requests hold floor(n * 29 / 100)
        // picked ones.
        let share = share("0.29");
        for n in 0..=1000 {
            assert_eq!(picked(share, n).len() as u64, n * 29 / 100, "{n}");
        }
        assert!(!share.picks(0));
        // No overflow at the end of the count (a debug build would panic).
        let _ = share.picks(u64::MAX);
    }

    #[test]
    fn parses_a_warmup() {
        let warmup = |value: &str| {
            parse(
                FILE,
                &format!("listen = \"127.0.0.1:1\"\nwarmup = \"{value}\"\n"),
            )
            .map(|config| config.warmup)
        };
        assert_eq!(warmup("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(warmup("3"), Ok(Duration::from_secs(3)));
        assert_eq!(warmup("0"), Ok(Duration::ZERO));
        assert_eq!(warmup("250ms"), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "s",
            "ms",
            "1.5s",
            "-1s",
            "+1",
            "3m",
            "3 s",
            "1h",
            "99999999999999999999",
        ] {
            assert_eq!(
                warmup(bad).unwrap_err().message,
                format!(
                    "key `warmup` expects a duration such as \"3s\" or \"500ms\", found `{bad}`"
                ),
                "{bad}"
            );
        }
        assert_eq!(
            error("listen = \"127.0.0.1:1\"\nwarmup = 3\n"),
            (
                Some(2),
                "key `warmup` expects a string, found an integer".to_owned()
            )
        );
    }

    #[test]
    fn fills_in_defaults() {
        let config = parse(FILE, "listen = \"[::1]:0\"\r\n").unwrap();
        assert_eq!(config.listen, "[::1]:0");
        assert_eq!(config.greeting, "hello");
        assert!(config.healthy);
        assert_eq!(config.name, "hello");
        assert_eq!(config.static_dir, "static");
        assert_eq!(config.warmup, Duration::ZERO);
        assert_eq!(config.errors, Share::NONE);
    }

    #[test]
    fn reports_unknown_keys_with_file_and_line() {
        let err = parse(FILE, "listen = \"127.0.0.1:1\"\n\nfoo = 1\n").unwrap_err();
        assert_eq!(err.to_string(), "etc/hello.toml:3: unknown key `foo`");
    }

    #[test]
    fn reports_duplicate_keys() {
        let text = "name = \"a\"\nlisten = \"127.0.0.1:1\"\n# again\nname = \"b\"\n";
        assert_eq!(
            error(text),
            (
                Some(4),
                "duplicate key `name` (first set on line 1)".to_owned()
            )
        );
    }

    #[test]
    fn reports_bad_lines() {
        assert_eq!(
            error("listen = \"127.0.0.1:1\"\njust words\n"),
            (Some(2), "expected `key = value`".to_owned())
        );
        assert_eq!(
            error("[server]\n"),
            (Some(1), "tables are not supported".to_owned())
        );
        assert_eq!(
            error("\"quoted\" = 1\n"),
            (Some(1), "invalid key `\"quoted\"`".to_owned())
        );
        assert_eq!(error("\n\nname =\n"), (Some(3), "missing value".to_owned()));
        assert_eq!(
            error("name = hello\n"),
            (Some(1), "invalid value `hello`".to_owned())
        );
        assert_eq!(
            error("name = \"open\n"),
            (Some(1), "unterminated string".to_owned())
        );
        assert_eq!(
            error("name = \"ends in \\"),
            (Some(1), "unterminated string".to_owned())
        );
        assert_eq!(
            error("name = \"\\q\"\n"),
            (Some(1), "unknown escape `\\q`".to_owned())
        );
        assert_eq!(
            error("name = \"a\" \"b\"\n"),
            (Some(1), "unexpected `\"b\"` after the value".to_owned())
        );
    }

    #[test]
    fn reports_wrong_value_types() {
        assert_eq!(
            error("listen = 8081\n"),
            (
                Some(1),
                "key `listen` expects a string, found an integer".to_owned()
            )
        );
        assert_eq!(
            error("\nhealthy = \"yes\"\n"),
            (
                Some(2),
                "key `healthy` expects a boolean, found a string".to_owned()
            )
        );
        assert_eq!(
            error("name = true\n"),
            (
                Some(1),
                "key `name` expects a string, found a boolean".to_owned()
            )
        );
    }

    #[test]
    fn reports_a_bad_listen_address() {
        assert_eq!(
            error("listen = \"8081\"\n"),
            (
                Some(1),
                "key `listen` expects HOST:PORT, found `8081`".to_owned()
            )
        );
        assert_eq!(
            error("listen = \"localhost:http\"\n"),
            (
                Some(1),
                "key `listen` expects HOST:PORT, found `localhost:http`".to_owned()
            )
        );
    }

    #[test]
    fn reports_a_missing_listen_without_a_line() {
        let err = parse(FILE, "# nothing here\n").unwrap_err();
        assert_eq!(err.line, None);
        assert_eq!(
            err.to_string(),
            "etc/hello.toml: missing required key `listen`"
        );
    }

    #[test]
    fn reports_an_unreadable_file() {
        let path = std::env::temp_dir().join(format!("hello-missing-{}.toml", std::process::id()));
        let err = load(&path).unwrap_err();
        assert_eq!(err.line, None);
        assert!(err.message.starts_with("cannot read: "), "{}", err.message);
    }
}
