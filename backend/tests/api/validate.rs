use crate::helpers::{TestApp, assert_error};
use futures::future::join_all;
use reqwest::StatusCode;
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
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
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
        let message = assert_error(
            app.post_raw(body.to_vec(), Some("application/json")).await,
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
