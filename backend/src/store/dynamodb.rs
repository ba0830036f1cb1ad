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

use super::{
    AttemptId, Cause, Consumed, Inserted, MAX_OUTSTANDING_PER_PAIR, Pair, Revoked, State,
    StoreError, Stored, TokenRecord, TokenStore,
};
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
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, Update,
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
/// Attribute: the purpose a token is bound to, a String (only with a subject).
pub const PURPOSE: &str = "purpose";
/// Attribute: the subject a token is bound to, a String (only with a purpose).
pub const SUBJECT: &str = "subject";
/// Attribute of a pair item: its unused tokens, a Map of uuid to expiry (Number).
pub const OUTSTANDING: &str = "outstanding";
/// Attribute of a pair item: a Number incremented by every write, for optimistic locking.
pub const VERSION: &str = "version";
/// Prefix of a pair item's key: `pair#<purpose>#<subject>` (a purpose never holds `#`).
pub const PAIR_PREFIX: &str = "pair#";
/// How often an insert into a pair is tried in all when concurrent ones changed the pair. Each
/// lost try is another insert's win, except that DynamoDB may cancel conflicting transactions
/// with none of them winning (`TransactionConflict`): twice the 8 contenders the tests race.
/// Bounded in time too, by [`OPERATION_TIMEOUT`].
pub const PAIR_TRIES: usize = 16;
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
    /// The one conditional write of consume and revoke: `UpdateItem` setting `state = to` and
    /// the attributes `set`, on the condition `attribute_exists(uuid) AND state = unused AND
    /// expiry > :now`. `None` when it was applied; `Some(old item)` when the condition failed
    /// (`ReturnValuesOnConditionCheckFailure=ALL_OLD`; `Some(None)`: no item).
    async fn change_unused(
        &self,
        uuid: Uuid,
        now: i64,
        to: &str,
        set: &[(&str, AttributeValue)],
    ) -> Result<Option<Option<HashMap<String, AttributeValue>>>, StoreError> {
        let assignments: Vec<String> = (0..set.len()).map(|i| format!("#a{i} = :a{i}")).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(uuid.to_string()))
            .update_expression(format!("SET #state = :to, {}", assignments.join(", ")))
            .condition_expression("attribute_exists(#id) AND #state = :unused AND #expiry > :now")
            .expression_attribute_names("#id", PARTITION_KEY)
            .expression_attribute_names("#expiry", TTL_ATTRIBUTE)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":to", AttributeValue::S(to.into()))
            .expression_attribute_values(":unused", AttributeValue::S(UNUSED.into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (i, (name, value)) in set.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#a{i}"), *name)
                .expression_attribute_values(format!(":a{i}"), value.clone());
        }
        let reached = Reached::default();
        match update.customize().interceptor(reached.clone()).send().await {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => Ok(Some(failed.item)),
                other => Err(reached.error(classify_code(other.code().map(str::to_owned), other))),
            },
            Err(e) => Err(reached.error(classify(e))),
        }
    }

    /// A record without a pair: one conditional `PutItem`.
    async fn put(&self, record: &TokenRecord) -> Result<Inserted, StoreError> {
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
            Ok(_) => Ok(Inserted::default()),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                // Our own earlier attempt, whose answer was lost, stored the same record.
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let old = failed.item.unwrap_or_default();
                    if number(&old, TTL_ATTRIBUTE) == Some(record.expiry) {
                        Ok(Inserted::default())
                    } else {
                        Err(StoreError::Duplicate)
                    }
                }
                other => Err(reached.error(classify_code(other.code().map(str::to_owned), other))),
            },
            Err(e) => Err(reached.error(classify(e))),
        }
    }

    /// A record of a pair: one transaction with the pair's item, which lists the pair's unused
    /// tokens and carries a version, so that concurrent inserts into one pair serialize; with
    /// `supersede` the same transaction revokes the listed tokens that are still unused.
    ///
    /// Each revoke in the transaction is conditional on its token being unused, so when the
    /// transaction succeeds every one of them was revoked by it: those are the uuids reported
    /// as superseded. (The SDK's own retries resend the same request with the same client
    /// request token, which DynamoDB applies at most once, so the list holds across them.) A
    /// retry of the whole insert that finds its own token already stored (`failed(0)` below)
    /// cannot know what the first attempt revoked, and reports nothing superseded.
    async fn insert_into_pair(
        &self,
        record: &TokenRecord,
        pair: &Pair,
        supersede: bool,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        let pair_key = format!("{PAIR_PREFIX}{}#{}", pair.purpose, pair.subject);
        // Tries again only after a cancelled transaction (a quick answer), and never past the
        // operation timeout in all, so the whole insert stays inside the Lambda's timeout.
        let started = std::time::Instant::now();
        for _ in 0..PAIR_TRIES {
            if started.elapsed() > OPERATION_TIMEOUT {
                break;
            }
            let (version, listed) = self.read_pair(&pair_key, now).await?;
            let unused = self.still_unused(&listed, now).await?;
            if !supersede && unused.len() >= MAX_OUTSTANDING_PER_PAIR {
                return Err(StoreError::TooManyOutstanding);
            }
            let mut keep: HashMap<String, AttributeValue> = if supersede {
                HashMap::new()
            } else {
                unused
                    .iter()
                    .map(|(id, exp)| (id.clone(), AttributeValue::N(exp.to_string())))
                    .collect()
            };
            keep.insert(record.uuid.to_string(), AttributeValue::N(record.expiry.to_string()));
            let latest = unused.iter().map(|(_, exp)| *exp).chain([record.expiry]).max();
            let mut items = vec![
                self.put_token(record, pair)?,
                self.update_pair(&pair_key, version, keep, latest)?,
            ];
            if supersede {
                for (id, _) in &unused {
                    items.push(self.revoke_listed(id, now)?);
                }
            }
            let reached = Reached::default();
            let written = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                // Makes the SDK's own retries of this exact request idempotent (10 minutes).
                .client_request_token(Uuid::new_v4().to_string())
                .customize()
                .interceptor(reached.clone())
                .send()
                .await;
            let error = match written {
                Ok(_) => {
                    // The pair item lists only uuids this store wrote, so each parses; the
                    // insert has succeeded either way, and must not be reported as failed.
                    let superseded = if supersede {
                        unused.iter().filter_map(|(id, _)| Uuid::parse_str(id).ok()).collect()
                    } else {
                        Vec::new()
                    };
                    return Ok(Inserted { superseded });
                }
                Err(SdkError::ServiceError(e)) => e.into_err(),
                Err(e) => return Err(reached.error(classify(e))),
            };
            match error {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let reasons = cancelled.cancellation_reasons.unwrap_or_default();
                    let failed = |i: usize| {
                        reasons.get(i).and_then(|r| r.code.as_deref())
                            == Some("ConditionalCheckFailed")
                    };
                    if failed(0) {
                        // The token exists: ours (a lost answer) or a collision.
                        let old = reasons[0].item.clone().unwrap_or_default();
                        return if number(&old, TTL_ATTRIBUTE) == Some(record.expiry) {
                            Ok(Inserted::default())
                        } else {
                            Err(StoreError::Duplicate)
                        };
                    }
                    // The pair changed, a listed token was used, or a conflicting
                    // transaction ran: read the pair again and retry.
                    tokio::time::sleep(Duration::from_millis(5 + rand_jitter())).await;
                }
                other => {
                    return Err(
                        reached.error(classify_code(other.code().map(str::to_owned), other))
                    );
                }
            }
        }
        Err(StoreError::Unavailable(
            format!("the pair changed {PAIR_TRIES} times while inserting; try again").into(),
        ))
    }

    /// The pair item's version (0 if there is none) and its listed tokens that are unexpired at
    /// `now`, as (uuid, expiry).
    async fn read_pair(
        &self,
        key: &str,
        now: i64,
    ) -> Result<(i64, Vec<(String, i64)>), StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = got.item else { return Ok((0, Vec::new())) };
        let version = number(&item, VERSION).unwrap_or(0);
        let listed = item
            .get(OUTSTANDING)
            .and_then(|v| v.as_m().ok())
            .map(|map| {
                map.iter()
                    .filter_map(|(id, exp)| Some((id.clone(), exp.as_n().ok()?.parse().ok()?)))
                    .filter(|(_, exp)| now < *exp)
                    .collect()
            })
            .unwrap_or_default();
        Ok((version, listed))
    }

    /// Those of `listed` whose record is still unused (one consistent `BatchGetItem`; keys it
    /// leaves unprocessed count as unused, and the transaction's condition decides).
    async fn still_unused(
        &self,
        listed: &[(String, i64)],
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let keys = listed
            .iter()
            .map(|(id, _)| {
                HashMap::from([(PARTITION_KEY.to_owned(), AttributeValue::S(id.clone()))])
            })
            .collect();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(internal)?;
        let got = self
            .client
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await
            .map_err(classify)?;
        let used: std::collections::HashSet<String> = got
            .responses
            .unwrap_or_default()
            .remove(&self.table)
            .unwrap_or_default()
            .iter()
            .filter(|item| !matches!(stored(item), Ok(Stored { state: State::Unused, expiry }) if now < expiry))
            .filter_map(|item| item.get(PARTITION_KEY)?.as_s().ok().cloned())
            .collect();
        Ok(listed.iter().filter(|(id, _)| !used.contains(id)).cloned().collect())
    }

    fn put_token(
        &self,
        record: &TokenRecord,
        pair: &Pair,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(record.uuid.to_string()))
            .item(TTL_ATTRIBUTE, AttributeValue::N(record.expiry.to_string()))
            .item(STATE, AttributeValue::S(UNUSED.into()))
            .item(PURPOSE, AttributeValue::S(pair.purpose.clone()))
            .item(SUBJECT, AttributeValue::S(pair.subject.clone()))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", PARTITION_KEY)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn update_pair(
        &self,
        key: &str,
        version: i64,
        outstanding: HashMap<String, AttributeValue>,
        latest: Option<i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let condition =
            if version == 0 { "attribute_not_exists(#id)" } else { "#version = :version" };
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.into()))
            .update_expression(
                "SET #outstanding = :outstanding, #version = :next, #expiry = :expiry",
            )
            .condition_expression(condition)
            .expression_attribute_names("#outstanding", OUTSTANDING)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#expiry", TTL_ATTRIBUTE)
            .expression_attribute_values(":outstanding", AttributeValue::M(outstanding))
            .expression_attribute_values(":next", AttributeValue::N((version + 1).to_string()))
            // TTL removes the pair item once its last token has expired.
            .expression_attribute_values(
                ":expiry",
                AttributeValue::N(latest.unwrap_or(0).to_string()),
            );
        update = if version == 0 {
            update.expression_attribute_names("#id", PARTITION_KEY)
        } else {
            update.expression_attribute_values(":version", AttributeValue::N(version.to_string()))
        };
        Ok(TransactWriteItem::builder().update(update.build().map_err(internal)?).build())
    }

    fn revoke_listed(&self, id: &str, now: i64) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(id.into()))
            .update_expression("SET #state = :revoked, #revokedAt = :now")
            .condition_expression("#state = :unused")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#revokedAt", REVOKED_AT)
            .expression_attribute_values(":revoked", AttributeValue::S(REVOKED.into()))
            .expression_attribute_values(":unused", AttributeValue::S(UNUSED.into()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn insert(
        &self,
        record: &TokenRecord,
        supersede: bool,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        match &record.pair {
            Some(pair) => self.insert_into_pair(record, pair, supersede, now).await,
            None => self.put(record).await,
        }
    }

    async fn revoke(&self, uuid: Uuid, now: i64) -> Result<Revoked, StoreError> {
        let set = [(REVOKED_AT, AttributeValue::N(now.to_string()))];
        Ok(match self.change_unused(uuid, now, REVOKED, &set).await? {
            None => Revoked::Revoked,
            Some(None) => Revoked::NotFound,
            Some(Some(old)) => match found(&old, now)? {
                Consumed::Expired => Revoked::Expired,
                Consumed::Used { at, .. } => Revoked::Used { at },
                Consumed::Revoked { at } => Revoked::AlreadyRevoked { at },
                other => return Err(internal(format!("revoke found {other:?}"))),
            },
        })
    }

    async fn status(&self, uuid: Uuid) -> Result<Option<Stored>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(uuid.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        got.item.map(|item| stored(&item)).transpose()
    }

    async fn consume(
        &self,
        uuid: Uuid,
        attempt: &AttemptId,
        now: i64,
    ) -> Result<Consumed, StoreError> {
        let set = [
            (USED_AT, AttributeValue::N(now.to_string())),
            (ATTEMPT_ID, AttributeValue::S(attempt.as_str().into())),
        ];
        match self.change_unused(uuid, now, USED, &set).await? {
            None => Ok(Consumed::Consumed),
            Some(None) => Ok(Consumed::NotFound),
            Some(Some(old)) => found(&old, now),
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
    let record = stored(item)?;
    if now >= record.expiry {
        return Ok(Consumed::Expired);
    }
    match record.state {
        State::Used { at, attempt } => Ok(Consumed::Used { at, attempt }),
        State::Revoked { at } => Ok(Consumed::Revoked { at }),
        State::Unused => Err(internal(format!("an unused item failed the condition: {item:?}"))),
    }
}

/// A token item as a [`Stored`] record.
fn stored(item: &HashMap<String, AttributeValue>) -> Result<Stored, StoreError> {
    let malformed = || internal(format!("malformed item: {item:?}"));
    let expiry = number(item, TTL_ATTRIBUTE).ok_or_else(malformed)?;
    let state = match item.get(STATE).and_then(|v| v.as_s().ok()).map(String::as_str) {
        Some(UNUSED) => State::Unused,
        Some(USED) => State::Used {
            at: number(item, USED_AT).ok_or_else(malformed)?,
            attempt: AttemptId::stored(
                item.get(ATTEMPT_ID).and_then(|v| v.as_s().ok()).ok_or_else(malformed)?.as_str(),
            ),
        },
        Some(REVOKED) => State::Revoked { at: number(item, REVOKED_AT).ok_or_else(malformed)? },
        _ => return Err(malformed()),
    };
    Ok(Stored { expiry, state })
}

/// 0 to 15 ms, so that retries of colliding transactions spread out.
fn rand_jitter() -> u64 {
    u64::from(Uuid::new_v4().as_bytes()[0] % 16)
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
        store
            .insert(&TokenRecord { uuid, expiry: 1_234_567_890, pair: None }, false, 1_000)
            .await
            .unwrap();
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
        let refused = store
            .insert(&TokenRecord { uuid: Uuid::new_v4(), expiry: 2_000, pair: None }, false, 1_000)
            .await;
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
