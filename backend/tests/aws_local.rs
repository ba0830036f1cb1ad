//! The real Lambda binary under `cargo lambda watch`, started by `scripts/aws-local`: which
//! events reach it, and a cold start that cannot read the signing key.
//!
//! These tests need that script running (its state is in `target/aws-local/`), so they are
//! ignored by a plain `cargo test`; `scripts/test` starts it and
//! runs them with `cargo test -p backend --test aws_local -- --ignored --test-threads=1`, after
//! the HTTP and browser tests have run against it. One at a time: they count lines of the
//! function's log, and the last one stops the Secrets Manager emulator.
//!
//! The function logs one debug line per invocation naming the payload it arrived in
//! (`backend::lambda::event_kind`): `apigw_v2` for what the emulator makes of an HTTP request
//! (a Lambda function URL event, the HTTP API payload), `apigw_rest` for a REST API event file
//! posted to the emulator's Invoke API (as `cargo lambda invoke --data-file` does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/lambda.rs"]
mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::event;

/// The running `scripts/aws-local`: its ports and files.
struct AwsLocal {
    state: PathBuf,
    api: String,
    client: reqwest::Client,
}

impl AwsLocal {
    fn find() -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let state = repo.join("target/aws-local");
        let ports = std::fs::read_to_string(state.join("ports")).unwrap_or_else(|e| {
            panic!("{}: {e}: start scripts/aws-local first", state.join("ports").display())
        });
        let ports: HashMap<&str, &str> = ports.lines().filter_map(|l| l.split_once('=')).collect();
        let api = format!("http://127.0.0.1:{}", ports["API_PORT"]);
        // No kept-alive connections: restart-function replaces the server they would go to.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        Self { state, api, client }
    }

    /// The function's log lines for its invocations, in order: each one's `event` kind.
    fn invocations(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.state.join("lambda.log")).unwrap();
        log.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|l| l["target"] == "backend::lambda" && l["fields"]["message"] == "invocation")
            .map(|l| l["fields"]["event"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The invocation kinds logged after the first `before`, once there are `count` of them
    /// (the log is written as the function runs: up to 5 s).
    fn invocations_after(&self, before: usize, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let all = self.invocations();
            if all.len() >= before + count || Instant::now() > deadline {
                return all[before.min(all.len())..].to_vec();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The function's log as text (cold start errors are JSON lines too).
    fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("lambda.log")).unwrap()
    }

    /// Posts a REST API event file (`tests/events/NAME.json`, `{{TOKEN}}` replaced) to the
    /// emulator's Invoke API and returns the function's raw Lambda response.
    async fn invoke_rest_event(&self, name: &str, token: Option<&str>) -> Value {
        // `_`: the function HTTP requests reach too (a name would get an instance of its own).
        let url = format!("{}/2015-03-31/functions/_/invocations", self.api);
        let response = self.client.post(url).json(&event(name, token)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "the Invoke API itself");
        response.json().await.unwrap()
    }

    /// `POST /tokens` with `{"token": token}`; returns the JSON answer.
    async fn validate(&self, token: &str) -> Value {
        let url = format!("{}/tokens", self.api);
        let answer = self.client.post(url).json(&json!({ "token": token })).send().await.unwrap();
        answer.json().await.unwrap()
    }

    /// Runs `scripts/aws-local ARGS` (a subcommand acting on the running instance).
    fn script(&self, args: &[&str]) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let status = Command::new(repo.join("scripts/aws-local")).args(args).status().unwrap();
        assert!(status.success(), "scripts/aws-local {args:?}: {status}");
    }
}

#[tokio::test]
#[ignore = "needs scripts/aws-local running; scripts/test runs these"]
async fn http_requests_reach_the_function_as_http_api_v2_events() {
    let local = AwsLocal::find();
    let before = local.invocations().len();
    let issued = local.client.get(format!("{}/tokens?ttl=60", local.api)).send().await.unwrap();
    assert_eq!(issued.status(), StatusCode::OK);
    assert_eq!(issued.headers()["cache-control"], "no-store");
    let token = issued.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        local.validate(&token).await,
        json!({"isValid": true, "message": "Token is valid and has now been used"})
    );
    assert_eq!(local.invocations_after(before, 2), ["apigw_v2", "apigw_v2"]);
}

#[tokio::test]
#[ignore = "needs scripts/aws-local running; scripts/test runs these"]
async fn rest_api_events_reach_the_function_and_get_rest_responses() {
    let local = AwsLocal::find();
    let before = local.invocations().len();
    // `/prod/tokens?ttl=60` in the event: the stage is stripped, the query kept.
    let issued = local.invoke_rest_event("issue-ttl-60", None).await;
    assert_eq!(issued["statusCode"], 200, "{issued}");
    assert_eq!(issued["headers"], json!({}), "a REST response's headers go in multiValueHeaders");
    assert_eq!(issued["multiValueHeaders"]["cache-control"], json!(["no-store"]));
    assert_eq!(issued["multiValueHeaders"]["access-control-allow-origin"], Value::Null);
    let body: Value = serde_json::from_str(issued["body"].as_str().unwrap()).unwrap();
    let token = body["token"].as_str().unwrap();

    let validated = local.invoke_rest_event("validate", Some(token)).await;
    assert_eq!(validated["statusCode"], 200, "{validated}");
    let body: Value = serde_json::from_str(validated["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"isValid": true, "message": "Token is valid and has now been used"}));

    assert_eq!(local.invocations_after(before, 2), ["apigw_rest", "apigw_rest"]);
}

#[tokio::test]
#[ignore = "needs scripts/aws-local running; scripts/test runs these"]
async fn z_a_cold_start_without_secrets_manager_answers_503_and_recovers_when_it_is_back() {
    // Named to run last: it stops and restarts the emulator and the function.
    let local = AwsLocal::find();
    let issue = || local.client.get(format!("{}/tokens", local.api)).send();
    let before_outage =
        issue().await.unwrap().json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();

    local.script(&["secrets-manager", "stop"]);
    local.script(&["restart-function"]);
    let logged_before = local.log().len();
    let started = Instant::now();
    let refused = issue().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["cache-control"], "no-store");
    assert_eq!(refused.headers()["content-type"], "application/json");
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({
            "isValid": false,
            "message": backend::lambda::UNAVAILABLE_MESSAGE,
            "reason": "unavailable",
        })
    );
    let log = local.log()[logged_before..].to_owned();
    assert!(
        log.lines().any(|l| l.contains("cold start failed") && l.contains("Secrets Manager")),
        "the cause is logged:\n{log}"
    );
    // The SDK retried GetSecretValue against a closed port: a refused connection fails fast.
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

    local.script(&["secrets-manager", "start"]);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let mut answer = issue().await.unwrap();
    // The retry after `Retry-After` builds the service; allow one more backoff step for a slow
    // emulator start.
    if answer.status() == StatusCode::SERVICE_UNAVAILABLE {
        let wait: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
        answer = issue().await.unwrap();
    }
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(local.log()[logged_before..].contains("cold start succeeded on a retry"));

    // The same key as before the outage, read again from Secrets Manager.
    assert_eq!(local.validate(&before_outage).await["isValid"], true);
}
