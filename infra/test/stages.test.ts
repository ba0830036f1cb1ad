import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { configFromContext, stackNameFor } from '../lib/config.ts';
import { TokenServiceStack } from '../lib/stack.ts';
import { only, synth, testApp } from './helpers.ts';

const ACCOUNT = '123456789012';

/** Adds the stack of `stage` to `app`, deployed to `region`, as bin/app.ts would with `-c stage=...`. */
function addStage(app: App, stage: string, region: string): TokenServiceStack {
  const config = { ...configFromContext(app.node), stage };
  return new TokenServiceStack(app, `${stackNameFor(stage)}-${region}`, {
    config,
    stackName: stackNameFor(stage),
    env: { account: ACCOUNT, region },
  });
}

/** Synthesizes `stacks` (all added first: an App synthesizes once) and returns their names. */
function namesOf(...stacks: TokenServiceStack[]): Map<string, string>[] {
  return stacks.map((stack) => physicalNames(Template.fromStack(stack), stack.region));
}

/**
 * Every property that names a resource, rendered as the string CloudFormation would create in
 * `region`. Names built from another resource's Ref are unique by construction and left out;
 * so are names CloudFormation generates (property absent).
 */
function physicalNames(template: Template, region: string): Map<string, string> {
  const names = new Map<string, string>();
  const render = (v: any): string | undefined => {
    if (typeof v === 'string') return v;
    if (v?.Ref === 'AWS::Region') return region;
    if (v?.Ref === 'AWS::AccountId') return ACCOUNT;
    if (v?.Ref === 'AWS::URLSuffix') return 'amazonaws.com';
    if (v?.['Fn::Join']) {
      const parts = v['Fn::Join'][1].map(render);
      return parts.includes(undefined) ? undefined : parts.join(v['Fn::Join'][0]);
    }
    return undefined;
  };
  const nameProps: Record<string, (p: any) => unknown> = {
    'AWS::CloudFront::OriginAccessControl': (p) => p.OriginAccessControlConfig.Name,
    'AWS::CloudFront::ResponseHeadersPolicy': (p) => p.ResponseHeadersPolicyConfig.Name,
    'AWS::CloudFront::CachePolicy': (p) => p.CachePolicyConfig.Name,
    'AWS::CloudWatch::Dashboard': (p) => p.DashboardName,
    'AWS::CloudWatch::Alarm': (p) => p.AlarmName,
    'AWS::WAFv2::WebACL': (p) => p.Name,
    'AWS::ApiGateway::RestApi': (p) => p.Name,
    'AWS::ApiGatewayV2::Api': (p) => p.Name,
    'AWS::DynamoDB::Table': (p) => p.TableName,
    'AWS::Lambda::Function': (p) => p.FunctionName,
    'AWS::IAM::Role': (p) => p.RoleName,
    'AWS::SNS::Topic': (p) => p.TopicName,
    'AWS::Logs::LogGroup': (p) => p.LogGroupName,
    'AWS::S3::Bucket': (p) => p.BucketName,
    'AWS::SecretsManager::Secret': (p) => p.Name,
  };
  for (const [id, r] of Object.entries<any>(template.toJSON().Resources)) {
    const name = nameProps[r.Type]?.(r.Properties ?? {});
    if (name === undefined) continue;
    const rendered = render(name);
    if (rendered !== undefined) names.set(`${r.Type} ${rendered}`, id);
  }
  return names;
}

describe('stages', () => {
  it('derive the stack name from the stage; prod keeps the name it was first deployed under', () => {
    assert.equal(stackNameFor('prod'), 'TokenService');
    assert.equal(stackNameFor('staging'), 'TokenService-staging');
    const s = synth({ stage: 'staging' });
    assert.equal(s.stack.stackName, 'TokenService-staging');
    assert.equal(only(s.template, 'AWS::ApiGateway::Stage').props.StageName, 'staging');
    assert.equal(only(s.template, 'AWS::WAFv2::WebACL').props.Name, 'TokenService-staging');
    assert.ok(Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).every((a: any) => a.Properties.AlarmName.startsWith('TokenService-staging-')));
  });

  it('staging and prod synthesize side by side in one account and region with no name in common', () => {
    const app = testApp();
    const region = 'eu-west-1';
    const [prod, staging] = namesOf(addStage(app, 'prod', region), addStage(app, 'staging', region));
    // The names this test can see at all: a regression to CloudFormation-generated names would
    // make the overlap check below pass vacuously.
    for (const names of [prod, staging]) {
      const types = new Set([...names.keys()].map((k) => k.split(' ')[0]));
      for (const type of ['AWS::CloudFront::OriginAccessControl', 'AWS::CloudFront::ResponseHeadersPolicy', 'AWS::CloudWatch::Dashboard', 'AWS::CloudWatch::Alarm', 'AWS::WAFv2::WebACL']) {
        assert.ok(types.has(type), type);
      }
    }
    const shared = [...prod.keys()].filter((k) => staging.has(k));
    assert.deepEqual(shared, []);
    assert.ok(prod.has('AWS::CloudFront::OriginAccessControl TokenService-eu-west-1-ui'));
    assert.ok(staging.has('AWS::CloudFront::OriginAccessControl TokenService-staging-eu-west-1-ui'));
  });

  it('one stage deploys to two regions of one account: account-wide CloudFront and dashboard names differ', () => {
    const app = testApp();
    const [east, west] = namesOf(addStage(app, 'prod', 'us-east-1'), addStage(app, 'prod', 'eu-west-1'));
    const global = (names: Map<string, string>) =>
      [...names.keys()].filter((k) => /^AWS::(CloudFront::|CloudWatch::Dashboard)/.test(k));
    assert.equal(global(east).length, 3);
    assert.deepEqual(global(east).filter((k) => west.has(k)), []);
  });

  it('keep every generated name within its service limit for the longest stage and region', () => {
    const app = testApp();
    const stage = 'a'.repeat(20);
    const region = 'ap-southeast-5';
    const names = [...namesOf(addStage(app, stage, region))[0].keys()].map((k) => k.split(' ').slice(1).join(' '));
    const oac = names.find((n) => n.endsWith('-ui'))!;
    assert.equal(oac, `TokenService-${stage}-${region}-ui`);
    assert.ok(oac.length <= 64, `OAC name ${oac.length} characters; CloudFront allows 64`);
    for (const n of names) assert.ok(n.length <= 128, n);
  });
});
