//! The Lambda entry point, end to end without AWS: API Gateway REST API (v1) proxy events, kept
//! as JSON in `tests/events/`, are deserialized by `lambda_http` and driven through
//! `lambda_http::Adapter` around `router.map_request(strip_stage)`, the same path
//! `lambda_http::run` takes in `bin/token-service-lambda.rs`. Assertions are on the serialized
//! Lambda response (`statusCode`, `multiValueHeaders`, `body`, `isBase64Encoded`), which is what
//! API Gateway reads.
//!
//! The router is the one the Lambda serves, over the embedded store in a temporary directory;
//! the DynamoDB store has its own conformance run against DynamoDB Local. Every answer of
//! [`TestLambda::invoke`] is also checked against the OpenAPI document (`api/schema.rs`). Nothing here touches
//! the process environment, so `lambda_http` prefixes the stage to each event's `path` exactly as
//! it does in a deployed function without `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // the HTTP tests' OpenAPI check; this binary uses only `Document`
#[path = "api/schema.rs"]
mod schema;
#[path = "support/lambda.rs"]
mod support;

use axum::Router;
use backend::clock::{Clock, ManualClock, SystemClock};
use backend::http::{AllowedOrigins, router};
use backend::keys::SigningKey;
use backend::lambda::{KeySource, LambdaConfig, OpsSettings, strip_stage};
use backend::store::embedded::EmbeddedStore;
use backend::tokens::{Lifetimes, TokenService};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use support::{
    DEFAULT_TTL, LambdaAnswer, LambdaService, ORIGIN, Payload, SECRET, assert_lifetime,
    assert_valid, claims_of, event, invoke_seeing_path, invoke_through, issued_expiration, now,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt;

/// The manual clock of [`TestLambda::at`], epoch seconds: `2027-01-15T08:00:00Z`.
const NOW: i64 = 1_800_000_000;
/// `NOW + DEFAULT_TTL`, as the API writes it.
const EXPIRATION: &str = "2027-01-15T16:00:00Z";

/// The Lambda's router over an embedded store in its own temporary directory.
struct TestLambda {
    router: Router,
    _data: tempfile::TempDir,
}

impl TestLambda {
    fn new() -> Self {
        Self::on(Arc::new(SystemClock))
    }

    /// On a manual clock standing at `now`, epoch seconds.
    fn at(now: i64) -> (Self, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(now));
        (Self::on(clock.clone()), clock)
    }

    fn on(clock: Arc<dyn Clock>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(data.path().join("tokens.redb")).unwrap();
        let key = SigningKey::parse(SECRET.as_bytes()).unwrap();
        let service = TokenService::new(&key, Arc::new(store), clock, Lifetimes::default());
        let origins = AllowedOrigins::parse(ORIGIN).unwrap();
        Self { router: router(Arc::new(service), &origins), _data: data }
    }

    /// Runs `event` through the Lambda entry point's service and returns the serialized
    /// response, as the Lambda runtime would post it back, after checking it against the
    /// OpenAPI document.
    async fn invoke(&self, event: Value) -> LambdaAnswer {
        let method = event["httpMethod"].as_str().unwrap().to_owned();
        let path = event["path"].as_str().unwrap().to_owned();
        let answer = invoke_rest(event, self.router.clone().map_request(strip_stage)).await;
        answer.assert_documented(&method, &path);
        answer
    }

    /// Like [`Self::invoke`], but also reports the path `lambda_http` built, before
    /// `strip_stage` saw it.
    async fn invoke_seeing_raw_path(&self, event: Value) -> (String, LambdaAnswer) {
        let (seen, answer) =
            invoke_seeing_path(event, self.router.clone().map_request(strip_stage)).await;
        assert_eq!(answer.payload, Payload::Rest, "not read as a REST API event: {answer:?}");
        (seen, answer)
    }

    /// `GET /tokens` through the `issue` event; returns the token.
    async fn issue(&self) -> String {
        let answer = self.invoke(event("issue", None)).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        answer.json()["token"].as_str().unwrap().to_owned()
    }
}

/// Like [`invoke_through`], for the REST API events this file sends: checks the event is read
/// as a REST API (v1) proxy event.
async fn invoke_rest<S: LambdaService>(event: Value, app: S) -> LambdaAnswer {
    let answer = invoke_through(event, app).await;
    assert_eq!(answer.payload, Payload::Rest, "not read as a REST API event: {answer:?}");
    answer
}

impl LambdaAnswer {
    /// Checks this answer to `method path` against the OpenAPI document, as the HTTP tests
    /// check theirs.
    fn assert_documented(&self, method: &str, path: &str) {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, values) in self.response["multiValueHeaders"].as_object().unwrap() {
            for value in values.as_array().unwrap() {
                let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
                headers.append(name, value.as_str().unwrap().parse().unwrap());
            }
        }
        let body = match (&self.response["body"], &self.response["isBase64Encoded"]) {
            (Value::String(body), Value::Bool(true)) => STANDARD.decode(body).unwrap(),
            (Value::String(body), _) => body.clone().into_bytes(),
            _ => Vec::new(),
        };
        let answer = schema::Recorded {
            method: method.to_owned(),
            path: path.to_owned(),
            status: u16::try_from(self.status()).unwrap(),
            headers,
            body,
        };
        let problems = schema::Document::served().check(&answer, false);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[tokio::test]
async fn an_issue_event_returns_a_token_with_the_default_lifetime() {
    let lambda = TestLambda::new();
    let before = now();
    let answer = lambda.invoke(event("issue", None)).await;
    let after = now();
    let expiration = issued_expiration(&answer);
    assert_lifetime(expiration, DEFAULT_TTL, before, after);
}

#[tokio::test]
async fn a_stage_prefixed_path_routes_to_tokens_and_keeps_the_ttl_query() {
    let lambda = TestLambda::new();
    let raw = event("issue-ttl-60", None);
    assert_eq!(raw["path"], "/tokens");
    assert_eq!(raw["requestContext"]["path"], "/prod/tokens");
    let before = now();
    let (seen, answer) = lambda.invoke_seeing_raw_path(raw).await;
    let after = now();
    // lambda_http puts the stage in front of `path`; only strip_stage makes this `/tokens`.
    assert_eq!(seen, "/prod/tokens");
    let expiration = issued_expiration(&answer);
    assert_lifetime(expiration, 60, before, after);
}

#[tokio::test]
async fn without_strip_stage_a_rest_event_misses_every_route() {
    // Why the entry point maps requests through strip_stage: unless
    // AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH is set, the router is asked for `/prod/tokens`.
    let lambda = TestLambda::new();
    let answer = invoke_rest(event("issue", None), lambda.router.clone()).await;
    assert_eq!(answer.status(), 404, "{answer:?}");
    assert_eq!(answer.json()["reason"], "not_found");
}

#[tokio::test]
async fn an_issued_token_validates_once() {
    let lambda = TestLambda::new();
    let token = lambda.issue().await;
    assert_valid(&lambda.invoke(event("validate", Some(&token))).await);
}

#[tokio::test]
async fn a_token_cannot_be_validated_twice() {
    let lambda = TestLambda::new();
    let token = lambda.issue().await;
    assert_valid(&lambda.invoke(event("validate", Some(&token))).await);
    let again = lambda.invoke(event("validate", Some(&token))).await;
    assert_eq!(again.status(), 200, "{again:?}");
    again.assert_api_headers();
    let mut body = again.json();
    let used_at = body.as_object_mut().unwrap().remove("usedAt").unwrap();
    let used_at = OffsetDateTime::parse(used_at.as_str().unwrap(), &Rfc3339).unwrap();
    assert!((OffsetDateTime::now_utc() - used_at).whole_seconds().abs() < 60, "{used_at}");
    assert_eq!(
        body,
        json!({
            "isValid": false,
            "message": "Token has already been used",
            "reason": "already_used",
        })
    );
}

#[tokio::test]
async fn a_body_is_read_as_json_whatever_its_content_type_says() {
    let lambda = TestLambda::new();
    for name in
        ["validate-no-content-type", "validate-text-plain", "validate-upper-case-content-type"]
    {
        let token = lambda.issue().await;
        let answer = lambda.invoke(event(name, Some(&token))).await;
        assert_eq!(answer.status(), 200, "{name}: {answer:?}");
        assert_eq!(answer.json()["isValid"], json!(true), "{name}: {answer:?}");
        assert_valid(&answer);
    }
}

#[tokio::test]
async fn a_base64_encoded_body_validates() {
    let lambda = TestLambda::new();
    let token = lambda.issue().await;
    let event = event("validate-base64", Some(&token));
    assert_eq!(event["isBase64Encoded"], json!(true));
    assert_valid(&lambda.invoke(event).await);
}

#[tokio::test]
async fn a_malformed_body_is_a_400_with_cors_headers_not_a_lambda_error() {
    let lambda = TestLambda::new();
    let answer = lambda.invoke(event("validate-malformed-body", None)).await;
    assert_eq!(answer.status(), 400, "{answer:?}");
    answer.assert_api_headers();
    assert_eq!(
        answer.error_json(),
        json!({
            "isValid": false,
            "message": "the body must be JSON of the form {\"token\": \"<JWT>\"} \
                        (it is not valid JSON, at line 1 column 2)",
            "reason": "bad_request",
        })
    );
}

#[tokio::test]
async fn a_post_without_a_body_is_a_400_with_cors_headers() {
    let lambda = TestLambda::new();
    let event = event("validate-no-body", None);
    assert_eq!(event["body"], Value::Null);
    let answer = lambda.invoke(event).await;
    assert_eq!(answer.status(), 400, "{answer:?}");
    answer.assert_api_headers();
    assert_eq!(
        answer.error_json(),
        json!({
            "isValid": false,
            "message": "the body must be JSON of the form {\"token\": \"<JWT>\"} \
                        (it ends too early, at line 1 column 0)",
            "reason": "bad_request",
        })
    );
}

#[tokio::test]
async fn a_body_over_8_kib_is_a_413_with_cors_headers() {
    let lambda = TestLambda::new();
    let event = event("validate-too-large", None);
    assert!(event["body"].as_str().unwrap().len() > shared::MAX_BODY_BYTES);
    let answer = lambda.invoke(event).await;
    assert_eq!(answer.status(), 413, "{answer:?}");
    answer.assert_api_headers();
    assert_eq!(
        answer.error_json(),
        json!({
            "isValid": false,
            "message": "the request body is larger than 8192 bytes",
            "reason": "payload_too_large",
        })
    );
}

#[tokio::test]
async fn an_unknown_route_is_a_404_in_the_api_error_shape() {
    let lambda = TestLambda::new();
    let answer = lambda.invoke(event("unknown-route", None)).await;
    assert_eq!(answer.status(), 404, "{answer:?}");
    answer.assert_api_headers();
    assert_eq!(
        answer.error_json(),
        json!({
            "isValid": false,
            "message": "no such endpoint; the API is described at GET /openapi.json",
            "reason": "not_found",
        })
    );
}

#[tokio::test]
async fn an_options_preflight_allows_the_ui_origin_to_post_json() {
    // Deployed, API Gateway answers preflights itself (`defaultCorsPreflightOptions` in
    // infra/lib/api.ts); this pins the router's own answer for any route that forwards them.
    let lambda = TestLambda::new();
    let answer = lambda.invoke(event("preflight", None)).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.response["headers"], json!({}));
    assert_eq!(answer.header("access-control-allow-origin").as_deref(), Some(ORIGIN));
    let methods = answer.header("access-control-allow-methods").unwrap();
    let methods: Vec<&str> = methods.split(',').map(str::trim).collect();
    assert_eq!(methods, ["GET", "POST"]);
    assert_eq!(
        answer.header("access-control-allow-headers").as_deref(),
        Some("content-type,idempotency-key,authorization,x-request-id")
    );
    assert_eq!(answer.header("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        answer.header("vary").as_deref(),
        Some("origin, access-control-request-method, access-control-request-headers")
    );
    // No Cache-Control check: responses to OPTIONS are not cacheable (RFC 9110 section
    // 9.3.7); browsers cache preflights for Access-Control-Max-Age only.
    assert_eq!(answer.response["body"], json!(""), "{answer:?}");
    assert_eq!(answer.response["isBase64Encoded"], json!(false));
}

/// Checks an answer with the API headers and returns its JSON body.
fn ok_json(answer: &LambdaAnswer) -> Value {
    assert_eq!(answer.status(), 200, "{answer:?}");
    answer.assert_api_headers();
    answer.json()
}

#[tokio::test]
async fn a_status_event_reports_a_token_without_using_it() {
    let (lambda, clock) = TestLambda::at(NOW);
    let token = lambda.issue().await;
    let unused = json!({"state": "unused", "expiration": EXPIRATION});
    for _ in 0..2 {
        assert_eq!(ok_json(&lambda.invoke(event("status", Some(&token))).await), unused);
    }
    clock.advance(5);
    assert_valid(&lambda.invoke(event("validate", Some(&token))).await);
    assert_eq!(
        ok_json(&lambda.invoke(event("status", Some(&token))).await),
        json!({"state": "used", "expiration": EXPIRATION, "usedAt": "2027-01-15T08:00:05Z"})
    );
    let forged = format!("{token}x");
    assert_eq!(
        ok_json(&lambda.invoke(event("status", Some(&forged))).await),
        json!({"state": "invalid", "reason": "invalid_signature"})
    );
}

#[tokio::test]
async fn a_revoke_event_revokes_an_unused_token_once_and_validation_then_says_revoked() {
    let (lambda, clock) = TestLambda::at(NOW);
    let token = lambda.issue().await;
    clock.advance(10);
    let revoked =
        json!({"state": "revoked", "expiration": EXPIRATION, "revokedAt": "2027-01-15T08:00:10Z"});
    assert_eq!(ok_json(&lambda.invoke(event("revoke", Some(&token))).await), revoked);
    clock.advance(10);
    assert_eq!(
        ok_json(&lambda.invoke(event("validate", Some(&token))).await),
        json!({"isValid": false, "message": "Token has been revoked", "reason": "revoked"})
    );
    assert_eq!(ok_json(&lambda.invoke(event("revoke", Some(&token))).await), revoked);
    assert_eq!(ok_json(&lambda.invoke(event("status", Some(&token))).await), revoked);
}

#[tokio::test]
async fn a_revoke_event_reports_a_used_token_unchanged() {
    let (lambda, clock) = TestLambda::at(NOW);
    let token = lambda.issue().await;
    assert_valid(&lambda.invoke(event("validate", Some(&token))).await);
    clock.advance(10);
    assert_eq!(
        ok_json(&lambda.invoke(event("revoke", Some(&token))).await),
        json!({"state": "used", "expiration": EXPIRATION, "usedAt": "2027-01-15T08:00:00Z"})
    );
}

#[tokio::test]
async fn a_superseding_issue_event_binds_purpose_and_subject_and_revokes_the_pairs_older_token() {
    let (lambda, clock) = TestLambda::at(NOW);
    let raw = event("issue-supersede", None);
    assert_eq!(
        raw["queryStringParameters"],
        json!({"purpose": "password-reset", "subject": "user-42", "supersede": "true"})
    );
    let first = ok_json(&lambda.invoke(raw.clone()).await);
    assert_eq!(first["expiration"], EXPIRATION);
    let first = first["token"].as_str().unwrap().to_owned();
    let claims = claims_of(&first);
    assert_eq!((&claims["purpose"], &claims["sub"]), (&json!("password-reset"), &json!("user-42")));
    clock.advance(30);
    let second = ok_json(&lambda.invoke(raw).await)["token"].as_str().unwrap().to_owned();
    assert_eq!(
        ok_json(&lambda.invoke(event("status", Some(&first))).await),
        json!({
            "state": "revoked",
            "expiration": EXPIRATION,
            "revokedAt": "2027-01-15T08:00:30Z",
            "purpose": "password-reset",
        })
    );
    assert_eq!(
        ok_json(&lambda.invoke(event("validate-bound", Some(&first))).await),
        json!({"isValid": false, "message": "Token has been revoked", "reason": "revoked"})
    );
    // A caller naming no purpose is refused, and the token stays usable for the right one.
    assert_eq!(
        ok_json(&lambda.invoke(event("validate", Some(&second))).await),
        json!({
            "isValid": false,
            "message": "Token was issued for another purpose",
            "reason": "wrong_purpose",
        })
    );
    assert_valid(&lambda.invoke(event("validate-bound", Some(&second))).await);
}

#[tokio::test]
async fn the_openapi_event_returns_the_generated_openapi_3_1_document() {
    use utoipa::OpenApi;
    let lambda = TestLambda::new();
    let document = ok_json(&lambda.invoke(event("openapi-document", None)).await);
    assert_eq!(document, serde_json::to_value(backend::http::ApiDoc::openapi()).unwrap());
    assert_eq!(document["openapi"], "3.1.0");
    for path in ["/tokens", "/tokens/status", "/tokens/revoke", "/openapi.json"] {
        assert!(document["paths"].get(path).is_some(), "{path} missing");
    }
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn lambda_config_without_a_secret_names_the_secret_arn_variable() {
    let error = LambdaConfig::from_env(vars(&[("TOKEN_SERVICE_TABLE", "T")])).unwrap_err();
    assert_eq!(error, "set TOKEN_SERVICE_SECRET_ARN (or TOKEN_SERVICE_SECRET for local use)");
    let empty = LambdaConfig::from_env(vars(&[
        ("TOKEN_SERVICE_SECRET_ARN", ""),
        ("TOKEN_SERVICE_SECRET", ""),
    ]));
    assert_eq!(empty.unwrap_err(), error);
}

#[test]
fn lambda_config_prefers_the_secret_arn_over_the_secret_value() {
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:token-key-AbCdEf";
    let config = LambdaConfig::from_env(vars(&[
        ("TOKEN_SERVICE_SECRET_ARN", arn),
        ("TOKEN_SERVICE_SECRET", SECRET),
    ]))
    .unwrap();
    assert_eq!(config.key, KeySource::SecretsManager(arn.into()));

    let config = LambdaConfig::from_env(vars(&[
        ("TOKEN_SERVICE_SECRET_ARN", ""),
        ("TOKEN_SERVICE_SECRET", SECRET),
    ]))
    .unwrap();
    assert_eq!(config.key, KeySource::Value(SECRET.into()));
    assert_eq!(format!("{:?}", config.key), "Value(<redacted>)");
}

#[test]
fn lambda_config_refuses_a_ttl_that_is_not_whole_seconds() {
    let secret = ("TOKEN_SERVICE_SECRET", SECRET);
    let error =
        LambdaConfig::from_env(vars(&[secret, ("TOKEN_SERVICE_MAX_TTL", "1h")])).unwrap_err();
    assert_eq!(error, r#"TOKEN_SERVICE_MAX_TTL must be whole seconds: "1h""#);
    let error =
        LambdaConfig::from_env(vars(&[secret, ("TOKEN_SERVICE_DEFAULT_TTL", "-5")])).unwrap_err();
    assert_eq!(error, r#"TOKEN_SERVICE_DEFAULT_TTL must be whole seconds: "-5""#);
    let error = LambdaConfig::from_env(vars(&[
        secret,
        ("TOKEN_SERVICE_DEFAULT_TTL", "7200"),
        ("TOKEN_SERVICE_MAX_TTL", "3600"),
    ]))
    .unwrap_err();
    assert_eq!(error, "the default lifetime (7200 s) must be between 1 s and the maximum (3600 s)");
}

#[test]
fn lambda_config_defaults_to_table_token_table_default_lifetimes_and_no_cors() {
    let config = LambdaConfig::from_env(vars(&[("TOKEN_SERVICE_SECRET", SECRET)])).unwrap();
    assert_eq!(
        config,
        LambdaConfig {
            table: "TokenTable".into(),
            key: KeySource::Value(SECRET.into()),
            origins: AllowedOrigins::None,
            lifetimes: Lifetimes::default(),
            replay_window: 600,
            ops: OpsSettings::default(),
        }
    );
    let config = LambdaConfig::from_env(vars(&[
        ("TOKEN_SERVICE_SECRET", SECRET),
        ("TOKEN_SERVICE_TABLE", "OtherTable"),
        ("TOKEN_SERVICE_ALLOWED_ORIGINS", ORIGIN),
        ("TOKEN_SERVICE_DEFAULT_TTL", "60"),
        ("TOKEN_SERVICE_MAX_TTL", "120"),
        ("TOKEN_SERVICE_REPLAY_WINDOW", "30"),
    ]))
    .unwrap();
    assert_eq!(
        config,
        LambdaConfig {
            table: "OtherTable".into(),
            key: KeySource::Value(SECRET.into()),
            origins: AllowedOrigins::parse(ORIGIN).unwrap(),
            lifetimes: Lifetimes::new(60, 120).unwrap(),
            replay_window: 30,
            ops: OpsSettings::default(),
        }
    );
}
