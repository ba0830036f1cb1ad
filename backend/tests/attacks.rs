//! The attack corpus: hostile tokens and request bodies kept as data in `tests/attacks/corpus.json`
//! (format in `tests/attacks/README.md`), each naming the threat it stands for (RFC 8725 sections
//! 2 and 3, the OWASP JWT cheat sheet) and the exact answer expected.
//!
//! The same corpus runs through three doors: the real router on a real port over the embedded
//! store, the same over DynamoDB Local, and the Lambda entry point fed API Gateway REST events.
//! Every run uses a [`ManualClock`], so "the exact second of `exp`" is exact. For every case a
//! genuine token is issued first, and after the attack it must still be valid exactly once: an
//! attack may neither be accepted nor consume, damage or lose a record.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use axum::Router;
use backend::clock::ManualClock;
use backend::http::{AllowedOrigins, router};
use backend::keys::SigningKey;
use backend::lambda::strip_stage;
use backend::store::TokenStore;
use backend::store::dynamodb::DynamoStore;
use backend::store::embedded::EmbeddedStore;
use backend::tokens::{DEFAULT_MAX_LIFETIME_SECS, Lifetimes, TokenService};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, KeyInit, Mac};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

/// The service's clock when each case starts, epoch seconds.
const NOW: i64 = 1_800_000_000;
/// Lifetime of the genuine token each case issues, seconds: its `exp` is `NOW + TTL`.
const TTL: i64 = 3600;
/// The service's key in these tests; `key: "test"` in the corpus.
const SECRET: &str = "attacks-test-key-attacks-test-key-attacks";

// ---------------------------------------------------------------------------------------------
// The corpus format.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    threat: String,
    /// Clock for the attack request (an expression); `NOW` if absent.
    at: Option<String>,
    /// Purpose and subject the genuine token is issued with (`GET /tokens?purpose=&subject=`);
    /// none if absent.
    #[serde(default)]
    issue: Binding,
    /// Purpose and subject the second genuine token is issued with; `issue` if absent.
    other_issue: Option<Binding>,
    /// Members added to the `{"token": ...}` body of the attack request (any JSON, so a
    /// `purpose` can be a number); none if absent. Not for `body` inputs.
    #[serde(default)]
    request: serde_json::Map<String, Value>,
    input: Input,
    expect: Expect,
}

/// A purpose and a subject, as issued and as a caller accepts them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Binding {
    purpose: Option<String>,
    subject: Option<String>,
}

impl Binding {
    /// The query of `GET /tokens` for a token of `TTL` seconds with this binding.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("ttl", TTL.to_string())];
        query.extend(self.purpose.clone().map(|p| ("purpose", p)));
        query.extend(self.subject.clone().map(|s| ("subject", s)));
        query
    }

    /// The body of `POST /tokens` for `token` from a caller that accepts this binding.
    fn request(&self, token: &str) -> Value {
        let mut body = json!({ "token": token });
        if let Some(purpose) = &self.purpose {
            body["purpose"] = json!(purpose);
        }
        if let Some(subject) = &self.subject {
            body["subject"] = json!(subject);
        }
        body
    }
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: u16,
    #[serde(rename = "isValid")]
    is_valid: bool,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Input {
    /// A literal token.
    Token { token: String },
    /// A literal request body, in one of three spellings.
    Body { body: Option<String>, body_hex: Option<String>, body_fill: Option<Fill> },
    /// The genuine token, edited.
    Issued {
        #[serde(default)]
        mutate: Vec<Edit>,
    },
    /// A fresh JWS over chosen header and claims.
    Sign {
        header: Option<Value>,
        header_hex: Option<String>,
        claims: Option<Value>,
        claims_hex: Option<String>,
        key: Option<String>,
        mac: Option<String>,
        #[serde(default)]
        mutate: Vec<Edit>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fill {
    prefix: String,
    fill: String,
    len: usize,
    suffix: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Edit {
    Append { text: String },
    Prepend { text: String },
    AppendToSegment { segment: usize, text: String },
    Insert { segment: usize, text: String },
    ReplaceSegment { segment: usize, text: String },
    ReplaceSegmentJson { segment: usize, json: Value },
    SegmentFromOther { segment: usize },
    FlipFirstChar { segment: usize },
    NoncanonicalLastChar { segment: usize },
    StdAlphabet,
    KeepSegments { count: usize },
    Repeat { times: usize },
    Uppercase,
}

fn corpus() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/corpus.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Building an attack from a case.

/// What a case may refer to: the genuine token of this case and a second one.
struct Genuine {
    token: String,
    uuid: Uuid,
    other_token: String,
    other_uuid: Uuid,
}

/// Evaluates a placeholder expression: `UUID`, `OTHER_UUID`, `TOKEN`, `OTHER_TOKEN`, or a sum
/// of `NOW`, `EXP`, `MAX` and integers. Numbers come back as `Ok`, text as `Err`.
fn eval(expr: &str, g: &Genuine) -> Result<i64, String> {
    match expr {
        "UUID" => return Err(g.uuid.to_string()),
        "OTHER_UUID" => return Err(g.other_uuid.to_string()),
        "TOKEN" => return Err(g.token.clone()),
        "OTHER_TOKEN" => return Err(g.other_token.clone()),
        _ => {}
    }
    let (mut total, mut sign, mut term) = (0i64, 1i64, String::new());
    let value = |term: &str| match term {
        "NOW" => NOW,
        "EXP" => NOW + TTL,
        "MAX" => DEFAULT_MAX_LIFETIME_SECS as i64,
        n => n.parse().unwrap_or_else(|_| panic!("bad placeholder term {n:?} in {expr:?}")),
    };
    for c in expr.chars().chain(std::iter::once('+')) {
        if c == '+' || c == '-' {
            total += sign * value(&term);
            term.clear();
            sign = if c == '+' { 1 } else { -1 };
        } else {
            term.push(c);
        }
    }
    Ok(total)
}

/// Replaces every `{{EXPR}}` in `text`; a quoted numeric placeholder loses its quotes unless
/// written `{{str:EXPR}}`.
fn substitute(text: &str, g: &Genuine) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = start + rest[start..].find("}}").expect("unclosed placeholder");
        let expr = &rest[start + 2..end];
        let (expr, keep_string) = match expr.strip_prefix("str:") {
            Some(expr) => (expr, true),
            None => (expr, false),
        };
        let before = &rest[..start];
        let after = &rest[end + 2..];
        match eval(expr, g) {
            Ok(n) if !keep_string && before.ends_with('"') && after.starts_with('"') => {
                out.push_str(&before[..before.len() - 1]);
                out.push_str(&n.to_string());
                rest = &after[1..];
            }
            Ok(n) => {
                out.push_str(before);
                out.push_str(&n.to_string());
                rest = after;
            }
            Err(text) => {
                out.push_str(before);
                out.push_str(&text);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn hex(text: &str) -> Vec<u8> {
    assert_eq!(text.len() % 2, 0, "odd hex {text:?}");
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// A JSON part (header or claims) as bytes: raw text if a string, else serialized.
fn part(value: Option<&Value>, raw_hex: Option<&String>, default: &str, g: &Genuine) -> Vec<u8> {
    match (value, raw_hex) {
        (_, Some(raw)) => hex(raw),
        (Some(Value::String(text)), None) => substitute(text, g).into_bytes(),
        (Some(value), None) => substitute(&value.to_string(), g).into_bytes(),
        (None, None) => substitute(default, g).into_bytes(),
    }
}

fn key_bytes(key: &str) -> Vec<u8> {
    if key == "test" {
        SECRET.as_bytes().to_vec()
    } else if let Some(text) = key.strip_prefix("utf8:") {
        text.as_bytes().to_vec()
    } else if let Some(h) = key.strip_prefix("hex:") {
        hex(h)
    } else if let Some(b) = key.strip_prefix("b64url:") {
        B64.decode(b).unwrap()
    } else {
        panic!("bad key {key:?}")
    }
}

/// The base64url MAC of `message` with `key` for `mac` (`HS256`, `HS384`, `HS512`), or `none`
/// (empty), or `literal:TEXT`.
fn signature(mac: &str, key: &[u8], message: &str) -> String {
    macro_rules! hmac {
        ($digest:ty) => {{
            let mut mac = <Hmac<$digest> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(message.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }};
    }
    match mac {
        "HS256" => hmac!(sha2::Sha256),
        "HS384" => hmac!(sha2::Sha384),
        "HS512" => hmac!(sha2::Sha512),
        "none" => String::new(),
        other => other.strip_prefix("literal:").unwrap_or_else(|| panic!("bad mac {other}")).into(),
    }
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn edit(token: &str, edit: &Edit, g: &Genuine) -> String {
    let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
    let changed = |new: String| {
        assert_ne!(new, token, "{edit:?} changed nothing");
        new
    };
    match edit {
        Edit::Append { text } => return format!("{token}{text}"),
        Edit::Prepend { text } => return format!("{text}{token}"),
        Edit::StdAlphabet => return changed(token.replace('-', "+").replace('_', "/")),
        Edit::Uppercase => return changed(token.to_ascii_uppercase()),
        Edit::Repeat { times } => return token.repeat(*times),
        Edit::KeepSegments { count } => segments.truncate(*count),
        Edit::AppendToSegment { segment, text } => segments[*segment].push_str(text),
        Edit::Insert { segment, text } => segments[*segment].insert_str(0, text),
        Edit::ReplaceSegment { segment, text } => segments[*segment] = substitute(text, g),
        Edit::ReplaceSegmentJson { segment, json } => {
            segments[*segment] = B64.encode(substitute(&json.to_string(), g));
        }
        Edit::SegmentFromOther { segment } => {
            segments[*segment] = g.other_token.split('.').nth(*segment).unwrap().to_owned();
        }
        Edit::FlipFirstChar { segment } => {
            let s = &mut segments[*segment];
            let first = if s.starts_with('A') { "B" } else { "A" };
            s.replace_range(..1, first);
        }
        Edit::NoncanonicalLastChar { segment } => {
            // 2 or 3 characters after the last full group carry 4 or 2 unused low bits.
            let s = &mut segments[*segment];
            assert!(s.len() % 4 >= 2, "{s:?} has no unused bits");
            let last = s.pop().unwrap();
            let value = BASE64URL.iter().position(|&c| c == last as u8).unwrap();
            s.push(BASE64URL[value | 1] as char);
        }
    }
    changed(segments.join("."))
}

/// The request body of `input`, with the members of `request` added to a `{"token": ...}` body.
fn body(input: &Input, request: &serde_json::Map<String, Value>, g: &Genuine) -> Vec<u8> {
    let (token, edits) = match input {
        Input::Token { token } => (substitute(token, g), &[][..]),
        Input::Body { body, body_hex, body_fill } => {
            assert!(request.is_empty(), "`request` adds to a {{\"token\"}} body, not to `body`");
            return match (body, body_hex, body_fill) {
                (Some(body), None, None) => substitute(body, g).into_bytes(),
                (None, Some(raw), None) => hex(raw),
                (None, None, Some(f)) => {
                    format!("{}{}{}", f.prefix, f.fill.repeat(f.len), f.suffix).into_bytes()
                }
                _ => panic!("a body case needs exactly one of body, body_hex, body_fill"),
            };
        }
        Input::Issued { mutate } => (g.token.clone(), &mutate[..]),
        Input::Sign { header, header_hex, claims, claims_hex, key, mac, mutate } => {
            let header =
                part(header.as_ref(), header_hex.as_ref(), r#"{"alg":"HS256","typ":"JWT"}"#, g);
            let claims = part(
                claims.as_ref(),
                claims_hex.as_ref(),
                r#"{"uuid":"{{UUID}}","iat":{{NOW}},"exp":{{EXP}}}"#,
                g,
            );
            let message = format!("{}.{}", B64.encode(header), B64.encode(claims));
            let key = key_bytes(key.as_deref().unwrap_or("test"));
            let signature = signature(mac.as_deref().unwrap_or("HS256"), &key, &message);
            (format!("{message}.{signature}"), &mutate[..])
        }
    };
    let token = edits.iter().fold(token, |token, e| edit(&token, e, g));
    let mut body = json!({ "token": token });
    for (name, value) in request {
        body[name] = value.clone();
    }
    body.to_string().into_bytes()
}

/// The `uuid` claim of a compact JWS, read without verifying it.
fn uuid_claim(token: &str) -> Uuid {
    let payload = B64.decode(token.split('.').nth(1).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    claims["uuid"].as_str().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The three doors.

/// Where requests go: a real port, or the Lambda entry point.
enum Door {
    Http { base: String, client: reqwest::Client },
    Lambda { router: Router },
}

impl Door {
    /// `GET /tokens?ttl=3600` with `binding`, expecting 200; returns the token.
    async fn issue(&self, binding: &Binding) -> String {
        let query = binding.query();
        let (status, body) = match self {
            Self::Http { base, client } => {
                let request = client.get(format!("{base}/tokens")).query(&query);
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.json::<Value>().await.unwrap())
            }
            Self::Lambda { .. } => self.invoke("GET", &query, None).await,
        };
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// `POST /tokens` with `body`; returns the status and the JSON answer.
    async fn post(&self, body: Vec<u8>) -> (u16, Value) {
        match self {
            Self::Http { base, client } => {
                let response = client
                    .post(format!("{base}/tokens"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let content_type = response.headers()["content-type"].clone();
                assert_eq!(content_type, "application/json", "status {status}");
                (status, response.json().await.unwrap())
            }
            Self::Lambda { .. } => self.invoke("POST", &[], Some(body)).await,
        }
    }

    /// Runs an API Gateway REST API proxy event through `lambda_http::Adapter`, as
    /// `bin/token-service-lambda.rs` does, and reads the serialized response.
    async fn invoke(
        &self,
        method: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let Self::Lambda { router } = self else { unreachable!() };
        let (body, base64) = match body.map(String::from_utf8) {
            None => (Value::Null, false),
            Some(Ok(text)) => (Value::String(text), false),
            Some(Err(bytes)) => (Value::String(STANDARD.encode(bytes.into_bytes())), true),
        };
        let (query, multi_query) = if query.is_empty() {
            (Value::Null, Value::Null)
        } else {
            let single: serde_json::Map<String, Value> =
                query.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
            let multi: serde_json::Map<String, Value> =
                query.iter().map(|(k, v)| ((*k).to_owned(), json!([v]))).collect();
            (Value::Object(single), Value::Object(multi))
        };
        let event = json!({
            "resource": "/tokens",
            "path": "/tokens",
            "httpMethod": method,
            "headers": {"Content-Type": "application/json", "Host": "api.example"},
            "multiValueHeaders": {"Content-Type": ["application/json"], "Host": ["api.example"]},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": null,
            "stageVariables": null,
            "requestContext": {
                "resourceId": "abc123",
                "resourcePath": "/tokens",
                "httpMethod": method,
                "path": "/prod/tokens",
                "accountId": "123456789012",
                "protocol": "HTTP/1.1",
                "stage": "prod",
                "requestId": Uuid::new_v4().to_string(),
                "identity": {"sourceIp": "203.0.113.7"},
                "domainName": "api.example",
                "apiId": "a1b2c3d4e5"
            },
            "body": body,
            "isBase64Encoded": base64,
        });
        let payload: LambdaRequest = serde_json::from_value(event).unwrap();
        assert!(matches!(payload, LambdaRequest::ApiGatewayV1(_)), "not a REST API event");
        let app = router.clone().map_request(strip_stage);
        let response = Adapter::from(app)
            .oneshot(LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
        let response = serde_json::to_value(response).unwrap();
        assert_eq!(response["isBase64Encoded"], json!(false), "{response}");
        let status = u16::try_from(response["statusCode"].as_u64().unwrap()).unwrap();
        (status, serde_json::from_str(response["body"].as_str().unwrap()).unwrap())
    }
}

/// A service on a [`ManualClock`] standing at [`NOW`], reached through one door.
struct Target {
    door: Door,
    clock: Arc<ManualClock>,
    _data: Option<tempfile::TempDir>,
}

fn service(store: Arc<dyn TokenStore>, clock: Arc<ManualClock>) -> Router {
    let key = SigningKey::parse(SECRET.as_bytes()).unwrap();
    let service = TokenService::new(&key, store, clock, Lifetimes::default());
    router(Arc::new(service), &AllowedOrigins::None)
}

fn embedded() -> (Arc<dyn TokenStore>, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(data.path().join("tokens.redb")).unwrap();
    (Arc::new(store), data)
}

impl Target {
    /// The router served by `axum::serve` on a free port of 127.0.0.1.
    async fn http(store: Arc<dyn TokenStore>, data: Option<tempfile::TempDir>) -> Self {
        let clock = Arc::new(ManualClock::at(NOW));
        let app = service(store, clock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { door: Door::Http { base, client: reqwest::Client::new() }, clock, _data: data }
    }

    async fn http_embedded() -> Self {
        let (store, data) = embedded();
        Self::http(store, Some(data)).await
    }

    /// Over a fresh table in DynamoDB Local at `DYNAMODB_ENDPOINT`.
    async fn http_dynamodb() -> Self {
        let endpoint = std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
            panic!(
                "DYNAMODB_ENDPOINT is not set: run scripts/test, or start DynamoDB Local and \
                 export DYNAMODB_ENDPOINT=<its URL>"
            )
        });
        // Configured in code, not through the process environment (see store/dynamodb.rs).
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(backend::store::dynamodb::https_client())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "attacks"))
            .load()
            .await;
        let store = DynamoStore::new(&config, format!("attacks-{}", Uuid::new_v4()));
        assert!(store.create_table_if_missing().await.unwrap());
        Self::http(Arc::new(store), None).await
    }

    fn lambda() -> Self {
        let (store, data) = embedded();
        let clock = Arc::new(ManualClock::at(NOW));
        let router = service(store, clock.clone());
        Self { door: Door::Lambda { router }, clock, _data: Some(data) }
    }

    /// `POST /tokens` for `token` from a caller that accepts `binding`.
    async fn validate(&self, token: &str, binding: &Binding) -> (u16, Value) {
        self.door.post(binding.request(token).to_string().into_bytes()).await
    }

    /// Runs one case; `Err` says how it failed.
    async fn run(&self, case: &Case) -> Result<(), String> {
        self.clock.set(NOW);
        let other_binding = case.other_issue.as_ref().unwrap_or(&case.issue);
        let token = self.door.issue(&case.issue).await;
        let other_token = self.door.issue(other_binding).await;
        let g =
            Genuine { uuid: uuid_claim(&token), token, other_uuid: Uuid::new_v4(), other_token };
        let body = body(&case.input, &case.request, &g);
        self.clock.set(case.at.as_deref().map_or(NOW, |at| eval(at, &g).unwrap()));
        let (status, answer) = self.door.post(body).await;
        let got = Expect {
            status,
            is_valid: answer["isValid"].as_bool().ok_or(format!("no isValid in {answer}"))?,
            reason: answer["reason"].as_str().unwrap_or("<none>").to_owned(),
        };
        if got != case.expect || !answer["message"].is_string() {
            return Err(format!("expected {:?}, got {got:?}: {answer}", case.expect));
        }
        // Nothing lost, nothing consumed: both genuine tokens still work exactly once, for the
        // purpose and subject they were issued for.
        self.clock.set(NOW);
        for (token, binding) in [(&g.token, &case.issue), (&g.other_token, other_binding)] {
            let first = self.validate(token, binding).await;
            let second = self.validate(token, binding).await;
            if first
                != (
                    200,
                    json!({"isValid": true, "message": "Token is valid and has now been used"}),
                )
                || second.0 != 200
                || second.1["reason"] != "already_used"
            {
                return Err(format!("genuine token afterwards: {first:?}, then {second:?}"));
            }
        }
        Ok(())
    }

    /// Runs the whole corpus and fails listing every case that failed.
    async fn run_corpus(&self) {
        let cases = corpus();
        let mut failures = Vec::new();
        for case in &cases {
            if let Err(why) = self.run(case).await {
                failures.push(format!("- {} [{}]: {why}", case.name, case.threat));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} attack cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn every_attack_over_http_on_the_embedded_store_is_refused_and_the_genuine_token_still_works_once()
 {
    Target::http_embedded().await.run_corpus().await;
}

#[tokio::test]
async fn every_attack_over_http_on_dynamodb_local_is_refused_and_the_genuine_token_still_works_once()
 {
    Target::http_dynamodb().await.run_corpus().await;
}

#[tokio::test]
async fn every_attack_through_the_lambda_entry_point_is_refused_and_the_genuine_token_still_works_once()
 {
    Target::lambda().run_corpus().await;
}

#[tokio::test]
async fn a_genuine_token_is_valid_in_the_last_second_before_exp_and_expired_from_exp_on() {
    let target = Target::http_embedded().await;
    let unbound = Binding::default();
    let (early, late) = (target.door.issue(&unbound).await, target.door.issue(&unbound).await);
    target.clock.set(NOW + TTL - 1);
    assert_eq!(target.validate(&early, &unbound).await.1["isValid"], json!(true));
    target.clock.set(NOW + TTL);
    let expired = target.validate(&late, &unbound).await;
    assert_eq!(
        expired,
        (200, json!({"isValid": false, "message": "Token has expired", "reason": "expired"}))
    );
    // Refusing an expired token does not consume it: with the clock put back it works once.
    target.clock.set(NOW + TTL - 1);
    assert_eq!(target.validate(&late, &unbound).await.1["isValid"], json!(true));
}

#[test]
fn the_corpus_has_over_40_uniquely_named_cases_all_expecting_a_refusal_without_a_5xx() {
    let cases = corpus();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "duplicate case names");
    let reasons = [
        "already_used",
        "unknown_token",
        "expired",
        "invalid_signature",
        "malformed_token",
        "bad_request",
        "payload_too_large",
        "wrong_purpose",
        "wrong_subject",
    ];
    for case in &cases {
        assert!(!case.expect.is_valid, "{}", case.name);
        assert!(case.expect.status < 500, "{}", case.name);
        assert!(reasons.contains(&case.expect.reason.as_str()), "{}", case.name);
    }
}

#[test]
fn the_corpus_cites_every_section_of_rfc_8725_sections_2_and_3_and_the_owasp_cheat_sheet() {
    let cases = corpus();
    let mut cited = BTreeSet::new();
    for case in &cases {
        for citation in case.threat.split(';').filter_map(|c| c.trim().strip_prefix("RFC 8725 ")) {
            for section in citation.split([',', ':']).map(str::trim) {
                if section.starts_with(['2', '3']) && section.contains('.') {
                    cited.insert(section.to_owned());
                }
            }
        }
    }
    let every: BTreeSet<String> =
        (1..=9).map(|n| format!("2.{n}")).chain((1..=12).map(|n| format!("3.{n}"))).collect();
    assert_eq!(every.difference(&cited).collect::<Vec<_>>(), Vec::<&String>::new());
    assert!(cases.iter().any(|c| c.threat.contains("OWASP JWT cheat sheet")));
}

#[test]
fn the_corpus_confuses_purpose_and_subject_with_every_wrong_claim_type_and_every_mismatch() {
    let cases = corpus();
    let mut mistyped = BTreeSet::new();
    for case in &cases {
        let Input::Sign { claims: Some(claims @ Value::Object(_)), .. } = &case.input else {
            continue;
        };
        for claim in ["purpose", "sub"] {
            let kind = match claims.get(claim) {
                Some(Value::Number(_)) => "number",
                Some(Value::Array(_)) => "array",
                Some(Value::Null) => "null",
                _ => continue,
            };
            assert_eq!(case.expect.reason, "malformed_token", "{}", case.name);
            mistyped.insert(format!("{claim} {kind}"));
        }
    }
    let every: BTreeSet<String> = ["purpose", "sub"]
        .iter()
        .flat_map(|claim| ["number", "array", "null"].map(|kind| format!("{claim} {kind}")))
        .collect();
    assert_eq!(mistyped, every);
    for (reason, least) in [("wrong_purpose", 8), ("wrong_subject", 6)] {
        let count = cases.iter().filter(|c| c.expect.reason == reason).count();
        assert!(count >= least, "{count} cases expect {reason}");
    }
    let another_pairs = cases.iter().filter(|c| c.other_issue.is_some()).count();
    assert_eq!(another_pairs, 3);
}
