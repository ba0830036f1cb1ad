//! Metrics: Prometheus text at `GET /metrics`, and on Lambda the same names as CloudWatch
//! embedded-metric-format (EMF) log lines.
//!
//! One [`Metrics`] per service, with its own registry (`prometheus-client`, no global
//! recorder), so two services in one process (tests) count separately. The names are in
//! [`names`] and in `contract.json` (`metrics`), where the CDK app reads them for alarms:
//!
//! | name | kind | labels (Prometheus) / dimensions (EMF) |
//! |---|---|---|
//! | `tokens_issued` | counter | |
//! | `tokens_revoked` | counter | (unused tokens revoked: by `POST /tokens/revoke`, or superseded by an issue with `supersede=true`) |
//! | `validations` | counter | `result`: `valid`, `replayed`, or the refusal's `reason` |
//! | `reuse_detected` | counter | (a used token presented again by another attempt) |
//! | `store_operation_duration_seconds` | histogram, seconds | `operation`: `insert`, `consume`, `revoke`, `status`, `ready` |
//! | `store_errors` | counter | `operation`, `kind`: `unavailable`, `overloaded`, `outcome_unknown`, `duplicate`, `too_many_outstanding`, `internal` |
//! | `rate_limited` | counter | |
//! | `server_errors` | counter | (answers with a 5xx status) |
//! | `http_requests` | counter | `method`, `route`, `status` (Prometheus only) |
//! | `store_commits` | counter | (embedded store: durable commits, one fsync each; Prometheus only) |
//! | `store_commit_writes` | counter | (embedded store: writes those commits carried; Prometheus only) |
//!
//! Counters appear in the Prometheus text with the OpenMetrics `_total` suffix
//! (`tokens_issued_total`). In EMF every line has the dimension `FunctionName`
//! (`AWS_LAMBDA_FUNCTION_NAME`) plus the labels above; counters are `Count` with value 1,
//! durations `Milliseconds`. Format:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.

use crate::audit::LogSink;
use crate::store::{
    AttemptId, Consumed, Inserted, Revoked, StoreError, Stored, TokenRecord, TokenStore,
};
use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Metric names, as in `contract.json` `metrics` (without Prometheus' `_total` suffix).
pub mod names {
    /// Tokens issued (their records stored).
    pub const TOKENS_ISSUED: &str = "tokens_issued";
    /// Unused tokens revoked: by `POST /tokens/revoke`, or superseded by an issue with
    /// `supersede=true` (one per token it revoked).
    pub const TOKENS_REVOKED: &str = "tokens_revoked";
    /// Validations, by `result`.
    pub const VALIDATIONS: &str = "validations";
    /// A used token presented again by another attempt: the tamper signal of a one-time token.
    pub const REUSE_DETECTED: &str = "reuse_detected";
    /// Store call latency, seconds, by `operation`.
    pub const STORE_OPERATION_DURATION: &str = "store_operation_duration_seconds";
    /// Store calls that failed, by `operation` and `kind`.
    pub const STORE_ERRORS: &str = "store_errors";
    /// Requests refused by the per-client rate limit.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Answers with a 5xx status.
    pub const SERVER_ERRORS: &str = "server_errors";
    /// Every answer, by `method`, `route` and `status` (Prometheus only).
    pub const HTTP_REQUESTS: &str = "http_requests";
    /// The embedded store's durable commits, one fsync each (Prometheus only).
    pub const STORE_COMMITS: &str = "store_commits";
    /// The writes the embedded store's commits carried (Prometheus only); divided by
    /// [`STORE_COMMITS`], the writes per fsync.
    pub const STORE_COMMIT_WRITES: &str = "store_commit_writes";
    /// The EMF namespace (CloudWatch).
    pub const NAMESPACE: &str = "TokenService";
    /// The EMF dimension holding the Lambda function's name.
    pub const FUNCTION_NAME_DIMENSION: &str = "FunctionName";
}

/// The API routes named in `http_requests`; any other path is counted as `other`, so a
/// scanner cannot grow the label set.
const ROUTES: &[&str] =
    &["/tokens", "/tokens/status", "/tokens/revoke", "/health", "/health/ready", "/metrics"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreErrorLabels {
    operation: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: &'static str,
    status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Where EMF lines go and which function they name.
#[derive(Debug, Clone)]
pub struct Emf {
    /// The `FunctionName` dimension's value (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
    /// Where the lines are written (stdout on Lambda, where CloudWatch Logs reads them).
    pub sink: LogSink,
}

/// The service's metrics; see the module documentation.
pub struct Metrics {
    registry: Registry,
    issued: Counter,
    revoked: Counter,
    validations: Family<ResultLabel, Counter>,
    reuse: Counter,
    store_duration: HistogramFamily<OperationLabel>,
    store_errors: Family<StoreErrorLabels, Counter>,
    rate_limited: Counter,
    server_errors: Counter,
    requests: Family<RequestLabels, Counter>,
    emf: Option<Emf>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("emf", &self.emf).finish_non_exhaustive()
    }
}

fn store_histogram() -> Histogram {
    // 0.25 ms to about 8 s: an fsync, a DynamoDB call, a 5 s timeout.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    /// Fresh metrics, also written as EMF lines when `emf` is set.
    pub fn new(emf: Option<Emf>) -> Self {
        use names::*;
        let mut registry = Registry::default();
        let issued = Counter::default();
        registry.register(TOKENS_ISSUED, "Tokens issued", issued.clone());
        let revoked = Counter::default();
        registry.register(
            TOKENS_REVOKED,
            "Unused tokens revoked, by a revoke call or superseded",
            revoked.clone(),
        );
        let validations = Family::<ResultLabel, Counter>::default();
        registry.register(
            VALIDATIONS,
            "Validations by result: valid, replayed, or the refusal reason",
            validations.clone(),
        );
        let reuse = Counter::default();
        registry.register(
            REUSE_DETECTED,
            "Used tokens presented again by another attempt",
            reuse.clone(),
        );
        let store_duration: HistogramFamily<OperationLabel> =
            Family::new_with_constructor(store_histogram);
        registry.register_with_unit(
            STORE_OPERATION_DURATION.trim_end_matches("_seconds"),
            "Store call latency by operation",
            Unit::Seconds,
            store_duration.clone(),
        );
        let store_errors = Family::<StoreErrorLabels, Counter>::default();
        registry.register(STORE_ERRORS, "Failed store calls", store_errors.clone());
        let rate_limited = Counter::default();
        registry.register(
            RATE_LIMITED,
            "Requests over the per-client rate limit",
            rate_limited.clone(),
        );
        let server_errors = Counter::default();
        registry.register(SERVER_ERRORS, "Answers with a 5xx status", server_errors.clone());
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(HTTP_REQUESTS, "Answers by method, route and status", requests.clone());
        Self {
            registry,
            issued,
            revoked,
            validations,
            reuse,
            store_duration,
            store_errors,
            rate_limited,
            server_errors,
            requests,
            emf,
        }
    }

    /// Also exports the embedded store's commit counters, read at each scrape.
    #[cfg(feature = "embedded-store")]
    #[must_use]
    pub fn with_commits(mut self, commits: Arc<crate::store::embedded::Commits>) -> Self {
        use commit_collector::CommitCollector;
        self.registry.register_collector(Box::new(CommitCollector(commits)));
        self
    }

    /// The metrics in the OpenMetrics text format (ending in `# EOF`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// A token was issued.
    pub fn issued(&self) {
        self.issued.inc();
        self.emit(names::TOKENS_ISSUED, None, 1.0, "Count");
    }

    /// An unused token was revoked (by a revoke call, or superseded).
    pub fn revoked(&self) {
        self.revoked.inc();
        self.emit(names::TOKENS_REVOKED, None, 1.0, "Count");
    }

    /// A validation ended with `result` (`valid`, `replayed`, or a reason's wire name).
    pub fn validation(&self, result: &'static str) {
        self.validations.get_or_create(&ResultLabel { result }).inc();
        self.emit(names::VALIDATIONS, Some(("result", result)), 1.0, "Count");
    }

    /// A used token was presented again by another attempt.
    pub fn reuse_detected(&self) {
        self.reuse.inc();
        self.emit(names::REUSE_DETECTED, None, 1.0, "Count");
    }

    /// A request was refused by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
        self.emit(names::RATE_LIMITED, None, 1.0, "Count");
    }

    /// An answer was sent with `status`. Call [`Self::request`] for the route label.
    pub fn response(&self, status: StatusCode) {
        if status.is_server_error() {
            self.server_errors.inc();
            self.emit(names::SERVER_ERRORS, None, 1.0, "Count");
        }
    }

    /// An answer to `method path` was sent with `status`.
    pub fn request(&self, method: &Method, path: &str, status: StatusCode) {
        let route = ROUTES.iter().find(|r| **r == path).copied().unwrap_or("other");
        let method = match *method {
            Method::GET | Method::POST | Method::HEAD | Method::OPTIONS => method.as_str(),
            _ => "other",
        };
        let labels = RequestLabels { method: method.to_owned(), route, status: status.as_u16() };
        self.requests.get_or_create(&labels).inc();
    }

    fn store_call(&self, operation: &'static str, started: Instant, error: Option<&StoreError>) {
        let seconds = started.elapsed().as_secs_f64();
        self.store_duration.get_or_create(&OperationLabel { operation }).observe(seconds);
        self.emit(
            names::STORE_OPERATION_DURATION,
            Some(("operation", operation)),
            seconds * 1000.0,
            "Milliseconds",
        );
        if let Some(error) = error {
            let kind = match error {
                StoreError::Duplicate => "duplicate",
                StoreError::TooManyOutstanding => "too_many_outstanding",
                StoreError::Unavailable(_) => "unavailable",
                StoreError::Overloaded => "overloaded",
                StoreError::OutcomeUnknown(_) => "outcome_unknown",
                StoreError::Internal(_) => "internal",
            };
            self.store_errors.get_or_create(&StoreErrorLabels { operation, kind }).inc();
            self.emit(names::STORE_ERRORS, Some(("operation", operation)), 1.0, "Count");
        }
    }

    /// Writes one EMF line for `name` when EMF is on.
    fn emit(&self, name: &str, dimension: Option<(&str, &str)>, value: f64, unit: &str) {
        let Some(emf) = &self.emf else { return };
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let mut dimensions = vec![names::FUNCTION_NAME_DIMENSION];
        let mut line = serde_json::Map::new();
        line.insert(names::FUNCTION_NAME_DIMENSION.into(), emf.function_name.clone().into());
        if let Some((key, label)) = dimension {
            dimensions.push(key);
            line.insert(key.into(), label.into());
        }
        line.insert(name.into(), serde_json::json!(value));
        line.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": millis as u64,
                "CloudWatchMetrics": [{
                    "Namespace": names::NAMESPACE,
                    "Dimensions": [dimensions],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }],
            }),
        );
        emf.sink.write_line(&serde_json::Value::Object(line).to_string());
    }
}

#[cfg(feature = "embedded-store")]
mod commit_collector {
    use super::names;
    use crate::store::embedded::Commits;
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use std::sync::Arc;

    /// Reads the embedded store's own counters at each scrape, so the writer thread counts with
    /// two relaxed atomic adds per commit and knows nothing of Prometheus.
    #[derive(Debug)]
    pub(super) struct CommitCollector(pub(super) Arc<Commits>);

    impl Collector for CommitCollector {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            for (name, help, value) in [
                (
                    names::STORE_COMMITS,
                    "Durable commits of the embedded store (one fsync each)",
                    self.0.commits(),
                ),
                (
                    names::STORE_COMMIT_WRITES,
                    "Writes carried by the embedded store's commits",
                    self.0.writes(),
                ),
            ] {
                let counter = ConstCounter::new(value);
                counter.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    counter.metric_type(),
                )?)?;
            }
            Ok(())
        }
    }
}

/// A [`TokenStore`] that times every call of the store it wraps and counts its errors.
pub struct MeteredStore {
    inner: Arc<dyn TokenStore>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TokenStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl TokenStore for MeteredStore {
    async fn insert(
        &self,
        record: &TokenRecord,
        supersede: bool,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        let started = Instant::now();
        let result = self.inner.insert(record, supersede, now).await;
        self.metrics.store_call("insert", started, result.as_ref().err());
        result
    }

    async fn revoke(&self, uuid: Uuid, now: i64) -> Result<Revoked, StoreError> {
        let started = Instant::now();
        let result = self.inner.revoke(uuid, now).await;
        self.metrics.store_call("revoke", started, result.as_ref().err());
        result
    }

    async fn status(&self, uuid: Uuid) -> Result<Option<Stored>, StoreError> {
        let started = Instant::now();
        let result = self.inner.status(uuid).await;
        self.metrics.store_call("status", started, result.as_ref().err());
        result
    }

    async fn consume(
        &self,
        uuid: Uuid,
        attempt: &AttemptId,
        now: i64,
    ) -> Result<Consumed, StoreError> {
        let started = Instant::now();
        let result = self.inner.consume(uuid, attempt, now).await;
        self.metrics.store_call("consume", started, result.as_ref().err());
        result
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.ready().await;
        self.metrics.store_call("ready", started, result.as_ref().err());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_openmetrics_text_with_their_labels() {
        let metrics = Metrics::new(None);
        metrics.issued();
        metrics.issued();
        metrics.validation("valid");
        metrics.validation("already_used");
        metrics.reuse_detected();
        metrics.request(&Method::GET, "/tokens", StatusCode::OK);
        metrics.request(&Method::GET, "/wp-admin", StatusCode::NOT_FOUND);
        metrics.response(StatusCode::SERVICE_UNAVAILABLE);
        metrics.response(StatusCode::NOT_FOUND);
        metrics.store_call("consume", Instant::now(), Some(&StoreError::Overloaded));
        let text = metrics.encode();
        for line in [
            "tokens_issued_total 2",
            "validations_total{result=\"valid\"} 1",
            "validations_total{result=\"already_used\"} 1",
            "reuse_detected_total 1",
            "http_requests_total{method=\"GET\",route=\"/tokens\",status=\"200\"} 1",
            "http_requests_total{method=\"GET\",route=\"other\",status=\"404\"} 1",
            "rate_limited_total 0",
            "server_errors_total 1",
            "# TYPE store_operation_duration_seconds histogram",
            "store_operation_duration_seconds_count{operation=\"consume\"} 1",
            "store_errors_total{operation=\"consume\",kind=\"overloaded\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn the_embedded_stores_commits_and_their_writes_are_read_at_each_scrape() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::embedded::EmbeddedStore::open(dir.path().join("t.redb")).unwrap();
        let metrics = Metrics::new(None).with_commits(store.commits());
        let has = |text: &str, line: &str| text.lines().any(|l| l == line);
        let text = metrics.encode();
        assert!(has(&text, "# TYPE store_commits counter"), "{text}");
        assert!(has(&text, "store_commits_total 0"), "{text}");
        assert!(has(&text, "store_commit_writes_total 0"), "{text}");
        let record = TokenRecord { uuid: Uuid::new_v4(), expiry: 2_000, pair: None };
        store.insert(&record, false, 1_000).await.unwrap();
        store.status(record.uuid).await.unwrap();
        let text = metrics.encode();
        assert!(has(&text, "store_commits_total 1"), "{text}");
        assert!(has(&text, "store_commit_writes_total 1"), "{text}");
    }

    #[test]
    fn emf_lines_carry_the_function_name_and_one_metric_each() {
        let sink = LogSink::memory();
        let metrics =
            Metrics::new(Some(Emf { function_name: "fn-prod".into(), sink: sink.clone() }));
        metrics.reuse_detected();
        metrics.validation("already_used");
        let lines = sink.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let mut reuse: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        let timestamp = reuse["_aws"].as_object_mut().unwrap().remove("Timestamp").unwrap();
        assert!(timestamp.as_u64().unwrap() > 1_700_000_000_000, "{timestamp}");
        assert_eq!(
            reuse,
            serde_json::json!({
                "_aws": {"CloudWatchMetrics": [{
                    "Namespace": "TokenService",
                    "Dimensions": [["FunctionName"]],
                    "Metrics": [{"Name": "reuse_detected", "Unit": "Count"}],
                }]},
                "FunctionName": "fn-prod",
                "reuse_detected": 1.0,
            })
        );
        let validation: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(
            validation["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["FunctionName", "result"]])
        );
        assert_eq!(validation["result"], "already_used");
        assert_eq!(validation["validations"], 1.0);
    }
}
