//! SDK settings for DynamoDB Local on 127.0.0.1, for the tests that call it themselves
//! (`faults.rs`, `outage.rs`).

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use backend::store::dynamodb::https_client;

/// SDK configuration for DynamoDB Local at `endpoint`, built field by field like the service's
/// `sdk_config` (its HTTPS client), with static test credentials and the given retries and
/// timeouts. Nothing is read from the environment, profile files or the instance metadata
/// service: a loader (`aws_config::defaults`) would fall back to those for anything not given,
/// and IMDS is off limits here.
pub fn sdk_config(endpoint: &str, retry: RetryConfig, timeouts: TimeoutConfig) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(https_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local", "local", None, None, "tests",
        )))
        .retry_config(retry)
        .timeout_config(timeouts)
        .build()
}
