//! Where the API lives: the page's own origin, unless `config.json` next to `index.html` names
//! another base URL at run time (`{"apiBaseUrl": "https://api.example.com/prod"}`).
//!
//! The choice is made once at start-up from the page origin and the text of `config.json` (or
//! its absence); both are passed in, so the rules are tested natively. Nothing is baked in at
//! build time: one `dist/` serves every deployment.

use serde::Deserialize;
use std::fmt;

/// The API's base URL, e.g. `https://api.example.com/prod`: `http` or `https`, no trailing slash,
/// no query or fragment. Endpoint paths are appended to it, so a base with a path (an API
/// Gateway stage) works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBase(String);

impl ApiBase {
    /// Checks and normalises a base URL (trailing slashes are dropped).
    ///
    /// # Errors
    /// A sentence naming the problem when `url` is not an absolute `http(s)` URL with a host, or
    /// has a query or fragment.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("{url:?} has no host"));
        }
        if url.contains(['?', '#']) || url.contains(char::is_whitespace) {
            return Err(format!("{url:?} must not contain a query, fragment or spaces"));
        }
        Ok(Self(url.trim_end_matches('/').to_owned()))
    }

    /// The base URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// URL of the `/tokens` resource (`POST` validates; `GET` issues).
    pub fn tokens_url(&self) -> String {
        format!("{}/tokens", self.0)
    }

    /// URL of `POST /tokens/status` (where a token stands; changes nothing).
    pub fn status_url(&self) -> String {
        format!("{}/tokens/status", self.0)
    }

    /// URL of `POST /tokens/revoke`.
    pub fn revoke_url(&self) -> String {
        format!("{}/tokens/revoke", self.0)
    }

    /// URL of `GET /tokens`, with `?ttl=SECONDS` when a lifetime is given.
    pub fn issue_url(&self, ttl_secs: Option<u64>) -> String {
        match ttl_secs {
            Some(ttl) => format!("{}/tokens?ttl={ttl}", self.0),
            None => self.tokens_url(),
        }
    }
}

impl fmt::Display for ApiBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The body of `config.json`. Unknown fields are ignored, so the file can grow.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    api_base_url: Option<String>,
}

/// The API base chosen at start-up, and why (shown in the page footer and the console).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiChoice {
    /// Where requests go.
    pub base: ApiBase,
    /// `None` when `config.json` chose `base`; otherwise why the page origin is used instead.
    pub fallback_reason: Option<String>,
}

/// Chooses the API base from the page origin (`window.location.origin`, e.g.
/// `http://127.0.0.1:3000`) and the text of `config.json`: `None` when it could not be fetched
/// or was not a `2xx` answer.
///
/// Every problem with the file (missing, not JSON, no `apiBaseUrl`, a bad URL) falls back to
/// the page origin: a broken config must not make the page useless where the API is same-origin.
///
/// # Errors
/// A message when neither the configured URL nor the page origin is usable (e.g. a page opened
/// from `file://`).
pub fn choose_api_base(page_origin: &str, config_json: Option<&str>) -> Result<ApiChoice, String> {
    let configured = match config_json {
        None => Err("no config.json".to_owned()),
        Some(text) => match serde_json::from_str::<RuntimeConfig>(text) {
            Err(e) => Err(format!(
                r#"config.json is not of the form {{"apiBaseUrl": "https://..."}} ({e})"#
            )),
            Ok(RuntimeConfig { api_base_url: None }) => {
                Err("config.json sets no apiBaseUrl".to_owned())
            }
            Ok(RuntimeConfig { api_base_url: Some(url) }) if url.trim().is_empty() => {
                Err("config.json sets an empty apiBaseUrl".to_owned())
            }
            Ok(RuntimeConfig { api_base_url: Some(url) }) => {
                ApiBase::parse(&url).map_err(|e| format!("config.json apiBaseUrl: {e}"))
            }
        },
    };
    match configured {
        Ok(base) => Ok(ApiChoice { base, fallback_reason: None }),
        Err(reason) => ApiBase::parse(page_origin)
            .map(|base| ApiChoice { base, fallback_reason: Some(reason) })
            .map_err(|e| format!("no usable API address: the page origin {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const ORIGIN: &str = "http://127.0.0.1:3000";

    fn base(url: &str) -> ApiBase {
        ApiBase::parse(url).unwrap()
    }

    #[test]
    fn endpoint_urls_join_the_base_with_one_slash() {
        assert_eq!(base("https://api.example.com").tokens_url(), "https://api.example.com/tokens");
        assert_eq!(base("https://api.example.com/").tokens_url(), "https://api.example.com/tokens");
        assert_eq!(
            base("https://x.example/prod//").issue_url(None),
            "https://x.example/prod/tokens"
        );
        assert_eq!(
            base("http://127.0.0.1:3000").issue_url(Some(90)),
            "http://127.0.0.1:3000/tokens?ttl=90"
        );
        assert_eq!(
            base("https://x.example/prod/").status_url(),
            "https://x.example/prod/tokens/status"
        );
        assert_eq!(
            base("https://x.example/prod").revoke_url(),
            "https://x.example/prod/tokens/revoke"
        );
    }

    #[test]
    fn only_absolute_http_urls_are_bases() {
        for bad in [
            "",
            "/api",
            "api.example.com",
            "ftp://x.example",
            "https://",
            "https:///x",
            "https://x.example/?a=1",
            "https://x.example/#f",
            "https://x .example",
        ] {
            assert!(ApiBase::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_json_overrides_the_page_origin() {
        let choice =
            choose_api_base(ORIGIN, Some(r#"{"apiBaseUrl": "https://api.example.com/prod/"}"#))
                .unwrap();
        assert_eq!(
            choice,
            ApiChoice { base: base("https://api.example.com/prod"), fallback_reason: None }
        );
    }

    #[test]
    fn unknown_config_fields_are_ignored() {
        let choice =
            choose_api_base(ORIGIN, Some(r#"{"apiBaseUrl": "https://a.example", "theme": 1}"#))
                .unwrap();
        assert_eq!(choice.base.as_str(), "https://a.example");
    }

    #[test]
    fn a_missing_or_broken_config_means_same_origin() {
        for (config, why) in [
            (None, "no config.json"),
            (Some("<!doctype html><html>"), "is not of the form"),
            (Some("{}"), "sets no apiBaseUrl"),
            (Some(r#"{"apiBaseUrl": null}"#), "sets no apiBaseUrl"),
            (Some(r#"{"apiBaseUrl": "  "}"#), "empty apiBaseUrl"),
            (Some(r#"{"apiBaseUrl": 42}"#), "is not of the form"),
            (Some(r#"{"apiBaseUrl": "api.example.com"}"#), "not an http:// or https:// URL"),
        ] {
            let choice = choose_api_base(ORIGIN, config).unwrap();
            assert_eq!(choice.base.as_str(), ORIGIN, "{config:?}");
            let reason = choice.fallback_reason.unwrap();
            assert!(reason.contains(why), "{config:?}: {reason}");
        }
    }

    #[test]
    fn a_page_without_an_http_origin_and_no_config_has_no_api() {
        assert!(choose_api_base("null", None).is_err());
        assert!(choose_api_base("null", Some(r#"{"apiBaseUrl":"https://a.example"}"#)).is_ok());
    }
}
