import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { CONTRACT, CUSTOM_DOMAIN, only, resourcesOf, synth } from './helpers.ts';

const http = () => synth({ apiType: 'http' });

describe('HTTP API variant (-c apiType=http)', () => {
  it('replaces the REST API with one HTTP API named after the stack', () => {
    const s = http();
    assert.deepEqual(s.template.findResources('AWS::ApiGateway::RestApi'), {});
    assert.deepEqual(s.template.findResources('AWS::ApiGateway::Stage'), {});
    const api = only(s.template, 'AWS::ApiGatewayV2::Api');
    assert.equal(api.props.ProtocolType, 'HTTP');
    assert.equal(api.props.Name, 'TokenService');
  });

  it('answers CORS itself for exactly the site origin, with the headers the UI sends and reads', () => {
    const s = http();
    const { props } = only(s.template, 'AWS::ApiGatewayV2::Api');
    assert.deepEqual(props.CorsConfiguration, {
      AllowHeaders: ['Content-Type', 'Idempotency-Key'],
      AllowMethods: ['GET', 'POST', 'OPTIONS'],
      AllowOrigins: [{ 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [s.logicalId(s.stack.web.distribution!), 'DomainName'] }]] }],
      ExposeHeaders: ['Retry-After', 'Idempotency-Key'],
      MaxAge: 3600,
    });
  });

  it('routes every API endpoint (tokens, status, revoke, health, openapi.json) to the function with payload format 2.0', () => {
    const s = http();
    const routes = resourcesOf(s.template, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    assert.deepEqual(routes.map((r) => r.RouteKey).sort(), ['GET /health', 'GET /openapi.json', 'GET /tokens', 'POST /tokens', 'POST /tokens/revoke', 'POST /tokens/status']);
    const integrations = resourcesOf(s.template, 'AWS::ApiGatewayV2::Integration');
    assert.equal(integrations.length, 1, 'one integration shared by the routes');
    const [integrationId, integration] = integrations[0];
    assert.equal(integration.Properties.IntegrationType, 'AWS_PROXY');
    assert.equal(integration.Properties.PayloadFormatVersion, '2.0');
    assert.deepEqual(integration.Properties.IntegrationUri, { 'Fn::GetAtt': [s.logicalId(s.stack.api.function), 'Arn'] });
    for (const r of routes) {
      assert.deepEqual(r.Target, { 'Fn::Join': ['', ['integrations/', { Ref: integrationId }]] });
      assert.equal(r.AuthorizationType, 'NONE');
    }
    const permissions = resourcesOf(s.template, 'AWS::Lambda::Permission').map(([, p]) => p.Properties);
    assert.equal(permissions.length, 6, 'one invoke permission per route, scoped to it');
    for (const p of permissions) assert.equal(p.Principal, 'apigateway.amazonaws.com');
  });

  it('serves the $default stage, auto-deployed, throttled per route, with access logs and no bodies', () => {
    const s = http();
    const { props } = only(s.template, 'AWS::ApiGatewayV2::Stage');
    assert.equal(props.StageName, '$default');
    assert.equal(props.AutoDeploy, true);
    assert.deepEqual(props.DefaultRouteSettings, { ThrottlingBurstLimit: 20, ThrottlingRateLimit: 10 });
    const format = JSON.parse(props.AccessLogSettings.Format);
    assert.equal(format.requestId, '$context.requestId');
    assert.equal(format.routeKey, '$context.routeKey');
    assert.doesNotMatch(props.AccessLogSettings.Format, /requestBody|responseBody|\$context\.identity\.(user|caller)\b/);
    const logGroup = props.AccessLogSettings.DestinationArn['Fn::GetAtt'][0];
    assert.equal(s.template.toJSON().Resources[logGroup].Properties.RetentionInDays, 30);
  });

  it('publishes the API root as ApiUrl and config.json, with no stage in the path', () => {
    const s = http();
    const apiId = s.logicalId(s.stack.api.httpApi!);
    assert.deepEqual(s.template.toJSON().Outputs.ApiUrl.Value, {
      'Fn::Join': ['', ['https://', { Ref: apiId }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]],
    });
  });

  it('has no WAF (HTTP APIs cannot carry one), warns about it, and refuses waf=true', () => {
    const s = http();
    assert.deepEqual(s.template.findResources('AWS::WAFv2::WebACL'), {});
    s.annotations.hasWarning('/TokenService', Match.stringLikeRegexp('No WAF web ACL'));
    assert.throws(() => synth({ apiType: 'http', waf: 'true' }), /waf=true needs apiType=rest/);
  });

  it("lets the site's CSP reach this region's execute-api hosts, or exactly the API when a custom domain breaks the cycle", () => {
    const cspOf = (s: ReturnType<typeof synth>) =>
      JSON.stringify(
        only(s.template, 'AWS::CloudFront::ResponseHeadersPolicy').props.ResponseHeadersPolicyConfig.SecurityHeadersConfig
          .ContentSecurityPolicy.ContentSecurityPolicy,
      );
    assert.match(cspOf(http()), /connect-src 'self' https:\/\/\*\.execute-api\.",\{"Ref":"AWS::Region"\},"\.",\{"Ref":"AWS::URLSuffix"\},"; /);
    const withDomain = synth({ apiType: 'http', ...CUSTOM_DOMAIN });
    const apiId = withDomain.logicalId(withDomain.stack.api.httpApi!);
    assert.ok(cspOf(withDomain).includes(`connect-src 'self' https://",{"Ref":"${apiId}"},".execute-api.`));
    assert.doesNotMatch(cspOf(withDomain), /\*/);
  });

  it('alarms on the HTTP API metric names from contract.json, keyed by API id', () => {
    const s = http();
    const alarm = s.template.toJSON().Resources[s.logicalId(s.stack.monitoring.alarms.ApiServerErrorRate)].Properties;
    const stats = alarm.Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric);
    assert.deepEqual(stats.map((m: any) => m.MetricName).sort(), [CONTRACT.metrics.apiGateway.http.requests, CONTRACT.metrics.apiGateway.http.serverErrors].sort());
    for (const m of stats) {
      assert.deepEqual(m.Dimensions, [
        { Name: 'ApiId', Value: { Ref: s.logicalId(s.stack.api.httpApi!) } },
        { Name: 'Stage', Value: '$default' },
      ]);
    }
  });
});
