//! The two use cases: issue a one-time token, and validate (consume) one.
//!
//! A token is a compact JWS (RFC 7515) signed with HS256 (RFC 7518 section 3.2) whose claims are
//! `uuid` (a random UUID v4, the token's identity), `iat` and `exp` (epoch seconds, RFC 7519
//! sections 4.1.6 and 4.1.4). Its record (uuid and expiry) is stored before the token is handed
//! out; validation checks the signature and claims first, following RFC 8725, and only then
//! consumes the record, so a forged token never reaches the store.
//!
//! Tokens carry the `kid` (RFC 7515 section 4.1.4) of the key that signed them; validation
//! verifies with that key from the [`KeyRing`], so a rotation leaves outstanding tokens valid
//! while their key is kept as a previous one.
//!
//! Nothing here knows about HTTP or AWS; time comes from an injected [`Clock`], and what
//! happens is told to an injected [`Observer`] (audit log, metrics).

use crate::clock::Clock;
use crate::keys::{KeyRing, SigningKey};
use crate::observe::{Event, NoObserver, Observer};
use crate::store::{
    AttemptId, Consumed, Pair, Revoked, State, StoreError, TokenRecord, TokenStore,
};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// Default token lifetime: 8 hours, in seconds.
pub const DEFAULT_LIFETIME_SECS: u64 = 8 * 60 * 60;
/// Default longest lifetime a caller may ask for: 7 days, in seconds.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;
/// Upper bound of any configured maximum lifetime: 10 years, in seconds. Keeps every `exp`
/// representable (as `i64` and as an RFC 3339 date) so no configuration can make issuing fail
/// after a record was stored.
pub const LIFETIME_CEILING_SECS: u64 = 10 * 366 * 24 * 60 * 60;
/// Longest token accepted for validation, in bytes. An unbound token is about 150 bytes; the
/// longest one this service can issue (a 256-byte subject of control characters, each escaped
/// as `\u00XX` in the claims, and a 64-character purpose) is about 2,300.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Default replay window: for 10 minutes after a token's use, seconds, a retry by the attempt
/// that used it gets that success again.
pub const DEFAULT_REPLAY_WINDOW_SECS: u64 = 10 * 60;

/// The claims of a token (RFC 7519 section 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The token's identity: a random UUID v4, the key of its stored record.
    pub uuid: Uuid,
    /// Issued at, epoch seconds (RFC 7519 section 4.1.6).
    pub iat: i64,
    /// Expiration time, epoch seconds (RFC 7519 section 4.1.4): valid while `now < exp`.
    pub exp: i64,
    /// Not before, epoch seconds (RFC 7519 section 4.1.5). Never issued; honoured if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Subject (RFC 7519 section 4.1.2): the opaque id of whom the token is for, 1 to
    /// [`shared::MAX_SUBJECT_BYTES`] bytes; only when issued with one. `null` is malformed,
    /// not absent.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Purpose, a private claim (RFC 7519 section 4.3) named `purpose`: what the token may be
    /// used for, 1 to 64 characters of `[a-z0-9._-]`; only when issued with one. `null` is
    /// malformed, not absent.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// An optional claim that, when present, must be a string: `null` does not mean "absent" (a
/// token signed with `"purpose": null` must not pass as one issued without a purpose).
fn present<'de, D: serde::Deserializer<'de>>(claim: D) -> Result<Option<String>, D::Error> {
    String::deserialize(claim).map(Some)
}

/// What to issue: all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueOptions {
    /// Lifetime in seconds; default: the configured default lifetime.
    pub ttl: Option<u64>,
    /// The purpose to bind (`purpose` claim); see [`shared::check_purpose`].
    pub purpose: Option<String>,
    /// The subject to bind (`sub` claim); see [`shared::check_subject`].
    pub subject: Option<String>,
    /// Revoke every outstanding unused token of the same purpose and subject (both required).
    pub supersede: bool,
}

/// What the caller of a validation accepts the token for: the token's `purpose` and `sub`
/// must equal these (absent when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The purpose the caller accepts.
    pub purpose: Option<&'a str>,
    /// The subject the caller accepts.
    pub subject: Option<&'a str>,
}

/// Where a genuine token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Unused and unexpired.
    Unused,
    /// Used at `at`, epoch seconds.
    Used {
        /// When, epoch seconds.
        at: i64,
    },
    /// `exp` has passed.
    Expired,
    /// Revoked at `at`, epoch seconds.
    Revoked {
        /// When, epoch seconds.
        at: i64,
    },
}

/// A genuine token's claims and standing, from [`TokenService::status`] or
/// [`TokenService::revoke`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Its claims.
    pub claims: Claims,
    /// Where it stands (after the call).
    pub standing: Standing,
    /// Whether this call changed it (a revoke that revoked).
    pub changed: bool,
}

/// How long tokens live, in seconds: the default, and the most a caller may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    default: u64,
    max: u64,
}

impl Lifetimes {
    /// Lifetimes of `default` and at most `max` seconds.
    ///
    /// # Errors
    /// A message if `default` is 0 or greater than `max`, or `max` exceeds
    /// [`LIFETIME_CEILING_SECS`].
    pub fn new(default: u64, max: u64) -> Result<Self, String> {
        if max > LIFETIME_CEILING_SECS {
            return Err(format!(
                "the maximum lifetime ({max} s) must be at most {LIFETIME_CEILING_SECS} s (10 years)"
            ));
        }
        if default == 0 || default > max {
            return Err(format!(
                "the default lifetime ({default} s) must be between 1 s and the maximum ({max} s)"
            ));
        }
        Ok(Self { default, max })
    }

    /// The default lifetime, seconds.
    pub fn default_secs(&self) -> u64 {
        self.default
    }

    /// The longest lifetime, seconds.
    pub fn max_secs(&self) -> u64 {
        self.max
    }
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self { default: DEFAULT_LIFETIME_SECS, max: DEFAULT_MAX_LIFETIME_SECS }
    }
}

/// A token just issued and stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The compact JWS to hand to the user.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("claims", &self.claims)
            .finish()
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The requested lifetime is outside `1..=max` seconds.
    #[error("ttl must be a whole number of seconds from 1 to {max}")]
    LifetimeOutOfRange {
        /// The longest lifetime allowed, seconds.
        max: u64,
    },
    /// Purpose or subject out of range, or `supersede` without both; the text says which.
    #[error("{0}")]
    BadBinding(String),
    /// The record could not be stored, so no token was handed out.
    #[error(transparent)]
    Store(StoreError),
}

/// Why a token was not accepted. Every variant but `Store` is the token's fault.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Genuine and unexpired, but used at `used_at` (epoch seconds): by another attempt, or by
    /// this one longer ago than the replay window.
    #[error("Token has already been used")]
    AlreadyUsed {
        /// When it was used, epoch seconds.
        used_at: i64,
        /// The attempt that used it is this one (a retry after the replay window), so this is
        /// not a reuse by someone else.
        own_attempt: bool,
    },
    /// Its `exp` has passed.
    #[error("Token has expired")]
    Expired,
    /// The signature does not verify with our key: forged or altered.
    #[error("Token signature is invalid")]
    InvalidSignature,
    /// Not a well-formed HS256 JWT with our claims; the text says what is wrong.
    #[error("Token is malformed: {0}")]
    Malformed(&'static str),
    /// Genuine and unexpired, but the store has no record of it (lost, or restored from an older
    /// backup).
    #[error("Token is not known to this service")]
    UnknownToken,
    /// Revoked at `revoked_at` (epoch seconds) before it was used.
    #[error("Token has been revoked")]
    Revoked {
        /// When it was revoked, epoch seconds.
        revoked_at: i64,
    },
    /// Issued for another purpose than the caller accepts; not consumed.
    #[error("Token was issued for another purpose")]
    WrongPurpose,
    /// Issued for another subject than the caller accepts; not consumed.
    #[error("Token was issued for another subject")]
    WrongSubject,
    /// The store could not be asked, or could not confirm the outcome.
    #[error(transparent)]
    Store(StoreError),
}

/// A token accepted by [`TokenService::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// Its claims.
    pub claims: Claims,
    /// `Some(used_at)` (epoch seconds) when this repeats the success of the same attempt id
    /// earlier, within the replay window; `None` when the token was used by this call.
    pub replayed: Option<i64>,
}

/// Issues and validates tokens.
pub struct TokenService {
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    lifetimes: Lifetimes,
    replay_window: i64,
    keys: KeyRing,
    validation: Validation,
    observer: Arc<dyn Observer>,
}

impl TokenService {
    /// A service signing with `key`, keeping records in `store`, reading time from `clock`.
    pub fn new(
        key: &SigningKey,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        lifetimes: Lifetimes,
    ) -> Self {
        // Only HS256 (RFC 8725 section 3.1). Time claims are checked below against the injected
        // clock with zero leeway, so the library's own wall-clock checks are off.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp"]);
        let replay_window = DEFAULT_REPLAY_WINDOW_SECS as i64;
        let keys = KeyRing::new(key.clone());
        Self {
            store,
            clock,
            lifetimes,
            replay_window,
            keys,
            validation,
            observer: Arc::new(NoObserver),
        }
    }

    /// Signs with `keys.current()` and verifies with whichever key of `keys` a token's `kid`
    /// names, instead of the single key given to [`Self::new`].
    #[must_use]
    pub fn with_keys(mut self, keys: KeyRing) -> Self {
        self.keys = keys;
        self
    }

    /// Tells `observer` about every token issued, superseded, revoked, used, replayed and
    /// refused.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Sets the replay window, seconds: how long after a token's use a retry by the attempt
    /// that used it is answered as that attempt's success (never past the token's `exp`, which
    /// is checked first). 0 turns replays off.
    #[must_use]
    pub fn with_replay_window(mut self, seconds: u64) -> Self {
        self.replay_window = i64::try_from(seconds).unwrap_or(i64::MAX);
        self
    }

    /// Whether the store can take writes now (readiness).
    ///
    /// # Errors
    /// The store's reason why not.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.store.ready().await
    }

    /// The lifetimes this service issues with.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Issues a token living `ttl` seconds (default: the configured default lifetime). The
    /// record is durably stored before the token is returned.
    ///
    /// # Errors
    /// As [`TokenService::issue_with`].
    pub async fn issue(&self, ttl: Option<u64>) -> Result<Issued, IssueError> {
        self.issue_with(IssueOptions { ttl, ..IssueOptions::default() }).await
    }

    /// Issues a token as `options` say: lifetime, purpose (`purpose` claim), subject (`sub`
    /// claim) and whether it supersedes the pair's outstanding tokens. The record is durably
    /// stored (and the superseded ones revoked) before the token is returned.
    ///
    /// # Errors
    /// [`IssueError::LifetimeOutOfRange`] for `ttl` outside `1..=max`;
    /// [`IssueError::BadBinding`] for a purpose or subject out of range or `supersede` without
    /// both; [`IssueError::Store`] if the record could not be stored (then no token exists).
    pub async fn issue_with(&self, options: IssueOptions) -> Result<Issued, IssueError> {
        let ttl = options.ttl.unwrap_or(self.lifetimes.default);
        if ttl == 0 || ttl > self.lifetimes.max {
            return Err(IssueError::LifetimeOutOfRange { max: self.lifetimes.max });
        }
        let bad = IssueError::BadBinding;
        options.purpose.as_deref().map(shared::check_purpose).transpose().map_err(bad)?;
        options.subject.as_deref().map(shared::check_subject).transpose().map_err(bad)?;
        let pair = match (&options.purpose, &options.subject) {
            (Some(purpose), Some(subject)) => {
                Some(Pair { purpose: purpose.clone(), subject: subject.clone() })
            }
            _ if options.supersede => {
                return Err(bad("supersede=true needs both purpose and subject".into()));
            }
            _ => None,
        };
        let iat = self.clock.now();
        let claims = Claims {
            uuid: Uuid::new_v4(),
            iat,
            exp: iat + ttl as i64,
            nbf: None,
            sub: options.subject,
            purpose: options.purpose,
        };
        let key = self.keys.current();
        let header = Header {
            typ: Some("JWT".into()),
            kid: Some(key.kid().to_owned()),
            ..Header::new(Algorithm::HS256)
        };
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| IssueError::Store(StoreError::Internal(e.into())))?;
        let record = TokenRecord { uuid: claims.uuid, expiry: claims.exp, pair };
        let inserted =
            self.store.insert(&record, options.supersede, iat).await.map_err(IssueError::Store)?;
        self.observer.observe(&Event::Issued { claims: &claims, at: iat });
        for &uuid in &inserted.superseded {
            self.observer.observe(&Event::Superseded { uuid, by: &claims, at: iat });
        }
        Ok(Issued { token, claims })
    }

    /// Validates `token` and, if it is genuine, unexpired and unused, consumes it as `attempt`:
    /// this call is its single use. A retry by the same `attempt` within the replay window
    /// (its answer was lost) is that success again, marked `replayed`. The caller accepts only
    /// tokens issued without purpose and subject; see [`TokenService::validate_bound`].
    ///
    /// # Errors
    /// As [`TokenService::validate_bound`].
    pub async fn validate(
        &self,
        token: &str,
        attempt: &AttemptId,
    ) -> Result<Validated, ValidateError> {
        self.validate_bound(token, Binding::default(), attempt).await
    }

    /// As [`TokenService::validate`], for a caller that accepts tokens bound to `binding`: a
    /// token whose `purpose` or `sub` differs is refused before the store is asked, so it stays
    /// usable by the right caller.
    ///
    /// # Errors
    /// A [`ValidateError`] saying why the token is refused, or `Store` if the store failed or
    /// cannot confirm the outcome.
    pub async fn validate_bound(
        &self,
        token: &str,
        binding: Binding<'_>,
        attempt: &AttemptId,
    ) -> Result<Validated, ValidateError> {
        // Signature and claims, then `exp`: an expired token's claims are genuine, so its uuid
        // reaches the audit log.
        let claims = match self.decode(token) {
            Ok(claims) => claims,
            Err(error) => {
                let at = self.clock.now();
                self.observer.observe(&Event::Refused { claims: None, attempt, error: &error, at });
                return Err(error);
            }
        };
        let now = self.clock.now();
        let outcome = if now >= claims.exp {
            Err(ValidateError::Expired)
        } else if claims.purpose.as_deref() != binding.purpose {
            Err(ValidateError::WrongPurpose)
        } else if claims.sub.as_deref() != binding.subject {
            Err(ValidateError::WrongSubject)
        } else {
            self.consume(claims.clone(), attempt, now).await
        };
        self.observer.observe(&match &outcome {
            Ok(Validated { replayed, .. }) => {
                Event::Used { claims: &claims, attempt, replayed: *replayed, at: now }
            }
            Err(error) => Event::Refused { claims: Some(&claims), attempt, error, at: now },
        });
        outcome
    }

    /// The store's half of [`Self::validate`], for verified `claims`.
    async fn consume(
        &self,
        claims: Claims,
        attempt: &AttemptId,
        now: i64,
    ) -> Result<Validated, ValidateError> {
        match self.store.consume(claims.uuid, attempt, now).await {
            Ok(Consumed::Consumed) => Ok(Validated { claims, replayed: None }),
            Ok(Consumed::Used { at, attempt: by })
                if by == *attempt && now < at.saturating_add(self.replay_window) =>
            {
                Ok(Validated { claims, replayed: Some(at) })
            }
            Ok(Consumed::Used { at, attempt: by }) => {
                Err(ValidateError::AlreadyUsed { used_at: at, own_attempt: by == *attempt })
            }
            Ok(Consumed::NotFound) => Err(ValidateError::UnknownToken),
            Ok(Consumed::Expired) => Err(ValidateError::Expired),
            Ok(Consumed::Revoked { at }) => Err(ValidateError::Revoked { revoked_at: at }),
            Err(e) => Err(ValidateError::Store(e)),
        }
    }

    /// Where `token` stands, changing nothing. A forged or malformed token never reaches the
    /// store; an expired one is reported from its `exp` alone.
    ///
    /// # Errors
    /// `InvalidSignature`/`Malformed` for a token that is not ours, `UnknownToken` for a
    /// genuine one without a record, `Store` if the store failed.
    pub async fn status(&self, token: &str) -> Result<Report, ValidateError> {
        let claims = self.decode(token)?;
        if self.clock.now() >= claims.exp {
            return Ok(Report { claims, standing: Standing::Expired, changed: false });
        }
        let stored = self.store.status(claims.uuid).await.map_err(ValidateError::Store)?;
        let standing = match stored.ok_or(ValidateError::UnknownToken)?.state {
            State::Unused => Standing::Unused,
            State::Used { at, .. } => Standing::Used { at },
            State::Revoked { at } => Standing::Revoked { at },
        };
        Ok(Report { claims, standing, changed: false })
    }

    /// Revokes `token` if it is genuine, unexpired and unused (racing a validation, exactly one
    /// of them wins); otherwise reports where it stands, unchanged.
    ///
    /// # Errors
    /// As [`TokenService::status`].
    pub async fn revoke(&self, token: &str) -> Result<Report, ValidateError> {
        let claims = self.decode(token)?;
        let now = self.clock.now();
        if now >= claims.exp {
            return Ok(Report { claims, standing: Standing::Expired, changed: false });
        }
        let revoked = self.store.revoke(claims.uuid, now).await.map_err(ValidateError::Store)?;
        let (standing, changed) = match revoked {
            Revoked::Revoked => {
                self.observer.observe(&Event::Revoked { claims: &claims, at: now });
                (Standing::Revoked { at: now }, true)
            }
            Revoked::NotFound => return Err(ValidateError::UnknownToken),
            Revoked::Expired => (Standing::Expired, false),
            Revoked::Used { at } => (Standing::Used { at }, false),
            Revoked::AlreadyRevoked { at } => (Standing::Revoked { at }, false),
        };
        Ok(Report { claims, standing, changed })
    }

    /// Checks signature and claims, all but `exp`, without touching the store.
    fn decode(&self, token: &str) -> Result<Claims, ValidateError> {
        use ValidateError::Malformed;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Malformed("longer than any token this service issues"));
        }
        // The key the token names (RFC 7515 section 4.1.4). A token without `kid` was issued
        // before key ids, by the current key or, after a rotation, a previous one: each is tried
        // in turn. A `kid` not in the ring is only ever compared with our own ids, never used to
        // fetch or build a key (RFC 8725 section 3.10).
        let keys = match jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid) {
            Some(kid) => vec![self.keys.find(&kid).ok_or(ValidateError::InvalidSignature)?],
            None => self.keys.all().collect(),
        };
        let mut decoded = Err(ErrorKind::InvalidSignature.into());
        for key in keys {
            decoded = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation);
            if !matches!(&decoded, Err(e) if *e.kind() == ErrorKind::InvalidSignature) {
                break;
            }
        }
        let data = decoded.map_err(|e: jsonwebtoken::errors::Error| match e.kind() {
            ErrorKind::InvalidSignature => ValidateError::InvalidSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::InvalidAlgorithmName => Malformed("the algorithm must be HS256"),
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                Malformed("claims must be uuid, iat and exp, and sub and purpose strings")
            }
            ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
                Malformed("unexpected aud, iss or sub claim")
            }
            _ => Malformed("not a compact JWS with a JSON header and claims"),
        })?;
        // RFC 8725 section 3.11: explicit typing; we only issue `JWT` (or no `typ`).
        if data.header.typ.as_deref().is_some_and(|typ| !typ.eq_ignore_ascii_case("JWT")) {
            return Err(Malformed("typ must be JWT"));
        }
        let (claims, now) = (data.claims, self.clock.now());
        if now >= claims.exp {
            // Expired is the answer for an expired token, whatever else is odd about it (the
            // order the checks had before `decode` was split from `verify`).
            return Ok(claims);
        }
        if claims.purpose.as_deref().is_some_and(|p| shared::check_purpose(p).is_err())
            || claims.sub.as_deref().is_some_and(|s| shared::check_subject(s).is_err())
        {
            return Err(Malformed("purpose or sub out of range"));
        }
        if claims.iat > now || claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(Malformed("issued in the future"));
        }
        if claims.exp - now > self.lifetimes.max as i64 || claims.iat >= claims.exp {
            return Err(Malformed("lifetime is longer than this service issues"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::embedded::EmbeddedStore;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const KEY: &[u8] = b"test-key-test-key-test-key-test-key!";

    struct Fixture {
        service: TokenService,
        /// The service's store, for other services over the same records.
        store: Arc<dyn TokenStore>,
        clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TokenStore> =
            Arc::new(EmbeddedStore::open(dir.path().join("t.redb")).unwrap());
        let clock = Arc::new(ManualClock::at(NOW));
        let key = SigningKey::parse(KEY).unwrap();
        let service = TokenService::new(&key, store.clone(), clock.clone(), Lifetimes::default());
        Fixture { service, store, clock, _dir: dir }
    }

    /// Signs `claims` with `header` and `key`, bypassing the service (an attacker's token, or
    /// ours with claims we would never issue).
    fn sign(header: serde_json::Value, claims: serde_json::Value, key: &[u8]) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let message =
            format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(message.as_bytes());
        format!("{message}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Signs `header` and `claims` with our key and expects the service to call it malformed.
    async fn assert_malformed(f: &Fixture, header: serde_json::Value, claims: serde_json::Value) {
        let token = sign(header.clone(), claims.clone(), KEY);
        let outcome = f.service.validate(&token, &AttemptId::generate()).await;
        assert!(
            matches!(outcome, Err(ValidateError::Malformed(_))),
            "{header} {claims}: {outcome:?}"
        );
    }

    fn hs256() -> serde_json::Value {
        json!({"alg": "HS256", "typ": "JWT"})
    }

    #[tokio::test]
    async fn an_issued_token_carries_uuid_iat_and_an_8_hour_exp() {
        let f = fixture();
        let issued = f.service.issue(None).await.unwrap();
        assert_eq!(issued.claims.iat, NOW);
        assert_eq!(issued.claims.exp, NOW + 8 * 3600);
        assert_eq!(issued.claims.uuid.get_version_num(), 4);
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!((header.alg, header.typ.as_deref()), (Algorithm::HS256, Some("JWT")));
    }

    #[tokio::test]
    async fn a_token_cannot_be_validated_twice() {
        let f = fixture();
        let issued = f.service.issue(None).await.unwrap();
        let first = f.service.validate(&issued.token, &AttemptId::generate()).await.unwrap();
        assert_eq!(first, Validated { claims: issued.claims, replayed: None });
        assert!(matches!(
            f.service.validate(&issued.token, &AttemptId::generate()).await,
            Err(ValidateError::AlreadyUsed { .. })
        ));
    }

    #[tokio::test]
    async fn a_token_is_valid_until_the_second_before_exp() {
        let f = fixture();
        let (a, b) =
            (f.service.issue(Some(60)).await.unwrap(), f.service.issue(Some(60)).await.unwrap());
        f.clock.set(NOW + 59);
        assert!(f.service.validate(&a.token, &AttemptId::generate()).await.is_ok());
        f.clock.set(NOW + 60);
        assert!(matches!(
            f.service.validate(&b.token, &AttemptId::generate()).await,
            Err(ValidateError::Expired)
        ));
    }

    #[test]
    fn lifetimes_must_be_ordered_and_below_the_ceiling() {
        assert!(Lifetimes::new(0, 60).is_err());
        assert!(Lifetimes::new(61, 60).is_err());
        assert!(Lifetimes::new(60, LIFETIME_CEILING_SECS + 1).is_err());
        assert!(Lifetimes::new(u64::MAX, u64::MAX).is_err());
        assert_eq!(
            Lifetimes::new(60, LIFETIME_CEILING_SECS).unwrap().max_secs(),
            LIFETIME_CEILING_SECS
        );
    }

    #[tokio::test]
    async fn a_lifetime_outside_1_to_max_is_refused() {
        let f = fixture();
        for ttl in [0, DEFAULT_MAX_LIFETIME_SECS + 1] {
            assert!(matches!(
                f.service.issue(Some(ttl)).await,
                Err(IssueError::LifetimeOutOfRange { max: DEFAULT_MAX_LIFETIME_SECS })
            ));
        }
        let longest = f.service.issue(Some(DEFAULT_MAX_LIFETIME_SECS)).await.unwrap();
        assert_eq!(longest.claims.exp, NOW + DEFAULT_MAX_LIFETIME_SECS as i64);
    }

    #[tokio::test]
    async fn a_tampered_payload_fails_the_signature_and_leaves_the_token_usable() {
        let f = fixture();
        let issued = f.service.issue(None).await.unwrap();
        let parts: Vec<&str> = issued.token.split('.').collect();
        let claims = json!({"uuid": issued.claims.uuid, "iat": NOW, "exp": NOW + 999_999});
        let forged = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
        assert!(matches!(
            f.service.validate(&forged, &AttemptId::generate()).await,
            Err(ValidateError::InvalidSignature)
        ));
        assert!(f.service.validate(&issued.token, &AttemptId::generate()).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_signed_with_another_key_is_refused() {
        let f = fixture();
        let issued = f.service.issue(None).await.unwrap();
        let claims = json!({"uuid": issued.claims.uuid, "iat": NOW, "exp": NOW + 60});
        let forged = sign(hs256(), claims, b"another-key-another-key-another-k");
        assert!(matches!(
            f.service.validate(&forged, &AttemptId::generate()).await,
            Err(ValidateError::InvalidSignature)
        ));
        assert!(f.service.validate(&issued.token, &AttemptId::generate()).await.is_ok());
    }

    #[tokio::test]
    async fn unsecured_and_substituted_algorithms_are_refused() {
        let f = fixture();
        let issued = f.service.issue(None).await.unwrap();
        let claims = B64
            .encode(json!({"uuid": issued.claims.uuid, "iat": NOW, "exp": NOW + 60}).to_string());
        for alg in ["none", "None", "HS384", "HS512", "RS256", "ES256"] {
            let header = B64.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
            for signature in ["", "c2ln"] {
                let token = format!("{header}.{claims}.{signature}");
                assert!(
                    matches!(
                        f.service.validate(&token, &AttemptId::generate()).await,
                        Err(ValidateError::Malformed(_))
                    ),
                    "alg {alg} signature {signature:?}"
                );
            }
        }
        assert!(f.service.validate(&issued.token, &AttemptId::generate()).await.is_ok());
    }

    #[tokio::test]
    async fn missing_or_mistyped_claims_are_malformed_even_when_signed_with_our_key() {
        let f = fixture();
        let uuid = Uuid::new_v4().to_string();
        let cases = [
            json!({"iat": NOW, "exp": NOW + 60}),
            json!({"uuid": uuid, "exp": NOW + 60}),
            json!({"uuid": uuid, "iat": NOW}),
            json!({"uuid": "not-a-uuid", "iat": NOW, "exp": NOW + 60}),
            json!({"uuid": uuid, "iat": NOW, "exp": (NOW + 60).to_string()}),
            json!({"uuid": uuid, "iat": NOW, "exp": 1.5e9}),
            json!({"uuid": 42, "iat": NOW, "exp": NOW + 60}),
        ];
        for claims in cases {
            assert_malformed(&f, hs256(), claims).await;
        }
    }

    #[tokio::test]
    async fn time_claims_from_the_future_or_too_far_out_are_refused() {
        let f = fixture();
        let uuid = Uuid::new_v4();
        let max = DEFAULT_MAX_LIFETIME_SECS as i64;
        let cases = [
            json!({"uuid": uuid, "iat": NOW + 1, "exp": NOW + 60}),
            json!({"uuid": uuid, "iat": NOW, "exp": NOW + 60, "nbf": NOW + 1}),
            json!({"uuid": uuid, "iat": NOW, "exp": NOW + max + 1}),
        ];
        for claims in cases {
            assert_malformed(&f, hs256(), claims).await;
        }
    }

    #[tokio::test]
    async fn a_genuine_token_whose_record_is_unknown_is_its_own_refusal() {
        let f = fixture();
        let token =
            sign(hs256(), json!({"uuid": Uuid::new_v4(), "iat": NOW, "exp": NOW + 60}), KEY);
        let outcome = f.service.validate(&token, &AttemptId::generate()).await;
        assert!(matches!(outcome, Err(ValidateError::UnknownToken)), "{outcome:?}");
    }

    #[tokio::test]
    async fn the_same_attempt_gets_its_success_again_within_the_replay_window_only() {
        let f = fixture();
        let issued = f.service.issue(None).await.unwrap();
        let (mine, other) = (AttemptId::generate(), AttemptId::generate());
        let first = f.service.validate(&issued.token, &mine).await.unwrap();
        assert_eq!(first.replayed, None);
        f.clock.advance(DEFAULT_REPLAY_WINDOW_SECS as i64 - 1);
        let again = f.service.validate(&issued.token, &mine).await.unwrap();
        assert_eq!(again, Validated { claims: issued.claims, replayed: Some(NOW) });
        let theirs = f.service.validate(&issued.token, &other).await;
        assert!(
            matches!(theirs, Err(ValidateError::AlreadyUsed { used_at: NOW, own_attempt: false })),
            "{theirs:?}"
        );
        f.clock.advance(1);
        let late = f.service.validate(&issued.token, &mine).await;
        let own =
            matches!(late, Err(ValidateError::AlreadyUsed { used_at: NOW, own_attempt: true }));
        assert!(own, "{late:?}");
    }

    #[tokio::test]
    async fn a_replay_is_never_answered_past_the_tokens_expiry() {
        let f = fixture();
        let issued = f.service.issue(Some(60)).await.unwrap();
        let mine = AttemptId::generate();
        f.service.validate(&issued.token, &mine).await.unwrap();
        f.clock.advance(60);
        let late = f.service.validate(&issued.token, &mine).await;
        assert!(matches!(late, Err(ValidateError::Expired)), "{late:?}");
    }

    fn bound(purpose: &str, subject: &str) -> IssueOptions {
        IssueOptions {
            purpose: Some(purpose.into()),
            subject: Some(subject.into()),
            ..IssueOptions::default()
        }
    }

    #[tokio::test]
    async fn purpose_and_subject_are_bound_as_claims_and_checked_before_the_store() {
        let f = fixture();
        let issued = f.service.issue_with(bound("password-reset", "user-42")).await.unwrap();
        assert_eq!(issued.claims.purpose.as_deref(), Some("password-reset"));
        assert_eq!(issued.claims.sub.as_deref(), Some("user-42"));
        let attempt = AttemptId::generate();
        let wrong = [
            (Binding::default(), "none"),
            (Binding { purpose: Some("invite"), subject: Some("user-42") }, "purpose"),
            (Binding { purpose: Some("password-reset"), subject: None }, "no subject"),
            (Binding { purpose: Some("password-reset"), subject: Some("user-43") }, "subject"),
        ];
        for (binding, what) in wrong {
            let refused = f.service.validate_bound(&issued.token, binding, &attempt).await;
            let expected = if what == "purpose" || what == "none" {
                matches!(refused, Err(ValidateError::WrongPurpose))
            } else {
                matches!(refused, Err(ValidateError::WrongSubject))
            };
            assert!(expected, "{what}: {refused:?}");
        }
        // None of them consumed it.
        let right = Binding { purpose: Some("password-reset"), subject: Some("user-42") };
        let valid = f.service.validate_bound(&issued.token, right, &attempt).await.unwrap();
        assert_eq!(valid.replayed, None);
    }

    #[tokio::test]
    async fn a_token_without_purpose_is_refused_to_a_caller_that_names_one() {
        let f = fixture();
        let issued = f.service.issue(None).await.unwrap();
        let binding = Binding { purpose: Some("invite"), subject: None };
        let refused =
            f.service.validate_bound(&issued.token, binding, &AttemptId::generate()).await;
        assert!(matches!(refused, Err(ValidateError::WrongPurpose)), "{refused:?}");
    }

    #[tokio::test]
    async fn bad_purposes_and_subjects_and_a_lone_supersede_are_refused_at_issue() {
        let f = fixture();
        let cases = [
            bound("Password", "user"),
            bound(&"p".repeat(65), "user"),
            bound("reset", &"s".repeat(257)),
            bound("reset", ""),
            IssueOptions {
                purpose: Some("reset".into()),
                supersede: true,
                ..IssueOptions::default()
            },
        ];
        for options in cases {
            let refused = f.service.issue_with(options.clone()).await;
            assert!(matches!(refused, Err(IssueError::BadBinding(_))), "{options:?}: {refused:?}");
        }
    }

    #[tokio::test]
    async fn out_of_range_purpose_or_sub_claims_are_malformed_even_when_signed_with_our_key() {
        let f = fixture();
        let uuid = Uuid::new_v4();
        let cases = [
            json!({"uuid": uuid, "iat": NOW, "exp": NOW + 60, "purpose": "UPPER"}),
            json!({"uuid": uuid, "iat": NOW, "exp": NOW + 60, "purpose": ""}),
            json!({"uuid": uuid, "iat": NOW, "exp": NOW + 60, "purpose": 7}),
            json!({"uuid": uuid, "iat": NOW, "exp": NOW + 60, "sub": "s".repeat(257)}),
            json!({"uuid": uuid, "iat": NOW, "exp": NOW + 60, "sub": ["a"]}),
        ];
        for claims in cases {
            assert_malformed(&f, hs256(), claims).await;
        }
    }

    #[tokio::test]
    async fn status_reads_a_token_without_using_it() {
        let f = fixture();
        let issued = f.service.issue_with(bound("invite", "team-7")).await.unwrap();
        for _ in 0..3 {
            let report = f.service.status(&issued.token).await.unwrap();
            assert_eq!((report.standing, report.changed), (Standing::Unused, false));
            assert_eq!(report.claims.purpose.as_deref(), Some("invite"));
        }
        f.clock.advance(5);
        let right = Binding { purpose: Some("invite"), subject: Some("team-7") };
        f.service.validate_bound(&issued.token, right, &AttemptId::generate()).await.unwrap();
        let report = f.service.status(&issued.token).await.unwrap();
        assert_eq!(report.standing, Standing::Used { at: NOW + 5 });
        f.clock.set(issued.claims.exp);
        assert_eq!(f.service.status(&issued.token).await.unwrap().standing, Standing::Expired);
    }

    #[tokio::test]
    async fn status_of_forged_or_unknown_tokens_is_an_error_naming_why() {
        let f = fixture();
        let unknown =
            sign(hs256(), json!({"uuid": Uuid::new_v4(), "iat": NOW, "exp": NOW + 60}), KEY);
        assert!(matches!(f.service.status(&unknown).await, Err(ValidateError::UnknownToken)));
        let forged = sign(
            hs256(),
            json!({"uuid": Uuid::new_v4(), "iat": NOW, "exp": NOW + 60}),
            b"another-key-another-key-another-k",
        );
        assert!(matches!(f.service.status(&forged).await, Err(ValidateError::InvalidSignature)));
        assert!(matches!(f.service.status("a.b.c").await, Err(ValidateError::Malformed(_))));
    }

    #[tokio::test]
    async fn revoke_stops_an_unused_token_and_reports_the_others_unchanged() {
        let f = fixture();
        let (unused, used) =
            (f.service.issue(None).await.unwrap(), f.service.issue(None).await.unwrap());
        f.service.validate(&used.token, &AttemptId::generate()).await.unwrap();
        f.clock.advance(3);
        let revoked = f.service.revoke(&unused.token).await.unwrap();
        assert_eq!((revoked.standing, revoked.changed), (Standing::Revoked { at: NOW + 3 }, true));
        let again = f.service.revoke(&unused.token).await.unwrap();
        assert_eq!((again.standing, again.changed), (Standing::Revoked { at: NOW + 3 }, false));
        let refused = f.service.validate(&unused.token, &AttemptId::generate()).await;
        assert!(
            matches!(refused, Err(ValidateError::Revoked { revoked_at }) if revoked_at == NOW + 3)
        );
        let report = f.service.revoke(&used.token).await.unwrap();
        assert_eq!((report.standing, report.changed), (Standing::Used { at: NOW }, false));
    }

    #[tokio::test]
    async fn a_superseding_issue_revokes_the_earlier_tokens_of_its_pair() {
        let f = fixture();
        let first = f.service.issue_with(bound("password-reset", "user-42")).await.unwrap();
        let other = f.service.issue_with(bound("password-reset", "user-43")).await.unwrap();
        f.clock.advance(1);
        let newest = f
            .service
            .issue_with(IssueOptions { supersede: true, ..bound("password-reset", "user-42") })
            .await
            .unwrap();
        assert_eq!(
            f.service.status(&first.token).await.unwrap().standing,
            Standing::Revoked { at: NOW + 1 }
        );
        assert_eq!(f.service.status(&other.token).await.unwrap().standing, Standing::Unused);
        assert_eq!(f.service.status(&newest.token).await.unwrap().standing, Standing::Unused);
    }

    #[tokio::test]
    async fn unknown_crit_headers_and_foreign_typ_are_refused() {
        let f = fixture();
        let claims = json!({"uuid": Uuid::new_v4(), "iat": NOW, "exp": NOW + 60});
        let headers = [
            json!({"alg": "HS256", "crit": ["exp"], "exp": 1}),
            json!({"alg": "HS256", "crit": []}),
            json!({"alg": "HS256", "typ": "at+jwt"}),
        ];
        for header in headers {
            assert_malformed(&f, header, claims.clone()).await;
        }
    }

    /// A service over `f`'s store and clock with `keys`.
    fn service_with(f: &Fixture, keys: KeyRing) -> TokenService {
        TokenService::new(keys.current(), f.store.clone(), f.clock.clone(), Lifetimes::default())
            .with_keys(keys)
    }

    #[tokio::test]
    async fn an_issued_token_names_its_key_by_kid() {
        let f = fixture();
        let issued = f.service.issue(None).await.unwrap();
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(SigningKey::parse(KEY).unwrap().kid()));
    }

    #[tokio::test]
    async fn a_token_issued_before_a_rotation_validates_once_while_its_key_is_kept() {
        let f = fixture();
        let (a, b) = (SigningKey::parse(KEY).unwrap(), SigningKey::parse(&[9; 32]).unwrap());
        let before = service_with(&f, KeyRing::new(a.clone()));
        let (kept, dropped) =
            (before.issue(None).await.unwrap(), before.issue(None).await.unwrap());

        let rotated = service_with(&f, KeyRing::new(b.clone()).with_previous([a]));
        let new = rotated.issue(None).await.unwrap();
        let header = jsonwebtoken::decode_header(&new.token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(b.kid()));
        assert!(rotated.validate(&kept.token, &AttemptId::generate()).await.is_ok());
        let again = rotated.validate(&kept.token, &AttemptId::generate()).await;
        assert!(
            matches!(again, Err(ValidateError::AlreadyUsed { used_at: NOW, own_attempt: false })),
            "{again:?}"
        );

        let only_b = service_with(&f, KeyRing::new(b));
        let refused = only_b.validate(&dropped.token, &AttemptId::generate()).await;
        assert!(matches!(refused, Err(ValidateError::InvalidSignature)), "{refused:?}");
        assert!(only_b.validate(&new.token, &AttemptId::generate()).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_without_kid_from_before_key_ids_validates_once_after_a_rotation() {
        let f = fixture();
        let (a, b) = (SigningKey::parse(KEY).unwrap(), SigningKey::parse(&[9; 32]).unwrap());
        let rotated = service_with(&f, KeyRing::new(b).with_previous([a]));
        let claims = |uuid: Uuid| json!({"uuid": uuid, "iat": NOW, "exp": NOW + 60});
        let (old, stranger) = (Uuid::new_v4(), Uuid::new_v4());
        for uuid in [old, stranger] {
            let record = TokenRecord { uuid, expiry: NOW + 60, pair: None };
            f.store.insert(&record, false, NOW).await.unwrap();
        }
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let token = sign(header.clone(), claims(old), KEY);
        assert!(rotated.validate(&token, &AttemptId::generate()).await.is_ok());
        let again = rotated.validate(&token, &AttemptId::generate()).await;
        assert!(
            matches!(again, Err(ValidateError::AlreadyUsed { used_at: NOW, own_attempt: false })),
            "{again:?}"
        );

        let forged = sign(header, claims(stranger), &[7; 32]);
        let refused = rotated.validate(&forged, &AttemptId::generate()).await;
        assert!(matches!(refused, Err(ValidateError::InvalidSignature)), "{refused:?}");
    }

    #[tokio::test]
    async fn an_unknown_kid_is_an_invalid_signature_even_when_signed_with_our_key() {
        let f = fixture();
        let claims = json!({"uuid": Uuid::new_v4(), "iat": NOW, "exp": NOW + 60});
        let token = sign(json!({"alg": "HS256", "typ": "JWT", "kid": "not-our-key"}), claims, KEY);
        let refused = f.service.validate(&token, &AttemptId::generate()).await;
        assert!(matches!(refused, Err(ValidateError::InvalidSignature)), "{refused:?}");
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        let f = fixture();
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for token in ["", ".", "..", "a.b.c", "a.b", "a.b.c.d", "\u{0}", "ä.ö.ü", long.as_str()]
        {
            assert!(
                matches!(
                    f.service.validate(token, &AttemptId::generate()).await,
                    Err(ValidateError::Malformed(_))
                ),
                "{token:?}"
            );
        }
    }
}
