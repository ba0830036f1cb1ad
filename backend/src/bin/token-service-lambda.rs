//! `token-service-lambda`: the AWS Lambda entry point (API Gateway REST and HTTP API proxy
//! events, Lambda function URLs). Everything but logging is in `backend::lambda`. Built for
//! Graviton by `cargo lambda build --profile lambda --arm64 --output-format zip -p backend
//! --no-default-features` (no embedded store: the Lambda only opens DynamoDB).

use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // JSON lines; lambda_runtime's per-invocation span adds the request id to each. CloudWatch
    // stamps the time itself.
    let log = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .without_time();
    tracing_subscriber::registry().with(log).with(backend::app::log_filter()).init();
    backend::lambda::run().await
}
