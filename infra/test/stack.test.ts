import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { configFromContext, PLACEHOLDER_LAMBDA, PLACEHOLDER_UI } from '../lib/config.ts';
import { INFRA_ROOT, REPO_ROOT } from '../lib/contract.ts';
import { CDK_JSON_CONTEXT, CONTRACT, CUSTOM_DOMAIN, FIXTURE_DIST, FIXTURE_ZIP, MISSING, synth, tempDir } from './helpers.ts';

/** Context as the CLI passes it, with the fixture build outputs unless overridden. */
const config = (context: Record<string, unknown> = {}) =>
  configFromContext(new App({ context: { lambdaZip: FIXTURE_ZIP, uiDist: FIXTURE_DIST, ...context } }).node);

describe('stack outputs', () => {
  it('are SiteUrl (the CloudFront https URL), ApiUrl (the stage URL, no trailing slash) and AlarmTopicArn', () => {
    const s = synth();
    const outputs = s.template.toJSON().Outputs;
    assert.deepEqual(Object.keys(outputs).sort(), ['AlarmTopicArn', 'ApiUrl', 'SiteUrl']);
    assert.deepEqual(outputs.SiteUrl.Value, {
      'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [s.logicalId(s.stack.web.distribution!), 'DomainName'] }]],
    });
    assert.deepEqual(outputs.ApiUrl.Value, {
      'Fn::Join': [
        '',
        [
          'https://',
          { Ref: s.logicalId(s.stack.api.restApi!) },
          '.execute-api.',
          { Ref: 'AWS::Region' },
          '.',
          { Ref: 'AWS::URLSuffix' },
          '/',
          { Ref: s.logicalId(s.stack.api.restApi!.deploymentStage) },
        ],
      ],
    });
    assert.deepEqual(outputs.AlarmTopicArn.Value, { Ref: s.logicalId(s.stack.monitoring.topic) });
  });

  it('add the CloudFront domain to point DNS at when a custom domain is set', () => {
    const s = synth(CUSTOM_DOMAIN);
    const outputs = s.template.toJSON().Outputs;
    assert.deepEqual(outputs.SiteUrl.Value, 'https://tokens.example.com');
    assert.deepEqual(outputs.DistributionDomainName.Value, { 'Fn::GetAtt': [s.logicalId(s.stack.web.distribution!), 'DomainName'] });
  });
});

describe('configuration from context', () => {
  it('defaults the build outputs to the paths in contract.json, from the repository root', () => {
    const c = configFromContext(new App({ context: { allowPlaceholders: 'true' } }).node);
    assert.equal(c.lambdaZip.requested, path.join(REPO_ROOT, CONTRACT.lambda.zip));
    assert.equal(c.uiDist.requested, path.join(REPO_ROOT, CONTRACT.ui.dist));
  });

  it('has safe defaults: stage prod, CloudFront, REST with WAF, protected retained table, no tracing', () => {
    const c = config();
    assert.equal(c.stage, 'prod');
    assert.equal(c.hosting, 'cloudfront');
    assert.equal(c.apiType, 'rest');
    assert.deepEqual(c.waf, { rateLimit: 300, windowSeconds: 300 });
    assert.equal(c.tableDeletionProtection, true);
    assert.equal(c.tracing, false);
    assert.equal(c.throttleRate, 10);
    assert.equal(c.throttleBurst, 20);
    assert.deepEqual(c.alarmEmails, []);
    assert.equal(c.customDomain, undefined);
  });

  it('refuses to synthesize without the Lambda zip, naming the path, the build command and the escape hatch', () => {
    assert.throws(
      () => config({ lambdaZip: 'nope/bootstrap.zip' }),
      (e: Error) =>
        e.message.includes(`lambdaZip: ${path.join(REPO_ROOT, 'nope/bootstrap.zip')} is not found`) &&
        e.message.includes('replace the live Lambda code with a placeholder') &&
        e.message.includes('cargo lambda build --profile lambda --arm64') &&
        e.message.includes('-c allowPlaceholders=true'),
    );
  });

  it('refuses to synthesize without the UI, or with a dist/ that has no index.html', () => {
    assert.throws(() => config({ uiDist: 'nope/dist' }), /uiDist: .*nope\/dist is not found\. Deploying now would replace the live web UI.*trunk build --release/);
    const empty = tempDir('empty-dist-');
    assert.throws(() => config({ uiDist: empty }), /a folder without index\.html/);
    assert.throws(() => config({ lambdaZip: empty }), /a folder without a bootstrap file/);
    assert.throws(() => config({ lambdaZip: path.join(FIXTURE_DIST, 'index.html') }), /not a \.zip file/);
  });

  it('uses the committed placeholders only with allowPlaceholders=true', () => {
    const c = config({ lambdaZip: 'nope/bootstrap.zip', uiDist: 'nope/dist', allowPlaceholders: 'true' });
    assert.deepEqual(c.lambdaZip, { requested: path.join(REPO_ROOT, 'nope/bootstrap.zip'), path: PLACEHOLDER_LAMBDA, isPlaceholder: true });
    assert.deepEqual(c.uiDist, { requested: path.join(REPO_ROOT, 'nope/dist'), path: PLACEHOLDER_UI, isPlaceholder: true });
    assert.ok(fs.statSync(path.join(PLACEHOLDER_LAMBDA, 'bootstrap')).isFile());
    assert.ok(fs.statSync(path.join(PLACEHOLDER_UI, 'index.html')).isFile());
    assert.throws(() => config({ uiDist: MISSING, allowPlaceholders: 'yes' }), /allowPlaceholders=yes: expected true or false/);
  });

  it('uses an existing path as given, relative to the repository root', () => {
    const c = config({ uiDist: 'infra/assets/placeholder-ui', lambdaZip: 'infra/assets/placeholder-lambda' });
    assert.deepEqual(c.uiDist, { requested: PLACEHOLDER_UI, path: PLACEHOLDER_UI, isPlaceholder: false });
    assert.deepEqual(c.lambdaZip, { requested: PLACEHOLDER_LAMBDA, path: PLACEHOLDER_LAMBDA, isPlaceholder: false });
  });

  it('rejects stage names that cannot name a stack, an API stage and CloudFront resources', () => {
    for (const bad of ['Prod', '1st', 'a_b', 'a--b', 'ends-', 'a'.repeat(21), '']) {
      assert.throws(() => config({ stage: bad }), /context stage=.*: expected 1-20 lower-case letters/, bad);
    }
    assert.equal(config({ stage: 'pr-42' }).stage, 'pr-42');
    assert.equal(config({ stage: 'a'.repeat(20) }).stage, 'a'.repeat(20));
  });

  it('takes a custom domain only with a us-east-1 certificate, and only on CloudFront', () => {
    assert.deepEqual(config(CUSTOM_DOMAIN).customDomain, CUSTOM_DOMAIN);
    assert.throws(() => config({ domainName: 'tokens.example.com' }), /domainName and certificateArn go together/);
    assert.throws(
      () => config({ ...CUSTOM_DOMAIN, certificateArn: CUSTOM_DOMAIN.certificateArn.replace('us-east-1', 'eu-west-1') }),
      /expected an ACM certificate ARN in us-east-1/,
    );
    assert.throws(() => config({ ...CUSTOM_DOMAIN, domainName: 'Tokens.Example.com' }), /expected a lower-case host name/);
    assert.throws(() => config({ ...CUSTOM_DOMAIN, hosting: 's3-website' }), /domainName needs hosting=cloudfront/);
  });

  it('splits alarmEmail on commas and rejects what is not an address', () => {
    assert.deepEqual(config({ alarmEmail: 'a@example.com, b@example.org' }).alarmEmails, ['a@example.com', 'b@example.org']);
    assert.throws(() => config({ alarmEmail: 'a@example.com,nobody' }), /"nobody" is not an e-mail address/);
  });
});

/** Runs the real CLI (`npx cdk synth`) the way a developer would, with no AWS configuration. */
function cliSynth(args: string[]) {
  const out = tempDir('cli-');
  const missing = path.join(out, 'missing');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_') && !k.startsWith('CDK_')) env[k] = v;
  Object.assign(env, {
    AWS_CONFIG_FILE: missing,
    AWS_SHARED_CREDENTIALS_FILE: missing,
    AWS_EC2_METADATA_DISABLED: 'true',
    CDK_DISABLE_CLI_TELEMETRY: 'true',
  });
  const result = spawnSync('npx', ['cdk', 'synth', '--quiet', '--output', out, ...args], {
    cwd: INFRA_ROOT,
    env,
    encoding: 'utf8',
    timeout: 280_000,
  });
  return { ...result, out, missing };
}

const CLI_TEMPLATE_NAME = 'TokenService.template.json';

describe('cdk synth (the CLI, offline, no AWS credentials)', () => {
  it('fails before anything is built, saying what is missing and how to build it', { timeout: 300_000 }, () => {
    const missing = path.join(os.tmpdir(), 'token-infra-definitely-missing');
    const r = cliSynth(['-c', `lambdaZip=${missing}/bootstrap.zip`, '-c', `uiDist=${missing}/dist`]);
    assert.notEqual(r.status, 0, 'synth must fail without build outputs');
    assert.match(r.stderr, /lambdaZip: .*token-infra-definitely-missing\/bootstrap\.zip is not found\. Deploying now would replace the live Lambda code/);
    assert.match(r.stderr, /-c allowPlaceholders=true/);
    assert.ok(!fs.existsSync(path.join(r.out, CLI_TEMPLATE_NAME)), 'no template is written');
  });

  it('succeeds with allowPlaceholders=true, warns per placeholder, runs cdk-nag and applies cdk.json flags', { timeout: 300_000 }, () => {
    const missing = path.join(os.tmpdir(), 'token-infra-definitely-missing');
    const r = cliSynth(['-c', `lambdaZip=${missing}/bootstrap.zip`, '-c', `uiDist=${missing}/dist`, '-c', 'allowPlaceholders=true']);
    assert.equal(r.status, 0, `cdk synth failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /Lambda zip not found.*allowPlaceholders=true\)\. Do not deploy this template over a live stage/);
    assert.match(r.stderr, /Web UI not found/);
    const template = JSON.parse(fs.readFileSync(path.join(r.out, CLI_TEMPLATE_NAME), 'utf8'));
    const types = new Set(Object.values(template.Resources).map((res: any) => res.Type));
    for (const type of [
      'AWS::DynamoDB::Table',
      'AWS::SecretsManager::Secret',
      'AWS::Lambda::Function',
      'AWS::ApiGateway::RestApi',
      'AWS::WAFv2::WebACL',
      'AWS::CloudFront::Distribution',
      'AWS::CloudFront::ResponseHeadersPolicy',
      'AWS::CloudWatch::Alarm',
      'AWS::CloudWatch::Dashboard',
      'Custom::CDKBucketDeployment',
    ]) {
      assert.ok(types.has(type), `template has ${type}`);
    }
    assert.deepEqual(Object.keys(template.Outputs).sort(), ['AlarmTopicArn', 'ApiUrl', 'SiteUrl']);
    // cdk.json's feature flags reached the app: with @aws-cdk/aws-apigateway:logGroupDestinationArnWithoutWildcard
    // the access-log destination is the log group's ARN without the trailing ':*' of GetAtt Arn.
    assert.equal(CDK_JSON_CONTEXT['@aws-cdk/aws-apigateway:logGroupDestinationArnWithoutWildcard'], true);
    const stage: any = Object.values(template.Resources).find((res: any) => res.Type === 'AWS::ApiGateway::Stage');
    assert.equal(stage.Properties.AccessLogSetting.DestinationArn['Fn::Join'][1].at(-2), ':log-group:');
    // No validation plugin (cdk-nag, CloudFormation's default rules, annotations) failed.
    const report = JSON.parse(fs.readFileSync(path.join(r.out, 'validation-report.json'), 'utf8'));
    const failing = report.pluginReports.filter((p: any) => p.conclusion !== 'success');
    assert.deepEqual(failing, []);
  });
});
