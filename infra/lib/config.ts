/**
 * Deploy-time options, read once from CDK context (`cdk deploy -c key=value` or `cdk.json`) into
 * a typed value. Every option but the build outputs has a default, so a plain `cdk synth` after
 * building needs none of them. Invalid values throw here, at synth time, instead of producing a
 * surprising template; so do missing build outputs, unless `allowPlaceholders=true` says that a
 * template with placeholder code is what is wanted (tests, a first look at the template).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import type { Node } from 'constructs';
import { contract, INFRA_ROOT, REPO_ROOT } from './contract.ts';

/** How the web UI is served. */
export type Hosting = 'cloudfront' | 's3-website';

/** Which API Gateway flavour fronts the Lambda. */
export type ApiType = 'rest' | 'http';

/** The context keys this app reads. Values passed with `-c` arrive as strings. */
export const CONTEXT = {
  /** Deployment stage, e.g. `prod` (default) or `staging`: names the stack, the API stage and
   *  every named resource, so several stages live side by side in one account and region. */
  stage: 'stage',
  /** `true` lets synth use the committed placeholders for a missing Lambda zip or UI folder. */
  allowPlaceholders: 'allowPlaceholders',
  /** `cloudfront` (default): private bucket behind CloudFront (HTTPS, origin access control).
   *  `s3-website`: public S3 static-website endpoint (HTTP only, no CloudFront). */
  hosting: 'hosting',
  /** `rest` (default): API Gateway REST API. `http`: API Gateway HTTP API (cheaper, no WAF). */
  apiType: 'apiType',
  /** `retain` (default) or `destroy`: what `cdk destroy` does with the token table. */
  tableRemovalPolicy: 'tableRemovalPolicy',
  /** `true` (default) or `false`: DynamoDB deletion protection on the token table. */
  tableDeletionProtection: 'tableDeletionProtection',
  /** Steady-state request rate per API method, requests per second (default 10). */
  apiThrottleRate: 'apiThrottleRate',
  /** Burst capacity per API method, requests (default 20). */
  apiThrottleBurst: 'apiThrottleBurst',
  /** `true` (default with the REST API) or `false`: a WAF web ACL with a per-client-IP rate rule. */
  waf: 'waf',
  /** Requests one client IP may make in `wafWindowSeconds` before WAF blocks it (default 300). */
  wafRateLimit: 'wafRateLimit',
  /** WAF's look-back window for `wafRateLimit`: 60, 120, 300 (default) or 600 seconds. */
  wafWindowSeconds: 'wafWindowSeconds',
  /** `true` or `false` (default): X-Ray active tracing on the Lambda (and the REST stage). */
  tracing: 'tracing',
  /** `true` or `false` (default): a generated issuer key in Secrets Manager, which issuing,
   *  revoking and the metrics then need as `Authorization: Bearer <key>`. `false` keeps them open. */
  issuerKeys: 'issuerKeys',
  /** Comma-separated e-mail addresses subscribed to the alarm topic (optional). */
  alarmEmail: 'alarmEmail',
  /** Custom domain for the site, e.g. `tokens.example.com` (needs `certificateArn`). */
  domainName: 'domainName',
  /** ARN of an ACM certificate in us-east-1 covering `domainName`. */
  certificateArn: 'certificateArn',
  /** Path of the Lambda `bootstrap.zip`; relative paths are from the repository root. */
  lambdaZip: 'lambdaZip',
  /** Path of the built web UI folder; relative paths are from the repository root. */
  uiDist: 'uiDist',
} as const;

export const DEFAULT_STAGE = 'prod';
export const DEFAULT_THROTTLE_RATE = 10;
export const DEFAULT_THROTTLE_BURST = 20;
export const DEFAULT_WAF_RATE_LIMIT = 300;
export const DEFAULT_WAF_WINDOW_SECONDS = 300;
/** AWS WAF's lowest accepted rate limit (rate-based rule statement, `Limit`). */
export const WAF_MIN_RATE_LIMIT = 10;
/** AWS WAF's accepted evaluation windows, seconds. */
export const WAF_WINDOWS = [60, 120, 300, 600] as const;
/** Base name of every stack; see {@link stackNameFor}. */
export const STACK_BASE_NAME = 'TokenService';

/** Committed stand-ins, used only with `allowPlaceholders=true` when a build output is missing. */
export const PLACEHOLDER_LAMBDA = path.join(INFRA_ROOT, 'assets', 'placeholder-lambda');
export const PLACEHOLDER_UI = path.join(INFRA_ROOT, 'assets', 'placeholder-ui');

/**
 * The CloudFormation stack name of a stage: `TokenService-<stage>`, except that `prod` keeps the
 * plain `TokenService` it was deployed under before stages existed, so that deploying prod
 * updates the live stack instead of creating a second one next to it.
 */
export function stackNameFor(stage: string): string {
  return stage === DEFAULT_STAGE ? STACK_BASE_NAME : `${STACK_BASE_NAME}-${stage}`;
}

/** A build output, or the placeholder used in its place. */
export interface AssetPath {
  /** What the asset is built from: the requested path, or the placeholder if that is missing. */
  readonly path: string;
  /** The path that was asked for (from context or contract.json). */
  readonly requested: string;
  /** True when `requested` is missing or unusable and `path` is the placeholder. */
  readonly isPlaceholder: boolean;
}

/** The optional custom domain of the site. */
export interface CustomDomain {
  readonly domainName: string;
  /** ACM certificate ARN, region us-east-1 (CloudFront reads certificates only from there). */
  readonly certificateArn: string;
}

/** Everything the stack needs to know that may differ between deployments. */
export interface ServiceConfig {
  readonly stage: string;
  readonly hosting: Hosting;
  readonly apiType: ApiType;
  readonly tableRemovalPolicy: RemovalPolicy;
  readonly tableDeletionProtection: boolean;
  /** Requests per second, per API method (API Gateway `throttlingRateLimit`). */
  readonly throttleRate: number;
  /** Requests, per API method (API Gateway `throttlingBurstLimit`). */
  readonly throttleBurst: number;
  /** The per-client-IP rate rule, or undefined when there is no web ACL. */
  readonly waf?: { readonly rateLimit: number; readonly windowSeconds: number };
  readonly tracing: boolean;
  /** True: the Lambda reads its issuer keys from a generated secret, and issuing needs one. */
  readonly issuerKeys: boolean;
  readonly alarmEmails: readonly string[];
  readonly customDomain?: CustomDomain;
  readonly lambdaZip: AssetPath;
  readonly uiDist: AssetPath;
}

/** Reads and validates the context of `node` (usually the App's). */
export function configFromContext(node: Node): ServiceConfig {
  const get = (key: string): unknown => node.tryGetContext(key);
  const allowPlaceholders = bool(CONTEXT.allowPlaceholders, get(CONTEXT.allowPlaceholders), false);
  const apiType = oneOf(CONTEXT.apiType, get(CONTEXT.apiType), ['rest', 'http'] as const, 'rest');
  const tableRemovalPolicy =
    oneOf(CONTEXT.tableRemovalPolicy, get(CONTEXT.tableRemovalPolicy), ['retain', 'destroy'] as const, 'retain') === 'destroy'
      ? RemovalPolicy.DESTROY
      : RemovalPolicy.RETAIN;
  const tableDeletionProtection = bool(CONTEXT.tableDeletionProtection, get(CONTEXT.tableDeletionProtection), true);
  if (tableRemovalPolicy === RemovalPolicy.DESTROY && tableDeletionProtection) {
    throw new Error(
      `context ${CONTEXT.tableRemovalPolicy}=destroy needs ${CONTEXT.tableDeletionProtection}=false: ` +
        'a protected table cannot be deleted with the stack',
    );
  }

  // WAF web ACLs attach to REST API stages only, not to HTTP APIs.
  const wafRequested = get(CONTEXT.waf) === undefined ? undefined : bool(CONTEXT.waf, get(CONTEXT.waf), false);
  if (apiType === 'http' && wafRequested === true) {
    throw new Error(`context ${CONTEXT.waf}=true needs ${CONTEXT.apiType}=rest: AWS WAF cannot be associated with an HTTP API`);
  }
  const wafEnabled = wafRequested ?? apiType === 'rest';
  const wafRateLimit = positiveInteger(CONTEXT.wafRateLimit, get(CONTEXT.wafRateLimit), DEFAULT_WAF_RATE_LIMIT);
  if (wafRateLimit < WAF_MIN_RATE_LIMIT) {
    throw new Error(`context ${CONTEXT.wafRateLimit}=${wafRateLimit}: AWS WAF's lowest rate limit is ${WAF_MIN_RATE_LIMIT}`);
  }
  const wafWindowSeconds = positiveInteger(CONTEXT.wafWindowSeconds, get(CONTEXT.wafWindowSeconds), DEFAULT_WAF_WINDOW_SECONDS);
  if (!(WAF_WINDOWS as readonly number[]).includes(wafWindowSeconds)) {
    throw new Error(`context ${CONTEXT.wafWindowSeconds}=${wafWindowSeconds}: expected one of ${WAF_WINDOWS.join(', ')}`);
  }

  const hosting = oneOf(CONTEXT.hosting, get(CONTEXT.hosting), ['cloudfront', 's3-website'] as const, 'cloudfront');
  const customDomain = domain(get(CONTEXT.domainName), get(CONTEXT.certificateArn));
  if (customDomain && hosting !== 'cloudfront') {
    throw new Error(`context ${CONTEXT.domainName} needs ${CONTEXT.hosting}=cloudfront: the S3 website endpoint cannot serve a certificate`);
  }

  return {
    stage: stageName(get(CONTEXT.stage)),
    hosting,
    apiType,
    tableRemovalPolicy,
    tableDeletionProtection,
    throttleRate: positiveNumber(CONTEXT.apiThrottleRate, get(CONTEXT.apiThrottleRate), DEFAULT_THROTTLE_RATE),
    throttleBurst: positiveInteger(CONTEXT.apiThrottleBurst, get(CONTEXT.apiThrottleBurst), DEFAULT_THROTTLE_BURST),
    waf: wafEnabled ? { rateLimit: wafRateLimit, windowSeconds: wafWindowSeconds } : undefined,
    tracing: bool(CONTEXT.tracing, get(CONTEXT.tracing), false),
    issuerKeys: bool(CONTEXT.issuerKeys, get(CONTEXT.issuerKeys), false),
    alarmEmails: emails(get(CONTEXT.alarmEmail)),
    customDomain,
    lambdaZip: buildOutput(CONTEXT.lambdaZip, get(CONTEXT.lambdaZip), contract.lambda.zip, PLACEHOLDER_LAMBDA, lambdaProblem, allowPlaceholders,
      'cargo lambda build --profile lambda --arm64 --output-format zip -p backend --no-default-features --bin token-service-lambda'),
    uiDist: buildOutput(CONTEXT.uiDist, get(CONTEXT.uiDist), contract.ui.dist, PLACEHOLDER_UI, uiProblem, allowPlaceholders,
      'trunk build --release'),
  };
}

/**
 * Stage names go into the stack name, the API stage, resource names and CloudWatch dimensions:
 * lower-case letters, digits and single hyphens, starting with a letter, at most 20 characters
 * (so that `TokenService-<stage>-<region>-…` stays within CloudFront's 64-character OAC names).
 */
export const STAGE_PATTERN = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,19}$/;

function stageName(value: unknown): string {
  if (value === undefined) return DEFAULT_STAGE;
  if (typeof value === 'string' && STAGE_PATTERN.test(value)) return value;
  throw new Error(
    `context ${CONTEXT.stage}=${String(value)}: expected 1-20 lower-case letters, digits and single hyphens, starting with a letter`,
  );
}

function oneOf<T extends string>(key: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(`context ${key}=${String(value)}: expected one of ${allowed.join(', ')}`);
}

function bool(key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new Error(`context ${key}=${String(value)}: expected true or false`);
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

/** Deliberately loose: SNS itself sends the confirmation mail that proves an address works. */
const EMAIL = /^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/;

function emails(value: unknown): string[] {
  if (value === undefined || value === '') return [];
  if (typeof value !== 'string') throw new Error(`context ${CONTEXT.alarmEmail}=${String(value)}: expected e-mail addresses`);
  const list = value.split(',').map((s) => s.trim());
  for (const address of list) {
    if (!EMAIL.test(address)) throw new Error(`context ${CONTEXT.alarmEmail}: ${JSON.stringify(address)} is not an e-mail address`);
  }
  return [...new Set(list)];
}

/** A host name: dot-separated labels of letters, digits and inner hyphens. */
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
/** CloudFront only uses certificates from ACM in us-east-1. */
const CERTIFICATE_ARN = /^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate\/[0-9a-f-]{36}$/;

function domain(domainName: unknown, certificateArn: unknown): CustomDomain | undefined {
  if (domainName === undefined && certificateArn === undefined) return undefined;
  if (domainName === undefined || certificateArn === undefined) {
    throw new Error(`context ${CONTEXT.domainName} and ${CONTEXT.certificateArn} go together: set both or neither`);
  }
  if (typeof domainName !== 'string' || !DOMAIN.test(domainName)) {
    throw new Error(`context ${CONTEXT.domainName}=${String(domainName)}: expected a lower-case host name such as tokens.example.com`);
  }
  if (typeof certificateArn !== 'string' || !CERTIFICATE_ARN.test(certificateArn)) {
    throw new Error(
      `context ${CONTEXT.certificateArn}=${String(certificateArn)}: expected an ACM certificate ARN in us-east-1 ` +
        '(arn:aws:acm:us-east-1:<account>:certificate/<id>); CloudFront reads certificates only from us-east-1',
    );
  }
  return { domainName, certificateArn };
}

/** Why `p` is not a usable Lambda code asset, or undefined if it is. */
function lambdaProblem(p: string): string | undefined {
  if (!fs.existsSync(p)) return 'not found';
  const stat = fs.statSync(p);
  if (stat.isDirectory()) return fs.existsSync(path.join(p, 'bootstrap')) ? undefined : 'a folder without a bootstrap file';
  return p.endsWith('.zip') ? undefined : 'not a .zip file';
}

/** Why `p` is not a usable UI folder, or undefined if it is. */
function uiProblem(p: string): string | undefined {
  if (!fs.existsSync(p)) return 'not found';
  if (!fs.statSync(p).isDirectory()) return 'not a folder';
  return fs.existsSync(path.join(p, 'index.html')) ? undefined : 'a folder without index.html (an unfinished build?)';
}

function buildOutput(
  key: string,
  fromContext: unknown,
  fromContract: string,
  placeholder: string,
  problemOf: (p: string) => string | undefined,
  allowPlaceholders: boolean,
  buildCommand: string,
): AssetPath {
  if (fromContext !== undefined && (typeof fromContext !== 'string' || fromContext === '')) {
    throw new Error(`context ${key} must be a non-empty path, got ${String(fromContext)}`);
  }
  const requested = path.resolve(REPO_ROOT, (fromContext as string | undefined) ?? fromContract);
  const problem = problemOf(requested);
  if (problem === undefined) return { path: requested, requested, isPlaceholder: false };
  if (!allowPlaceholders) {
    throw new Error(
      `${key}: ${requested} is ${problem}. Deploying now would replace the live ${key === CONTEXT.uiDist ? 'web UI' : 'Lambda code'} ` +
        `with a placeholder, so synth stops. Build it first (${buildCommand}, from the repository root) or pass -c ${key}=PATH; ` +
        `for a template with placeholders (tests, cdk destroy), pass -c ${CONTEXT.allowPlaceholders}=true.`,
    );
  }
  return { path: placeholder, requested, isPlaceholder: true };
}
