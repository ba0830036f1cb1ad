//! Running it for real through the Lambda entry point: issuer keys and signing keys from
//! Secrets Manager (with rotation through `AWSCURRENT`/`AWSPREVIOUS`), rate limits by API
//! Gateway's source address, EMF metrics and the audit log on the function's output.
//!
//! Each test fills [`LambdaConfig`] from a map of environment variables, builds the service
//! through `app::build` (the Lambda's own path) over an embedded store, and drives API Gateway
//! REST events from `tests/events/` through `lambda_http::Adapter` and `LambdaApp`, as
//! `bin/token-service-lambda.rs` does. Secrets Manager is moto (`moto_server`, PyPI
//! `moto[server]`, started per test on a free loopback port); DynamoDB is covered elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;
use backend::app::{Settings, StoreSettings};
use backend::audit::LogSink;
use backend::http::AllowedOrigins;
use backend::lambda::{Backoff, LambdaApp, LambdaConfig};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tower::ServiceExt;

const ORIGIN: &str = "https://ui.example";
const SECRET: &str = "lambda-ops-key-lambda-ops-key-lambda-ops-key";
const ISSUER: &str = "lambda-issuer-key-lambda-issuer-key-0123456";
/// The `requestContext.requestId` of `validate.json` (and of every event file).
const GATEWAY_REQUEST_PREFIX: &str = "5e4c6a0e-93f1-4c2b-8d7a-";

/// A Lambda built from `vars` with its audit and EMF lines kept in memory.
struct TestLambda {
    /// The function as it runs: the router behind `LambdaApp`, which also marks `/metrics` text.
    app: LambdaApp,
    log: LogSink,
    _data: Option<tempfile::TempDir>,
}

impl TestLambda {
    async fn new(vars: &[(&str, &str)], aws: Option<SdkConfig>) -> Self {
        Self::try_new(vars, aws).await.unwrap()
    }

    async fn try_new(vars: &[(&str, &str)], aws: Option<SdkConfig>) -> Result<Self, String> {
        let data = tempfile::tempdir().unwrap();
        let mut lambda = Self::try_new_in(data.path(), vars, aws).await?;
        lambda._data = Some(data);
        Ok(lambda)
    }

    /// A cold start on the store in `dir` (another instance on it must be dropped first).
    async fn new_in(dir: &Path, vars: &[(&str, &str)], aws: Option<SdkConfig>) -> Self {
        Self::try_new_in(dir, vars, aws).await.unwrap()
    }

    async fn try_new_in(
        dir: &Path,
        vars: &[(&str, &str)],
        aws: Option<SdkConfig>,
    ) -> Result<Self, String> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let config = LambdaConfig::from_env(|name| map.get(name).cloned())?;
        let log = LogSink::memory();
        let settings = Settings {
            store: StoreSettings::Embedded { path: dir.join("tokens.redb") },
            log: log.clone(),
            aws,
            ..config.settings()
        };
        let app = backend::app::build(settings).await.map_err(|e| e.to_string())?;
        let router = app.router;
        let app = LambdaApp::start(AllowedOrigins::None, Backoff::default(), move || {
            let router = router.clone();
            async move { Ok(router) }
        })
        .await;
        Ok(Self { app, log, _data: None })
    }

    async fn invoke(&self, event: Value) -> Answer {
        let payload: LambdaRequest = serde_json::from_value(event).unwrap();
        let app = self.app.clone();
        let response = Adapter::from(app)
            .oneshot(LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
        Answer(serde_json::to_value(response).unwrap())
    }

    /// `GET /tokens` with `key` as the issuer key; the token.
    async fn issue(&self, key: Option<&str>) -> String {
        let answer = self.invoke(with_key(event("issue"), key)).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        answer.json()["token"].as_str().unwrap().to_owned()
    }

    async fn validate(&self, token: &str) -> Value {
        let answer = self.invoke(validate_event(token)).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        answer.json()
    }
}

#[derive(Debug)]
struct Answer(Value);

impl Answer {
    fn status(&self) -> u64 {
        self.0["statusCode"].as_u64().unwrap()
    }

    fn header(&self, name: &str) -> Option<String> {
        let values = self.0["multiValueHeaders"].get(name)?.as_array().unwrap();
        assert_eq!(values.len(), 1, "{name} repeated: {values:?}");
        Some(values[0].as_str().unwrap().to_owned())
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.0["body"].as_str().unwrap()).unwrap()
    }
}

fn event(name: &str) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/events").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn validate_event(token: &str) -> Value {
    let mut event = event("validate");
    let body = event["body"].as_str().unwrap().replace("{{TOKEN}}", token);
    event["body"] = Value::String(body);
    event
}

/// `event` with header `name: value` in both header maps, as API Gateway sends it.
fn with_header(mut event: Value, name: &str, value: &str) -> Value {
    event["headers"][name] = json!(value);
    event["multiValueHeaders"][name] = json!([value]);
    event
}

fn with_key(event: Value, key: Option<&str>) -> Value {
    match key {
        Some(key) => with_header(event, "Authorization", &format!("Bearer {key}")),
        None => event,
    }
}

fn from_address(mut event: Value, ip: &str) -> Value {
    event["requestContext"]["identity"]["sourceIp"] = json!(ip);
    event
}

/// The issue event, for `path` instead of `/tokens`.
fn get(path: &str) -> Value {
    let mut event = event("issue");
    event["path"] = json!(path);
    event["resource"] = json!(path);
    event["requestContext"]["path"] = json!(format!("/prod{path}"));
    event["requestContext"]["resourcePath"] = json!(path);
    event
}

/// moto's Secrets Manager on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server not found: run scripts/install-tools.sh moto (PyPI moto[server])");
        // Owned by `Self` at once, so its Drop stops the process whatever happens next.
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        // 30 s, as scripts/aws-local allows: Python and moto start slowly on a loaded machine.
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto_server did not listen on {} within 30 s", moto.endpoint);
    }

    async fn sdk(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(backend::store::dynamodb::https_client())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
            .load()
            .await
    }

    /// Creates secret `name` with `value`; its ARN.
    async fn create(&self, name: &str, value: &str) -> String {
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk().await);
        let created = client.create_secret().name(name).secret_string(value).send().await.unwrap();
        created.arn.unwrap()
    }

    /// Puts a new version of `arn`: it becomes `AWSCURRENT`, the old one `AWSPREVIOUS`.
    async fn rotate(&self, arn: &str, value: &str) {
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk().await);
        client.put_secret_value().secret_id(arn).secret_string(value).send().await.unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn issuing_needs_the_issuer_key_from_secrets_manager_and_validation_stays_open() {
    let moto = Moto::start().await;
    let signing = moto.create("signing", SECRET).await;
    let issuer =
        moto.create("issuers", &format!("{ISSUER}\nsecond-issuer-key-0123456789abcdef0123")).await;
    let vars = [
        ("TOKEN_SERVICE_SECRET_ARN", signing.as_str()),
        ("TOKEN_SERVICE_ISSUER_KEYS_SECRET_ARN", issuer.as_str()),
        ("TOKEN_SERVICE_ALLOWED_ORIGINS", ORIGIN),
    ];
    let lambda = TestLambda::new(&vars, Some(moto.sdk().await)).await;

    for (key, challenge) in [
        (None, r#"Bearer realm="token-service""#),
        (
            Some("wrong-key-wrong-key-wrong-key-wrong-key"),
            r#"Bearer realm="token-service", error="invalid_token""#,
        ),
    ] {
        let refused = lambda.invoke(with_key(event("issue"), key)).await;
        assert_eq!(refused.status(), 401, "{refused:?}");
        assert_eq!(refused.header("www-authenticate").as_deref(), Some(challenge));
        assert_eq!(refused.header("access-control-allow-origin").as_deref(), Some(ORIGIN));
        let body = refused.json();
        assert_eq!(body["reason"], "unauthorized");
        assert_eq!(body["isValid"], false);
        let id = body["requestId"].as_str().unwrap();
        assert!(id.starts_with(GATEWAY_REQUEST_PREFIX), "API Gateway's request id: {id}");
    }
    let token = lambda.issue(Some(ISSUER)).await;
    let token2 = lambda.issue(Some("second-issuer-key-0123456789abcdef0123")).await;
    assert_eq!(lambda.validate(&token).await["isValid"], true);
    assert_eq!(lambda.validate(&token2).await["isValid"], true);
    assert_eq!(lambda.invoke(get("/metrics")).await.status(), 401);
    let metrics = lambda.invoke(with_key(get("/metrics"), Some(ISSUER))).await;
    assert_eq!(metrics.status(), 200);
    assert_eq!(metrics.0["isBase64Encoded"], false, "API Gateway would pass base64 on");
    let text = metrics.0["body"].as_str().unwrap();
    assert!(text.lines().any(|l| l == "tokens_issued_total 2"), "{text}");
}

#[tokio::test]
async fn a_token_issued_under_awscurrent_validates_after_one_rotation_and_not_after_two() {
    let moto = Moto::start().await;
    let arn = moto.create("rotating", "key-a-key-a-key-a-key-a-key-a-key-a-key-a").await;
    let vars = [("TOKEN_SERVICE_SECRET_ARN", arn.as_str())];
    // Every instance is a cold start that reads the secret's versions again; they share one
    // store, as Lambdas share the table.
    let store = tempfile::tempdir().unwrap();
    let under_a = TestLambda::new_in(store.path(), &vars, Some(moto.sdk().await)).await;
    let (kept, dropped) = (under_a.issue(None).await, under_a.issue(None).await);
    drop(under_a);

    moto.rotate(&arn, "key-b-key-b-key-b-key-b-key-b-key-b-key-b").await;
    let after_one = TestLambda::new_in(store.path(), &vars, Some(moto.sdk().await)).await;
    assert_eq!(after_one.validate(&kept).await["isValid"], true, "A is AWSPREVIOUS");
    assert_eq!(after_one.validate(&kept).await["reason"], "already_used");
    let under_b = after_one.issue(None).await;
    assert_ne!(kid(&kept), kid(&under_b), "a new key, a new kid");
    drop(after_one);

    moto.rotate(&arn, "key-c-key-c-key-c-key-c-key-c-key-c-key-c").await;
    let after_two = TestLambda::new_in(store.path(), &vars, Some(moto.sdk().await)).await;
    assert_eq!(after_two.validate(&dropped).await["reason"], "invalid_signature");
    assert_eq!(after_two.validate(&under_b).await["isValid"], true, "B is AWSPREVIOUS");
}

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_missing_secret_version_stage_or_short_key_fails_the_cold_start() {
    let moto = Moto::start().await;
    let short = moto.create("short", "too-short").await;
    let error =
        TestLambda::try_new(&[("TOKEN_SERVICE_SECRET_ARN", &short)], Some(moto.sdk().await))
            .await
            .err()
            .unwrap();
    assert_eq!(
        error,
        "TOKEN_SERVICE_SECRET / --secret: the signing key is 9 bytes; HS256 needs at least 32 \
         (RFC 7518 section 3.2)"
    );
    let issuers = moto.create("short-issuers", "short").await;
    let error = TestLambda::try_new(
        &[("TOKEN_SERVICE_SECRET", SECRET), ("TOKEN_SERVICE_ISSUER_KEYS_SECRET_ARN", &issuers)],
        Some(moto.sdk().await),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        error,
        format!(
            "issuer keys: {issuers}: issuer key 1 of 1 is 5 bytes; issuer keys must be at least 32"
        )
    );
}

#[tokio::test]
async fn a_client_over_its_limit_gets_429_by_api_gateways_source_address() {
    let vars = [("TOKEN_SERVICE_SECRET", SECRET), ("TOKEN_SERVICE_RATE_LIMIT_PER_MINUTE", "2")];
    let lambda = TestLambda::new(&vars, None).await;
    lambda.issue(None).await;
    lambda.issue(None).await;
    let refused = lambda.invoke(event("issue")).await;
    assert_eq!(refused.status(), 429, "{refused:?}");
    // 2 a minute: one every 30 s from the first request (29 if that was a second or more ago).
    let retry_after = refused.header("retry-after").unwrap();
    assert!(["29", "30"].contains(&retry_after.as_str()), "Retry-After: {retry_after}");
    assert_eq!(refused.json()["reason"], "rate_limited");
    let spoofed =
        lambda.invoke(with_header(event("issue"), "X-Forwarded-For", "198.51.100.7")).await;
    assert_eq!(spoofed.status(), 429, "X-Forwarded-For is not API Gateway's view");
    let other = lambda.invoke(from_address(event("issue"), "198.51.100.7")).await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn an_http_api_or_function_url_client_over_its_limit_gets_429_by_its_source_address() {
    // Payload 2.0 keeps the address in requestContext.http.sourceIp, not identity.sourceIp.
    let vars = [("TOKEN_SERVICE_SECRET", SECRET), ("TOKEN_SERVICE_RATE_LIMIT_PER_MINUTE", "2")];
    let lambda = TestLambda::new(&vars, None).await;
    for name in ["v2-issue", "v2-function-url-issue"] {
        assert_eq!(lambda.invoke(event(name)).await.status(), 200, "{name}");
    }
    let refused = lambda.invoke(event("v2-issue")).await;
    assert_eq!(refused.status(), 429, "{refused:?}");
    assert_eq!(refused.json()["reason"], "rate_limited");
    let mut other = event("v2-issue");
    other["requestContext"]["http"]["sourceIp"] = json!("198.51.100.7");
    assert_eq!(lambda.invoke(other).await.status(), 200);
}

#[tokio::test]
async fn metrics_are_emf_lines_and_the_audit_log_has_reuse_detected_and_no_token() {
    let vars = [("TOKEN_SERVICE_SECRET", SECRET), ("AWS_LAMBDA_FUNCTION_NAME", "tokens-prod")];
    let lambda = TestLambda::new(&vars, None).await;
    let token = lambda.issue(None).await;
    let first = lambda.validate(&token).await;
    assert_eq!(first["isValid"], true);
    let again = lambda.validate(&token).await;
    assert_eq!(again["reason"], "already_used");
    let lines = lambda.log.lines();

    let reuse: Vec<&String> = lines.iter().filter(|l| l.contains("\"reuse_detected\":")).collect();
    assert_eq!(reuse.len(), 1, "{lines:#?}");
    let emf: Value = serde_json::from_str(reuse[0]).unwrap();
    assert_eq!(emf["FunctionName"], "tokens-prod");
    assert_eq!(emf["reuse_detected"], 1.0);
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "TokenService");
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]));
    let issued = lines.iter().filter(|l| l.contains("\"tokens_issued\":1.0")).count();
    assert_eq!(issued, 1, "{lines:#?}");

    let audit: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["log"] == "audit")
        .collect();
    let events: Vec<&str> = audit.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["issued", "consumed", "reuse_detected"]);
    assert_eq!(audit[2]["usedAt"], again["usedAt"]);
    assert_eq!(audit[2]["client"], "203.0.113.24");
    assert!(audit[2]["requestId"].as_str().unwrap().starts_with(GATEWAY_REQUEST_PREFIX));
    let signature = token.rsplit('.').next().unwrap();
    for line in &lines {
        assert!(!line.contains(&token) && !line.contains(signature), "token in {line}");
        assert!(!line.contains(SECRET), "key in {line}");
    }
}
