//! One way to build the service, for both entry points: [`build`] turns [`Settings`] into the
//! router, so a rule about keys, stores or faults holds for the local server and the Lambda
//! alike. The local server's flags ([`crate::server::Config`]) and the Lambda's environment
//! ([`crate::lambda::LambdaConfig`]) are only two ways to fill in [`Settings`]; every
//! environment variable name is in [`crate::contract`].

use crate::audit::{LogSink, Telemetry};
use crate::auth::IssuerKeys;
use crate::clock::{Clock, SystemClock};
use crate::http::{AllowedOrigins, api, not_found};
use crate::keys::{KeyError, KeyRing, MIN_KEY_BYTES, Secret, SigningKey};
use crate::limits::RateLimit;
use crate::metrics::{Emf, MeteredStore, Metrics};
use crate::ops::{Guards, outer};
use crate::request::{DEFAULT_REQUEST_TIMEOUT_SECS, Tracking};
use crate::store::dynamodb::{DynamoStore, sdk_config};
#[cfg(feature = "embedded-store")]
use crate::store::embedded::EmbeddedStore;
use crate::store::{StoreError, TokenStore};
use crate::tokens::{Lifetimes, TokenService};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get_service;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

/// Everything that decides how the service behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where records live.
    pub store: StoreSettings,
    /// Where the signing key comes from.
    pub key: KeySource,
    /// Browser origins allowed to call the API (CORS).
    pub origins: AllowedOrigins,
    /// Default and longest token lifetimes.
    pub lifetimes: Lifetimes,
    /// How long after a token's use a retry with the same `Idempotency-Key` gets that success
    /// again, seconds (`TOKEN_SERVICE_REPLAY_WINDOW`, default 600).
    pub replay_window: u64,
    /// Issuer keys, rate limits, key rotation, timeouts and telemetry.
    pub ops: OpsSettings,
    /// Where audit lines (and EMF lines, with [`OpsSettings::emf_function_name`]) go.
    pub log: LogSink,
    /// The built web UI, served at `/` (local server only); `None` serves the API only.
    pub ui_dir: Option<PathBuf>,
    /// AWS configuration to use instead of the standard chain ([`sdk_config`]); tests point
    /// it at local emulators without touching the process environment.
    pub aws: Option<aws_config::SdkConfig>,
}

/// The settings of issue 13, "running it for real": everything is off by default except the
/// request timeout, so the open seed behaviour is kept until an operator turns a guard on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsSettings {
    /// Previous signing keys, each at least 32 bytes, that still verify tokens issued before a
    /// rotation (`TOKEN_SERVICE_PREVIOUS_SECRETS`); never used to sign.
    pub previous_secrets: Vec<Secret>,
    /// Who may issue tokens and read metrics.
    pub issuer_keys: IssuerKeySource,
    /// Requests per minute per client on `/tokens` (`TOKEN_SERVICE_RATE_LIMIT_PER_MINUTE`);
    /// `None` is unlimited.
    pub rate_limit_per_minute: Option<NonZeroU32>,
    /// Take the client's address from the last `X-Forwarded-For` entry (a proxy in front).
    pub trust_forwarded_for: bool,
    /// Overall deadline of one request (`TOKEN_SERVICE_REQUEST_TIMEOUT`, seconds).
    pub request_timeout: Duration,
    /// Write metrics as CloudWatch EMF lines naming this function (the Lambda's
    /// `AWS_LAMBDA_FUNCTION_NAME`); `None` writes none.
    pub emf_function_name: Option<String>,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self {
            previous_secrets: Vec::new(),
            issuer_keys: IssuerKeySource::None,
            rate_limit_per_minute: None,
            trust_forwarded_for: false,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            emf_function_name: None,
        }
    }
}

/// Where the issuer keys come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IssuerKeySource {
    /// No keys: issuing and metrics are open (the default).
    #[default]
    None,
    /// These keys (from `TOKEN_SERVICE_ISSUER_KEYS` or `--issuer-keys-file`).
    Keys(IssuerKeys),
    /// The ARN of a Secrets Manager secret whose string holds the keys, one a line or
    /// comma-separated (`TOKEN_SERVICE_ISSUER_KEYS_SECRET_ARN`), read once at cold start.
    SecretsManager(String),
}

/// The token store to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// The embedded redb file at `path` (cargo feature `embedded-store`, on by default; the
    /// Lambda is built without it).
    #[cfg(feature = "embedded-store")]
    Embedded {
        /// The database file.
        path: PathBuf,
    },
    /// A DynamoDB table through the standard AWS configuration chain.
    Dynamodb {
        /// The table's name.
        table: String,
        /// Create the table (with TTL on `expiry`) if it is missing, instead of refusing to start.
        create: bool,
    },
    /// Keeps nothing, so tokens are NOT single-use: benchmark builds only (`store::null`).
    #[cfg(feature = "bench-null-store")]
    Null,
}

/// Where the signing key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The ARN of a Secrets Manager secret whose `SecretString` is the key (UTF-8, at least 32
    /// bytes), read once at cold start. The deployed shape. Its `AWSCURRENT` version signs; its
    /// `AWSPREVIOUS` version, if any, still verifies (key rotation).
    SecretsManager(String),
    /// The key itself (UTF-8, at least 32 bytes), from `TOKEN_SERVICE_SECRET`.
    Value(String),
    /// A key file, created with a random 256-bit key (mode 0600) if it does not exist.
    File(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SecretsManager(arn) => f.debug_tuple("SecretsManager").field(arn).finish(),
            Self::Value(_) => f.write_str("Value(<redacted>)"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is out of range; the text says which.
    #[error("{0}")]
    Config(String),
    /// The given key is too short.
    #[error("TOKEN_SERVICE_SECRET / --secret: {0}")]
    Key(#[from] KeyError),
    /// The kept key file holds a key that is too short (truncated or replaced).
    #[error("signing key file {path}: {source}; delete it to generate a new key")]
    KeyFileInvalid {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The key file cannot be read or written.
    #[error("signing key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The key cannot be read from AWS Secrets Manager.
    #[error("signing key from Secrets Manager: {0}")]
    SecretsManager(String),
    /// A previous signing key is too short.
    #[error("TOKEN_SERVICE_PREVIOUS_SECRETS: previous key {index}: {source}")]
    PreviousKey {
        /// Its position in the list, from 1.
        index: usize,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The issuer keys are missing, too short or cannot be read.
    #[error("issuer keys: {0}")]
    IssuerKeys(String),
    /// The store file cannot be opened: locked by another process, unreadable or corrupt.
    #[error("token store {path}: {}", causes(source))]
    Store {
        /// The store file.
        path: PathBuf,
        /// What failed.
        source: StoreError,
    },
    /// DynamoDB is misconfigured or its table is missing or could not be created.
    #[error("DynamoDB: {0}")]
    Dynamo(String),
    /// The data directory cannot be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// What failed.
        source: io::Error,
    },
}

/// The diagnostic log filter of both entry points, from `RUST_LOG`: a level (`debug`) or
/// `target=level` directives (`info,backend::store=debug`), the syntax of tracing-subscriber's
/// [`Targets`](tracing_subscriber::filter::Targets) (no span or field filters: that needs
/// `EnvFilter` and a regex engine, ~200 KiB of the Lambda). `info` when unset or unreadable.
pub fn log_filter() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// The built service.
pub struct App {
    /// The API router (the local server adds the UI to it).
    pub router: Router,
    /// The embedded store, which the local server sweeps; `None` for other stores.
    #[cfg(feature = "embedded-store")]
    pub embedded: Option<Arc<EmbeddedStore>>,
    /// The clock the service reads.
    pub clock: Arc<dyn Clock>,
    /// The service's metrics (also at `GET /metrics`).
    pub metrics: Arc<Metrics>,
}

/// Reads the key, opens (and checks) the store and builds the router.
///
/// # Errors
/// A [`StartupError`] naming the setting, file or service at fault.
pub async fn build(settings: Settings) -> Result<App, StartupError> {
    let needs_aws = matches!(settings.key, KeySource::SecretsManager(_))
        || matches!(settings.ops.issuer_keys, IssuerKeySource::SecretsManager(_))
        || matches!(settings.store, StoreSettings::Dynamodb { .. });
    let sdk = match (needs_aws, settings.aws.clone()) {
        (false, _) => None,
        (true, Some(sdk)) => Some(sdk),
        (true, None) => Some(sdk_config().await.map_err(StartupError::Dynamo)?),
    };
    let mut previous = Vec::new();
    for (i, secret) in settings.ops.previous_secrets.iter().enumerate() {
        previous.push(
            SigningKey::parse(secret.expose().as_bytes())
                .map_err(|source| StartupError::PreviousKey { index: i + 1, source })?,
        );
    }
    let key = match &settings.key {
        KeySource::Value(secret) => SigningKey::parse(secret.as_bytes())?,
        KeySource::File(path) => load_or_create_key(path)?,
        KeySource::SecretsManager(arn) => {
            let sdk = sdk.as_ref().ok_or_else(|| StartupError::Config("no AWS config".into()))?;
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            let current = secret_version(&client, arn, "AWSCURRENT")
                .await
                .map_err(StartupError::SecretsManager)?
                .ok_or_else(|| StartupError::SecretsManager(format!("{arn} has no AWSCURRENT")))?;
            // After a rotation AWSPREVIOUS is the key before; it only verifies. A secret never
            // rotated has none.
            if let Some(old) = secret_version(&client, arn, "AWSPREVIOUS")
                .await
                .map_err(StartupError::SecretsManager)?
            {
                previous.push(SigningKey::parse(old.as_bytes()).map_err(|source| {
                    StartupError::SecretsManager(format!("{arn} AWSPREVIOUS: {source}"))
                })?);
            }
            SigningKey::parse(current.as_bytes())?
        }
    };
    let keys = KeyRing::new(key.clone()).with_previous(previous);
    let issuer_keys = match &settings.ops.issuer_keys {
        IssuerKeySource::None => None,
        IssuerKeySource::Keys(keys) => Some(keys.clone()),
        IssuerKeySource::SecretsManager(arn) => {
            let sdk = sdk.as_ref().ok_or_else(|| StartupError::Config("no AWS config".into()))?;
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            let text = secret_version(&client, arn, "AWSCURRENT")
                .await
                .map_err(StartupError::IssuerKeys)?
                .ok_or_else(|| StartupError::IssuerKeys(format!("{arn} has no AWSCURRENT")))?;
            Some(
                IssuerKeys::parse(&text)
                    .map_err(|e| StartupError::IssuerKeys(format!("{arn}: {e}")))?,
            )
        }
    };
    #[cfg(feature = "embedded-store")]
    let mut embedded = None;
    let store: Arc<dyn TokenStore> = match settings.store {
        #[cfg(feature = "embedded-store")]
        StoreSettings::Embedded { path } => {
            // Records hold subjects' pair keys and attempt ids: readable by the owner only.
            // redb initializes an empty file it is given, so a new one is made 0600 first.
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let store = options
                .open(&path)
                .map_err(|e| StoreError::Internal(e.into()))
                .and_then(|_| EmbeddedStore::open(&path))
                .map_err(|source| StartupError::Store { path: path.clone(), source })?;
            let store = Arc::new(store);
            embedded = Some(store.clone());
            store
        }
        StoreSettings::Dynamodb { table, create } => {
            let sdk = sdk.as_ref().ok_or_else(|| StartupError::Config("no AWS config".into()))?;
            Arc::new(open_dynamodb(sdk, &table, create).await?)
        }
        #[cfg(feature = "bench-null-store")]
        StoreSettings::Null => {
            tracing::warn!(
                "the null store keeps nothing: tokens are not single-use (benchmarks only)"
            );
            Arc::new(crate::store::null::NullStore)
        }
    };
    let emf = settings
        .ops
        .emf_function_name
        .clone()
        .map(|function_name| Emf { function_name, sink: settings.log.clone() });
    let metrics = Metrics::new(emf);
    #[cfg(feature = "embedded-store")]
    let metrics = match &embedded {
        Some(store) => metrics.with_commits(store.commits()),
        None => metrics,
    };
    let metrics = Arc::new(metrics);
    let store: Arc<dyn TokenStore> = Arc::new(MeteredStore::new(store, metrics.clone()));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    tracing::info!(kids = ?keys.kids(), "signing with the first key id; verifying with all");
    let service = TokenService::new(&key, store, clock.clone(), settings.lifetimes)
        .with_replay_window(settings.replay_window)
        .with_keys(keys)
        .with_observer(Arc::new(Telemetry::new(settings.log.clone(), metrics.clone())));
    let guards = Guards {
        timeout: settings.ops.request_timeout,
        rate_limit: settings
            .ops
            .rate_limit_per_minute
            .map(|n| Arc::new(RateLimit::new(n, Some(metrics.clone())))),
        issuer_keys: issuer_keys.map(Arc::new),
        metrics: Some(metrics.clone()),
    };
    let api = api(Arc::new(service), &settings.origins, &guards);
    let app = match &settings.ui_dir {
        Some(dir) => with_ui(api, dir),
        None => api,
    };
    let tracking = Tracking {
        trust_forwarded_for: settings.ops.trust_forwarded_for,
        metrics: Some(metrics.clone()),
    };
    Ok(App {
        router: outer(app, tracking),
        #[cfg(feature = "embedded-store")]
        embedded,
        clock,
        metrics,
    })
}

/// The `SecretString` of `stage` (`AWSCURRENT`, `AWSPREVIOUS`) of secret `arn`, or `None` if
/// the secret has no such version.
async fn secret_version(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    stage: &str,
) -> Result<Option<String>, String> {
    match client.get_secret_value().secret_id(arn).version_stage(stage).send().await {
        Ok(output) => output
            .secret_string
            .map(Some)
            .ok_or_else(|| format!("{arn} {stage} has no SecretString")),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            Ok(None)
        }
        Err(e) => Err(causes(&e)),
    }
}

/// Serves the UI at `/` when it has been built; otherwise keeps the API's JSON 404. Only GET
/// and HEAD reach the UI files, and only a browser's navigation (`Accept: text/html`) gets the
/// page for a path with no file; everything else outside the API gets the API's JSON 404.
fn with_ui(api: Router, ui_dir: &Path) -> Router {
    let index = ui_dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(dir = %ui_dir.display(), "web UI not built; serving the API only");
        return api;
    }
    // SPA fallback: any other path is the page itself, with 200 (as CloudFront does in AWS),
    // for a browser navigating to a deep link (it accepts text/html). Any other client (curl, a
    // load balancer's health check, a mistyped API path) gets the API's JSON 404.
    let page = ServeFile::new(index);
    let deep_link = axum::routing::any(move |request: axum::extract::Request| async move {
        let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
        let html = accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/html"));
        let mut response = if html {
            page.oneshot(request).await.into_response()
        } else {
            not_found().await.into_response()
        };
        // The answer depends on Accept: a cache must not give one client's to the other.
        response.headers_mut().insert(header::VARY, header::ACCEPT.into());
        response
    });
    let files = ServeDir::new(ui_dir).fallback(deep_link);
    // Other methods outside the API are the JSON 404, without the `Allow: GET,HEAD` that axum
    // would copy from the UI's method router: no method is allowed on a path that is not there.
    api.fallback_service(get_service(files).fallback(not_found)).layer(
        axum::middleware::map_response(|mut response: axum::response::Response| async move {
            if response.status() == axum::http::StatusCode::NOT_FOUND {
                response.headers_mut().remove(header::ALLOW);
            }
            response
        }),
    )
}

/// The DynamoDB store on `table`, created if `create`, else checked to exist: a missing table is
/// a start-up error, never a failing request.
async fn open_dynamodb(
    sdk: &aws_config::SdkConfig,
    table: &str,
    create: bool,
) -> Result<DynamoStore, StartupError> {
    let store = DynamoStore::new(sdk, table);
    if create {
        let created = store
            .create_table_if_missing()
            .await
            .map_err(|e| StartupError::Dynamo(format!("creating table {table}: {}", causes(&e))))?;
        tracing::info!(table, created, "DynamoDB table ready");
    } else if !store
        .table_exists()
        .await
        .map_err(|e| StartupError::Dynamo(format!("checking table {table}: {}", causes(&e))))?
    {
        return Err(StartupError::Dynamo(format!(
            "table {table} does not exist; pass --create-table to create it"
        )));
    }
    Ok(store)
}

/// An error and its causes, joined by ": " (`Display` of a `thiserror` enum hides its source).
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Reads the key file, or creates it with a fresh random 256-bit key, readable by the owner
/// only (mode 0600).
fn load_or_create_key(path: &Path) -> Result<SigningKey, StartupError> {
    let file_error = |source| StartupError::KeyFile { path: path.to_owned(), source };
    match std::fs::read(path) {
        Ok(bytes) => {
            return SigningKey::parse(&bytes)
                .map_err(|source| StartupError::KeyFileInvalid { path: path.to_owned(), source });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_error(e)),
    }
    let mut bytes = [0u8; MIN_KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| file_error(io::Error::other(e.to_string())))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(file_error)?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(file_error)?;
    Ok(SigningKey::parse(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        load_or_create_key(&path).unwrap();
        let first = std::fs::read(&path).unwrap();
        assert_eq!(first.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        load_or_create_key(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
    }

    #[test]
    fn a_truncated_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        std::fs::write(&path, [1u8; 16]).unwrap();
        let refused = load_or_create_key(&path).unwrap_err();
        assert!(matches!(
            refused,
            StartupError::KeyFileInvalid { source: KeyError::TooShort { len: 16 }, .. }
        ));
        assert_eq!(
            refused.to_string(),
            format!(
                "signing key file {}: the signing key is 16 bytes; HS256 needs at least 32 \
                 (RFC 7518 section 3.2); delete it to generate a new key",
                path.display()
            )
        );
    }

    #[test]
    fn a_key_given_as_a_value_never_prints_itself() {
        let printed = format!("{:?}", KeySource::Value("very-secret-key".into()));
        assert_eq!(printed, "Value(<redacted>)");
    }
}
