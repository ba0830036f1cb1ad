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

#[tokio::test]
async fn the_server_runs_on_dynamodb_and_creates_its_table() {
    let data = tempfile::tempdir().unwrap();
    let table = format!("server-{}", uuid::Uuid::new_v4());
    let server = Process::spawn(dynamodb_command(data.path(), &table));
    let token = server.issue().await;
    let answers = futures::future::join_all((0..64).map(|_| server.validate(&token))).await;
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
