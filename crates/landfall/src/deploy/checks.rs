//! One run of a rollout check, from the deploying machine: an HTTP
//! request, a command, or a Prometheus query. Each answers with a
//! [`Verdict`]; what a verdict means for the rollout (a check not yet
//! passing, a failure that switches a host back) is `observe`'s.

use std::time::Duration;

use crate::config::Bound;
use crate::plan::Target;
use crate::plan::checks::{RenderedCheck, RenderedProbe, Sets};
use crate::process::{self, Cmd};

/// The longest any one request or command of a check may take.
const ATTEMPT: Duration = Duration::from_secs(10);

/// The most of an answer read, for `body` and for messages.
const ANSWER_KEPT: u64 = 1 << 20;

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    /// It passed: what it saw.
    Pass(String),
    /// It failed: why.
    Fail(String),
    /// A query that has no sample to judge yet (a new release whose
    /// metrics are not scraped yet, a ratio of no requests).
    NoData(String),
    /// The Prometheus server could not be asked, or did not answer a
    /// query: nothing is known of the release.
    Unanswered(String),
}

/// Where the deploy runs a check: its environment and the host it judges.
pub(super) struct Place<'a> {
    pub(super) env: &'a str,
    pub(super) target: &'a Target,
    pub(super) release: &'a str,
    pub(super) workspace: &'a std::path::Path,
}

/// Runs `check` once for one host.
pub(super) fn run(check: &RenderedCheck, place: &Place<'_>, sets: &Sets<'_>) -> Verdict {
    let attempt = check.timeout.min(ATTEMPT);
    match &check.probe {
        RenderedProbe::Http { url, status, body } => http(url, *status, body.as_deref(), attempt),
        RenderedProbe::Exec { command } => exec(command, place, attempt),
        RenderedProbe::Prometheus {
            server,
            query,
            bound,
        } => prometheus(
            server,
            &RenderedProbe::query_for(query, sets),
            *bound,
            attempt,
        ),
    }
}

fn agent(deadline: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(deadline.min(Duration::from_secs(5))))
        .timeout_global(Some(deadline))
        .http_status_as_error(false)
        .build()
        .into()
}

/// GETs `url`: it passes with `status` (any 2xx if none is given) and, if
/// given, `body` in the answer.
fn http(url: &str, status: Option<u16>, body: Option<&str>, deadline: Duration) -> Verdict {
    let mut response = match agent(deadline).get(url).call() {
        Ok(response) => response,
        Err(err) => return Verdict::Fail(format!("GET {url}: {err}")),
    };
    let code = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(ANSWER_KEPT)
        .read_to_string()
        .unwrap_or_default();
    let expected = status.map_or((200..300).contains(&code), |s| s == code);
    if !expected {
        let want = status.map_or_else(|| "a 2xx status".to_string(), |s| s.to_string());
        return Verdict::Fail(format!(
            "GET {url} answered {code}, not {want}{}",
            excerpt(&text)
        ));
    }
    if let Some(body) = body
        && !text.contains(body)
    {
        return Verdict::Fail(format!(
            "GET {url} answered {code} without `{body}` in its body{}",
            excerpt(&text)
        ));
    }
    Verdict::Pass(format!("GET {url} answered {code}"))
}

/// The start of an answer, for a message: its first line, kept short.
fn excerpt(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if line.is_empty() {
        return String::new();
    }
    let short: String = line.chars().take(200).collect();
    format!(": {}", short.trim())
}

/// Runs `command` with `sh -c` in the workspace, with the variables hooks
/// get: it passes by exiting 0.
fn exec(command: &str, place: &Place<'_>, deadline: Duration) -> Verdict {
    let target = place.target;
    let cmd = Cmd::new("sh")
        .arg("-c")
        .arg(command)
        .dir(place.workspace)
        .deadline(deadline)
        .bounded_output()
        .in_own_process_group()
        .env("LANDFALL_ENV", place.env)
        .env("LANDFALL_HOST", &target.host)
        .env("LANDFALL_ADDRESS", &target.address)
        .env("LANDFALL_ARTIFACT", &target.artifact)
        .env("LANDFALL_RELEASE", place.release);
    match process::run(&cmd) {
        Ok(output) if output.success() => Verdict::Pass("it exited 0".into()),
        Ok(output) => {
            let mut said = String::from_utf8_lossy(&output.stderr).into_owned();
            if said.trim().is_empty() {
                said = String::from_utf8_lossy(&output.stdout).into_owned();
            }
            let tail: Vec<&str> = said.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let how = output
                .code
                .map_or_else(|| "was killed".to_string(), |c| format!("exited {c}"));
            Verdict::Fail(if tail.is_empty() {
                format!("it {how}")
            } else {
                format!("it {how}:\n{}", tail.join("\n"))
            })
        }
        Err(err) => Verdict::Fail(err.to_string()),
    }
}

/// Asks `server` for `query` at this instant: it passes when every sample
/// is within `bound`. No sample, or only NaN (a ratio of nothing), is no
/// data yet.
fn prometheus(server: &str, query: &str, bound: Bound, deadline: Duration) -> Verdict {
    let url = format!("{}/api/v1/query", server.trim_end_matches('/'));
    let response = agent(deadline)
        .get(&url)
        .query("query", query)
        .call()
        .map_err(|err| format!("asking {server}: {err}"));
    let answer = response.and_then(|mut r| {
        let code = r.status().as_u16();
        let text = r
            .body_mut()
            .with_config()
            .limit(ANSWER_KEPT)
            .read_to_string()
            .map_err(|err| format!("reading {server}'s answer: {err}"))?;
        Ok((code, text))
    });
    match answer {
        Ok((code, text)) => match judge(&text, bound) {
            // What was asked, as sent, says why nothing matched.
            Ok(Verdict::NoData(why)) => Verdict::NoData(format!("{why}; the query: {query}")),
            Ok(verdict) => verdict,
            Err(why) => Verdict::Unanswered(format!(
                "{server} answered {code}: {why}\nthe query: {query}"
            )),
        },
        Err(why) => Verdict::Unanswered(why),
    }
}

/// A sample of a query's answer: its labels, as a query writes them, and
/// its value.
type Sample = (String, f64);

/// Judges the JSON answer of `/api/v1/query` against `bound`.
fn judge(answer: &str, bound: Bound) -> Result<Verdict, String> {
    let samples = samples(answer)?;
    let numbers: Vec<&Sample> = samples.iter().filter(|(_, v)| !v.is_nan()).collect();
    if numbers.is_empty() {
        return Ok(Verdict::NoData(if samples.is_empty() {
            "the query returned no sample".into()
        } else {
            "the query returned only NaN (no data to divide)".into()
        }));
    }
    let outside: Vec<String> = numbers
        .iter()
        .filter(|(_, v)| !bound.holds(*v))
        .map(|(labels, v)| format!("{v}{labels}"))
        .collect();
    if !outside.is_empty() {
        return Ok(Verdict::Fail(format!("{} not {bound}", outside.join(", "))));
    }
    let shown: Vec<String> = numbers
        .iter()
        .take(3)
        .map(|(labels, v)| format!("{v}{labels}"))
        .collect();
    let more = numbers.len().saturating_sub(3);
    Ok(Verdict::Pass(format!(
        "{}{} {bound}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )))
}

/// The samples of an instant query's answer: a vector's, or a scalar.
fn samples(answer: &str) -> Result<Vec<Sample>, String> {
    let json: serde_json::Value =
        serde_json::from_str(answer).map_err(|_| "not the JSON of a Prometheus API".to_string())?;
    if json["status"] != "success" {
        let error = json["error"].as_str().unwrap_or("no reason given");
        return Err(format!("the query failed: {error}"));
    }
    let value = |pair: &serde_json::Value| -> Result<f64, String> {
        let text = pair[1]
            .as_str()
            .ok_or_else(|| "a sample without a value".to_string())?;
        parse_value(text).ok_or_else(|| format!("a sample whose value is `{text}`"))
    };
    let data = &json["data"];
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        let pairs: Vec<String> =
                            m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!("{{{}}}", pairs.join(", "))
                    })
                    .unwrap_or_default();
                Ok((labels, value(&s["value"])?))
            })
            .collect(),
        Some("scalar") => Ok(vec![(String::new(), value(&data["result"])?)]),
        Some(other) => Err(format!(
            "the query gave a {other}; a check needs an instant vector or a scalar"
        )),
        None => Err("an answer without a result".into()),
    }
}

/// A sample's value as Prometheus writes it (`"0.5"`, `"NaN"`, `"+Inf"`).
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(samples: &[(&str, &str)]) -> String {
        let result: Vec<String> = samples
            .iter()
            .map(|(instance, value)| {
                format!(
                    r#"{{"metric":{{"instance":"{instance}"}},"value":[1700000000.1,"{value}"]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            result.join(",")
        )
    }

    #[test]
    fn every_sample_must_be_within_the_bound() {
        let below = Bound::Below(0.01);
        assert!(matches!(
            judge(&vector(&[("a:1", "0.001"), ("b:1", "0")]), below),
            Ok(Verdict::Pass(_))
        ));
        let Ok(Verdict::Fail(why)) = judge(&vector(&[("a:1", "0.001"), ("b:1", "0.05")]), below)
        else {
            panic!("a sample beyond the bound fails the check");
        };
        assert_eq!(why, r#"0.05{instance="b:1"} not below 0.01"#);
        assert!(matches!(
            judge(&vector(&[("a:1", "+Inf")]), Bound::Above(1.0)),
            Ok(Verdict::Pass(_))
        ));
    }

    #[test]
    fn no_sample_or_only_nan_is_no_data_yet() {
        let below = Bound::Below(0.01);
        assert!(matches!(judge(&vector(&[]), below), Ok(Verdict::NoData(_))));
        assert!(matches!(
            judge(&vector(&[("a:1", "NaN")]), below),
            Ok(Verdict::NoData(_))
        ));
        // A NaN beside a number: the number is judged.
        assert!(matches!(
            judge(&vector(&[("a:1", "NaN"), ("b:1", "0.5")]), below),
            Ok(Verdict::Fail(_))
        ));
    }

    #[test]
    fn a_scalar_is_judged_and_a_range_vector_is_refused() {
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"2"]}}"#;
        assert!(matches!(
            judge(scalar, Bound::Above(1.0)),
            Ok(Verdict::Pass(_))
        ));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(
            judge(matrix, Bound::Above(1.0))
                .unwrap_err()
                .contains("matrix")
        );
        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert!(
            judge(error, Bound::Above(1.0))
                .unwrap_err()
                .contains("parse error")
        );
        assert!(judge("<html>", Bound::Above(1.0)).is_err());
    }
}
