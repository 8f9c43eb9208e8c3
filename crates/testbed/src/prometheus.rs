//! A real Prometheus (Debian's `prometheus`) for tests of the checks judged
//! from outside the hosts: it scrapes `/metrics` of the targets it is
//! given, on a scrape interval of the test's (a second, say), keeps its
//! data in a temporary directory of its own, and answers instant queries
//! over its HTTP API. Test-bed hosts share the machine's network, so it
//! reaches a service on a host as the deploying machine does.
//!
//! Ready is what Prometheus says it is: it is started, then awaited until
//! it logs that it is ready to receive web requests. Its first scrape comes
//! some seconds later (its scrape manager starts targets on a tick of its
//! own), so a test waits for the data it needs with
//! [`Prometheus::wait_for`], which asks again once per scrape interval,
//! within a deadline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::server::{Server, TempDir};

/// How long Prometheus may take to be ready.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// What Prometheus logs once it serves its API.
const READY: &str = "Server is ready to receive web requests";

/// How long one query may take.
const QUERY_DEADLINE: Duration = Duration::from_secs(10);

/// A running Prometheus, stopped (and its data removed) on drop.
#[derive(Debug)]
pub struct Prometheus {
    address: SocketAddr,
    interval: Duration,
    agent: ureq::Agent,
    server: Server,
}

/// One sample of a query's answer: its labels (the metric's name among
/// them as `__name__`, where the query keeps it) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Prometheus {
    /// Starts Prometheus on `address`, scraping `/metrics` of each of
    /// `targets` (`HOST:PORT`) every `interval`, and waits until it is
    /// ready.
    pub fn start(
        address: SocketAddr,
        targets: &[String],
        interval: Duration,
    ) -> Result<Prometheus> {
        let binary = crate::prerequisites::needed("prometheus")?;
        let dir = TempDir::new("prometheus")?;
        let config = dir.path().join("prometheus.yml");
        fs::write(&config, config_text(targets, interval))
            .with_context(|| format!("cannot write `{}`", config.display()))?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"));
        let mut server = Server::start("prometheus", dir, &mut command)?;
        server.wait_for_line(READY, START_DEADLINE)?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(QUERY_DEADLINE))
            // An error's body says what is wrong with the query.
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Prometheus {
            address,
            interval,
            agent,
            server,
        })
    }

    /// Its base URL, `http://ADDRESS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The last lines Prometheus logged.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// The answer to the instant query `promql`, now: a sample per series
    /// of a vector, or one without labels for a scalar.
    pub fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        let url = format!("{}/api/v1/query", self.url());
        let mut response = self
            .agent
            .get(&url)
            .query("query", promql)
            .call()
            .with_context(|| format!("cannot ask Prometheus `{promql}`"))?;
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("cannot read Prometheus's answer to `{promql}`"))?;
        parse_answer(&body)
            .with_context(|| format!("Prometheus's answer to `{promql}` ({status}): {body}"))
    }

    /// Asks `promql` once per scrape interval until the answer has a
    /// sample, and returns it; fails with the last answer and the log if
    /// none has come within `deadline`, and at once on an error.
    pub fn wait_for(&self, promql: &str, deadline: Duration) -> Result<Vec<Sample>> {
        let until = Instant::now() + deadline;
        loop {
            let samples = self.query(promql)?;
            if !samples.is_empty() {
                return Ok(samples);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "Prometheus answered `{promql}` with no sample for {deadline:?}, \
                     the last time too; its log:\n{}",
                    self.log()
                );
            }
            // Nothing new can come before the next scrape.
            std::thread::sleep(self.interval.min(left));
        }
    }
}

/// The configuration: one job, `hello`, scraping `/metrics` of `targets`.
fn config_text(targets: &[String], interval: Duration) -> String {
    // A duration in Prometheus's own syntax; a scrape may last as long as
    // the interval, and no longer.
    let interval = format!("{}ms", interval.as_millis().max(1));
    let mut text = format!(
        "# Written by landfall's test bed.\n\
         global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  \
         evaluation_interval: {interval}\n\
         scrape_configs:\n  - job_name: hello\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: ["
    );
    for (i, target) in targets.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        // A JSON string is a YAML one.
        let _ = write!(text, "{}", serde_json::Value::from(target.as_str()));
    }
    text.push_str("]\n");
    text
}

/// The body of an answer of `/api/v1/query`.
#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

/// What an instant query answers with: a range vector (`matrix`) or a
/// `string` is not read.
#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Series>),
    Scalar(Point),
}

#[derive(Debug, Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    value: Point,
}

/// A time and a value, which Prometheus writes as a string (`"NaN"` and
/// `"+Inf"` among them).
type Point = (serde::de::IgnoredAny, String);

fn value((_, value): &Point) -> Result<f64> {
    value
        .parse()
        .with_context(|| format!("`{value}` is not a number"))
}

fn parse_answer(body: &str) -> Result<Vec<Sample>> {
    let answer: Answer = serde_json::from_str(body).context("not an answer of the API")?;
    if answer.status != "success" {
        bail!("{}", answer.error.unwrap_or(answer.status));
    }
    match answer.data.context("no data")? {
        Data::Vector(series) => series
            .into_iter()
            .map(|series| {
                Ok(Sample {
                    value: value(&series.value)?,
                    labels: series.metric,
                })
            })
            .collect(),
        Data::Scalar(point) => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: value(&point)?,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_scrapes_every_target_on_the_interval() {
        let text = config_text(
            &["127.1.2.3:8081".to_owned(), "host\"2:1".to_owned()],
            Duration::from_secs(1),
        );
        assert!(
            text.contains("  scrape_interval: 1000ms\n  scrape_timeout: 1000ms\n"),
            "{text}"
        );
        assert!(text.contains("    metrics_path: /metrics\n"), "{text}");
        assert!(
            text.ends_with("      - targets: [\"127.1.2.3:8081\", \"host\\\"2:1\"]\n"),
            "{text}"
        );
    }

    #[test]
    fn answers_are_read_as_samples_or_errors() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","instance":"a:1"},"value":[1700000000.5,"1"]},
            {"metric":{},"value":[1700000000.5,"NaN"]}]}}"#;
        let samples = parse_answer(vector).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].labels["instance"], "a:1");
        assert!((samples[0].value - 1.0).abs() < f64::EPSILON);
        assert!(samples[1].value.is_nan() && samples[1].labels.is_empty());
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.05"]}}"#;
        assert!((parse_answer(scalar).unwrap()[0].value - 0.05).abs() < f64::EPSILON);
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_answer(empty).unwrap().is_empty());
        let error =
            r#"{"status":"error","errorType":"bad_data","error":"parse error: unexpected"}"#;
        assert_eq!(
            parse_answer(error).unwrap_err().to_string(),
            "parse error: unexpected"
        );
        assert!(parse_answer("<html>").is_err());
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1.5,"a"]}}"#;
        assert!(parse_answer(string).is_err());
    }
}
