//! Reading a token's claims for people: the payload of a compact JWS (RFC 7515 section 7.1) is
//! base64url (RFC 4648 section 5, unpadded, RFC 7515 section 2) of a JSON object, readable by
//! anyone who holds the token.
//!
//! This is a decoding, NOT a verification: the signature is not checked (the key is the
//! server's alone), so the claims shown may have been written by anyone. Only the server can
//! say whether a token is genuine, and the UI says so beside them. Nothing here decides anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// The claims this service puts in its tokens, each optional so that any JWT's claims can be
/// shown (a missing one reads "none"). Other claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Claims {
    /// The token's id, a UUID.
    pub uuid: Option<String>,
    /// Issued at, epoch seconds (RFC 7519 section 4.1.6).
    pub iat: Option<i64>,
    /// Expires at, epoch seconds (RFC 7519 section 4.1.4).
    pub exp: Option<i64>,
    /// Subject (RFC 7519 section 4.1.2): the opaque id the token was issued for.
    pub sub: Option<String>,
    /// Purpose, this service's private claim (RFC 7519 section 4.3).
    pub purpose: Option<String>,
}

/// Decodes the claims of `token` (surrounding whitespace ignored) without checking anything
/// else: not the header, not the signature, not the times.
///
/// # Errors
/// A sentence for the user when `token` is not three dot-separated parts, its middle part is not
/// unpadded base64url, or that is not a JSON object with claims of the expected types (`iat` and
/// `exp` whole numbers, the others strings).
pub fn decode_claims(token: &str) -> Result<Claims, String> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [_, payload, _] = parts[..] else {
        return Err("not a JWT: a JWT is three parts separated by dots".to_owned());
    };
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "the claims (the middle part) are not base64url".to_owned())?;
    // Text, as `from_str`: the parser the rest of the UI uses (`from_slice` would be a second).
    let json = String::from_utf8(json).map_err(|_| "the claims are not UTF-8 text".to_owned())?;
    if !json.trim_start().starts_with('{') {
        return Err("the claims are not a JSON object".to_owned());
    }
    serde_json::from_str(&json).map_err(|e| {
        if e.is_data() {
            "the claims are not of the expected types (iat and exp numbers, the others strings)"
                .to_owned()
        } else {
            "the claims are not a JSON object".to_owned()
        }
    })
}

/// One line of the claims view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    /// The claim's name in the token, e.g. `exp`; also its test id (`claim-exp`).
    pub name: &'static str,
    /// What it means, e.g. `Expires`.
    pub label: &'static str,
    /// The raw value (epoch seconds for times), `None` when the token has no such claim.
    pub raw: Option<String>,
    /// The value for people (a time through `local_time`), or `none`.
    pub shown: String,
}

impl Claims {
    /// The lines of the claims view, in a fixed order (uuid, iat, exp, sub, purpose); times are
    /// given to `local_time` (epoch seconds in, text out).
    pub fn rows(&self, local_time: impl Fn(i64) -> String) -> Vec<ClaimRow> {
        let text = |name, label, value: &Option<String>| ClaimRow {
            name,
            label,
            raw: value.clone(),
            shown: value.clone().unwrap_or_else(|| "none".to_owned()),
        };
        let time = |name, label, value: Option<i64>| ClaimRow {
            name,
            label,
            raw: value.map(|secs| secs.to_string()),
            shown: value.map_or_else(|| "none".to_owned(), &local_time),
        };
        vec![
            text("uuid", "Token id", &self.uuid),
            time("iat", "Issued", self.iat),
            time("exp", "Expires", self.exp),
            text("sub", "Subject", &self.sub),
            text("purpose", "Purpose", &self.purpose),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn token_with(payload: &str) -> String {
        format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn a_tokens_claims_are_read_from_its_middle_part() {
        // A token this service issued (signature shortened): uuid, iat, exp, sub and purpose.
        let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ1dWlkIjoiM2Y2YjFhNGUtOGM5ZC00\
            ZTJhLTlmMWItMmQ3YzVlNmY4YTBiIiwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDM2MDAsInN1\
            YiI6InVzZXItNDIiLCJwdXJwb3NlIjoicGFzc3dvcmQtcmVzZXQifQ.c2ln";
        assert_eq!(
            decode_claims(token).unwrap(),
            Claims {
                uuid: Some("3f6b1a4e-8c9d-4e2a-9f1b-2d7c5e6f8a0b".into()),
                iat: Some(1_800_000_000),
                exp: Some(1_800_003_600),
                sub: Some("user-42".into()),
                purpose: Some("password-reset".into()),
            }
        );
    }

    #[test]
    fn missing_claims_are_none_and_others_are_ignored() {
        let token = token_with(r#"{"uuid":"u","iat":1,"exp":2,"nbf":1,"aud":["x"]}"#);
        let claims = decode_claims(&format!("  {token}\n")).unwrap();
        assert_eq!(
            claims,
            Claims { uuid: Some("u".into()), iat: Some(1), exp: Some(2), ..Claims::default() }
        );
    }

    #[test]
    fn non_ascii_subjects_survive_the_decoding() {
        let claims = decode_claims(&token_with(r#"{"sub":"Zoë 🦀"}"#)).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("Zoë 🦀"));
    }

    #[test]
    fn anything_but_three_parts_is_not_a_jwt() {
        for bad in ["", "not-a-token", "a.b", "a.b.c.d", "a.b.c.d.e"] {
            assert_eq!(
                decode_claims(bad),
                Err("not a JWT: a JWT is three parts separated by dots".to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_middle_part_must_be_unpadded_base64url() {
        for bad in ["h.e30+.s", "h.e30/.s", "h.!!.s", "h.e.s", "h.e30=.s"] {
            assert_eq!(
                decode_claims(bad),
                Err("the claims (the middle part) are not base64url".to_owned()),
                "{bad:?}"
            );
        }
        assert_eq!(decode_claims("h.e30.s"), Ok(Claims::default()), "e30 is {{}}");
    }

    #[test]
    fn the_claims_must_be_utf8_text() {
        let token = format!("h.{}.s", URL_SAFE_NO_PAD.encode([b'{', 0xff, b'}']));
        assert_eq!(decode_claims(&token), Err("the claims are not UTF-8 text".to_owned()));
    }

    #[test]
    fn the_claims_must_be_a_json_object_of_the_expected_types() {
        for payload in ["[]", "42", "not json", "{", r#"{"a":1} x"#] {
            assert_eq!(
                decode_claims(&token_with(payload)),
                Err("the claims are not a JSON object".to_owned()),
                "{payload:?}"
            );
        }
        for payload in [r#"{"iat":"yesterday"}"#, r#"{"exp":1.5}"#, r#"{"sub":42}"#] {
            assert_eq!(
                decode_claims(&token_with(payload)),
                Err("the claims are not of the expected types (iat and exp numbers, the others \
                     strings)"
                    .to_owned()),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn rows_name_every_claim_in_order_with_times_in_local_time() {
        let claims = Claims {
            uuid: Some("u-1".into()),
            iat: Some(10),
            exp: Some(20),
            sub: None,
            purpose: Some("login".into()),
        };
        let rows = claims.rows(|secs| format!("at {secs}"));
        let row = |name, label, raw: Option<&str>, shown: &str| ClaimRow {
            name,
            label,
            raw: raw.map(str::to_owned),
            shown: shown.to_owned(),
        };
        assert_eq!(
            rows,
            vec![
                row("uuid", "Token id", Some("u-1"), "u-1"),
                row("iat", "Issued", Some("10"), "at 10"),
                row("exp", "Expires", Some("20"), "at 20"),
                row("sub", "Subject", None, "none"),
                row("purpose", "Purpose", Some("login"), "login"),
            ]
        );
    }
}
