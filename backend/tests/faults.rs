//! Fault injection on the DynamoDB path, end to end.
//!
//! A proxy of this test's own sits between the service and DynamoDB Local and, armed per
//! DynamoDB operation (the `X-Amz-Target` header) for the next N requests:
//!
//! - loses an answer: forwards the write, waits for DynamoDB's answer (so the write IS applied),
//!   then closes the connection without answering;
//! - delays an answer: forwards, then holds the answer past the SDK's attempt timeout
//!   ([`ATTEMPT_TIMEOUT`], the service's own constant);
//! - resets the connection (TCP RST) before forwarding anything;
//! - throttles: answers DynamoDB's `400 ThrottlingException` without forwarding;
//! - answers `500 InternalServerError` after forwarding (DynamoDB's "the write may have been
//!   applied").
//!
//! The service is driven through both entry points: the real `token-service --store dynamodb`
//! binary, and the Lambda's router (over a `DynamoStore` whose SDK configuration is built here
//! with the service's retry and timeout constants) fed API Gateway REST events through
//! `lambda_http::Adapter` and `strip_stage`. Clients retry a `503` with the same
//! `Idempotency-Key` after its `Retry-After`, at most [`CLIENT_TRIES`] times. Over every fault:
//!
//! - the first presenter of a token ends with `isValid: true` (possibly `replayed`) and is never
//!   told `already_used`; a client with another key gets `already_used` with the same `usedAt`;
//! - the item, read from DynamoDB Local directly (not through the proxy), is `used` by the first
//!   presenter's key: exactly one attempt id ever succeeds per token;
//! - `GET /tokens` answers `200` with a token that then validates exactly once, or `503` with
//!   `Retry-After`, never `500`;
//! - every answer comes within [`OPERATION_TIMEOUT`] (plus [`SLACK`]).
//!
//! Where the SDK's retries decide an outcome (a fault on every attempt of one call, or on only
//! the first), the exact sequence of answers is asserted. Needs DynamoDB Local at
//! `DYNAMODB_ENDPOINT` (`scripts/test` starts one; `scripts/dynamodb-local.sh start` for a
//! shell). Everything talks to 127.0.0.1 only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/dynamodb_local.rs"]
mod dynamodb_local;

use aws_config::SdkConfig;
use aws_config::retry::ErrorKind;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use backend::clock::SystemClock;
use backend::contract::PARTITION_KEY;
use backend::http::{AllowedOrigins, router};
use backend::keys::SigningKey;
use backend::lambda::strip_stage;
use backend::store::dynamodb::{
    ATTEMPT_ID, ATTEMPT_TIMEOUT, DynamoStore, MAX_ATTEMPTS, OPERATION_TIMEOUT, STATE, UNUSED, USED,
    USED_AT,
};
use backend::store::{Pair, State, StoreError, TokenRecord, TokenStore};
use backend::tokens::{Lifetimes, TokenService};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use uuid::Uuid;

/// `X-Amz-Target` of DynamoDB's UpdateItem: the service's consume.
const UPDATE_ITEM: &str = "DynamoDB_20120810.UpdateItem";
/// `X-Amz-Target` of DynamoDB's PutItem: the service's insert.
const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";
/// `X-Amz-Target` of DynamoDB's TransactWriteItems: an insert into a purpose and subject pair.
const TRANSACT_WRITE_ITEMS: &str = "DynamoDB_20120810.TransactWriteItems";
/// Faults on every attempt the SDK makes in one call (its standard retries).
const EVERY_ATTEMPT: usize = MAX_ATTEMPTS as usize;
/// How long a delayed answer is held: past the SDK's attempt timeout.
const HELD: Duration = ATTEMPT_TIMEOUT.saturating_add(Duration::from_secs(1));
/// The SDK's connect timeout in the service's `sdk_config` (`backend/src/store/dynamodb.rs`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Clients presenting one token at once in the race.
const RACERS: usize = 16;
/// Requests one client sends for one token before giving up on `503`s.
const CLIENT_TRIES: usize = 5;
/// Slack for HTTP and scheduling on top of [`OPERATION_TIMEOUT`] on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(2);
/// A fixed test key (at least 32 bytes, as HS256 requires).
const SECRET: &str = "faults-test-key-faults-test-key-faults-test-key";
/// DynamoDB's throttling answer, as its low-level API sends errors: `400`, JSON with `__type`
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>).
const THROTTLED_BODY: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#;
/// DynamoDB's `InternalServerError` answer (status `500`), in the same shape.
const INTERNAL_SERVER_ERROR_BODY: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#;

const VALID: &str = "Token is valid and has now been used";
const REPLAYED: &str = "Token is valid; this repeats the answer to the earlier request with this \
                        Idempotency-Key, which used it";
const ALREADY_USED: &str = "Token has already been used";
const OUTCOME_UNKNOWN: &str = "the token store did not confirm whether this request used the \
                               token; retry with the same Idempotency-Key header to learn the \
                               outcome";
const UNAVAILABLE: &str = "the token store is unavailable, try again shortly";

/// DynamoDB Local's endpoint, from `DYNAMODB_ENDPOINT`.
fn endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "DYNAMODB_ENDPOINT is not set: run scripts/test, or start DynamoDB Local with \
             `scripts/dynamodb-local.sh start` and export DYNAMODB_ENDPOINT=<its URL>"
        )
    })
}

/// SDK configuration for `endpoint` (the proxy, or DynamoDB Local itself) with the given
/// retries, the service's connect timeout, and the given attempt and call timeouts.
fn sdk_config(endpoint: &str, retry: RetryConfig, attempt: Duration, call: Duration) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .operation_timeout(call)
        .build();
    dynamodb_local::sdk_config(endpoint, retry, timeouts)
}

/// The service's own SDK settings, pointed at `endpoint`.
fn service_sdk_config(endpoint: &str) -> SdkConfig {
    let retry = RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS);
    sdk_config(endpoint, retry, ATTEMPT_TIMEOUT, OPERATION_TIMEOUT)
}

/// A superseding insert (one `TransactWriteItems`) whose answers are lost, at the store: with
/// the first answer lost, the SDK's retry (same client request token) settles it and the
/// store reports exactly the token it revoked; with every answer lost it is an unknown outcome,
/// and the transaction, applied once, revoked the older token once and stored the new one.
#[tokio::test]
async fn a_superseding_insert_under_lost_answers_revokes_once_and_reports_what_it_revoked() {
    let (db, proxy) = (Db::fresh().await, Proxy::start(&endpoint()).await);
    let store = DynamoStore::new(&service_sdk_config(&proxy.url), &db.table);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let pair = Pair { purpose: "password-reset".into(), subject: format!("u-{}", Uuid::new_v4()) };
    let paired =
        || TokenRecord { uuid: Uuid::new_v4(), expiry: now + 600, pair: Some(pair.clone()) };
    let (old, new, newer) = (paired(), paired(), paired());
    let state = |uuid| {
        let store = &store;
        async move { store.status(uuid).await.unwrap().unwrap().state }
    };
    store.insert(&old, false, now).await.unwrap();

    proxy.arm(TRANSACT_WRITE_ITEMS, Fault::LostAnswer, 1);
    let inserted = store.insert(&new, true, now).await;
    assert_eq!(proxy.disarm(TRANSACT_WRITE_ITEMS), 0, "the first answer was lost");
    assert_eq!(inserted.unwrap().superseded, [old.uuid]);
    assert_eq!(state(old.uuid).await, State::Revoked { at: now });
    assert_eq!(state(new.uuid).await, State::Unused);

    proxy.arm(TRANSACT_WRITE_ITEMS, Fault::LostAnswer, EVERY_ATTEMPT);
    let unknown = store.insert(&newer, true, now).await;
    proxy.disarm(TRANSACT_WRITE_ITEMS);
    assert!(matches!(unknown, Err(StoreError::OutcomeUnknown(_))), "{unknown:?}");
    assert_eq!(state(new.uuid).await, State::Revoked { at: now });
    assert_eq!(state(newer.uuid).await, State::Unused);
    assert_eq!(state(old.uuid).await, State::Revoked { at: now }, "revoked once, unchanged");
}

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------

/// What the proxy does to a request it was armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward, await DynamoDB's answer, then close the connection without answering.
    LostAnswer,
    /// Forward, then hold DynamoDB's answer for [`HELD`] before sending it.
    Delay,
    /// Reset the connection (RST) without forwarding.
    ResetBeforeForwarding,
    /// Answer `400 ThrottlingException` without forwarding.
    Throttle,
    /// Forward, then answer `500 InternalServerError` instead of DynamoDB's answer: the write
    /// was applied, as DynamoDB says it may have been after this error.
    ServerError,
}

/// What the proxy saw of one operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// Requests received.
    seen: usize,
    /// Requests a fault was applied to.
    faulted: usize,
    /// Requests DynamoDB Local answered (whether or not the answer was passed on).
    forwarded: usize,
    /// Requests the proxy could not forward (a broken test, not an injected fault).
    upstream_failures: usize,
}

/// Armed faults and counts, per `X-Amz-Target`.
#[derive(Debug, Default)]
struct Book {
    armed: HashMap<String, (Fault, usize)>,
    counts: HashMap<String, Counts>,
    /// Requests being forwarded to DynamoDB Local right now.
    forwarding: usize,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    book: Mutex<Book>,
}

type ProxyError = Box<dyn std::error::Error + Send + Sync>;

impl ProxyState {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap()
    }

    /// Counts a request for `target` and takes one armed fault for it, if any; counts it as
    /// being forwarded (in the same lock, so `counts` never sees it half-counted) unless the
    /// fault stops it.
    fn take_fault(&self, target: &str) -> Option<Fault> {
        let mut book = self.book();
        book.counts.entry(target.to_owned()).or_default().seen += 1;
        let fault = match book.armed.get_mut(target) {
            Some((fault, left)) if *left > 0 => {
                *left -= 1;
                Some(*fault)
            }
            _ => None,
        };
        if fault.is_some() {
            book.counts.entry(target.to_owned()).or_default().faulted += 1;
        }
        if !matches!(fault, Some(Fault::ResetBeforeForwarding | Fault::Throttle)) {
            book.forwarding += 1;
        }
        fault
    }

    /// Sends the request to DynamoDB Local and returns its whole answer.
    async fn forward(
        &self,
        parts: hyper::http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, ProxyError> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers = parts.headers;
        for name in [HOST, CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING] {
            headers.remove(name);
        }
        let upstream = self
            .client
            .request(parts.method, format!("{}{path}", self.upstream))
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = upstream.status();
        let mut headers = upstream.headers().clone();
        for name in [CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING] {
            headers.remove(name);
        }
        let mut answer = Response::new(Full::new(upstream.bytes().await?));
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

/// A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of DynamoDB Local.
struct Proxy {
    url: String,
    state: Arc<ProxyState>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            book: Mutex::default(),
        });
        let accept = tokio::spawn(accept(listener, state.clone()));
        Self { url, state, accept }
    }

    /// Applies `fault` to the next `times` requests of `target`, replacing what was armed.
    fn arm(&self, target: &str, fault: Fault, times: usize) {
        self.state.book().armed.insert(target.to_owned(), (fault, times));
    }

    /// Disarms `target`; returns how many armed faults were left unused.
    fn disarm(&self, target: &str) -> usize {
        self.state.book().armed.remove(target).map_or(0, |(_, left)| left)
    }

    /// What the proxy saw of `target`, once no request is being forwarded (within 10 s).
    async fn counts(&self, target: &str) -> Counts {
        for _ in 0..1000 {
            {
                let book = self.state.book();
                if book.forwarding == 0 {
                    return book.counts.get(target).copied().unwrap_or_default();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the proxy is still forwarding after 10 s");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept(listener: TcpListener, state: Arc<ProxyState>) {
    while let Ok((stream, _)) = listener.accept().await {
        let reset = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(Resettable { stream, reset: reset.clone() });
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| relay(state.clone(), request, reset.clone()));
            // An error is an injected fault (the service returned one, so hyper drops the
            // connection without answering) or a client that went away: nothing to report.
            let _ = http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// One request through the proxy. Returning an error makes hyper drop the connection without
/// writing anything (`proto::h1::dispatch`: a service error ends the connection).
async fn relay(
    state: Arc<ProxyState>,
    request: Request<Incoming>,
    reset: Arc<AtomicBool>,
) -> Result<Response<Full<Bytes>>, ProxyError> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = request.into_parts();
    // Read the whole request first: the client has sent all of it before any fault, and no
    // unread data turns a plain close into a reset.
    let body = body.collect().await?.to_bytes();
    let fault = state.take_fault(&target);
    match fault {
        Some(Fault::ResetBeforeForwarding) => {
            reset.store(true, Ordering::SeqCst);
            return Err("connection reset before forwarding (injected)".into());
        }
        Some(Fault::Throttle) => return Ok(throttled()),
        _ => {}
    }
    // Forward in a task of its own: a request the proxy has wholly received reaches DynamoDB
    // even if the client gives up meanwhile (the SDK's operation timeout can cut its last
    // attempt short), as a request on a real network does. `counts` waits for these tasks.
    let forwarding = tokio::spawn({
        let (state, target) = (state.clone(), target.clone());
        async move {
            let answer = state.forward(parts, body).await;
            let mut book = state.book();
            book.forwarding -= 1;
            let counts = book.counts.entry(target).or_default();
            match answer {
                Ok(_) => counts.forwarded += 1,
                Err(_) => counts.upstream_failures += 1,
            }
            answer
        }
    });
    let answer = forwarding.await??;
    match fault {
        Some(Fault::LostAnswer) => Err("answer lost after forwarding (injected)".into()),
        Some(Fault::Delay) => {
            tokio::time::sleep(HELD).await;
            Ok(answer)
        }
        Some(Fault::ServerError) => Ok(internal_server_error()),
        _ => Ok(answer),
    }
}

/// DynamoDB's throttling error as the SDK parses it for the awsJson1_0 protocol: the code from
/// `X-Amzn-ErrorType`, else from `__type` after its `namespace#`.
fn throttled() -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(CONTENT_TYPE, "application/x-amz-json-1.0")
        .header("x-amzn-ErrorType", "ThrottlingException")
        .header("x-amzn-RequestId", "FAULTSTHROTTLED0000000000000000000000000000000000000")
        .body(Full::new(Bytes::from_static(THROTTLED_BODY.as_bytes())))
        .unwrap()
}

/// DynamoDB's `500 InternalServerError`, which leaves a write in doubt
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>).
fn internal_server_error() -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .header(CONTENT_TYPE, "application/x-amz-json-1.0")
        .header("x-amzn-ErrorType", "InternalServerError")
        .header("x-amzn-RequestId", "FAULTSINTERNAL00000000000000000000000000000000000000")
        .body(Full::new(Bytes::from_static(INTERNAL_SERVER_ERROR_BODY.as_bytes())))
        .unwrap()
}

/// A proxy connection that is reset (`SO_LINGER` 0, so closing sends RST) instead of closed
/// once `reset` is set.
struct Resettable {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for Resettable {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Resettable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Resettable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB Local, directly
// ---------------------------------------------------------------------------------------------

/// A fresh table in DynamoDB Local and a client that reads it directly, not through the proxy.
struct Db {
    client: Client,
    table: String,
}

/// A token's item as DynamoDB Local holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    state: String,
    attempt: Option<String>,
    used_at: Option<i64>,
}

impl Record {
    fn used(attempt: &str, at: i64) -> Self {
        Self { state: USED.into(), attempt: Some(attempt.into()), used_at: Some(at) }
    }
}

impl Db {
    async fn fresh() -> Self {
        // Generous timeouts: this is the test's own view, not the service under test.
        let config = sdk_config(
            &endpoint(),
            RetryConfig::standard(),
            Duration::from_secs(15),
            Duration::from_secs(30),
        );
        let table = format!("faults-{}", Uuid::new_v4());
        let created = DynamoStore::new(&config, &table).create_table_if_missing().await.unwrap();
        assert!(created, "table {table} existed already");
        Self { client: Client::new(&config), table }
    }

    async fn item(&self, uuid: &str) -> Option<HashMap<String, AttributeValue>> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(uuid.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// The record of `token` (by its `uuid` claim); panics if there is none.
    async fn record(&self, token: &str) -> Record {
        let uuid = uuid_claim(token);
        let item = self.item(&uuid).await.unwrap_or_else(|| panic!("no item for {uuid}"));
        let text = |name: &str| item.get(name).map(|v| v.as_s().unwrap().clone());
        Record {
            state: text(STATE).unwrap(),
            attempt: text(ATTEMPT_ID),
            used_at: item.get(USED_AT).map(|v| v.as_n().unwrap().parse().unwrap()),
        }
    }
}

/// The `uuid` claim of a compact JWS, read without verifying it.
fn uuid_claim(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["uuid"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// The two entry points, as clients see them
// ---------------------------------------------------------------------------------------------

/// One HTTP answer, from either entry point.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    idempotency_key: Option<String>,
    body: Value,
    took: Duration,
}

/// What a client heard, after the answer's exact shape was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    /// `200 isValid: true`: this request used the token.
    Valid,
    /// `200 isValid: true, replayed: true`: an earlier request with this key used it.
    Replayed { used_at: i64 },
    /// `200 isValid: false, reason: already_used`.
    AlreadyUsed { used_at: i64 },
    /// `503 outcome_unknown`.
    OutcomeUnknown,
    /// `503 unavailable`.
    Unavailable,
    /// `200` from `GET /tokens`.
    Issued { token: String },
}

/// An [`Heard`] without its data, for expected sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    Replayed,
    AlreadyUsed,
    OutcomeUnknown,
    Unavailable,
    Issued,
}

impl Heard {
    fn kind(&self) -> Kind {
        match self {
            Self::Valid => Kind::Valid,
            Self::Replayed { .. } => Kind::Replayed,
            Self::AlreadyUsed { .. } => Kind::AlreadyUsed,
            Self::OutcomeUnknown => Kind::OutcomeUnknown,
            Self::Unavailable => Kind::Unavailable,
            Self::Issued { .. } => Kind::Issued,
        }
    }

    fn is_valid(&self) -> bool {
        matches!(self, Self::Valid | Self::Replayed { .. })
    }
}

fn kinds(outcomes: &[Heard]) -> Vec<Kind> {
    outcomes.iter().map(Heard::kind).collect()
}

fn rfc3339(epoch_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch_seconds).unwrap().format(&Rfc3339).unwrap()
}

impl Answer {
    /// Reads the outcome, asserting the answer's exact body and headers for it; any other
    /// answer (a `500` above all) fails the test.
    fn outcome(&self) -> Heard {
        assert!(self.took <= OPERATION_TIMEOUT + SLACK, "too slow: {self:?}");
        let body = &self.body;
        let used_at = || {
            let text = body["usedAt"].as_str().unwrap_or_else(|| panic!("no usedAt: {self:?}"));
            OffsetDateTime::parse(text, &Rfc3339).unwrap().unix_timestamp()
        };
        let outcome = match (self.status, body["reason"].as_str(), &body["isValid"]) {
            (200, None, Value::Bool(true)) if body["replayed"] == json!(true) => {
                Heard::Replayed { used_at: used_at() }
            }
            (200, None, Value::Bool(true)) => Heard::Valid,
            (200, Some("already_used"), _) => Heard::AlreadyUsed { used_at: used_at() },
            (200, None, Value::Null) if body["token"].is_string() => {
                Heard::Issued { token: body["token"].as_str().unwrap().to_owned() }
            }
            (503, Some("outcome_unknown"), _) => Heard::OutcomeUnknown,
            (503, Some("unavailable"), _) => Heard::Unavailable,
            _ => panic!("unexpected answer: {self:?}"),
        };
        let expected = match &outcome {
            Heard::Valid => json!({"isValid": true, "message": VALID}),
            Heard::Replayed { used_at } => json!({
                "isValid": true, "message": REPLAYED, "replayed": true, "usedAt": rfc3339(*used_at),
            }),
            Heard::AlreadyUsed { used_at } => json!({
                "isValid": false, "message": ALREADY_USED, "reason": "already_used",
                "usedAt": rfc3339(*used_at),
            }),
            Heard::OutcomeUnknown => {
                json!({"isValid": false, "message": OUTCOME_UNKNOWN, "reason": "outcome_unknown"})
            }
            Heard::Unavailable => {
                json!({"isValid": false, "message": UNAVAILABLE, "reason": "unavailable"})
            }
            Heard::Issued { token } => {
                let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
                let exp = serde_json::from_slice::<Value>(&payload).unwrap()["exp"].as_i64();
                json!({"token": token, "expiration": rfc3339(exp.unwrap())})
            }
        };
        // Error bodies through the local server name their request (X-Request-Id).
        let mut body = self.body.clone();
        if let Some(id) = body.as_object_mut().and_then(|b| b.remove("requestId")) {
            assert!(id.as_str().is_some_and(|id| !id.is_empty()), "{self:?}");
        }
        assert_eq!(body, expected, "{self:?}");
        let retry_after = if self.status == 503 { Some("1") } else { None };
        assert_eq!(self.retry_after.as_deref(), retry_after, "{self:?}");
        outcome
    }
}

/// The API as a client sees it, through one entry point.
trait Api {
    /// `GET /tokens`.
    async fn issue(&self) -> Answer;
    /// `POST /tokens {"token": token}`, with `Idempotency-Key: key` if given.
    async fn validate(&self, token: &str, key: Option<&str>) -> Answer;
}

/// The real `token-service --store dynamodb` binary, its DynamoDB endpoint the proxy. Its log
/// is printed if the test fails.
struct LocalServer {
    child: Child,
    base: String,
    client: reqwest::Client,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalServer {
    async fn start(dynamodb: &str, table: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("token-service.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_token-service"))
            .args(["--listen", "127.0.0.1:0", "--ui-dir", "/nonexistent", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--store", "dynamodb", "--create-table", "--table", table])
            // Only what the service needs: no proxies, profiles or IMDS.
            .env_clear()
            .env("TOKEN_SERVICE_SECRET", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Off the runtime: the proxy answering the server's start-up calls runs on it.
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let base = line
            .trim()
            .strip_prefix("token-service listening on ")
            .unwrap_or_else(|| panic!("no start: {}", std::fs::read_to_string(&log).unwrap()))
            .to_owned();
        let client =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
        Self { child, base, client, log, _dir: dir }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let header =
            |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (retry_after, idempotency_key) = (header("retry-after"), header("idempotency-key"));
        let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        Answer { status, retry_after, idempotency_key, body, took: started.elapsed() }
    }
}

impl Api for LocalServer {
    async fn issue(&self) -> Answer {
        self.send(self.client.get(format!("{}/tokens", self.base))).await
    }

    async fn validate(&self, token: &str, key: Option<&str>) -> Answer {
        let mut request =
            self.client.post(format!("{}/tokens", self.base)).json(&json!({"token": token}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- token-service log ---\n{log}");
        }
    }
}

/// The router the Lambda serves, over a `DynamoStore` whose SDK goes through the proxy, driven
/// by API Gateway REST events through `lambda_http::Adapter` and `strip_stage`.
struct LambdaApi {
    router: Router,
}

impl LambdaApi {
    fn new(config: &SdkConfig, table: &str) -> Self {
        let store = DynamoStore::new(config, table);
        let key = SigningKey::parse(SECRET.as_bytes()).unwrap();
        let service =
            TokenService::new(&key, Arc::new(store), Arc::new(SystemClock), Lifetimes::default());
        Self { router: router(Arc::new(service), &AllowedOrigins::None) }
    }

    async fn invoke(&self, event: Value) -> Answer {
        let started = Instant::now();
        let payload: LambdaRequest = serde_json::from_value(event).unwrap();
        assert!(matches!(payload, LambdaRequest::ApiGatewayV1(_)), "{payload:?}");
        let response = Adapter::from(self.router.clone().map_request(strip_stage))
            .oneshot(LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
        let response = serde_json::to_value(response).unwrap();
        assert_eq!(response["isBase64Encoded"], json!(false), "{response}");
        let header = |name: &str| {
            let values = response["multiValueHeaders"].get(name)?.as_array().unwrap();
            assert_eq!(values.len(), 1, "{name} repeated: {response}");
            Some(values[0].as_str().unwrap().to_owned())
        };
        Answer {
            status: u16::try_from(response["statusCode"].as_u64().unwrap()).unwrap(),
            retry_after: header("retry-after"),
            idempotency_key: header("idempotency-key"),
            body: serde_json::from_str(response["body"].as_str().unwrap()).unwrap(),
            took: started.elapsed(),
        }
    }
}

/// Reads `tests/events/{name}.json`, putting `token` in place of `{{TOKEN}}` in its body.
fn event(name: &str, token: Option<&str>) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/events").join(format!("{name}.json"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    if let Some(token) = token {
        let body = event["body"].as_str().unwrap();
        assert!(body.contains("{{TOKEN}}"), "{name}: no placeholder");
        event["body"] = Value::String(body.replace("{{TOKEN}}", token));
    }
    event
}

impl Api for LambdaApi {
    async fn issue(&self) -> Answer {
        self.invoke(event("issue", None)).await
    }

    async fn validate(&self, token: &str, key: Option<&str>) -> Answer {
        let mut event = event("validate", Some(token));
        if let Some(key) = key {
            // API Gateway sends every header in both maps.
            event["headers"]["Idempotency-Key"] = json!(key);
            event["multiValueHeaders"]["Idempotency-Key"] = json!([key]);
        }
        self.invoke(event).await
    }
}

/// One entry point with its proxy and table.
struct Rig<A> {
    api: A,
    proxy: Proxy,
    db: Db,
}

impl Rig<LocalServer> {
    async fn local_server() -> Self {
        let (db, proxy) = (Db::fresh().await, Proxy::start(&endpoint()).await);
        let api = LocalServer::start(&proxy.url, &db.table).await;
        Self { api, proxy, db }
    }
}

impl Rig<LambdaApi> {
    async fn lambda() -> Self {
        let (db, proxy) = (Db::fresh().await, Proxy::start(&endpoint()).await);
        let api = LambdaApi::new(&service_sdk_config(&proxy.url), &db.table);
        Self { api, proxy, db }
    }
}

// ---------------------------------------------------------------------------------------------
// Clients and scenarios
// ---------------------------------------------------------------------------------------------

/// A fresh `Idempotency-Key`.
fn new_key(who: &str) -> String {
    format!("{who}-{}", Uuid::new_v4())
}

/// Waits as a `503`'s `Retry-After` says.
async fn wait_retry_after(answer: &Answer) {
    let seconds: u64 = answer.retry_after.as_deref().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

/// A client presenting `token` after its `first` answer: while the answer is a `503`, it waits
/// `Retry-After` and retries with the same key (`key`, or the one a keyless request got back
/// with `outcome_unknown`), [`CLIENT_TRIES`] requests in all. Returns every outcome and the key
/// it ended with.
async fn settle(
    api: &impl Api,
    token: &str,
    key: Option<&str>,
    first: Answer,
) -> (Vec<Heard>, Option<String>) {
    let mut key = key.map(str::to_owned);
    let mut answer = first;
    let mut outcomes = Vec::new();
    loop {
        let outcome = answer.outcome();
        outcomes.push(outcome.clone());
        match (&outcome, &key, &answer.idempotency_key) {
            (Heard::OutcomeUnknown, None, Some(back)) => key = Some(back.clone()),
            (Heard::OutcomeUnknown, None, None) => panic!("no key to retry with: {answer:?}"),
            (_, Some(sent), Some(back)) => assert_eq!(back, sent, "{answer:?}"),
            (_, None, Some(_)) => panic!("a key with a definite answer: {answer:?}"),
            _ => {}
        }
        if !matches!(outcome, Heard::OutcomeUnknown | Heard::Unavailable) {
            return (outcomes, key);
        }
        assert!(outcomes.len() < CLIENT_TRIES, "still 503 after {CLIENT_TRIES}: {outcomes:?}");
        wait_retry_after(&answer).await;
        answer = api.validate(token, key.as_deref()).await;
    }
}

/// [`settle`] from the first request.
async fn present(api: &impl Api, token: &str, key: Option<&str>) -> (Vec<Heard>, Option<String>) {
    let first = api.validate(token, key).await;
    settle(api, token, key, first).await
}

/// `GET /tokens` until it issues; returns every outcome and the token.
async fn issue(api: &impl Api) -> (Vec<Heard>, String) {
    let mut outcomes = Vec::new();
    for _ in 0..CLIENT_TRIES {
        let answer = api.issue().await;
        let outcome = answer.outcome();
        outcomes.push(outcome.clone());
        match outcome {
            Heard::Issued { token } => return (outcomes, token),
            Heard::Unavailable => wait_retry_after(&answer).await,
            other => panic!("GET /tokens answered {other:?}: {answer:?}"),
        }
    }
    panic!("GET /tokens still 503 after {CLIENT_TRIES}: {outcomes:?}");
}

/// Whether the first presenter sends an `Idempotency-Key` or relies on the generated one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstKey {
    Chosen,
    Generated,
}

/// One token through a consume fault: issued while healthy; `fault` armed for the next `times`
/// UpdateItem requests; the first presenter's answers must be `expected` (then it is disarmed
/// after the first answer, so retries see a healthy path); then a second client with another
/// key, and the first presenter once more.
async fn consume_under_fault(
    rig: &Rig<impl Api>,
    fault: Fault,
    times: usize,
    first_key: FirstKey,
    expected: &[Kind],
) {
    let context = format!("{fault:?} x{times}, {first_key:?} key");
    let (_, token) = issue(&rig.api).await;
    let before = rig.proxy.counts(UPDATE_ITEM).await;

    rig.proxy.arm(UPDATE_ITEM, fault, times);
    let key = match first_key {
        FirstKey::Chosen => Some(new_key("first")),
        FirstKey::Generated => None,
    };
    let first = rig.api.validate(&token, key.as_deref()).await;
    let left = rig.proxy.disarm(UPDATE_ITEM);
    let (outcomes, key) = settle(&rig.api, &token, key.as_deref(), first).await;
    eprintln!("{context}: first presenter {outcomes:?}");
    assert_eq!(kinds(&outcomes), expected, "{context}: {outcomes:?}");
    let key = key.unwrap_or_else(|| panic!("{context}: no key ever named: {outcomes:?}"));

    let counts = rig.proxy.counts(UPDATE_ITEM).await;
    let (seen, faulted) = (counts.seen - before.seen, counts.faulted - before.faulted);
    assert_eq!(faulted, times - left, "{context}: {counts:?}");
    if fault == Fault::Delay && times == EVERY_ATTEMPT {
        // The SDK's backoff is random: 2 or 3 attempts fit in the operation timeout.
        assert!(faulted >= 2, "{context}: {counts:?}");
    } else {
        assert_eq!(left, 0, "{context}: {counts:?}");
    }
    // Every request of the first presenter was faulted but exactly one (bar a late attempt).
    let late = late_attempts(fault, times, left);
    assert!((faulted + 1..=faulted + 1 + late).contains(&seen), "{context}: {counts:?}");
    let unforwarded = match fault {
        Fault::ResetBeforeForwarding | Fault::Throttle => faulted,
        Fault::LostAnswer | Fault::Delay | Fault::ServerError => 0,
    };
    assert_eq!(counts.forwarded - before.forwarded, seen - unforwarded, "{context}: {counts:?}");
    assert_eq!(counts.upstream_failures, 0, "{context}: {counts:?}");

    let record = rig.db.record(&token).await;
    let used_at = record.used_at.unwrap_or_else(|| panic!("{context}: {record:?}"));
    assert_eq!(record, Record::used(&key, used_at), "{context}");
    for outcome in &outcomes {
        if let Heard::Replayed { used_at: replayed } = outcome {
            assert_eq!(*replayed, used_at, "{context}");
        }
    }

    let (second, _) = present(&rig.api, &token, Some(&new_key("second"))).await;
    assert_eq!(second, [Heard::AlreadyUsed { used_at }], "{context}: second client");
    let (again, _) = present(&rig.api, &token, Some(&key)).await;
    assert_eq!(again, [Heard::Replayed { used_at }], "{context}: first presenter again");
    assert_eq!(rig.db.record(&token).await, Record::used(&key, used_at), "{context}");
}

/// How many requests beyond the faulted ones and the one retry that went through may be seen:
/// one when `Delay` was armed for every attempt and not all were used, since the attempt the
/// SDK sent just before its operation timeout may reach the proxy only after the disarm. It is
/// then forwarded unfaulted, and changes nothing (a consume with the same attempt id, or the
/// insert of a token that was never handed out).
fn late_attempts(fault: Fault, times: usize, left: usize) -> usize {
    usize::from(fault == Fault::Delay && times == EVERY_ATTEMPT && left > 0)
}

/// `GET /tokens` with `fault` armed for the next `times` PutItem requests: its answers must be
/// `expected` (200, or 503 then 200 on retry; never 500), and the token it hands out
/// validates exactly once.
async fn issue_under_fault(rig: &Rig<impl Api>, fault: Fault, times: usize, expected: &[Kind]) {
    let context = format!("{fault:?} x{times}");
    let before = rig.proxy.counts(PUT_ITEM).await;
    rig.proxy.arm(PUT_ITEM, fault, times);
    let first = rig.api.issue().await;
    let left = rig.proxy.disarm(PUT_ITEM);
    let mut outcomes = vec![first.outcome()];
    let token = match outcomes[0].clone() {
        Heard::Issued { token } => token,
        Heard::Unavailable => {
            wait_retry_after(&first).await;
            let (rest, token) = issue(&rig.api).await;
            outcomes.extend(rest);
            token
        }
        other => panic!("{context}: GET /tokens answered {other:?}"),
    };
    eprintln!("{context}: GET /tokens {:?}", kinds(&outcomes));
    assert_eq!(kinds(&outcomes), expected, "{context}: {outcomes:?}");

    let counts = rig.proxy.counts(PUT_ITEM).await;
    let (seen, faulted) = (counts.seen - before.seen, counts.faulted - before.faulted);
    assert_eq!(faulted, times - left, "{context}: {counts:?}");
    if fault == Fault::Delay && times == EVERY_ATTEMPT {
        assert!(faulted >= 2, "{context}: {counts:?}");
    } else {
        assert_eq!(left, 0, "{context}: {counts:?}");
    }
    let late = late_attempts(fault, times, left);
    assert!((faulted + 1..=faulted + 1 + late).contains(&seen), "{context}: {counts:?}");
    assert_eq!(counts.upstream_failures, 0, "{context}: {counts:?}");

    let unused = Record { state: UNUSED.into(), attempt: None, used_at: None };
    assert_eq!(rig.db.record(&token).await, unused, "{context}");
    let key = new_key("holder");
    let (used, _) = present(&rig.api, &token, Some(&key)).await;
    assert_eq!(used, [Heard::Valid], "{context}: the issued token");
    let record = rig.db.record(&token).await;
    let used_at = record.used_at.unwrap();
    assert_eq!(record, Record::used(&key, used_at), "{context}");
    let (again, _) = present(&rig.api, &token, Some(&new_key("other"))).await;
    assert_eq!(again, [Heard::AlreadyUsed { used_at }], "{context}: used once");
}

/// One token, [`RACERS`] concurrent clients, half of them sharing one key, with a lost answer
/// armed for the first `times` UpdateItem requests: after each client's retries under its own
/// key, exactly one key ever got `isValid: true`, every holder of it ends valid, and every
/// other client ends `already_used`, all with the stored `usedAt`.
async fn race_under_lost_answers(rig: &Rig<impl Api>, times: usize) {
    let context = format!("race, LostAnswer x{times}");
    let (_, token) = issue(&rig.api).await;
    let shared = new_key("shared");
    let keys: Vec<String> =
        (0..RACERS).map(|i| if i % 2 == 0 { shared.clone() } else { new_key("own") }).collect();
    let before = rig.proxy.counts(UPDATE_ITEM).await;
    rig.proxy.arm(UPDATE_ITEM, Fault::LostAnswer, times);
    let results = join_all(keys.iter().map(|key| present(&rig.api, &token, Some(key)))).await;
    let left = rig.proxy.disarm(UPDATE_ITEM);
    let counts = rig.proxy.counts(UPDATE_ITEM).await;
    assert_eq!((left, counts.faulted - before.faulted), (0, times), "{context}: {counts:?}");
    assert!(counts.seen - before.seen >= RACERS + times, "{context}: {counts:?}");
    assert_eq!(counts.upstream_failures, 0, "{context}: {counts:?}");

    let record = rig.db.record(&token).await;
    let (winner, used_at) = (record.attempt.clone().unwrap(), record.used_at.unwrap());
    assert_eq!(record, Record::used(&winner, used_at), "{context}");
    let mut winning_keys = HashSet::new();
    let mut fresh_successes = 0;
    for (key, (outcomes, _)) in keys.iter().zip(&results) {
        eprintln!("{context}: {} {key}: {outcomes:?}", if *key == winner { "W" } else { " " });
        let last = outcomes.last().unwrap();
        if last.is_valid() {
            winning_keys.insert(key.clone());
        }
        if *key == winner {
            assert!(
                matches!(last, Heard::Valid) || *last == Heard::Replayed { used_at },
                "{context}: a holder of the winning key {key} ended {outcomes:?}"
            );
            assert!(
                outcomes.iter().all(|o| !matches!(o, Heard::AlreadyUsed { .. })),
                "{context}: {outcomes:?}"
            );
        } else {
            assert_eq!(*last, Heard::AlreadyUsed { used_at }, "{context}: {key}: {outcomes:?}");
            assert!(outcomes.iter().all(|o| !o.is_valid()), "{context}: {outcomes:?}");
        }
        fresh_successes += outcomes.iter().filter(|o| **o == Heard::Valid).count();
    }
    assert_eq!(winning_keys, HashSet::from([winner.clone()]), "{context}");
    if times >= RACERS * EVERY_ATTEMPT {
        // Not every client can have had an unfaulted attempt in its first call.
        let unknown = results.iter().flat_map(|(outcomes, _)| outcomes);
        let unknown = unknown.filter(|o| **o == Heard::OutcomeUnknown).count();
        assert!(unknown >= 1, "{context}: no client heard outcome_unknown");
    }
    assert!(fresh_successes <= 1, "{context}: {fresh_successes} requests used the token");
}

// ---------------------------------------------------------------------------------------------
// The proxy's faults, as the SDK sees them
// ---------------------------------------------------------------------------------------------

/// The first error of type `E` in `error`'s source chain.
fn find_source<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[tokio::test]
async fn each_injected_fault_reaches_the_sdk_as_the_failure_it_stands_for() {
    let db = Db::fresh().await;
    let proxy = Proxy::start(&endpoint()).await;
    let config =
        sdk_config(&proxy.url, RetryConfig::disabled(), ATTEMPT_TIMEOUT, OPERATION_TIMEOUT);
    let client = Client::new(&config);
    let put = |id: &str| {
        client
            .put_item()
            .table_name(&db.table)
            .item(PARTITION_KEY, AttributeValue::S(id.into()))
            .item(STATE, AttributeValue::S(UNUSED.into()))
            .send()
    };

    // A lost answer: the write is applied, and the SDK sees the connection closed before any
    // answer (hyper's IncompleteMessage, which the SDK calls a transient dispatch failure).
    proxy.arm(PUT_ITEM, Fault::LostAnswer, 1);
    let lost = put("lost").await.unwrap_err();
    let SdkError::DispatchFailure(failure) = &lost else { panic!("{lost:?}") };
    assert_eq!(failure.as_other(), Some(ErrorKind::TransientError), "{lost:?}");
    let hyper_error = find_source::<hyper::Error>(&lost).unwrap();
    assert!(hyper_error.is_incomplete_message(), "{lost:?}");
    assert!(db.item("lost").await.is_some(), "the lost answer's write was not applied");

    // A reset before forwarding: nothing is written, and the SDK sees a reset connection.
    proxy.arm(PUT_ITEM, Fault::ResetBeforeForwarding, 1);
    let reset = put("reset").await.unwrap_err();
    let SdkError::DispatchFailure(failure) = &reset else { panic!("{reset:?}") };
    assert!(failure.is_io(), "{reset:?}");
    let io = find_source::<std::io::Error>(&reset).unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset, "{reset:?}");
    assert!(db.item("reset").await.is_none(), "a reset request was forwarded");

    // A delayed answer: the write is applied, and the SDK's attempt times out first.
    proxy.arm(PUT_ITEM, Fault::Delay, 1);
    let started = Instant::now();
    let held = put("held").await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(held, SdkError::TimeoutError(_)), "{held:?}");
    assert!(waited >= ATTEMPT_TIMEOUT && waited < HELD, "{waited:?}");
    assert!(db.item("held").await.is_some(), "the delayed write was not applied");

    // Throttling: nothing is written, and the SDK parses DynamoDB's ThrottlingException.
    proxy.arm(PUT_ITEM, Fault::Throttle, 1);
    let throttled = put("throttled").await.unwrap_err();
    let service = throttled.as_service_error().unwrap_or_else(|| panic!("{throttled:?}"));
    assert!(service.is_throttling_exception(), "{throttled:?}");
    assert_eq!(service.code(), Some("ThrottlingException"));
    assert_eq!(service.message(), Some("Rate exceeded"));
    assert_eq!(throttled.raw_response().unwrap().status().as_u16(), 400);
    assert!(db.item("throttled").await.is_none(), "a throttled request was forwarded");

    // Disarmed, the proxy passes calls through.
    put("healthy").await.unwrap();
    assert!(db.item("healthy").await.is_some());
    let expected = Counts { seen: 5, faulted: 4, forwarded: 3, upstream_failures: 0 };
    assert_eq!(proxy.counts(PUT_ITEM).await, expected);
}

// ---------------------------------------------------------------------------------------------
// Through the local server
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn through_the_local_server_a_lost_consume_answer_never_tells_its_presenter_already_used() {
    let rig = Rig::local_server().await;
    lost_consume_answers(&rig).await;
}

#[tokio::test]
async fn through_the_local_server_a_consume_answer_held_past_the_attempt_timeout_ends_valid() {
    let rig = Rig::local_server().await;
    delayed_consume_answers(&rig).await;
}

#[tokio::test]
async fn through_the_local_server_a_consume_reset_before_forwarding_ends_valid() {
    let rig = Rig::local_server().await;
    reset_consumes(&rig).await;
}

#[tokio::test]
async fn through_the_local_server_a_throttled_consume_ends_valid() {
    let rig = Rig::local_server().await;
    throttled_consumes(&rig).await;
}

#[tokio::test]
async fn through_the_local_server_a_server_error_after_a_consume_was_applied_ends_valid() {
    let rig = Rig::local_server().await;
    consumes_answered_with_server_errors(&rig).await;
}

#[tokio::test]
async fn through_the_local_server_issue_never_answers_500_under_put_item_faults() {
    let rig = Rig::local_server().await;
    put_item_faults(&rig).await;
}

#[tokio::test]
async fn through_the_local_server_racing_clients_under_lost_answers_have_one_winning_key() {
    let rig = Rig::local_server().await;
    race_under_lost_answers(&rig, 1).await;
    race_under_lost_answers(&rig, RACERS * EVERY_ATTEMPT).await;
}

// ---------------------------------------------------------------------------------------------
// Through the Lambda entry point
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn through_the_lambda_a_lost_consume_answer_never_tells_its_presenter_already_used() {
    let rig = Rig::lambda().await;
    lost_consume_answers(&rig).await;
}

#[tokio::test]
async fn through_the_lambda_a_consume_answer_held_past_the_attempt_timeout_ends_valid() {
    let rig = Rig::lambda().await;
    delayed_consume_answers(&rig).await;
}

#[tokio::test]
async fn through_the_lambda_a_consume_reset_before_forwarding_ends_valid() {
    let rig = Rig::lambda().await;
    reset_consumes(&rig).await;
}

#[tokio::test]
async fn through_the_lambda_a_throttled_consume_ends_valid() {
    let rig = Rig::lambda().await;
    throttled_consumes(&rig).await;
}

#[tokio::test]
async fn through_the_lambda_a_server_error_after_a_consume_was_applied_ends_valid() {
    let rig = Rig::lambda().await;
    consumes_answered_with_server_errors(&rig).await;
}

#[tokio::test]
async fn through_the_lambda_issue_never_answers_500_under_put_item_faults() {
    let rig = Rig::lambda().await;
    put_item_faults(&rig).await;
}

#[tokio::test]
async fn through_the_lambda_racing_clients_under_lost_answers_have_one_winning_key() {
    let rig = Rig::lambda().await;
    race_under_lost_answers(&rig, 1).await;
    race_under_lost_answers(&rig, RACERS * EVERY_ATTEMPT).await;
}

// ---------------------------------------------------------------------------------------------
// The scenarios each entry point runs
// ---------------------------------------------------------------------------------------------

/// A lost answer on the first attempt is settled by the SDK's own retry (it finds the item used
/// by its attempt id: a replay); lost on every attempt, the client hears `outcome_unknown` and
/// its retry under the same key is the replay, with a chosen key or the generated one.
async fn lost_consume_answers(rig: &Rig<impl Api>) {
    use {FirstKey::*, Kind::*};
    consume_under_fault(rig, Fault::LostAnswer, 1, Chosen, &[Replayed]).await;
    consume_under_fault(rig, Fault::LostAnswer, EVERY_ATTEMPT, Chosen, &[OutcomeUnknown, Replayed])
        .await;
    consume_under_fault(
        rig,
        Fault::LostAnswer,
        EVERY_ATTEMPT,
        Generated,
        &[OutcomeUnknown, Replayed],
    )
    .await;
}

/// As a lost answer: the held attempt was applied.
async fn delayed_consume_answers(rig: &Rig<impl Api>) {
    use {FirstKey::*, Kind::*};
    consume_under_fault(rig, Fault::Delay, 1, Chosen, &[Replayed]).await;
    consume_under_fault(rig, Fault::Delay, EVERY_ATTEMPT, Chosen, &[OutcomeUnknown, Replayed])
        .await;
}

/// Nothing reached DynamoDB, but the SDK cannot know that (the request was sent): on every
/// attempt it is `outcome_unknown`; the retry then uses the token, afresh.
async fn reset_consumes(rig: &Rig<impl Api>) {
    use {FirstKey::*, Kind::*};
    let reset = Fault::ResetBeforeForwarding;
    consume_under_fault(rig, reset, 1, Chosen, &[Valid]).await;
    consume_under_fault(rig, reset, EVERY_ATTEMPT, Chosen, &[OutcomeUnknown, Valid]).await;
}

/// Throttling proves nothing was written: `unavailable`, then the retry uses the token.
async fn throttled_consumes(rig: &Rig<impl Api>) {
    use {FirstKey::*, Kind::*};
    consume_under_fault(rig, Fault::Throttle, 1, Chosen, &[Valid]).await;
    consume_under_fault(rig, Fault::Throttle, EVERY_ATTEMPT, Chosen, &[Unavailable, Valid]).await;
}

/// DynamoDB's InternalServerError after the write was applied: as a lost answer.
async fn consumes_answered_with_server_errors(rig: &Rig<impl Api>) {
    use {FirstKey::*, Kind::*};
    let error = Fault::ServerError;
    consume_under_fault(rig, error, 1, Chosen, &[Replayed]).await;
    consume_under_fault(rig, error, EVERY_ATTEMPT, Chosen, &[OutcomeUnknown, Replayed]).await;
    consume_under_fault(rig, error, EVERY_ATTEMPT, Generated, &[OutcomeUnknown, Replayed]).await;
}

/// Every fault on PutItem: on one attempt the SDK's retry issues (a lost or held insert finds
/// its own record); on every attempt `GET /tokens` is a `503 unavailable` handing out nothing.
async fn put_item_faults(rig: &Rig<impl Api>) {
    use Kind::*;
    for fault in [
        Fault::LostAnswer,
        Fault::Delay,
        Fault::ResetBeforeForwarding,
        Fault::Throttle,
        Fault::ServerError,
    ] {
        issue_under_fault(rig, fault, 1, &[Issued]).await;
        issue_under_fault(rig, fault, EVERY_ATTEMPT, &[Unavailable, Issued]).await;
    }
}
