//! Names the backend shares with the CDK app in `infra/`. The single source of truth is
//! `contract.json` at the repository root; the test below fails if these constants drift from it,
//! and `infra/` imports the same file.

/// Default DynamoDB table name.
pub const DEFAULT_TABLE: &str = "TokenTable";
/// The table's partition key: the token's `uuid` claim, a String (`S`) attribute.
pub const PARTITION_KEY: &str = "uuid";
/// The table's TTL attribute: expiry as a Number (`N`) in epoch seconds. DynamoDB TTL only
/// deletes items whose TTL attribute is a Number of epoch seconds
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/time-to-live-ttl-before-you-start.html>).
pub const TTL_ATTRIBUTE: &str = "expiry";

/// Environment variable: DynamoDB table name.
pub const ENV_TABLE: &str = "TOKEN_SERVICE_TABLE";
/// Environment variable: ARN of the AWS Secrets Manager secret holding the signing key.
pub const ENV_SECRET_ARN: &str = "TOKEN_SERVICE_SECRET_ARN";
/// Environment variable: the signing key itself (local use and tests).
pub const ENV_SECRET: &str = "TOKEN_SERVICE_SECRET";
/// Environment variable: comma-separated CORS origins.
pub const ENV_ALLOWED_ORIGINS: &str = "TOKEN_SERVICE_ALLOWED_ORIGINS";
/// Environment variable: longest lifetime a request may ask for, seconds.
pub const ENV_MAX_TTL: &str = "TOKEN_SERVICE_MAX_TTL";
/// Environment variable: default lifetime, seconds.
pub const ENV_DEFAULT_TTL: &str = "TOKEN_SERVICE_DEFAULT_TTL";
/// Environment variable: replay window of the `Idempotency-Key`, seconds.
pub const ENV_REPLAY_WINDOW: &str = "TOKEN_SERVICE_REPLAY_WINDOW";
/// Environment variable (local server): address to listen on.
pub const ENV_LISTEN: &str = "TOKEN_SERVICE_LISTEN";
/// Environment variable (local server): `embedded` or `dynamodb`.
pub const ENV_STORE: &str = "TOKEN_SERVICE_STORE";
/// Environment variable (local server): directory of the embedded store and generated key.
pub const ENV_DATA_DIR: &str = "TOKEN_SERVICE_DATA_DIR";
/// Environment variable (local server): directory of the built web UI.
pub const ENV_UI_DIR: &str = "TOKEN_SERVICE_UI_DIR";
/// Environment variable (local server): seconds between sweeps of expired records.
pub const ENV_SWEEP_INTERVAL: &str = "TOKEN_SERVICE_SWEEP_INTERVAL";
/// Environment variable: previous signing keys, comma-separated (verification only).
pub const ENV_PREVIOUS_SECRETS: &str = "TOKEN_SERVICE_PREVIOUS_SECRETS";
/// Environment variable: issuer keys, comma-separated (local use and tests).
pub const ENV_ISSUER_KEYS: &str = "TOKEN_SERVICE_ISSUER_KEYS";
/// Environment variable (local server): file of issuer keys, one a line.
pub const ENV_ISSUER_KEYS_FILE: &str = "TOKEN_SERVICE_ISSUER_KEYS_FILE";
/// Environment variable (Lambda): ARN of the Secrets Manager secret holding the issuer keys.
pub const ENV_ISSUER_KEYS_SECRET_ARN: &str = "TOKEN_SERVICE_ISSUER_KEYS_SECRET_ARN";
/// Environment variable: requests per minute per client on `/tokens`; 0 or unset is unlimited.
pub const ENV_RATE_LIMIT_PER_MINUTE: &str = "TOKEN_SERVICE_RATE_LIMIT_PER_MINUTE";
/// Environment variable (local server): take the client address from `X-Forwarded-For`.
pub const ENV_TRUST_FORWARDED_FOR: &str = "TOKEN_SERVICE_TRUST_FORWARDED_FOR";
/// Environment variable: overall deadline of one request, seconds.
pub const ENV_REQUEST_TIMEOUT: &str = "TOKEN_SERVICE_REQUEST_TIMEOUT";
/// Environment variable (local server): header read and idle keep-alive timeout, seconds.
pub const ENV_HEADER_READ_TIMEOUT: &str = "TOKEN_SERVICE_HEADER_READ_TIMEOUT";
/// Environment variable (local server): most connections served at once.
pub const ENV_MAX_CONNECTIONS: &str = "TOKEN_SERVICE_MAX_CONNECTIONS";
/// The Lambda binary's name, as `cargo lambda build` names its output folder.
pub const LAMBDA_BINARY: &str = "token-service-lambda";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::names;
    use serde_json::Value;

    #[test]
    fn the_constants_match_contract_json() {
        let text = include_str!("../../contract.json");
        let contract: Value = serde_json::from_str(text).unwrap();
        let pairs = [
            ("/table/defaultName", DEFAULT_TABLE),
            ("/table/partitionKey", PARTITION_KEY),
            ("/table/ttlAttribute", TTL_ATTRIBUTE),
            ("/env/tableName", ENV_TABLE),
            ("/env/secretArn", ENV_SECRET_ARN),
            ("/env/secret", ENV_SECRET),
            ("/env/allowedOrigins", ENV_ALLOWED_ORIGINS),
            ("/env/maxTtl", ENV_MAX_TTL),
            ("/env/defaultTtl", ENV_DEFAULT_TTL),
            ("/env/replayWindow", ENV_REPLAY_WINDOW),
            ("/env/listen", ENV_LISTEN),
            ("/env/store", ENV_STORE),
            ("/env/dataDir", ENV_DATA_DIR),
            ("/env/uiDir", ENV_UI_DIR),
            ("/env/sweepInterval", ENV_SWEEP_INTERVAL),
            ("/env/previousSecrets", ENV_PREVIOUS_SECRETS),
            ("/env/issuerKeys", ENV_ISSUER_KEYS),
            ("/env/issuerKeysFile", ENV_ISSUER_KEYS_FILE),
            ("/env/issuerKeysSecretArn", ENV_ISSUER_KEYS_SECRET_ARN),
            ("/env/rateLimitPerMinute", ENV_RATE_LIMIT_PER_MINUTE),
            ("/env/trustForwardedFor", ENV_TRUST_FORWARDED_FOR),
            ("/env/requestTimeout", ENV_REQUEST_TIMEOUT),
            ("/env/headerReadTimeout", ENV_HEADER_READ_TIMEOUT),
            ("/env/maxConnections", ENV_MAX_CONNECTIONS),
            ("/metrics/namespace", names::NAMESPACE),
            ("/metrics/functionNameDimension", names::FUNCTION_NAME_DIMENSION),
            ("/metrics/reuseDetected", names::REUSE_DETECTED),
            ("/metrics/tokensIssued", names::TOKENS_ISSUED),
            ("/metrics/tokensRevoked", names::TOKENS_REVOKED),
            ("/metrics/validations", names::VALIDATIONS),
            ("/metrics/resultDimension", "result"),
            ("/metrics/storeOperationDuration", names::STORE_OPERATION_DURATION),
            ("/metrics/storeErrors", names::STORE_ERRORS),
            ("/metrics/operationDimension", "operation"),
            ("/metrics/rateLimited", names::RATE_LIMITED),
            ("/metrics/serverErrors", names::SERVER_ERRORS),
            ("/lambda/binary", LAMBDA_BINARY),
        ];
        for (pointer, ours) in pairs {
            assert_eq!(contract.pointer(pointer).and_then(Value::as_str), Some(ours), "{pointer}");
        }
        assert_eq!(
            contract.pointer("/lambda/zip").and_then(Value::as_str),
            Some(format!("target/lambda/{LAMBDA_BINARY}/bootstrap.zip").as_str())
        );
    }
}
