//! Running it for real: issuer keys, rate limits, request ids, metrics, slow and idle clients,
//! on the real server and a real port.

use crate::helpers::{TestApp, assert_error, claims_of};
use backend::server::Config;
use reqwest::StatusCode;
use serde_json::json;
use shared::Reason;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ISSUER_KEY: &str = "issuer-key-for-the-http-tests-0123456789";
const OTHER_KEY: &str = "issuer-key-nobody-was-given-0123456789ab";

fn with_issuer_keys(c: Config) -> Config {
    Config { issuer_keys: Some(ISSUER_KEY.into()), ..c }
}

impl TestApp {
    /// `GET path` with `Authorization: Bearer key`.
    async fn get_with_key(&self, path: &str, key: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(key).send().await.unwrap()
    }

    /// `GET /metrics` with `key`, expecting 200; the text.
    async fn metrics(&self, key: Option<&str>) -> String {
        let mut request = self.client.get(format!("{}/metrics", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let lambda_only = response.headers().get("x-lambda-http-content-encoding");
        assert!(lambda_only.is_none(), "the Lambda's text marker leaked: {lambda_only:?}");
        response.text().await.unwrap()
    }
}

/// Asserts a 401 with its challenge; returns the message.
async fn assert_unauthorized(response: reqwest::Response, challenge: &str) {
    assert_eq!(response.headers()["www-authenticate"], challenge);
    let message = assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(message, "this endpoint needs an issuer key: Authorization: Bearer <key>");
}

#[tokio::test]
async fn with_issuer_keys_issuing_needs_one_and_validation_stays_open() {
    let app = TestApp::spawn_with(with_issuer_keys).await;
    assert_unauthorized(app.get("/tokens").await, r#"Bearer realm="token-service""#).await;
    assert_unauthorized(
        app.get_with_key("/tokens", OTHER_KEY).await,
        r#"Bearer realm="token-service", error="invalid_token""#,
    )
    .await;
    let basic = app
        .client
        .get(format!("{}/tokens", app.base))
        .basic_auth("user", Some(ISSUER_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    let issued = app.get_with_key("/tokens", ISSUER_KEY).await;
    assert_eq!(issued.status(), StatusCode::OK);
    let token = issued.json::<shared::IssueResponse>().await.unwrap().token;
    assert!(app.validate(&token).await.is_valid, "POST /tokens needs no issuer key");
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    assert_unauthorized(app.get("/metrics").await, r#"Bearer realm="token-service""#).await;
    assert!(app.metrics(Some(ISSUER_KEY)).await.contains("tokens_issued_total 1\n"));
}

#[tokio::test]
async fn issuer_keys_can_come_from_a_file_of_one_key_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuer-keys");
    std::fs::write(&file, format!("{OTHER_KEY}\n\n{ISSUER_KEY}\n")).unwrap();
    let app = TestApp::spawn_with(|c| Config { issuer_keys_file: Some(file), ..c }).await;
    assert_eq!(app.get_with_key("/tokens", ISSUER_KEY).await.status(), StatusCode::OK);
    assert_eq!(app.get_with_key("/tokens", OTHER_KEY).await.status(), StatusCode::OK);
    let wrong = app.get_with_key("/tokens", "x-key-nobody-was-given-0123456789abcdef").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_issuer_keys_everything_stays_open() {
    // A server of its own, even with API_BASE_URL set: the counts start from zero.
    let app = TestApp::spawn_with(|c| c).await;
    assert_eq!(app.get("/tokens").await.status(), StatusCode::OK);
    assert!(app.metrics(None).await.contains("tokens_issued_total 1\n"));
}

#[tokio::test]
async fn a_client_over_its_limit_gets_429_with_retry_after_and_health_is_not_limited() {
    let app = TestApp::spawn_with(|c| Config { rate_limit_per_minute: 3, ..c }).await;
    let token = app.issue().await.token;
    app.issue().await;
    assert!(app.validate(&token).await.is_valid, "POST /tokens counts too");
    let refused = app.get("/tokens").await;
    // 3 a minute: one every 20 s, counted from the first request; 19 when the refused request
    // came a second or more after it (a slow machine).
    let retry_after = refused.headers()["retry-after"].to_str().unwrap().to_owned();
    assert!(["19", "20"].contains(&retry_after.as_str()), "Retry-After: {retry_after}");
    let message = assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(message, format!("too many requests from this client; retry after {retry_after} s"));
    let post = app.post_with_key(&token, "k").await;
    assert_error(post, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    for _ in 0..5 {
        assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    }
    assert!(app.metrics(None).await.contains("rate_limited_total 2\n"));
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_when_trusted() {
    let send = |app: &TestApp, from: &'static str| {
        app.client
            .get(format!("{}/tokens", app.base))
            .header("x-forwarded-for", format!("198.51.100.99, {from}"))
            .send()
    };
    let trusted = TestApp::spawn_with(|c| Config {
        rate_limit_per_minute: 1,
        trust_forwarded_for: true,
        ..c
    })
    .await;
    assert_eq!(send(&trusted, "203.0.113.1").await.unwrap().status(), StatusCode::OK);
    assert_eq!(send(&trusted, "203.0.113.2").await.unwrap().status(), StatusCode::OK);
    let again = send(&trusted, "203.0.113.1").await.unwrap().status();
    assert_eq!(again, StatusCode::TOO_MANY_REQUESTS);

    let untrusted = TestApp::spawn_with(|c| Config { rate_limit_per_minute: 1, ..c }).await;
    assert_eq!(send(&untrusted, "203.0.113.1").await.unwrap().status(), StatusCode::OK);
    let spoofed = send(&untrusted, "203.0.113.2").await.unwrap().status();
    assert_eq!(spoofed, StatusCode::TOO_MANY_REQUESTS, "the socket's address counts");
}

#[tokio::test]
async fn every_answer_has_a_request_id_and_error_bodies_repeat_it() {
    let app = TestApp::spawn().await;
    let chosen = app
        .client
        .get(format!("{}/nope", app.base))
        .header("x-request-id", "trace-4bf92f3577b34da6")
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.headers()["x-request-id"], "trace-4bf92f3577b34da6");
    let body: serde_json::Value = chosen.json().await.unwrap();
    assert_eq!(body["requestId"], "trace-4bf92f3577b34da6");
    assert_eq!(body["reason"], "not_found");

    let generated = app
        .client
        .post(format!("{}/tokens", app.base))
        .header("x-request-id", "not well formed!")
        .body("{")
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    let body: serde_json::Value = generated.json().await.unwrap();
    assert_eq!(body["requestId"], id.as_str());
    assert_eq!(body["reason"], "bad_request");

    let ok = app.get("/tokens").await;
    assert!(ok.headers().contains_key("x-request-id"));
    let body: serde_json::Value = ok.json().await.unwrap();
    assert!(body.get("requestId").is_none(), "successes keep their shape: {body}");
}

/// The value of the sample `name` in OpenMetrics `text`, e.g. `tokens_issued_total`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_issued_tokens_validations_by_result_and_store_calls() {
    // A server of its own, even with API_BASE_URL set: the counts start from zero.
    let app = TestApp::spawn_with(|c| c).await;
    let tokens = [app.issue().await.token, app.issue().await.token, app.issue().await.token];
    assert!(app.validate(&tokens[0]).await.is_valid);
    assert_eq!(app.validate(&tokens[0]).await.reason, Some(Reason::AlreadyUsed));
    assert_eq!(app.validate(&tokens[0]).await.reason, Some(Reason::AlreadyUsed));
    assert_eq!(app.validate("a.b.c").await.reason, Some(Reason::MalformedToken));
    let text = app.metrics(None).await;
    assert_eq!(sample(&text, "tokens_issued_total"), Some(3.0), "{text}");
    assert_eq!(sample(&text, r#"validations_total{result="valid"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"validations_total{result="already_used"}"#), Some(2.0));
    assert_eq!(sample(&text, r#"validations_total{result="malformed_token"}"#), Some(1.0));
    assert_eq!(sample(&text, "reuse_detected_total"), Some(2.0));
    let inserts = r#"store_operation_duration_seconds_count{operation="insert"}"#;
    assert_eq!(sample(&text, inserts), Some(3.0), "{text}");
    let consumes = r#"store_operation_duration_seconds_count{operation="consume"}"#;
    assert_eq!(sample(&text, consumes), Some(3.0), "a malformed token never reaches the store");
    let issues = r#"http_requests_total{method="GET",route="/tokens",status="200"}"#;
    assert_eq!(sample(&text, issues), Some(3.0));
    assert_eq!(sample(&text, "server_errors_total"), Some(0.0));
}

/// Opens a connection and sends half a request header, then nothing.
async fn half_a_header(base: &str) -> TcpStream {
    let mut stream = TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    stream.write_all(b"GET /tokens HTTP/1.1\r\nHost: slow.example\r\nX-Slow: ").await.unwrap();
    stream
}

/// Waits until the server closes `stream` (end of file or a reset), at most `limit`; returns
/// how long that took from `since`, or `None` if it stayed open.
async fn closed_within(mut stream: TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buffer = [0u8; 1024];
    let deadline = since + limit;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {} // an error answer, if any, before the close
        }
    }
}

#[tokio::test]
async fn slow_connections_are_closed_by_the_header_timeout_while_others_are_served() {
    let app = TestApp::spawn_with(|c| Config { header_read_timeout: 3, ..c }).await;
    let opened = Instant::now();
    let slow = futures::future::join_all((0..200).map(|_| half_a_header(&app.base))).await;
    // Meanwhile a normal client is served, long before the slow ones time out.
    let token = app.issue().await.token;
    assert!(app.validate(&token).await.is_valid);
    let served = opened.elapsed();
    assert!(served < Duration::from_millis(2500), "served only after {served:?}");
    let closed = futures::future::join_all(
        slow.into_iter().map(|s| closed_within(s, opened, Duration::from_secs(8))),
    )
    .await;
    let closed: Vec<Duration> =
        closed.into_iter().map(|c| c.expect("still open after 8 s")).collect();
    let (first, last) = (closed.iter().min().unwrap(), closed.iter().max().unwrap());
    assert!(*first >= Duration::from_millis(2900), "closed before the timeout: {first:?}");
    assert!(*last < Duration::from_millis(4500), "closed late: {last:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(|c| Config { header_read_timeout: 1, ..c }).await;
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: idle.example\r\n\r\n").await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = stream.read(&mut buffer).await.unwrap();
    let answer = String::from_utf8_lossy(&buffer[..read]).to_string();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
    let idle = Instant::now();
    let closed = closed_within(stream, idle, Duration::from_secs(5)).await.expect("still open");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_until_a_slow_one_is_closed() {
    let app =
        TestApp::spawn_with(|c| Config { header_read_timeout: 2, max_connections: 4, ..c }).await;
    let opened = Instant::now();
    let slow = futures::future::join_all((0..4).map(|_| half_a_header(&app.base))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let token = app.issue().await.token;
    let waited = opened.elapsed();
    assert!(waited >= Duration::from_millis(1800), "served past the cap after {waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    assert!(app.validate(&token).await.is_valid);
    drop(slow);
}

#[tokio::test]
async fn with_issuer_keys_revoking_needs_one_and_status_stays_open() {
    let app = TestApp::spawn_with(with_issuer_keys).await;
    let token = app.get_with_key("/tokens", ISSUER_KEY).await;
    let token = token.json::<shared::IssueResponse>().await.unwrap().token;
    let post = |path: &str, key: Option<&str>| {
        let mut request = app
            .client
            .post(format!("{}{path}", app.base))
            .json(&serde_json::json!({ "token": token }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        app.send(request)
    };
    let status = post("/tokens/status", None).await;
    assert_eq!(status.status(), StatusCode::OK);
    assert_eq!(status.json::<serde_json::Value>().await.unwrap()["state"], "unused");
    assert_unauthorized(post("/tokens/revoke", None).await, r#"Bearer realm="token-service""#)
        .await;
    let revoked = post("/tokens/revoke", Some(ISSUER_KEY)).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(revoked.json::<serde_json::Value>().await.unwrap()["state"], "revoked");
}

#[tokio::test]
async fn the_audit_log_names_superseded_and_revoked_tokens_with_their_purpose() {
    let sink = backend::audit::LogSink::memory();
    let audit = sink.clone();
    let app = TestApp::spawn_with(|c| Config { audit_log: audit, ..c }).await;
    let bound = "/tokens?purpose=password-reset&subject=user-42";
    let first = app.get(bound).await.json::<shared::IssueResponse>().await.unwrap();
    let second = app.get(&format!("{bound}&supersede=true")).await;
    let second = second.json::<shared::IssueResponse>().await.unwrap();
    let revoke = app.client.post(format!("{}/tokens/revoke", app.base)).json(&serde_json::json!({
        "token": second.token
    }));
    assert_eq!(app.send(revoke).await.status(), StatusCode::OK);

    let lines: Vec<serde_json::Value> =
        sink.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["event"].as_str().unwrap(), l["purpose"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("issued", "password-reset"),
            ("issued", "password-reset"),
            ("superseded", "password-reset"),
            ("revoked", "password-reset"),
        ]
    );
    assert_eq!(lines[2]["uuid"], lines[0]["uuid"], "the superseded token is the first one");
    assert_eq!(lines[2]["supersededBy"], lines[1]["uuid"], "superseded by the second token");
    assert_eq!(lines[3]["uuid"], lines[1]["uuid"]);
    assert!(lines[3].get("supersededBy").is_none(), "{}", lines[3]);
    let text = sink.lines().join("\n");
    for secret in [&first.token, &second.token] {
        assert!(!text.contains(secret.as_str()));
    }
    assert!(!text.contains("user-42"), "the subject may name a person: {text}");
}

#[tokio::test]
async fn a_supersede_audits_and_counts_each_token_it_revoked_and_only_those() {
    const PURPOSE: &str = "password-reset";
    let sink = backend::audit::LogSink::memory();
    let audit = sink.clone();
    let app = &TestApp::spawn_with(|c| Config { audit_log: audit, ..c }).await;
    // `GET /tokens` for `subject`, with `X-Request-Id: request_id`; the token and its uuid.
    let issue = |subject: &'static str, supersede: bool, request_id: &'static str| {
        let mut query = vec![("purpose", PURPOSE), ("subject", subject)];
        if supersede {
            query.push(("supersede", "true"));
        }
        let request = app
            .client
            .get(format!("{}/tokens", app.base))
            .query(&query)
            .header("x-request-id", request_id);
        async move {
            let response = app.send(request).await;
            assert_eq!(response.status(), StatusCode::OK);
            let token = response.json::<shared::IssueResponse>().await.unwrap().token;
            let uuid = claims_of(&token)["uuid"].as_str().unwrap().to_owned();
            (token, uuid)
        }
    };
    let audit_since = |from: usize| -> Vec<serde_json::Value> {
        sink.lines()[from..].iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let mut outstanding =
        vec![issue("user-42", false, "r1").await.1, issue("user-42", false, "r2").await.1];
    outstanding.push(issue("user-42", false, "r3").await.1);
    let (used, _) = issue("user-42", false, "r4").await;
    assert!(app.validate_for(&used, Some(PURPOSE), Some("user-42")).await.is_valid);
    let (_, elsewhere) = issue("user-43", false, "r5").await;

    let from = sink.lines().len();
    let (newest, newest_uuid) = issue("user-42", true, "req-supersede").await;
    let lines = audit_since(from);
    assert_eq!(lines.len(), 1 + 3, "{lines:#?}");
    assert_eq!((&lines[0]["event"], &lines[0]["uuid"]), (&json!("issued"), &json!(newest_uuid)));
    let mut superseded: Vec<&str> = Vec::new();
    for line in &lines[1..] {
        assert_eq!(line["event"], "superseded", "{line}");
        assert_eq!(line["supersededBy"], newest_uuid.as_str(), "{line}");
        assert_eq!(line["purpose"], PURPOSE, "{line}");
        assert_eq!(line["reason"], serde_json::Value::Null, "{line}");
        assert_eq!(line["requestId"], "req-supersede", "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert_eq!(line["time"], lines[0]["time"], "{line}");
        superseded.push(line["uuid"].as_str().unwrap());
    }
    superseded.sort_unstable();
    let mut expected: Vec<&str> = outstanding.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(superseded, expected, "the pair's three unused tokens, not {elsewhere}");
    let text = app.metrics(None).await;
    assert_eq!(sample(&text, "tokens_revoked_total"), Some(3.0), "{text}");

    // Nothing outstanding (the newest token used; a pair never issued before): no line.
    assert!(app.validate_for(&newest, Some(PURPOSE), Some("user-42")).await.is_valid);
    let from = sink.lines().len();
    issue("user-42", true, "req-nothing-left").await;
    issue("user-44", true, "req-new-pair").await;
    let events: Vec<String> =
        audit_since(from).iter().map(|l| l["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(events, ["issued", "issued"], "no superseded line without a revocation");
    let text = app.metrics(None).await;
    assert_eq!(sample(&text, "tokens_revoked_total"), Some(3.0), "{text}");
    assert!(!sink.lines().join("\n").contains("user-4"), "never a subject");
}
