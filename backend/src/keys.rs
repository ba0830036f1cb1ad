//! The HMAC signing key: a secret type that checks its length once and never prints itself.

use jsonwebtoken::{DecodingKey, EncodingKey};
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
}

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
        let decoding = DecodingKey::from_secret(bytes).map_err(|_| too_short)?;
        Ok(Self { encoding, decoding })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
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
    fn a_key_never_prints_itself() {
        let key = SigningKey::parse(b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }
}
