/**
 * The HTTP API: a REST API Gateway in front of one Rust Lambda function that serves every route
 * (`GET /tokens` issues, `POST /tokens` validates, `GET /health`). The function may write and
 * delete token items and read the signing key, and nothing else.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { contract } from './contract.ts';

/** API Gateway stage; part of every API URL. */
export const STAGE_NAME = 'prod';
/** How long the function's logs and the API access logs are kept. */
export const LOG_RETENTION = logs.RetentionDays.ONE_MONTH;
/** Lambda memory, MB. A Rust handler doing one DynamoDB call needs little; 128 is the minimum. */
export const MEMORY_MB = 128;
/** Lambda timeout, seconds: a cold start plus one Secrets Manager and one DynamoDB call. */
export const TIMEOUT_SECONDS = 10;
/** Request headers the browser may send cross-origin (the UI posts JSON). */
export const CORS_ALLOW_HEADERS = ['Content-Type'];
/** How long browsers may cache a preflight answer. */
export const CORS_MAX_AGE = Duration.hours(1);

/** Actions the function needs on the token table: insert on issue, conditional delete on validate. */
export const TABLE_ACTIONS = ['dynamodb:PutItem', 'dynamodb:DeleteItem'];
/** Actions the function needs on the signing-key secret. */
export const SECRET_ACTIONS = ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'];

export interface TokenApiProps {
  readonly table: dynamodb.ITable;
  readonly signingKey: secretsmanager.ISecret;
  /** Folder or zip file holding the `bootstrap` executable (built by `cargo lambda`). */
  readonly codePath: string;
  /** The one browser origin allowed to call the API, e.g. `https://d123.cloudfront.net`. */
  readonly allowedOrigin: string;
  /** Stage-wide steady-state limit, requests per second. */
  readonly throttleRate: number;
  /** Stage-wide burst limit, requests. */
  readonly throttleBurst: number;
}

/** The token Lambda function and the REST API that invokes it. */
export class TokenApi extends Construct {
  readonly function: lambda.Function;
  readonly api: apigw.RestApi;
  /** Invoke URL of the stage, without a trailing slash: `https://{id}.execute-api.{region}.amazonaws.com/prod`. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: TokenApiProps) {
    super(scope, id);

    const logGroup = new logs.LogGroup(this, 'FunctionLogs', {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // A role of our own rather than the default one: the default attaches
    // AWSLambdaBasicExecutionRole, which allows writing to every log group in the account.
    const role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'One-time-token service Lambda: write/delete tokens, read the signing key, write its logs',
    });
    role.addToPolicy(
      new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
    );
    // Not grantReadWriteData: issuing is a conditional put and validating a conditional delete,
    // so the function never reads, scans or updates.
    role.addToPolicy(new iam.PolicyStatement({ actions: TABLE_ACTIONS, resources: [props.table.tableArn] }));
    role.addToPolicy(new iam.PolicyStatement({ actions: SECRET_ACTIONS, resources: [props.signingKey.secretArn] }));

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
      environment: {
        [contract.env.tableName]: props.table.tableName,
        [contract.env.secretArn]: props.signingKey.secretArn,
        [contract.env.allowedOrigins]: props.allowedOrigin,
        // REST (v1) events carry the stage in the path (`/prod/tokens`); this makes lambda_http
        // strip it, so the same router serves Lambda and the local server.
        AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH: 'true',
      },
    });

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.api = new apigw.RestApi(this, 'Api', {
      description: 'One-time-token service',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // Access logging needs the account-level API Gateway CloudWatch role; CDK sets it up.
      // It is retained on destroy (the default): other APIs in the account may log through it.
      cloudWatchRole: true,
      deployOptions: {
        stageName: STAGE_NAME,
        throttlingRateLimit: props.throttleRate,
        throttlingBurstLimit: props.throttleBurst,
        accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
        // Standard fields only: request and response bodies (which hold tokens) are never logged.
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
      },
      defaultCorsPreflightOptions: {
        allowOrigins: [props.allowedOrigin],
        allowMethods: ['GET', 'POST', 'OPTIONS'],
        allowHeaders: CORS_ALLOW_HEADERS,
        maxAge: CORS_MAX_AGE,
      },
    });

    // Errors produced by API Gateway itself (throttling, unknown route, Lambda failure) never
    // reach the function, so they need the CORS headers here or the browser hides them.
    const corsHeaders = {
      'Access-Control-Allow-Origin': `'${props.allowedOrigin}'`,
      Vary: "'Origin'",
    };
    this.api.addGatewayResponse('Default4xx', { type: apigw.ResponseType.DEFAULT_4XX, responseHeaders: corsHeaders });
    this.api.addGatewayResponse('Default5xx', { type: apigw.ResponseType.DEFAULT_5XX, responseHeaders: corsHeaders });

    const integration = new apigw.LambdaIntegration(this.function, { allowTestInvoke: false });
    const tokens = this.api.root.addResource('tokens');
    tokens.addMethod('GET', integration);
    tokens.addMethod('POST', integration);
    this.api.root.addResource('health').addMethod('GET', integration);

    // RestApi.url ends in '/', and RestApi adds an `Endpoint` output of its own; the stack
    // publishes `ApiUrl` instead, in the form config.json wants.
    this.api.node.tryRemoveChild('Endpoint');
    const stack = Stack.of(this);
    this.url = `https://${this.api.restApiId}.execute-api.${stack.region}.${stack.urlSuffix}/${this.api.deploymentStage.stageName}`;
  }
}
