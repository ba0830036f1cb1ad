use crate::helpers::{TestApp, assert_error};
use reqwest::StatusCode;
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn expiration_of(expiration: &str) -> i64 {
    assert!(expiration.ends_with('Z'), "{expiration} is not UTC");
    OffsetDateTime::parse(expiration, &Rfc3339).unwrap().unix_timestamp()
}

#[tokio::test]
async fn a_token_is_issued_for_8_hours_and_never_cached() {
    let app = TestApp::spawn().await;
    let before = now();
    let response = app.get("/tokens").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let issued: shared::IssueResponse = response.json().await.unwrap();
    let expires = expiration_of(&issued.expiration);
    assert!((before + 8 * 3600..=now() + 8 * 3600).contains(&expires), "{expires}");
    assert_eq!(issued.token.split('.').count(), 3);
}

#[tokio::test]
async fn a_ttl_in_seconds_sets_the_lifetime() {
    let app = TestApp::spawn().await;
    let before = now();
    let issued: shared::IssueResponse = app.get("/tokens?ttl=60").await.json().await.unwrap();
    let expires = expiration_of(&issued.expiration);
    assert!((before + 60..=now() + 60).contains(&expires), "{expires}");
}

#[tokio::test]
async fn a_ttl_out_of_range_or_not_a_number_is_a_400() {
    let app = TestApp::spawn().await;
    for query in
        ["ttl=0", "ttl=-1", "ttl=abc", "ttl=604801", "ttl=1.5", "ttl=", "ttl=99999999999999999999"]
    {
        let message = assert_error(
            app.get(&format!("/tokens?{query}")).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        )
        .await;
        assert_eq!(message, "ttl must be a whole number of seconds from 1 to 604800", "{query}");
    }
    let longest = app.get("/tokens?ttl=604800").await;
    assert_eq!(longest.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_answers_ok() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/nope").await, StatusCode::NOT_FOUND, "not_found").await;
    let post = app.send(app.client.post(format!("{}/no-such-endpoint", app.base))).await;
    assert_error(post, StatusCode::NOT_FOUND, "not_found").await;
    let delete = app.send(app.client.delete(format!("{}/tokens", app.base))).await;
    assert_eq!(delete.headers()["allow"], "GET,POST", "HEAD is refused there too");
    assert_error(delete, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn configured_origins_get_cors_headers_and_others_do_not() {
    let app = TestApp::spawn_with(|c| backend::server::Config {
        allowed_origins: "https://ui.example".into(),
        ..c
    })
    .await;
    let preflight = |origin: &'static str| {
        app.send(
            app.client
                .request(reqwest::Method::OPTIONS, format!("{}/tokens", app.base))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type,idempotency-key"),
        )
    };
    let allowed = preflight("https://ui.example").await;
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://ui.example");
    let headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap();
    assert!(headers.contains("idempotency-key"), "{headers}");
    let refused = preflight("https://evil.example").await;
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn head_does_not_issue_a_token() {
    let app = TestApp::spawn().await;
    let head = app.send(app.client.head(format!("{}/tokens", app.base))).await;
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(head.headers()["allow"], "GET,POST");
}

#[tokio::test]
async fn with_the_ui_served_only_a_browser_gets_the_page_for_an_unknown_path() {
    let ui = tempfile::tempdir().unwrap();
    std::fs::write(ui.path().join("index.html"), "<html>ui</html>").unwrap();
    let ui_dir = ui.path().to_owned();
    let app = TestApp::spawn_with(|c| backend::server::Config { ui_dir, ..c }).await;
    // A browser following a deep link gets the page; a client that does not ask for HTML (a
    // mistyped API path, a health check) gets the API's JSON 404.
    let browser = app.client.get(format!("{}/some/deep/link", app.base));
    let page = app.send(browser.header("accept", "text/html,application/xhtml+xml;q=0.9")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["vary"], "accept", "a cache keeps the two answers apart");
    assert_eq!(page.text().await.unwrap(), "<html>ui</html>");
    let upper = app.client.get(format!("{}/deep", app.base)).header("accept", "TEXT/HTML");
    assert_eq!(app.send(upper).await.status(), StatusCode::OK, "media types ignore case");
    for path in ["/healthz", "/tokens/", "/api/tokens", "/metrics/"] {
        let answer = app.get(path).await;
        assert_eq!(answer.headers()["vary"], "accept", "{path}");
        assert_error(answer, StatusCode::NOT_FOUND, "not_found").await;
    }
    let root = app.get("/").await;
    assert_eq!(root.status(), StatusCode::OK, "the page itself is a file");
    let post = app.send(app.client.post(format!("{}/tokens/", app.base)).body("{}")).await;
    assert_error(post, StatusCode::NOT_FOUND, "not_found").await;
    let delete = app.send(app.client.delete(format!("{}/api/x", app.base))).await;
    assert!(delete.headers().get("allow").is_none(), "{:?}", delete.headers());
    assert_error(delete, StatusCode::NOT_FOUND, "not_found").await;
}
