/**
 * The names this app shares with the Rust backend and the web UI, read from the repository's
 * `contract.json` (the single source of truth: the backend's tests read the same file).
 *
 * Never copy a string from there into this package: import `contract` instead, so that a rename
 * on either side fails a test rather than a deployment.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import contractJson from '../../contract.json' with { type: 'json' };

/** Shape of `contract.json` as far as the infrastructure uses it. */
export interface Contract {
  readonly table: { readonly defaultName: string; readonly partitionKey: string; readonly ttlAttribute: string };
  readonly env: {
    readonly tableName: string;
    readonly secretArn: string;
    readonly issuerKeysSecretArn: string;
    readonly allowedOrigins: string;
  };
  readonly lambda: { readonly binary: string; readonly zip: string };
  readonly ui: { readonly dist: string; readonly configFile: string; readonly apiBaseUrlField: string };
  readonly metrics: MetricNames;
}

/** `contract.json`'s `metrics`: every CloudWatch metric name the app alarms on or graphs. */
export interface MetricNames {
  /** Namespace of the backend's own metrics (embedded metric format). */
  readonly namespace: string;
  /** Emitted by the backend once per attempt to use a consumed token. */
  readonly reuseDetected: string;
  /** The one dimension of the backend's metrics; its value is AWS_LAMBDA_FUNCTION_NAME. */
  readonly functionNameDimension: string;
  readonly apiGateway: {
    readonly namespace: string;
    readonly rest: ApiMetricNames;
    readonly http: ApiMetricNames;
  };
  readonly lambda: {
    readonly namespace: string;
    readonly invocations: string;
    readonly errors: string;
    readonly throttles: string;
    readonly duration: string;
    readonly concurrentExecutions: string;
  };
  readonly dynamodb: {
    readonly namespace: string;
    readonly systemErrors: string;
    readonly throttledRequests: string;
    readonly successfulRequestLatency: string;
  };
  readonly waf: {
    readonly namespace: string;
    readonly allowedRequests: string;
    readonly blockedRequests: string;
    /** `VisibilityConfig.MetricName` of the web ACL (its default action's requests). */
    readonly webAclMetric: string;
    /** `VisibilityConfig.MetricName` of the per-client-IP rate rule. */
    readonly perIpRateRuleMetric: string;
  };
}

/** API Gateway's metric names; REST (v1) and HTTP (v2) APIs spell the error counts differently. */
export interface ApiMetricNames {
  readonly requests: string;
  readonly serverErrors: string;
  readonly clientErrors: string;
  readonly latency: string;
  readonly integrationLatency: string;
}

export const contract: Contract = contractJson;

/** Absolute path of the repository root (the folder holding `contract.json`). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Absolute path of this CDK package (`infra/`). */
export const INFRA_ROOT = path.join(REPO_ROOT, 'infra');
