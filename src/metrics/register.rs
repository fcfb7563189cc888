//! Registering the catalogue's metrics in the tap's own registry: each instrument is made from
//! its catalogue entry, never from a name written at the call site.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::catalogue;
use super::{OPERATION_BUCKETS, OVERHEAD_BUCKETS, RESPONSE_BYTES_BUCKETS};

#[cfg(test)]
thread_local! {
    /// The catalogue entries registered on this thread, for the test that every one is.
    pub(crate) static REGISTERED: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, spec: &catalogue::Spec, c: C) -> C {
    registry.register(Box::new(c.clone())).expect("unique metric");
    #[cfg(test)]
    REGISTERED.with(|r| r.borrow_mut().push(spec.name));
    #[cfg(not(test))]
    let _ = spec;
    c
}

fn opts(spec: &catalogue::Spec) -> Opts {
    Opts::new(spec.name, spec.help)
}

pub(super) fn counter_of(registry: &Registry, spec: &catalogue::Spec) -> IntCounterVec {
    debug_assert_eq!(spec.kind, catalogue::Kind::Counter, "{}", spec.name);
    register(registry, spec, IntCounterVec::new(opts(spec), spec.labels).expect("valid metric"))
}

pub(super) fn gauge_of(registry: &Registry, spec: &catalogue::Spec) -> IntGaugeVec {
    debug_assert_eq!(spec.kind, catalogue::Kind::Gauge, "{}", spec.name);
    register(registry, spec, IntGaugeVec::new(opts(spec), spec.labels).expect("valid metric"))
}

/// A gauge without labels.
pub(super) fn int_gauge_of(registry: &Registry, spec: &catalogue::Spec) -> prometheus::IntGauge {
    debug_assert!(spec.kind == catalogue::Kind::Gauge && spec.labels.is_empty(), "{}", spec.name);
    register(registry, spec, prometheus::IntGauge::with_opts(opts(spec)).expect("valid metric"))
}

/// A gauge of seconds or other fractions, with the spec's labels.
pub(super) fn float_gauge_of(registry: &Registry, spec: &catalogue::Spec) -> prometheus::GaugeVec {
    debug_assert_eq!(spec.kind, catalogue::Kind::Gauge, "{}", spec.name);
    register(registry, spec, prometheus::GaugeVec::new(opts(spec), spec.labels).expect("valid metric"))
}

/// The bucket bounds of a histogram (`session`: the configured session buckets).
pub(crate) fn bounds(spec: &catalogue::Spec, session: &[f64]) -> Vec<f64> {
    use catalogue::Buckets;
    match spec.buckets {
        Buckets::Operation => OPERATION_BUCKETS.to_vec(),
        Buckets::Session => session.to_vec(),
        Buckets::Overhead => OVERHEAD_BUCKETS.to_vec(),
        Buckets::ResponseBytes => RESPONSE_BYTES_BUCKETS.to_vec(),
        Buckets::Rounds => vec![2.0, 3.0, 4.0, 5.0, 10.0],
        Buckets::Polls => vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0],
        Buckets::None => Vec::new(),
    }
}

pub(super) fn histogram(registry: &Registry, spec: &catalogue::Spec, session: &[f64]) -> HistogramVec {
    debug_assert_eq!(spec.kind, catalogue::Kind::Histogram, "{}", spec.name);
    let opts = HistogramOpts::new(spec.name, spec.help).buckets(bounds(spec, session));
    register(registry, spec, HistogramVec::new(opts, spec.labels).expect("valid metric"))
}
