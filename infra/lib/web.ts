/**
 * The web UI: trunk's `dist/` folder in S3, served either privately through CloudFront (default)
 * or from the public S3 static-website endpoint, plus a generated `config.json` that tells the
 * UI where the API is.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { contract } from './contract.ts';
import type { Hosting } from './config.ts';

/** The page every unknown path falls back to, so that client-side routes survive a reload. */
export const INDEX_PAGE = 'index.html';
/** Content type browsers require for `WebAssembly.instantiateStreaming`. */
export const WASM_CONTENT_TYPE = 'application/wasm';
/** trunk puts a content hash in every wasm file name, so a wasm file never changes. */
export const WASM_CACHE_CONTROL = 'public, max-age=31536000, immutable';

export interface WebHostingProps {
  readonly hosting: Hosting;
}

/**
 * The bucket the UI lives in and how browsers reach it.
 *
 * - `cloudfront`: private bucket (all public access blocked, TLS-only bucket policy) read by
 *   CloudFront through origin access control; HTTPS only; 403/404 from S3 become `/index.html`
 *   with status 200 (SPA fallback).
 * - `s3-website`: public-read bucket with static-website hosting; HTTP only, since website
 *   endpoints have no TLS (so no TLS-only policy either: it would deny every website request);
 *   the error document is `index.html`, so unknown paths render the UI with status 404.
 */
export class WebHosting extends Construct {
  readonly bucket: s3.Bucket;
  /** Set in `cloudfront` mode only. */
  readonly distribution?: cloudfront.Distribution;
  /** The site's origin, no trailing slash: what browsers send as `Origin` and the API allows. */
  readonly url: string;

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
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ACLS_ONLY,
      });
      this.url = this.bucket.bucketWebsiteUrl;
      return;
    }

    this.bucket = new s3.Bucket(this, 'Bucket', {
      ...lifecycle,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
    });
    const spaFallback = (httpStatus: number): cloudfront.ErrorResponse => ({
      httpStatus,
      responseHttpStatus: 200,
      responsePagePath: `/${INDEX_PAGE}`,
      ttl: Duration.seconds(10),
    });
    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'One-time-token service web UI',
      defaultRootObject: INDEX_PAGE,
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        compress: true,
      },
      // S3 answers 403 (not 404) for a missing key when the reader may not list the bucket.
      errorResponses: [spaFallback(403), spaFallback(404)],
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
    });
    this.url = `https://${this.distribution.distributionDomainName}`;
  }
}

export interface WebContentProps {
  readonly hosting: WebHosting;
  /** trunk's output folder (`index.html`, hashed `.js`/`.wasm`/`.css`). */
  readonly distPath: string;
  /** Written to `config.json` as `contract.ui.apiBaseUrlField`; no trailing slash. */
  readonly apiBaseUrl: string;
}

/**
 * Uploads the UI and writes its `config.json`.
 *
 * BucketDeployment copies with `aws s3 sync`, which guesses each Content-Type from the file name
 * with Python's `mimetypes`. Recent Pythons do map `.wasm` to `application/wasm`, but that depends
 * on the handler's runtime, and a wrong type breaks `instantiateStreaming`. So the wasm files go
 * in a deployment of their own with the type set explicitly, and the main deployment excludes
 * them; each deployment's prune then only touches its own files.
 */
export class WebContent extends Construct {
  readonly site: s3deploy.BucketDeployment;
  readonly wasm: s3deploy.BucketDeployment;

  constructor(scope: Construct, id: string, props: WebContentProps) {
    super(scope, id);
    const { bucket, distribution } = props.hosting;
    // A config.json left in dist/ by local development must not shadow the generated one.
    const dist = s3deploy.Source.asset(props.distPath, { exclude: [contract.ui.configFile] });

    this.wasm = new s3deploy.BucketDeployment(this, 'Wasm', {
      destinationBucket: bucket,
      sources: [dist],
      exclude: ['*'],
      include: ['*.wasm'],
      contentType: WASM_CONTENT_TYPE,
      cacheControl: [s3deploy.CacheControl.fromString(WASM_CACHE_CONTROL)],
    });

    this.site = new s3deploy.BucketDeployment(this, 'Site', {
      destinationBucket: bucket,
      sources: [
        dist,
        s3deploy.Source.jsonData(contract.ui.configFile, { [contract.ui.apiBaseUrlField]: props.apiBaseUrl }),
      ],
      exclude: ['*.wasm'],
      // index.html and config.json change on every deploy; browsers must revalidate them.
      cacheControl: [s3deploy.CacheControl.noCache()],
      ...(distribution ? { distribution, distributionPaths: ['/*'] } : {}),
    });
    // New index.html names new wasm files: upload those first.
    this.site.node.addDependency(this.wasm);
  }
}
