import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { CONTRACT, MISSING, only, synth, type Synthesized } from './helpers.ts';

function deployments(s: Synthesized): any[] {
  return Object.values(s.template.findResources('Custom::CDKBucketDeployment')).map((r: any) => r.Properties);
}
const wasmDeployment = (s: Synthesized) => deployments(s).find((d) => d.SystemMetadata?.['content-type']);
const siteDeployment = (s: Synthesized) => deployments(s).find((d) => !d.SystemMetadata?.['content-type']);

/**
 * The generated config.json as deployed: the staged file with its deploy-time markers replaced by
 * the CloudFormation values they stand for, as an `Fn::Join` list.
 */
function deployedConfig(s: Synthesized): Record<string, any[]> {
  const site = siteDeployment(s);
  const index = site.SourceObjectKeys.findIndex((key: string) => {
    const dir = path.join(s.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    return fs.existsSync(path.join(dir, CONTRACT.ui.configFile)) && fs.readdirSync(dir).length === 1;
  });
  assert.ok(index >= 0, 'a source holding only config.json');
  const dir = path.join(s.outdir, `asset.${site.SourceObjectKeys[index].replace(/\.zip$/, '')}`);
  const raw = JSON.parse(fs.readFileSync(path.join(dir, CONTRACT.ui.configFile), 'utf8'));
  const markers: Record<string, unknown> = site.SourceMarkers[index];
  return Object.fromEntries(
    Object.entries(raw).map(([k, v]) => [
      k,
      (v as string)
        .split(/(<<marker:0xbaba:\d+>>)/)
        .filter((part) => part !== '')
        .map((part) => markers[part] ?? part),
    ]),
  );
}

/** An `Fn::Join` with its string parts merged, so equal URLs compare equal however they were split. */
function normalizeJoin(parts: any[]): any[] {
  const out: any[] = [];
  for (const part of parts) {
    if (typeof part === 'string' && typeof out.at(-1) === 'string') out[out.length - 1] += part;
    else out.push(part);
  }
  return out;
}

describe('web ui on CloudFront (default)', () => {
  it('keeps the bucket private: all public access blocked, TLS required, encrypted', () => {
    const s = synth();
    const bucket = s.template.toJSON().Resources[s.logicalId(s.stack.web.bucket)].Properties;
    assert.deepEqual(bucket.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    assert.equal(bucket.WebsiteConfiguration, undefined);
    assert.deepEqual(bucket.BucketEncryption.ServerSideEncryptionConfiguration, [
      { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
    ]);
    const { props } = only(s.template, 'AWS::S3::BucketPolicy');
    const bucketId = s.logicalId(s.stack.web.bucket);
    assert.deepEqual(props.PolicyDocument.Statement[0], {
      Action: 's3:*',
      Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Resource: [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, '/*']] }],
    });
  });

  it('lets only this distribution read objects, through origin access control', () => {
    const s = synth();
    const distId = s.logicalId(s.stack.web.distribution!);
    const bucketId = s.logicalId(s.stack.web.bucket);
    const oac = only(s.template, 'AWS::CloudFront::OriginAccessControl');
    assert.deepEqual(
      { ...oac.props.OriginAccessControlConfig, Name: undefined },
      { Name: undefined, OriginAccessControlOriginType: 's3', SigningBehavior: 'always', SigningProtocol: 'sigv4' },
    );
    const dist = only(s.template, 'AWS::CloudFront::Distribution').props.DistributionConfig;
    assert.equal(dist.Origins.length, 1);
    assert.deepEqual(dist.Origins[0].OriginAccessControlId, { 'Fn::GetAtt': [oac.id, 'Id'] });
    assert.deepEqual(dist.Origins[0].S3OriginConfig, { OriginAccessIdentity: '' });
    assert.deepEqual(dist.Origins[0].DomainName, { 'Fn::GetAtt': [bucketId, 'RegionalDomainName'] });
    assert.deepEqual(s.template.findResources('AWS::CloudFront::CloudFrontOriginAccessIdentity'), {});

    const statements = only(s.template, 'AWS::S3::BucketPolicy').props.PolicyDocument.Statement;
    const cloudfrontRead = statements.filter((st: any) => st.Principal?.Service === 'cloudfront.amazonaws.com');
    assert.deepEqual(cloudfrontRead, [
      {
        Action: 's3:GetObject',
        Condition: {
          StringEquals: {
            'AWS:SourceArn': {
              'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':cloudfront::', { Ref: 'AWS::AccountId' }, ':distribution/', { Ref: distId }]],
            },
          },
        },
        Effect: 'Allow',
        Principal: { Service: 'cloudfront.amazonaws.com' },
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, '/*']] },
      },
    ]);
    assert.ok(!statements.some((st: any) => st.Principal === '*' || st.Principal?.AWS === '*' && st.Effect === 'Allow'));
  });

  it('serves HTTPS only, index.html at the root, and falls back to index.html for 403 and 404', () => {
    const dist = only(synth().template, 'AWS::CloudFront::Distribution').props.DistributionConfig;
    assert.equal(dist.DefaultCacheBehavior.ViewerProtocolPolicy, 'redirect-to-https');
    assert.equal(dist.DefaultRootObject, 'index.html');
    assert.deepEqual(dist.CustomErrorResponses, [
      { ErrorCachingMinTTL: 10, ErrorCode: 403, ResponseCode: 200, ResponsePagePath: '/index.html' },
      { ErrorCachingMinTTL: 10, ErrorCode: 404, ResponseCode: 200, ResponsePagePath: '/index.html' },
    ]);
  });

  it('uploads .wasm files with Content-Type application/wasm, in a deployment of their own', () => {
    const s = synth();
    const wasm = wasmDeployment(s);
    assert.deepEqual(wasm.SystemMetadata, {
      'content-type': 'application/wasm',
      'cache-control': 'public, max-age=31536000, immutable',
    });
    assert.deepEqual(wasm.Exclude, ['*']);
    assert.deepEqual(wasm.Include, ['*.wasm']);
    assert.deepEqual(wasm.DestinationBucketName, { Ref: s.logicalId(s.stack.web.bucket) });
    const site = siteDeployment(s);
    assert.deepEqual(site.Exclude, ['*.wasm'], 'the site deployment neither uploads nor prunes wasm files');
    assert.equal(site.Include, undefined);
    assert.deepEqual(site.SystemMetadata, { 'cache-control': 'no-cache' });
    assert.equal(deployments(s).length, 2);
  });

  it('uploads the built dist/ folder, without a stale config.json', () => {
    const s = synth();
    const key: string = wasmDeployment(s).SourceObjectKeys[0];
    assert.equal(siteDeployment(s).SourceObjectKeys[0], key, 'both deployments upload the same dist asset');
    const staged = path.join(s.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    assert.deepEqual(fs.readdirSync(staged).sort(), ['frontend-1a2b3c.js', 'frontend-1a2b3c_bg.wasm', 'index.html']);
  });

  it('writes config.json pointing at the API URL, the same value as the ApiUrl output', () => {
    const s = synth();
    const config = deployedConfig(s);
    assert.deepEqual(Object.keys(config), [CONTRACT.ui.apiBaseUrlField]);
    const apiUrl = s.template.toJSON().Outputs.ApiUrl.Value['Fn::Join'][1];
    assert.deepEqual(normalizeJoin(config[CONTRACT.ui.apiBaseUrlField]), normalizeJoin(apiUrl));
    assert.equal(typeof apiUrl.at(-1), 'object', 'the URL ends with the stage, not a slash');
  });

  it('invalidates the CloudFront cache after uploading, and uploads wasm before index.html', () => {
    const s = synth();
    const site = siteDeployment(s);
    assert.deepEqual(site.DistributionId, { Ref: s.logicalId(s.stack.web.distribution!) });
    assert.deepEqual(site.DistributionPaths, ['/*']);
    const [siteId] = Object.entries(s.template.findResources('Custom::CDKBucketDeployment')).find(
      ([, r]: any) => !r.Properties.SystemMetadata['content-type'],
    )!;
    const [wasmId] = Object.entries(s.template.findResources('Custom::CDKBucketDeployment')).find(
      ([, r]: any) => r.Properties.SystemMetadata['content-type'],
    )!;
    assert.ok(s.template.toJSON().Resources[siteId].DependsOn.includes(wasmId));
  });

  it('deploys a placeholder page and warns when dist/ is missing', () => {
    const s = synth({ uiDist: MISSING });
    s.annotations.hasWarning('/TokenService', Match.stringLikeRegexp('Web UI not found.*trunk build --release'));
    const key: string = wasmDeployment(s).SourceObjectKeys[0];
    const staged = path.join(s.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    assert.deepEqual(fs.readdirSync(staged), ['index.html']);
    assert.match(fs.readFileSync(path.join(staged, 'index.html'), 'utf8'), /The web UI was not built/);
    assert.deepEqual(synth().annotations.findWarning('*', Match.stringLikeRegexp('Web UI not found')), []);
  });
});

describe('web ui on the S3 website endpoint (-c hosting=s3-website)', () => {
  const website = () => synth({ hosting: 's3-website' });

  it('has no CloudFront and a public-read website bucket with index.html as index and error page', () => {
    const s = website();
    assert.deepEqual(s.template.findResources('AWS::CloudFront::Distribution'), {});
    assert.deepEqual(s.template.findResources('AWS::CloudFront::OriginAccessControl'), {});
    const bucketId = s.logicalId(s.stack.web.bucket);
    const bucket = s.template.toJSON().Resources[bucketId].Properties;
    assert.deepEqual(bucket.WebsiteConfiguration, { ErrorDocument: 'index.html', IndexDocument: 'index.html' });
    assert.deepEqual(bucket.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      BlockPublicPolicy: false,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: false,
    });
    const statements = only(s.template, 'AWS::S3::BucketPolicy').props.PolicyDocument.Statement;
    assert.ok(
      statements.some(
        (st: any) =>
          st.Effect === 'Allow' &&
          st.Action === 's3:GetObject' &&
          st.Principal?.AWS === '*' &&
          JSON.stringify(st.Resource) === JSON.stringify({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, '/*']] }),
      ),
    );
    assert.ok(!statements.some((st: any) => st.Condition?.Bool?.['aws:SecureTransport']), 'website endpoints are HTTP only');
  });

  it('allows the website URL as the CORS origin and publishes it as SiteUrl', () => {
    const s = website();
    // CloudFormation's WebsiteURL is `http://{bucket}.s3-website-{region}.amazonaws.com`, no
    // trailing slash: exactly what browsers send as Origin.
    const websiteUrl = { 'Fn::GetAtt': [s.logicalId(s.stack.web.bucket), 'WebsiteURL'] };
    const fnProps = s.template.toJSON().Resources[s.logicalId(s.stack.api.function)].Properties;
    assert.deepEqual(fnProps.Environment.Variables[CONTRACT.env.allowedOrigins], websiteUrl);
    assert.deepEqual(s.template.toJSON().Outputs.SiteUrl.Value, websiteUrl);
    const gw = Object.values(s.template.findResources('AWS::ApiGateway::GatewayResponse')) as any[];
    for (const r of gw) {
      assert.deepEqual(r.Properties.ResponseParameters['gatewayresponse.header.Access-Control-Allow-Origin'], {
        'Fn::Join': ['', ["'", websiteUrl, "'"]],
      });
    }
  });

  it('deploys the same content without a CloudFront invalidation', () => {
    const s = website();
    const site = siteDeployment(s);
    assert.equal(site.DistributionId, undefined);
    assert.deepEqual(wasmDeployment(s).SystemMetadata['content-type'], 'application/wasm');
    assert.deepEqual(Object.keys(deployedConfig(s)), [CONTRACT.ui.apiBaseUrlField]);
  });

  it('rejects an unknown hosting mode', () => {
    assert.throws(() => synth({ hosting: 'amplify' }), /hosting=amplify: expected one of cloudfront, s3-website/);
  });
});
