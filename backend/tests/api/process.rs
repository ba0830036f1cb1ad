//! The real binary: start-up errors, restart and `kill -9` durability.

use crate::helpers::SECRET;
use crate::schema::Recorder;
use reqwest::StatusCode;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Process {
    child: Child,
    base: String,
    client: reqwest::Client,
    /// Every answer, checked against the OpenAPI document when the process is dropped.
    recorder: Recorder,
}

fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_token-service"));
    command
        .args(["--listen", "127.0.0.1:0", "--ui-dir", "/nonexistent", "--data-dir"])
        .arg(data_dir)
        .env_remove("TOKEN_SERVICE_SECRET")
        .env("RUST_LOG", "warn");
    command
}

/// `command` for the DynamoDB store on DynamoDB Local (`DYNAMODB_ENDPOINT`, set by
/// scripts/test), configured the standard AWS way, in the child's environment only.
fn dynamodb_command(data_dir: &Path, table: &str) -> Command {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .expect("DYNAMODB_ENDPOINT is not set: run scripts/test (it starts DynamoDB Local)");
    let mut command = command(data_dir);
    command
        .args(["--store", "dynamodb", "--create-table", "--table", table])
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local");
    command
}

impl Process {
    fn start(data_dir: &Path) -> Self {
        Self::spawn(command(data_dir))
    }

    fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().strip_prefix("token-service listening on ").unwrap().to_owned();
        Self { child, base, client: reqwest::Client::new(), recorder: Recorder::new(false) }
    }

    /// `GET {path}`, recorded.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.recorder.send(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn issue(&self) -> String {
        let body: shared::IssueResponse = self.get("/tokens").await.json().await.unwrap();
        body.token
    }

    async fn validate(&self, token: &str) -> shared::ValidateResponse {
        let response = self
            .recorder
            .send(
                self.client
                    .post(format!("{}/tokens", self.base))
                    .json(&shared::ValidateRequest::new(token)),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let status =
            Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success(), "graceful shutdown exits 0");
    }
}

impl Drop for Process {
    /// A failed test must not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn survives(stop: fn(Process)) {
    let data = tempfile::tempdir().unwrap();
    let server = Process::start(data.path());
    let unused: Vec<String> = futures::future::join_all((0..20).map(|_| server.issue())).await;
    let used = server.issue().await;
    assert!(server.validate(&used).await.is_valid);
    stop(server);

    let server = Process::start(data.path());
    for token in &unused {
        assert!(server.validate(token).await.is_valid, "an acknowledged token was lost");
    }
    let again = server.validate(&used).await;
    assert_eq!(again.reason, Some(shared::Reason::AlreadyUsed));
    server.terminate();
}

#[tokio::test]
async fn tokens_survive_kill_9_with_the_generated_key() {
    survives(Process::kill_9).await;
}

#[tokio::test]
async fn tokens_survive_a_graceful_restart() {
    survives(Process::terminate).await;
}

#[test]
fn the_release_binary_refuses_to_run_without_single_use() {
    let data = tempfile::tempdir().unwrap();
    for (flag, env) in [(Some("null"), None), (None, Some("null"))] {
        let mut command = command(data.path());
        if let Some(store) = flag {
            command.args(["--store", store]);
        }
        if let Some(store) = env {
            command.env("TOKEN_SERVICE_STORE", store);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("invalid value 'null'"), "{stderr}");
    }
}

#[test]
fn a_secret_shorter_than_32_bytes_is_refused_at_startup() {
    let data = tempfile::tempdir().unwrap();
    let output = command(data.path()).env("TOKEN_SERVICE_SECRET", "too-short").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("the signing key is 9 bytes; HS256 needs at least 32"), "{stderr}");
}

#[test]
fn a_given_secret_is_used_and_no_key_file_is_written() {
    let data = tempfile::tempdir().unwrap();
    let mut child = command(data.path())
        .env("TOKEN_SERVICE_SECRET", SECRET)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("token-service listening on http://127.0.0.1:"), "{line}");
    assert!(!data.path().join(backend::server::KEY_FILE).exists());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_new_data_directory_and_its_files_are_for_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("new");
    let server = Process::start(&data);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join(backend::server::STORE_FILE)), 0o600);
    assert_eq!(mode(&data.join(backend::server::KEY_FILE)), 0o600);
    server.kill_9();
}

#[tokio::test]
async fn the_server_runs_on_dynamodb_and_creates_its_table() {
    let data = tempfile::tempdir().unwrap();
    let table = format!("server-{}", uuid::Uuid::new_v4());
    let server = Process::spawn(dynamodb_command(data.path(), &table));
    let token = server.issue().await;
    // 16 racers: this binary keeps the service's own 2 s attempt timeout, which DynamoDB Local
    // shared with other tests can exceed at 64; the store's conformance suite races 64.
    let answers = futures::future::join_all((0..16).map(|_| server.validate(&token))).await;
    assert_eq!(answers.iter().filter(|a| a.is_valid).count(), 1);
    assert!(
        answers
            .iter()
            .filter(|a| !a.is_valid)
            .all(|a| a.reason == Some(shared::Reason::AlreadyUsed))
    );
    assert!(!data.path().join(backend::server::STORE_FILE).exists(), "no embedded store was made");
    server.terminate();

    // Restarted on the same table and key: an unused token survives, a used one stays used.
    let server = Process::spawn(dynamodb_command(data.path(), &table));
    let unused = server.issue().await;
    server.kill_9();
    let server = Process::spawn(dynamodb_command(data.path(), &table));
    assert!(server.validate(&unused).await.is_valid);
    assert_eq!(server.validate(&token).await.reason, Some(shared::Reason::AlreadyUsed));
}

#[test]
fn dynamodb_without_a_region_is_a_startup_error() {
    let data = tempfile::tempdir().unwrap();
    let output = command(data.path())
        .args(["--store", "dynamodb"])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no AWS region configured: set AWS_REGION"), "{stderr}");
}

#[test]
fn dynamodb_without_its_table_is_a_startup_error() {
    let data = tempfile::tempdir().unwrap();
    let command = dynamodb_command(data.path(), "no-such-table");
    let args: Vec<_> =
        command.get_args().filter(|a| *a != "--create-table").map(ToOwned::to_owned).collect();
    let mut without_create = Command::new(command.get_program());
    without_create.args(args).envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let output = without_create.output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("table no-such-table does not exist; pass --create-table"), "{stderr}");
}

/// A 4 MiB tmpfs mounted for one test (needs root), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` when this process may not mount (not root, or no mount permission).
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while file.write_all(&chunk).and_then(|()| file.sync_all()).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n")
}

/// Posts `token` with `key`, retrying (same key) while the answer is a 503; returns the 200
/// answer. Every attempt must be a 200 or a 503 with `Retry-After`, never a 500.
async fn validate_until_definite(
    server: &Process,
    token: &str,
    key: &str,
) -> shared::ValidateResponse {
    for _ in 0..100 {
        let request = server
            .client
            .post(format!("{}/tokens", server.base))
            .header("idempotency-key", key)
            .json(&shared::ValidateRequest::new(token));
        let response = server.recorder.send(request).await;
        match response.status() {
            StatusCode::OK => return response.json().await.unwrap(),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => panic!("validate answered {other}: {}", response.text().await.unwrap()),
        }
    }
    panic!("no definite answer after 100 tries");
}

#[tokio::test]
async fn a_full_disk_answers_503_and_the_server_recovers_when_space_is_freed() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let disk = SmallDisk::mount().expect("running as root, but mounting a 4 MiB tmpfs failed");
    let server = Process::spawn(command(disk.dir.path()));
    let mut acknowledged: Vec<String> = Vec::new();
    for _ in 0..10 {
        acknowledged.push(server.issue().await);
    }

    let filler = disk.fill();
    let (mut refused, mut ready_while_full) = (0, None);
    for _ in 0..300 {
        let response = server.get("/tokens").await;
        match response.status() {
            StatusCode::OK => {
                acknowledged.push(response.json::<shared::IssueResponse>().await.unwrap().token);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["reason"], "unavailable", "{body}");
                refused += 1;
                ready_while_full = Some(server.get("/health/ready").await.status());
                break;
            }
            other => panic!("GET /tokens on a full disk answered {other}"),
        }
    }
    assert_eq!(refused, 1, "no issue was refused on a full disk");
    assert_eq!(ready_while_full, Some(StatusCode::SERVICE_UNAVAILABLE));
    let live = server.get("/health").await;
    assert_eq!(live.status(), StatusCode::OK, "liveness stays 200");

    std::fs::remove_file(filler).unwrap();
    let freed = std::time::Instant::now();
    loop {
        let ready = server.get("/health/ready").await;
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(freed.elapsed() < std::time::Duration::from_secs(10), "not ready 10 s after");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    acknowledged.push(server.issue().await);
    for (i, token) in acknowledged.iter().enumerate() {
        let key = format!("disk-full-{i}");
        let first = validate_until_definite(&server, token, &key).await;
        assert!(first.is_valid, "acknowledged token {i} refused: {first:?}");
        let again = validate_until_definite(&server, token, "someone-else").await;
        assert_eq!(again.reason, Some(shared::Reason::AlreadyUsed), "token {i}");
    }
}

const KEY_A: &str = "rotation-key-a-rotation-key-a-rotation-key-a";
const KEY_B: &str = "rotation-key-b-rotation-key-b-rotation-key-b";

/// `command` with signing key `current` and previous keys `previous` (comma-separated).
fn keyed_command(data_dir: &Path, current: &str, previous: Option<&str>) -> Command {
    let mut command = command(data_dir);
    command.env("TOKEN_SERVICE_SECRET", current);
    match previous {
        Some(previous) => command.env("TOKEN_SERVICE_PREVIOUS_SECRETS", previous),
        None => command.env_remove("TOKEN_SERVICE_PREVIOUS_SECRETS"),
    };
    command
}

#[tokio::test]
async fn a_token_issued_under_key_a_validates_after_rotation_to_b_and_not_once_a_is_dropped() {
    let data = tempfile::tempdir().unwrap();
    let server = Process::spawn(keyed_command(data.path(), KEY_A, None));
    let (kept, dropped) = (server.issue().await, server.issue().await);
    server.terminate();

    let server = Process::spawn(keyed_command(data.path(), KEY_B, Some(KEY_A)));
    assert!(server.validate(&kept).await.is_valid, "A is kept as a previous key");
    assert_eq!(server.validate(&kept).await.reason, Some(shared::Reason::AlreadyUsed));
    let under_b = server.issue().await;
    server.terminate();

    let server = Process::spawn(keyed_command(data.path(), KEY_B, None));
    let refused = server.validate(&dropped).await;
    assert_eq!(refused.reason, Some(shared::Reason::InvalidSignature), "{refused:?}");
    assert!(server.validate(&under_b).await.is_valid);
    server.terminate();
}

#[test]
fn a_previous_key_shorter_than_32_bytes_is_refused_at_startup() {
    let data = tempfile::tempdir().unwrap();
    let output =
        keyed_command(data.path(), KEY_B, Some(&format!("{KEY_A},short"))).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(
            "TOKEN_SERVICE_PREVIOUS_SECRETS: previous key 2: the signing key is 5 bytes; HS256 \
             needs at least 32"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY_A), "{stderr}");
}

#[test]
fn an_issuer_key_shorter_than_32_bytes_is_refused_at_startup_without_printing_it() {
    let data = tempfile::tempdir().unwrap();
    let output =
        command(data.path()).env("TOKEN_SERVICE_ISSUER_KEYS", "short-issuer-key").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(
            "issuer keys: issuer key 1 of 1 is 16 bytes; issuer keys must be at least 32"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("short-issuer-key"), "{stderr}");
}

const ISSUER: &str = "audit-test-issuer-key-audit-test-issuer-key";
const WRONG_ISSUER: &str = "audit-test-wrong-issuer-key-0123456789abcd";

#[tokio::test]
async fn the_audit_log_has_every_event_with_reuse_detected_and_no_token_or_key_anywhere() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (stdout_path, stderr_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut command = keyed_command(data.path(), KEY_B, Some(KEY_A));
    command
        .env("RUST_LOG", "debug")
        .env("TOKEN_SERVICE_ISSUER_KEYS", ISSUER)
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()));
    let mut child =
        command.stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap())).spawn().unwrap();
    let base = loop {
        let text = std::fs::read_to_string(&stdout_path).unwrap();
        if let Some(line) = text.lines().next() {
            break line.strip_prefix("token-service listening on ").unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let client = reqwest::Client::new();
    let issue = || async {
        let response =
            client.get(format!("{base}/tokens")).bearer_auth(ISSUER).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<shared::IssueResponse>().await.unwrap().token
    };
    let validate = |token: String, key: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let response = client
                .post(format!("{base}/tokens"))
                .header("idempotency-key", key)
                .header("x-request-id", format!("req-{key}"))
                .json(&serde_json::json!({ "token": token }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<shared::ValidateResponse>().await.unwrap()
        }
    };
    let (used, unused) = (issue().await, issue().await);
    let first = validate(used.clone(), "attempt-1").await;
    assert!(first.is_valid);
    let replayed = validate(used.clone(), "attempt-1").await;
    assert!(replayed.replayed);
    let reuse = validate(used.clone(), "attempt-2").await;
    assert_eq!(reuse.reason, Some(shared::Reason::AlreadyUsed));
    let (head, _) = unused.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let refused = validate(forged.clone(), "attempt-3").await;
    assert_eq!(refused.reason, Some(shared::Reason::InvalidSignature));
    let wrong = client.get(format!("{base}/tokens")).bearer_auth(WRONG_ISSUER).send().await;
    assert_eq!(wrong.unwrap().status(), StatusCode::UNAUTHORIZED);
    let big = client
        .post(format!("{base}/tokens"))
        .body(format!("{{\"token\":\"{used}{}\"}}", "x".repeat(9000)))
        .send()
        .await;
    assert_eq!(big.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);

    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&stderr_path).unwrap()
        + &std::fs::read_to_string(&stdout_path).unwrap();

    let audit: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["log"] == "audit")
        .collect();
    let events: Vec<&str> = audit.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["issued", "issued", "consumed", "replayed", "reuse_detected", "refused"],
        "{text}"
    );
    let uuid = audit[2]["uuid"].as_str().unwrap();
    assert_eq!(audit[0]["uuid"], uuid);
    let reuse_line = &audit[4];
    assert_eq!(reuse_line["uuid"], uuid);
    assert_eq!(reuse_line["reason"], "already_used");
    assert_eq!(reuse_line["usedAt"].as_str(), first_used_at(&replayed).as_deref());
    assert_eq!(reuse_line["attemptId"], "attempt-2");
    assert_eq!(reuse_line["requestId"], "req-attempt-2");
    assert_eq!(reuse_line["client"], "127.0.0.1");
    assert_eq!(audit[5]["uuid"], serde_json::Value::Null, "a forged token's uuid is not trusted");
    assert_eq!(audit[5]["reason"], "invalid_signature");

    for (what, secret) in [
        ("used token", used.as_str()),
        ("unused token", unused.as_str()),
        ("forged token", forged.as_str()),
        ("used token's signature", used.rsplit('.').next().unwrap()),
        ("unused token's signature", unused.rsplit('.').next().unwrap()),
        ("signing key", KEY_B),
        ("previous key", KEY_A),
        ("issuer key", ISSUER),
        ("wrong issuer key", WRONG_ISSUER),
    ] {
        for line in text.lines() {
            assert!(!line.contains(secret), "the {what} is in a log line: {line}");
        }
    }
    assert!(text.lines().count() > audit.len(), "debug logging was on: {text}");
}

/// When a replayed answer says its token was used.
fn first_used_at(replayed: &shared::ValidateResponse) -> Option<String> {
    replayed.used_at.clone()
}

#[tokio::test]
async fn clients_that_never_read_their_answers_are_closed_and_others_are_served() {
    let data = tempfile::tempdir().unwrap();
    let mut command = command(data.path());
    command.args(["--max-connections", "3", "--header-read-timeout", "1"]);
    let server = Process::spawn(command);
    let address: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    // More connections than the cap, each with a tiny receive buffer, pipelining far more
    // answers than the buffers on both sides hold, and never reading one.
    let pipelined = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(400);
    let mut stuck = Vec::new();
    for _ in 0..5 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        let mut stream = socket.connect(address).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, &pipelined).await.unwrap();
        stuck.push(stream);
    }
    // Without a write timeout every slot stays taken and this never gets a connection.
    let served = tokio::time::timeout(std::time::Duration::from_secs(30), server.issue()).await;
    let token = served.expect("no slot came free: stalled writes hold their connections");
    assert!(server.validate(&token).await.is_valid);
    drop(stuck);
    server.terminate();
}

#[tokio::test]
async fn at_the_connection_cap_the_server_logs_it_and_serves_again_after_the_header_timeout() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("stderr");
    let mut command = command(data.path());
    command
        .args(["--max-connections", "3", "--header-read-timeout", "1"])
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let server = Process::spawn(command);
    let address = server.base.trim_start_matches("http://").to_owned();
    // Before the connects: the server's header timers start when it accepts them.
    let started = std::time::Instant::now();
    let slow: Vec<std::net::TcpStream> = (0..5)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            std::io::Write::write_all(&mut stream, b"GET /tokens HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    let token = server.issue().await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "served past the cap");
    assert!(server.validate(&token).await.is_valid);
    let text = std::fs::read_to_string(&log).unwrap();
    let reached = "connection limit reached: new connections wait until one closes";
    let warned: Vec<&str> = text.lines().filter(|l| l.contains(reached)).collect();
    assert!(!warned.is_empty(), "{text}");
    assert!(warned.iter().all(|l| l.ends_with("max=3") && !l.contains('\u{1b}')), "{text}");
    drop(slow);
    server.terminate();
}
