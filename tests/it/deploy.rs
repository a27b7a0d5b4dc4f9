//! The deployment files (deploy/) against the service: every `trendstream_*` metric the
//! dashboard, the alert rules and the autoscaling files name is one the service exports, and
//! the configuration the Kubernetes ConfigMap carries passes trendstream's checks. Their
//! syntax is checked by scripts/validate-deploy.sh (promtool, the Kubernetes schemas).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use trendstream::metrics::{
    DeadLetterKind, SinkLabel, StreamLabel, StreamPartition, TopicPartition,
};

/// The files checked, under deploy/, and whether they must name some metric (KEDA's Kafka
/// scaler reads the lag from the brokers: its file names none, but must not name a wrong one).
const FILES: &[(&str, bool)] = &[
    ("grafana/dashboards/trendstream.json", true),
    ("prometheus/alerts.yml", true),
    ("prometheus/alerts.test.yml", true),
    ("kubernetes/monitoring/prometheusrule.yaml", true),
    ("kubernetes/monitoring/prometheus-adapter.yaml", true),
    ("kubernetes/autoscaling/hpa/hpa.yaml", true),
    ("kubernetes/autoscaling/keda/scaledobject.yaml", false),
];

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

fn read(name: &str) -> String {
    let path = deploy_file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The names of the series the service exports, from the `# HELP` and `# TYPE` lines of what
/// `/metrics` serves. A counter's family is written without `_total` in the OpenMetrics text
/// and its samples with it: both count. A labelled family is rendered only once it has a
/// series, so each gets one first (one label set each, whatever the values).
fn exported() -> BTreeSet<String> {
    let metrics = trendstream::observe::Metrics::default();
    let partition = StreamPartition {
        stream: "danmu".into(),
        topic: "danmu".into(),
        partition: 0,
    };
    let topic_partition = TopicPartition {
        topic: "danmu".into(),
        partition: 0,
    };
    let stream = StreamLabel {
        stream: "danmu".into(),
    };
    let _ = metrics.records.get_or_create(&partition);
    let _ = metrics.input_bytes.get_or_create(&partition);
    let _ = metrics.dead_letters.get_or_create(&DeadLetterKind {
        stream: "danmu".into(),
        kind: "not_json",
    });
    let _ = metrics.windows_closed.get_or_create(&stream);
    let _ = metrics
        .sink_errors
        .get_or_create(&SinkLabel { sink: "redis" });
    let _ = metrics.consumer_lag.get_or_create(&topic_partition);
    let _ = metrics
        .watermark_lag_seconds
        .get_or_create(&topic_partition);
    let _ = metrics
        .sink_write_seconds
        .get_or_create(&SinkLabel { sink: "redis" });
    let _ = metrics.end_to_end_delay_seconds.get_or_create(&stream);
    let text = metrics.render();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("#"), Some(kind @ ("HELP" | "TYPE")), Some(name)) =
            (words.next(), words.next(), words.next())
        else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "TYPE" && words.next() == Some("counter") && !name.ends_with("_total") {
            names.insert(format!("{name}_total"));
        }
    }
    names
}

/// Every `trendstream_<name>` in `text`.
fn referenced(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("trendstream_") {
        if text[..at].chars().next_back().is_some_and(is_name) {
            continue;
        }
        let end = text[at..]
            .find(|c: char| !is_name(c))
            .map_or(text.len(), |n| at + n);
        names.insert(text[at..end].to_owned());
    }
    names
}

/// Every string in a JSON document (expressions, legends, descriptions, ...).
fn json_strings(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(fields) => fields.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

/// Every string in a YAML stream (several documents), keys included.
fn yaml_strings(text: &str) -> String {
    fn walk(value: &serde_yaml_ng::Value, out: &mut String) {
        match value {
            serde_yaml_ng::Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            serde_yaml_ng::Value::Sequence(items) => items.iter().for_each(|v| walk(v, out)),
            serde_yaml_ng::Value::Mapping(fields) => fields.iter().for_each(|(k, v)| {
                walk(k, out);
                walk(v, out);
            }),
            serde_yaml_ng::Value::Tagged(tagged) => walk(&tagged.value, out),
            _ => {}
        }
    }
    let mut out = String::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(document).expect("the file is YAML");
        walk(&value, &mut out);
    }
    out
}

/// The metric a referenced series belongs to: a histogram's `_bucket`, `_sum` and `_count`
/// series are the histogram's.
fn metric_of(series: &str, exported: &BTreeSet<String>) -> String {
    if !exported.contains(series) {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(histogram) = series.strip_suffix(suffix) {
                if exported.contains(histogram) {
                    return histogram.to_owned();
                }
            }
        }
    }
    series.to_owned()
}

#[test]
fn deploy_files_name_only_metrics_the_service_exports() {
    let exported = exported();
    let mut missing: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for &(file, names_some) in FILES {
        let text = read(file);
        let strings = if file.ends_with(".json") {
            let mut out = String::new();
            let dashboard: serde_json::Value =
                serde_json::from_str(&text).expect("the dashboard is JSON");
            json_strings(&dashboard, &mut out);
            out
        } else {
            yaml_strings(&text)
        };
        let names = referenced(&strings);
        assert!(
            !names_some || !names.is_empty(),
            "{file} names no trendstream_ metric"
        );
        for series in names {
            let metric = metric_of(&series, &exported);
            if !exported.contains(&metric) {
                missing.entry(metric).or_default().insert(file);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics named in deploy/ that the service does not export: {missing:#?}"
    );
}

/// deploy/prometheus/alerts.yml, as far as these checks read it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_description() {
    let file: RuleFile = serde_yaml_ng::from_str(&read("prometheus/alerts.yml")).expect("rules");
    let mut alerts = BTreeSet::new();
    for group in &file.groups {
        assert!(!group.rules.is_empty(), "group {} has no rules", group.name);
        for rule in &group.rules {
            assert!(alerts.insert(&rule.alert), "{} twice", rule.alert);
            assert!(
                rule.expr.contains("trendstream_"),
                "{}: {}",
                rule.alert,
                rule.expr
            );
            let severity = rule.labels.get("severity").map(String::as_str);
            assert!(
                matches!(severity, Some("warning" | "critical")),
                "{}: severity {severity:?}",
                rule.alert
            );
            for key in ["summary", "description"] {
                assert!(
                    rule.annotations.contains_key(key),
                    "{}: no {key}",
                    rule.alert
                );
            }
            if let Some(wait) = &rule.for_ {
                humantime::parse_duration(wait).expect("`for` is a duration");
            }
        }
    }
    // deploy/README.md explains each alert.
    let readme = read("README.md");
    for alert in alerts {
        assert!(
            readme.contains(alert.as_str()),
            "deploy/README.md does not explain {alert}"
        );
    }
}

#[test]
fn configmap_configuration_passes_the_checks() {
    #[derive(Deserialize)]
    struct ConfigMap {
        data: BTreeMap<String, String>,
    }
    let map: ConfigMap =
        serde_yaml_ng::from_str(&read("kubernetes/configmap.yaml")).expect("ConfigMap");
    let toml = &map.data["trendstream.toml"];
    let config = trendstream::config::Config::from_toml(toml)
        .unwrap_or_else(|err| panic!("deploy/kubernetes/configmap.yaml: {err}"));
    assert_eq!(config.batch().workers, 2, "one worker per core requested");
}
