//! The service's metrics, which `GET /metrics` gives in Prometheus's text
//! exposition format (version 0.0.4), written by hand so that the service
//! needs no metrics library:
//!
//! - `hello_requests_total{code="…"}`, a counter of the answers by HTTP
//!   status;
//! - `hello_request_duration_seconds`, a histogram of the time each took,
//!   from the request read to the answer sent;
//! - `hello_info{name="…"}`, always 1, which names the host the service
//!   runs as, so that a query can tell hosts apart by more than their
//!   address.
//!
//! Every request but those `/metrics` answers is counted, so that a scrape
//! does not count itself. Every status the service can answer is shown from
//! the start, at 0: an error ratio is then 0, not "no data", before the
//! first error, and a rate sees the first one.
//!
//! The counts are atomics, one set per served site (in the service, one per
//! process), which the threads that answer connections add to without a
//! lock. A scrape reads them one by one, not as one snapshot: a request
//! recorded meanwhile may show in its histogram and not yet in its counter,
//! as with any Prometheus client.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The content type of the text exposition format.
pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The statuses the service answers with, shown even before the first.
const STATUSES: [u16; 8] = [200, 400, 401, 404, 405, 431, 500, 503];

/// The lowest and highest HTTP status: one counter each, so that a status
/// missing from [`STATUSES`] is counted all the same.
const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 599;

/// The histogram's upper bounds, as written in its `le` labels: the
/// Prometheus clients' default buckets, from 5 ms to 10 s (`/slow` and
/// `/stream` take longer, and fall in `+Inf` only).
const BUCKETS: [(&str, Duration); 11] = [
    ("0.005", Duration::from_millis(5)),
    ("0.01", Duration::from_millis(10)),
    ("0.025", Duration::from_millis(25)),
    ("0.05", Duration::from_millis(50)),
    ("0.1", Duration::from_millis(100)),
    ("0.25", Duration::from_millis(250)),
    ("0.5", Duration::from_millis(500)),
    ("1", Duration::from_secs(1)),
    ("2.5", Duration::from_millis(2500)),
    ("5", Duration::from_secs(5)),
    ("10", Duration::from_secs(10)),
];

/// The counts behind `/metrics`.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Answers by status, the first for [`FIRST_STATUS`].
    answers: [AtomicU64; (LAST_STATUS - FIRST_STATUS + 1) as usize],
    /// Answers by the first bucket of [`BUCKETS`] they fit in; the last
    /// count is for those that fit in none (`+Inf` only). Each is made
    /// cumulative when shown.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// The time of every answer, added up, in nanoseconds (584 years of
    /// them fit).
    nanoseconds: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            answers: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            nanoseconds: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts an answer with `status` that took `took`.
    pub(crate) fn record(&self, status: u16, took: Duration) {
        let status = status.clamp(FIRST_STATUS, LAST_STATUS);
        self.answers[usize::from(status - FIRST_STATUS)].fetch_add(1, Ordering::Relaxed);
        let bucket = BUCKETS
            .iter()
            .position(|(_, bound)| took <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanoseconds = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanoseconds.fetch_add(nanoseconds, Ordering::Relaxed);
    }

    /// The text `/metrics` answers, for the service running as `name`.
    pub(crate) fn render(&self, name: &str) -> String {
        let mut text = String::with_capacity(2048);
        text.push_str(
            "# HELP hello_requests_total Requests answered, by HTTP status, but those to /metrics.\n\
             # TYPE hello_requests_total counter\n",
        );
        for (index, count) in self.answers.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            let status = FIRST_STATUS + u16::try_from(index).expect("a status fits in u16");
            if count > 0 || STATUSES.contains(&status) {
                let _ = writeln!(text, "hello_requests_total{{code=\"{status}\"}} {count}");
            }
        }
        text.push_str(
            "# HELP hello_request_duration_seconds Time from a request read to its answer sent.\n\
             # TYPE hello_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = BUCKETS.get(index).map_or("+Inf", |(label, _)| label);
            let _ = writeln!(
                text,
                "hello_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let nanoseconds = self.nanoseconds.load(Ordering::Relaxed);
        let _ = writeln!(
            text,
            "hello_request_duration_seconds_sum {}.{:09}",
            nanoseconds / 1_000_000_000,
            nanoseconds % 1_000_000_000
        );
        let _ = writeln!(text, "hello_request_duration_seconds_count {cumulative}");
        let _ = write!(
            text,
            "# HELP hello_info The service, named as its configuration names it.\n\
             # TYPE hello_info gauge\n\
             hello_info{{name=\"{}\"}} 1\n",
            label_value(name)
        );
        text
    }
}

/// `value` as a label value of the text format, whose quotes hold it:
/// backslash, double quote and line feed escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A text in the exposition format, read back: each sample's value as
    /// written (a float), by its name and labels as written
    /// (`name{a="b"}`), and each family's type. Fails the test on a line
    /// the format does not allow, a sample of a family with no `# TYPE`
    /// before it, or one given twice.
    pub(in crate::http) fn parse(
        text: &str,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        let mut helped = Vec::new();
        assert!(text.ends_with('\n'), "{text}");
        for line in text.lines() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let (name, words) = help.split_once(' ').expect("a help text");
                assert!(!words.is_empty(), "{line}");
                helped.push(name.to_owned());
                continue;
            }
            if let Some(kind) = line.strip_prefix("# TYPE ") {
                let (name, kind) = kind.split_once(' ').expect("a type");
                assert!(helped.contains(&name.to_owned()), "no help for {name}");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample and its value");
            let name = series.split('{').next().unwrap();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
                "{line}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| types.get(*family).is_some_and(|kind| kind == "histogram"))
                .unwrap_or(name);
            assert!(types.contains_key(family), "no type for {line}");
            let labels = &series[name.len()..];
            assert!(
                labels.is_empty() || labels.starts_with('{') && labels.ends_with("\"}"),
                "{line}"
            );
            assert!(value.parse::<f64>().is_ok(), "a value in {line}");
            assert!(
                samples
                    .insert(series.to_owned(), value.to_owned())
                    .is_none(),
                "{series} twice"
            );
        }
        (samples, types)
    }

    #[test]
    fn the_text_reads_back_with_every_status_at_zero_at_first() {
        let text = Metrics::default().render("web-1");
        let (samples, types) = parse(&text);
        assert_eq!(types["hello_requests_total"], "counter");
        assert_eq!(types["hello_request_duration_seconds"], "histogram");
        assert_eq!(types["hello_info"], "gauge");
        for status in STATUSES {
            assert_eq!(
                samples[&format!("hello_requests_total{{code=\"{status}\"}}")],
                "0"
            );
        }
        assert_eq!(samples["hello_request_duration_seconds_count"], "0");
        assert_eq!(samples["hello_request_duration_seconds_sum"], "0.000000000");
        assert_eq!(
            samples["hello_request_duration_seconds_bucket{le=\"+Inf\"}"],
            "0"
        );
        assert_eq!(samples["hello_info{name=\"web-1\"}"], "1");
    }

    #[test]
    fn answers_are_counted_by_status_and_time() {
        let metrics = Metrics::default();
        for took in [1, 5, 6, 30, 999, 1000, 1001, 10_000, 60_000] {
            metrics.record(200, Duration::from_millis(took));
        }
        metrics.record(500, Duration::from_micros(1500));
        // A status the service does not answer with yet still counts.
        metrics.record(418, Duration::ZERO);
        let (samples, _) = parse(&metrics.render("web-1"));
        let requests =
            |code: &str| samples[&format!("hello_requests_total{{code=\"{code}\"}}")].clone();
        assert_eq!(requests("200"), "9");
        assert_eq!(requests("500"), "1");
        assert_eq!(requests("418"), "1");
        assert_eq!(requests("404"), "0");
        let bucket = |le: &str| {
            samples[&format!("hello_request_duration_seconds_bucket{{le=\"{le}\"}}")].clone()
        };
        // Cumulative, each bound inclusive.
        let expected = [
            ("0.005", "4"),
            ("0.01", "5"),
            ("0.025", "5"),
            ("0.05", "6"),
            ("0.1", "6"),
            ("0.25", "6"),
            ("0.5", "6"),
            ("1", "8"),
            ("2.5", "9"),
            ("5", "9"),
            ("10", "10"),
            ("+Inf", "11"),
        ];
        for (le, count) in expected {
            assert_eq!(bucket(le), count, "le={le}");
        }
        assert_eq!(samples["hello_request_duration_seconds_count"], "11");
        assert_eq!(
            samples["hello_request_duration_seconds_sum"],
            "73.043500000"
        );
    }

    #[test]
    fn a_name_is_escaped_in_its_label() {
        let text = Metrics::default().render("a \"b\" \\ c\nd");
        assert!(
            text.contains("hello_info{name=\"a \\\"b\\\" \\\\ c\\nd\"} 1\n"),
            "{text}"
        );
        parse(&text);
    }
}
