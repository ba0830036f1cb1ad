//! The local server `token-service`: configuration, start-up and graceful shutdown.
//!
//! Configuration is read once, by clap, from flags or their environment variables, into
//! [`Config`]; tests build a `Config` directly. [`Server::build`] does everything that can fail
//! (key, store, port) before anything is served, so a bad configuration is a clear start-up
//! error, never a failing request.

use crate::clock::{Clock, SystemClock};
use crate::contract::{
    DEFAULT_TABLE, ENV_ALLOWED_ORIGINS, ENV_DEFAULT_TTL, ENV_MAX_TTL, ENV_SECRET, ENV_TABLE,
};
use crate::http::{AllowedOrigins, not_found, router};
use crate::keys::{KeyError, MIN_KEY_BYTES, SigningKey};
use crate::store::dynamodb::{DynamoStore, sdk_config};
use crate::store::embedded::EmbeddedStore;
use crate::store::null::NullStore;
use crate::store::{StoreError, TokenStore};
use crate::tokens::{DEFAULT_LIFETIME_SECS, DEFAULT_MAX_LIFETIME_SECS, Lifetimes, TokenService};
use axum::Router;
use axum::routing::get_service;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::services::{ServeDir, ServeFile};

/// File in the data directory holding the generated signing key (raw bytes, mode 0600).
pub const KEY_FILE: &str = "signing.key";
/// File in the data directory holding the embedded store.
pub const STORE_FILE: &str = "tokens.redb";

/// Settings of the local server. Every flag has an environment variable of the same meaning.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "token-service", version, about = "One-time-use token service (local server)")]
pub struct Config {
    /// Address to listen on, `IP:PORT`; port 0 picks a free one.
    #[arg(long, env = "TOKEN_SERVICE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Where token records are kept: `embedded` (a redb file in DATA_DIR) or `dynamodb` (the
    /// table TABLE, through the standard AWS configuration: AWS_REGION, credentials,
    /// AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).
    #[arg(long, env = "TOKEN_SERVICE_STORE", value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,

    /// DynamoDB table name (with `--store dynamodb`).
    #[arg(long, env = ENV_TABLE, default_value = DEFAULT_TABLE)]
    pub table: String,

    /// With `--store dynamodb`: create the table, with TTL on `expiry`, if it does not exist.
    #[arg(long)]
    pub create_table: bool,

    /// Directory of the embedded store and the generated signing key; created if missing.
    #[arg(long, env = "TOKEN_SERVICE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// HS256 signing key, at least 32 bytes (UTF-8). Prefer the environment variable: flags are
    /// visible to other users in `ps`. Without it, a random 256-bit key is generated once and
    /// kept in DATA_DIR/signing.key (mode 0600).
    #[arg(long, env = ENV_SECRET, hide_env_values = true)]
    pub secret: Option<String>,

    /// Directory of the built web UI (trunk's `dist/`), served at `/`.
    #[arg(long, env = "TOKEN_SERVICE_UI_DIR", default_value = "dist")]
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
    #[arg(long, env = "TOKEN_SERVICE_SWEEP_INTERVAL", default_value_t = 60)]
    pub sweep_interval: u64,
}

/// The kinds of token store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded redb file in the data directory (durable, single process).
    Embedded,
    /// A DynamoDB table.
    Dynamodb,
    /// Keeps nothing, so tokens are NOT single-use: a baseline for benchmarks only
    /// (`store::null`). Hidden from `--help`; never a default.
    #[value(hide = true)]
    Null,
}

/// Why the server could not start.
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
    /// The data directory cannot be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The key file cannot be read or written.
    #[error("signing key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The store file cannot be opened: locked by another process, unreadable or corrupt.
    #[error("token store {path}: {}", causes(source))]
    Store {
        /// The store file.
        path: PathBuf,
        /// What failed.
        source: StoreError,
    },
    /// DynamoDB is misconfigured or its table could not be created.
    #[error("DynamoDB: {0}")]
    Dynamo(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: io::Error,
    },
}

/// A started, not yet serving, local server.
pub struct Server {
    listener: TcpListener,
    app: Router,
    /// The embedded store, which this server sweeps; `None` with DynamoDB (TTL cleans up).
    embedded: Option<Arc<EmbeddedStore>>,
    clock: Arc<dyn Clock>,
    sweep_interval: Duration,
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
        let key_file = config.data_dir.join(KEY_FILE);
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| StartupError::DataDir { path: config.data_dir.clone(), source })?;
        let key = match &config.secret {
            Some(secret) => SigningKey::parse(secret.as_bytes())?,
            None => load_or_create_key(&key_file)?,
        };
        let (store, embedded): (Arc<dyn TokenStore>, _) = match config.store {
            StoreKind::Embedded => {
                let store_file = config.data_dir.join(STORE_FILE);
                let store = Arc::new(
                    EmbeddedStore::open(&store_file)
                        .map_err(|source| StartupError::Store { path: store_file, source })?,
                );
                (store.clone(), Some(store))
            }
            StoreKind::Dynamodb => {
                let sdk = sdk_config().await.map_err(StartupError::Dynamo)?;
                let store = DynamoStore::new(&sdk, &config.table);
                if config.create_table {
                    let created = store.create_table_if_missing().await.map_err(|e| {
                        StartupError::Dynamo(format!("creating table {}: {e:?}", config.table))
                    })?;
                    tracing::info!(table = %config.table, created, "DynamoDB table ready");
                } else if !store.table_exists().await.map_err(|e| {
                    StartupError::Dynamo(format!("checking table {}: {}", config.table, causes(&e)))
                })? {
                    return Err(StartupError::Dynamo(format!(
                        "table {} does not exist; pass --create-table to create it",
                        config.table
                    )));
                }
                (Arc::new(store), None)
            }
            StoreKind::Null => {
                tracing::warn!(
                    "--store null keeps nothing: tokens are not single-use (benchmarks only)"
                );
                (Arc::new(NullStore), None)
            }
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let service = Arc::new(TokenService::new(&key, store, clock.clone(), lifetimes));
        let app = with_ui(router(service, &origins), &config.ui_dir);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: config.listen, source })?;
        Ok(Self {
            listener,
            app,
            embedded,
            clock,
            sweep_interval: Duration::from_secs(config.sweep_interval),
        })
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
        let served = axum::serve(self.listener, self.app).with_graceful_shutdown(shutdown).await;
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        served
    }
}

/// Serves the UI at `/` when it has been built; otherwise keeps the API's JSON 404. Only GET
/// and HEAD reach the UI files; other methods outside the API get the API's JSON 404.
fn with_ui(api: Router, ui_dir: &Path) -> Router {
    let index = ui_dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(dir = %ui_dir.display(), "web UI not built; serving the API only");
        return api;
    }
    // SPA fallback: any other path is the page itself, with 200 (as CloudFront does in AWS).
    let files = ServeDir::new(ui_dir).fallback(ServeFile::new(index));
    api.fallback_service(get_service(files).fallback(not_found))
}

/// An error and its causes, joined by ": " (`Display` of a `thiserror` enum hides its source).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
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

    #[test]
    fn a_generated_key_is_kept_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
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
        let path = dir.path().join(KEY_FILE);
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
}
