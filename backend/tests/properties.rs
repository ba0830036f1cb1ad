//! Properties of the token logic ([`TokenService`] over the embedded store, on a
//! [`ManualClock`]), checked on generated inputs with proptest:
//!
//! - nothing but a token `issue` produced with our key is accepted: arbitrary strings, arbitrary
//!   claim sets signed with other keys, and single-byte edits of a genuine token are refused
//!   before the store is asked (so they are `Malformed` or `InvalidSignature`, never `AlreadyUsed`);
//! - a genuine token is accepted exactly once, at any time in `[iat, exp)`, and never outside it;
//!   refusals outside that window do not consume it.
//!
//! Case counts are kept small (the file runs in a few seconds on two cores); failing inputs are
//! shrunk and printed by proptest.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

use backend::clock::ManualClock;
use backend::keys::SigningKey;
use backend::store::embedded::EmbeddedStore;
use backend::tokens::{DEFAULT_MAX_LIFETIME_SECS, Lifetimes, TokenService, ValidateError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

const NOW: i64 = 1_800_000_000;
const KEY: &[u8] = b"property-test-key-property-test-key!";
const MAX: i64 = DEFAULT_MAX_LIFETIME_SECS as i64;

/// A service over a fresh embedded store, its clock, and a runtime to drive it.
struct Fixture {
    service: TokenService,
    clock: Arc<ManualClock>,
    runtime: tokio::runtime::Runtime,
    _data: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(data.path().join("t.redb")).unwrap());
        let clock = Arc::new(ManualClock::at(NOW));
        let key = SigningKey::parse(KEY).unwrap();
        let service = TokenService::new(&key, store, clock.clone(), Lifetimes::default());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Self { service, clock, runtime, _data: data }
    }

    fn issue(&self, ttl: u64) -> backend::tokens::Issued {
        self.runtime.block_on(self.service.issue(Some(ttl))).unwrap()
    }

    fn validate(&self, token: &str) -> Result<backend::tokens::Claims, ValidateError> {
        let attempt = backend::store::AttemptId::generate();
        self.runtime.block_on(self.service.validate(token, &attempt)).map(|valid| valid.claims)
    }

    /// Asserts that `token` (issued at `NOW`) is valid now exactly once.
    fn assert_valid_once(&self, token: &str) {
        self.clock.set(NOW);
        assert!(self.validate(token).is_ok(), "the genuine token was consumed or damaged");
        assert!(matches!(self.validate(token), Err(ValidateError::AlreadyUsed { .. })));
    }
}

/// Refused before the store: a forged or garbled token can neither consume nor probe a record.
fn refused_before_the_store(result: &Result<backend::tokens::Claims, ValidateError>) -> bool {
    matches!(result, Err(ValidateError::Malformed(_) | ValidateError::InvalidSignature))
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

#[test]
fn arbitrary_strings_are_never_accepted_and_never_reach_the_store() {
    let f = Fixture::new();
    let genuine = f.issue(3600);
    let jws_like = "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}";
    let strategy = prop_oneof![any::<String>(), "\\PC{0,1100}", jws_like];
    proptest!(config(512), |(token in strategy)| {
        let result = f.validate(&token);
        prop_assert!(refused_before_the_store(&result), "{token:?}: {result:?}");
    });
    f.assert_valid_once(&genuine.token);
}

/// A claim value: the right type in a plausible range, or something else.
fn time_claim() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => (NOW - 2 * MAX..NOW + 2 * MAX).prop_map(|t| json!(t)),
        1 => any::<i64>().prop_map(|t| json!(t)),
        1 => Just(json!(null)),
        1 => any::<String>().prop_map(|s| json!(s)),
    ]
}

#[test]
fn any_claims_signed_with_another_key_are_an_invalid_signature() {
    let f = Fixture::new();
    let genuine = f.issue(3600);
    let uuid = prop_oneof![Just(genuine.claims.uuid), any::<u128>().prop_map(Uuid::from_u128)];
    let claims = (uuid, time_claim(), time_claim(), proptest::option::of(time_claim()));
    let key =
        proptest::collection::vec(any::<u8>(), 0..80).prop_filter("not our key", |k| k != KEY);
    proptest!(config(256), |((uuid, iat, exp, nbf) in claims, key in key)| {
        let mut claims = json!({"uuid": uuid, "iat": iat, "exp": exp});
        if let Some(nbf) = nbf {
            claims["nbf"] = nbf;
        }
        let header = B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
        let message = format!("{header}.{}", B64.encode(claims.to_string()));
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(message.as_bytes());
        let token = format!("{message}.{}", B64.encode(mac.finalize().into_bytes()));
        let result = f.validate(&token);
        prop_assert!(matches!(result, Err(ValidateError::InvalidSignature)), "{claims}: {result:?}");
    });
    f.assert_valid_once(&genuine.token);
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum ByteEdit {
    FlipBit { at: usize, bit: u8 },
    Replace { at: usize, byte: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
}

impl ByteEdit {
    /// Applies the edit at `at` modulo the length; `None` if it changes nothing.
    fn apply(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out = bytes.to_vec();
        let len = bytes.len();
        match *self {
            Self::FlipBit { at, bit } => out[at % len] ^= 1 << (bit % 8),
            Self::Replace { at, byte } => out[at % len] = byte,
            Self::Insert { at, byte } => out.insert(at % (len + 1), byte),
            Self::Delete { at } => drop(out.remove(at % len)),
        }
        (out != bytes).then_some(out)
    }
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, bit)| ByteEdit::FlipBit { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| ByteEdit::Replace { at, byte }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| ByteEdit::Insert { at, byte }),
        any::<usize>().prop_map(|at| ByteEdit::Delete { at }),
    ]
}

#[test]
fn every_edit_of_a_genuine_token_is_refused_and_leaves_the_genuine_token_usable_once() {
    let f = Fixture::new();
    let genuine = f.issue(3600);
    let edits = proptest::collection::vec(byte_edit(), 1..4);
    proptest!(config(1024), |(edits in edits)| {
        let mut bytes = genuine.token.clone().into_bytes();
        for e in &edits {
            bytes = e.apply(&bytes).unwrap_or(bytes);
        }
        prop_assume!(bytes != genuine.token.as_bytes());
        // The API only carries strings; a byte sequence that is not UTF-8 is cut there.
        let token = String::from_utf8_lossy(&bytes);
        let result = f.validate(&token);
        prop_assert!(refused_before_the_store(&result), "{edits:?} -> {token:?}: {result:?}");
    });
    f.assert_valid_once(&genuine.token);
}

#[test]
fn an_issued_token_is_accepted_exactly_once_in_its_lifetime_and_never_outside_it() {
    let f = Fixture::new();
    let times = proptest::collection::vec(-2 * MAX..3 * MAX, 1..8);
    proptest!(config(256), |(ttl in 1..=MAX, offsets in times)| {
        f.clock.set(NOW);
        let issued = f.issue(u64::try_from(ttl).unwrap());
        prop_assert_eq!((issued.claims.iat, issued.claims.exp), (NOW, NOW + ttl));
        let mut used = false;
        // Validation times are offsets from iat, squeezed towards the interesting edges.
        for offset in offsets {
            let offset = match offset % 4 {
                0 => offset % (ttl + 1),
                1 => ttl - 1 + offset % 3,
                _ => offset,
            };
            f.clock.set(NOW + offset);
            let result = f.validate(&issued.token);
            if offset < 0 {
                prop_assert!(matches!(result, Err(ValidateError::Malformed(_))), "at {offset}: {result:?}");
            } else if offset >= ttl {
                prop_assert!(matches!(result, Err(ValidateError::Expired)), "at {offset}: {result:?}");
            } else if used {
                prop_assert!(matches!(result, Err(ValidateError::AlreadyUsed { .. })), "at {offset}: {result:?}");
            } else {
                prop_assert_eq!(result.unwrap(), issued.claims.clone());
                used = true;
            }
        }
        // Whatever happened before, inside its lifetime it now works only if it was never used.
        f.clock.set(NOW);
        let last = f.validate(&issued.token);
        prop_assert_eq!(last.is_ok(), !used, "{:?}", last);
    });
}
