import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { CfnElement } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { BucketDeployment } from 'aws-cdk-lib/aws-s3-deployment';
import { contentSecurityPolicy, inlineHashes } from '../lib/csp.ts';
import { classifyDist, globLiteral, HASHED_NAME } from '../lib/web.ts';
import {
  CONTRACT,
  CUSTOM_DOMAIN,
  FIXTURE_CSS,
  FIXTURE_DIST,
  FIXTURE_JS,
  FIXTURE_LOADER,
  FIXTURE_WASM,
  MISSING,
  only,
  resourcesOf,
  synth,
  type Synthesized,
} from './helpers.ts';

function deployments(s: Synthesized): any[] {
  return Object.values(s.template.findResources('Custom::CDKBucketDeployment')).map((r: any) => r.Properties);
}
/** Logical id of a BucketDeployment's custom resource. */
const deploymentId = (s: Synthesized, d: BucketDeployment) =>
  s.stack.getLogicalId(d.node.findChild('CustomResource').node.defaultChild as CfnElement);
const propsOf = (s: Synthesized, d: BucketDeployment) => s.template.toJSON().Resources[deploymentId(s, d)].Properties;
const siteDeployment = (s: Synthesized) => propsOf(s, s.stack.content.site);
const assetDeployment = (s: Synthesized, id: string) => {
  const d = s.stack.content.assets.find((a) => a.node.id === id);
  assert.ok(d, `deployment ${id}`);
  return propsOf(s, d);
};

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
      { ...oac.props.OriginAccessControlConfig, Description: undefined },
      {
        Description: undefined,
        // Stack name (which holds the stage) and region: unique per account, so the same stage
        // can also be deployed to a second region.
        Name: { 'Fn::Join': ['', ['TokenService-', { Ref: 'AWS::Region' }, '-ui']] },
        OriginAccessControlOriginType: 's3',
        SigningBehavior: 'always',
        SigningProtocol: 'sigv4',
      },
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

  it('uploads hashed files first, with a year of immutable caching and prune off; wasm typed application/wasm', () => {
    const s = synth();
    const wasm = assetDeployment(s, 'HashedWasm');
    assert.deepEqual(wasm.SystemMetadata, {
      'content-type': 'application/wasm',
      'cache-control': 'public, max-age=31536000, immutable',
    });
    assert.deepEqual(wasm.Exclude, ['*']);
    assert.deepEqual(wasm.Include, [FIXTURE_WASM]);
    assert.equal(wasm.Prune, false);
    assert.deepEqual(wasm.DestinationBucketName, { Ref: s.logicalId(s.stack.web.bucket) });
    const hashed = assetDeployment(s, 'Hashed');
    assert.deepEqual(hashed.SystemMetadata, { 'cache-control': 'public, max-age=31536000, immutable' });
    assert.deepEqual(hashed.Exclude, ['*']);
    assert.deepEqual(hashed.Include, [FIXTURE_JS, FIXTURE_CSS]);
    assert.equal(hashed.Prune, false);
    assert.equal(wasm.DistributionId, undefined, 'new hashed names need no invalidation');
    assert.equal(deployments(s).length, 3, 'HashedWasm, Hashed, Site (no unhashed wasm in the fixture)');
  });

  it('uploads index.html, config.json and unhashed files last, with no-cache and prune off', () => {
    const s = synth();
    const site = siteDeployment(s);
    assert.deepEqual(site.SystemMetadata, { 'cache-control': 'no-cache' });
    assert.deepEqual(site.Exclude, [FIXTURE_WASM, FIXTURE_JS, FIXTURE_CSS], 'the hashed files are step 1\'s');
    assert.equal(site.Include, undefined);
    assert.equal(site.Prune, false, 'files of the previous build stay for browsers still on the old index.html');
  });

  it('uploads the built dist/ folder, without a stale config.json', () => {
    const s = synth();
    const key: string = siteDeployment(s).SourceObjectKeys[0];
    assert.equal(assetDeployment(s, 'HashedWasm').SourceObjectKeys[0], key, 'all deployments upload the same dist asset');
    const staged = path.join(s.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    assert.deepEqual(fs.readdirSync(staged).sort(), ['favicon.ico', FIXTURE_JS, FIXTURE_WASM, 'index.html', FIXTURE_CSS].sort());
  });

  it('writes config.json pointing at the API URL, the same value as the ApiUrl output', () => {
    const s = synth();
    const config = deployedConfig(s);
    assert.deepEqual(Object.keys(config), [CONTRACT.ui.apiBaseUrlField]);
    const apiUrl = s.template.toJSON().Outputs.ApiUrl.Value['Fn::Join'][1];
    assert.deepEqual(normalizeJoin(config[CONTRACT.ui.apiBaseUrlField]), normalizeJoin(apiUrl));
    assert.equal(typeof apiUrl.at(-1), 'object', 'the URL ends with the stage, not a slash');
  });

  it('puts index.html live only after the hashed files and the new security headers, then invalidates', () => {
    const s = synth();
    const site = siteDeployment(s);
    assert.deepEqual(site.DistributionId, { Ref: s.logicalId(s.stack.web.distribution!) });
    assert.deepEqual(site.DistributionPaths, ['/*']);
    const dependsOn: string[] = s.template.toJSON().Resources[deploymentId(s, s.stack.content.site)].DependsOn;
    for (const asset of s.stack.content.assets) assert.ok(dependsOn.includes(deploymentId(s, asset)), asset.node.id);
    assert.ok(dependsOn.includes(s.logicalId(s.stack.web.headersPolicy!)));
  });

  it('deploys a placeholder page and warns only with allowPlaceholders=true', () => {
    assert.throws(() => synth({ uiDist: MISSING }), /uiDist: .* is not found/);
    const s = synth({ uiDist: MISSING, allowPlaceholders: 'true' });
    s.annotations.hasWarning('/TokenService', Match.stringLikeRegexp('Web UI not found.*Do not deploy this template over a live stage'));
    assert.deepEqual(s.stack.content.assets, [], 'the placeholder has no hashed files');
    const key: string = siteDeployment(s).SourceObjectKeys[0];
    const staged = path.join(s.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    assert.deepEqual(fs.readdirSync(staged), ['index.html']);
    assert.match(fs.readFileSync(path.join(staged, 'index.html'), 'utf8'), /The web UI was not built/);
    assert.deepEqual(synth().annotations.findWarning('*', Match.stringLikeRegexp('Web UI not found')), []);
  });

  it('sends HSTS, nosniff, no referrer, DENY framing and the CSP on every response', () => {
    const s = synth();
    const policy = only(s.template, 'AWS::CloudFront::ResponseHeadersPolicy');
    const config = policy.props.ResponseHeadersPolicyConfig;
    assert.deepEqual(config.Name, { 'Fn::Join': ['', ['TokenService-', { Ref: 'AWS::Region' }, '-security-headers']] });
    const headers = config.SecurityHeadersConfig;
    assert.deepEqual(headers.StrictTransportSecurity, {
      AccessControlMaxAgeSec: 63072000,
      IncludeSubdomains: true,
      Override: true,
      Preload: false,
    });
    assert.deepEqual(headers.ContentTypeOptions, { Override: true });
    assert.deepEqual(headers.ReferrerPolicy, { ReferrerPolicy: 'no-referrer', Override: true });
    assert.deepEqual(headers.FrameOptions, { FrameOption: 'DENY', Override: true });
    assert.equal(headers.ContentSecurityPolicy.Override, true);
    const dist = only(s.template, 'AWS::CloudFront::Distribution').props.DistributionConfig;
    assert.deepEqual(dist.DefaultCacheBehavior.ResponseHeadersPolicyId, { Ref: policy.id });
  });

  it('has a CSP allowing wasm, the inline loader of this build by hash, and fetches to exactly this API', () => {
    const s = synth();
    const csp = only(s.template, 'AWS::CloudFront::ResponseHeadersPolicy').props.ResponseHeadersPolicyConfig.SecurityHeadersConfig
      .ContentSecurityPolicy.ContentSecurityPolicy;
    // The loader's hash, computed independently of lib/csp.ts.
    const loaderHash = `'sha256-${createHash('sha256').update(FIXTURE_LOADER).digest('base64')}'`;
    assert.deepEqual(csp, {
      'Fn::Join': [
        '',
        [
          `default-src 'none'; script-src 'self' 'wasm-unsafe-eval' ${loaderHash}; style-src 'self'; img-src 'self'; ` +
            "connect-src 'self' https://",
          { Ref: s.logicalId(s.stack.api.restApi!) },
          '.execute-api.',
          { Ref: 'AWS::Region' },
          '.',
          { Ref: 'AWS::URLSuffix' },
          "; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ],
      ],
    });
    assert.doesNotMatch(JSON.stringify(csp), /'unsafe-inline'|'unsafe-eval'|\*/);
  });

  it('has no TLS settings of its own on the cloudfront.net domain; with a custom domain, its certificate and TLS 1.2', () => {
    const plain = only(synth().template, 'AWS::CloudFront::Distribution').props.DistributionConfig;
    assert.equal(plain.Aliases, undefined);
    assert.equal(plain.ViewerCertificate, undefined);

    const s = synth(CUSTOM_DOMAIN);
    const dist = only(s.template, 'AWS::CloudFront::Distribution').props.DistributionConfig;
    assert.deepEqual(dist.Aliases, ['tokens.example.com']);
    assert.deepEqual(dist.ViewerCertificate, {
      AcmCertificateArn: CUSTOM_DOMAIN.certificateArn,
      MinimumProtocolVersion: 'TLSv1.2_2021',
      SslSupportMethod: 'sni-only',
    });
    // The site's origin is then the custom domain: CORS on the API and the Lambda's allow-list.
    const fn = s.template.toJSON().Resources[s.logicalId(s.stack.api.function)].Properties;
    assert.equal(fn.Environment.Variables[CONTRACT.env.allowedOrigins], 'https://tokens.example.com');
    const responses = resourcesOf(s.template, 'AWS::ApiGateway::GatewayResponse');
    for (const [, r] of responses) {
      assert.equal(r.Properties.ResponseParameters['gatewayresponse.header.Access-Control-Allow-Origin'], "'https://tokens.example.com'");
    }
  });
});

describe('content security policy (lib/csp.ts)', () => {
  it('hashes inline scripts exactly as browsers do, skipping external ones and folding CR LF', () => {
    // Reference values from Python's hashlib (sha256, base64) of the literal script text.
    assert.deepEqual(inlineHashes('<script>alert(1)</script>', 'script'), ["'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"]);
    assert.deepEqual(inlineHashes('<script type="module">\r\nx\r\n</script>', 'script'), inlineHashes('<script type="module">\nx\n</script>', 'script'));
    assert.deepEqual(inlineHashes('<script src="/a.js"></script><SCRIPT>alert(1)</SCRIPT >', 'script'), [
      "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='",
    ]);
    assert.deepEqual(inlineHashes('<script>alert(1)</script><script>alert(1)</script><script></script>', 'script').length, 1);
    assert.deepEqual(inlineHashes('<style>body{}</style>', 'style'), [`'sha256-${createHash('sha256').update('body{}').digest('base64')}'`]);
    assert.deepEqual(inlineHashes(fs.readFileSync(path.join(FIXTURE_DIST, 'index.html'), 'utf8'), 'style'), []);
  });

  it('builds a policy with no inline allowance when index.html has no inline script', () => {
    assert.equal(
      contentSecurityPolicy({ scriptHashes: [], styleHashes: [], connectOrigins: ['https://api.example.com'] }),
      "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; " +
        "connect-src 'self' https://api.example.com; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
  });
});

describe('dist/ classification (lib/web.ts)', () => {
  it('treats trunk\'s {stem}-{hex hash} names as hashed and everything else as revalidated', () => {
    assert.deepEqual(classifyDist(FIXTURE_DIST), {
      hashedWasm: [FIXTURE_WASM],
      hashed: [FIXTURE_JS, FIXTURE_CSS].sort((a, b) => a.localeCompare(b)),
      plainWasm: [],
      other: ['favicon.ico', 'index.html'],
    });
    for (const name of ['frontend-0123456789abcdef_bg.wasm', 'style-abcdef012345.css', 'x-0123456789ab.js']) assert.match(name, HASHED_NAME);
    for (const name of ['app-cafe.js', 'frontend_bg.wasm', 'index.html', 'worker-0123456789ABCDEF.js', 'a-0123456789abcdef.png']) {
      assert.doesNotMatch(name, HASHED_NAME);
    }
    assert.equal(globLiteral('a[1]*?.js'), 'a[[]1[]][*][?].js');
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

  it('deploys the same content without a CloudFront invalidation or security headers', () => {
    const s = website();
    const site = siteDeployment(s);
    assert.equal(site.DistributionId, undefined);
    assert.deepEqual(assetDeployment(s, 'HashedWasm').SystemMetadata['content-type'], 'application/wasm');
    assert.deepEqual(Object.keys(deployedConfig(s)), [CONTRACT.ui.apiBaseUrlField]);
    assert.deepEqual(s.template.findResources('AWS::CloudFront::ResponseHeadersPolicy'), {});
  });

  it('rejects an unknown hosting mode', () => {
    assert.throws(() => synth({ hosting: 'amplify' }), /hosting=amplify: expected one of cloudfront, s3-website/);
  });
});
