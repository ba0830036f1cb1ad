//! The production store: one DynamoDB table, one item per issued token.
//!
//! Item: `uuid` (String, partition key), `expiry` (Number, epoch seconds, the table's TTL
//! attribute), `state` (String: `unused`, `used` or `revoked`), and once used `usedAt` (Number,
//! epoch seconds) and `attemptId` (String). Both operations are single conditional writes, so
//! DynamoDB itself serializes them per item
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html>):
//!
//! - insert: `PutItem` with `attribute_not_exists(uuid)`; on a failed condition the old item
//!   (`ReturnValuesOnConditionCheckFailure=ALL_OLD`) tells our own earlier attempt (same expiry)
//!   from a collision;
//! - consume: ONE `UpdateItem` setting `state = used, usedAt, attemptId` with
//!   `attribute_exists(uuid) AND state = unused AND expiry > :now`; on a failed condition the old
//!   item says whether the token is unknown, expired, revoked or used, and by which attempt. There
//!   is no read-then-write, and no item is ever deleted to consume it.
//!
//! Retries. Both writes are idempotent per attempt, so the SDK's standard retries (up to
//! [`MAX_ATTEMPTS`] attempts of at most [`ATTEMPT_TIMEOUT`] each, all within
//! [`OPERATION_TIMEOUT`]) are safe: a retried consume whose first attempt was applied finds the
//! item used by its own attempt id, which the service answers as that attempt's success. An
//! interceptor notes every attempt that may have reached DynamoDB without an answer (a timeout,
//! a connection lost after sending, DynamoDB's `InternalServerError`); if the call then ends in an
//! error, the consume's outcome is [`StoreError::OutcomeUnknown`], never a guess. Only an error
//! that proves nothing was written (throttling, a refused connection) is
//! [`StoreError::Unavailable`].
//!
//! Time budget: a call ends within [`OPERATION_TIMEOUT`] (5 s), well inside the Lambda's
//! timeout (10 s, `infra/`) and API Gateway's 29 s integration timeout
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html>), so a slow
//! DynamoDB is answered by this service's own JSON `503`, never by API Gateway's bare `504`.
//!
//! TTL deletes expired items within days, not seconds, so expiry is enforced by the condition;
//! TTL only cleans up.

use super::{AttemptId, Cause, Consumed, StoreError, TokenRecord, TokenStore};
use crate::contract::{PARTITION_KEY, TTL_ATTRIBUTE};
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents, SharedHttpClient};
use aws_sdk_dynamodb::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_smithy_http_client::{Builder, tls};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// Attribute: the record's state, a String: [`UNUSED`], [`USED`] or [`REVOKED`].
pub const STATE: &str = "state";
/// Attribute: when the token was used, a Number of epoch seconds.
pub const USED_AT: &str = "usedAt";
/// Attribute: the attempt id that used the token, a String.
pub const ATTEMPT_ID: &str = "attemptId";
/// Attribute: when the token was revoked, a Number of epoch seconds.
pub const REVOKED_AT: &str = "revokedAt";
/// `state` of a token not yet used.
pub const UNUSED: &str = "unused";
/// `state` of a used token.
pub const USED: &str = "used";
/// `state` of a revoked token.
pub const REVOKED: &str = "revoked";

/// Longest wait for one attempt of a DynamoDB call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a DynamoDB call including retries: after this a request fails with 503.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per call in the SDK's standard retry mode (1 try + 2 retries, with backoff).
pub const MAX_ATTEMPTS: u32 = 3;

/// A [`TokenStore`] on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// The SDK's HTTPS client: rustls with the ring crypto provider (smaller than the default
/// aws-lc, and pure Rust plus assembly: it cross-compiles to arm64 without a C toolchain).
pub fn https_client() -> SharedHttpClient {
    Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration this service uses: the standard credential, region and endpoint chain
/// (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, ...) with the explicit
/// timeouts and retries above.
///
/// # Errors
/// A message when no region is configured, so that the mistake shows at start-up rather than
/// on the first request.
pub async fn sdk_config() -> Result<SdkConfig, String> {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await;
    if config.region().is_none() {
        return Err("no AWS region configured: set AWS_REGION (or a profile's region)".into());
    }
    Ok(config)
}

impl DynamoStore {
    /// A store on `table` through `config` (see [`sdk_config`]).
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self { client: Client::new(config), table: table.into() }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the table exists (`DescribeTable`), for a clear start-up error instead of failing
    /// requests.
    ///
    /// # Errors
    /// `Unavailable`/`Internal` if DynamoDB cannot answer.
    pub async fn table_exists(&self) -> Result<bool, StoreError> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                Ok(false)
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// Creates the table (on-demand billing, key `uuid`) with TTL on `expiry` if it does not
    /// exist, and waits until it is active. Returns whether it created it.
    ///
    /// # Errors
    /// `Unavailable`/`Internal` if DynamoDB refuses or cannot be reached.
    pub async fn create_table_if_missing(&self) -> Result<bool, StoreError> {
        let exists = self.client.describe_table().table_name(&self.table).send().await;
        match exists {
            Ok(_) => return Ok(false),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            }
            Err(e) => return Err(classify(e)),
        }
        let key = PARTITION_KEY;
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(internal)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(internal)?,
            )
            .send()
            .await
            .map_err(classify)?;
        self.client
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(Duration::from_secs(60))
            .await
            .map_err(internal)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .map_err(internal)?,
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(true)
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        let reached = Reached::default();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(record.uuid.to_string()))
            .item(TTL_ATTRIBUTE, AttributeValue::N(record.expiry.to_string()))
            .item(STATE, AttributeValue::S(UNUSED.into()))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", PARTITION_KEY)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .customize()
            .interceptor(reached.clone())
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                // Our own earlier attempt, whose answer was lost, stored the same record.
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let old = failed.item.unwrap_or_default();
                    if number(&old, TTL_ATTRIBUTE) == Some(record.expiry) {
                        Ok(())
                    } else {
                        Err(StoreError::Duplicate)
                    }
                }
                other => Err(reached.error(classify_code(other.code().map(str::to_owned), other))),
            },
            Err(e) => Err(reached.error(classify(e))),
        }
    }

    async fn consume(
        &self,
        uuid: Uuid,
        attempt: &AttemptId,
        now: i64,
    ) -> Result<Consumed, StoreError> {
        let reached = Reached::default();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(uuid.to_string()))
            .update_expression("SET #state = :used, #usedAt = :now, #attempt = :attempt")
            .condition_expression("attribute_exists(#id) AND #state = :unused AND #expiry > :now")
            .expression_attribute_names("#id", PARTITION_KEY)
            .expression_attribute_names("#expiry", TTL_ATTRIBUTE)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#usedAt", USED_AT)
            .expression_attribute_names("#attempt", ATTEMPT_ID)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":used", AttributeValue::S(USED.into()))
            .expression_attribute_values(":unused", AttributeValue::S(UNUSED.into()))
            .expression_attribute_values(":attempt", AttributeValue::S(attempt.as_str().into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .customize()
            .interceptor(reached.clone())
            .send()
            .await;
        match update {
            Ok(_) => Ok(Consumed::Consumed),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => match failed.item {
                    None => Ok(Consumed::NotFound),
                    Some(old) => found(&old, now),
                },
                other => Err(reached.error(classify_code(other.code().map(str::to_owned), other))),
            },
            Err(e) => Err(reached.error(classify(e))),
        }
    }

    async fn ready(&self) -> Result<(), StoreError> {
        if self.table_exists().await? {
            Ok(())
        } else {
            Err(internal(format!("table {} does not exist", self.table)))
        }
    }
}

/// What an item that failed the consume condition says, at `now` (epoch seconds).
fn found(item: &HashMap<String, AttributeValue>, now: i64) -> Result<Consumed, StoreError> {
    let malformed = || internal(format!("malformed item: {item:?}"));
    let expiry = number(item, TTL_ATTRIBUTE).ok_or_else(malformed)?;
    if now >= expiry {
        return Ok(Consumed::Expired);
    }
    match item.get(STATE).and_then(|v| v.as_s().ok()).map(String::as_str) {
        Some(USED) => Ok(Consumed::Used {
            at: number(item, USED_AT).ok_or_else(malformed)?,
            attempt: AttemptId::stored(
                item.get(ATTEMPT_ID).and_then(|v| v.as_s().ok()).ok_or_else(malformed)?.as_str(),
            ),
        }),
        Some(REVOKED) => {
            Ok(Consumed::Revoked { at: number(item, REVOKED_AT).ok_or_else(malformed)? })
        }
        _ => Err(malformed()),
    }
}

/// A Number attribute as `i64`.
fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Notes, per call, whether any attempt may have reached DynamoDB without its answer arriving:
/// then a failed write's outcome is unknown. An SDK interceptor, so it sees every attempt of the
/// SDK's own retries.
#[derive(Debug, Clone, Default)]
struct Reached(Arc<AtomicBool>);

impl Reached {
    /// `error` as this call's failure: [`StoreError::OutcomeUnknown`] if an attempt may have
    /// been applied.
    fn error(&self, error: StoreError) -> StoreError {
        match error {
            StoreError::Unavailable(cause) | StoreError::Internal(cause)
                if self.0.load(Ordering::SeqCst) =>
            {
                StoreError::OutcomeUnknown(cause)
            }
            other => other,
        }
    }
}

impl Intercept for Reached {
    fn name(&self) -> &'static str {
        "Reached"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Err(error)) = context.output_or_error() else { return Ok(()) };
        let proven_unapplied = if let Some(operation) = error.as_operation_error() {
            // DynamoDB answered. Only its InternalServerError leaves the write in doubt
            // (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>).
            let code = operation
                .downcast_ref::<UpdateItemError>()
                .and_then(|e| e.code())
                .or_else(|| operation.downcast_ref::<PutItemError>().and_then(|e| e.code()));
            code != Some("InternalServerError")
        } else {
            error.as_connector_error().is_some_and(|e| refused_connection(e))
        };
        if !proven_unapplied {
            self.0.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Whether `error` failed while connecting, so no request was sent.
fn refused_connection(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<hyper_util::client::legacy::Error>().is_some_and(|e| e.is_connect()) {
            return true;
        }
        source = e.source();
    }
    false
}

/// Sorts an SDK failure into "try again later" and "something is wrong". For writes,
/// [`Reached::error`] then turns either into an unknown outcome if an attempt may have landed.
fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(e.into())
        }
        SdkError::ServiceError(service) => {
            let err = service.into_err();
            classify_code(err.code().map(str::to_owned), err)
        }
        other => StoreError::Internal(other.into()),
    }
}

/// DynamoDB error codes that mean "retry later"
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>).
fn classify_code(code: Option<String>, cause: impl Into<Cause>) -> StoreError {
    const RETRYABLE: [&str; 6] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    ];
    if code.is_some_and(|code| RETRYABLE.contains(&code.as_str())) {
        StoreError::Unavailable(cause.into())
    } else {
        StoreError::Internal(cause.into())
    }
}

fn internal(cause: impl Into<Cause>) -> StoreError {
    StoreError::Internal(cause.into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::conformance;
    use aws_config::Region;
    use aws_sdk_dynamodb::config::Credentials;

    /// DynamoDB Local's endpoint, from `DYNAMODB_ENDPOINT` (set by `scripts/test`, which starts
    /// and stops DynamoDB Local).
    pub(crate) fn endpoint() -> String {
        std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
            panic!(
                "DYNAMODB_ENDPOINT is not set: run scripts/test, or start DynamoDB Local with \
                 `scripts/dynamodb-local.sh start` and export DYNAMODB_ENDPOINT=<its URL>"
            )
        })
    }

    /// SDK configuration for DynamoDB Local at `endpoint`, with dummy credentials.
    pub(crate) async fn local_config(endpoint: &str) -> SdkConfig {
        // DynamoDB Local is a JVM on the same 2 cores as the tests: a cold one answers 64
        // concurrent calls slower than DynamoDB does, so tests allow it more time.
        local_config_with(endpoint, Duration::from_secs(15), Duration::from_secs(30)).await
    }

    /// As [`local_config`], with the given attempt and operation timeouts.
    pub(crate) async fn local_config_with(
        endpoint: &str,
        attempt: Duration,
        operation: Duration,
    ) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(operation)
                    .build(),
            )
            .load()
            .await
    }

    /// A store on a fresh table of its own in DynamoDB Local.
    pub(crate) async fn fresh_store() -> DynamoStore {
        let store =
            DynamoStore::new(&local_config(&endpoint()).await, format!("t-{}", Uuid::new_v4()));
        assert!(store.create_table_if_missing().await.unwrap());
        store
    }

    conformance::suite!(async { ((), fresh_store().await) });

    #[tokio::test]
    async fn creating_an_existing_table_is_a_no_op() {
        let store = fresh_store().await;
        assert!(!store.create_table_if_missing().await.unwrap());
    }

    #[tokio::test]
    async fn items_hold_uuid_as_a_string_and_expiry_as_epoch_seconds() {
        let store = fresh_store().await;
        let uuid = Uuid::new_v4();
        store.insert(TokenRecord { uuid, expiry: 1_234_567_890 }).await.unwrap();
        let item = store
            .client
            .get_item()
            .table_name(store.table())
            .key(PARTITION_KEY, AttributeValue::S(uuid.to_string()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        assert_eq!(item[PARTITION_KEY], AttributeValue::S(uuid.to_string()));
        assert_eq!(item[TTL_ATTRIBUTE], AttributeValue::N("1234567890".into()));
        assert_eq!(item[STATE], AttributeValue::S(UNUSED.into()));
        let ttl =
            store.client.describe_time_to_live().table_name(store.table()).send().await.unwrap();
        let ttl = ttl.time_to_live_description.unwrap();
        assert_eq!(ttl.attribute_name.as_deref(), Some(TTL_ATTRIBUTE));
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable_within_the_operation_timeout() {
        // Nothing listens on port 9 (discard) on loopback: connections are refused at once.
        let config =
            local_config_with("http://127.0.0.1:9", ATTEMPT_TIMEOUT, OPERATION_TIMEOUT).await;
        let store = DynamoStore::new(&config, "TokenTable");
        let started = std::time::Instant::now();
        let refused = store.insert(TokenRecord { uuid: Uuid::new_v4(), expiry: 2_000 }).await;
        assert!(matches!(refused, Err(StoreError::Unavailable(_))), "{refused:?}");
        let consumed = store.consume(Uuid::new_v4(), &AttemptId::generate(), 1_000).await;
        assert!(matches!(consumed, Err(StoreError::Unavailable(_))), "{consumed:?}");
        assert!(started.elapsed() < 2 * OPERATION_TIMEOUT);
    }

    #[tokio::test]
    async fn a_missing_table_is_an_internal_error_not_a_used_token() {
        let store = DynamoStore::new(&local_config(&endpoint()).await, "no-such-table");
        let result = store.consume(Uuid::new_v4(), &AttemptId::generate(), 1_000).await;
        assert!(matches!(result, Err(StoreError::Internal(_))), "{result:?}");
    }
}
