use crate::helpers::{TestApp, assert_error};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use shared::{MAX_BODY_BYTES, Reason};

#[tokio::test]
async fn a_token_is_valid_once_then_already_used() {
    let app = TestApp::spawn().await;
    let token = app.issue().await.token;
    let first = app.validate(&token).await;
    assert!(first.is_valid);
    assert_eq!(first.message, "Token is valid and has now been used");
    let second = app.validate(&token).await;
    assert!(!second.is_valid);
    assert_eq!(second.reason, Some(Reason::AlreadyUsed));
    assert_eq!(second.message, "Token has already been used");
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_success_again_and_others_do_not() {
    let app = TestApp::spawn().await;
    let token = app.issue().await.token;
    let key = "8e03978e-40d5-43e8-bc93-6894a57f9324";
    let first = app.validate_with_key(&token, key).await;
    assert_eq!((first.is_valid, first.replayed, first.used_at), (true, false, None));
    let again = app.validate_with_key(&token, &format!("\"{key}\"")).await;
    assert!(again.is_valid && again.replayed, "{again:?}");
    let used_at = again.used_at.clone().unwrap();
    let parsed =
        time::OffsetDateTime::parse(&used_at, &time::format_description::well_known::Rfc3339);
    let age = time::OffsetDateTime::now_utc() - parsed.unwrap();
    assert!(age.whole_seconds().abs() < 60, "{used_at}");
    let other = app.validate_with_key(&token, "another-client").await;
    assert_eq!((other.is_valid, other.reason), (false, Some(Reason::AlreadyUsed)));
    assert_eq!(other.used_at.as_deref(), Some(used_at.as_str()));
    let none = app.validate(&token).await;
    assert_eq!((none.reason, none.used_at), (Some(Reason::AlreadyUsed), Some(used_at)));
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_400_and_leaves_the_token_unused() {
    let app = TestApp::spawn().await;
    let token = app.issue().await.token;
    let too_long = "k".repeat(shared::MAX_IDEMPOTENCY_KEY_BYTES + 1);
    for key in ["", "has space", "a,b", too_long.as_str()] {
        let response = app.post_with_key(&token, key).await;
        let message = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(message.contains("Idempotency-Key"), "{key:?}: {message}");
    }
    assert!(app.validate(&token).await.is_valid);
}

#[tokio::test]
async fn two_idempotency_keys_or_a_non_ascii_one_are_a_400_and_leave_the_token_unused() {
    // A server of its own (spawn_with): these header forms are this server's to judge, not
    // those of a proxy in front of it.
    let app = TestApp::spawn_with(|c| c).await;
    let token = app.issue().await.token;
    let post = || app.client.post(format!("{}/tokens", app.base)).json(&json!({ "token": token }));
    let two = app.send(post().header("idempotency-key", "a").header("idempotency-key", "b")).await;
    let message = assert_error(two, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(message, "send one Idempotency-Key header, not several");
    let umlaut = reqwest::header::HeaderValue::from_bytes("ä".as_bytes()).unwrap();
    let non_ascii = app.send(post().header("idempotency-key", umlaut)).await;
    let message = assert_error(non_ascii, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(
        message.starts_with("the Idempotency-Key header must be 1 to 128 characters"),
        "{message}"
    );
    assert!(app.validate(&token).await.is_valid);
}

#[tokio::test]
async fn half_of_64_racers_share_a_key_and_exactly_one_key_wins() {
    let app = TestApp::spawn().await;
    for round in 0..5 {
        let token = app.issue().await.token;
        let keys: Vec<String> = (0..64)
            .map(|i| if i % 2 == 0 { "shared".into() } else { format!("own-{i}") })
            .collect();
        let answers = join_all(keys.iter().map(|key| app.validate_with_key(&token, key))).await;
        let winners: std::collections::HashSet<&String> =
            keys.iter().zip(&answers).filter(|(_, a)| a.is_valid).map(|(k, _)| k).collect();
        assert_eq!(winners.len(), 1, "round {round}");
        let winner = *winners.iter().next().unwrap();
        for (key, answer) in keys.iter().zip(&answers) {
            let expected = if key == winner { None } else { Some(Reason::AlreadyUsed) };
            assert_eq!(answer.reason, expected, "round {round} key {key}");
        }
    }
}

#[tokio::test]
async fn readiness_is_answered_beside_liveness() {
    let app = TestApp::spawn().await;
    for (path, status) in [("/health", "ok"), ("/health/ready", "ready")] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({ "status": status }));
    }
}

#[tokio::test]
async fn of_64_concurrent_validations_exactly_one_succeeds() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        let token = app.issue().await.token;
        let answers = join_all((0..64).map(|_| app.validate(&token))).await;
        let valid = answers.iter().filter(|a| a.is_valid).count();
        let used = answers.iter().filter(|a| a.reason == Some(Reason::AlreadyUsed)).count();
        assert_eq!((valid, used), (1, 63));
    }
}

#[tokio::test]
async fn a_forged_token_is_refused_and_the_real_one_still_works() {
    let app = TestApp::spawn().await;
    let token = app.issue().await.token;
    // Change a character inside the signature: the last one also carries padding bits, so
    // changing it can make the base64url non-canonical (malformed) instead of forged.
    let mut forged: Vec<char> = token.chars().collect();
    let inside = forged.len() - 10;
    forged[inside] = if forged[inside] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let answer = app.validate(&forged).await;
    assert_eq!((answer.is_valid, answer.reason), (false, Some(Reason::InvalidSignature)));
    assert!(app.validate(&token).await.is_valid);
}

#[tokio::test]
async fn garbage_tokens_are_malformed_not_errors() {
    let app = TestApp::spawn().await;
    for token in ["", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "\u{1F600}.\u{0}.x"] {
        let answer = app.validate(token).await;
        assert_eq!(
            (answer.is_valid, answer.reason),
            (false, Some(Reason::MalformedToken)),
            "{token:?}"
        );
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_with_the_json_error_shape() {
    let app = TestApp::spawn().await;
    let bodies: [&[u8]; 11] = [
        b"",
        b"not json",
        b"{",
        b"{}",
        b"[]",
        b"null",
        b"\"token\"",
        br#"{"token": 42}"#,
        br#"{"token": null}"#,
        br#"{"token": ["a"]}"#,
        b"\xff\xfe",
    ];
    for body in bodies {
        let utf8 = std::str::from_utf8(body).is_ok();
        let content_type = if utf8 || app.non_utf8_json_bodies {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let message = assert_error(
            app.post_raw(body.to_vec(), Some(content_type)).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        )
        .await;
        assert!(
            message.starts_with(r#"the body must be JSON of the form {"token": "<JWT>"}"#),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let body = format!(r#"{{"token": "{}"}}"#, "a".repeat(MAX_BODY_BYTES));
    assert_error(
        app.post_raw(body, Some("application/json")).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
}

#[tokio::test]
async fn any_content_type_is_read_as_json() {
    let app = TestApp::spawn().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("APPLICATION/JSON"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let token = app.issue().await.token;
        let response = app.post_raw(format!(r#"{{"token":"{token}"}}"#), content_type).await;
        assert_eq!(response.status(), StatusCode::OK, "{content_type:?}");
        let answer: shared::ValidateResponse = response.json().await.unwrap();
        assert!(answer.is_valid, "{content_type:?}");
    }
}

#[tokio::test]
async fn validation_answers_are_never_cached() {
    let app = TestApp::spawn().await;
    let response = app.post_raw(r#"{"token":"x"}"#, Some("application/json")).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
}
