//! Arbitrary UTF-8 strings given to `TokenService::validate` directly.
//!
//! None may validate (the one genuine seed token is used at start-up), none may reach a store
//! failure, and none may panic.

#![no_main]

use backend::store::AttemptId;
use backend::tokens::ValidateError;
use libfuzzer_sys::fuzz_target;
use token_service_fuzz::harness;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let h = harness();
    let attempt = AttemptId::generate();
    match h.runtime.block_on(h.service.validate(token, &attempt)) {
        Ok(valid) => panic!("a fuzzed token validated: {valid:?}"),
        Err(ValidateError::Store(e)) => panic!("a fuzzed token broke the store: {e:?}"),
        Err(
            ValidateError::AlreadyUsed { .. }
            | ValidateError::UnknownToken
            | ValidateError::Revoked { .. }
            | ValidateError::Expired
            | ValidateError::InvalidSignature
            | ValidateError::Malformed(_)
            | ValidateError::WrongPurpose
            | ValidateError::WrongSubject,
        ) => {}
    }
});
