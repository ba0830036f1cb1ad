//! The AWS Lambda shape: API Gateway events in, the same axum router as the local server,
//! DynamoDB for records.
//!
//! Both payloads API Gateway sends a Lambda proxy integration reach the router: REST API (v1)
//! events and HTTP API (v2) events, which are also what Lambda function URLs and
//! `cargo lambda watch` send (`scripts/aws-local`). [`strip_stage`] removes a stage name from the
//! front of the path in either, so the routes are the local server's.
//!
//! Configuration comes from the environment once, at cold start ([`LambdaConfig::from_env`]);
//! the signing key is read from AWS Secrets Manager then and the table checked with
//! `DescribeTable`, which also opens the DynamoDB connection the first request reuses. A cold
//! start that cannot read the key or find the table does not exit (API Gateway would answer a
//! bare `502`): [`LambdaApp`] logs the cause, answers `503` JSON with `Retry-After`, and tries
//! again on a later invocation, with a backoff.

pub use crate::app::{IssuerKeySource, KeySource, OpsSettings};
use crate::app::{Settings, StoreSettings};
use crate::audit::LogSink;
use crate::auth::IssuerKeys;
use crate::contract::{
    DEFAULT_TABLE, ENV_ALLOWED_ORIGINS, ENV_DEFAULT_TTL, ENV_ISSUER_KEYS,
    ENV_ISSUER_KEYS_SECRET_ARN, ENV_MAX_TTL, ENV_PREVIOUS_SECRETS, ENV_RATE_LIMIT_PER_MINUTE,
    ENV_REPLAY_WINDOW, ENV_REQUEST_TIMEOUT, ENV_SECRET, ENV_SECRET_ARN, ENV_TABLE,
};
use crate::http::{AllowedOrigins, ApiError, cors};
use crate::keys::Secret;
use crate::ops::METRICS_CONTENT_TYPE;
use crate::request::DEFAULT_REQUEST_TIMEOUT_SECS;
use crate::tokens::{
    DEFAULT_LIFETIME_SECS, DEFAULT_MAX_LIFETIME_SECS, DEFAULT_REPLAY_WINDOW_SECS, Lifetimes,
};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use shared::{Reason, ValidateResponse};
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// The Lambda's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaConfig {
    /// DynamoDB table (`TOKEN_SERVICE_TABLE`, default `TokenTable`).
    pub table: String,
    /// The signing key's source.
    pub key: KeySource,
    /// CORS origins (`TOKEN_SERVICE_ALLOWED_ORIGINS`, comma-separated).
    pub origins: AllowedOrigins,
    /// Token lifetimes (`TOKEN_SERVICE_DEFAULT_TTL`, `TOKEN_SERVICE_MAX_TTL`, seconds).
    pub lifetimes: Lifetimes,
    /// Replay window (`TOKEN_SERVICE_REPLAY_WINDOW`, seconds, default 600).
    pub replay_window: u64,
    /// Issuer keys (`TOKEN_SERVICE_ISSUER_KEYS_SECRET_ARN`, or `TOKEN_SERVICE_ISSUER_KEYS` for
    /// local use), previous keys (`TOKEN_SERVICE_PREVIOUS_SECRETS`, with
    /// `TOKEN_SERVICE_SECRET`), rate limit (`TOKEN_SERVICE_RATE_LIMIT_PER_MINUTE`), request
    /// timeout (`TOKEN_SERVICE_REQUEST_TIMEOUT`) and EMF metrics named after
    /// `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda).
    pub ops: OpsSettings,
}

/// Set by Lambda in every function's environment: the function's name, the `FunctionName`
/// dimension of the EMF metrics.
pub const ENV_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";

impl LambdaConfig {
    /// Reads the settings through `var` (pass `|name| std::env::var(name).ok()`; tests pass a
    /// map, never touching the process environment).
    ///
    /// # Errors
    /// A message naming the variable that is missing or invalid.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let key = match (var(ENV_SECRET_ARN), var(ENV_SECRET)) {
            (Some(arn), _) if !arn.is_empty() => KeySource::SecretsManager(arn),
            (_, Some(secret)) if !secret.is_empty() => KeySource::Value(secret),
            _ => {
                return Err(format!("set {ENV_SECRET_ARN} (or {ENV_SECRET} for local use)"));
            }
        };
        let seconds = |name: &str, default: u64| match var(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| format!("{name} must be whole seconds: {v:?}")),
        };
        let lifetimes = Lifetimes::new(
            seconds(ENV_DEFAULT_TTL, DEFAULT_LIFETIME_SECS)?,
            seconds(ENV_MAX_TTL, DEFAULT_MAX_LIFETIME_SECS)?,
        )?;
        let origins = AllowedOrigins::parse(&var(ENV_ALLOWED_ORIGINS).unwrap_or_default())
            .map_err(|e| format!("{ENV_ALLOWED_ORIGINS}: {e}"))?;
        let table = var(ENV_TABLE).filter(|t| !t.is_empty()).unwrap_or(DEFAULT_TABLE.into());
        let replay_window = seconds(ENV_REPLAY_WINDOW, DEFAULT_REPLAY_WINDOW_SECS)?;
        let issuer_keys = match (var(ENV_ISSUER_KEYS_SECRET_ARN), var(ENV_ISSUER_KEYS)) {
            (Some(arn), _) if !arn.is_empty() => IssuerKeySource::SecretsManager(arn),
            (_, Some(keys)) if !keys.is_empty() => IssuerKeySource::Keys(
                IssuerKeys::parse(&keys).map_err(|e| format!("{ENV_ISSUER_KEYS}: {e}"))?,
            ),
            _ => IssuerKeySource::None,
        };
        let previous_secrets = var(ENV_PREVIOUS_SECRETS)
            .map(|list| {
                list.split(',').map(str::trim).filter(|k| !k.is_empty()).map(Secret::from).collect()
            })
            .unwrap_or_default();
        let per_minute = match var(ENV_RATE_LIMIT_PER_MINUTE) {
            None => 0,
            Some(v) => v.parse::<u32>().map_err(|_| {
                format!("{ENV_RATE_LIMIT_PER_MINUTE} must be a whole number: {v:?}")
            })?,
        };
        let request_timeout = seconds(ENV_REQUEST_TIMEOUT, DEFAULT_REQUEST_TIMEOUT_SECS)?;
        if request_timeout == 0 {
            return Err(format!("{ENV_REQUEST_TIMEOUT} must be at least 1 second"));
        }
        let ops = OpsSettings {
            previous_secrets,
            issuer_keys,
            rate_limit_per_minute: NonZeroU32::new(per_minute),
            // API Gateway's own view of the client (requestContext.identity.sourceIp).
            trust_forwarded_for: false,
            request_timeout: Duration::from_secs(request_timeout),
            emf_function_name: var(ENV_FUNCTION_NAME).filter(|n| !n.is_empty()),
        };
        Ok(Self { table, key, origins, lifetimes, replay_window, ops })
    }

    /// The [`Settings`] these stand for: DynamoDB, never created by the function (the CDK app
    /// owns the table; a missing one fails the cold start).
    pub fn settings(self) -> Settings {
        Settings {
            store: StoreSettings::Dynamodb { table: self.table, create: false },
            key: self.key,
            origins: self.origins,
            lifetimes: self.lifetimes,
            replay_window: self.replay_window,
            ops: self.ops,
            log: LogSink::Stdout,
            ui_dir: None,
            aws: None,
        }
    }
}

/// Builds the Lambda's router from `config` through [`crate::app::build`], the local server's
/// path too: SDK configuration, key, DynamoDB store (checked to exist).
///
/// # Errors
/// A message if the region is missing, the secret cannot be read, the key is too short or the
/// table is missing.
pub async fn build(config: LambdaConfig) -> Result<Router, String> {
    crate::app::build(config.settings()).await.map(|app| app.router).map_err(|e| e.to_string())
}

/// Which payload an invocation arrived in: `"apigw_rest"` (API Gateway REST API, v1),
/// `"apigw_v2"` (HTTP API, Lambda function URLs, `cargo lambda watch`) or `"other"`. Logged at
/// debug level for every invocation; the aws-local tests read it.
pub fn event_kind(request: &Request) -> &'static str {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(_)) => "apigw_rest",
        Some(RequestContext::ApiGatewayV2(_)) => "apigw_v2",
        _ => "other",
    }
}

/// `request` through `router`, its answer [`marked_for_lambda_http`].
async fn serve(router: Router, request: Request) -> Response {
    marked_for_lambda_http(router.oneshot(request).await.unwrap_or_else(|e| match e {}))
}

/// `response`, with the metrics' OpenMetrics text marked as text for lambda_http, which sends a
/// body whose content type it does not know as base64 (API Gateway would pass that on
/// undecoded). Only the Lambda does this: the header means nothing to a local client.
fn marked_for_lambda_http(mut response: Response) -> Response {
    if response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t == METRICS_CONTENT_TYPE) {
        response.headers_mut().insert(
            HeaderName::from_static("x-lambda-http-content-encoding"),
            HeaderValue::from_static("text"),
        );
    }
    response
}

/// Removes the API Gateway stage from the front of the path (`/prod/tokens` -> `/tokens`), so
/// the router matches whatever the payload and `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` say.
///
/// - REST (v1): `lambda_http` puts the stage in front of `path` unless that variable is set.
/// - HTTP API (v2): the `$default` stage (and a function URL) has no prefix; a named stage is
///   already in `rawPath` (`/prod/tokens`), and stays there even with the variable set.
pub fn strip_stage(mut request: Request) -> Request {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else { return request };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return request,
    };
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = path_and_query.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Waits between attempts to build the service after a failed cold start: `first`, then twice
/// as long after each further failure, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s, ... up to 30 s: a Secrets Manager or DynamoDB hiccup heals within a
    /// retry or two, and a function that stays broken costs one build attempt per 30 s.
    fn default() -> Self {
        Self { first: Duration::from_secs(1), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The wait after `failures` failed attempts in a row (1 or more).
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// Longest one attempt to build the service may take (Secrets Manager, then DynamoDB, each
/// bounded by the SDK's 5 s operation timeout), so a retry inside an invocation ends well within
/// the function's 10 s timeout (`TIMEOUT_SECONDS` in infra/lib/api.ts).
pub const BUILD_BUDGET: Duration = Duration::from_secs(6);

/// The message of the `503` a cold start that could not build the service answers with. The
/// cause goes to the log only.
pub const UNAVAILABLE_MESSAGE: &str =
    "the service cannot read its signing key or reach its token table yet; try again shortly";

/// A boxed attempt to build the router.
type BuildFuture = Pin<Box<dyn Future<Output = Result<Router, String>> + Send>>;

/// What the function serves: the router once it is built; until then `503` answers while it
/// retries, or `500` answers for ever if the environment is misconfigured.
#[derive(Clone)]
pub struct LambdaApp {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    build: Box<dyn Fn() -> BuildFuture + Send + Sync>,
    origins: AllowedOrigins,
    backoff: Backoff,
}

enum State {
    Serving(Router),
    /// The last `failures` attempts failed; the next one is due at `retry_at`.
    Failed {
        failures: u32,
        retry_at: Instant,
    },
    /// The configuration is wrong; the environment cannot change within an execution
    /// environment, so nothing is retried.
    Misconfigured,
}

impl LambdaApp {
    /// The cold start: builds the router through `build` (bounded by [`BUILD_BUDGET`]). On
    /// failure the cause is logged and the app answers `503` (with CORS for `origins`) until a
    /// later invocation's attempt, due after `backoff`, succeeds.
    pub async fn start<F, Fut>(origins: AllowedOrigins, backoff: Backoff, build: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Router, String>> + Send + 'static,
    {
        let build: Box<dyn Fn() -> BuildFuture + Send + Sync> = Box::new(move || Box::pin(build()));
        let state = match attempt(&build).await {
            Ok(router) => State::Serving(router),
            Err(cause) => {
                let retry_in = backoff.after(1);
                tracing::error!(
                    error = %cause,
                    failures = 1,
                    retry_in_secs = retry_in.as_secs_f64(),
                    "cold start failed: answering 503 until a retry succeeds"
                );
                State::Failed { failures: 1, retry_at: Instant::now() + retry_in }
            }
        };
        Self { inner: Arc::new(Inner { state: Mutex::new(state), build, origins, backoff }) }
    }

    /// An app for an environment that [`LambdaConfig::from_env`] refused: every request gets a
    /// `500` (`internal`) and the cause is logged each time, since no retry can fix it.
    pub fn misconfigured(cause: &str) -> Self {
        tracing::error!(error = %cause, "cold start failed: the configuration is invalid");
        let never = Box::new(|| -> BuildFuture { Box::pin(async { Err("misconfigured".into()) }) });
        let inner = Inner {
            state: Mutex::new(State::Misconfigured),
            build: never,
            origins: AllowedOrigins::None,
            backoff: Backoff::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Whether the router is built (the cold start, or a retry, succeeded).
    pub async fn is_serving(&self) -> bool {
        matches!(*self.inner.state.lock().await, State::Serving(_))
    }

    /// Answers one request: routed once the service is built, else a `503` or `500` answer.
    pub async fn handle(&self, request: Request) -> Response {
        tracing::debug!(
            event = event_kind(&request),
            method = %request.method(),
            path = request.uri().path(),
            "invocation"
        );
        let request = strip_stage(request);
        let mut state = self.inner.state.lock().await;
        let retry_at = match &*state {
            State::Serving(router) => {
                let router = router.clone();
                drop(state);
                return serve(router, request).await;
            }
            State::Misconfigured => {
                tracing::error!("not serving: the configuration is invalid (see the cold start)");
                return ApiError::Internal("the function's configuration is invalid")
                    .into_response();
            }
            State::Failed { failures, retry_at } if Instant::now() < *retry_at => {
                tracing::warn!(failures, "not serving yet: waiting to retry the cold start");
                *retry_at
            }
            State::Failed { failures, .. } => {
                let failures = *failures;
                match attempt(&self.inner.build).await {
                    Ok(router) => {
                        tracing::info!(failures, "cold start succeeded on a retry");
                        *state = State::Serving(router.clone());
                        drop(state);
                        return serve(router, request).await;
                    }
                    Err(cause) => {
                        let failures = failures.saturating_add(1);
                        let retry_in = self.inner.backoff.after(failures);
                        tracing::error!(
                            error = %cause,
                            failures,
                            retry_in_secs = retry_in.as_secs_f64(),
                            "cold start retry failed: answering 503"
                        );
                        let retry_at = Instant::now() + retry_in;
                        *state = State::Failed { failures, retry_at };
                        retry_at
                    }
                }
            }
        };
        drop(state);
        let wait = retry_at.saturating_duration_since(Instant::now());
        // Whole seconds, rounded up, at least 1 (RFC 9110 section 10.2.3: delay-seconds).
        let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.unavailable(request, retry_after.max(1)).await
    }

    /// The `503` stand-in answer, through the API's CORS rules: preflights are answered as the
    /// router would, and the browser may read the `503` and its `Retry-After`.
    async fn unavailable(&self, request: Request, retry_after: u64) -> Response {
        let respond = tower::service_fn(move |_: Request| async move {
            let body = ValidateResponse::refused(Reason::Unavailable, UNAVAILABLE_MESSAGE);
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            Ok::<_, Infallible>(response)
        });
        let answer = match cors(&self.inner.origins) {
            Some(cors) => cors.layer(respond).oneshot(request).await,
            None => respond.oneshot(request).await,
        };
        answer.unwrap_or_else(|e| match e {})
    }
}

/// One attempt to build the router, bounded by [`BUILD_BUDGET`].
async fn attempt(build: &(dyn Fn() -> BuildFuture + Send + Sync)) -> Result<Router, String> {
    match tokio::time::timeout(BUILD_BUDGET, build()).await {
        Ok(built) => built,
        Err(_) => Err(format!("gave up after {} s", BUILD_BUDGET.as_secs())),
    }
}

impl Service<Request> for LambdaApp {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let app = self.clone();
        Box::pin(async move { Ok(app.handle(request).await) })
    }
}

/// The function's whole life: reads the environment, builds the service (or its stand-in) and
/// serves invocations from the Lambda Runtime API until the execution environment ends.
///
/// # Errors
/// Only if the Runtime API itself fails.
pub async fn run() -> Result<(), lambda_http::Error> {
    let started = std::time::Instant::now();
    let app = match LambdaConfig::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => {
            let origins = config.origins.clone();
            LambdaApp::start(origins, Backoff::default(), move || build(config.clone())).await
        }
        Err(cause) => LambdaApp::misconfigured(&cause),
    };
    tracing::info!(
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        serving = app.is_serving().await,
        "init done"
    );
    lambda_http::run(app).await
}
