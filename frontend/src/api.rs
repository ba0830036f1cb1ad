//! Every HTTP call of the UI: `config.json` once at start, then `GET /tokens`, `POST /tokens`,
//! `POST /tokens/status` and `POST /tokens/revoke` against the chosen [`ApiBase`].
//!
//! Each call is aborted after [`TIMEOUT_SECS`], so a silent server shows an error instead of a
//! button that stays disabled. Status, `Retry-After` and body are read by
//! [`crate::answer::read_answer`]. Retrying is the caller's decision ([`crate::validation`]):
//! every function here sends exactly one request.

use crate::answer::{ApiError, read_answer};
use crate::api_base::ApiBase;
use crate::form::IssueRequest;
use gloo_net::http::{Request, RequestBuilder};
use gloo_timers::callback::Timeout;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{
    IDEMPOTENCY_KEY_HEADER, IssueResponse, StatusResponse, TokenRequest, ValidateRequest,
    ValidateResponse,
};
use web_sys::{AbortController, RequestCache};

/// How long a request may take before it is aborted, in seconds.
pub const TIMEOUT_SECS: u32 = 15;

/// Fetches `config.json` next to `index.html`, bypassing the HTTP cache (it changes per deploy).
///
/// Returns its text only for a `2xx` answer; `None` when it is missing, unreachable or too slow,
/// which means "same origin" ([`crate::api_base::choose_api_base`]).
pub async fn fetch_config() -> Option<String> {
    match fetch_text(Request::get("config.json"), "config.json", None).await {
        Ok(Fetched { status: 200..=299, text, .. }) => Some(text),
        _ => None,
    }
}

/// `GET /tokens[?ttl=S&purpose=P&subject=X&supersede=true]`: issues a token.
///
/// # Errors
/// [`ApiError`] for a network failure, a timeout, a refusal (`400` for a lifetime, purpose or
/// subject out of range; `409` when the purpose and subject already have the most unused
/// tokens) or an unreadable answer.
///
/// `authorization` is the `Authorization` header for a service that wants an issuer key
/// ([`crate::issuer_key`]); `401` when it is missing or wrong.
pub async fn issue(
    base: &ApiBase,
    request: &IssueRequest,
    authorization: Option<&str>,
) -> Result<IssueResponse, ApiError> {
    // The URL named in error messages: with the lifetime, not the purpose and subject (they are
    // in the form above the message).
    let url = base.issue_url(request.ttl);
    // The parameters go through `query` rather than in the URL: gloo-net 0.6 appends a stray
    // `&` to a URL that already has a query string, and `query` percent-encodes them.
    let query = request.query();
    let builder = Request::get(&base.tokens_url()).query(query.iter().map(|(k, v)| (*k, v)));
    send(with_authorization(builder, authorization), &url, None).await
}

/// `POST /tokens` with `{"token", "purpose"?, "subject"?}` and the header
/// `Idempotency-Key: {key}`: validates, and thereby consumes, a token. Sending the same `key`
/// again repeats the same attempt: the server replays its answer (`replayed: true`) instead of
/// reporting the token as used.
///
/// A refused token is an `Ok` answer with `is_valid: false` (`wrong_purpose` and
/// `wrong_subject` leave it unused); `Err` means the request itself failed (and, for
/// `503 outcome_unknown` or a lost answer, that its outcome is unknown).
///
/// # Errors
/// As [`issue`], plus `503` refusals carrying the server's `Retry-After`.
pub async fn validate(
    base: &ApiBase,
    request: &ValidateRequest,
    key: &str,
) -> Result<ValidateResponse, ApiError> {
    let url = base.tokens_url();
    send(Request::post(&url).header(IDEMPOTENCY_KEY_HEADER, key), &url, json(&url, request)?).await
}

/// `POST /tokens/status` with `{"token": ...}`: where the token stands. Changes nothing, so an
/// unused token stays usable.
///
/// # Errors
/// As [`issue`].
pub async fn status(base: &ApiBase, token: &str) -> Result<StatusResponse, ApiError> {
    post_token(&base.status_url(), token, None).await
}

/// `POST /tokens/revoke` with `{"token": ...}`: revokes an unused token; any other is reported
/// unchanged.
///
/// # Errors
/// As [`issue`] (including `401` without the issuer key the service wants); after a
/// `503 outcome_unknown`, [`status`] tells whether it was revoked.
pub async fn revoke(
    base: &ApiBase,
    token: &str,
    authorization: Option<&str>,
) -> Result<StatusResponse, ApiError> {
    post_token(&base.revoke_url(), token, authorization).await
}

async fn post_token(
    url: &str,
    token: &str,
    authorization: Option<&str>,
) -> Result<StatusResponse, ApiError> {
    let body = json(url, &TokenRequest { token: token.to_owned() })?;
    send(with_authorization(Request::post(url), authorization), url, body).await
}

/// `builder` with `Authorization: {authorization}`, if any.
fn with_authorization(builder: RequestBuilder, authorization: Option<&str>) -> RequestBuilder {
    match authorization {
        Some(value) => builder.header("Authorization", value),
        None => builder,
    }
}

/// A JSON request body, serialized here so that one non-generic [`fetch_text`] sends them all.
/// A failure is reported as gloo-net's `json()` would have been: a request that never left.
fn json(url: &str, body: &impl Serialize) -> Result<Option<String>, ApiError> {
    serde_json::to_string(body).map(Some).map_err(|e| ApiError::Network {
        url: url.to_owned(),
        detail: format!("the request body could not be written ({e})"),
    })
}

async fn send<T: DeserializeOwned>(
    builder: RequestBuilder,
    url: &str,
    json: Option<String>,
) -> Result<T, ApiError> {
    let Fetched { status, retry_after, text } = fetch_text(builder, url, json).await?;
    read_answer(status, retry_after.as_deref(), &text)
}

/// An HTTP answer as read from the browser.
struct Fetched {
    status: u16,
    /// The `Retry-After` header. Cross-origin, browsers hide it unless the API lists it in
    /// `Access-Control-Expose-Headers`; the caller's default wait then applies.
    retry_after: Option<String>,
    text: String,
}

/// Sends a request (uncached, aborted after [`TIMEOUT_SECS`]) with an optional JSON body and
/// returns status, `Retry-After` and body text.
async fn fetch_text(
    builder: RequestBuilder,
    url: &str,
    json: Option<String>,
) -> Result<Fetched, ApiError> {
    let network = |detail: String| ApiError::Network { url: url.to_owned(), detail };
    let controller = AbortController::new().map_err(|e| network(format!("{e:?}")))?;
    let builder = builder.cache(RequestCache::NoStore).abort_signal(Some(&controller.signal()));
    let request = match json {
        Some(body) => builder.header("content-type", "application/json").body(body),
        None => builder.build(),
    }
    .map_err(|e| network(e.to_string()))?;
    let abort = controller.clone();
    // Dropping the timer cancels it, so a prompt answer is never aborted.
    let _timer = Timeout::new(TIMEOUT_SECS * 1000, move || abort.abort());
    let timed_out = || ApiError::TimedOut { url: url.to_owned(), secs: TIMEOUT_SECS };
    let response = request.send().await.map_err(|e| {
        if controller.signal().aborted() { timed_out() } else { network(e.to_string()) }
    })?;
    let status = response.status();
    let retry_after = response.headers().get("retry-after");
    let text = response.text().await.map_err(|e| {
        if controller.signal().aborted() {
            timed_out()
        } else {
            ApiError::Unreadable { status, detail: format!("the body could not be read ({e})") }
        }
    })?;
    Ok(Fetched { status, retry_after, text })
}
