//! `kill -9` of the real `token-service` binary in the middle of mixed load, then a restart on
//! the same data directory, several rounds in a row.
//!
//! What the client saw decides what must hold after the restart:
//! - a token whose `GET /tokens` answered 200 and that was never sent for validation validates
//!   exactly once (the record was durable before the answer);
//! - a token the client saw validate (`isValid: true`), or saw refused as `already_used` while a
//!   second validation of it was in flight, stays used (the removal was durable);
//! - a token whose validation was in flight at the kill may be used or not, but never validates
//!   twice in all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::future::join_all;
use reqwest::{Client, StatusCode};
use shared::{IssueResponse, Reason, ValidateRequest, ValidateResponse};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Kill-and-restart rounds on one data directory.
const ROUNDS: usize = 4;
/// Clients sending requests concurrently.
const WORKERS: usize = 24;
/// Answers received in a round before the server is killed.
const ANSWERS_BEFORE_KILL: usize = 300;

/// The real binary on an embedded store in `data_dir`, on a free port.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_token-service"))
            .args(["--listen", "127.0.0.1:0", "--ui-dir", "/nonexistent", "--data-dir"])
            .arg(data_dir)
            .env_remove("TOKEN_SERVICE_SECRET")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().strip_prefix("token-service listening on ").unwrap().to_owned();
        Self { child, base }
    }

    /// SIGKILL: no graceful shutdown, no flush, nothing.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// `GET /tokens`: `Ok(token)` on 200, `Err` if no answer arrived (the server died). Any other
/// answer fails the test: before the kill the server must not fail.
async fn issue(client: &Client, base: &str) -> Result<String, reqwest::Error> {
    let response = client.get(format!("{base}/tokens")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(response.json::<IssueResponse>().await?.token)
}

/// `POST /tokens`: the answer, or `Err` if none arrived.
async fn validate(
    client: &Client,
    base: &str,
    token: &str,
) -> Result<ValidateResponse, reqwest::Error> {
    let response =
        client.post(format!("{base}/tokens")).json(&ValidateRequest::new(token)).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await
}

/// Validates `token` twice in a row; both must be answered.
/// Validates `token` twice; returns each answer's `(isValid, reason)`.
async fn twice(client: &Client, base: &str, token: String) -> (Verdict, Verdict) {
    let first = validate(client, base, &token).await.unwrap();
    let second = validate(client, base, &token).await.unwrap();
    ((first.is_valid, first.reason), (second.is_valid, second.reason))
}

/// `(isValid, reason)` of an answer.
type Verdict = (bool, Option<Reason>);

/// What the client knows about the tokens it got.
#[derive(Debug, Default)]
struct Seen {
    /// 200 received, never sent for validation.
    unused: Vec<String>,
    /// Validated (`isValid: true`) before the kill.
    used: Vec<String>,
    /// Sent for validation, but no answer arrived: in flight at the kill.
    in_flight: Vec<String>,
}

impl Seen {
    fn merge(&mut self, other: Self) {
        self.unused.extend(other.unused);
        self.used.extend(other.used);
        self.in_flight.extend(other.in_flight);
    }
}

/// One client: issue, then leave the token unused, validate it, or validate it twice at once;
/// until its first request goes unanswered (the kill), which must not happen before `killing`.
async fn worker(
    id: usize,
    base: Arc<String>,
    killing: Arc<AtomicBool>,
    answers: Arc<AtomicUsize>,
) -> Seen {
    let client = client();
    let mut seen = Seen::default();
    let unanswered = |what: &str, e: reqwest::Error| {
        assert!(killing.load(Ordering::SeqCst), "{what} failed before the kill: {e}");
    };
    for i in id.. {
        let token = match issue(&client, &base).await {
            Ok(token) => token,
            Err(e) => {
                unanswered("GET /tokens", e);
                break;
            }
        };
        answers.fetch_add(1, Ordering::SeqCst);
        let attempts = match i % 3 {
            0 => {
                seen.unused.push(token);
                continue;
            }
            1 => join_all([validate(&client, &base, &token)]).await,
            _ => {
                join_all([validate(&client, &base, &token), validate(&client, &base, &token)]).await
            }
        };
        let valid = attempts.iter().filter(|a| matches!(a, Ok(a) if a.is_valid)).count();
        assert!(valid <= 1, "a token validated {valid} times");
        for answer in attempts.iter().flatten().filter(|a| !a.is_valid) {
            assert_eq!(answer.reason, Some(Reason::AlreadyUsed), "{answer:?}");
        }
        let total = attempts.len();
        let unanswered_attempts: Vec<reqwest::Error> =
            attempts.into_iter().filter_map(Result::err).collect();
        answers.fetch_add(1, Ordering::SeqCst);
        // An `already_used` answer comes only after the other attempt's removal was committed,
        // so one answer of either kind means the token is used for good.
        match (valid, unanswered_attempts.len()) {
            (0, 0) => panic!("no validation of a fresh token succeeded"),
            (_, n) if n < total => seen.used.push(token),
            _ => seen.in_flight.push(token),
        }
        if let Some(e) = unanswered_attempts.into_iter().next() {
            unanswered("POST /tokens", e);
            break;
        }
    }
    seen
}

/// Runs mixed load on `server` and kills it with SIGKILL once [`ANSWERS_BEFORE_KILL`] answers
/// have arrived, with every worker still sending.
async fn load_then_kill_9(server: &mut Server) -> Seen {
    let base = Arc::new(server.base.clone());
    let killing = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| tokio::spawn(worker(id, base.clone(), killing.clone(), answers.clone())))
        .collect();
    while answers.load(Ordering::SeqCst) < ANSWERS_BEFORE_KILL {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    killing.store(true, Ordering::SeqCst);
    server.kill_9();
    let mut seen = Seen::default();
    for joined in join_all(workers).await {
        seen.merge(joined.unwrap());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_tokens_survive_kill_9_under_load_and_none_validates_twice() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    // Every token of earlier rounds, all consumed by now.
    let mut consumed_before: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let seen = load_then_kill_9(&mut server).await;
        eprintln!(
            "round {round}: {} unused, {} used, {} in flight at the kill",
            seen.unused.len(),
            seen.used.len(),
            seen.in_flight.len()
        );
        assert!(!seen.unused.is_empty() && !seen.used.is_empty(), "round {round}: {seen:?}");

        server = Server::start(data.path());
        let (client, base) = (client(), server.base.clone());
        let check = |token: &String| twice(&client, &base, token.clone());
        let (used, valid): (Verdict, Verdict) = ((false, Some(Reason::AlreadyUsed)), (true, None));

        for (first, second) in join_all(seen.unused.iter().map(check)).await {
            assert_eq!((first, second), (valid, used), "round {round}: unused");
        }
        for (first, second) in join_all(seen.used.iter().map(check)).await {
            assert_eq!((first, second), (used, used), "round {round}: used");
        }
        for (first, second) in join_all(seen.in_flight.iter().map(check)).await {
            assert!(first == valid || first == used, "round {round}: in flight: {first:?}");
            assert_eq!(second, used, "round {round}: in flight, second validation");
        }
        for (first, second) in join_all(consumed_before.iter().map(check)).await {
            assert_eq!((first, second), (used, used), "round {round}: earlier");
        }
        consumed_before.extend(seen.unused.into_iter().chain(seen.used).chain(seen.in_flight));
    }
}
