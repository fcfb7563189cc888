//! The catalogue against what the tap serves and what the docs say.
use std::collections::BTreeSet;

use prometheus::proto::MetricType;

use super::*;

const START: &str = "<!-- generated from src/metrics/catalogue.rs by a test: edit the catalogue, not this table -->\n";
const END: &str = "<!-- end of the generated table -->";

#[test]
fn every_metric_registered_is_in_the_catalogue_as_declared_and_every_entry_is_registered() {
    crate::metrics::REGISTERED.with(|r| r.borrow_mut().clear());
    let m = crate::metrics::Metrics::new(vec![1.0, 60.0]);
    let registered: BTreeSet<&str> = crate::metrics::REGISTERED.with(|r| r.borrow().iter().copied().collect());
    let declared: BTreeSet<&str> = ALL.iter().map(|s| s.name).collect();
    assert_eq!(registered, declared, "registered on one side only");
    assert_eq!(declared.len(), ALL.len(), "a name declared twice");
    for family in m.registry().gather() {
        let spec = ALL.iter().copied().chain(PROCESS).find(|s| s.name == family.name());
        let spec = spec.unwrap_or_else(|| panic!("{} is served but not in the catalogue", family.name()));
        assert_eq!(family.help(), spec.help, "{}", spec.name);
        let kind = match family.get_field_type() {
            MetricType::COUNTER => Kind::Counter,
            MetricType::HISTOGRAM => Kind::Histogram,
            _ => Kind::Gauge,
        };
        assert_eq!(kind, spec.kind, "{}", spec.name);
        for metric in family.get_metric() {
            let labels: Vec<&str> = metric.get_label().iter().map(prometheus::proto::LabelPair::name).collect();
            let mut declared: Vec<&str> = spec.labels.to_vec();
            declared.sort_unstable();
            assert_eq!(labels, declared, "{}", spec.name);
        }
    }
}

#[test]
fn docs_metrics_md_holds_the_catalogue() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md");
    let doc = std::fs::read_to_string(path).expect("docs/metrics.md");
    let table = doc
        .split_once(START)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(table, _)| table)
        .expect("docs/metrics.md has the generated-table markers");
    assert!(
        table == markdown(),
        "docs/metrics.md differs from the catalogue (scripts/update-metrics-doc.py rewrites it); replace the table between the markers with:\n{}",
        markdown()
    );
}

/// The Markdown table of every metric that `docs/metrics.md` holds (checked by a test).
fn markdown() -> String {
    let mut t = String::from("| metric | type | labels | what it counts |\n|---|---|---|---|\n");
    for spec in ALL.iter().copied().chain(PROCESS) {
        let labels: Vec<String> = spec.labels.iter().map(|l| format!("`{l}`")).collect();
        let kind = match spec.buckets {
            Buckets::None => spec.kind.as_str().to_string(),
            Buckets::Operation => "histogram (0.01…300 s, the semantic conventions')".into(),
            Buckets::Session => "histogram (`sessions.duration_buckets`, 1 s…24 h)".into(),
            Buckets::Overhead => "histogram (50 µs…250 ms)".into(),
            Buckets::ResponseBytes => "histogram (256 B…4 MiB)".into(),
            Buckets::Rounds => "histogram (2…10 rounds)".into(),
            Buckets::Polls => "histogram (1…500 polls)".into(),
        };
        t.push_str(&format!("| `{}` | {kind} | {} | {} |\n", spec.name, labels.join(", "), spec.help));
    }
    t
}
