//! The HMAC signing keys: a secret type that checks its length once and never prints itself,
//! and the key ring that lets the key be rotated without refusing outstanding tokens.
//!
//! Every key has a key id (`kid`, RFC 7515 section 4.1.4) derived from it one way, so tokens
//! name the key that signed them without revealing it: [`SigningKey::kid`].

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use std::fmt;

/// Shortest accepted key, in bytes. RFC 7518 section 3.2: "A key of the same size as the hash
/// output (for instance, 256 bits for "HS256") or larger MUST be used with this algorithm."
pub const MIN_KEY_BYTES: usize = 32;

/// A secret HS256 key of at least [`MIN_KEY_BYTES`] bytes, ready to sign and verify.
/// `Debug` prints `SigningKey(<redacted>)`.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    kid: String,
}

/// Length of a key id, in base64url characters (96 bits of `HMAC-SHA256(key, KID_LABEL)`).
pub const KID_CHARS: usize = 16;

/// The message whose HMAC under a key is that key's id. A MAC, not the key's plain hash, so the
/// id is useless for anything but naming the key: learning it reveals nothing a token's own
/// signature does not already.
const KID_LABEL: &[u8] = b"token-service key id v1";

/// Why a key was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key is shorter than [`MIN_KEY_BYTES`].
    #[error(
        "the signing key is {len} bytes; HS256 needs at least {MIN_KEY_BYTES} (RFC 7518 section 3.2)"
    )]
    TooShort {
        /// The refused key's length in bytes.
        len: usize,
    },
}

impl SigningKey {
    /// Accepts `bytes` as a key if it is at least [`MIN_KEY_BYTES`] long.
    ///
    /// # Errors
    /// [`KeyError::TooShort`] for a shorter key.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyError> {
        let too_short = KeyError::TooShort { len: bytes.len() };
        if bytes.len() < MIN_KEY_BYTES {
            return Err(too_short);
        }
        // jsonwebtoken refuses only empty secrets, which the length check already excludes.
        let encoding = EncodingKey::from_secret(bytes).map_err(|_| too_short.clone())?;
        let decoding = DecodingKey::from_secret(bytes).map_err(|_| too_short.clone())?;
        let mac = jsonwebtoken::crypto::sign(KID_LABEL, &encoding, Algorithm::HS256)
            .map_err(|_| too_short)?;
        let kid = mac.chars().take(KID_CHARS).collect();
        Ok(Self { encoding, decoding, kid })
    }

    /// This key's id: the first [`KID_CHARS`] base64url characters of
    /// `HMAC-SHA256(key, "token-service key id v1")`. Stable for a key, different for another.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The keys a service holds: the current one, which signs every new token, and previous ones,
/// which only verify tokens issued before a rotation. A token names its key by `kid`; a `kid`
/// that is not in the ring fails as an invalid signature, and a token without one (issued
/// before key ids) is checked against every key.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring with `current` only.
    pub fn new(current: SigningKey) -> Self {
        Self { current, previous: Vec::new() }
    }

    /// Adds verification-only keys (from before a rotation). A previous key equal to the
    /// current one, or to another previous one, is kept once.
    #[must_use]
    pub fn with_previous(mut self, keys: impl IntoIterator<Item = SigningKey>) -> Self {
        for key in keys {
            if key.kid != self.current.kid && self.previous.iter().all(|k| k.kid != key.kid) {
                self.previous.push(key);
            }
        }
        self
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Every key, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// The key whose id is `kid`, current or previous.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.all().find(|k| k.kid == kid)
    }

    /// The ids of every key, current first.
    pub fn kids(&self) -> Vec<&str> {
        self.all().map(SigningKey::kid).collect()
    }
}

impl From<SigningKey> for KeyRing {
    fn from(current: SigningKey) -> Self {
        Self::new(current)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.kid)
    }
}

/// A secret given as text (a key on the command line or in the environment): `Debug` prints
/// `Secret(<redacted>)`, so a configuration can be logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself; only for parsing it into a key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_shorter_than_32_bytes_is_refused() {
        assert_eq!(SigningKey::parse(&[7; 31]).unwrap_err(), KeyError::TooShort { len: 31 });
        assert_eq!(SigningKey::parse(&[]).unwrap_err(), KeyError::TooShort { len: 0 });
        assert!(SigningKey::parse(&[7; 32]).is_ok());
    }

    #[test]
    fn a_key_id_is_stable_per_key_and_does_not_contain_the_key() {
        let a = SigningKey::parse(b"0123456789abcdef0123456789abcdef").unwrap();
        let again = SigningKey::parse(b"0123456789abcdef0123456789abcdef").unwrap();
        let b = SigningKey::parse(b"fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(a.kid(), again.kid());
        assert_ne!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), KID_CHARS);
        assert!(a.kid().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(!a.kid().contains("0123"), "{}", a.kid());
    }

    #[test]
    fn a_key_ring_finds_current_and_previous_keys_by_id_only() {
        let current = SigningKey::parse(&[1; 32]).unwrap();
        let previous = SigningKey::parse(&[2; 32]).unwrap();
        let stranger = SigningKey::parse(&[3; 32]).unwrap();
        let ring = KeyRing::new(current.clone()).with_previous([
            previous.clone(),
            current.clone(),
            previous.clone(),
        ]);
        assert_eq!(ring.kids(), [current.kid(), previous.kid()]);
        assert_eq!(ring.find(previous.kid()).unwrap().kid(), previous.kid());
        assert_eq!(ring.current().kid(), current.kid());
        assert!(ring.find(stranger.kid()).is_none());
        assert!(ring.find("").is_none());
    }

    #[test]
    fn a_key_never_prints_itself() {
        let key = SigningKey::parse(b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(format!("{key:?}"), format!("SigningKey({}, <redacted>)", key.kid()));
    }
}
