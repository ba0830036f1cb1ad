/**
 * The web UI: trunk's `dist/` folder in S3, served either privately through CloudFront (default)
 * or from the public S3 static-website endpoint, plus a generated `config.json` that tells the
 * UI where the API is.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Aws, Duration, Lazy, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import type { CustomDomain, Hosting } from './config.ts';
import { contract } from './contract.ts';
import { contentSecurityPolicy, CSP_MAX_LENGTH, inlineHashes } from './csp.ts';

/** The page every unknown path falls back to, so that client-side routes survive a reload. */
export const INDEX_PAGE = 'index.html';
/** Content type browsers require for `WebAssembly.instantiateStreaming`. */
export const WASM_CONTENT_TYPE = 'application/wasm';
/** For files whose names hold a content hash: such a file never changes, so cache it for a year. */
export const IMMUTABLE_CACHE_CONTROL = 'public, max-age=31536000, immutable';
/** For everything else (index.html, config.json): browsers and CloudFront revalidate each time. */
export const NO_CACHE = 'no-cache';
/** HSTS max-age: two years, the value hstspreload.org asks for. */
export const HSTS_MAX_AGE = Duration.days(730);

/**
 * A file name trunk gave a content hash: `{stem}-{hash}.{js,css}` or `{stem}-{hash}_bg.wasm`,
 * where the hash is seahash's u64 in lower-case hex without leading zeros (trunk 0.21,
 * `format!("{hash:x}")`). Requiring at least 12 hex digits keeps names like `app-cafe.js` out;
 * a real hash is that short with probability 16^-4, and is then merely served with `no-cache`.
 */
export const HASHED_NAME = /-[0-9a-f]{12,16}(?:_bg)?\.(?:js|css|wasm)$/;

export interface WebHostingProps {
  readonly hosting: Hosting;
  /**
   * Prefix of the names CloudFront requires to be unique per account (origin access control,
   * response headers policy): the stack name. The region is appended, so the same stack can
   * be deployed to several regions of one account.
   */
  readonly namePrefix: string;
  /** Optional custom domain with its us-east-1 ACM certificate (CloudFront only). */
  readonly customDomain?: CustomDomain;
  /** The built UI folder; its index.html's inline scripts go into the CSP by hash. */
  readonly distPath: string;
}

/**
 * The bucket the UI lives in and how browsers reach it.
 *
 * - `cloudfront`: private bucket (all public access blocked, TLS-only bucket policy) read by
 *   CloudFront through origin access control; HTTPS only; security headers on every response;
 *   403/404 from S3 become `/index.html` with status 200 (SPA fallback).
 * - `s3-website`: public-read bucket with static-website hosting; HTTP only, since website
 *   endpoints have no TLS (so no TLS-only policy either: it would deny every website request),
 *   and no security headers, since S3 cannot add them; the error document is `index.html`, so
 *   unknown paths render the UI with status 404.
 */
export class WebHosting extends Construct {
  readonly bucket: s3.Bucket;
  /** Set in `cloudfront` mode only. */
  readonly distribution?: cloudfront.Distribution;
  /** Set in `cloudfront` mode only. */
  readonly headersPolicy?: cloudfront.ResponseHeadersPolicy;
  /** The site's origin, no trailing slash: what browsers send as `Origin` and the API allows. */
  readonly url: string;
  private readonly connectOrigins: string[] = [];

  constructor(scope: Construct, id: string, props: WebHostingProps) {
    super(scope, id);
    // The content is rebuilt from dist/ on every deploy, so the bucket need not outlive the stack.
    const lifecycle = { removalPolicy: RemovalPolicy.DESTROY, autoDeleteObjects: true };

    if (props.hosting === 's3-website') {
      this.bucket = new s3.Bucket(this, 'Bucket', {
        ...lifecycle,
        websiteIndexDocument: INDEX_PAGE,
        websiteErrorDocument: INDEX_PAGE,
        publicReadAccess: true,
        // All four spelled out: with @aws-cdk/aws-s3:publicAccessBlockedByDefault, unset ones
        // would default to true and block the public-read policy this mode needs.
        blockPublicAccess: new s3.BlockPublicAccess({
          blockPublicAcls: true,
          ignorePublicAcls: true,
          blockPublicPolicy: false,
          restrictPublicBuckets: false,
        }),
      });
      this.url = this.bucket.bucketWebsiteUrl;
      Validations.of(this.bucket).acknowledge(
        {
          id: 'AwsSolutions-S10',
          reason: 'S3 website endpoints speak HTTP only, so a policy requiring TLS would deny every request; -c hosting=cloudfront (the default) is the HTTPS option.',
        },
        {
          id: 'AwsSolutions-S1',
          reason: 'The bucket holds only the public static UI (no tokens or secrets); API requests, where tokens travel, are logged by API Gateway access logs.',
        },
        {
          id: 'AwsSolutions-S2',
          reason: 'Public read is the point of -c hosting=s3-website: browsers load the UI straight from the website endpoint.',
        },
        {
          id: 'AwsSolutions-S5',
          reason: 'The S3 website endpoint cannot use CloudFront origin access control; -c hosting=cloudfront (the default) serves the same bucket privately.',
        },
      );
      return;
    }

    this.bucket = new s3.Bucket(this, 'Bucket', {
      ...lifecycle,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'The bucket holds only the public static UI (no tokens or secrets) and is read only by CloudFront; API requests, where tokens travel, are logged by API Gateway access logs.',
    });

    const uniqueName = (suffix: string) => `${props.namePrefix}-${Aws.REGION}-${suffix}`;

    const indexHtml = fs.readFileSync(path.join(props.distPath, INDEX_PAGE), 'utf8');
    const scriptHashes = inlineHashes(indexHtml, 'script');
    const styleHashes = inlineHashes(indexHtml, 'style');
    const csp = () => contentSecurityPolicy({ scriptHashes, styleHashes, connectOrigins: this.connectOrigins });
    this.node.addValidation({
      validate: () => {
        // Tokens (API ids, region) resolve to short values; measure with generous stand-ins.
        const sample = contentSecurityPolicy({
          scriptHashes,
          styleHashes,
          connectOrigins: this.connectOrigins.map(() => 'https://abcdefghij.execute-api.ap-southeast-5.amazonaws.com'),
        });
        return sample.length > CSP_MAX_LENGTH
          ? [`Content-Security-Policy would be ${sample.length} characters; CloudFront allows ${CSP_MAX_LENGTH}`]
          : [];
      },
    });

    this.headersPolicy = new cloudfront.ResponseHeadersPolicy(this, 'SecurityHeaders', {
      responseHeadersPolicyName: uniqueName('security-headers'),
      comment: 'One-time-token service UI: HSTS, CSP, nosniff, no referrer, no framing',
      securityHeadersBehavior: {
        strictTransportSecurity: {
          accessControlMaxAge: HSTS_MAX_AGE,
          includeSubdomains: true,
          preload: false,
          override: true,
        },
        contentSecurityPolicy: { contentSecurityPolicy: Lazy.string({ produce: csp }), override: true },
        contentTypeOptions: { override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
        // frame-ancestors 'none' in the CSP for current browsers; X-Frame-Options for older ones.
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
      },
    });

    const oac = new cloudfront.S3OriginAccessControl(this, 'OriginAccessControl', {
      originAccessControlName: uniqueName('ui'),
      description: `One-time-token service UI bucket (${props.namePrefix})`,
      signing: cloudfront.Signing.SIGV4_ALWAYS,
    });
    const spaFallback = (httpStatus: number): cloudfront.ErrorResponse => ({
      httpStatus,
      responseHttpStatus: 200,
      responsePagePath: `/${INDEX_PAGE}`,
      ttl: Duration.seconds(10),
    });
    const domain = props.customDomain;
    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: `One-time-token service web UI (${props.namePrefix})`,
      defaultRootObject: INDEX_PAGE,
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket, { originAccessControl: oac }),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        // Honours each object's Cache-Control (immutable for hashed files, no-cache otherwise).
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: this.headersPolicy,
        compress: true,
      },
      // S3 answers 403 (not 404) for a missing key when the reader may not list the bucket.
      errorResponses: [spaFallback(403), spaFallback(404)],
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      ...(domain
        ? {
            domainNames: [domain.domainName],
            certificate: acm.Certificate.fromCertificateArn(this, 'Certificate', domain.certificateArn),
            minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            sslSupportMethod: cloudfront.SSLMethod.SNI,
          }
        : {}),
    });
    this.url = domain ? `https://${domain.domainName}` : `https://${this.distribution.distributionDomainName}`;

    Validations.of(this.distribution).acknowledge(
      {
        id: 'AwsSolutions-CFR1',
        reason: 'The UI is meant to be reachable from every country; there is no geographic restriction requirement.',
      },
      {
        id: 'AwsSolutions-CFR2',
        reason: 'The distribution serves only static files; a CloudFront web ACL would have to live in us-east-1 (another stack) and the API, where abuse costs money, has its own regional web ACL.',
      },
      {
        id: 'AwsSolutions-CFR3',
        reason: 'Static-file access logs would need a second, ACL-enabled bucket and tell nothing about tokens; API requests are logged by API Gateway access logs.',
      },
    );
    if (!domain) {
      Validations.of(this.distribution).acknowledge({
        id: 'AwsSolutions-CFR4',
        reason: 'Without -c domainName the distribution uses the *.cloudfront.net certificate, whose minimum protocol CloudFront fixes at TLSv1; with a custom domain the stack sets TLSv1.2_2021.',
      });
    }
  }

  /** Lets the UI fetch from `origin` (scheme and host): adds it to the CSP's `connect-src`. */
  allowConnectionsTo(origin: string): void {
    this.connectOrigins.push(origin);
  }
}

/** trunk's output, sorted by how each file is cached and typed. Paths use `/`, relative to dist. */
export interface DistFiles {
  /** Hashed `.wasm` files: immutable, `application/wasm`. */
  readonly hashedWasm: string[];
  /** Other hashed files (JS glue, CSS): immutable. */
  readonly hashed: string[];
  /** `.wasm` files without a hash (e.g. workers): `no-cache`, `application/wasm`. */
  readonly plainWasm: string[];
  /** Everything else, index.html among them: `no-cache`. */
  readonly other: string[];
}

/** Lists `distPath` recursively, leaving out a stale root `config.json` (the stack writes its own). */
export function classifyDist(distPath: string): DistFiles {
  const files: DistFiles = { hashedWasm: [], hashed: [], plainWasm: [], other: [] };
  const walk = (dir: string, prefix: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const rel = prefix + entry.name;
      if (entry.isDirectory()) walk(path.join(dir, entry.name), `${rel}/`);
      else if (rel === contract.ui.configFile) continue;
      else if (HASHED_NAME.test(entry.name)) (rel.endsWith('.wasm') ? files.hashedWasm : files.hashed).push(rel);
      else (rel.endsWith('.wasm') ? files.plainWasm : files.other).push(rel);
    }
  };
  walk(distPath, '');
  return files;
}

/** An exact file name as an `aws s3 sync --include/--exclude` pattern (fnmatch syntax). */
export function globLiteral(name: string): string {
  return name.replace(/[[\]*?]/g, (c) => `[${c}]`);
}

export interface WebContentProps {
  readonly hosting: WebHosting;
  /** trunk's output folder (`index.html`, hashed `.js`/`.wasm`/`.css`). */
  readonly distPath: string;
  /** Written to `config.json` as `contract.ui.apiBaseUrlField`; no trailing slash. */
  readonly apiBaseUrl: string;
}

/**
 * Uploads the UI and writes its `config.json`, so that a browser never sees a page whose files
 * are missing:
 *
 * 1. hashed files (wasm, JS glue, CSS), with a one-year immutable Cache-Control;
 * 2. then, once those are in place and the security headers policy (whose CSP names the new
 *    index.html's inline script) is updated, `index.html`, `config.json` and any unhashed file,
 *    with `no-cache`, followed by a CloudFront invalidation.
 *
 * No deployment prunes: files of earlier builds stay, so a browser that loaded the previous
 * index.html a moment before the switch can still fetch the wasm it names. They are a few
 * hundred KB per UI build; the bucket is emptied when the stack is deleted.
 *
 * BucketDeployment copies with `aws s3 sync`, which guesses each Content-Type from the file name;
 * a wrong type for `.wasm` breaks `instantiateStreaming`, so wasm files are uploaded in
 * deployments of their own with the type set explicitly.
 */
export class WebContent extends Construct {
  /** Step 2: index.html, config.json and unhashed files. */
  readonly site: s3deploy.BucketDeployment;
  /** Step 1, every deployment that must finish before `site` starts (only non-empty ones exist). */
  readonly assets: s3deploy.BucketDeployment[] = [];

  constructor(scope: Construct, id: string, props: WebContentProps) {
    super(scope, id);
    const { bucket, distribution, headersPolicy } = props.hosting;
    const files = classifyDist(props.distPath);
    // A config.json left in dist/ by local development must not shadow the generated one.
    const dist = s3deploy.Source.asset(props.distPath, { exclude: [contract.ui.configFile] });
    const only = (names: string[]) => ({ exclude: ['*'], include: names.map(globLiteral) });

    const step1 = (deploymentId: string, names: string[], options: Partial<s3deploy.BucketDeploymentProps>) => {
      if (names.length === 0) return;
      this.assets.push(
        new s3deploy.BucketDeployment(this, deploymentId, {
          destinationBucket: bucket,
          sources: [dist],
          ...only(names),
          prune: false,
          ...options,
        }),
      );
    };
    const immutable = [s3deploy.CacheControl.fromString(IMMUTABLE_CACHE_CONTROL)];
    const noCache = [s3deploy.CacheControl.fromString(NO_CACHE)];
    step1('HashedWasm', files.hashedWasm, { contentType: WASM_CONTENT_TYPE, cacheControl: immutable });
    step1('Hashed', files.hashed, { cacheControl: immutable });
    step1('PlainWasm', files.plainWasm, { contentType: WASM_CONTENT_TYPE, cacheControl: noCache });

    this.site = new s3deploy.BucketDeployment(this, 'Site', {
      destinationBucket: bucket,
      sources: [
        dist,
        s3deploy.Source.jsonData(contract.ui.configFile, { [contract.ui.apiBaseUrlField]: props.apiBaseUrl }),
      ],
      exclude: [...files.hashedWasm, ...files.hashed, ...files.plainWasm].map(globLiteral),
      prune: false,
      cacheControl: noCache,
      ...(distribution ? { distribution, distributionPaths: ['/*'] } : {}),
    });
    for (const deployment of this.assets) this.site.node.addDependency(deployment);
    if (headersPolicy) this.site.node.addDependency(headersPolicy);
  }
}
