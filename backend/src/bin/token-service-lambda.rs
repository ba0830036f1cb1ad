//! `token-service-lambda`: the AWS Lambda entry point (API Gateway REST API proxy events).
//! Built for Graviton by `cargo lambda build --profile lambda --arm64 --output-format zip`.

use backend::lambda::{LambdaConfig, build, strip_stage};
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // JSON lines; lambda_runtime's per-invocation span adds the request id to each. CloudWatch
    // stamps the time itself.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .init();
    let started = match LambdaConfig::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => build(config).await,
        Err(e) => Err(e),
    };
    let app = started.map_err(|e| {
        tracing::error!(error = %e, "cold start failed");
        e
    })?;
    lambda_http::run(app.map_request(strip_stage)).await
}
