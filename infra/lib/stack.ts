/**
 * The whole service in one stack: storage, API and web UI, wired so that the API allows exactly
 * the site's origin and the site's `config.json` points at the API.
 */
import { Annotations, CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { TokenApi } from './api.ts';
import type { ServiceConfig } from './config.ts';
import { TokenStorage } from './storage.ts';
import { WebContent, WebHosting } from './web.ts';

/** Annotation ids, so tests and `cdk synth --strict` users can tell the warnings apart. */
export const WARNING = {
  lambdaZipMissing: 'token-service:lambdaZipMissing',
  uiDistMissing: 'token-service:uiDistMissing',
} as const;

export interface TokenServiceStackProps extends StackProps {
  readonly config: ServiceConfig;
}

/** One-time-token service: DynamoDB + Secrets Manager + Lambda + API Gateway + S3/CloudFront. */
export class TokenServiceStack extends Stack {
  readonly storage: TokenStorage;
  readonly api: TokenApi;
  readonly web: WebHosting;

  constructor(scope: Construct, id: string, props: TokenServiceStackProps) {
    super(scope, id, props);
    const { config } = props;

    if (config.lambdaZip.isPlaceholder) {
      Annotations.of(this).addWarningV2(
        WARNING.lambdaZipMissing,
        `Lambda zip not found at ${config.lambdaZip.requested}; deploying a placeholder that answers every ` +
          'request with an error. Build it first: cargo lambda build --profile lambda --arm64 --output-format zip ' +
          '-p backend --bin token-service-lambda (or pass -c lambdaZip=PATH).',
      );
    }
    if (config.uiDist.isPlaceholder) {
      Annotations.of(this).addWarningV2(
        WARNING.uiDistMissing,
        `Web UI not found at ${config.uiDist.requested}; deploying a placeholder page. ` +
          'Build it first: trunk build --release (or pass -c uiDist=PATH).',
      );
    }

    this.storage = new TokenStorage(this, 'Storage', { tableRemovalPolicy: config.tableRemovalPolicy });
    this.web = new WebHosting(this, 'Web', { hosting: config.hosting });
    this.api = new TokenApi(this, 'Api', {
      table: this.storage.table,
      signingKey: this.storage.signingKey,
      codePath: config.lambdaZip.path,
      allowedOrigin: this.web.url,
      throttleRate: config.throttleRate,
      throttleBurst: config.throttleBurst,
    });
    new WebContent(this, 'WebContent', { hosting: this.web, distPath: config.uiDist.path, apiBaseUrl: this.api.url });

    new CfnOutput(this, 'SiteUrl', { value: this.web.url, description: 'Open this in a browser' });
    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'API base URL (no trailing slash)' });
  }
}
