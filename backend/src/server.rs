//! The local server `token-service`: configuration, start-up and graceful shutdown.
//!
//! Configuration is read once, by clap, from flags or their environment variables, into
//! [`Config`]; tests build a `Config` directly. [`Server::build`] does everything that can fail
//! (key, store, port) before anything is served, so a bad configuration is a clear start-up
//! error, never a failing request.

pub use crate::app::StartupError;
use crate::app::{self, IssuerKeySource, KeySource, OpsSettings, Settings, StoreSettings};
use crate::audit::LogSink;
use crate::auth::IssuerKeys;
use crate::clock::Clock;
use crate::contract::{
    DEFAULT_TABLE, ENV_ALLOWED_ORIGINS, ENV_DATA_DIR, ENV_DEFAULT_TTL, ENV_HEADER_READ_TIMEOUT,
    ENV_ISSUER_KEYS, ENV_ISSUER_KEYS_FILE, ENV_LISTEN, ENV_MAX_CONNECTIONS, ENV_MAX_TTL,
    ENV_PREVIOUS_SECRETS, ENV_RATE_LIMIT_PER_MINUTE, ENV_REPLAY_WINDOW, ENV_REQUEST_TIMEOUT,
    ENV_SECRET, ENV_STORE, ENV_SWEEP_INTERVAL, ENV_TABLE, ENV_TRUST_FORWARDED_FOR, ENV_UI_DIR,
};
use crate::http::AllowedOrigins;
use crate::keys::Secret;
use crate::metrics::Metrics;
use crate::request::DEFAULT_REQUEST_TIMEOUT_SECS;
use crate::serve::{
    ConnectionLimits, DEFAULT_HEADER_READ_TIMEOUT_SECS, DEFAULT_MAX_CONNECTIONS, serve,
};
use crate::store::embedded::EmbeddedStore;
use crate::tokens::{
    DEFAULT_LIFETIME_SECS, DEFAULT_MAX_LIFETIME_SECS, DEFAULT_REPLAY_WINDOW_SECS, Lifetimes,
};
use axum::Router;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// File in the data directory holding the generated signing key (raw bytes, mode 0600).
pub const KEY_FILE: &str = "signing.key";
/// File in the data directory holding the embedded store.
pub const STORE_FILE: &str = "tokens.redb";

/// Settings of the local server. Every flag has an environment variable of the same meaning.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "token-service", version, about = "One-time-use token service (local server)")]
pub struct Config {
    /// Address to listen on, `IP:PORT`; port 0 picks a free one.
    #[arg(long, env = ENV_LISTEN, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Where token records are kept: `embedded` (a redb file in DATA_DIR) or `dynamodb` (the
    /// table TABLE, through the standard AWS configuration: AWS_REGION, credentials,
    /// AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).
    #[arg(long, env = ENV_STORE, value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,

    /// DynamoDB table name (with `--store dynamodb`).
    #[arg(long, env = ENV_TABLE, default_value = DEFAULT_TABLE)]
    pub table: String,

    /// With `--store dynamodb`: create the table, with TTL on `expiry`, if it does not exist.
    #[arg(long)]
    pub create_table: bool,

    /// Directory of the embedded store and the generated signing key; created if missing.
    #[arg(long, env = ENV_DATA_DIR, default_value = "data")]
    pub data_dir: PathBuf,

    /// HS256 signing key, at least 32 bytes (UTF-8). Prefer the environment variable: flags are
    /// visible to other users in `ps`. Without it, a random 256-bit key is generated once and
    /// kept in DATA_DIR/signing.key (mode 0600).
    #[arg(long, env = ENV_SECRET, hide_env_values = true)]
    pub secret: Option<Secret>,

    /// Directory of the built web UI (trunk's `dist/`), served at `/`.
    #[arg(long, env = ENV_UI_DIR, default_value = "dist")]
    pub ui_dir: PathBuf,

    /// Comma-separated origins allowed to call the API from a browser (CORS), or `*`.
    /// Empty: same-origin only.
    #[arg(long, env = ENV_ALLOWED_ORIGINS, default_value = "")]
    pub allowed_origins: String,

    /// Lifetime of a token when the request names none, in seconds.
    #[arg(long, env = ENV_DEFAULT_TTL, default_value_t = DEFAULT_LIFETIME_SECS)]
    pub default_ttl: u64,

    /// Longest lifetime a request may ask for with `?ttl=`, in seconds.
    #[arg(long, env = ENV_MAX_TTL, default_value_t = DEFAULT_MAX_LIFETIME_SECS)]
    pub max_ttl: u64,

    /// How often expired records are removed from the embedded store, in seconds.
    #[arg(long, env = ENV_SWEEP_INTERVAL, default_value_t = 60)]
    pub sweep_interval: u64,

    /// How long after a token's use a retry with the same `Idempotency-Key` header gets that
    /// success again (`replayed: true`), in seconds; never past the token's expiry. 0 turns
    /// replays off.
    #[arg(long, env = ENV_REPLAY_WINDOW, default_value_t = DEFAULT_REPLAY_WINDOW_SECS)]
    pub replay_window: u64,

    /// Previous HS256 signing keys, comma-separated, each at least 32 bytes: they still verify
    /// tokens issued before a rotation (whose `kid` names them) but never sign. Prefer the
    /// environment variable.
    #[arg(long, env = ENV_PREVIOUS_SECRETS, hide_env_values = true)]
    pub previous_secrets: Option<Secret>,

    /// Issuer keys, comma-separated, each at least 32 bytes. When set, `GET /tokens` and
    /// `GET /metrics` need `Authorization: Bearer <one of them>`. Prefer the environment variable
    /// or --issuer-keys-file.
    #[arg(long, env = ENV_ISSUER_KEYS, hide_env_values = true)]
    pub issuer_keys: Option<Secret>,

    /// File of issuer keys, one a line (instead of, or besides, --issuer-keys).
    #[arg(long, env = ENV_ISSUER_KEYS_FILE)]
    pub issuer_keys_file: Option<PathBuf>,

    /// Requests per minute each client may send to the /tokens endpoints (a burst of that
    /// many, then evenly spread); 0 is unlimited.
    #[arg(long, env = ENV_RATE_LIMIT_PER_MINUTE, default_value_t = 0)]
    pub rate_limit_per_minute: u32,

    /// Take the client's address from the last X-Forwarded-For entry, as appended by a proxy
    /// in front of this server. Without a proxy, clients could claim any address.
    #[arg(long, env = ENV_TRUST_FORWARDED_FOR)]
    pub trust_forwarded_for: bool,

    /// Overall deadline of one request, in seconds; past it the answer is a JSON 503.
    #[arg(long, env = ENV_REQUEST_TIMEOUT, default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout: u64,

    /// Longest wait for a complete request header, longest idle keep-alive, and longest an
    /// answer may make no progress to the client, in seconds; then the connection is closed.
    #[arg(long, env = ENV_HEADER_READ_TIMEOUT, default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS)]
    pub header_read_timeout: u64,

    /// Most connections served at once; more wait until one closes.
    #[arg(long, env = ENV_MAX_CONNECTIONS, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Where the audit lines go: standard error (not a flag; tests keep them in memory).
    #[arg(skip)]
    pub audit_log: LogSink,
}

/// The kinds of token store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded redb file in the data directory (durable, single process).
    Embedded,
    /// A DynamoDB table.
    Dynamodb,
    /// Keeps nothing, so tokens are NOT single-use: a baseline for benchmarks only
    /// (`store::null`). Compiled only with the `bench-null-store` feature, so a release build
    /// refuses it; hidden from `--help`; never a default.
    #[cfg(feature = "bench-null-store")]
    #[value(hide = true)]
    Null,
}

/// A started, not yet serving, local server.
pub struct Server {
    listener: TcpListener,
    app: Router,
    /// The embedded store, which this server sweeps; `None` with DynamoDB (TTL cleans up).
    embedded: Option<Arc<EmbeddedStore>>,
    clock: Arc<dyn Clock>,
    sweep_interval: Duration,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
}

impl Server {
    /// Reads the key, opens the store and binds the port.
    ///
    /// # Errors
    /// A [`StartupError`] naming the setting or file at fault.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let lifetimes =
            Lifetimes::new(config.default_ttl, config.max_ttl).map_err(StartupError::Config)?;
        let origins = AllowedOrigins::parse(&config.allowed_origins)
            .map_err(|e| StartupError::Config(format!("--allowed-origins: {e}")))?;
        if config.sweep_interval == 0 {
            return Err(StartupError::Config("--sweep-interval must be at least 1 s".into()));
        }
        for (value, flag) in [
            (config.request_timeout, "--request-timeout"),
            (config.header_read_timeout, "--header-read-timeout"),
            (config.max_connections as u64, "--max-connections"),
        ] {
            if value == 0 {
                return Err(StartupError::Config(format!("{flag} must be at least 1")));
            }
        }
        let ops = OpsSettings {
            previous_secrets: config
                .previous_secrets
                .as_ref()
                .map(|list| {
                    list.expose()
                        .split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(Secret::from)
                        .collect()
                })
                .unwrap_or_default(),
            issuer_keys: issuer_keys(&config)?,
            rate_limit_per_minute: NonZeroU32::new(config.rate_limit_per_minute),
            trust_forwarded_for: config.trust_forwarded_for,
            request_timeout: Duration::from_secs(config.request_timeout),
            emf_function_name: None,
        };
        // Made for the owner only (the key file and the records are in it); an existing
        // directory keeps the mode it has.
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(&config.data_dir)
            .map_err(|source| StartupError::DataDir { path: config.data_dir.clone(), source })?;
        let key = match &config.secret {
            Some(secret) => KeySource::Value(secret.expose().to_owned()),
            None => KeySource::File(config.data_dir.join(KEY_FILE)),
        };
        let store = match config.store {
            StoreKind::Embedded => {
                StoreSettings::Embedded { path: config.data_dir.join(STORE_FILE) }
            }
            StoreKind::Dynamodb => {
                StoreSettings::Dynamodb { table: config.table.clone(), create: config.create_table }
            }
            #[cfg(feature = "bench-null-store")]
            StoreKind::Null => StoreSettings::Null,
        };
        let settings = Settings {
            store,
            key,
            origins,
            lifetimes,
            replay_window: config.replay_window,
            ops,
            log: config.audit_log.clone(),
            ui_dir: Some(config.ui_dir.clone()),
            aws: None,
        };
        let built = app::build(settings).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: config.listen, source })?;
        Ok(Self {
            listener,
            app: built.router,
            embedded: built.embedded,
            clock: built.clock,
            sweep_interval: Duration::from_secs(config.sweep_interval),
            limits: ConnectionLimits {
                header_read_timeout: Duration::from_secs(config.header_read_timeout),
                max_connections: config.max_connections,
            },
            metrics: built.metrics,
        })
    }

    /// The service's metrics (what `GET /metrics` shows).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The address actually bound (useful with port 0).
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight and closes the
    /// store.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let sweeper =
            self.embedded.map(|store| tokio::spawn(sweep(store, self.clock, self.sweep_interval)));
        let served = serve(self.listener, self.app, self.limits, shutdown).await;
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        served
    }
}

/// The issuer keys from `--issuer-keys` and `--issuer-keys-file` together.
fn issuer_keys(config: &Config) -> Result<IssuerKeySource, StartupError> {
    let mut text = config.issuer_keys.as_ref().map(|k| k.expose().to_owned()).unwrap_or_default();
    if let Some(path) = &config.issuer_keys_file {
        let file = std::fs::read_to_string(path).map_err(|e| {
            StartupError::IssuerKeys(format!("--issuer-keys-file {}: {e}", path.display()))
        })?;
        text.push('\n');
        text.push_str(&file);
    }
    if config.issuer_keys.is_none() && config.issuer_keys_file.is_none() {
        return Ok(IssuerKeySource::None);
    }
    IssuerKeys::parse(&text).map(IssuerKeySource::Keys).map_err(StartupError::IssuerKeys)
}

async fn sweep(store: Arc<EmbeddedStore>, clock: Arc<dyn Clock>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match store.sweep_expired(clock.now()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "swept expired tokens"),
            Err(e) => tracing::warn!(error = ?e, "sweeping expired tokens failed"),
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => drop(signal.recv().await),
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = interrupt => {}, () = terminate => {} }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_configuration_never_prints_the_key() {
        let config = Config::parse_from([
            "token-service",
            "--secret",
            "a-very-secret-signing-key-of-32-bytes",
            "--previous-secrets",
            "a-very-old-signing-key-of-32-bytes!!",
            "--issuer-keys",
            "a-very-secret-issuer-key-of-32-bytes",
        ]);
        let printed = format!("{config:?}");
        assert!(!printed.contains("a-very"), "{printed}");
        assert!(printed.contains("Secret(<redacted>)"), "{printed}");
    }

    #[test]
    fn a_release_build_has_no_null_store() {
        let refused = Config::try_parse_from(["token-service", "--store", "null"]);
        assert_eq!(refused.is_err(), !cfg!(feature = "bench-null-store"));
    }
}
