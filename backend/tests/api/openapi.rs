//! `GET /openapi.json`: what the document names, that the router serves it, and that the check
//! every other test's answers go through (`schema.rs`) can fail.

use crate::helpers::TestApp;
use crate::schema::{Document, Recorded, Recorder};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use shared::Reason;
use std::collections::BTreeMap;

fn document() -> &'static Value {
    Document::served().json()
}

/// Every response object of every operation, as (path, method, status, response).
fn responses() -> Vec<(String, String, String, Value)> {
    let mut all = Vec::new();
    for (path, operations) in document()["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                all.push((path.clone(), method.clone(), status.clone(), response.clone()));
            }
        }
    }
    all
}

#[tokio::test]
async fn the_served_document_is_openapi_3_1_generated_from_the_handlers() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let served: Value = response.json().await.unwrap();
    assert_eq!(&served, document());
    assert_eq!(served["openapi"], "3.1.0");
}

#[test]
fn the_document_names_every_route_with_its_methods() {
    let routes: BTreeMap<&str, Vec<&str>> = document()["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, ops)| {
            (path.as_str(), ops.as_object().unwrap().keys().map(String::as_str).collect())
        })
        .collect();
    let expected = BTreeMap::from([
        ("/health", vec!["get"]),
        ("/health/ready", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/openapi.json", vec!["get"]),
        ("/tokens", vec!["get", "post"]),
        ("/tokens/revoke", vec!["post"]),
        ("/tokens/status", vec!["post"]),
    ]);
    assert_eq!(routes, expected);
}

#[test]
fn the_reason_schema_lists_every_reason_the_service_gives_in_order() {
    let listed = &document()["components"]["schemas"]["Reason"]["enum"];
    let every: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(listed, &json!(every));
}

#[test]
fn the_token_state_schema_lists_every_state() {
    let listed = &document()["components"]["schemas"]["TokenState"]["enum"];
    assert_eq!(listed, &json!(["unused", "used", "expired", "revoked", "invalid"]));
}

#[test]
fn the_document_names_the_idempotency_key_retry_after_and_cache_control_headers() {
    let validate = &document()["paths"]["/tokens"]["post"];
    let parameters = validate["parameters"].as_array().unwrap();
    assert!(
        parameters.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "{parameters:?}"
    );
    assert_eq!(
        validate["responses"]["503"]["headers"]["Idempotency-Key"]["schema"],
        json!({"type": "string"})
    );
    let mut unavailable = 0;
    for (path, method, status, response) in responses() {
        let headers = &response["headers"];
        assert_eq!(headers["Cache-Control"]["description"], "no-store", "{method} {path} {status}");
        if status == "503" {
            unavailable += 1;
            assert_eq!(headers["Retry-After"]["schema"]["type"], "integer", "{method} {path}");
        }
    }
    // GET /tokens, POST /tokens, /tokens/status, /tokens/revoke and /health/ready can be 503.
    assert_eq!(unavailable, 5);
}

#[test]
fn every_documented_error_has_the_validate_response_shape() {
    let mut errors = 0;
    for (path, method, status, response) in responses() {
        if status.starts_with(['4', '5']) {
            errors += 1;
            let schema = &response["content"]["application/json"]["schema"];
            assert_eq!(
                schema,
                &json!({"$ref": "#/components/schemas/ValidateResponse"}),
                "{method} {path} {status}"
            );
        }
    }
    // 4 for each of GET /tokens, POST /tokens, /tokens/status and /tokens/revoke; 1 for
    // /health/ready; 429 on those four (rate limits); 401 on GET /tokens, /tokens/revoke and
    // GET /metrics (issuer keys).
    assert_eq!(errors, 24);
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::spawn().await;
    for (path, operations) in document()["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let url = format!("{}{path}", app.base);
            let request = match method.as_str() {
                "get" => app.client.get(url),
                "post" => app.client.post(url).json(&json!({"token": "x"})),
                other => panic!("{other} {path}: no request for this method"),
            };
            let status = app.send(request).await.status();
            assert!(
                ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&status),
                "{method} {path}: {status}"
            );
        }
    }
    assert_eq!(app.answers(), 8);
}

// ---------------------------------------------------------------------------------------------
// The check itself can fail.

/// A recorded answer with `headers`, and the `x-request-id` every answer has.
fn answer(method: &str, path: &str, status: u16, headers: &[(&str, &str)], body: &str) -> Recorded {
    let mut map = HeaderMap::new();
    map.insert("x-request-id", HeaderValue::from_static("req-1"));
    for (name, value) in headers {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    Recorded {
        method: method.into(),
        path: path.into(),
        status,
        headers: map,
        body: body.as_bytes().to_vec(),
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");
const NO_STORE: (&str, &str) = ("cache-control", "no-store");

fn check(answer: &Recorded) -> Vec<String> {
    Document::served().check(answer, false)
}

#[test]
fn genuine_answers_pass_the_check() {
    let answers = [
        answer(
            "GET",
            "/tokens",
            200,
            &[JSON, NO_STORE],
            r#"{"token":"a.b.c","expiration":"2027-01-15T16:00:00Z"}"#,
        ),
        answer("POST", "/tokens", 200, &[JSON, NO_STORE], r#"{"isValid":true,"message":"ok"}"#),
        answer(
            "POST",
            "/tokens/status",
            200,
            &[JSON, NO_STORE],
            r#"{"state":"revoked","expiration":"x","revokedAt":"y","purpose":"p"}"#,
        ),
        answer(
            "POST",
            "/tokens",
            503,
            &[JSON, NO_STORE, ("retry-after", "1"), ("idempotency-key", "k")],
            r#"{"isValid":false,"message":"m","reason":"outcome_unknown"}"#,
        ),
        answer(
            "DELETE",
            "/tokens",
            405,
            &[JSON, NO_STORE],
            r#"{"isValid":false,"message":"m","reason":"method_not_allowed"}"#,
        ),
        answer(
            "GET",
            "/nope",
            404,
            &[JSON, NO_STORE],
            r#"{"isValid":false,"message":"m","reason":"not_found"}"#,
        ),
        answer("OPTIONS", "/tokens", 200, &[], ""),
    ];
    for answer in &answers {
        assert_eq!(check(answer), Vec::<String>::new(), "{answer:?}");
    }
}

#[test]
fn a_body_that_breaks_its_schema_fails_the_check() {
    let wrong = answer(
        "POST",
        "/tokens",
        200,
        &[JSON, NO_STORE],
        r#"{"isValid":"yes","reason":"nope","usedAt":5}"#,
    );
    let problems = check(&wrong);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for (problem, expected) in problems.iter().zip([
        "\"message\" is a required property",
        "\"yes\" is not of type \"boolean\"",
        "\"nope\"",
        "5 is not of type",
    ]) {
        assert!(problem.starts_with("POST /tokens answered 200: body "), "{problem}");
        assert!(problem.contains(expected), "{problem} lacks {expected}");
    }
    let token_missing = answer("GET", "/tokens", 200, &[JSON, NO_STORE], r#"{"expiration":"x"}"#);
    assert_eq!(check(&token_missing).len(), 1);
    let unknown_state =
        answer("POST", "/tokens/revoke", 200, &[JSON, NO_STORE], r#"{"state":"gone"}"#);
    assert_eq!(check(&unknown_state).len(), 1);
}

#[test]
fn undocumented_statuses_fields_and_headers_fail_the_check() {
    let cases = [
        (
            answer(
                "GET",
                "/tokens",
                418,
                &[JSON, NO_STORE],
                r#"{"isValid":false,"message":"m","reason":"internal"}"#,
            ),
            r#"GET /tokens answered 418: status not in the document, which lists ["200", "400", "401", "409", "429", "500", "503"]"#,
        ),
        (
            answer(
                "GET",
                "/tokens",
                200,
                &[JSON, NO_STORE],
                r#"{"token":"t","expiration":"e","uuid":"u"}"#,
            ),
            r#"GET /tokens answered 200: body field "uuid" is not in the schema"#,
        ),
        (
            answer("GET", "/tokens", 200, &[JSON], r#"{"token":"t","expiration":"e"}"#),
            "GET /tokens answered 200: no Cache-Control header, which the document lists",
        ),
        (
            answer(
                "GET",
                "/tokens",
                503,
                &[JSON, NO_STORE],
                r#"{"isValid":false,"message":"m","reason":"unavailable"}"#,
            ),
            "GET /tokens answered 503: no Retry-After header, which the document lists",
        ),
        (
            answer(
                "GET",
                "/tokens",
                200,
                &[JSON, NO_STORE, ("retry-after", "1")],
                r#"{"token":"t","expiration":"e"}"#,
            ),
            "GET /tokens answered 200: sends retry-after, which the document does not list here",
        ),
        (
            answer("GET", "/tokens", 200, &[("content-type", "text/plain"), NO_STORE], "t"),
            r#"GET /tokens answered 200: content type "text/plain", the document lists ["application/json"]"#,
        ),
        (
            answer(
                "POST",
                "/tokens/status",
                400,
                &[JSON, NO_STORE],
                r#"{"isValid":false,"message":"m"}"#,
            ),
            r#"POST /tokens/status answered 400: an error without isValid false and a reason: {"isValid":false,"message":"m"}"#,
        ),
        (
            answer(
                "PUT",
                "/tokens",
                404,
                &[JSON, NO_STORE],
                r#"{"isValid":false,"message":"m","reason":"not_found"}"#,
            ),
            "PUT /tokens answered 404: not an operation of the document, so 405 was expected",
        ),
        (
            answer("GET", "/index.html", 200, &[("content-type", "text/html"), NO_STORE], "<html>"),
            "GET /index.html answered 200: not an operation of the document, so 404 was expected",
        ),
    ];
    for (answer, expected) in &cases {
        let problems = check(answer);
        assert!(problems.contains(&(*expected).to_owned()), "{answer:?}:\n{problems:#?}");
    }
    let ui = answer("GET", "/index.html", 200, &[("content-type", "text/html")], "<html>");
    assert_eq!(Document::served().check(&ui, true), Vec::<String>::new());
}

#[test]
fn a_recorder_that_received_an_undocumented_answer_fails_when_dropped() {
    let recorder = Recorder::new(false);
    recorder.record(answer("GET", "/health", 200, &[JSON, NO_STORE], r#"{"status":"ok"}"#));
    recorder.record(answer(
        "GET",
        "/tokens",
        201,
        &[JSON, NO_STORE],
        r#"{"token":"t","expiration":"e"}"#,
    ));
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(recorder)));
    let panic = dropped.expect_err("dropping the recorder did not fail");
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with("1 problem(s) in 2 answers checked against GET /openapi.json:\nGET /tokens answered 201: status not in the document"),
        "{message}"
    );
}

#[tokio::test]
async fn every_answer_of_a_test_app_is_recorded() {
    let app = TestApp::spawn().await;
    let token = app.issue().await.token;
    app.validate(&token).await;
    app.status(&token).await;
    app.get("/nope").await;
    assert_eq!(app.answers(), 4);
}
