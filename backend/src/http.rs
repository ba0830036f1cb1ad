//! The HTTP API as one axum [`Router`], served by both the local server and the Lambda.
//!
//! | route | answer |
//! |---|---|
//! | `GET /tokens[?ttl=S&purpose=P&subject=X&supersede=true]` | `200` [`IssueResponse`]; `400` for a bad parameter; `409` when the pair is full |
//! | `POST /tokens` `{"token", "purpose"?, "subject"?}`, optional `Idempotency-Key` | `200` [`ValidateResponse`] (`isValid` true or false) |
//! | `POST /tokens/status` `{"token"}` | `200` [`StatusResponse`]; never changes anything |
//! | `POST /tokens/revoke` `{"token"}` | `200` [`StatusResponse`] after revoking an unused token |
//! | `GET /openapi.json` | this API as OpenAPI 3.1, generated from the handlers ([`ApiDoc`]) |
//! | `GET /health` | liveness: `200 {"status": "ok"}` while the process serves |
//! | `GET /health/ready` | readiness: `200 {"status": "ready"}` while the store can take writes, else `503` |
//! | `GET /metrics` | Prometheus/OpenMetrics text, when metrics are on ([`crate::metrics`]) |
//!
//! [`api`] puts the operational guards ([`crate::ops::Guards`]: request timeout, rate limits,
//! issuer keys) inside the CORS layer, so their answers carry CORS headers too.
//!
//! Every error answer (`4xx`, `5xx`) has the [`ValidateResponse`] shape with `isValid: false`,
//! a message and a `reason`, so clients read one shape. Handlers only translate between the
//! `shared` wire types and [`TokenService`]; [`ApiError`] is the one place errors become status
//! codes. Every API answer but a CORS preflight (not cacheable anyway) carries
//! `Cache-Control: no-store` (RFC 9111 section 5.2.2.5): a cached `GET /tokens` would hand one
//! token to two people.

use crate::ops::{Guards, GuardsDoc};
use crate::request::{REQUEST_ID_HEADER, RequestIdDoc, Tracking};
use crate::store::{AttemptId, StoreError};
use crate::tokens::{
    Binding, IssueError, IssueOptions, Report, Standing, TokenService, ValidateError, Validated,
};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use shared::{
    IDEMPOTENCY_KEY_HEADER, IdempotencyKey, IssueResponse, MAX_BODY_BYTES, Reason, StatusResponse,
    TokenRequest, TokenState, ValidateRequest, ValidateResponse,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;

/// Browser origins allowed to call the API cross-origin (CORS), e.g. the S3/CloudFront site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Same-origin only: no CORS headers are sent.
    #[default]
    None,
    /// Any origin (`*`). Safe here because the API uses no cookies or credentials.
    Any,
    /// These exact origins, e.g. `https://d111111abcdef8.cloudfront.net`.
    List(Vec<HeaderValue>),
}

impl AllowedOrigins {
    /// Parses a comma-separated list: empty means [`AllowedOrigins::None`], `*` means any.
    ///
    /// # Errors
    /// A message naming an entry that is not a valid header value.
    pub fn parse(list: &str) -> Result<Self, String> {
        let entries: Vec<&str> = list.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.is_empty() {
            return Ok(Self::None);
        }
        if entries.contains(&"*") {
            return Ok(Self::Any);
        }
        entries
            .iter()
            .map(|e| HeaderValue::from_str(e).map_err(|_| format!("invalid CORS origin {e:?}")))
            .collect::<Result<_, _>>()
            .map(Self::List)
    }
}

/// The API router without guards: routes, body limit, `Cache-Control: no-store`, CORS, JSON
/// fallbacks ([`api`] with [`Guards::default`]) and, outermost, request ids
/// ([`crate::request::track`]), as every answer of the servers has them.
pub fn router(service: Arc<TokenService>, origins: &AllowedOrigins) -> Router {
    crate::ops::outer(api(service, origins, &Guards::default()), Tracking::default())
}

/// The API router: routes, body limit, `Cache-Control: no-store`, `guards`, CORS and JSON
/// fallbacks. The local server adds the UI as its fallback service.
pub fn api(service: Arc<TokenService>, origins: &AllowedOrigins, guards: &Guards) -> Router {
    let router = Router::new()
        // HEAD must not issue (and store) a token only to drop the body: 405, not axum's implicit
        // GET-as-HEAD.
        .route("/tokens", get(issue).head(method_not_allowed).post(validate))
        .route("/tokens/status", post(status))
        .route("/tokens/revoke", post(revoke))
        .route("/openapi.json", get(openapi))
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .merge(guards.routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(no_head_allowed))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(service);
    let router = guards.wrap(router);
    match cors(origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The API's CORS rules for `origins` (`None` for same-origin only): what the router applies,
/// and what the Lambda's stand-in answers use while the service cannot start
/// ([`crate::lambda::LambdaApp`]), so the browser can read those too.
pub fn cors(origins: &AllowedOrigins) -> Option<CorsLayer> {
    let allow = match origins {
        AllowedOrigins::None => return None,
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                header::AUTHORIZATION,
                HeaderName::from_static(REQUEST_ID_HEADER),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                HeaderName::from_static("idempotency-key"),
                header::WWW_AUTHENTICATE,
                HeaderName::from_static(REQUEST_ID_HEADER),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// `GET /tokens`: issues a token. Unknown query parameters are refused, so a typo such as
/// `?tll=60` is a 400 rather than a silent 8-hour token.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    params(
        ("ttl" = Option<u64>, Query, minimum = 1, description = "Lifetime in seconds, 1 to the deployment's maximum (604800, 7 days, unless configured); default 28800"),
        ("purpose" = Option<String>, Query, min_length = 1, max_length = 64, pattern = "^[a-z0-9._-]{1,64}$", description = "Purpose to bind: 1-64 characters of [a-z0-9._-]"),
        ("subject" = Option<String>, Query, min_length = 1, max_length = 256, description = "Subject to bind (the `sub` claim): 1-256 bytes of UTF-8, an opaque id, not an e-mail address"),
        ("supersede" = Option<bool>, Query, description = "With purpose and subject: revoke every outstanding unused token of that pair"),
    ),
    responses(
        (status = 200, description = "A token, stored before it is returned", body = IssueResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "A bad or unknown parameter (`bad_request`)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 409, description = "The pair already has the most unused tokens (`too_many_outstanding`)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 503, description = "Store unavailable or overloaded; nothing was stored", body = ValidateResponse, headers(("Retry-After" = u32, description = "seconds"), ("Cache-Control" = String, description = "no-store"))),
        (status = 500, description = "Internal error", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
    )
)]
async fn issue(
    State(service): State<Arc<TokenService>>,
    raw: RawQuery,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<IssueResponse>, ApiError> {
    // The query decoder replaces invalid UTF-8 with U+FFFD, which would make different subjects
    // equal: refuse it instead.
    if raw.0.is_some_and(|q| percent_encoding::percent_decode_str(&q).decode_utf8().is_err()) {
        return Err(ApiError::BadRequest("the query string must be percent-encoded UTF-8".into()));
    }
    let not_valid = |_| ApiError::BadRequest("the query string is not valid".into());
    let mut options = IssueOptions::default();
    let mut seen = HashSet::new();
    for (name, value) in params.map_err(not_valid)?.0 {
        // One meaning per request: `?ttl=60&ttl=604800` must not quietly pick one
        // (HTTP parameter pollution, OWASP WSTG-INPV-04).
        if !seen.insert(name.clone()) {
            return Err(ApiError::BadRequest(format!("query parameter {name:?} is given twice")));
        }
        match name.as_str() {
            "ttl" => {
                let max = service.lifetimes().max_secs();
                let ttl = value.parse().map_err(|_| IssueError::LifetimeOutOfRange { max })?;
                options.ttl = Some(ttl);
            }
            "purpose" => options.purpose = Some(value),
            "subject" => options.subject = Some(value),
            "supersede" => {
                options.supersede = value
                    .parse()
                    .map_err(|_| ApiError::BadRequest("supersede must be true or false".into()))?;
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {name:?}; the parameters are ttl, purpose, subject \
                     and supersede"
                )));
            }
        }
    }
    let issued = service.issue_with(options).await?;
    Ok(Json(IssueResponse { token: issued.token, expiration: rfc3339(issued.claims.exp)? }))
}

/// Formats epoch seconds as RFC 3339 UTC, e.g. `2026-11-29T17:00:00Z`.
fn rfc3339(epoch_seconds: i64) -> Result<String, ApiError> {
    OffsetDateTime::from_unix_timestamp(epoch_seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or(ApiError::Internal("expiry out of the RFC 3339 range"))
}

/// Reads the body as JSON of type `T` whatever its `Content-Type` says (the original service's
/// clients send none, `text/plain`, or `application/json`), so a client gets a clear 400, never
/// a 415.
fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::BadRequest("the request body could not be read".into()),
    })?;
    // serde would read a struct from a JSON array by position (`["<JWT>"]`): only an object is
    // the documented shape.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::BadRequest(
            r#"the body must be JSON of the form {"token": "<JWT>"} (an object, not an array)"#
                .into(),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            r#"the body must be JSON of the form {{"token": "<JWT>"}} ({})"#,
            e.classify_message()
        ))
    })
}

/// `POST /tokens`: validates and consumes a token.
///
/// The attempt id is the `Idempotency-Key` header, or a fresh one for this request; when the
/// outcome is unknown, a fresh one is sent back in that header so the client can retry with it.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body(content = ValidateRequest, description = "Any Content-Type is read as JSON"),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 130, pattern = "^(\"[A-Za-z0-9._:-]{1,128}\"|[A-Za-z0-9._:-]{1,128})$", description = "This validation attempt's id: 1-128 characters of A-Za-z0-9-_.: (optionally as a quoted Structured Field string). Retries send the same key"),
    ),
    responses(
        (status = 200, description = "Valid (`isValid: true`, maybe `replayed`) or refused (`isValid: false` with a `reason`: already_used, expired, invalid_signature, malformed_token, unknown_token, revoked, wrong_purpose, wrong_subject)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "Malformed body or Idempotency-Key (`bad_request`)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 413, description = "Body over 8 KiB (`payload_too_large`)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 503, description = "`unavailable` or `overloaded` (nothing changed), or `outcome_unknown` (retry with the same Idempotency-Key)", body = ValidateResponse, headers(("Retry-After" = u32, description = "seconds"), ("Idempotency-Key" = String, description = "with outcome_unknown when the request sent none: the key to retry with"), ("Cache-Control" = String, description = "no-store"))),
        (status = 500, description = "Internal error", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
    )
)]
async fn validate(
    State(service): State<Arc<TokenService>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ValidateResponse>, ApiError> {
    let mut keys = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let (attempt, generated) = match (keys.next(), keys.next()) {
        (None, _) => (AttemptId::generate(), true),
        (Some(_), Some(_)) => {
            // The draft's field is a single Structured Field string: two values are ambiguous.
            return Err(ApiError::BadRequest(format!(
                "send one {IDEMPOTENCY_KEY_HEADER} header, not several"
            )));
        }
        (Some(value), None) => {
            // A value that is not visible ASCII breaks the same rule as any other bad key.
            let key = IdempotencyKey::parse(value.to_str().unwrap_or_default());
            (AttemptId::from_key(key.map_err(ApiError::BadRequest)?), false)
        }
    };
    let request: ValidateRequest = json_body(body)?;
    let binding =
        Binding { purpose: request.purpose.as_deref(), subject: request.subject.as_deref() };
    let refused = |reason, e: ValidateError| ValidateResponse::refused(reason, e.to_string());
    Ok(Json(match service.validate_bound(&request.token, binding, &attempt).await {
        Ok(Validated { replayed: None, .. }) => {
            ValidateResponse::valid("Token is valid and has now been used")
        }
        Ok(Validated { replayed: Some(used_at), .. }) => ValidateResponse {
            replayed: true,
            used_at: Some(rfc3339(used_at)?),
            ..ValidateResponse::valid(
                "Token is valid; this repeats the answer to the earlier request with this \
                 Idempotency-Key, which used it",
            )
        },
        Err(e @ ValidateError::AlreadyUsed { used_at, .. }) => {
            ValidateResponse { used_at: Some(rfc3339(used_at)?), ..refused(Reason::AlreadyUsed, e) }
        }
        Err(ValidateError::Store(source @ StoreError::OutcomeUnknown(_))) => {
            return Err(ApiError::OutcomeUnknown { source, key: generated.then_some(attempt) });
        }
        Err(ValidateError::Store(e)) => return Err(e.into()),
        Err(e) => refused(refusal(&e), e),
    }))
}

/// The reason of a refusal that is the token's fault (`Store` is not one).
fn refusal(e: &ValidateError) -> Reason {
    match e {
        ValidateError::AlreadyUsed { .. } => Reason::AlreadyUsed,
        ValidateError::Expired => Reason::Expired,
        ValidateError::InvalidSignature => Reason::InvalidSignature,
        ValidateError::Malformed(_) => Reason::MalformedToken,
        ValidateError::UnknownToken => Reason::UnknownToken,
        ValidateError::Revoked { .. } => Reason::Revoked,
        ValidateError::WrongPurpose => Reason::WrongPurpose,
        ValidateError::WrongSubject => Reason::WrongSubject,
        ValidateError::Store(_) => Reason::Internal,
    }
}

/// `POST /tokens/status`: where a token stands; never consumes or changes anything.
#[utoipa::path(
    post,
    path = "/tokens/status",
    tag = "tokens",
    request_body(content = TokenRequest, description = "Any Content-Type is read as JSON"),
    responses(
        (status = 200, description = "The token's state; `invalid` with a `reason` (invalid_signature, malformed_token, unknown_token) for a token that is not ours, which touches no store", body = StatusResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "Malformed body (`bad_request`)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 413, description = "Body over 8 KiB (`payload_too_large`)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 503, description = "Store unavailable", body = ValidateResponse, headers(("Retry-After" = u32, description = "seconds"), ("Cache-Control" = String, description = "no-store"))),
        (status = 500, description = "Internal error", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
    )
)]
async fn status(
    State(service): State<Arc<TokenService>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StatusResponse>, ApiError> {
    let request: TokenRequest = json_body(body)?;
    report(service.status(&request.token).await)
}

/// `POST /tokens/revoke`: revokes an unused token; reports any other unchanged.
#[utoipa::path(
    post,
    path = "/tokens/revoke",
    tag = "tokens",
    request_body(content = TokenRequest, description = "Any Content-Type is read as JSON"),
    responses(
        (status = 200, description = "`revoked` with `revokedAt` (now, or earlier if it was revoked before); `used` or `expired` unchanged; `invalid` with a `reason` for a token that is not ours", body = StatusResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "Malformed body (`bad_request`)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 413, description = "Body over 8 KiB (`payload_too_large`)", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 503, description = "`unavailable` or `overloaded` (nothing changed), or `outcome_unknown` (ask /tokens/status)", body = ValidateResponse, headers(("Retry-After" = u32, description = "seconds"), ("Cache-Control" = String, description = "no-store"))),
        (status = 500, description = "Internal error", body = ValidateResponse, headers(("Cache-Control" = String, description = "no-store"))),
    )
)]
async fn revoke(
    State(service): State<Arc<TokenService>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StatusResponse>, ApiError> {
    let request: TokenRequest = json_body(body)?;
    report(service.revoke(&request.token).await)
}

/// A status or revoke outcome as a [`StatusResponse`].
fn report(outcome: Result<Report, ValidateError>) -> Result<Json<StatusResponse>, ApiError> {
    let report = match outcome {
        Ok(report) => report,
        Err(ValidateError::Store(e)) => return Err(e.into()),
        Err(e) => {
            return Ok(Json(StatusResponse {
                reason: Some(refusal(&e)),
                ..StatusResponse::new(TokenState::Invalid)
            }));
        }
    };
    let (state, used_at, revoked_at) = match report.standing {
        Standing::Unused => (TokenState::Unused, None, None),
        Standing::Used { at } => (TokenState::Used, Some(rfc3339(at)?), None),
        Standing::Expired => (TokenState::Expired, None, None),
        Standing::Revoked { at } => (TokenState::Revoked, None, Some(rfc3339(at)?)),
    };
    Ok(Json(StatusResponse {
        expiration: Some(rfc3339(report.claims.exp)?),
        used_at,
        revoked_at,
        purpose: report.claims.purpose,
        ..StatusResponse::new(state)
    }))
}

/// `GET /openapi.json`: this API as OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json", headers(("Cache-Control" = String, description = "no-store"))))
)]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The OpenAPI 3.1 description of this API, generated from the handlers' `#[utoipa::path]`
/// annotations and the `shared` wire types, so it cannot drift from the code.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "One-time token service",
        description = "Issues JWTs (HS256) that work exactly once and expire on time. Every \
            answer is JSON with Cache-Control: no-store; every error has the ValidateResponse \
            shape with a `reason`."
    ),
    paths(issue, validate, status, revoke, health, ready, openapi),
    modifiers(&GuardsDoc, &RequestIdDoc),
    components(schemas(
        IssueResponse,
        ValidateRequest,
        ValidateResponse,
        TokenRequest,
        StatusResponse,
        TokenState,
        Reason
    ))
)]
pub struct ApiDoc;

/// A short, client-safe description of a JSON error: its category and position.
trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        use serde_json::error::Category;
        let what = match self.classify() {
            Category::Io | Category::Eof => "it ends too early".to_owned(),
            Category::Syntax => "it is not valid JSON".to_owned(),
            // serde's own words for the input's shape: "missing field `token`", "duplicate field
            // `token`", "invalid type: integer `42`, expected a string"; they quote only the input.
            Category::Data => {
                let text = self.to_string();
                text.split(" at line ").next().unwrap_or("token must be a string").to_owned()
            }
        };
        format!("{what}, at line {} column {}", self.line(), self.column())
    }
}

/// `GET /health`: liveness.
#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    responses((status = 200, description = "`{\"status\": \"ok\"}` while the process serves", body = serde_json::Value, headers(("Cache-Control" = String, description = "no-store"))))
)]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /health/ready`: readiness.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "meta",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}` while the store can take writes", body = serde_json::Value, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 503, description = "The store cannot take writes now (`unavailable`)", body = ValidateResponse, headers(("Retry-After" = u32, description = "seconds"), ("Cache-Control" = String, description = "no-store"))),
    )
)]
async fn ready(
    State(service): State<Arc<TokenService>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    service.ready().await.map_err(ApiError::NotReady)?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

/// The API's JSON `404`, also used by the local server for non-GET requests outside the API.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A `405` of `/tokens` with `Allow: GET,POST` (RFC 9110 section 10.2.1), the methods `api`
/// routes there: axum would list `HEAD` too, which is routed there only to be refused, and a
/// refused `HEAD` none at all.
async fn no_head_allowed(request: axum::extract::Request, next: Next) -> Response {
    let tokens = request.uri().path() == "/tokens";
    let mut response = next.run(request).await;
    if tokens && response.status() == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET,POST"));
    }
    response
}

/// Every way a request can fail, mapped to status and body in one place ([`IntoResponse`]).
/// Internal causes are logged here, once, and never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the text says how (it describes only the client's input).
    #[error("{0}")]
    BadRequest(String),
    /// 413: the body is larger than [`MAX_BODY_BYTES`].
    #[error("the request body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    /// 404: no such route.
    #[error("no such endpoint; the API is described at GET /openapi.json")]
    NotFound,
    /// 405: the route exists but not with this method.
    #[error("method not allowed; the API is described at GET /openapi.json")]
    MethodNotAllowed,
    /// 409: the pair already has the most unused tokens; nothing was stored.
    #[error(
        "this purpose and subject already have {} unused tokens; issue with supersede=true to \
         replace them",
        crate::store::MAX_OUTSTANDING_PER_PAIR
    )]
    TooManyOutstanding,
    /// 503 `unavailable`: the token store could not be reached; nothing was changed.
    #[error("the token store is unavailable, try again shortly")]
    Unavailable(#[source] StoreError),
    /// 503 `unavailable` from the readiness probe: the store cannot take writes now.
    #[error("not ready: the token store cannot take writes now")]
    NotReady(#[source] StoreError),
    /// 503 `overloaded`: too much work queued; nothing was changed.
    #[error("the server is overloaded, try again shortly")]
    Overloaded,
    /// 503 `outcome_unknown`: the store could not confirm whether the token was used. `key` is
    /// the attempt id the service generated (the request sent none), returned in the
    /// `Idempotency-Key` response header for the retry.
    #[error(
        "the token store did not confirm whether this request used the token; retry with the \
         same Idempotency-Key header to learn the outcome"
    )]
    OutcomeUnknown {
        /// What the store said.
        #[source]
        source: StoreError,
        /// The generated attempt id, if the client sent none.
        key: Option<AttemptId>,
    },
    /// 401 `unauthorized`: the route needs an issuer key (`Authorization: Bearer`) and the
    /// request had none (`presented: false`) or a wrong one.
    #[error("this endpoint needs an issuer key: Authorization: Bearer <key>")]
    Unauthorized {
        /// Whether a key was presented (and was wrong).
        presented: bool,
    },
    /// 429 `rate_limited`: this client is over its per-minute limit; `retry_after` seconds.
    #[error("too many requests from this client; retry after {retry_after} s")]
    RateLimited {
        /// Seconds until the next request is allowed (`Retry-After`).
        retry_after: u64,
    },
    /// 503 past the overall request deadline: `outcome_unknown` when the request may have
    /// changed state (a validation or a revocation), else `unavailable`.
    #[error(
        "the request took too long and was abandoned; retry (with the same Idempotency-Key \
         for a validation)"
    )]
    Timeout {
        /// Whether the abandoned work may have changed state.
        outcome_unknown: bool,
    },
    /// 500: anything else; the cause is logged.
    #[error("internal error")]
    Internal(&'static str),
    /// 500: a store failure that is not unavailability.
    #[error("internal error")]
    Store(#[source] StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e),
            StoreError::Overloaded => Self::Overloaded,
            StoreError::TooManyOutstanding => Self::TooManyOutstanding,
            StoreError::OutcomeUnknown(_) => Self::OutcomeUnknown { source: e, key: None },
            StoreError::Duplicate | StoreError::Internal(_) => Self::Store(e),
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::LifetimeOutOfRange { .. } | IssueError::BadBinding(_) => {
                Self::BadRequest(e.to_string())
            }
            // An insert whose outcome is unknown handed out no token: retrying is safe.
            IssueError::Store(StoreError::OutcomeUnknown(cause)) => {
                Self::Unavailable(StoreError::Unavailable(cause))
            }
            IssueError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let (status, reason) = match &self {
            Self::BadRequest(_) => (S::BAD_REQUEST, Reason::BadRequest),
            Self::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, Reason::PayloadTooLarge),
            Self::NotFound => (S::NOT_FOUND, Reason::NotFound),
            Self::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, Reason::MethodNotAllowed),
            Self::TooManyOutstanding => (S::CONFLICT, Reason::TooManyOutstanding),
            Self::Unavailable(_) | Self::NotReady(_) => {
                (S::SERVICE_UNAVAILABLE, Reason::Unavailable)
            }
            Self::Overloaded => (S::SERVICE_UNAVAILABLE, Reason::Overloaded),
            Self::OutcomeUnknown { .. } | Self::Timeout { outcome_unknown: true } => {
                (S::SERVICE_UNAVAILABLE, Reason::OutcomeUnknown)
            }
            Self::Timeout { outcome_unknown: false } => {
                (S::SERVICE_UNAVAILABLE, Reason::Unavailable)
            }
            Self::Unauthorized { .. } => (S::UNAUTHORIZED, Reason::Unauthorized),
            Self::RateLimited { .. } => (S::TOO_MANY_REQUESTS, Reason::RateLimited),
            Self::Internal(_) | Self::Store(_) => (S::INTERNAL_SERVER_ERROR, Reason::Internal),
        };
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        let body = ValidateResponse {
            request_id: crate::request::current().map(|c| c.id),
            ..ValidateResponse::refused(reason, self.to_string())
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        // Also on answers outside the router's no-store layer (the local server's UI fallback).
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == S::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        match &self {
            // RFC 6750 section 3: a missing key gets the bare challenge, a wrong one says so.
            Self::Unauthorized { presented } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(if *presented {
                        r#"Bearer realm="token-service", error="invalid_token""#
                    } else {
                        r#"Bearer realm="token-service""#
                    }),
                );
            }
            Self::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        if let Self::OutcomeUnknown { key: Some(key), .. } = &self
            && let Ok(value) = HeaderValue::from_str(key.as_str())
        {
            headers.insert(IDEMPOTENCY_KEY_HEADER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_origins_parse_from_a_comma_separated_list() {
        assert_eq!(AllowedOrigins::parse("").unwrap(), AllowedOrigins::None);
        assert_eq!(AllowedOrigins::parse(" , ").unwrap(), AllowedOrigins::None);
        assert_eq!(AllowedOrigins::parse("https://a.example, *").unwrap(), AllowedOrigins::Any);
        assert_eq!(
            AllowedOrigins::parse("https://a.example, http://localhost:8080").unwrap(),
            AllowedOrigins::List(vec![
                HeaderValue::from_static("https://a.example"),
                HeaderValue::from_static("http://localhost:8080"),
            ])
        );
        assert!(AllowedOrigins::parse("https://a.example\n").is_ok());
        assert!(AllowedOrigins::parse("bad\u{7f}origin").is_err());
    }

    #[test]
    fn expirations_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_800_000_000).unwrap(), "2027-01-15T08:00:00Z");
        assert!(rfc3339(i64::MAX).is_err());
    }
}
