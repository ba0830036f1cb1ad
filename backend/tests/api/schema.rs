//! Every answer the HTTP tests receive, checked against the service's OpenAPI 3.1 document.
//!
//! [`Recorder::send`] is the one way the HTTP tests talk to a server: it records each answer
//! (method, path, status, headers, body) and hands the test an identical `reqwest::Response`.
//! When the recorder is dropped (with its `TestApp` or `Process`), every recorded answer is
//! checked against [`Document::served`], which is what `GET /openapi.json` serves (a test in
//! `openapi.rs` holds them equal), and the test fails listing each answer that breaks it:
//!
//! - the status must be listed for the operation (path and method) in `responses`;
//! - the body must match that response's schema, a JSON Schema 2020-12 (OpenAPI 3.1 section
//!   4.8.24) whose `$ref`s resolve into `components`, and may carry no property the schema does
//!   not name (the schemas are open; an undocumented field is drift all the same);
//! - every response header the document lists must be sent (but `Idempotency-Key`, which only
//!   `outcome_unknown` answers carry) and match its schema, and `Retry-After` and
//!   `Idempotency-Key` must not be sent where the document does not list them;
//! - a method the path does not have is a `405`, a path the document does not have a `404`
//!   (or the UI, when the server serves one), both in the error shape;
//! - every error (`4xx`, `5xx`) is `{"isValid": false, "message", "reason"}`, and every answer
//!   but a CORS preflight carries `Cache-Control: no-store`.

use jsonschema::Validator;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use utoipa::OpenApi;

/// One answer as a test received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request's method, upper case (`GET`).
    pub method: String,
    /// The request's path, without the query (`/tokens`).
    pub path: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The OpenAPI document, with its compiled schemas.
pub struct Document {
    doc: Value,
    validators: Mutex<HashMap<String, Validator>>,
}

impl Document {
    /// The document the service serves at `GET /openapi.json`: `ApiDoc`, generated from the
    /// handlers.
    pub fn served() -> &'static Document {
        static DOCUMENT: OnceLock<Document> = OnceLock::new();
        DOCUMENT.get_or_init(|| {
            let doc = serde_json::to_value(backend::http::ApiDoc::openapi()).unwrap();
            Document { doc, validators: Mutex::new(HashMap::new()) }
        })
    }

    /// The document as JSON.
    pub fn json(&self) -> &Value {
        &self.doc
    }

    /// What is wrong with `answer` by the document; empty when nothing is. `serves_ui`: the
    /// server serves the web UI for paths outside the API.
    pub fn check(&self, answer: &Recorded, serves_ui: bool) -> Vec<String> {
        let mut problems = Vec::new();
        // A CORS preflight is answered by the CORS layer before routing: not an operation, and
        // not cacheable anyway (RFC 9110 section 9.3.7).
        if answer.method == "OPTIONS" {
            return problems;
        }
        let content_type = header(answer, "content-type").unwrap_or_default();
        let operations = self.doc["paths"].get(&answer.path);
        // HEAD is answered as GET without a body (RFC 9110 section 9.3.2), or refused.
        let method = match answer.method.as_str() {
            "HEAD" if answer.status != 405 => "get".to_owned(),
            other => other.to_ascii_lowercase(),
        };
        match operations.and_then(|ops| ops.get(&method)) {
            Some(operation) => self.check_operation(answer, operation, &mut problems),
            None if operations.is_some() => {
                self.check_undocumented(answer, 405, &mut problems);
            }
            None if serves_ui
                && answer.method == "GET"
                && answer.status == 200
                && content_type.starts_with("text/html") =>
            {
                return problems; // the UI's page, not the API
            }
            None => self.check_undocumented(answer, 404, &mut problems),
        }
        if answer.status >= 400 && answer.method != "HEAD" {
            self.check_error_shape(answer, &mut problems);
        }
        if header(answer, "cache-control").as_deref() != Some("no-store") {
            problems.push(format!(
                "Cache-Control is {:?}, not no-store",
                header(answer, "cache-control")
            ));
        }
        let what = format!("{} {} answered {}", answer.method, answer.path, answer.status);
        problems.into_iter().map(|p| format!("{what}: {p}")).collect()
    }

    fn check_operation(&self, answer: &Recorded, operation: &Value, problems: &mut Vec<String>) {
        let responses = &operation["responses"];
        let status = answer.status.to_string();
        let class = format!("{}XX", answer.status / 100);
        let Some((key, response)) = [status.as_str(), class.as_str(), "default"]
            .into_iter()
            .find_map(|key| Some((key, responses.get(key)?)))
        else {
            let listed: Vec<&String> =
                responses.as_object().map(|r| r.keys().collect()).unwrap_or_default();
            problems.push(format!("status not in the document, which lists {listed:?}"));
            return;
        };
        let documented = response["headers"].as_object().cloned().unwrap_or_default();
        for (name, spec) in &documented {
            match header(answer, name) {
                // Sent only with outcome_unknown, when the request named no key.
                None if name.eq_ignore_ascii_case("idempotency-key") => {}
                None => problems.push(format!("no {name} header, which the document lists")),
                Some(value) => {
                    let value = match spec["schema"]["type"].as_str() {
                        Some("integer") => value.parse::<i64>().map_or(json!(value), |n| json!(n)),
                        _ => json!(value),
                    };
                    let pointer = format!("{}/{key}/headers/{name}/schema", path_of(answer));
                    for error in self.errors(&pointer, &spec["schema"], &value) {
                        problems.push(format!("header {name}: {error}"));
                    }
                }
            }
        }
        for name in ["retry-after", "idempotency-key"] {
            if header(answer, name).is_some()
                && !documented.keys().any(|d| d.eq_ignore_ascii_case(name))
            {
                problems.push(format!("sends {name}, which the document does not list here"));
            }
        }
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            if !answer.body.is_empty() {
                problems.push("a body where the document lists none".into());
            }
            return;
        };
        let content_type = header(answer, "content-type").unwrap_or_default();
        let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let Some(media) = content.get(&mime) else {
            let listed: Vec<&String> = content.keys().collect();
            problems.push(format!("content type {content_type:?}, the document lists {listed:?}"));
            return;
        };
        if answer.method == "HEAD" {
            return;
        }
        if let Some(schema) = media.get("schema") {
            let pointer = format!("{}/{key}/content/{mime}/schema", path_of(answer));
            self.check_body(answer, &pointer, schema, problems);
        }
    }

    /// A path without the method, or no such path: the error shape with `expected`.
    fn check_undocumented(&self, answer: &Recorded, expected: u16, problems: &mut Vec<String>) {
        if answer.status != expected {
            problems.push(format!("not an operation of the document, so {expected} was expected"));
        }
    }

    /// Every error answer: the `ValidateResponse` schema, `isValid: false` and a `reason`.
    fn check_error_shape(&self, answer: &Recorded, problems: &mut Vec<String>) {
        let schema = json!({"$ref": "#/components/schemas/ValidateResponse"});
        self.check_body(answer, "error", &schema, problems);
        let Ok(body) = serde_json::from_slice::<Value>(&answer.body) else { return };
        if body["isValid"] != json!(false) || !body["reason"].is_string() {
            problems.push(format!("an error without isValid false and a reason: {body}"));
        }
    }

    fn check_body(&self, answer: &Recorded, pointer: &str, schema: &Value, out: &mut Vec<String>) {
        let body: Value = match serde_json::from_slice(&answer.body) {
            Ok(body) => body,
            Err(e) => {
                let text = String::from_utf8_lossy(&answer.body);
                out.push(format!("body is not JSON ({e}): {text:?}"));
                return;
            }
        };
        for error in self.errors(pointer, schema, &body) {
            out.push(format!("body {body}: {error}"));
        }
        let resolved = self.resolve(schema);
        if let (Some(properties), Some(fields)) =
            (resolved.get("properties").and_then(Value::as_object), body.as_object())
        {
            for field in fields.keys().filter(|f| !properties.contains_key(*f)) {
                out.push(format!("body field {field:?} is not in the schema"));
            }
        }
    }

    /// Follows a `$ref` into `components`.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').unwrap_or(reference);
                self.doc.pointer(pointer).unwrap_or(schema)
            }
            None => schema,
        }
    }

    /// The schema errors of `instance`, compiling `schema` (under the document's components,
    /// so its `$ref`s resolve) once per `pointer`.
    fn errors(&self, pointer: &str, schema: &Value, instance: &Value) -> Vec<String> {
        let mut validators = self.validators.lock().unwrap();
        let validator = validators.entry(pointer.to_owned()).or_insert_with(|| {
            let mut rooted = schema.clone();
            if let Some(object) = rooted.as_object_mut() {
                object.insert("components".into(), self.doc["components"].clone());
            }
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&rooted)
                .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"))
        });
        validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {:?})", e.instance_path().to_string()))
            .collect()
    }
}

fn header(answer: &Recorded, name: &str) -> Option<String> {
    answer.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn path_of(answer: &Recorded) -> String {
    format!("{} {}", answer.method, answer.path)
}

/// Sends requests, records every answer, and checks them all against [`Document::served`]
/// when dropped (unless the test is already failing).
pub struct Recorder {
    seen: Mutex<Vec<Recorded>>,
    serves_ui: bool,
}

impl Recorder {
    /// A recorder for a server that serves the web UI outside the API when `serves_ui`.
    pub fn new(serves_ui: bool) -> Self {
        Self { seen: Mutex::new(Vec::new()), serves_ui }
    }

    /// Sends `request` and records its answer; the returned response has the same status,
    /// headers and body.
    ///
    /// One exception: a read-only `GET` (any path but `/tokens`, which issues) that `cargo
    /// lambda watch` answered with its own `500` (see [`emulator_failure`]) is sent once more,
    /// and only the second answer is recorded and returned.
    pub async fn send(&self, request: RequestBuilder) -> Response {
        let (client, request) = request.build_split();
        let request = request.unwrap();
        let (method, path) =
            (request.method().as_str().to_owned(), request.url().path().to_owned());
        let again = (method == "GET" && path != "/tokens").then(|| request.try_clone()).flatten();
        let mut answer = exchange(&client, request).await;
        if let Some(again) = again.filter(|_| emulator_failure(answer.0, &answer.3)) {
            eprintln!(
                "GET {path}: cargo lambda watch answered 500 itself ({}); sent once more",
                String::from_utf8_lossy(&answer.3)
            );
            answer = exchange(&client, again).await;
        }
        let (status, version, headers, body) = answer;
        self.record(Recorded {
            method,
            path,
            status: status.as_u16(),
            headers: headers.clone(),
            body: body.to_vec(),
        });
        let mut rebuilt = axum::http::Response::builder().status(status).version(version);
        *rebuilt.headers_mut().unwrap() = headers;
        Response::from(rebuilt.body(body).unwrap())
    }

    /// Records an answer received some other way.
    pub fn record(&self, answer: Recorded) {
        self.seen.lock().unwrap().push(answer);
    }

    /// How many answers were recorded.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Every problem of every recorded answer.
    pub fn problems(&self) -> Vec<String> {
        let document = Document::served();
        let seen = self.seen.lock().unwrap();
        seen.iter().flat_map(|answer| document.check(answer, self.serves_ui)).collect()
    }
}

/// Sends `request` and reads the whole answer: status, version, headers, body.
async fn exchange(
    client: &reqwest::Client,
    request: reqwest::Request,
) -> (reqwest::StatusCode, reqwest::Version, HeaderMap, axum::body::Bytes) {
    let response = client.execute(request).await.unwrap();
    let (status, version, headers) =
        (response.status(), response.version(), response.headers().clone());
    (status, version, headers, response.bytes().await.unwrap())
}

/// Whether an answer is `cargo lambda watch`'s own failure rather than the function's: a `500`
/// whose body is the emulator's problem details (`"type": "https://httpstatuses.com/500"`),
/// which the service never sends (its errors carry `isValid` and `message`). The emulator
/// (scripts/aws-local) gives one now and then, rarely (1 of about 14 runs of the suite), with
/// nothing in the function's log.
fn emulator_failure(status: reqwest::StatusCode, body: &[u8]) -> bool {
    status == reqwest::StatusCode::INTERNAL_SERVER_ERROR
        && serde_json::from_slice::<Value>(body)
            .is_ok_and(|body| body["type"] == "https://httpstatuses.com/500")
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let problems = self.problems();
        assert!(
            problems.is_empty(),
            "{} problem(s) in {} answers checked against GET /openapi.json:\n{}",
            problems.len(),
            self.len(),
            problems.join("\n")
        );
    }
}

#[test]
fn the_emulators_own_500_is_told_apart_from_the_services() {
    let emulator =
        br#"{"status":500,"title":"Internal Server Error","type":"https://httpstatuses.com/500"}"#;
    let service = br#"{"isValid":false,"message":"the token store failed","reason":"unavailable"}"#;
    assert!(emulator_failure(reqwest::StatusCode::INTERNAL_SERVER_ERROR, emulator));
    assert!(!emulator_failure(reqwest::StatusCode::INTERNAL_SERVER_ERROR, service));
    assert!(!emulator_failure(reqwest::StatusCode::INTERNAL_SERVER_ERROR, b"not json"));
    assert!(!emulator_failure(reqwest::StatusCode::OK, emulator));
}
