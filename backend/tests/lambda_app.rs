//! [`LambdaApp`], the service `bin/token-service-lambda.rs` hands to `lambda_http::run`, end to
//! end without AWS: which API Gateway payloads reach the router, and what a cold start that
//! cannot build the service answers.
//!
//! Events are JSON files in `tests/events/`: REST API (v1) proxy events, and HTTP API (v2)
//! events (`v2-*.json`), the payload API Gateway HTTP APIs (`-c apiType=http` in infra/), Lambda
//! function URLs and `cargo lambda watch` send. `lambda_http` deserializes each (every test
//! checks it read the payload the file is) and `lambda_http::Adapter` drives it through the app,
//! as `lambda_http::run` does. Assertions are on the serialized Lambda response, which is what
//! API Gateway reads: `statusCode`, `multiValueHeaders` (v1) or `headers` (v2), `body`,
//! `isBase64Encoded`.
//!
//! The REST payload's every detail (bodies, content types, sizes, preflights) is in
//! tests/lambda.rs; the real binary runs under `cargo lambda watch` in tests/aws_local.rs.
//! Nothing here touches the process environment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/lambda.rs"]
mod support;

use axum::Router;
use backend::clock::SystemClock;
use backend::http::{AllowedOrigins, router};
use backend::keys::SigningKey;
use backend::lambda::{Backoff, LambdaApp, UNAVAILABLE_MESSAGE, event_kind, strip_stage};
use backend::store::embedded::EmbeddedStore;
use backend::tokens::{Lifetimes, TokenService};
use lambda_http::Request;
use lambda_http::request::LambdaRequest;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::{
    DEFAULT_TTL, LambdaAnswer, ORIGIN, Payload, SECRET, assert_lifetime, assert_valid, event,
    invoke_seeing_path, invoke_through, issued_expiration, now,
};

/// The Lambda's router over an embedded store in its own temporary directory, and the
/// [`LambdaApp`] serving it, as after a successful cold start.
struct TestLambda {
    router: Router,
    app: LambdaApp,
    _data: tempfile::TempDir,
}

/// Builds the router the Lambda serves over an embedded store in `data`.
fn test_router(data: &Path) -> Router {
    let store = EmbeddedStore::open(data.join("tokens.redb")).unwrap();
    let key = SigningKey::parse(SECRET.as_bytes()).unwrap();
    let service =
        TokenService::new(&key, Arc::new(store), Arc::new(SystemClock), Lifetimes::default());
    router(Arc::new(service), &AllowedOrigins::parse(ORIGIN).unwrap())
}

impl TestLambda {
    async fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let router = test_router(data.path());
        let built = router.clone();
        let app = LambdaApp::start(origins(), Backoff::default(), move || {
            let router = built.clone();
            async move { Ok(router) }
        })
        .await;
        assert!(app.is_serving().await);
        Self { router, app, _data: data }
    }

    /// Runs `event` through the Lambda entry point's service and returns the serialized
    /// response, as the Lambda runtime would post it back.
    async fn invoke(&self, event: Value) -> LambdaAnswer {
        invoke_through(event, self.app.clone()).await
    }

    /// Like [`Self::invoke`], but also reports the path `lambda_http` built, before
    /// `strip_stage` saw it.
    async fn invoke_seeing_raw_path(&self, event: Value) -> (String, LambdaAnswer) {
        invoke_seeing_path(event, self.app.clone()).await
    }

    /// `GET /tokens` through the `issue` event; returns the token.
    async fn issue(&self) -> String {
        let answer = self.invoke(event("issue", None)).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        answer.json()["token"].as_str().unwrap().to_owned()
    }
}

fn origins() -> AllowedOrigins {
    AllowedOrigins::parse(ORIGIN).unwrap()
}

#[tokio::test]
async fn a_rest_event_reaches_the_router_through_the_app_with_its_stage_stripped() {
    let lambda = TestLambda::new().await;
    let raw = event("issue-ttl-60", None);
    assert_eq!(raw["requestContext"]["stage"], "prod");
    let before = now();
    let (seen, answer) = lambda.invoke_seeing_raw_path(raw).await;
    let after = now();
    // lambda_http puts the stage in front of a REST event's `path`; the app strips it.
    assert_eq!(seen, "/prod/tokens");
    assert_eq!(answer.payload, Payload::Rest);
    let expiration = issued_expiration(&answer);
    assert_lifetime(expiration, 60, before, after);
}

#[tokio::test]
async fn without_strip_stage_a_rest_event_misses_every_route() {
    let lambda = TestLambda::new().await;
    let answer = invoke_through(event("issue", None), lambda.router.clone()).await;
    assert_eq!(answer.status(), 404, "{answer:?}");
    assert_eq!(answer.json()["reason"], "not_found");
}

// HTTP API (v2) payloads: API Gateway HTTP APIs (`-c apiType=http` in infra/), Lambda function
// URLs and `cargo lambda watch` send these.

#[tokio::test]
async fn an_http_api_event_on_the_default_stage_returns_a_token_in_a_v2_response() {
    let lambda = TestLambda::new().await;
    let raw = event("v2-issue", None);
    assert_eq!(raw["requestContext"]["stage"], "$default");
    let before = now();
    let (seen, answer) = lambda.invoke_seeing_raw_path(raw).await;
    let after = now();
    assert_eq!(seen, "/tokens", "the $default stage puts nothing in front of the path");
    assert_eq!(answer.payload, Payload::V2);
    let expiration = issued_expiration(&answer);
    assert_lifetime(expiration, DEFAULT_TTL, before, after);
}

#[tokio::test]
async fn a_named_http_api_stage_is_stripped_from_the_path_and_the_ttl_query_kept() {
    let lambda = TestLambda::new().await;
    let raw = event("v2-issue-ttl-60-named-stage", None);
    assert_eq!(raw["rawPath"], "/prod/tokens");
    let before = now();
    let (seen, answer) = lambda.invoke_seeing_raw_path(raw).await;
    let after = now();
    // A named v2 stage is in rawPath itself (with or without AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH).
    assert_eq!(seen, "/prod/tokens");
    let expiration = issued_expiration(&answer);
    assert_lifetime(expiration, 60, before, after);
}

#[tokio::test]
async fn a_function_url_event_reaches_the_router() {
    let lambda = TestLambda::new().await;
    let raw = event("v2-function-url-issue", None);
    assert!(raw["requestContext"]["domainName"].as_str().unwrap().contains(".lambda-url."));
    let answer = lambda.invoke(raw).await;
    assert_eq!(answer.payload, Payload::V2);
    issued_expiration(&answer);
}

#[tokio::test]
async fn a_token_issued_by_a_rest_event_validates_once_through_v2_events() {
    // One function behind either API type: the payload changes, the tokens and records do not.
    let lambda = TestLambda::new().await;
    let token = lambda.issue().await;
    let answer = lambda.invoke(event("v2-validate", Some(&token))).await;
    assert_eq!(answer.payload, Payload::V2);
    assert_valid(&answer);
    let again = lambda.invoke(event("v2-validate", Some(&token))).await;
    again.assert_api_headers();
    assert_eq!(again.json()["reason"], "already_used", "{again:?}");
}

#[tokio::test]
async fn a_base64_encoded_v2_body_validates() {
    let lambda = TestLambda::new().await;
    let token = lambda.issue().await;
    let event = event("v2-validate-base64", Some(&token));
    assert_eq!(event["isBase64Encoded"], json!(true));
    assert_valid(&lambda.invoke(event).await);
}

#[tokio::test]
async fn an_unknown_route_in_a_v2_event_is_a_404_in_the_api_error_shape() {
    let lambda = TestLambda::new().await;
    let answer = lambda.invoke(event("v2-unknown-route", None)).await;
    assert_eq!(answer.status(), 404, "{answer:?}");
    answer.assert_api_headers();
    assert_eq!(answer.json()["reason"], "not_found");
}

#[tokio::test]
async fn event_kind_names_the_payload_each_event_file_is() {
    let mut seen = Vec::new();
    for name in ["issue", "validate", "v2-issue", "v2-function-url-issue", "v2-validate"] {
        let token = name.contains("validate").then_some("t");
        let request: LambdaRequest = serde_json::from_value(event(name, token)).unwrap();
        let request: Request = request.into();
        seen.push((name, event_kind(&request)));
    }
    assert_eq!(
        seen,
        [
            ("issue", "apigw_rest"),
            ("validate", "apigw_rest"),
            ("v2-issue", "apigw_v2"),
            ("v2-function-url-issue", "apigw_v2"),
            ("v2-validate", "apigw_v2"),
        ]
    );
}

#[test]
fn strip_stage_leaves_a_path_that_only_starts_like_the_stage() {
    let request: LambdaRequest =
        serde_json::from_value(event("v2-issue-ttl-60-named-stage", None)).unwrap();
    let mut request: Request = request.into();
    *request.uri_mut() = "/production/tokens?ttl=60".parse().unwrap();
    assert_eq!(strip_stage(request).uri(), "/production/tokens?ttl=60");
}

// Cold starts that cannot build the service (key unreadable, table missing).

/// A builder that fails its first `failures` calls, then builds the router; counts its calls.
struct FlakyBuild {
    calls: Arc<AtomicU32>,
    _data: tempfile::TempDir,
}

impl FlakyBuild {
    async fn start(failures: u32, backoff: Backoff) -> (LambdaApp, Self) {
        let data = tempfile::tempdir().unwrap();
        let router = test_router(data.path());
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let app = LambdaApp::start(origins(), backoff, move || {
            let call = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let router = router.clone();
            async move {
                if call <= failures {
                    Err(format!("signing key from Secrets Manager: dispatch failure (call {call})"))
                } else {
                    Ok(router)
                }
            }
        })
        .await;
        (app, Self { calls, _data: data })
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Checks a `503` stand-in answer and returns its `Retry-After`, seconds.
fn assert_unavailable(answer: &LambdaAnswer) -> u64 {
    assert_eq!(answer.status(), 503, "{answer:?}");
    answer.assert_api_headers();
    assert_eq!(
        answer.json(),
        json!({"isValid": false, "message": UNAVAILABLE_MESSAGE, "reason": "unavailable"})
    );
    answer.header("retry-after").unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_cold_start_that_cannot_build_answers_503_json_with_retry_after_in_both_shapes() {
    let (app, build) = FlakyBuild::start(u32::MAX, Backoff::default()).await;
    assert!(!app.is_serving().await);
    for name in ["issue", "v2-issue"] {
        let answer = invoke_through(event(name, None), app.clone()).await;
        let retry_after = assert_unavailable(&answer);
        assert_eq!(retry_after, 1, "{name}: the first retry is due within a second");
    }
    assert_eq!(build.calls(), 1, "no retry before the backoff has passed");
}

#[tokio::test]
async fn a_preflight_during_a_failed_cold_start_is_answered_so_the_browser_can_read_the_503() {
    let (app, _build) = FlakyBuild::start(u32::MAX, Backoff::default()).await;
    let answer = invoke_through(event("preflight", None), app).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.header("access-control-allow-origin").as_deref(), Some(ORIGIN));
    let exposed = answer.header("access-control-expose-headers");
    assert!(exposed.is_none(), "exposed headers belong on the actual response: {exposed:?}");
}

#[tokio::test]
async fn a_failed_cold_start_is_retried_after_the_backoff_and_then_serves() {
    // Real time: 500 ms after the first failure, then 1 s. Each "not yet" check has 500 ms to
    // spare for a slow machine; the sleeps past a backoff can only overshoot, which is safe.
    let backoff = Backoff { first: Duration::from_millis(500), max: Duration::from_secs(10) };
    let (app, build) = FlakyBuild::start(2, backoff).await;
    assert_eq!(build.calls(), 1);

    let answer = invoke_through(event("issue", None), app.clone()).await;
    assert_eq!(assert_unavailable(&answer), 1, "500 ms, rounded up to whole seconds");
    assert_eq!(build.calls(), 1);

    tokio::time::sleep(Duration::from_millis(750)).await;
    let answer = invoke_through(event("issue", None), app.clone()).await;
    assert_unavailable(&answer);
    assert_eq!(build.calls(), 2, "the invocation after the backoff retried, and failed");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = invoke_through(event("issue", None), app.clone()).await;
    assert_unavailable(&answer);
    assert_eq!(build.calls(), 2, "the second wait is twice as long");

    tokio::time::sleep(Duration::from_millis(750)).await;
    let answer = invoke_through(event("issue", None), app.clone()).await;
    issued_expiration(&answer);
    assert_eq!(build.calls(), 3, "the third attempt built the service");
    assert!(app.is_serving().await);

    let token = answer.json()["token"].as_str().unwrap().to_owned();
    assert_valid(&invoke_through(event("validate", Some(&token)), app.clone()).await);
    assert_eq!(build.calls(), 3, "built once, then only served");
}

#[test]
fn the_backoff_doubles_from_one_second_up_to_thirty() {
    let backoff = Backoff::default();
    let waits: Vec<u64> = (1..=8).map(|n| backoff.after(n).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(backoff.after(u32::MAX).as_secs(), 30);
}

#[tokio::test]
async fn a_misconfigured_function_answers_500_and_never_builds() {
    let app = LambdaApp::misconfigured("set TOKEN_SERVICE_SECRET_ARN");
    assert!(!app.is_serving().await);
    let answer = invoke_through(event("v2-issue", None), app).await;
    assert_eq!(answer.status(), 500, "{answer:?}");
    answer.assert_shape();
    assert_eq!(answer.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(answer.header("retry-after"), None);
    assert_eq!(
        answer.json(),
        json!({"isValid": false, "message": "internal error", "reason": "internal"})
    );
}
