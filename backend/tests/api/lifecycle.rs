//! Issue 10 over HTTP: purpose and subject bound into a token, `POST /tokens/status`,
//! `POST /tokens/revoke` and `supersede=true`, through the real router on a real port.
//!
//! The checks run on both stores (`on_every_store!`): the embedded one and a fresh table in
//! DynamoDB Local. Each app runs on a manual clock standing at [`NOW`], so every time in an
//! answer is asserted exactly. Checks that never reach a store (query parameters, bodies) run
//! once, on the local server's own start-up.

use crate::helpers::{Backend, NOW, SECRET, TestApp, assert_error, claims_of, sign};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::{Reason, StatusResponse, TokenState, ValidateResponse};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const PURPOSE: &str = "password-reset";
const SUBJECT: &str = "user-42";
/// `GET /tokens` without `ttl`: 8 hours, in seconds.
const DEFAULT_TTL: i64 = 8 * 3600;
const PURPOSE_RULE: &str = "purpose must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-'";
const SUBJECT_RULE: &str = "subject must be 1 to 256 bytes of UTF-8";
const SUPERSEDE_NEEDS_BOTH: &str = "supersede=true needs both purpose and subject";

/// Epoch seconds as the API writes them (RFC 3339, UTC).
fn time(epoch: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch).unwrap().format(&Rfc3339).unwrap()
}

const BOUND: [(&str, &str); 2] = [("purpose", PURPOSE), ("subject", SUBJECT)];
const SUPERSEDING: [(&str, &str); 3] =
    [("purpose", PURPOSE), ("subject", SUBJECT), ("supersede", "true")];

fn valid() -> ValidateResponse {
    ValidateResponse::valid("Token is valid and has now been used")
}

fn refused(reason: Reason) -> ValidateResponse {
    let message = match reason {
        Reason::WrongPurpose => "Token was issued for another purpose",
        Reason::WrongSubject => "Token was issued for another subject",
        Reason::Revoked => "Token has been revoked",
        Reason::Expired => "Token has expired",
        Reason::InvalidSignature => "Token signature is invalid",
        Reason::UnknownToken => "Token is not known to this service",
        other => panic!("no fixed message for {other:?}"),
    };
    ValidateResponse::refused(reason, message)
}

fn already_used(at: i64) -> ValidateResponse {
    ValidateResponse {
        used_at: Some(time(at)),
        ..ValidateResponse::refused(Reason::AlreadyUsed, "Token has already been used")
    }
}

/// The status of a genuine token: `state`, its expiry and purpose, and when it was used or
/// revoked.
fn standing(state: TokenState, exp: i64, purpose: Option<&str>, at: Option<i64>) -> StatusResponse {
    StatusResponse {
        expiration: Some(time(exp)),
        used_at: at.filter(|_| state == TokenState::Used).map(time),
        revoked_at: at.filter(|_| state == TokenState::Revoked).map(time),
        purpose: purpose.map(str::to_owned),
        ..StatusResponse::new(state)
    }
}

fn invalid(reason: Reason) -> StatusResponse {
    StatusResponse { reason: Some(reason), ..StatusResponse::new(TokenState::Invalid) }
}

/// `token` with one character inside its signature changed (not the last: its unused bits
/// would make it non-canonical, so malformed, instead of forged).
fn forge(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let inside = chars.len() - 10;
    chars[inside] = if chars[inside] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

/// A token signed with the service's key for a `uuid` it never stored.
fn unknown_token(claims: Value) -> String {
    sign(&hs256(), &claims, SECRET.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Checks run on every store.

async fn a_token_is_valid_only_for_the_purpose_and_subject_it_was_issued_for(app: &TestApp) {
    let token = app.issue_with(&BOUND).await.token;
    let claims = claims_of(&token);
    assert_eq!((&claims["purpose"], &claims["sub"]), (&json!(PURPOSE), &json!(SUBJECT)));
    let mismatches = [
        (Some("email-change"), Some(SUBJECT), Reason::WrongPurpose),
        (None, Some(SUBJECT), Reason::WrongPurpose),
        (Some("Password-Reset"), Some(SUBJECT), Reason::WrongPurpose),
        (Some(PURPOSE), Some("user-43"), Reason::WrongSubject),
        (Some(PURPOSE), None, Reason::WrongSubject),
        (Some(PURPOSE), Some("user-42 "), Reason::WrongSubject),
        // Both wrong: the purpose is checked first.
        (Some("email-change"), Some("user-43"), Reason::WrongPurpose),
        (None, None, Reason::WrongPurpose),
    ];
    for (purpose, subject, reason) in mismatches {
        let answer = app.validate_for(&token, purpose, subject).await;
        assert_eq!(answer, refused(reason), "{purpose:?} {subject:?}");
    }
    let untouched = standing(TokenState::Unused, NOW + DEFAULT_TTL, Some(PURPOSE), None);
    assert_eq!(app.status(&token).await, untouched, "a refused binding consumed the token");
    assert_eq!(app.validate_for(&token, Some(PURPOSE), Some(SUBJECT)).await, valid());
    let again = app.validate_for(&token, Some(PURPOSE), Some(SUBJECT)).await;
    assert_eq!(again, already_used(NOW));
}

async fn a_token_issued_without_purpose_or_subject_is_refused_to_callers_that_name_one(
    app: &TestApp,
) {
    let token = app.issue().await.token;
    let claims = claims_of(&token);
    assert_eq!((claims.get("purpose"), claims.get("sub")), (None, None), "{claims}");
    let answer = app.validate_for(&token, Some(PURPOSE), None).await;
    assert_eq!(answer, refused(Reason::WrongPurpose));
    let answer = app.validate_for(&token, None, Some(SUBJECT)).await;
    assert_eq!(answer, refused(Reason::WrongSubject));
    assert_eq!(app.validate(&token).await, valid());
}

async fn a_token_with_a_purpose_and_no_subject_is_valid_for_that_purpose_alone(app: &TestApp) {
    let token = app.issue_with(&[("purpose", PURPOSE)]).await.token;
    let answer = app.validate_for(&token, Some(PURPOSE), Some(SUBJECT)).await;
    assert_eq!(answer, refused(Reason::WrongSubject));
    assert_eq!(app.validate_for(&token, Some(PURPOSE), None).await, valid());
}

async fn status_never_consumes_a_token_and_then_reports_its_use(app: &TestApp) {
    let token = app.issue_with(&[("purpose", PURPOSE), ("ttl", "600")]).await.token;
    let unused = standing(TokenState::Unused, NOW + 600, Some(PURPOSE), None);
    for _ in 0..3 {
        assert_eq!(app.status(&token).await, unused);
    }
    app.clock().advance(5);
    assert_eq!(app.validate_for(&token, Some(PURPOSE), None).await, valid());
    app.clock().advance(5);
    let used = standing(TokenState::Used, NOW + 600, Some(PURPOSE), Some(NOW + 5));
    assert_eq!(app.status(&token).await, used);
    assert_eq!(app.validate_for(&token, Some(PURPOSE), None).await, already_used(NOW + 5));
    assert_eq!(app.status(&token).await, used);
}

async fn status_reports_an_expired_token_and_revoke_leaves_it_expired(app: &TestApp) {
    let token = app.issue_with(&[("ttl", "60")]).await.token;
    app.clock().advance(59);
    assert_eq!(app.status(&token).await, standing(TokenState::Unused, NOW + 60, None, None));
    app.clock().advance(1);
    let expired = standing(TokenState::Expired, NOW + 60, None, None);
    assert_eq!(app.status(&token).await, expired);
    assert_eq!(app.revoke(&token).await, expired);
    assert_eq!(app.validate(&token).await, refused(Reason::Expired));
    // Nothing was changed by the revoke: with the clock put back, the token works once.
    app.clock().set(NOW + 59);
    assert_eq!(app.validate(&token).await, valid());
}

async fn revoking_an_unused_token_revokes_it_for_good_at_the_first_revocation_time(app: &TestApp) {
    let token = app.issue_with(&BOUND).await.token;
    app.clock().advance(10);
    let revoked = standing(TokenState::Revoked, NOW + DEFAULT_TTL, Some(PURPOSE), Some(NOW + 10));
    assert_eq!(app.revoke(&token).await, revoked);
    app.clock().advance(10);
    assert_eq!(
        app.validate_for(&token, Some(PURPOSE), Some(SUBJECT)).await,
        refused(Reason::Revoked)
    );
    assert_eq!(app.status(&token).await, revoked);
    app.clock().advance(10);
    assert_eq!(app.revoke(&token).await, revoked, "a second revoke moved revokedAt");
}

async fn revoking_a_used_token_reports_it_used_and_changes_nothing(app: &TestApp) {
    let token = app.issue().await.token;
    app.clock().advance(3);
    assert_eq!(app.validate(&token).await, valid());
    app.clock().advance(4);
    let used = standing(TokenState::Used, NOW + DEFAULT_TTL, None, Some(NOW + 3));
    assert_eq!(app.revoke(&token).await, used);
    assert_eq!(app.status(&token).await, used);
    assert_eq!(app.validate(&token).await, already_used(NOW + 3));
}

async fn forged_malformed_and_unknown_tokens_are_invalid_and_leave_the_genuine_one_alone(
    app: &TestApp,
) {
    let genuine = app.issue().await.token;
    let unknown = unknown_token(json!({"uuid": uuid::Uuid::new_v4(), "iat": NOW, "exp": NOW + 60}));
    let cases = [
        (forge(&genuine), Reason::InvalidSignature),
        (
            sign(&hs256(), &claims_of(&genuine), b"another-key-another-key-another-k"),
            Reason::InvalidSignature,
        ),
        (String::new(), Reason::MalformedToken),
        ("abc".to_owned(), Reason::MalformedToken),
        (genuine.rsplit_once('.').unwrap().0.to_owned(), Reason::MalformedToken),
        (unknown, Reason::UnknownToken),
    ];
    for (token, reason) in &cases {
        assert_eq!(app.status(token).await, invalid(*reason), "{token:?}");
        assert_eq!(app.revoke(token).await, invalid(*reason), "{token:?}");
        let answer = app.validate(token).await;
        assert_eq!((answer.is_valid, answer.reason), (false, Some(*reason)), "{token:?}");
    }
    assert_eq!(
        app.status(&genuine).await,
        standing(TokenState::Unused, NOW + DEFAULT_TTL, None, None)
    );
    assert_eq!(app.validate(&genuine).await, valid());
}

async fn a_superseding_issue_revokes_the_unused_tokens_of_its_pair_and_no_others(app: &TestApp) {
    let (a, b, used) =
        (app.issue_with(&BOUND).await, app.issue_with(&BOUND).await, app.issue_with(&BOUND).await);
    assert_eq!(app.validate_for(&used.token, Some(PURPOSE), Some(SUBJECT)).await, valid());
    let others = [
        (
            app.issue_with(&[("purpose", PURPOSE), ("subject", "user-43")]).await.token,
            Some(PURPOSE),
            Some("user-43"),
        ),
        (
            app.issue_with(&[("purpose", "email-change"), ("subject", SUBJECT)]).await.token,
            Some("email-change"),
            Some(SUBJECT),
        ),
        (app.issue_with(&[("purpose", PURPOSE)]).await.token, Some(PURPOSE), None),
        (app.issue_with(&[("subject", SUBJECT)]).await.token, None, Some(SUBJECT)),
        (app.issue().await.token, None, None),
    ];
    app.clock().advance(30);
    let newest = app.issue_with(&SUPERSEDING).await;
    assert_eq!(newest.expiration, time(NOW + 30 + DEFAULT_TTL));
    let revoked = standing(TokenState::Revoked, NOW + DEFAULT_TTL, Some(PURPOSE), Some(NOW + 30));
    for token in [&a.token, &b.token] {
        assert_eq!(app.status(token).await, revoked);
        let answer = app.validate_for(token, Some(PURPOSE), Some(SUBJECT)).await;
        assert_eq!(answer, refused(Reason::Revoked));
    }
    let used_status = standing(TokenState::Used, NOW + DEFAULT_TTL, Some(PURPOSE), Some(NOW));
    assert_eq!(app.status(&used.token).await, used_status);
    for (token, purpose, subject) in &others {
        let unused = standing(TokenState::Unused, NOW + DEFAULT_TTL, *purpose, None);
        assert_eq!(app.status(token).await, unused, "{purpose:?} {subject:?}");
        assert_eq!(app.validate_for(token, *purpose, *subject).await, valid());
    }
    assert_eq!(app.validate_for(&newest.token, Some(PURPOSE), Some(SUBJECT)).await, valid());
}

async fn a_pair_holds_at_most_90_unused_tokens_until_superseded(app: &TestApp) {
    let mut tokens = Vec::new();
    for _ in 0..90 {
        tokens.push(app.issue_with(&BOUND).await.token);
    }
    let full =
        assert_error(app.try_issue(&BOUND).await, StatusCode::CONFLICT, "too_many_outstanding")
            .await;
    assert_eq!(
        full,
        "this purpose and subject already have 90 unused tokens; issue with supersede=true to \
         replace them"
    );
    // Other pairs are not limited by this one.
    app.issue_with(&[("purpose", PURPOSE), ("subject", "user-43")]).await;
    // A used token no longer counts.
    assert_eq!(app.validate_for(&tokens[0], Some(PURPOSE), Some(SUBJECT)).await, valid());
    tokens.push(app.issue_with(&BOUND).await.token);
    assert_error(app.try_issue(&BOUND).await, StatusCode::CONFLICT, "too_many_outstanding").await;
    app.clock().advance(1);
    let newest = app.issue_with(&SUPERSEDING).await.token;
    let revoked = standing(TokenState::Revoked, NOW + DEFAULT_TTL, Some(PURPOSE), Some(NOW + 1));
    for token in &tokens[1..] {
        assert_eq!(app.status(token).await, revoked);
    }
    assert_eq!(app.validate_for(&newest, Some(PURPOSE), Some(SUBJECT)).await, valid());
}

async fn a_revoke_racing_16_validations_has_exactly_one_winner(app: &TestApp) {
    for round in 0..5 {
        let token = app.issue().await.token;
        let (revoke, answers) =
            futures::join!(app.revoke(&token), join_all((0..16).map(|_| app.validate(&token))));
        let valid_count = answers.iter().filter(|a| a.is_valid).count();
        match revoke.state {
            TokenState::Revoked => {
                assert_eq!(
                    revoke,
                    standing(TokenState::Revoked, NOW + DEFAULT_TTL, None, Some(NOW))
                );
                assert!(
                    answers.iter().all(|a| *a == refused(Reason::Revoked)),
                    "round {round}: {answers:?}"
                );
            }
            TokenState::Used => {
                assert_eq!(revoke, standing(TokenState::Used, NOW + DEFAULT_TTL, None, Some(NOW)));
                assert_eq!(valid_count, 1, "round {round}: {answers:?}");
                let losers = answers.iter().filter(|a| !a.is_valid);
                assert!(
                    losers.clone().all(|a| *a == already_used(NOW)),
                    "round {round}: {answers:?}"
                );
            }
            other => panic!("round {round}: revoke answered {other:?}"),
        }
    }
}

async fn of_8_concurrent_superseding_issues_exactly_one_token_validates(app: &TestApp) {
    let older = [app.issue_with(&BOUND).await.token, app.issue_with(&BOUND).await.token];
    let issued = join_all((0..8).map(|_| app.issue_with(&SUPERSEDING))).await;
    let mut winners = Vec::new();
    for (i, token) in older.iter().chain(issued.iter().map(|i| &i.token)).enumerate() {
        let answer = app.validate_for(token, Some(PURPOSE), Some(SUBJECT)).await;
        if answer.is_valid {
            winners.push(i);
        } else {
            assert_eq!(answer, refused(Reason::Revoked), "token {i}");
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert!(winners[0] >= older.len(), "an older token survived the supersedes: {winners:?}");
}

/// Runs each check on the embedded store and on DynamoDB Local, each on a fresh app.
macro_rules! on_every_store {
    ($($check:ident),* $(,)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&TestApp::spawn_on(Backend::Embedded).await).await;
                }
            )*
        }
        mod dynamodb {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&TestApp::spawn_on(Backend::Dynamodb).await).await;
                }
            )*
        }
    };
}

on_every_store!(
    a_token_is_valid_only_for_the_purpose_and_subject_it_was_issued_for,
    a_token_issued_without_purpose_or_subject_is_refused_to_callers_that_name_one,
    a_token_with_a_purpose_and_no_subject_is_valid_for_that_purpose_alone,
    status_never_consumes_a_token_and_then_reports_its_use,
    status_reports_an_expired_token_and_revoke_leaves_it_expired,
    revoking_an_unused_token_revokes_it_for_good_at_the_first_revocation_time,
    revoking_a_used_token_reports_it_used_and_changes_nothing,
    forged_malformed_and_unknown_tokens_are_invalid_and_leave_the_genuine_one_alone,
    a_superseding_issue_revokes_the_unused_tokens_of_its_pair_and_no_others,
    a_pair_holds_at_most_90_unused_tokens_until_superseded,
    a_revoke_racing_16_validations_has_exactly_one_winner,
    of_8_concurrent_superseding_issues_exactly_one_token_validates,
);

// ---------------------------------------------------------------------------------------------
// Checks that never reach a store.

#[tokio::test]
async fn supersede_without_both_purpose_and_subject_is_a_400() {
    let app = TestApp::spawn().await;
    let queries: [&[(&str, &str)]; 3] = [
        &[("supersede", "true")],
        &[("supersede", "true"), ("purpose", PURPOSE)],
        &[("supersede", "true"), ("subject", SUBJECT)],
    ];
    for query in queries {
        let message =
            assert_error(app.try_issue(query).await, StatusCode::BAD_REQUEST, "bad_request").await;
        assert_eq!(message, SUPERSEDE_NEEDS_BOTH, "{query:?}");
    }
    app.issue_with(&[("supersede", "false")]).await;
}

#[tokio::test]
async fn bad_issue_parameters_are_a_400_saying_what_is_allowed() {
    let app = TestApp::spawn().await;
    let long_purpose = "p".repeat(shared::MAX_PURPOSE_CHARS + 1);
    let long_subject = "s".repeat(shared::MAX_SUBJECT_BYTES + 1);
    // 129 characters but 257 bytes: the limit is in bytes.
    let wide_subject = format!("{}s", "é".repeat(shared::MAX_SUBJECT_BYTES / 2));
    let unknown = |name: &str| {
        format!(
            "unknown query parameter {name:?}; the parameters are ttl, purpose, subject and \
             supersede"
        )
    };
    let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
        (vec![("purpose", "Password-Reset")], PURPOSE_RULE.into()),
        (vec![("purpose", &long_purpose)], PURPOSE_RULE.into()),
        (vec![("purpose", "")], PURPOSE_RULE.into()),
        (vec![("purpose", "password reset")], PURPOSE_RULE.into()),
        (vec![("purpose", "pässword")], PURPOSE_RULE.into()),
        (vec![("purpose", "a/b")], PURPOSE_RULE.into()),
        (vec![("subject", &long_subject)], SUBJECT_RULE.into()),
        (vec![("subject", &wide_subject)], SUBJECT_RULE.into()),
        (vec![("subject", "")], SUBJECT_RULE.into()),
        (
            vec![("purpose", PURPOSE), ("subject", SUBJECT), ("supersede", "maybe")],
            "supersede must be true or false".into(),
        ),
        (vec![("supersede", "1")], "supersede must be true or false".into()),
        (vec![("supersede", "TRUE")], "supersede must be true or false".into()),
        (vec![("supersede", "")], "supersede must be true or false".into()),
        (vec![("tll", "60")], unknown("tll")),
        (vec![("Purpose", PURPOSE)], unknown("Purpose")),
        (vec![("sub", SUBJECT)], unknown("sub")),
        (vec![("purpose", PURPOSE), ("audience", "x")], unknown("audience")),
    ];
    for (query, expected) in &cases {
        let message =
            assert_error(app.try_issue(query).await, StatusCode::BAD_REQUEST, "bad_request").await;
        assert_eq!(&message, expected, "{query:?}");
    }
    // Bytes that are not UTF-8 are not a purpose either.
    let raw =
        assert_error(app.get("/tokens?purpose=%FF").await, StatusCode::BAD_REQUEST, "bad_request")
            .await;
    assert_eq!(raw, "the query string must be percent-encoded UTF-8");
}

#[tokio::test]
async fn the_longest_purpose_and_subject_are_accepted_and_bound_exactly() {
    let app = TestApp::spawn().await;
    let longest_purpose = "p".repeat(shared::MAX_PURPOSE_CHARS);
    let every_character = "abcdefghijklmnopqrstuvwxyz0123456789._-";
    let widest_subject = "é".repeat(shared::MAX_SUBJECT_BYTES / 2);
    let cases = [
        (longest_purpose.as_str(), "s"),
        (every_character, "Zoë & co/?#=+ 🎉"),
        ("x", widest_subject.as_str()),
    ];
    for (purpose, subject) in cases {
        let token = app.issue_with(&[("purpose", purpose), ("subject", subject)]).await.token;
        let claims = claims_of(&token);
        assert_eq!((&claims["purpose"], &claims["sub"]), (&json!(purpose), &json!(subject)));
        assert!(app.validate_for(&token, Some(purpose), Some(subject)).await.is_valid);
    }
}

#[tokio::test]
async fn a_query_parameter_given_twice_is_a_400() {
    let app = TestApp::spawn().await;
    for (query, name) in [
        ("purpose=a&purpose=b&subject=s", "purpose"),
        ("purpose=a&subject=s&subject=t", "subject"),
        ("purpose=a&subject=s&supersede=true&supersede=false", "supersede"),
        ("ttl=60&ttl=604800", "ttl"),
    ] {
        let response = app.get(&format!("/tokens?{query}")).await;
        let message = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(message.contains(name), "{query}: {message}");
    }
}

#[tokio::test]
async fn a_body_that_is_a_json_array_is_a_400_and_consumes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.issue_with(&BOUND).await.token;
    let bodies = [json!([token]), json!([token, PURPOSE, SUBJECT])];
    for path in ["/tokens", "/tokens/status", "/tokens/revoke"] {
        for body in &bodies {
            let response = app.post_json(path, body).await;
            assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        }
    }
    assert!(app.validate_for(&token, Some(PURPOSE), Some(SUBJECT)).await.is_valid);
}

#[tokio::test]
async fn a_validation_naming_a_purpose_or_subject_that_is_not_a_string_is_a_400() {
    let app = TestApp::spawn().await;
    let token = app.issue_with(&BOUND).await.token;
    let bodies = [
        (
            json!({"token": token, "purpose": 5, "subject": SUBJECT}),
            "invalid type: integer `5`, expected a string, at line 1 column ",
        ),
        (
            json!({"token": token, "purpose": [PURPOSE], "subject": SUBJECT}),
            "invalid type: sequence, expected a string, at line 1 column ",
        ),
        (
            json!({"token": token, "purpose": PURPOSE, "subject": {"id": SUBJECT}}),
            "invalid type: map, expected a string, at line 1 column ",
        ),
    ];
    for (body, detail) in &bodies {
        let response = app.post_json("/tokens", body).await;
        let message = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        let prefix = format!(r#"the body must be JSON of the form {{"token": "<JWT>"}} ({detail}"#);
        assert!(message.starts_with(&prefix), "{body}: {message}");
    }
    // null is absent: the token was issued with a purpose, so this caller is the wrong one.
    let response = app
        .post_json("/tokens", &json!({"token": token, "purpose": null, "subject": SUBJECT}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<ValidateResponse>().await.unwrap(), refused(Reason::WrongPurpose));
    assert!(app.validate_for(&token, Some(PURPOSE), Some(SUBJECT)).await.is_valid);
}

#[tokio::test]
async fn status_and_revoke_refuse_malformed_bodies_and_other_methods() {
    let app = TestApp::spawn().await;
    for path in ["/tokens/status", "/tokens/revoke"] {
        for body in [json!({}), json!({"token": 42}), json!({"Token": "t"}), json!("t")] {
            let response = app.post_json(path, &body).await;
            let message = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
            assert!(
                message.starts_with(r#"the body must be JSON of the form {"token": "<JWT>"} ("#),
                "{path} {body}: {message}"
            );
        }
        let get = app.get(path).await;
        assert_eq!(get.headers()["allow"], "POST");
        assert_error(get, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn forged_malformed_and_expired_tokens_are_answered_without_asking_the_store() {
    let app = TestApp::spawn_on(Backend::Unreachable).await;
    // A token that needs the store gets 503: the store really cannot be reached.
    let claims = json!({"uuid": uuid::Uuid::new_v4(), "iat": NOW, "exp": NOW + 60, "purpose": PURPOSE, "sub": SUBJECT});
    let needs_store = unknown_token(claims.clone());
    for path in ["/tokens/status", "/tokens/revoke"] {
        let response = app.post_json(path, &json!({"token": needs_store})).await;
        assert_eq!(response.headers()["retry-after"], "1");
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    let other_key = sign(&hs256(), &claims, b"another-key-another-key-another-k");
    let cases = [
        (forge(&needs_store), invalid(Reason::InvalidSignature)),
        (other_key, invalid(Reason::InvalidSignature)),
        ("abc".to_owned(), invalid(Reason::MalformedToken)),
        (String::new(), invalid(Reason::MalformedToken)),
    ];
    for (token, expected) in &cases {
        assert_eq!(app.status(token).await, *expected, "{token:?}");
        assert_eq!(app.revoke(token).await, *expected, "{token:?}");
        assert_eq!(app.validate(token).await.reason, expected.reason, "{token:?}");
    }
    // An expired token is answered from its exp alone.
    let expired =
        unknown_token(json!({"uuid": uuid::Uuid::new_v4(), "iat": NOW - 120, "exp": NOW - 60}));
    let standing_expired = standing(TokenState::Expired, NOW - 60, None, None);
    assert_eq!(app.status(&expired).await, standing_expired);
    assert_eq!(app.revoke(&expired).await, standing_expired);
    assert_eq!(app.validate(&expired).await, refused(Reason::Expired));
    // A wrong purpose or subject is refused before the store is asked.
    let wrong = app.validate_for(&needs_store, Some("email-change"), Some(SUBJECT)).await;
    assert_eq!(wrong, refused(Reason::WrongPurpose));
    let wrong = app.validate_for(&needs_store, Some(PURPOSE), Some("user-43")).await;
    assert_eq!(wrong, refused(Reason::WrongSubject));
}

#[tokio::test]
async fn a_subject_that_is_not_utf_8_is_a_400_not_a_replacement_character() {
    let app = TestApp::spawn().await;
    for query in
        ["purpose=reset&subject=user%FFa", "purpose=reset&subject=%F0%9F", "purpose=%FF&subject=a"]
    {
        let response = app.get(&format!("/tokens?{query}")).await;
        let message = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert_eq!(message, "the query string must be percent-encoded UTF-8", "{query}");
    }
}

#[tokio::test]
async fn the_longest_subject_of_escaped_characters_issues_a_token_that_validates() {
    let app = TestApp::spawn().await;
    let subject: String = std::iter::repeat_n('\u{1}', shared::MAX_SUBJECT_BYTES).collect();
    let purpose = "p".repeat(shared::MAX_PURPOSE_CHARS);
    let token =
        app.issue_with(&[("purpose", purpose.as_str()), ("subject", subject.as_str())]).await.token;
    assert!(token.len() > 2_000, "{}", token.len());
    assert!(app.validate_for(&token, Some(&purpose), Some(&subject)).await.is_valid);
}
