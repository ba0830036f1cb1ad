import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS } from '../lib/api.ts';
import { REPO_ROOT } from '../lib/contract.ts';
import { CONTRACT, FIXTURE_ZIP, MISSING, only, synth } from './helpers.ts';

/** The service's function (the stack also has CDK's own custom-resource handlers). */
function findTokenFunction(s: ReturnType<typeof synth>) {
  const id = s.logicalId(s.stack.api.function);
  return { id, props: s.template.toJSON().Resources[id].Properties };
}

describe('lambda function', () => {
  it('runs the Rust bootstrap on provided.al2023 arm64 with 128 MB and 10 s', () => {
    const { props } = findTokenFunction(synth());
    assert.equal(props.Runtime, 'provided.al2023');
    assert.deepEqual(props.Architectures, ['arm64']);
    assert.equal(props.Handler, 'bootstrap');
    assert.equal(props.MemorySize, 128);
    assert.equal(props.Timeout, 10);
  });

  it('gets the table name, secret ARN and site origin under the names in contract.json', () => {
    const s = synth();
    const { props } = findTokenFunction(s);
    assert.deepEqual(props.Environment.Variables, {
      [CONTRACT.env.tableName]: s.resolve(s.stack.storage.table.tableName),
      [CONTRACT.env.secretArn]: s.resolve(s.stack.storage.signingKey.secretArn),
      [CONTRACT.env.allowedOrigins]: {
        'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [s.logicalId(s.stack.web.distribution!), 'DomainName'] }]],
      },
      AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH: 'true',
    });
    assert.deepEqual(s.resolve(s.stack.storage.table.tableName), { Ref: s.logicalId(s.stack.storage.table) });
    assert.deepEqual(s.resolve(s.stack.storage.signingKey.secretArn), { Ref: s.logicalId(s.stack.storage.signingKey) });
  });

  it('logs to its own log group kept for 30 days', () => {
    const s = synth();
    const { props } = findTokenFunction(s);
    const logGroupId = props.LoggingConfig.LogGroup.Ref;
    assert.equal(s.template.toJSON().Resources[logGroupId].Properties.RetentionInDays, 30);
  });

  it('may only put, update and get items and describe its table, read its secret and write its logs', () => {
    const s = synth();
    const roleId = s.logicalId(s.stack.api.function.role!);
    const policies = Object.values(s.template.findResources('AWS::IAM::Policy')).filter((p: any) =>
      p.Properties.Roles.some((r: any) => r.Ref === roleId),
    ) as any[];
    assert.equal(policies.length, 1);
    const logGroupId = findTokenFunction(s).props.LoggingConfig.LogGroup.Ref;
    assert.deepEqual(policies[0].Properties.PolicyDocument.Statement, [
      { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Effect: 'Allow', Resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
      {
        // Sorted by @aws-cdk/aws-iam:minimizePolicies.
        Action: ['dynamodb:DescribeTable', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [s.logicalId(s.stack.storage.table), 'Arn'] },
      },
      { Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: { Ref: s.logicalId(s.stack.storage.signingKey) } },
    ]);
    const json = JSON.stringify(policies[0]);
    for (const unused of ['DeleteItem', 'DescribeSecret', 'Scan', 'Query', 'xray:']) assert.ok(!json.includes(unused), unused);
  });

  it('adds X-Ray active tracing (function and REST stage) only with tracing=true', () => {
    const plain = synth();
    assert.equal(findTokenFunction(plain).props.TracingConfig, undefined);
    assert.equal(only(plain.template, 'AWS::ApiGateway::Stage').props.TracingEnabled, false);

    const traced = synth({ tracing: 'true' });
    assert.deepEqual(findTokenFunction(traced).props.TracingConfig, { Mode: 'Active' });
    assert.equal(only(traced.template, 'AWS::ApiGateway::Stage').props.TracingEnabled, true);
    const roleId = traced.logicalId(traced.stack.api.function.role!);
    const statements = (Object.values(traced.template.findResources('AWS::IAM::Policy')) as any[])
      .filter((p) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
    assert.deepEqual(statements.at(-1), {
      Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
      Effect: 'Allow',
      Resource: '*',
    });
  });

  it('has a role with no managed policies, assumable by Lambda only', () => {
    const s = synth();
    const role = s.template.toJSON().Resources[s.logicalId(s.stack.api.function.role!)].Properties;
    assert.equal(role.ManagedPolicyArns, undefined);
    assert.equal(role.Policies, undefined);
    assert.deepEqual(role.AssumeRolePolicyDocument.Statement, [
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
  });

  it('is invoked by API Gateway for exactly the three routes, and nothing else may invoke it', () => {
    const s = synth();
    const fnId = s.logicalId(s.stack.api.function);
    const apiId = s.logicalId(s.stack.api.restApi!);
    const stageId = s.logicalId(s.stack.api.restApi!.deploymentStage);
    const perms = Object.values(s.template.findResources('AWS::Lambda::Permission')) as any[];
    const sourceArns = perms.map((p) => {
      assert.deepEqual(p.Properties.FunctionName, { 'Fn::GetAtt': [fnId, 'Arn'] });
      assert.equal(p.Properties.Principal, 'apigateway.amazonaws.com');
      const parts: any[] = p.Properties.SourceArn['Fn::Join'][1];
      assert.deepEqual(parts.slice(-4, -1), [{ Ref: apiId }, '/', { Ref: stageId }]);
      return parts.at(-1);
    });
    assert.deepEqual(sourceArns.sort(), ['/GET/health', '/GET/openapi.json', '/GET/tokens', '/POST/tokens', '/POST/tokens/revoke', '/POST/tokens/status']);
  });

  it('uses the placeholder and warns only with allowPlaceholders=true; uses the given zip otherwise', () => {
    assert.throws(() => synth({ lambdaZip: MISSING }), /lambdaZip: .* is not found/);
    const missing = synth({ lambdaZip: MISSING, allowPlaceholders: 'true' });
    missing.annotations.hasWarning(`/${missing.stack.stackName}`, Match.stringLikeRegexp('Lambda zip not found.*Do not deploy this template over a live stage'));
    const placeholderMeta = missing.template.toJSON().Resources[findTokenFunction(missing).id].Metadata;
    const placeholder = path.join(missing.outdir, placeholderMeta['aws:asset:path'], 'bootstrap');
    assert.ok(existsSync(placeholder), 'placeholder bootstrap staged as the function code');
    assert.match(readFileSync(placeholder, 'utf8'), /placeholder Lambda code/);

    const built = synth();
    assert.deepEqual(built.annotations.findWarning('*', Match.stringLikeRegexp('Lambda zip not found')), []);
    const meta = built.template.toJSON().Resources[findTokenFunction(built).id].Metadata;
    assert.match(meta['aws:asset:path'], /\.zip$/);
    assert.deepEqual(readFileSync(path.join(built.outdir, meta['aws:asset:path'])), readFileSync(FIXTURE_ZIP));
  });
});

describe('rest api', () => {
  function methods(s = synth()) {
    const resources = s.template.toJSON().Resources;
    return Object.values(resources)
      .filter((r: any) => r.Type === 'AWS::ApiGateway::Method')
      .map((m: any) => {
        const res = m.Properties.ResourceId.Ref ? resources[m.Properties.ResourceId.Ref].Properties.PathPart : '/';
        return { path: res, method: m.Properties.HttpMethod, integration: m.Properties.Integration };
      });
  }

  it('routes GET and POST /tokens and GET /health to the function as proxy integrations', () => {
    const s = synth();
    const fnId = s.logicalId(s.stack.api.function);
    const proxied = methods(s).filter((m) => m.method !== 'OPTIONS');
    assert.deepEqual(proxied.map((m) => `${m.method} /${m.path}`).sort(), ['GET /health', 'GET /openapi.json', 'GET /tokens', 'POST /revoke', 'POST /status', 'POST /tokens']);
    for (const m of proxied) {
      assert.equal(m.integration.Type, 'AWS_PROXY');
      assert.equal(m.integration.IntegrationHttpMethod, 'POST');
      assert.deepEqual(m.integration.Uri['Fn::Join'][1].slice(-2), [{ 'Fn::GetAtt': [fnId, 'Arn'] }, '/invocations']);
    }
  });

  it('answers CORS preflight with exactly the site origin, GET/POST, Content-Type and Idempotency-Key', () => {
    const s = synth();
    const origin = `'https://`;
    const preflights = methods(s).filter((m) => m.method === 'OPTIONS');
    assert.deepEqual(preflights.map((m) => m.path).sort(), ['/', 'health', 'openapi.json', 'revoke', 'status', 'tokens']);
    for (const m of preflights) {
      assert.equal(m.integration.Type, 'MOCK');
      const params = m.integration.IntegrationResponses[0].ResponseParameters;
      assert.deepEqual(params['method.response.header.Access-Control-Allow-Origin'], {
        'Fn::Join': ['', [origin, { 'Fn::GetAtt': [s.logicalId(s.stack.web.distribution!), 'DomainName'] }, "'"]],
      });
      assert.equal(params['method.response.header.Access-Control-Allow-Methods'], "'GET,POST,OPTIONS'");
      assert.equal(params['method.response.header.Access-Control-Allow-Headers'], "'Content-Type,Idempotency-Key'");
      assert.equal(params['method.response.header.Access-Control-Max-Age'], "'3600'");
      assert.equal(params['method.response.header.Vary'], "'Origin'");
    }
  });

  it('allows the header the UI sends with every validation: the shared crate\'s IDEMPOTENCY_KEY_HEADER', () => {
    // shared/ is Rust; its constant is read from the source, so a rename there fails here.
    const shared = readFileSync(path.join(REPO_ROOT, 'shared', 'src', 'lib.rs'), 'utf8');
    const header = shared.match(/pub const IDEMPOTENCY_KEY_HEADER: &str = "([^"]+)";/);
    assert.ok(header, 'shared/src/lib.rs defines IDEMPOTENCY_KEY_HEADER');
    assert.ok(CORS_ALLOW_HEADERS.includes(header[1]), `${header[1]} in ${CORS_ALLOW_HEADERS}`);
    assert.ok(CORS_EXPOSE_HEADERS.includes(header[1]));
  });

  it('adds the CORS origin and exposed headers to API Gateway\'s own 4XX and 5XX responses', () => {
    const s = synth();
    const origin = { 'Fn::Join': ['', ["'https://", { 'Fn::GetAtt': [s.logicalId(s.stack.web.distribution!), 'DomainName'] }, "'"]] };
    const responses = Object.values(s.template.findResources('AWS::ApiGateway::GatewayResponse')) as any[];
    assert.deepEqual(responses.map((r) => r.Properties.ResponseType).sort(), ['DEFAULT_4XX', 'DEFAULT_5XX']);
    for (const r of responses) {
      assert.deepEqual(r.Properties.ResponseParameters, {
        'gatewayresponse.header.Access-Control-Allow-Origin': origin,
        'gatewayresponse.header.Access-Control-Expose-Headers': "'Retry-After,Idempotency-Key'",
        'gatewayresponse.header.Vary': "'Origin'",
      });
      assert.deepEqual(r.Properties.RestApiId, { Ref: s.logicalId(s.stack.api.restApi!) });
    }
  });

  it('throttles each method of the prod stage at 10 requests/s with bursts of 20 by default', () => {
    const { props } = only(synth().template, 'AWS::ApiGateway::Stage');
    assert.equal(props.StageName, 'prod');
    // HttpMethod '*' and ResourcePath '/*': API Gateway applies the limits to each method
    // separately, so GET /tokens, POST /tokens and GET /health each get 10/s.
    assert.deepEqual(props.MethodSettings, [
      { DataTraceEnabled: false, HttpMethod: '*', ResourcePath: '/*', ThrottlingBurstLimit: 20, ThrottlingRateLimit: 10 },
    ]);
  });

  it('takes throttling limits from context, as -c passes them (strings)', () => {
    const { props } = only(synth({ apiThrottleRate: '2.5', apiThrottleBurst: '7' }).template, 'AWS::ApiGateway::Stage');
    assert.equal(props.MethodSettings[0].ThrottlingRateLimit, 2.5);
    assert.equal(props.MethodSettings[0].ThrottlingBurstLimit, 7);
  });

  it('rejects throttling limits that are not positive numbers', () => {
    assert.throws(() => synth({ apiThrottleRate: 'fast' }), /apiThrottleRate=fast: expected a positive number/);
    assert.throws(() => synth({ apiThrottleRate: '0' }), /apiThrottleRate=0/);
    assert.throws(() => synth({ apiThrottleBurst: '1.5' }), /apiThrottleBurst=1.5: expected a positive integer/);
  });

  it('writes JSON access logs, without bodies, to a log group kept for 30 days', () => {
    const s = synth();
    const { props } = only(s.template, 'AWS::ApiGateway::Stage');
    // Without the ':*' of GetAtt Arn (@aws-cdk/aws-apigateway:logGroupDestinationArnWithoutWildcard).
    const arn = props.AccessLogSetting.DestinationArn['Fn::Join'][1];
    assert.equal(arn.at(-2), ':log-group:');
    const logGroupId = arn.at(-1).Ref;
    assert.equal(s.template.toJSON().Resources[logGroupId].Type, 'AWS::Logs::LogGroup');
    assert.equal(s.template.toJSON().Resources[logGroupId].Properties.RetentionInDays, 30);
    const format = JSON.parse(props.AccessLogSetting.Format);
    assert.equal(format.requestId, '$context.requestId');
    assert.equal(format.status, '$context.status');
    assert.doesNotMatch(props.AccessLogSetting.Format, /requestBody|responseBody/);
    // Access logging needs the account's API Gateway CloudWatch role, kept on destroy since it
    // is account-wide.
    const account = only(s.template, 'AWS::ApiGateway::Account');
    assert.equal(account.resource.DeletionPolicy, 'Retain');
    const roleId = account.props.CloudWatchRoleArn['Fn::GetAtt'][0];
    assert.equal(s.template.toJSON().Resources[roleId].DeletionPolicy, 'Retain');
  });

  it('is a regional endpoint named after the stack', () => {
    const { props } = only(synth().template, 'AWS::ApiGateway::RestApi');
    assert.deepEqual(props.EndpointConfiguration, { Types: ['REGIONAL'] });
    assert.equal(props.Name, 'TokenService');
    assert.equal(only(synth({ stage: 'staging' }).template, 'AWS::ApiGateway::RestApi').props.Name, 'TokenService-staging');
  });
});
