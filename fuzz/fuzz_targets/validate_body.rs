//! Arbitrary bytes as the body of `POST /tokens`, through the real router.
//!
//! Every answer must be a 200, 400 or 413 in the one `ValidateResponse` shape, never a 5xx,
//! never `isValid: true` (no token the fuzzer can make is both genuine and unused), and a 200
//! only with a token reason.

#![no_main]

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use shared::{Reason, ValidateResponse};
use token_service_fuzz::harness;
use tower::ServiceExt;

fuzz_target!(|data: &[u8]| {
    let h = harness();
    h.runtime.block_on(async {
        let request = Request::post("/tokens")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(data.to_vec()))
            .unwrap();
        let response = h.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let answer: ValidateResponse = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{status}: body is not a ValidateResponse ({e}): {body:?}"));
        assert!(!answer.is_valid, "{status}: a fuzzed body validated: {answer:?}");
        let expected = match answer.reason {
            Some(
                Reason::AlreadyUsed
                | Reason::UnknownToken
                | Reason::Revoked
                | Reason::WrongPurpose
                | Reason::WrongSubject
                | Reason::Expired
                | Reason::InvalidSignature
                | Reason::MalformedToken,
            ) => StatusCode::OK,
            Some(Reason::BadRequest) => StatusCode::BAD_REQUEST,
            Some(Reason::PayloadTooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            other => panic!("{status}: unexpected reason {other:?}: {answer:?}"),
        };
        assert_eq!(status, expected, "{answer:?}");
    });
});
