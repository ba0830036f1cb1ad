//! The real binary: start-up errors, restart and `kill -9` durability.

use crate::helpers::SECRET;
use reqwest::StatusCode;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Process {
    child: Child,
    base: String,
}

fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_token-service"));
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--ui-dir",
            "/nonexistent",
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("TOKEN_SERVICE_SECRET")
        .env("RUST_LOG", "warn");
    command
}

impl Process {
    fn start(data_dir: &Path) -> Self {
        let mut child = command(data_dir).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("token-service listening on ")
            .unwrap()
            .to_owned();
        Self { child, base }
    }

    async fn issue(&self) -> String {
        let body: shared::IssueResponse = reqwest::get(format!("{}/tokens", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body.token
    }

    async fn validate(&self, token: &str) -> shared::ValidateResponse {
        let response = reqwest::Client::new()
            .post(format!("{}/tokens", self.base))
            .json(&shared::ValidateRequest {
                token: token.into(),
            })
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            self.child.wait().unwrap().success(),
            "graceful shutdown exits 0"
        );
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
        assert!(
            server.validate(token).await.is_valid,
            "an acknowledged token was lost"
        );
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
fn a_secret_shorter_than_32_bytes_is_refused_at_startup() {
    let data = tempfile::tempdir().unwrap();
    let output = command(data.path())
        .env("TOKEN_SERVICE_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("the signing key is 9 bytes; HS256 needs at least 32"),
        "{stderr}"
    );
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
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("token-service listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(!data.path().join(backend::server::KEY_FILE).exists());
    child.kill().unwrap();
    child.wait().unwrap();
}
