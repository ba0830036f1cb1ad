/**
 * Per-client limits for the REST API: a regional AWS WAF web ACL on the API stage with one
 * rate-based rule keyed on the client's IP address. Without it, the only limits are API
 * Gateway's per-method throttles, which every client shares: one client at the throttle rate
 * locks everyone else out.
 *
 * WAF counts each IP's requests over the evaluation window and blocks that IP while its count is
 * over the limit; it checks the rates about every 10 seconds, so a client can overshoot for a few
 * seconds before it is blocked (AWS WAF developer guide, "Rate-based rule high-level settings").
 * Blocked requests get 429 with the CORS headers, so the UI can tell the user to slow down.
 */
import { Stack } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { contract } from './contract.ts';

/**
 * Body of the 429 answer: the API's one answer shape (the shared crate's `ValidateResponse`) with
 * the `overloaded` reason ("retry after Retry-After"), so the UI reads it like any refusal.
 */
export const RATE_LIMITED_BODY = {
  isValid: false,
  message: 'Too many requests from this address; try again in a few minutes.',
  reason: 'overloaded',
};

/** Name of the rate rule inside the web ACL (a CloudWatch dimension too: `Rule`). */
export const RATE_RULE_NAME = 'PerClientIpRate';

export interface ApiFirewallProps {
  /** The REST API stage to protect. */
  readonly stage: apigw.Stage;
  /** Web ACL name, unique per account and region: the stack name. */
  readonly name: string;
  /** Requests one IP may make per `windowSeconds` before it is blocked (WAF minimum 10). */
  readonly rateLimit: number;
  /** WAF evaluation window: 60, 120, 300 or 600 seconds. */
  readonly windowSeconds: number;
  /** Site origin, for the CORS header on the 429 answer. */
  readonly allowedOrigin: string;
}

/** The web ACL and its association with the API stage. */
export class ApiFirewall extends Construct {
  readonly webAcl: wafv2.CfnWebACL;
  /** The web ACL's name: the `WebACL` dimension of its CloudWatch metrics. */
  readonly webAclName: string;

  constructor(scope: Construct, id: string, props: ApiFirewallProps) {
    super(scope, id);
    this.webAclName = props.name;
    const visibility = (metricName: string): wafv2.CfnWebACL.VisibilityConfigProperty => ({
      cloudWatchMetricsEnabled: true,
      metricName,
      // Sampled requests show the client IPs being blocked in the console; no bodies are kept.
      sampledRequestsEnabled: true,
    });

    this.webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      name: props.name,
      description: 'One-time-token service API: per-client-IP rate limit',
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: visibility(contract.metrics.waf.webAclMetric),
      customResponseBodies: {
        TooManyRequests: {
          contentType: 'APPLICATION_JSON',
          content: JSON.stringify(RATE_LIMITED_BODY),
        },
      },
      rules: [
        {
          name: RATE_RULE_NAME,
          priority: 0,
          statement: {
            rateBasedStatement: {
              aggregateKeyType: 'IP',
              limit: props.rateLimit,
              evaluationWindowSec: props.windowSeconds,
            },
          },
          action: {
            block: {
              customResponse: {
                responseCode: 429,
                customResponseBodyKey: 'TooManyRequests',
                responseHeaders: [
                  { name: 'Access-Control-Allow-Origin', value: props.allowedOrigin },
                  { name: 'Vary', value: 'Origin' },
                  { name: 'Retry-After', value: String(props.windowSeconds) },
                ],
              },
            },
          },
          visibilityConfig: visibility(contract.metrics.waf.perIpRateRuleMetric),
        },
      ],
    });

    const stack = Stack.of(this);
    new wafv2.CfnWebACLAssociation(this, 'Association', {
      resourceArn: `arn:${stack.partition}:apigateway:${stack.region}::/restapis/${props.stage.restApi.restApiId}/stages/${props.stage.stageName}`,
      webAclArn: this.webAcl.attrArn,
    });
  }
}
