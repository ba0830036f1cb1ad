//! Every HTTP call of the UI: `config.json` once at start, then `GET /tokens` and
//! `POST /tokens` against the chosen [`ApiBase`].
//!
//! Each call is aborted after [`TIMEOUT_SECS`], so a silent server shows an error instead of a
//! button that stays disabled. Status, `Retry-After` and body are read by
//! [`crate::answer::read_answer`]. Retrying is the caller's decision ([`crate::validation`]):
//! every function here sends exactly one request.

use crate::answer::{ApiError, read_answer};
use crate::api_base::ApiBase;
use gloo_net::http::{Request, RequestBuilder};
use gloo_timers::callback::Timeout;
use serde::de::DeserializeOwned;
use shared::{IDEMPOTENCY_KEY_HEADER, IssueResponse, ValidateRequest, ValidateResponse};
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

/// `GET /tokens[?ttl=SECONDS]`: issues a token.
///
/// # Errors
/// [`ApiError`] for a network failure, a timeout, a refusal (`400` for a lifetime out of range)
/// or an unreadable answer.
pub async fn issue(base: &ApiBase, ttl_secs: Option<u64>) -> Result<IssueResponse, ApiError> {
    let url = base.issue_url(ttl_secs);
    // The lifetime goes through `query` rather than in the URL: gloo-net 0.6 appends a stray
    // `&` to a URL that already has a query string.
    let builder =
        Request::get(&base.tokens_url()).query(ttl_secs.map(|ttl| ("ttl", ttl.to_string())));
    send(builder, &url, None).await
}

/// `POST /tokens` with `{"token": ...}` and the header `Idempotency-Key: {key}`: validates, and
/// thereby consumes, a token. Sending the same `key` again repeats the same attempt: the server
/// replays its answer (`replayed: true`) instead of reporting the token as used.
///
/// A refused token is an `Ok` answer with `is_valid: false`; `Err` means the request itself
/// failed (and, for `503 outcome_unknown` or a lost answer, that its outcome is unknown).
///
/// # Errors
/// As [`issue`], plus `503` refusals carrying the server's `Retry-After`.
pub async fn validate(
    base: &ApiBase,
    token: &str,
    key: &str,
) -> Result<ValidateResponse, ApiError> {
    let url = base.tokens_url();
    let body = ValidateRequest::new(token);
    send(Request::post(&url).header(IDEMPOTENCY_KEY_HEADER, key), &url, Some(&body)).await
}

async fn send<T: DeserializeOwned>(
    builder: RequestBuilder,
    url: &str,
    json: Option<&ValidateRequest>,
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

/// Sends a request (uncached, aborted after [`TIMEOUT_SECS`]) and returns status, `Retry-After`
/// and body text.
async fn fetch_text(
    builder: RequestBuilder,
    url: &str,
    json: Option<&ValidateRequest>,
) -> Result<Fetched, ApiError> {
    let network = |detail: String| ApiError::Network { url: url.to_owned(), detail };
    let controller = AbortController::new().map_err(|e| network(format!("{e:?}")))?;
    let builder = builder.cache(RequestCache::NoStore).abort_signal(Some(&controller.signal()));
    let request = match json {
        Some(body) => builder.json(body),
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
