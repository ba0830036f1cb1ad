import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { configFromContext, PLACEHOLDER_LAMBDA, PLACEHOLDER_UI } from '../lib/config.ts';
import { INFRA_ROOT, REPO_ROOT } from '../lib/contract.ts';
import { CONTRACT, synth } from './helpers.ts';

describe('stack outputs', () => {
  it('are exactly SiteUrl (the CloudFront https URL) and ApiUrl (the stage URL, no trailing slash)', () => {
    const s = synth();
    const outputs = s.template.toJSON().Outputs;
    assert.deepEqual(Object.keys(outputs).sort(), ['ApiUrl', 'SiteUrl']);
    assert.deepEqual(outputs.SiteUrl.Value, {
      'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [s.logicalId(s.stack.web.distribution!), 'DomainName'] }]],
    });
    assert.deepEqual(outputs.ApiUrl.Value, {
      'Fn::Join': [
        '',
        [
          'https://',
          { Ref: s.logicalId(s.stack.api.api) },
          '.execute-api.',
          { Ref: 'AWS::Region' },
          '.',
          { Ref: 'AWS::URLSuffix' },
          '/',
          { Ref: s.logicalId(s.stack.api.api.deploymentStage) },
        ],
      ],
    });
  });
});

describe('configuration from context', () => {
  it('defaults the build outputs to the paths in contract.json, from the repository root', () => {
    const config = configFromContext(new App().node);
    assert.equal(config.lambdaZip.requested, path.join(REPO_ROOT, CONTRACT.lambda.zip));
    assert.equal(config.uiDist.requested, path.join(REPO_ROOT, CONTRACT.ui.dist));
    assert.equal(config.hosting, 'cloudfront');
    assert.equal(config.throttleRate, 10);
    assert.equal(config.throttleBurst, 20);
  });

  it('resolves relative lambdaZip and uiDist against the repository root and falls back to committed placeholders', () => {
    const config = configFromContext(new App({ context: { lambdaZip: 'nope/bootstrap.zip', uiDist: 'nope/dist' } }).node);
    assert.deepEqual(config.lambdaZip, {
      requested: path.join(REPO_ROOT, 'nope/bootstrap.zip'),
      path: PLACEHOLDER_LAMBDA,
      isPlaceholder: true,
    });
    assert.deepEqual(config.uiDist, { requested: path.join(REPO_ROOT, 'nope/dist'), path: PLACEHOLDER_UI, isPlaceholder: true });
    assert.ok(fs.statSync(path.join(PLACEHOLDER_LAMBDA, 'bootstrap')).isFile());
    assert.ok(fs.statSync(path.join(PLACEHOLDER_UI, 'index.html')).isFile());
  });

  it('uses an existing path as given', () => {
    const config = configFromContext(new App({ context: { uiDist: 'infra/assets/placeholder-ui' } }).node);
    assert.deepEqual(config.uiDist, { requested: PLACEHOLDER_UI, path: PLACEHOLDER_UI, isPlaceholder: false });
  });
});

describe('cdk synth', () => {
  it('succeeds offline with no AWS credentials, even before anything is built', { timeout: 300_000 }, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'token-infra-cli-'));
    const missing = path.join(out, 'missing');
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_') && !k.startsWith('CDK_')) env[k] = v;
    Object.assign(env, {
      AWS_CONFIG_FILE: missing,
      AWS_SHARED_CREDENTIALS_FILE: missing,
      AWS_EC2_METADATA_DISABLED: 'true',
      CDK_DISABLE_CLI_TELEMETRY: 'true',
    });
    const result = spawnSync(
      'npx',
      ['cdk', 'synth', '--quiet', '--output', out, '-c', `lambdaZip=${missing}`, '-c', `uiDist=${missing}`],
      { cwd: INFRA_ROOT, env, encoding: 'utf8', timeout: 280_000 },
    );
    assert.equal(result.status, 0, `cdk synth failed:\n${result.stdout}\n${result.stderr}`);
    assert.match(result.stderr, /Lambda zip not found/);
    assert.match(result.stderr, /Web UI not found/);
    const template = JSON.parse(fs.readFileSync(path.join(out, 'TokenService.template.json'), 'utf8'));
    const types = Object.values(template.Resources).map((r: any) => r.Type);
    for (const type of [
      'AWS::DynamoDB::Table',
      'AWS::SecretsManager::Secret',
      'AWS::Lambda::Function',
      'AWS::ApiGateway::RestApi',
      'AWS::CloudFront::Distribution',
      'Custom::CDKBucketDeployment',
    ]) {
      assert.ok(types.includes(type), `template has ${type}`);
    }
    assert.deepEqual(Object.keys(template.Outputs).sort(), ['ApiUrl', 'SiteUrl']);
  });
});
