//! The AWS Lambda shape: API Gateway (REST API, Lambda proxy integration) events in, the same
//! axum router as the local server, DynamoDB for records.
//!
//! Configuration comes from the environment once, at cold start ([`LambdaConfig::from_env`]);
//! the signing key is read from AWS Secrets Manager then and kept for the life of the execution
//! environment. Anything missing or wrong fails the cold start with a clear log line, not a
//! request.

pub use crate::app::{IssuerKeySource, KeySource, OpsSettings};
use crate::app::{Settings, StoreSettings};
use crate::audit::LogSink;
use crate::auth::IssuerKeys;
use crate::contract::{
    DEFAULT_TABLE, ENV_ALLOWED_ORIGINS, ENV_DEFAULT_TTL, ENV_ISSUER_KEYS,
    ENV_ISSUER_KEYS_SECRET_ARN, ENV_MAX_TTL, ENV_PREVIOUS_SECRETS, ENV_RATE_LIMIT_PER_MINUTE,
    ENV_REPLAY_WINDOW, ENV_REQUEST_TIMEOUT, ENV_SECRET, ENV_SECRET_ARN, ENV_TABLE,
};
use crate::http::AllowedOrigins;
use crate::keys::Secret;
use crate::request::DEFAULT_REQUEST_TIMEOUT_SECS;
use crate::tokens::{
    DEFAULT_LIFETIME_SECS, DEFAULT_MAX_LIFETIME_SECS, DEFAULT_REPLAY_WINDOW_SECS, Lifetimes,
};
use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use std::num::NonZeroU32;
use std::time::Duration;

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

/// Removes the API Gateway stage from the front of the path (`/prod/tokens` -> `/tokens`), so
/// the router matches whether or not `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set.
pub fn strip_stage(mut request: Request) -> Request {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage else { return request };
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
