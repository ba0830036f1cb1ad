/**
 * The whole service in one stack per stage: storage, API, web UI and monitoring, wired so that
 * the API allows exactly the site's origin, the site's `config.json` points at the API, and the
 * site's CSP lets the page call exactly that API.
 */
import { Annotations, Aws, CfnOutput, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { TokenApi } from './api.ts';
import type { ServiceConfig } from './config.ts';
import { Monitoring } from './monitoring.ts';
import { acknowledgeCdkInternals } from './nag.ts';
import { TokenStorage } from './storage.ts';
import { ApiFirewall } from './waf.ts';
import { WebContent, WebHosting } from './web.ts';

/** Annotation ids, so tests and `cdk synth --strict` users can tell the warnings apart. */
export const WARNING = {
  lambdaZipMissing: 'token-service:lambdaZipMissing',
  uiDistMissing: 'token-service:uiDistMissing',
  noPerClientLimit: 'token-service:noPerClientLimit',
} as const;

export interface TokenServiceStackProps extends StackProps {
  readonly config: ServiceConfig;
}

/** One-time-token service: DynamoDB + Secrets Manager + Lambda + API Gateway + S3/CloudFront. */
export class TokenServiceStack extends Stack {
  readonly storage: TokenStorage;
  readonly api: TokenApi;
  readonly web: WebHosting;
  readonly content: WebContent;
  readonly firewall?: ApiFirewall;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: TokenServiceStackProps) {
    super(scope, id, props);
    const { config } = props;
    // Names that must be unique per account (and region) start with the stack name, which
    // holds the stage; see config.ts stackNameFor.
    const names = this.stackName;

    if (config.lambdaZip.isPlaceholder) {
      Annotations.of(this).addWarningV2(
        WARNING.lambdaZipMissing,
        `Lambda zip not found at ${config.lambdaZip.requested}; using the placeholder that answers every request ` +
          'with an error (allowPlaceholders=true). Do not deploy this template over a live stage.',
      );
    }
    if (config.uiDist.isPlaceholder) {
      Annotations.of(this).addWarningV2(
        WARNING.uiDistMissing,
        `Web UI not found at ${config.uiDist.requested}; using the placeholder page (allowPlaceholders=true). ` +
          'Do not deploy this template over a live stage.',
      );
    }

    this.storage = new TokenStorage(this, 'Storage', {
      tableRemovalPolicy: config.tableRemovalPolicy,
      deletionProtection: config.tableDeletionProtection,
      issuerKeys: config.issuerKeys,
    });
    this.web = new WebHosting(this, 'Web', {
      hosting: config.hosting,
      namePrefix: names,
      customDomain: config.customDomain,
      distPath: config.uiDist.path,
    });
    this.api = new TokenApi(this, 'Api', {
      table: this.storage.table,
      signingKey: this.storage.signingKey,
      issuerKeys: this.storage.issuerKeys,
      codePath: config.lambdaZip.path,
      allowedOrigin: this.web.url,
      apiType: config.apiType,
      apiName: names,
      stageName: config.stage,
      throttleRate: config.throttleRate,
      throttleBurst: config.throttleBurst,
      tracing: config.tracing,
    });
    // The CSP names the API's exact origin, except in one case: an HTTP API's CORS settings live
    // on the API resource and name the site's CloudFront domain, so the headers policy cannot
    // also name the API's id (CloudFormation would see a dependency cycle). There the CSP allows
    // any execute-api host of this region; a custom domain (a plain string) removes the cycle.
    const cycle = config.apiType === 'http' && !config.customDomain;
    this.web.allowConnectionsTo(cycle ? `https://*.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}` : this.api.origin);

    if (config.waf) {
      this.firewall = new ApiFirewall(this, 'Firewall', {
        stage: this.api.restApi!.deploymentStage,
        name: names,
        rateLimit: config.waf.rateLimit,
        windowSeconds: config.waf.windowSeconds,
        allowedOrigin: this.web.url,
      });
    } else {
      Annotations.of(this).addWarningV2(
        WARNING.noPerClientLimit,
        'No WAF web ACL (waf=false or apiType=http): API Gateway throttling is the only limit, and all clients share it.',
      );
      if (this.api.restApi) {
        Validations.of(this.api.restApi.deploymentStage).acknowledge({
          id: 'AwsSolutions-APIG3',
          reason: 'Deployed with -c waf=false on purpose (a throwaway stage, or to save the web ACL\'s monthly fee); synth warns that throttling is then the only, shared, limit.',
        });
      }
    }

    this.content = new WebContent(this, 'WebContent', {
      hosting: this.web,
      distPath: config.uiDist.path,
      apiBaseUrl: this.api.url,
    });

    this.monitoring = new Monitoring(this, 'Monitoring', {
      namePrefix: names,
      api: this.api,
      apiName: names,
      table: this.storage.table,
      firewall: this.firewall,
      alarmEmails: config.alarmEmails,
    });

    new CfnOutput(this, 'SiteUrl', { value: this.web.url, description: 'Open this in a browser' });
    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'API base URL (no trailing slash)' });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.monitoring.topic.topicArn,
      description: 'SNS topic of the alarms: subscribe e-mail, chat or paging to it',
    });
    if (this.storage.issuerKeys) {
      new CfnOutput(this, 'IssuerKeysSecretArn', {
        value: this.storage.issuerKeys.secretArn,
        description: 'Secret holding the issuer keys: aws secretsmanager get-secret-value --secret-id <this> --query SecretString',
      });
    }
    if (config.customDomain) {
      new CfnOutput(this, 'DistributionDomainName', {
        value: this.web.distribution!.distributionDomainName,
        description: `Point ${config.customDomain.domainName} here (CNAME, or a Route 53 alias)`,
      });
    }

    acknowledgeCdkInternals(this, this.web.bucket, this.web.distribution !== undefined);
  }
}
