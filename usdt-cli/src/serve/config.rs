//! The configuration of `usdt serve`: a TOML file of `[[metric]]` tables,
//! checked field by field (Prometheus' rules for names and labels, the
//! probe syntax of `usdt trace`) into the tracer's configuration.

use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use usdt_tracer::{Aggregation, KeySource, ProbeSpec, TraceConfig};

/// Series a metric keeps unless its `max_series` says otherwise.
pub(super) const DEFAULT_MAX_SERIES: usize = 1000;

/// The prefix of the daemon's own metrics, which configured ones may not
/// take.
pub(super) const SELF_PREFIX: &str = "usdt_serve_";

/// What a metric exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Hits, as a counter (`NAME_total`), by one label or none.
    Count,
    /// A log2 histogram of an integer argument.
    Histogram,
    /// Start-to-end latencies, as a histogram in seconds.
    Latency,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Count => "count",
            Kind::Histogram => "histogram",
            Kind::Latency => "latency",
        })
    }
}

/// One configured metric, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Metric {
    /// The name the exposition gives the family: for a count without its
    /// `_total` (the encoder adds it), for a latency ending in `_seconds`.
    pub family: String,
    /// The help text.
    pub help: String,
    /// What it exports.
    pub kind: Kind,
    /// The label of a count (an argument name, `pid` or `tid`), if any.
    pub label: Option<String>,
    /// Series kept before the rest go to one `other` series.
    pub max_series: usize,
    /// The probe specifications it covers, as written.
    pub probes: Vec<String>,
}

impl Metric {
    /// The names of the samples it exposes, for `--check`.
    pub(super) fn sample_names(&self) -> Vec<String> {
        match self.kind {
            Kind::Count => vec![format!("{}_total", self.family)],
            Kind::Histogram | Kind::Latency => ["bucket", "sum", "count"]
                .iter()
                .map(|suffix| format!("{}_{suffix}", self.family))
                .collect(),
        }
    }
}

/// The whole configuration: the metrics, and the tracer configuration whose
/// aggregations are theirs, in the same order.
#[derive(Debug, Clone)]
pub(super) struct ServeConfig {
    /// The metrics, in file order.
    pub metrics: Vec<Metric>,
    /// What to attach: one aggregation per metric.
    pub trace: TraceConfig,
    /// The address to listen on, if the file gives one.
    pub listen: Option<String>,
}

/// A configuration error: one line, naming the file, and the metric and
/// field when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fields a `[[metric]]` table may have.
const METRIC_FIELDS: &[&str] = &[
    "name",
    "help",
    "kind",
    "probe",
    "by",
    "value",
    "start",
    "end",
    "key",
    "max_series",
];

/// Top-level keys besides `metric`.
const TOP_FIELDS: &[&str] = &["metric", "listen", "map_entries"];

/// Reads and checks the configuration file `path`.
pub(super) fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError(format!("cannot read {}: {error}", path.display())))?;
    parse(&text)
        .map_err(|ConfigError(message)| ConfigError(format!("{}: {message}", path.display())))
}

/// Checks the configuration text `text`.
pub(super) fn parse(text: &str) -> Result<ServeConfig, ConfigError> {
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let message = one_line(error.message());
        ConfigError(match line {
            Some(line) => format!("line {line}: {message}"),
            None => message,
        })
    })?;
    for key in table.keys() {
        if !TOP_FIELDS.contains(&key.as_str()) {
            return Err(ConfigError(format!(
                "unknown key `{key}`; expected [[metric]] tables, `listen` or `map_entries`"
            )));
        }
    }
    let listen: Option<String> = top_field(&table, "listen")?;
    let map_entries: Option<u32> = top_field(&table, "map_entries")?;
    let tables = match table.get("metric") {
        None => return Err(ConfigError("no [[metric]] table".into())),
        Some(toml::Value::Array(tables)) if !tables.is_empty() => tables,
        Some(_) => {
            return Err(ConfigError(
                "`metric` must be an array of tables: [[metric]]".into(),
            ));
        }
    };
    let mut trace = TraceConfig::new();
    if let Some(entries) = map_entries {
        usdt_tracer::check_map_entries(entries)
            .map_err(|error| ConfigError(format!("map_entries: {error}")))?;
        trace.map_entries = entries;
    }
    let mut metrics = Vec::new();
    let mut families = HashSet::new();
    for (index, value) in tables.iter().enumerate() {
        let toml::Value::Table(table) = value else {
            return Err(ConfigError(format!("metric {}: not a table", index + 1)));
        };
        let (metric, aggregation) = metric(index, table)?;
        if !families.insert(metric.family.clone()) {
            return Err(ConfigError(format!(
                "metric `{}`: field `name`: another metric is exported as `{}`",
                metric.family, metric.family
            )));
        }
        metrics.push(metric);
        trace.aggregations.push(aggregation);
    }
    Ok(ServeConfig {
        metrics,
        trace,
        listen,
    })
}

/// An optional top-level key of type `T`.
fn top_field<T: DeserializeOwned>(
    table: &toml::Table,
    key: &str,
) -> Result<Option<T>, ConfigError> {
    typed(table, key).map_err(|error| ConfigError(format!("`{key}`: {error}")))
}

/// Key `key` of `table` as a `T`, if present; the error on one line.
fn typed<T: DeserializeOwned>(table: &toml::Table, key: &str) -> Result<Option<T>, String> {
    table
        .get(key)
        .map(|value| value.clone().try_into::<T>())
        .transpose()
        .map_err(|error| one_line(&error.to_string()))
}

/// One `[[metric]]` table (the `index`th, from 0): the metric and its
/// aggregation.
fn metric(index: usize, table: &toml::Table) -> Result<(Metric, Aggregation), ConfigError> {
    // Errors name the metric by its name once it is known.
    let position = format!("metric {}", index + 1);
    let name: Option<String> = field(&position, table, "name")?;
    let Some(name) = name else {
        return Err(ConfigError(format!("{position}: field `name` is missing")));
    };
    let at = format!("metric `{name}`");
    let bad = |field: &str, reason: String| ConfigError(format!("{at}: field `{field}`: {reason}"));
    for key in table.keys() {
        if !METRIC_FIELDS.contains(&key.as_str()) {
            return Err(ConfigError(format!(
                "{at}: unknown field `{key}`; expected one of {}",
                METRIC_FIELDS.join(", ")
            )));
        }
    }
    check_metric_name(&name).map_err(|reason| bad("name", reason))?;
    let kind: String = field(&at, table, "kind")?
        .ok_or_else(|| ConfigError(format!("{at}: field `kind` is missing")))?;
    let kind = match kind.as_str() {
        "count" => Kind::Count,
        "histogram" => Kind::Histogram,
        "latency" => Kind::Latency,
        other => {
            return Err(bad(
                "kind",
                format!("`{other}`: expected count, histogram or latency"),
            ));
        }
    };
    let allowed: &[&str] = match kind {
        Kind::Count => &["probe", "by"],
        Kind::Histogram => &["probe", "value"],
        Kind::Latency => &["start", "end", "key"],
    };
    for key in ["probe", "by", "value", "start", "end", "key"] {
        if table.contains_key(key) && !allowed.contains(&key) {
            return Err(bad(key, format!("not used by a {kind} metric")));
        }
    }
    let help: Option<String> = field(&at, table, "help")?;
    let max_series: Option<i64> = field(&at, table, "max_series")?;
    let max_series = match max_series {
        None => DEFAULT_MAX_SERIES,
        Some(n) if n >= 1 => n as usize,
        Some(n) => return Err(bad("max_series", format!("{n}: must be at least 1"))),
    };
    let required = |key: &str| -> Result<String, ConfigError> {
        field::<String>(&at, table, key)?
            .ok_or_else(|| ConfigError(format!("{at}: field `{key}` is missing")))
    };
    let probe_spec = |key: &str| -> Result<(String, ProbeSpec), ConfigError> {
        let text = required(key)?;
        let spec: ProbeSpec = text
            .parse()
            .map_err(|error: usdt_tracer::TraceError| bad(key, one_line(&error.to_string())))?;
        if spec.path.is_none() {
            return Err(bad(
                key,
                format!("`{text}` names no file; write PATH:provider:name"),
            ));
        }
        Ok((text, spec))
    };
    let (family, label, probes, aggregation) = match kind {
        Kind::Count => {
            let (text, spec) = probe_spec("probe")?;
            let by: Option<Vec<String>> = field(&at, table, "by")?;
            let label = match by.as_deref() {
                None | Some([]) => None,
                Some([label]) => {
                    check_label_name(label).map_err(|reason| bad("by", reason))?;
                    Some(label.clone())
                }
                Some(_) => {
                    return Err(bad(
                        "by",
                        "at most one label: the kernel counts by one key".into(),
                    ));
                }
            };
            let family = name.strip_suffix("_total").unwrap_or(&name).to_owned();
            if family.is_empty() {
                return Err(bad("name", "`_total` alone is no name".into()));
            }
            let by = label
                .as_deref()
                .map(str::parse::<KeySource>)
                .transpose()
                .map_err(|error| bad("by", one_line(&error.to_string())))?;
            if by == Some(KeySource::Stack) {
                // Its values would be opaque hashes, one series per stack.
                return Err(bad(
                    "by",
                    "`stack` is no label: its values would be opaque stack hashes (count by stack with `usdt trace --hits --by stack`)".into(),
                ));
            }
            let aggregation = Aggregation::Hits {
                probes: vec![spec],
                by,
            };
            (family, label, vec![text], aggregation)
        }
        Kind::Histogram => {
            let (text, _) = probe_spec("probe")?;
            let value = required("value")?;
            let aggregation = Aggregation::histogram(&[text.as_str()], &value)
                .map_err(|error| bad("value", one_line(&error.to_string())))?;
            (name.clone(), None, vec![text], aggregation)
        }
        Kind::Latency => {
            let (start, _) = probe_spec("start")?;
            let (end, _) = probe_spec("end")?;
            let key = required("key")?;
            let aggregation = Aggregation::latency(&start, &end, &key)
                .map_err(|error| bad("key", one_line(&error.to_string())))?;
            let family = if name.ends_with("_seconds") {
                name.clone()
            } else {
                format!("{name}_seconds")
            };
            (family, None, vec![start, end], aggregation)
        }
    };
    if let Kind::Histogram | Kind::Latency = kind {
        for suffix in ["_bucket", "_count", "_sum", "_total"] {
            if family.ends_with(suffix) {
                return Err(bad(
                    "name",
                    format!("a histogram's name cannot end in `{suffix}`"),
                ));
            }
        }
    }
    let help = help.unwrap_or_else(|| match kind {
        Kind::Count => format!("Hits of {}", probes[0]),
        Kind::Histogram => format!("Values of {}", probes[0]),
        Kind::Latency => format!("Seconds from {} to {}", probes[0], probes[1]),
    });
    Ok((
        Metric {
            family,
            help: one_line(&help),
            kind,
            label,
            max_series,
            probes,
        },
        aggregation,
    ))
}

/// Field `key` of a metric's table, of type `T`, if present.
fn field<T: DeserializeOwned>(
    at: &str,
    table: &toml::Table,
    key: &str,
) -> Result<Option<T>, ConfigError> {
    typed(table, key).map_err(|error| ConfigError(format!("{at}: field `{key}`: {error}")))
}

/// Checks a metric name against Prometheus' rules (`[a-zA-Z_:][a-zA-Z0-9_:]*`),
/// names reserved for the daemon's own metrics and for Prometheus' internal
/// use (`__`).
pub(super) fn check_metric_name(name: &str) -> Result<(), String> {
    prometheus_name(name, "metric name", "names", ":")?;
    if name.starts_with(SELF_PREFIX) {
        return Err(format!(
            "`{name}`: names starting with `{SELF_PREFIX}` are the daemon's own"
        ));
    }
    Ok(())
}

/// Checks a label name against Prometheus' rules (`[a-zA-Z_][a-zA-Z0-9_]*`,
/// not `le`, not starting with `__`).
pub(super) fn check_label_name(name: &str) -> Result<(), String> {
    prometheus_name(name, "label name", "labels", "")?;
    if name == "le" {
        return Err("`le` is the label of histogram buckets".into());
    }
    Ok(())
}

/// Checks `name` against Prometheus' rules for a `what` (plural `whats`):
/// a letter or `_` (or one of `extra`), then letters, digits, `_` (or one
/// of `extra`); not starting with `__`, which Prometheus keeps for itself.
fn prometheus_name(name: &str, what: &str, whats: &str, extra: &str) -> Result<(), String> {
    let allowed = |c: char| c == '_' || extra.contains(c);
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || allowed(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || allowed(c));
    if !valid {
        let others: String = extra.chars().map(|c| format!(", `{c}`")).collect();
        return Err(format!(
            "`{name}` is no Prometheus {what}: a letter or `_`{others}, then letters, digits or `_`{others}"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "`{name}`: {whats} starting with `__` are reserved for Prometheus"
        ));
    }
    Ok(())
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.trim().replace('\n', "; ")
}

/// The files a configuration's probes are in, each once.
pub(super) fn files(config: &TraceConfig) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for aggregation in &config.aggregations {
        let specs: Vec<&ProbeSpec> = match aggregation {
            Aggregation::Hits { probes, .. } | Aggregation::Histogram { probes, .. } => {
                probes.iter().collect()
            }
            Aggregation::Latency { start, end, .. } => vec![start, end],
        };
        for spec in specs {
            if let Some(path) = &spec.path
                && !files.contains(path)
            {
                files.push(path.clone());
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:9999"

[[metric]]
name = "http_requests"
help = "Requests by status"
kind = "count"
probe = "/srv/bin/http_server:http:request_done"
by = ["status"]

[[metric]]
name = "http_response_bytes"
kind = "histogram"
probe = "/srv/bin/http_server:http:request_done"
value = "bytes"
max_series = 5

[[metric]]
name = "http_request_duration"
kind = "latency"
start = "/srv/bin/http_server:http:request_start"
end = "/srv/bin/http_server:http:request_done"
key = "request_id"
"#;

    #[test]
    fn a_good_configuration_names_its_families() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.listen.as_deref(), Some("127.0.0.1:9999"));
        let families: Vec<(&str, Kind, Option<&str>, usize)> = config
            .metrics
            .iter()
            .map(|m| (m.family.as_str(), m.kind, m.label.as_deref(), m.max_series))
            .collect();
        assert_eq!(
            families,
            [
                ("http_requests", Kind::Count, Some("status"), 1000),
                ("http_response_bytes", Kind::Histogram, None, 5),
                ("http_request_duration_seconds", Kind::Latency, None, 1000),
            ]
        );
        assert_eq!(config.trace.aggregations.len(), 3);
        assert_eq!(config.metrics[0].sample_names(), ["http_requests_total"]);
        assert_eq!(
            config.metrics[2].help,
            "Seconds from /srv/bin/http_server:http:request_start to /srv/bin/http_server:http:request_done"
        );
        assert_eq!(
            files(&config.trace),
            [PathBuf::from("/srv/bin/http_server")]
        );
    }

    /// The error of `GOOD` with `from` replaced by `to`.
    fn error_of(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        parse(&GOOD.replacen(from, to, 1)).unwrap_err().0
    }

    #[test]
    fn bad_configurations_say_metric_and_field_on_one_line() {
        let cases = [
            (
                "name = \"http_requests\"",
                "name = \"http-requests\"",
                "metric `http-requests`: field `name`: `http-requests` is no Prometheus metric name",
            ),
            (
                "name = \"http_requests\"",
                "name = \"__http\"",
                "metric `__http`: field `name`: `__http`: names starting with `__` are reserved",
            ),
            (
                "by = [\"status\"]",
                "by = [\"le\"]",
                "metric `http_requests`: field `by`: `le` is the label of histogram buckets",
            ),
            (
                "by = [\"status\"]",
                "by = [\"__x\"]",
                "metric `http_requests`: field `by`: `__x`: labels starting with `__`",
            ),
            (
                "by = [\"status\"]",
                "by = [\"status\", \"pid\"]",
                "metric `http_requests`: field `by`: at most one label",
            ),
            (
                "by = [\"status\"]",
                "by = \"status\"",
                "metric `http_requests`: field `by`: ",
            ),
            (
                "by = [\"status\"]",
                "by = [\"stack\"]",
                "metric `http_requests`: field `by`: `stack` is no label",
            ),
            (
                "kind = \"count\"",
                "kind = \"gauge\"",
                "metric `http_requests`: field `kind`: `gauge`: expected count, histogram or latency",
            ),
            (
                "value = \"bytes\"",
                "value = \"bytes\"\nby = [\"status\"]",
                "metric `http_response_bytes`: field `by`: not used by a histogram metric",
            ),
            (
                "max_series = 5",
                "max_series = 0",
                "metric `http_response_bytes`: field `max_series`: 0: must be at least 1",
            ),
            (
                "max_series = 5",
                "colour = 5",
                "metric `http_response_bytes`: unknown field `colour`",
            ),
            (
                "probe = \"/srv/bin/http_server:http:request_done\"\nvalue",
                "probe = \"http:request_done\"\nvalue",
                "metric `http_response_bytes`: field `probe`: `http:request_done` names no file",
            ),
            (
                "key = \"request_id\"",
                "",
                "metric `http_request_duration`: field `key` is missing",
            ),
            (
                "name = \"http_response_bytes\"",
                "name = \"http_response_count\"",
                "metric `http_response_count`: field `name`: a histogram's name cannot end in `_count`",
            ),
            (
                "name = \"http_response_bytes\"",
                "name = \"http_requests\"",
                "metric `http_requests`: field `name`: another metric is exported as `http_requests`",
            ),
            (
                "name = \"http_requests\"",
                "name = \"usdt_serve_x\"",
                "metric `usdt_serve_x`: field `name`: `usdt_serve_x`: names starting with `usdt_serve_`",
            ),
            ("listen = ", "listen = 5 #", "`listen`: "),
            (
                "[[metric]]\nname = \"http_requests\"",
                "[[metric]]\nname = ",
                "line 5: ",
            ),
        ];
        for (from, to, expected) in cases {
            let error = error_of(from, to);
            assert!(error.starts_with(expected), "{error:?} for {to:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
        assert_eq!(parse("").unwrap_err().0, "no [[metric]] table");
        assert!(
            parse("[[metric]]\nkind = \"count\"")
                .unwrap_err()
                .0
                .starts_with("metric 1: field `name` is missing")
        );
    }
}
