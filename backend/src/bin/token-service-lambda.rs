//! `token-service-lambda`: the AWS Lambda entry point (API Gateway REST and HTTP API proxy
//! events, Lambda function URLs). Everything but logging is in `backend::lambda`. Built for
//! Graviton by `cargo lambda build --profile lambda --arm64 --output-format zip`.

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
    backend::lambda::run().await
}
