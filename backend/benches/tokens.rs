//! Micro benchmarks of the token logic and the router, without a socket.
//!
//! - `token/*`: [`TokenService`] alone. With the null store (which keeps nothing) `issue` is
//!   the cost of a UUID and an HS256 signature, and `validate` that of parsing and verifying one;
//!   `issue+validate/embedded-shm` adds the embedded redb store on tmpfs (`/dev/shm`), so its
//!   fsync costs nothing and what is left is the store's CPU and its writer-thread hand-off.
//! - `router/*`: the same through the axum router with `tower::ServiceExt::oneshot`: routing,
//!   JSON in and out, headers; no TCP, no hyper.
//! - `lambda/issue+validate/null`: the Lambda entry point in process: API Gateway REST events
//!   (`tests/events/`) deserialized by `lambda_http`, driven through `lambda_http::Adapter`
//!   around `router.map_request(strip_stage)` as `lambda_http::run` does, and the responses
//!   serialized back, with the null store so the figure is the entry point's own cost.
//!
//! Run: `cargo bench -j2 -p backend --bench tokens` (add `-- --quick` for a short run).
//! The null store breaks the single-use contract on purpose; it is for measuring only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark set-up that fails should stop

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend::clock::SystemClock;
use backend::http::{AllowedOrigins, router};
use backend::keys::SigningKey;
use backend::lambda::strip_stage;
use backend::store::embedded::EmbeddedStore;
use backend::store::null::NullStore;
use backend::store::{AttemptId, TokenStore};
use backend::tokens::{Lifetimes, TokenService};
use criterion::{Criterion, Throughput};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

const KEY: &[u8] = b"bench-key-bench-key-bench-key-bench-key!";
/// The origin the Lambda events come from, allowed by the Lambda's router here.
const ORIGIN: &str = "https://ui.example";

fn service(store: Arc<dyn TokenStore>) -> Arc<TokenService> {
    let key = SigningKey::parse(KEY).unwrap();
    Arc::new(TokenService::new(&key, store, Arc::new(SystemClock), Lifetimes::default()))
}

/// An embedded store on tmpfs when there is one (no fsync cost), else in the temp directory.
fn embedded_on_tmpfs() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let store = Arc::new(EmbeddedStore::open(dir.path().join("tokens.redb")).unwrap());
    (dir, store)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn token_logic(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    let null = service(Arc::new(NullStore));
    group.bench_function("issue/null", |b| {
        b.to_async(rt).iter(|| async { black_box(null.issue(None).await.unwrap()) });
    });
    let token = rt.block_on(null.issue(None)).unwrap().token;
    group.bench_function("validate/null", |b| {
        b.to_async(rt).iter(|| async {
            black_box(null.validate(black_box(&token), &AttemptId::generate()).await.unwrap())
        });
    });
    let (_dir, store) = embedded_on_tmpfs();
    let embedded = service(store);
    group.bench_function("issue+validate/embedded-shm", |b| {
        b.to_async(rt).iter(|| async {
            let issued = embedded.issue(None).await.unwrap();
            black_box(embedded.validate(&issued.token, &AttemptId::generate()).await.unwrap())
        });
    });
    group.finish();
}

/// `GET /tokens` through `app`; the token.
async fn issue(app: &Router) -> String {
    let request = Request::get("/tokens").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let issued: shared::IssueResponse = serde_json::from_slice(&body).unwrap();
    issued.token
}

/// `POST /tokens` through `app`; panics unless the answer is `isValid: true`.
async fn validate(app: &Router, token: &str) {
    let body = serde_json::to_vec(&shared::ValidateRequest::new(token)).unwrap();
    let request = Request::post("/tokens")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let answer: shared::ValidateResponse = serde_json::from_slice(&body).unwrap();
    assert!(answer.is_valid, "{answer:?}");
}

fn through_router(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(1));
    let null = router(service(Arc::new(NullStore)), &AllowedOrigins::None);
    group.bench_function("issue/null", |b| b.to_async(rt).iter(|| issue(&null)));
    let token = rt.block_on(issue(&null));
    group.bench_function("validate/null", |b| b.to_async(rt).iter(|| validate(&null, &token)));
    group.bench_function("issue+validate/null", |b| {
        b.to_async(rt).iter(|| async { validate(&null, &issue(&null).await).await });
    });
    let (_dir, store) = embedded_on_tmpfs();
    let embedded = router(service(store), &AllowedOrigins::None);
    group.bench_function("issue+validate/embedded-shm", |b| {
        b.to_async(rt).iter(|| async { validate(&embedded, &issue(&embedded).await).await });
    });
    group.finish();
}

/// Runs one API Gateway event (JSON text, as the runtime receives it) through the Lambda entry
/// point and returns the serialized response (as the runtime posts it back).
async fn invoke(app: &Router, event: &str) -> Vec<u8> {
    let payload: LambdaRequest = serde_json::from_str(event).unwrap();
    let response = Adapter::from(app.clone().map_request(strip_stage))
        .oneshot(LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    serde_json::to_vec(&response).unwrap()
}

/// The JSON body inside a serialized API Gateway proxy response.
fn body_of(response: &[u8]) -> serde_json::Value {
    let response: serde_json::Value = serde_json::from_slice(response).unwrap();
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

fn event(name: &str) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/events").join(format!("{name}.json"));
    std::fs::read_to_string(path).unwrap()
}

fn lambda_in_process(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("lambda");
    group.throughput(Throughput::Elements(1));
    let app = router(service(Arc::new(NullStore)), &AllowedOrigins::parse(ORIGIN).unwrap());
    let (issue_event, validate_event) = (event("issue"), event("validate"));
    group.bench_function("issue+validate/null", |b| {
        b.to_async(rt).iter(|| async {
            let issued = body_of(&invoke(&app, &issue_event).await);
            let token = issued["token"].as_str().unwrap();
            let answer = body_of(&invoke(&app, &validate_event.replace("{{TOKEN}}", token)).await);
            assert_eq!(answer["isValid"], serde_json::Value::Bool(true), "{answer}");
            black_box(answer)
        });
    });
    group.finish();
}

fn main() {
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();
    token_logic(&mut c, &rt);
    through_router(&mut c, &rt);
    lambda_in_process(&mut c, &rt);
    c.final_summary();
}
