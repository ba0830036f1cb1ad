//! The production store: one DynamoDB table, one item per unused token.
//!
//! Item: `uuid` (String, partition key) and `expiry` (Number, epoch seconds, the table's TTL
//! attribute). Both operations are single conditional writes, so DynamoDB itself serializes
//! them per item (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html>):
//!
//! - insert: `PutItem` with `attribute_not_exists(uuid)`;
//! - consume: ONE `DeleteItem` with `attribute_exists(uuid) AND expiry > :now`, returning the old
//!   item when the condition fails (`ReturnValuesOnConditionCheckFailure=ALL_OLD`) to tell an
//!   expired token from a used one. There is no read-then-delete.
//!
//! TTL deletes expired items within days, not seconds, so expiry is enforced by the condition;
//! TTL only cleans up. Throttling, timeouts and unreachable endpoints become
//! [`StoreError::Unavailable`] (HTTP 503); the SDK's standard retry mode retries them first.

use super::{Cause, Consumed, StoreError, TokenRecord, TokenStore};
use crate::contract::{PARTITION_KEY, TTL_ATTRIBUTE};
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_smithy_http_client::{Builder, tls};
use std::time::Duration;
use uuid::Uuid;

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
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(record.uuid.to_string()))
            .item(TTL_ATTRIBUTE, AttributeValue::N(record.expiry.to_string()))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", PARTITION_KEY)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(StoreError::Duplicate)
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn consume(&self, uuid: Uuid, now: i64) -> Result<Consumed, StoreError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(uuid.to_string()))
            .condition_expression("attribute_exists(#id) AND #expiry > :now")
            .expression_attribute_names("#id", PARTITION_KEY)
            .expression_attribute_names("#expiry", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match delete {
            Ok(_) => Ok(Consumed::Consumed),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                // The old item is returned only if it exists; then it failed on expiry.
                DeleteItemError::ConditionalCheckFailedException(failed) => {
                    Ok(if failed.item().is_some() { Consumed::Expired } else { Consumed::NotFound })
                }
                other => Err(classify_code(other.code().map(str::to_owned), other)),
            },
            Err(e) => Err(classify(e)),
        }
    }
}

/// Sorts an SDK failure into "try again later" and "something is wrong".
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
        let consumed = store.consume(Uuid::new_v4(), 1_000).await;
        assert!(matches!(consumed, Err(StoreError::Unavailable(_))), "{consumed:?}");
        assert!(started.elapsed() < 2 * OPERATION_TIMEOUT);
    }

    #[tokio::test]
    async fn a_missing_table_is_an_internal_error_not_a_used_token() {
        let store = DynamoStore::new(&local_config(&endpoint()).await, "no-such-table");
        let result = store.consume(Uuid::new_v4(), 1_000).await;
        assert!(matches!(result, Err(StoreError::Internal(_))), "{result:?}");
    }
}
