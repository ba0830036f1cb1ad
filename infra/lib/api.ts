/**
 * The HTTP API: one Rust Lambda function that serves every route (`GET /tokens` issues,
 * `POST /tokens` validates, `GET /health`), behind either an API Gateway REST API (default) or,
 * with `apiType=http`, an API Gateway HTTP API (v2), which costs less per request but cannot
 * carry a WAF web ACL. The function may write, update and read token items, describe its table
 * and read the signing key (and, with issuer keys on, the issuer-keys secret), and nothing else.
 */
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { ApiType } from './config.ts';
import { contract } from './contract.ts';

/** How long the function's logs and the API access logs are kept. */
export const LOG_RETENTION = logs.RetentionDays.ONE_MONTH;
/**
 * Lambda memory, MB: the minimum. Measured (BENCHMARKS.md, "The Lambda under the Runtime API
 * emulator"): the function peaks at 32.9 MB resident as a debug build after 100 issue+validate
 * pairs, 17.7 MB as a release build, so 128 leaves at least 95 MB spare. More memory would buy
 * CPU (in proportion), which only the cold start's TLS handshakes would use; re-measure its Init
 * Duration on AWS before raising this.
 */
export const MEMORY_MB = 128;
/** Lambda timeout, seconds: a cold start plus one Secrets Manager and one DynamoDB call. */
export const TIMEOUT_SECONDS = 10;
/**
 * Request headers the browser may send cross-origin: the UI posts JSON, and sends the shared
 * crate's `IDEMPOTENCY_KEY_HEADER` with every validation (a test compares the two).
 */
export const CORS_ALLOW_HEADERS = ['Content-Type', 'Idempotency-Key'];
/**
 * Also allowed cross-origin when issuer keys are on: the UI sends its issuer key in it
 * (RFC 6750 section 2.1), so without it the browser's preflight would refuse every issue.
 */
export const ISSUER_KEY_HEADER = 'Authorization';
/** Response headers the browser may read cross-origin (the backend sets both on some answers). */
export const CORS_EXPOSE_HEADERS = ['Retry-After', 'Idempotency-Key'];
/**
 * HTTP API access log line: REST's standard fields where HTTP APIs have them (`routeKey` instead
 * of `resourcePath`; no `caller`/`user`, which need IAM authorization). No bodies, which hold tokens.
 */
export const HTTP_ACCESS_LOG_FORMAT = apigw.AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    ip: '$context.identity.sourceIp',
    requestTime: '$context.requestTime',
    httpMethod: '$context.httpMethod',
    routeKey: '$context.routeKey',
    status: '$context.status',
    protocol: '$context.protocol',
    responseLength: '$context.responseLength',
    integrationError: '$context.integrationErrorMessage',
  }),
);
/** How long browsers may cache a preflight answer. */
export const CORS_MAX_AGE = Duration.hours(1);

/**
 * Data-plane actions the function needs on the token table: insert on issue (PutItem), the
 * conditional consume on validate (UpdateItem), the status read (GetItem). Also the DynamoDB
 * operation names the alarms watch.
 */
export const TABLE_ITEM_ACTIONS = ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:GetItem'];
/** Everything the function may do on the table: the item actions plus the cold-start readiness check. */
export const TABLE_ACTIONS = [...TABLE_ITEM_ACTIONS, 'dynamodb:DescribeTable'];
/** Actions the function needs on the signing-key secret: it only ever reads the value. */
export const SECRET_ACTIONS = ['secretsmanager:GetSecretValue'];

export interface TokenApiProps {
  readonly table: dynamodb.ITable;
  readonly signingKey: secretsmanager.ISecret;
  /** The issuer-keys secret, if issuing needs a key; undefined keeps issuing open. */
  readonly issuerKeys?: secretsmanager.ISecret;
  /** Folder or zip file holding the `bootstrap` executable (built by `cargo lambda`). */
  readonly codePath: string;
  /** The one browser origin allowed to call the API, e.g. `https://d123.cloudfront.net`. */
  readonly allowedOrigin: string;
  readonly apiType: ApiType;
  /** Name of the API, unique per account and region: the stack name. */
  readonly apiName: string;
  /** REST API stage name (the deployment stage). HTTP APIs use their `$default` stage. */
  readonly stageName: string;
  /** Steady-state limit per method (REST) or route (HTTP), requests per second. */
  readonly throttleRate: number;
  /** Burst limit per method or route, requests. */
  readonly throttleBurst: number;
  /** X-Ray active tracing on the function, and on the stage where API Gateway supports it (REST). */
  readonly tracing: boolean;
}

/** The token Lambda function and the API in front of it. */
export class TokenApi extends Construct {
  readonly function: lambda.Function;
  readonly apiType: ApiType;
  /** Set when `apiType` is `rest`. */
  readonly restApi?: apigw.RestApi;
  /** Set when `apiType` is `http`. */
  readonly httpApi?: apigwv2.HttpApi;
  /** The stage API Gateway reports metrics under: the REST stage name, or `$default`. */
  readonly metricsStage: string;
  /**
   * Base URL, no trailing slash: `https://{id}.execute-api.{region}.amazonaws.com/{stage}` for
   * REST, `https://{id}.execute-api.{region}.amazonaws.com` for HTTP (its `$default` stage has
   * no path prefix).
   */
  readonly url: string;
  /** Scheme and host of `url`: what the site's CSP `connect-src` must allow. */
  readonly origin: string;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: TokenApiProps) {
    super(scope, id);
    this.apiType = props.apiType;

    const logGroup = new logs.LogGroup(this, 'FunctionLogs', {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // A role of our own rather than the default one: the default attaches
    // AWSLambdaBasicExecutionRole, which allows writing to every log group in the account.
    const role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'One-time-token service Lambda: put/update/get tokens, read the signing key, write its logs',
    });
    role.addToPolicy(
      new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
    );
    // Not grantReadWriteData: issuing is a conditional put, validating a conditional update,
    // status a get and readiness a describe, so the function never scans, queries or deletes.
    role.addToPolicy(new iam.PolicyStatement({ actions: TABLE_ACTIONS, resources: [props.table.tableArn] }));
    role.addToPolicy(new iam.PolicyStatement({ actions: SECRET_ACTIONS, resources: [props.signingKey.secretArn] }));
    if (props.issuerKeys) {
      role.addToPolicy(new iam.PolicyStatement({ actions: SECRET_ACTIONS, resources: [props.issuerKeys.secretArn] }));
    }

    this.function = new lambda.Function(this, 'Function', {
      description: 'One-time-token service (Rust, axum on lambda_http)',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(props.codePath),
      memorySize: MEMORY_MB,
      timeout: Duration.seconds(TIMEOUT_SECONDS),
      role,
      logGroup,
      tracing: props.tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
      environment: {
        [contract.env.tableName]: props.table.tableName,
        [contract.env.secretArn]: props.signingKey.secretArn,
        [contract.env.allowedOrigins]: props.allowedOrigin,
        // The backend reads the keys once per cold start; without the variable issuing is open.
        ...(props.issuerKeys ? { [contract.env.issuerKeysSecretArn]: props.issuerKeys.secretArn } : {}),
        // REST (v1) events carry the stage in the path (`/prod/tokens`); this makes lambda_http
        // strip it, so the same router serves Lambda and the local server. HTTP API events on
        // the `$default` stage have no stage in the path, and lambda_http leaves them alone.
        AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH: 'true',
      },
    });
    if (props.tracing) {
      // Lambda's active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, which
      // X-Ray only grants on "*" (those actions have no resource type).
      Validations.of(role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: 'X-Ray trace upload (xray:PutTraceSegments, xray:PutTelemetryRecords) supports no resource-level permissions, so the tracing statement must name "*".',
      });
    }

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const stack = Stack.of(this);
    if (props.apiType === 'rest') {
      this.restApi = this.buildRestApi(props);
      this.metricsStage = this.restApi.deploymentStage.stageName;
      this.origin = `https://${this.restApi.restApiId}.execute-api.${stack.region}.${stack.urlSuffix}`;
      this.url = `${this.origin}/${this.restApi.deploymentStage.stageName}`;
    } else {
      this.httpApi = this.buildHttpApi(props);
      this.metricsStage = '$default';
      this.origin = `https://${this.httpApi.apiId}.execute-api.${stack.region}.${stack.urlSuffix}`;
      this.url = this.origin;
    }
  }

  /** The request headers the browser may send cross-origin. */
  private allowHeaders(props: TokenApiProps): string[] {
    return props.issuerKeys ? [...CORS_ALLOW_HEADERS, ISSUER_KEY_HEADER] : CORS_ALLOW_HEADERS;
  }

  private buildRestApi(props: TokenApiProps): apigw.RestApi {
    const api = new apigw.RestApi(this, 'Api', {
      restApiName: props.apiName,
      description: 'One-time-token service',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // Access logging needs the account-level API Gateway CloudWatch role; CDK sets it up.
      // It is retained on destroy (the default): other APIs in the account may log through it.
      cloudWatchRole: true,
      deployOptions: {
        stageName: props.stageName,
        // Stage-wide settings are applied to each method separately (API Gateway's `*/*`
        // method settings): GET /tokens, POST /tokens and GET /health each get these limits.
        throttlingRateLimit: props.throttleRate,
        throttlingBurstLimit: props.throttleBurst,
        tracingEnabled: props.tracing,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        // Standard fields only: request and response bodies (which hold tokens) are never logged.
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
      },
      defaultCorsPreflightOptions: {
        allowOrigins: [props.allowedOrigin],
        allowMethods: ['GET', 'POST', 'OPTIONS'],
        allowHeaders: this.allowHeaders(props),
        maxAge: CORS_MAX_AGE,
      },
    });

    // Errors produced by API Gateway itself (throttling, WAF is separate, unknown route, Lambda
    // failure) never reach the function, so they need the CORS headers here or the browser
    // hides them.
    const corsHeaders = {
      'Access-Control-Allow-Origin': `'${props.allowedOrigin}'`,
      'Access-Control-Expose-Headers': `'${CORS_EXPOSE_HEADERS.join(',')}'`,
      Vary: "'Origin'",
    };
    api.addGatewayResponse('Default4xx', { type: apigw.ResponseType.DEFAULT_4XX, responseHeaders: corsHeaders });
    api.addGatewayResponse('Default5xx', { type: apigw.ResponseType.DEFAULT_5XX, responseHeaders: corsHeaders });

    const integration = new apigw.LambdaIntegration(this.function, { allowTestInvoke: false });
    const tokens = api.root.addResource('tokens');
    tokens.addMethod('GET', integration);
    tokens.addMethod('POST', integration);
    tokens.addResource('status').addMethod('POST', integration);
    tokens.addResource('revoke').addMethod('POST', integration);
    api.root.addResource('health').addMethod('GET', integration);
    api.root.addResource('openapi.json').addMethod('GET', integration);

    // RestApi.url ends in '/', and RestApi adds an `Endpoint` output of its own; the stack
    // publishes `ApiUrl` instead, in the form config.json wants.
    api.node.tryRemoveChild('Endpoint');

    Validations.of(api).acknowledge(
      {
        id: 'AwsSolutions-APIG2',
        reason: 'Requests are validated once, by the Lambda with the shared crate\'s types, which answers 400 in the API\'s own error shape; a second schema in API Gateway would drift from it.',
      },
      {
        id: 'AwsSolutions-APIG4',
        reason: 'The API is public by design: issuing and validating one-time tokens needs no caller identity (the token is the credential); abuse is limited per client IP by WAF and per method by stage throttling.',
      },
      {
        id: 'AwsSolutions-COG4',
        reason: 'No Cognito user pool: the API is public by design (see AwsSolutions-APIG4) and browsers call it without signing in.',
      },
      {
        id: 'AwsSolutions-APIG6',
        reason: 'JSON access logs record every request; execution logging would write to an API-Gateway-owned log group that never expires and whose retention this stack cannot set.',
      },
    );
    // The account-wide API Gateway CloudWatch role uses AWS's managed policy for exactly this.
    Validations.of(api.node.findChild('CloudWatchRole')).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      reason: 'AmazonAPIGatewayPushToCloudWatchLogs is the policy AWS documents for the account-wide API Gateway logging role, and AWS keeps it current with the log actions API Gateway needs.',
    });
    return api;
  }

  private buildHttpApi(props: TokenApiProps): apigwv2.HttpApi {
    const api = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: props.apiName,
      description: 'One-time-token service',
      createDefaultStage: false,
      // API Gateway answers preflight requests and sets these headers on every response, so its
      // own errors (429 throttling, 5xx) are readable by the browser too.
      corsPreflight: {
        allowOrigins: [props.allowedOrigin],
        allowMethods: [apigwv2.CorsHttpMethod.GET, apigwv2.CorsHttpMethod.POST, apigwv2.CorsHttpMethod.OPTIONS],
        allowHeaders: this.allowHeaders(props),
        exposeHeaders: CORS_EXPOSE_HEADERS,
        maxAge: CORS_MAX_AGE,
      },
    });
    new apigwv2.HttpStage(this, 'HttpStage', {
      httpApi: api,
      // `$default`: no stage prefix in the URL or in the event's rawPath, which lambda_http would
      // otherwise pass on to the router (the stage is in the stack and API names instead).
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: props.throttleRate, burstLimit: props.throttleBurst },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
        format: HTTP_ACCESS_LOG_FORMAT,
      },
    });
    const integration = new HttpLambdaIntegration('Function', this.function, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    const routes = [
      ...api.addRoutes({ path: '/tokens', methods: [apigwv2.HttpMethod.GET, apigwv2.HttpMethod.POST], integration }),
      ...api.addRoutes({ path: '/tokens/status', methods: [apigwv2.HttpMethod.POST], integration }),
      ...api.addRoutes({ path: '/tokens/revoke', methods: [apigwv2.HttpMethod.POST], integration }),
      ...api.addRoutes({ path: '/health', methods: [apigwv2.HttpMethod.GET], integration }),
      ...api.addRoutes({ path: '/openapi.json', methods: [apigwv2.HttpMethod.GET], integration }),
    ];
    for (const route of routes) {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason: 'The API is public by design: issuing and validating one-time tokens needs no caller identity (the token is the credential); abuse is limited per route by stage throttling.',
      });
    }
    return api;
  }
}
