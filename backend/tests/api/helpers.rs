//! `TestApp`: a server on a free port of 127.0.0.1, one typed method per endpoint, and every
//! answer recorded and checked against the OpenAPI document when the app is dropped
//! (`schema.rs`).
//!
//! Two ways to start one:
//! - [`TestApp::spawn`]/[`TestApp::spawn_with`]: the local server's own start-up
//!   (`Server::build`: key, embedded store, UI fallback, sweeper), on the system clock. With
//!   [`API_BASE_URL`] set, [`TestApp::spawn`] starts nothing and talks to that server instead:
//!   `scripts/test` points it at `scripts/aws-local`, the Lambda binary under
//!   `cargo lambda watch`, so every test written with [`TestApp::spawn`] (those that assume
//!   only the default configuration, not a process of their own) also runs against the Lambda;
//! - [`TestApp::spawn_on`]: the same router (`backend::http::router`) over a chosen store, on a
//!   [`ManualClock`] at [`NOW`], so times in answers are exact. Its DynamoDB store is configured
//!   in code (endpoint, region, credentials), because `Server::build` reads the AWS settings
//!   from the process environment and tests may not change it (`unsafe_code` is forbidden, and
//!   `set_var` would leak into every other test of the binary). `process.rs` runs
//!   `Server::build` on DynamoDB through the real binary instead.

use crate::schema::Recorder;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use backend::clock::ManualClock;
use backend::http::{AllowedOrigins, router};
use backend::keys::SigningKey;
use backend::server::{Config, Server};
use backend::store::TokenStore;
use backend::store::dynamodb::{DynamoStore, https_client};
use backend::store::embedded::EmbeddedStore;
use backend::tokens::{Lifetimes, TokenService};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use shared::{IssueResponse, StatusResponse, ValidateResponse};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A fixed test key (the real server generates or is given one).
pub const SECRET: &str = "http-test-key-http-test-key-http-test-key";
/// The clock of a [`TestApp::spawn_on`] app when it starts, epoch seconds:
/// `2027-01-15T08:00:00Z`.
pub const NOW: i64 = 1_800_000_000;

/// Environment variable: the base URL of a running service (`http://127.0.0.1:PORT`, no
/// trailing slash needed) that [`TestApp::spawn`] uses instead of starting the local server.
/// It must run with the defaults of [`config`] other than the key: lifetimes 8 h and 7 days,
/// replay window 600 s, no UI.
pub const API_BASE_URL: &str = "API_BASE_URL";

/// Where a [`TestApp::spawn_on`] app keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded redb store in a temporary directory.
    Embedded,
    /// A fresh table in DynamoDB Local at `DYNAMODB_ENDPOINT`.
    Dynamodb,
    /// A DynamoDB store where nothing listens (127.0.0.1 port 9): every store call fails at
    /// once, so an answer that arrives anyway never asked the store.
    Unreachable,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// Capability: a body that is not UTF-8, sent as `application/json`, reaches the service.
    /// False for the service at [`API_BASE_URL`] (`scripts/aws-local`): `cargo lambda watch`
    /// cannot put such bytes into a function URL event's text body and answers `500` itself;
    /// sent as `application/octet-stream`, they reach the function base64-encoded.
    pub non_utf8_json_bodies: bool,
    /// The service's clock, for apps from [`TestApp::spawn_on`].
    clock: Option<Arc<ManualClock>>,
    _data: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    /// Dropped after `stop` is sent (fields drop after `Drop::drop`), checking every answer.
    recorder: Recorder,
}

pub fn config(data_dir: PathBuf) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: backend::server::StoreKind::Embedded,
        table: "TokenTable".into(),
        create_table: false,
        data_dir,
        secret: Some(SECRET.into()),
        ui_dir: PathBuf::from("/nonexistent"),
        allowed_origins: String::new(),
        default_ttl: 8 * 3600,
        max_ttl: 7 * 24 * 3600,
        sweep_interval: 60,
        replay_window: 600,
        previous_secrets: None,
        issuer_keys: None,
        issuer_keys_file: None,
        rate_limit_per_minute: 0,
        trust_forwarded_for: false,
        request_timeout: 8,
        header_read_timeout: 10,
        max_connections: 512,
        audit_log: backend::audit::LogSink::memory(),
    }
}

/// SDK configuration for DynamoDB at `endpoint` with dummy credentials, set in code.
async fn dynamodb_config(endpoint: &str, retries: RetryConfig) -> aws_config::SdkConfig {
    // DynamoDB Local shares 2 cores with the tests: allow it more time than DynamoDB needs.
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(15))
        .operation_timeout(Duration::from_secs(30))
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "api-tests"))
        .retry_config(retries)
        .timeout_config(timeouts)
        .load()
        .await
}

impl TestApp {
    /// The local server with the test [`config`], or the service at [`API_BASE_URL`] if set.
    pub async fn spawn() -> Self {
        match std::env::var(API_BASE_URL) {
            Ok(base) if !base.is_empty() => Self {
                base: base.trim_end_matches('/').to_owned(),
                client: reqwest::Client::new(),
                non_utf8_json_bodies: false,
                clock: None,
                _data: None,
                stop: None,
                recorder: Recorder::new(false),
            },
            _ => Self::spawn_with(|c| c).await,
        }
    }

    /// The local server's start-up with the test [`config`], changed by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(Config) -> Config) -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = configure(config(data.path().to_owned()));
        let serves_ui = config.ui_dir.join("index.html").is_file();
        let server = Server::build(config).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move { drop(stopped.await) }));
        Self {
            base,
            client: reqwest::Client::new(),
            non_utf8_json_bodies: true,
            clock: None,
            _data: Some(data),
            stop: Some(stop),
            recorder: Recorder::new(serves_ui),
        }
    }

    /// The API router over `backend`, on a [`ManualClock`] at [`NOW`], served on a free port.
    pub async fn spawn_on(backend: Backend) -> Self {
        let (store, data): (Arc<dyn TokenStore>, _) = match backend {
            Backend::Embedded => {
                let data = tempfile::tempdir().unwrap();
                let store = EmbeddedStore::open(data.path().join("tokens.redb")).unwrap();
                (Arc::new(store), Some(data))
            }
            Backend::Dynamodb => {
                let endpoint = std::env::var("DYNAMODB_ENDPOINT").expect(
                    "DYNAMODB_ENDPOINT is not set: run scripts/test (it starts DynamoDB Local)",
                );
                let config = dynamodb_config(&endpoint, RetryConfig::standard()).await;
                let store = DynamoStore::new(&config, format!("api-{}", uuid::Uuid::new_v4()));
                assert!(store.create_table_if_missing().await.unwrap(), "the table was not new");
                (Arc::new(store), None)
            }
            Backend::Unreachable => {
                let config = dynamodb_config("http://127.0.0.1:9", RetryConfig::disabled()).await;
                (Arc::new(DynamoStore::new(&config, "TokenTable")), None)
            }
        };
        let clock = Arc::new(ManualClock::at(NOW));
        let key = SigningKey::parse(SECRET.as_bytes()).unwrap();
        let service = TokenService::new(&key, store, clock.clone(), Lifetimes::default());
        let app = router(Arc::new(service), &AllowedOrigins::None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { drop(stopped.await) })
                .await
        });
        Self {
            base,
            client: reqwest::Client::new(),
            non_utf8_json_bodies: true,
            clock: Some(clock),
            _data: data,
            stop: Some(stop),
            recorder: Recorder::new(false),
        }
    }

    /// The service's clock (only for apps from [`TestApp::spawn_on`]).
    pub fn clock(&self) -> &ManualClock {
        self.clock.as_deref().expect("only TestApp::spawn_on apps have a manual clock")
    }

    /// Sends a request built on `self.client`, recording the answer for the OpenAPI check.
    pub async fn send(&self, request: RequestBuilder) -> Response {
        self.recorder.send(request).await
    }

    /// How many answers this app has received so far.
    pub fn answers(&self) -> usize {
        self.recorder.len()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    /// `POST {path}` with `body` as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// `GET /tokens`, expecting 200.
    pub async fn issue(&self) -> IssueResponse {
        self.issue_with(&[]).await
    }

    /// `GET /tokens` with `query` (`ttl`, `purpose`, `subject`, `supersede`), as it comes.
    pub async fn try_issue(&self, query: &[(&str, &str)]) -> Response {
        self.send(self.client.get(format!("{}/tokens", self.base)).query(query)).await
    }

    /// `GET /tokens` with `query`, expecting 200.
    pub async fn issue_with(&self, query: &[(&str, &str)]) -> IssueResponse {
        let response = self.try_issue(query).await;
        assert_eq!(response.status(), StatusCode::OK, "GET /tokens {query:?}");
        response.json().await.unwrap()
    }

    /// `POST /tokens` with a raw body and content type.
    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> Response {
        let mut request = self.client.post(format!("{}/tokens", self.base)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.send(request).await
    }

    /// `POST /tokens` with `{"token": token}` and an `Idempotency-Key` header.
    pub async fn post_with_key(&self, token: &str, key: &str) -> Response {
        self.send(
            self.client
                .post(format!("{}/tokens", self.base))
                .header("idempotency-key", key)
                .json(&json!({ "token": token })),
        )
        .await
    }

    /// `POST /tokens` with `{"token": token}` and `Idempotency-Key: key`, expecting 200.
    pub async fn validate_with_key(&self, token: &str, key: &str) -> ValidateResponse {
        let response = self.post_with_key(token, key).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `POST /tokens` with `{"token": token}`, expecting 200.
    pub async fn validate(&self, token: &str) -> ValidateResponse {
        let response =
            self.post_raw(json!({ "token": token }).to_string(), Some("application/json")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `POST /tokens` for a caller that accepts `purpose` and `subject` (absent when `None`),
    /// expecting 200.
    pub async fn validate_for(
        &self,
        token: &str,
        purpose: Option<&str>,
        subject: Option<&str>,
    ) -> ValidateResponse {
        let request = shared::ValidateRequest {
            purpose: purpose.map(str::to_owned),
            subject: subject.map(str::to_owned),
            ..shared::ValidateRequest::new(token)
        };
        let response = self.post_json("/tokens", &serde_json::to_value(request).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK, "{purpose:?} {subject:?}");
        response.json().await.unwrap()
    }

    /// `POST /tokens/status` with `{"token": token}`, expecting 200.
    pub async fn status(&self, token: &str) -> StatusResponse {
        let response = self.post_json("/tokens/status", &json!({ "token": token })).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `POST /tokens/revoke` with `{"token": token}`, expecting 200.
    pub async fn revoke(&self, token: &str) -> StatusResponse {
        let response = self.post_json("/tokens/revoke", &json!({ "token": token })).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts an error answer: its status, JSON shape, reason and `Cache-Control: no-store`.
pub async fn assert_error(response: Response, status: StatusCode, reason: &str) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["isValid"], false, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

/// A compact JWS over `header` and `claims`, HMAC-SHA256 with `key`: a token the service never
/// issued (with [`SECRET`], one only the service could have signed).
pub fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let message = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message.as_bytes());
    format!("{message}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// The claims of a compact JWS, read without verifying it.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}
