//! Prometheus metrics (`GET /metrics`, text format, via `prometheus-client`).
//!
//! Counters on the request paths are plain atomics obtained once at startup, so the fetch path
//! stays lock-free; Raft and state gauges are read when a scrape comes in.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KmsCallLabels {
    operation: &'static str,
    /// The KEK: a handful per cluster (current and not yet retired), so bounded.
    kek: String,
    outcome: &'static str,
}

/// Counters of one request kind, by outcome.
#[derive(Debug, Clone)]
pub struct Outcomes {
    pub ok: Counter,
    pub not_modified: Counter,
    pub client_error: Counter,
    pub unavailable: Counter,
    pub server_error: Counter,
}

impl Outcomes {
    fn new(family: &Family<Outcome, Counter>) -> Self {
        let get = |outcome| family.get_or_create(&Outcome { outcome }).clone();
        Outcomes {
            ok: get("ok"),
            not_modified: get("not_modified"),
            client_error: get("client_error"),
            unavailable: get("unavailable"),
            server_error: get("server_error"),
        }
    }

    /// Counts one answer by its HTTP status.
    pub fn count(&self, status: u16) {
        match status {
            304 => self.not_modified.inc(),
            503 => self.unavailable.inc(),
            s if s >= 500 => self.server_error.inc(),
            s if s >= 400 => self.client_error.inc(),
            _ => self.ok.inc(),
        };
    }
}

/// Gauges refreshed at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    pub term: Gauge,
    pub is_leader: Gauge,
    pub last_log_index: Gauge,
    pub applied_index: Gauge,
    pub snapshot_index: Gauge,
    pub purged_index: Gauge,
    pub members: Gauge,
    pub tenants: Gauge,
    pub configs: Gauge,
    pub versions: Gauge,
    pub watch_subscriptions: Gauge,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub fetch: Outcomes,
    pub writes: Outcomes,
    /// Proposals per Raft entry (how well writes are batched).
    pub batch_size: Histogram,
    pub gauges: Gauges,
    kms_calls: Family<KmsCallLabels, Counter>,
    kms_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("conflux");
        let fetch = Family::<Outcome, Counter>::default();
        let writes = Family::<Outcome, Counter>::default();
        registry.register("fetch_requests", "Fetch requests by outcome", fetch.clone());
        registry.register(
            "write_requests",
            "Management writes by outcome",
            writes.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "raft_batch_proposals",
            "Client proposals per Raft entry",
            batch_size.clone(),
        );
        let gauges = Gauges::default();
        let g = &gauges;
        for (name, help, gauge) in [
            ("raft_term", "Current Raft term", &g.term),
            ("raft_is_leader", "1 on the leader", &g.is_leader),
            (
                "raft_last_log_index",
                "Index of the last log entry",
                &g.last_log_index,
            ),
            (
                "raft_applied_index",
                "Index of the last applied entry (the node's revision)",
                &g.applied_index,
            ),
            (
                "raft_snapshot_index",
                "Last log index covered by the current snapshot",
                &g.snapshot_index,
            ),
            (
                "raft_purged_index",
                "Last log index deleted from the log (a member behind it needs a snapshot)",
                &g.purged_index,
            ),
            (
                "cluster_members",
                "Members (voters and learners) in the membership",
                &g.members,
            ),
            ("tenants", "Tenants in the config plane", &g.tenants),
            ("configs", "Configs in the config plane", &g.configs),
            (
                "versions",
                "Stored versions in the config plane",
                &g.versions,
            ),
            (
                "watch_subscriptions",
                "Open watch subscriptions on this node (all transports)",
                &g.watch_subscriptions,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        let kms_calls = Family::<KmsCallLabels, Counter>::default();
        registry.register(
            "kms_requests",
            "Calls to the KMS (data key generation, unwrap, rewrap) by operation, KEK and outcome",
            kms_calls.clone(),
        );
        let kms_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "kms_request_duration_seconds",
            "Duration of calls to the KMS",
            kms_seconds.clone(),
        );
        Metrics {
            fetch: Outcomes::new(&fetch),
            writes: Outcomes::new(&writes),
            batch_size,
            gauges,
            registry,
            kms_calls,
            kms_seconds,
        }
    }

    /// Counts one call to the KMS (the observer of `conflux_kms::Kms`).
    pub fn observe_kms_call(&self, call: &conflux_kms::KmsCall<'_>) {
        self.kms_calls
            .get_or_create(&KmsCallLabels {
                operation: call.operation,
                kek: call.kek_id.to_owned(),
                outcome: call.outcome,
            })
            .inc();
        self.kms_seconds.observe(call.duration.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
