import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { REPO_ROOT } from '../lib/contract.ts';
import { RATE_LIMITED_BODY } from '../lib/waf.ts';
import { CONTRACT, only, synth } from './helpers.ts';

describe('per-client limit: WAF web ACL on the REST API stage (default)', () => {
  it('blocks each client IP over 300 requests in 5 minutes with a 429 the browser can read', () => {
    const s = synth();
    const acl = only(s.template, 'AWS::WAFv2::WebACL').props;
    assert.equal(acl.Scope, 'REGIONAL');
    assert.equal(acl.Name, 'TokenService');
    assert.deepEqual(acl.DefaultAction, { Allow: {} });
    assert.equal(acl.Rules.length, 1);
    const [rule] = acl.Rules;
    assert.deepEqual(rule.Statement, { RateBasedStatement: { AggregateKeyType: 'IP', EvaluationWindowSec: 300, Limit: 300 } });
    assert.deepEqual(rule.Action.Block.CustomResponse.ResponseCode, 429);
    assert.deepEqual(rule.Action.Block.CustomResponse.ResponseHeaders, [
      {
        Name: 'Access-Control-Allow-Origin',
        Value: { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [s.logicalId(s.stack.web.distribution!), 'DomainName'] }]] },
      },
      { Name: 'Vary', Value: 'Origin' },
      { Name: 'Retry-After', Value: '300' },
    ]);
    const body = acl.CustomResponseBodies[rule.Action.Block.CustomResponse.CustomResponseBodyKey];
    assert.equal(body.ContentType, 'APPLICATION_JSON');
    assert.deepEqual(JSON.parse(body.Content), RATE_LIMITED_BODY);
    assert.deepEqual(rule.VisibilityConfig.MetricName, CONTRACT.metrics.waf.perIpRateRuleMetric);
    assert.deepEqual(acl.VisibilityConfig.MetricName, CONTRACT.metrics.waf.webAclMetric);
  });

  it("answers in the API's shape with a reason the shared crate defines", () => {
    const shared = readFileSync(path.join(REPO_ROOT, 'shared', 'src', 'lib.rs'), 'utf8');
    // Reason is serialized in snake_case: `overloaded` is the variant `Overloaded`.
    assert.match(shared, /pub enum Reason \{[\s\S]*?\n\s+Overloaded,/);
    assert.equal(RATE_LIMITED_BODY.reason, 'overloaded');
    assert.match(shared, /#\[serde\(rename_all = "camelCase"\)\]\npub struct ValidateResponse \{[\s\S]*?pub is_valid: bool/);
  });

  it('is associated with the API stage', () => {
    const s = synth();
    const { props } = only(s.template, 'AWS::WAFv2::WebACLAssociation');
    assert.deepEqual(props.WebACLArn, { 'Fn::GetAtt': [only(s.template, 'AWS::WAFv2::WebACL').id, 'Arn'] });
    assert.deepEqual(props.ResourceArn, {
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':apigateway:',
          { Ref: 'AWS::Region' },
          '::/restapis/',
          { Ref: s.logicalId(s.stack.api.restApi!) },
          '/stages/',
          { Ref: s.logicalId(s.stack.api.restApi!.deploymentStage) },
        ],
      ],
    });
  });

  it('takes the limit and window from context within the bounds AWS WAF accepts', () => {
    const rule = only(synth({ wafRateLimit: '100', wafWindowSeconds: '60' }).template, 'AWS::WAFv2::WebACL').props.Rules[0];
    assert.deepEqual(rule.Statement.RateBasedStatement, { AggregateKeyType: 'IP', EvaluationWindowSec: 60, Limit: 100 });
    assert.equal(rule.Action.Block.CustomResponse.ResponseHeaders.at(-1).Value, '60');
    assert.throws(() => synth({ wafRateLimit: '9' }), /wafRateLimit=9: AWS WAF's lowest rate limit is 10/);
    assert.throws(() => synth({ wafWindowSeconds: '30' }), /wafWindowSeconds=30: expected one of 60, 120, 300, 600/);
  });

  it('can be turned off with waf=false, which leaves a synth warning', () => {
    const s = synth({ waf: 'false' });
    assert.deepEqual(s.template.findResources('AWS::WAFv2::WebACL'), {});
    assert.deepEqual(s.template.findResources('AWS::WAFv2::WebACLAssociation'), {});
    s.annotations.hasWarning('/TokenService', Match.stringLikeRegexp('throttling is the only limit, and all clients share it'));
    assert.deepEqual(synth().annotations.findWarning('*', Match.stringLikeRegexp('No WAF web ACL')), []);
  });
});
