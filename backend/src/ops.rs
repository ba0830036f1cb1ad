//! The operational layers around the API, in one place so both entry points stack them the
//! same way ([`crate::app::build`]):
//!
//! ```text
//! request::track           request id, client address, tracing span, response counts
//!   CORS, Cache-Control    (crate::http)
//!     request::deadline    overall request timeout, answered as JSON
//!       limits::limit      per-client rate limit on /tokens
//!         auth             issuer key on PROTECTED routes
//!           routes         /tokens, /health, /metrics ...
//! ```
//!
//! The guards sit inside CORS so that their answers (`401`, `429`, `503`) carry the CORS
//! headers a browser needs to read them, and preflights (answered by the CORS layer) never
//! need a key or count against a limit.

use crate::auth::{IssuerKeys, require_issuer_key};
use crate::limits::{RateLimit, limit};
use crate::metrics::Metrics;
use crate::request::{DEFAULT_REQUEST_TIMEOUT_SECS, Tracking, deadline, track};
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;

/// `Content-Type` of `GET /metrics` (OpenMetrics 1.0 text).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The guards and routes [`crate::http::api`] puts inside its CORS layer.
#[derive(Debug, Clone)]
pub struct Guards {
    /// Overall deadline of one request.
    pub timeout: Duration,
    /// The per-client rate limit on `/tokens`, if any.
    pub rate_limit: Option<Arc<RateLimit>>,
    /// The issuer keys; `None` leaves every route open.
    pub issuer_keys: Option<Arc<IssuerKeys>>,
    /// Served at `GET /metrics` when set.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for Guards {
    /// No rate limit, no issuer keys, no metrics; the default request timeout.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            rate_limit: None,
            issuer_keys: None,
            metrics: None,
        }
    }
}

impl Guards {
    /// `GET /metrics` when metrics are on.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let Some(metrics) = self.metrics.clone() else { return Router::new() };
        Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    let headers =
                        [(header::CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE))];
                    (headers, metrics.encode()).into_response()
                }
            }),
        )
    }

    /// `router` behind the issuer keys, the rate limit and the deadline.
    pub fn wrap(&self, router: Router) -> Router {
        let router = match &self.issuer_keys {
            Some(keys) => router.layer(from_fn_with_state(keys.clone(), require_issuer_key)),
            None => router,
        };
        let router = match &self.rate_limit {
            Some(rate_limit) => router.layer(from_fn_with_state(rate_limit.clone(), limit)),
            None => router,
        };
        router.layer(from_fn_with_state(self.timeout, deadline))
    }
}

/// `app` with [`track`] outermost.
pub fn outer(app: Router, tracking: Tracking) -> Router {
    app.layer(from_fn_with_state(Arc::new(tracking), track))
}

/// Adds what the guards answer to the OpenAPI document ([`crate::http::ApiDoc`]): `401` on the
/// [`PROTECTED`](crate::auth::PROTECTED) operations and the bearer scheme they accept, `429` on
/// every `/tokens` operation, and `GET /metrics`. The guards are configuration, so the handlers'
/// own annotations do not name them.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardsDoc;

/// The security scheme name of the issuer keys in the OpenAPI document.
pub const ISSUER_KEY_SCHEME: &str = "issuerKey";

impl utoipa::Modify for GuardsDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder};
        use utoipa::openapi::security::{
            Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{ComponentsBuilder, ContentBuilder, RefOr};

        let components = openapi.components.get_or_insert_with(|| ComponentsBuilder::new().build());
        components.add_security_scheme(
            ISSUER_KEY_SCHEME,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // Either an issuer key, or nothing when the service runs without keys (the default).
        let security = vec![
            SecurityRequirement::new(ISSUER_KEY_SCHEME, Vec::<String>::new()),
            SecurityRequirement::default(),
        ];
        let unauthorized = || {
            error_response(
                "No or a wrong issuer key (`unauthorized`), when issuer keys are configured",
                &[("WWW-Authenticate", "Bearer challenge (RFC 6750 section 3)", false)],
            )
        };
        let rate_limited = error_response(
            "Over this client's per-minute limit (`rate_limited`), when one is configured",
            &[("Retry-After", "seconds", true)],
        );
        for (path, item) in &mut openapi.paths.paths {
            if !crate::limits::is_limited(path) {
                continue;
            }
            let operations = [
                (axum::http::Method::GET, item.get.as_mut()),
                (axum::http::Method::POST, item.post.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let responses = &mut operation.responses.responses;
                responses.insert("429".into(), RefOr::T(rate_limited.clone()));
                if crate::auth::is_protected(&method, path) {
                    responses.insert("401".into(), RefOr::T(unauthorized()));
                    operation.security = Some(security.clone());
                }
            }
        }
        let text = ContentBuilder::new().build();
        let metrics = OperationBuilder::new()
            .tag("operations")
            .description(Some(
                "Counters and histograms in the OpenMetrics 1.0 text format: tokens issued, \
                 validations by result, reuse detected, store latency and errors, rate-limited \
                 requests, 5xx answers.",
            ))
            .response(
                "200",
                utoipa::openapi::ResponseBuilder::new()
                    .description("The metrics")
                    .content("application/openmetrics-text", text)
                    .header("Cache-Control", string_header("no-store"))
                    .build(),
            )
            .response("401", unauthorized())
            .security(security[0].clone())
            .security(security[1].clone())
            .build();
        openapi.paths.add_path_operation("/metrics", vec![HttpMethod::Get], metrics);
    }
}

/// A string response header described by `description`.
fn string_header(description: &str) -> utoipa::openapi::header::Header {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

/// An error answer in the API's one shape, with `Cache-Control` and `headers` (name,
/// description, integer or string).
fn error_response(description: &str, headers: &[(&str, &str, bool)]) -> utoipa::openapi::Response {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, Ref};
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ValidateResponse")));
    let mut response = utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content("application/json", content.build())
        .header("Cache-Control", string_header("no-store"));
    for (name, description, integer) in headers {
        let schema = if *integer {
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))
        } else {
            ObjectBuilder::new().schema_type(Type::String)
        };
        let header = utoipa::openapi::header::HeaderBuilder::new()
            .schema(schema)
            .description(Some(*description))
            .build();
        response = response.header(*name, header);
    }
    response.build()
}
