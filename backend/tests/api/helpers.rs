//! `TestApp`: a server on a free port with its own data directory, and one typed method per
//! endpoint.

use backend::server::{Config, Server};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use shared::{IssueResponse, ValidateResponse};
use std::path::PathBuf;
use tokio::sync::oneshot;

/// A fixed test key (the real server generates or is given one).
pub const SECRET: &str = "http-test-key-http-test-key-http-test-key";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    _data: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

pub fn config(data_dir: PathBuf) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: backend::server::StoreKind::Embedded,
        table: "TokenTable".into(),
        create_table: false,
        data_dir,
        secret: Some(SECRET.into()),
        ui_dir: PathBuf::from("/nonexistent"),
        allowed_origins: String::new(),
        default_ttl: 8 * 3600,
        max_ttl: 7 * 24 * 3600,
        sweep_interval: 60,
        replay_window: 600,
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|c| c).await
    }

    pub async fn spawn_with(configure: impl FnOnce(Config) -> Config) -> Self {
        let data = tempfile::tempdir().unwrap();
        let server = Server::build(configure(config(data.path().to_owned()))).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move { drop(stopped.await) }));
        Self { base, client: reqwest::Client::new(), _data: data, stop: Some(stop) }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap()
    }

    /// `GET /tokens`, expecting 200.
    pub async fn issue(&self) -> IssueResponse {
        let response = self.get("/tokens").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `POST /tokens` with a raw body and content type.
    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> Response {
        let mut request = self.client.post(format!("{}/tokens", self.base)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.unwrap()
    }

    /// `POST /tokens` with `{"token": token}` and an `Idempotency-Key` header.
    pub async fn post_with_key(&self, token: &str, key: &str) -> Response {
        self.client
            .post(format!("{}/tokens", self.base))
            .header("idempotency-key", key)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .unwrap()
    }

    /// `POST /tokens` with `{"token": token}` and `Idempotency-Key: key`, expecting 200.
    pub async fn validate_with_key(&self, token: &str, key: &str) -> ValidateResponse {
        let response = self.post_with_key(token, key).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `POST /tokens` with `{"token": token}`, expecting 200.
    pub async fn validate(&self, token: &str) -> ValidateResponse {
        let response = self
            .post_raw(serde_json::json!({ "token": token }).to_string(), Some("application/json"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts an error answer: its status, JSON shape, reason and `Cache-Control: no-store`.
pub async fn assert_error(response: Response, status: StatusCode, reason: &str) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["isValid"], false, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    body["message"].as_str().unwrap().to_owned()
}
