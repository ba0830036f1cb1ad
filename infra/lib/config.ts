/**
 * Deploy-time options, read once from CDK context (`cdk deploy -c key=value` or `cdk.json`) into
 * a typed value. Every option has a default, so a plain `cdk synth` needs none of them.
 * Invalid values throw here, at synth time, instead of producing a surprising template.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import type { Node } from 'constructs';
import { contract, INFRA_ROOT, REPO_ROOT } from './contract.ts';

/** How the web UI is served. */
export type Hosting = 'cloudfront' | 's3-website';

/** The context keys this app reads. Values passed with `-c` arrive as strings. */
export const CONTEXT = {
  /** `cloudfront` (default): private bucket behind CloudFront (HTTPS, origin access control).
   *  `s3-website`: public S3 static-website endpoint (HTTP only, no CloudFront). */
  hosting: 'hosting',
  /** `retain` (default) or `destroy`: what `cdk destroy` does with the token table. */
  tableRemovalPolicy: 'tableRemovalPolicy',
  /** Stage-wide steady-state request rate, requests per second (default 10). */
  apiThrottleRate: 'apiThrottleRate',
  /** Stage-wide burst capacity, requests (default 20). */
  apiThrottleBurst: 'apiThrottleBurst',
  /** Path of the Lambda `bootstrap.zip`; relative paths are from the repository root. */
  lambdaZip: 'lambdaZip',
  /** Path of the built web UI folder; relative paths are from the repository root. */
  uiDist: 'uiDist',
} as const;

export const DEFAULT_THROTTLE_RATE = 10;
export const DEFAULT_THROTTLE_BURST = 20;

/** Committed stand-ins, used when the real build outputs are missing (fresh checkout). */
export const PLACEHOLDER_LAMBDA = path.join(INFRA_ROOT, 'assets', 'placeholder-lambda');
export const PLACEHOLDER_UI = path.join(INFRA_ROOT, 'assets', 'placeholder-ui');

/** A build output, or the placeholder used in its place. */
export interface AssetPath {
  /** What the asset is built from: the requested path, or the placeholder if that is missing. */
  readonly path: string;
  /** The path that was asked for (from context or contract.json). */
  readonly requested: string;
  /** True when `requested` does not exist and `path` is the placeholder. */
  readonly isPlaceholder: boolean;
}

/** Everything the stack needs to know that may differ between deployments. */
export interface ServiceConfig {
  readonly hosting: Hosting;
  readonly tableRemovalPolicy: RemovalPolicy;
  /** Requests per second, stage-wide (API Gateway `throttlingRateLimit`). */
  readonly throttleRate: number;
  /** Requests (API Gateway `throttlingBurstLimit`). */
  readonly throttleBurst: number;
  readonly lambdaZip: AssetPath;
  readonly uiDist: AssetPath;
}

/** Reads and validates the context of `node` (usually the App's). */
export function configFromContext(node: Node): ServiceConfig {
  const get = (key: string): unknown => node.tryGetContext(key);
  return {
    hosting: oneOf(CONTEXT.hosting, get(CONTEXT.hosting), ['cloudfront', 's3-website'] as const, 'cloudfront'),
    tableRemovalPolicy:
      oneOf(CONTEXT.tableRemovalPolicy, get(CONTEXT.tableRemovalPolicy), ['retain', 'destroy'] as const, 'retain') ===
      'destroy'
        ? RemovalPolicy.DESTROY
        : RemovalPolicy.RETAIN,
    throttleRate: positiveNumber(CONTEXT.apiThrottleRate, get(CONTEXT.apiThrottleRate), DEFAULT_THROTTLE_RATE),
    throttleBurst: positiveInteger(CONTEXT.apiThrottleBurst, get(CONTEXT.apiThrottleBurst), DEFAULT_THROTTLE_BURST),
    lambdaZip: assetPath(get(CONTEXT.lambdaZip), contract.lambda.zip, PLACEHOLDER_LAMBDA),
    uiDist: assetPath(get(CONTEXT.uiDist), contract.ui.dist, PLACEHOLDER_UI),
  };
}

function oneOf<T extends string>(key: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(`context ${key}=${String(value)}: expected one of ${allowed.join(', ')}`);
}

function positiveNumber(key: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`context ${key}=${String(value)}: expected a positive number`);
  return n;
}

function positiveInteger(key: string, value: unknown, fallback: number): number {
  const n = positiveNumber(key, value, fallback);
  if (!Number.isInteger(n)) throw new Error(`context ${key}=${String(value)}: expected a positive integer`);
  return n;
}

function assetPath(fromContext: unknown, fromContract: string, placeholder: string): AssetPath {
  if (fromContext !== undefined && (typeof fromContext !== 'string' || fromContext === '')) {
    throw new Error(`asset path context must be a non-empty string, got ${String(fromContext)}`);
  }
  const requested = path.resolve(REPO_ROOT, (fromContext as string | undefined) ?? fromContract);
  const exists = fs.existsSync(requested);
  return { path: exists ? requested : placeholder, requested, isPlaceholder: !exists };
}
