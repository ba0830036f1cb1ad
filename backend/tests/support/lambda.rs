//! What the Lambda event tests (`lambda.rs`, `lambda_app.rs`) share: the test key and origin,
//! the event files of `tests/events/`, driving an event through `lambda_http::Adapter` as
//! `lambda_http::run` does, and reading the serialized API Gateway response of either payload.

#![allow(dead_code)] // each test binary uses its own part

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, Request};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt;

/// A fixed test key (at least 32 bytes, as HS256 requires).
pub const SECRET: &str = "lambda-test-key-lambda-test-key-lambda-test-key";
/// The browser origin the events come from, and the one the router allows.
pub const ORIGIN: &str = "https://ui.example";
/// `GET /tokens` without `ttl`: the default lifetime, seconds.
pub const DEFAULT_TTL: i64 = 8 * 60 * 60;

/// What `lambda_http::run` accepts as the function: a service from the request it builds out of
/// an event to an axum response, that never fails and can move between threads.
pub trait LambdaService:
    tower::Service<
        Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Send
    + 'static
{
}

impl<S> LambdaService for S where
    S: tower::Service<
            Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Send
        + 'static
{
}

/// The two payloads a proxy integration sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// API Gateway REST API, payload format 1.0.
    Rest,
    /// API Gateway HTTP API payload format 2.0, also sent by Lambda function URLs.
    V2,
}

impl Payload {
    /// What the test event file says it is: v2 events carry `"version": "2.0"`.
    pub fn of(event: &Value) -> Self {
        if event["version"] == "2.0" { Self::V2 } else { Self::Rest }
    }
}

/// Deserializes `event` as `lambda_http` does (checking it is read as the payload the file
/// is), runs it through `app` with `lambda_http::Adapter` and serializes the response.
pub async fn invoke_through<S: LambdaService>(event: Value, app: S) -> LambdaAnswer {
    let payload = Payload::of(&event);
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    let read_as = match &request {
        LambdaRequest::ApiGatewayV1(_) => Payload::Rest,
        LambdaRequest::ApiGatewayV2(_) => Payload::V2,
        other => panic!("read as neither API Gateway payload: {other:?}"),
    };
    assert_eq!(read_as, payload, "lambda_http read the event as another payload");
    let response =
        Adapter::from(app).oneshot(LambdaEvent::new(request, Context::default())).await.unwrap();
    LambdaAnswer { payload, response: serde_json::to_value(response).unwrap() }
}

/// Like [`invoke_through`], but also reports the path `app` was asked for (what `lambda_http`
/// built from the event, before any `strip_stage` inside `app`).
pub async fn invoke_seeing_path<S: LambdaService>(event: Value, app: S) -> (String, LambdaAnswer) {
    let seen = Arc::new(Mutex::new(String::new()));
    let record = Arc::clone(&seen);
    let app = app.map_request(move |request: Request| {
        *record.lock().unwrap() = request.uri().path().to_owned();
        request
    });
    let answer = invoke_through(event, app).await;
    let seen = seen.lock().unwrap().clone();
    (seen, answer)
}

/// A serialized API Gateway proxy response, of the shape of the payload that asked.
#[derive(Debug)]
pub struct LambdaAnswer {
    /// The payload that asked, and so the response's shape.
    pub payload: Payload,
    /// The response as the Lambda runtime posts it back.
    pub response: Value,
}

impl LambdaAnswer {
    pub fn status(&self) -> u64 {
        self.response["statusCode"].as_u64().unwrap()
    }

    /// The single value of response header `name` (lower case), or `None` if absent. REST
    /// responses carry headers in `multiValueHeaders` (panics if repeated); v2 responses in
    /// `headers`, repeated values joined by commas.
    pub fn header(&self, name: &str) -> Option<String> {
        match self.payload {
            Payload::Rest => {
                let values = self.response["multiValueHeaders"].get(name)?.as_array().unwrap();
                assert_eq!(values.len(), 1, "{name} repeated: {values:?}");
                Some(values[0].as_str().unwrap().to_owned())
            }
            Payload::V2 => Some(self.response["headers"].get(name)?.as_str().unwrap().to_owned()),
        }
    }

    /// The body parsed as JSON, after checking it is sent as JSON text.
    pub fn json(&self) -> Value {
        assert_eq!(self.response["isBase64Encoded"], json!(false), "{self:?}");
        assert_eq!(self.header("content-type").as_deref(), Some("application/json"));
        serde_json::from_str(self.response["body"].as_str().unwrap()).unwrap()
    }

    /// The JSON error body without its `requestId`, after checking that it is the request's id
    /// as the `X-Request-Id` header says (API Gateway's `requestContext.requestId`).
    pub fn error_json(&self) -> Value {
        let mut body = self.json();
        let id = body.as_object_mut().and_then(|body| body.remove("requestId"));
        let header = self.header("x-request-id");
        assert!(header.as_deref().is_some_and(|h| !h.is_empty()), "{self:?}");
        assert_eq!(id.as_ref().and_then(Value::as_str), header.as_deref(), "{self:?}");
        body
    }

    /// Checks the response is of its payload's shape, with nothing sent twice: a REST
    /// response's `headers` is empty (API Gateway merges it with `multiValueHeaders`); a v2
    /// response has no `multiValueHeaders` (HTTP APIs ignore them) and no cookies.
    pub fn assert_shape(&self) {
        match self.payload {
            Payload::Rest => {
                assert_eq!(self.response["headers"], json!({}), "{self:?}");
                assert!(self.response["multiValueHeaders"].is_object(), "{self:?}");
                assert!(self.response.get("cookies").is_none(), "{self:?}");
            }
            Payload::V2 => {
                assert_eq!(self.response["multiValueHeaders"], json!({}), "{self:?}");
                assert_eq!(self.response["cookies"], json!([]), "{self:?}");
                assert!(self.response["headers"].is_object(), "{self:?}");
            }
        }
    }

    /// The headers every API answer to the browser carries: `Cache-Control: no-store` and
    /// CORS for the allowed origin, in the payload's own response shape.
    pub fn assert_api_headers(&self) {
        self.assert_shape();
        assert_eq!(self.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(self.header("access-control-allow-origin").as_deref(), Some(ORIGIN));
        let vary = self.header("vary").unwrap_or_default();
        assert!(vary.split(',').any(|v| v.trim() == "origin"), "vary: {vary}");
    }
}

/// Reads `tests/events/{name}.json`, putting `token` in place of `{{TOKEN}}`, inside the base64
/// body too when the event says `isBase64Encoded`.
pub fn event(name: &str, token: Option<&str>) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/events").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    if let Some(token) = token {
        let body = event["body"].as_str().unwrap();
        let body = if event["isBase64Encoded"] == json!(true) {
            let plain = String::from_utf8(STANDARD.decode(body).unwrap()).unwrap();
            assert!(plain.contains("{{TOKEN}}"), "{name}: no placeholder");
            STANDARD.encode(plain.replace("{{TOKEN}}", token))
        } else {
            assert!(body.contains("{{TOKEN}}"), "{name}: no placeholder");
            body.replace("{{TOKEN}}", token)
        };
        event["body"] = Value::String(body);
    }
    event
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs().try_into().unwrap()
}

/// The claims of a compact JWS, read without verifying it.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The `exp` claim of a compact JWS, read without verifying it.
pub fn exp_claim(token: &str) -> i64 {
    claims_of(token)["exp"].as_i64().unwrap()
}

/// Checks an issue answer and returns its expiration, epoch seconds.
pub fn issued_expiration(answer: &LambdaAnswer) -> i64 {
    assert_eq!(answer.status(), 200, "{answer:?}");
    answer.assert_api_headers();
    let body = answer.json();
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "not a compact JWS: {token}");
    let expiration = body["expiration"].as_str().unwrap();
    assert!(expiration.ends_with('Z'), "not UTC: {expiration}");
    let expiration = OffsetDateTime::parse(expiration, &Rfc3339).unwrap().unix_timestamp();
    assert_eq!(expiration, exp_claim(token));
    expiration
}

/// Checks `expiration` (epoch seconds) is `ttl` seconds after a moment in `before..=after`.
pub fn assert_lifetime(expiration: i64, ttl: i64, before: i64, after: i64) {
    assert!(
        (before + ttl..=after + ttl).contains(&expiration),
        "expiration {expiration} not {ttl} s after {before}..={after}"
    );
}

pub fn assert_valid(answer: &LambdaAnswer) {
    assert_eq!(answer.status(), 200, "{answer:?}");
    answer.assert_api_headers();
    assert_eq!(
        answer.json(),
        json!({"isValid": true, "message": "Token is valid and has now been used"})
    );
}
