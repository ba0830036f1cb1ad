//! Per-request context: an id and the client's address for every request, and the overall
//! request deadline.
//!
//! [`track`] runs outermost: it takes the client's `X-Request-Id` when well-formed (else makes
//! one; on Lambda, API Gateway's own request id), finds the client's address, and runs the rest
//! of the request inside a tracing span and a task-local [`RequestContext`], so log lines, audit
//! lines and error bodies ([`crate::http::ApiError`]) all carry the same id. The id is sent back
//! in the `X-Request-Id` response header.
//!
//! The client's address is the socket peer's (the local server), API Gateway's
//! `requestContext.identity.sourceIp` (the Lambda), or, only when the operator says a proxy
//! stands in front (`--trust-forwarded-for`), the last address in `X-Forwarded-For`: the one
//! that proxy appended. Earlier entries are whatever the client claimed, so they are never used.

use crate::http::ApiError;
use crate::metrics::Metrics;
use crate::store::AttemptId;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::IDEMPOTENCY_KEY_HEADER;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The request header (and response header) carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id taken from a client, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// Default overall deadline of one request, seconds: above the stores' own 5 s deadlines, below
/// the Lambda's 10 s timeout.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 8;

/// Who is asking and which request this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The request id: the client's `X-Request-Id` if well-formed, else generated.
    pub id: String,
    /// The client's address, if known (see the module documentation).
    pub client: Option<IpAddr>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The context of the request this task is serving, if any.
pub fn current() -> Option<RequestContext> {
    CONTEXT.try_with(Clone::clone).ok()
}

/// Settings of [`track`].
#[derive(Clone, Default)]
pub struct Tracking {
    /// Take the client's address from the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
    /// Counts responses by status, if set.
    pub metrics: Option<Arc<Metrics>>,
}

/// Whether `id` is a request id we take from a client: 1 to [`MAX_REQUEST_ID_BYTES`] characters
/// of `A-Z a-z 0-9 - _ . :` (UUIDs, ULIDs, trace ids), so it is safe in logs and headers.
pub fn well_formed(id: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES && id.chars().all(allowed)
}

/// The client's address for `request` (see the module documentation).
pub fn client_address(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .rfind(|v| !v.trim().is_empty())
            .and_then(|last| last.trim().parse::<IpAddr>().ok())
    {
        return Some(ip);
    }
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        return Some(peer.ip());
    }
    lambda_context(request).and_then(|(ip, _)| ip)
}

/// The client's address and API Gateway's request id, when the Lambda serves the request: a
/// REST API's (payload 1.0) `requestContext.identity.sourceIp`, or an HTTP API's or function
/// URL's (payload 2.0) `requestContext.http.sourceIp`, and `requestContext.requestId`
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>).
fn lambda_context(request: &Request) -> Option<(Option<IpAddr>, Option<String>)> {
    use lambda_http::request::RequestContext as Lambda;
    let (source_ip, request_id) = match request.extensions().get::<Lambda>()? {
        Lambda::ApiGatewayV1(context) => (&context.identity.source_ip, &context.request_id),
        Lambda::ApiGatewayV2(context) => (&context.http.source_ip, &context.request_id),
        _ => return None,
    };
    Some((source_ip.as_deref().and_then(|ip| ip.parse().ok()), request_id.clone()))
}

/// Adds `X-Request-Id` to the OpenAPI document: an optional request header of every operation
/// (kept when it is 1 to [`MAX_REQUEST_ID_BYTES`] characters of `A-Za-z0-9-_.:`, else replaced)
/// and a header of every response ([`track`] sets it on all of them).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdDoc;

impl utoipa::Modify for RequestIdDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{RefOr, Required};
        let text = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_REQUEST_ID_BYTES))
                .pattern(Some("^[A-Za-z0-9._:-]+$"))
        };
        let parameter = ParameterBuilder::new()
            .name("X-Request-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .schema(Some(text()))
            .description(Some("The client's id for this request, else one is made"))
            .build();
        let header = HeaderBuilder::new()
            .schema(text())
            .description(Some("This request's id (the client's, or the one made for it)"))
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post, &mut item.head].into_iter().flatten() {
                operation.parameters.get_or_insert_with(Vec::new).push(parameter.clone());
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response.headers.insert("X-Request-Id".into(), header.clone());
                    }
                }
            }
        }
    }
}

/// The outermost middleware: request id, client address, tracing span and response counts.
pub async fn track(
    State(tracking): State<Arc<Tracking>>,
    request: Request,
    next: Next,
) -> Response {
    let client = client_address(&request, tracking.trust_forwarded_for);
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| well_formed(id))
        .map(str::to_owned)
        .or_else(|| lambda_context(&request).and_then(|(_, id)| id).filter(|id| well_formed(id)))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "request",
        id = %id,
        client = %client.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
        method = %request.method(),
        path = %request.uri().path(),
    );
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let context = RequestContext { id: id.clone(), client };
    let mut response = CONTEXT.scope(context, next.run(request).instrument(span)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let Some(metrics) = &tracking.metrics {
        metrics.response(response.status());
        metrics.request(&method, &path, response.status());
    }
    response
}

/// The overall deadline of one request: past it the request's work is dropped and the client
/// gets a JSON `503` ([`ApiError::Timeout`]): `outcome_unknown` for the requests that change a
/// token's state (`POST /tokens` may have used it, `POST /tokens/revoke` revoked it),
/// `unavailable` for every other (`GET`, and `POST /tokens/status`, which never changes
/// anything).
///
/// A validation (`POST /tokens`) without an `Idempotency-Key` gets one here, before the handler
/// runs, and every `503 outcome_unknown` it is answered with names it in the `Idempotency-Key`
/// response header: whether the deadline or the store gave up, the client can retry with it and
/// learn the outcome (a validation the deadline cut short may still have used the token).
pub async fn deadline(State(limit): State<Duration>, mut request: Request, next: Next) -> Response {
    let post = request.method() == Method::POST;
    let validation = post && request.uri().path() == "/tokens";
    // Every POST may change a token's state but the status check, which never does.
    let changes_state = post && request.uri().path() != "/tokens/status";
    let generated = (validation && !request.headers().contains_key(IDEMPOTENCY_KEY_HEADER))
        .then(|| HeaderValue::from_str(AttemptId::generate().as_str()).ok())
        .flatten();
    if let Some(key) = &generated {
        request.headers_mut().insert(IDEMPOTENCY_KEY_HEADER, key.clone());
    }
    let mut response = match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs_f64(), "request timed out");
            ApiError::Timeout { outcome_unknown: changes_state }.into_response()
        }
    };
    if let Some(key) = generated
        && response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(IDEMPOTENCY_KEY_HEADER)
    {
        response.headers_mut().insert(IDEMPOTENCY_KEY_HEADER, key);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn request(headers: &[(&str, &str)], peer: Option<&str>) -> Request {
        let mut builder = axum::http::Request::builder().uri("/tokens");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(Body::empty()).unwrap();
        if let Some(peer) = peer {
            request.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        request
    }

    #[test]
    fn the_client_is_the_socket_peer_unless_forwarded_for_is_trusted() {
        let forwarded = [("x-forwarded-for", "198.51.100.1, 203.0.113.7")];
        let r = request(&forwarded, Some("127.0.0.1:5000"));
        assert_eq!(client_address(&r, false), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(client_address(&r, true), Some("203.0.113.7".parse().unwrap()));
        let garbage = request(&[("x-forwarded-for", "not-an-ip")], Some("127.0.0.1:5000"));
        assert_eq!(client_address(&garbage, true), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(client_address(&request(&[], None), true), None);
    }

    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(well_formed("8e03978e-40d5-43e8-bc93-6894a57f9324"));
        assert!(well_formed(&"a".repeat(MAX_REQUEST_ID_BYTES)));
        for bad in ["", "a b", "a\nb", "ä", "x\"y", &"a".repeat(MAX_REQUEST_ID_BYTES + 1)] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_answered_as_json_with_its_request_id() {
        let app = Router::new()
            .route("/tokens", get(slow).post(slow))
            .route("/tokens/status", post(slow))
            .route("/tokens/revoke", post(slow))
            .layer(axum::middleware::from_fn_with_state(Duration::from_millis(50), deadline))
            .layer(axum::middleware::from_fn_with_state(Arc::new(Tracking::default()), track));
        for (method, path, reason) in [
            ("GET", "/tokens", "unavailable"),
            ("POST", "/tokens", "outcome_unknown"),
            ("POST", "/tokens/revoke", "outcome_unknown"),
            ("POST", "/tokens/status", "unavailable"),
        ] {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header(REQUEST_ID_HEADER, "client-chosen-id")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "1");
            assert_eq!(response.headers()["cache-control"], "no-store");
            assert_eq!(response.headers()[REQUEST_ID_HEADER], "client-chosen-id");
            let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["isValid"], false);
            assert_eq!(body["reason"], reason, "{method} {path}");
            assert_eq!(body["requestId"], "client-chosen-id");
        }
    }

    #[tokio::test]
    async fn a_keyless_validation_cut_short_by_the_deadline_is_told_the_key_it_was_run_with() {
        // The handler records the key it sees; the deadline answer must name the same one.
        let seen = Arc::new(std::sync::Mutex::new(None::<String>));
        let recorder = seen.clone();
        let slow_validation = move |request: Request| {
            let recorder = recorder.clone();
            async move {
                let key = request.headers().get(IDEMPOTENCY_KEY_HEADER).cloned();
                *recorder.lock().unwrap() = key.map(|k| k.to_str().unwrap().to_owned());
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }
        };
        let app = Router::new()
            .route("/tokens", post(slow_validation))
            .layer(axum::middleware::from_fn_with_state(Duration::from_millis(50), deadline));
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/tokens")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 503);
        let answered = response.headers()[IDEMPOTENCY_KEY_HEADER].to_str().unwrap().to_owned();
        assert_eq!(seen.lock().unwrap().as_deref(), Some(answered.as_str()));
        // A client that sent its own key keeps it, and is not sent another.
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/tokens")
            .header(IDEMPOTENCY_KEY_HEADER, "mine")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert!(response.headers().get(IDEMPOTENCY_KEY_HEADER).is_none());
        assert_eq!(seen.lock().unwrap().as_deref(), Some("mine"));
    }

    #[tokio::test]
    async fn a_malformed_request_id_is_replaced_by_a_generated_one() {
        let app = Router::new()
            .route("/tokens", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(Arc::new(Tracking::default()), track));
        let request = axum::http::Request::builder()
            .uri("/tokens")
            .header(REQUEST_ID_HEADER, "two words")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let id = response.headers()[REQUEST_ID_HEADER].to_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4, "{id}");
    }
}
