//! The fuzz targets' shared harness: the real [`TokenService`] and HTTP router on an embedded
//! store in a temporary directory, with a [`ManualClock`] standing at [`NOW`], built once per
//! fuzzing process.
//!
//! [`USED_TOKEN`] is a genuine token (signed with [`KEY`], unexpired at [`NOW`]) whose record the
//! harness stores and consumes at start-up, so every later validation of it, or of anything the
//! fuzzer derives from it, must be refused. The other seed tokens in `fuzz/seeds/` are signed with
//! the same key but were never stored (`unknown_token`), are expired, or break one claim rule.

use axum::Router;
use backend::clock::ManualClock;
use backend::http::{AllowedOrigins, router};
use backend::keys::SigningKey;
use backend::store::embedded::EmbeddedStore;
use backend::store::{AttemptId, TokenRecord, TokenStore};
use backend::tokens::{Lifetimes, TokenService};
use std::sync::{Arc, OnceLock};
use tokio::runtime::Runtime;
use uuid::Uuid;

/// The harness clock, epoch seconds (2027-01-15T08:00:00Z).
pub const NOW: i64 = 1_800_000_000;
/// The HS256 key of the harness and of the seed tokens (32 bytes).
pub const KEY: &[u8] = b"fuzz-key-fuzz-key-fuzz-key-fuzz!";
/// `uuid` claim of [`USED_TOKEN`].
pub const USED_UUID: &str = "6f1c2a3e-9b4d-4c5e-8f70-112233445566";
/// A genuine token (`iat` = [`NOW`], `exp` = [`NOW`] + 3600), consumed once at start-up.
pub const USED_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ1dWlkIjoiNmYxYzJhM2UtOWI0ZC00YzVlLThmNzAtMTEyMjMzNDQ1NTY2IiwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDM2MDB9._UlgYoVexcCU5SePkaCMm1dKJK4zkOHBsLB5i911W2w";

/// One service, router and runtime for the whole fuzzing process.
pub struct Harness {
    /// A current-thread runtime: inputs run one at a time, deterministically.
    pub runtime: Runtime,
    /// The use cases, for calling `validate` directly.
    pub service: Arc<TokenService>,
    /// The API router, as both entry points serve it (no CORS, no UI).
    pub app: Router,
    _dir: tempfile::TempDir,
}

/// The process's harness, built on first use.
///
/// # Panics
/// If the harness cannot be built, or if [`USED_TOKEN`] is not valid exactly once at start-up
/// (then the seeds no longer match the service and the fuzzing would prove nothing).
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(build)
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
fn build() -> Harness {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::Builder::new().prefix("token-fuzz-").tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path().join("tokens.redb")).unwrap());
    let clock = Arc::new(ManualClock::at(NOW));
    let key = SigningKey::parse(KEY).unwrap();
    let service = Arc::new(TokenService::new(&key, store.clone(), clock, Lifetimes::default()));
    let uuid = Uuid::parse_str(USED_UUID).unwrap();
    runtime.block_on(async {
        let record = TokenRecord { uuid, expiry: NOW + 3600, pair: None };
        store.insert(&record, false, NOW).await.unwrap();
        let attempt = AttemptId::generate();
        let valid =
            service.validate(USED_TOKEN, &attempt).await.expect("the seed token is genuine");
        assert_eq!(valid.claims.uuid, uuid);
        let again = service.validate(USED_TOKEN, &AttemptId::generate()).await;
        assert!(again.is_err(), "a used token stays used");
    });
    let app = router(service.clone(), &AllowedOrigins::None);
    Harness { runtime, service, app, _dir: dir }
}
