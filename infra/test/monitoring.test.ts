import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALARM } from '../lib/monitoring.ts';
import { CONTRACT, only, resourcesOf, synth, type Synthesized } from './helpers.ts';

const M = CONTRACT.metrics;

function alarmProps(s: Synthesized, name: string) {
  const alarm = s.stack.monitoring.alarms[name];
  assert.ok(alarm, `alarm ${name}`);
  return s.template.toJSON().Resources[s.logicalId(alarm)].Properties;
}

/** The metrics an alarm reads, whether it is a plain metric alarm or a metric-math one. */
function metricsOf(props: any): { namespace: string; name: string; dimensions: any[]; stat: string }[] {
  if (props.MetricName) {
    return [{ namespace: props.Namespace, name: props.MetricName, dimensions: props.Dimensions, stat: props.ExtendedStatistic ?? props.Statistic }];
  }
  return props.Metrics.filter((m: any) => m.MetricStat).map((m: any) => ({
    namespace: m.MetricStat.Metric.Namespace,
    name: m.MetricStat.Metric.MetricName,
    dimensions: m.MetricStat.Metric.Dimensions,
    stat: m.MetricStat.Stat,
  }));
}

describe('alarms', () => {
  const expected = [
    'ApiClientErrorRate',
    'ApiLatencyP99',
    'ApiServerErrorRate',
    'DynamoDbSystemErrors',
    'DynamoDbThrottles',
    'LambdaErrors',
    'LambdaThrottles',
    'ReuseDetected',
  ];

  it('exist for API 5xx and 4xx rates, p99 latency, Lambda errors and throttles, DynamoDB errors and throttles, token reuse', () => {
    const s = synth();
    assert.deepEqual(Object.keys(s.stack.monitoring.alarms).sort(), expected);
    const names = resourcesOf(s.template, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties.AlarmName).sort();
    assert.deepEqual(names, expected.map((n) => `TokenService-${n}`));
  });

  it('notify the SNS topic on ALARM and on OK, and treat no data as healthy', () => {
    const s = synth();
    const topic = { Ref: s.logicalId(s.stack.monitoring.topic) };
    for (const name of expected) {
      const a = alarmProps(s, name);
      assert.deepEqual(a.AlarmActions, [topic], name);
      assert.deepEqual(a.OKActions, [topic], name);
      assert.equal(a.TreatMissingData, 'notBreaching', name);
      assert.equal(a.ComparisonOperator, 'GreaterThanOrEqualToThreshold', name);
    }
  });

  it('compute the 5xx rate as a percentage of at least 20 requests, from the REST metric names in contract.json', () => {
    const s = synth();
    const a = alarmProps(s, 'ApiServerErrorRate');
    assert.equal(a.Threshold, 5);
    assert.equal(a.EvaluationPeriods, 1);
    const expression = a.Metrics.find((m: any) => m.Expression);
    assert.equal(expression.Expression, 'IF(requests >= 20, 100 * errors / requests, 0)');
    const dimensions = [
      { Name: 'ApiName', Value: 'TokenService' },
      { Name: 'Stage', Value: { Ref: s.logicalId(s.stack.api.restApi!.deploymentStage) } },
    ];
    assert.deepEqual(metricsOf(a), [
      { namespace: M.apiGateway.namespace, name: M.apiGateway.rest.serverErrors, dimensions, stat: 'Sum' },
      { namespace: M.apiGateway.namespace, name: M.apiGateway.rest.requests, dimensions, stat: 'Sum' },
    ]);
    assert.equal(metricsOf(alarmProps(s, 'ApiClientErrorRate'))[0].name, M.apiGateway.rest.clientErrors);
    assert.equal(alarmProps(s, 'ApiClientErrorRate').Threshold, ALARM.clientErrorPercent);
  });

  it('watch p99 latency over 1 s in 2 of 3 five-minute periods', () => {
    const a = alarmProps(synth(), 'ApiLatencyP99');
    assert.equal(a.MetricName, M.apiGateway.rest.latency);
    assert.equal(a.ExtendedStatistic, 'p99');
    assert.equal(a.Threshold, 1000);
    assert.equal(a.Period, 300);
    assert.equal(a.EvaluationPeriods, 3);
    assert.equal(a.DatapointsToAlarm, 2);
  });

  it('fire on the first Lambda error or throttle of the token function', () => {
    const s = synth();
    for (const [name, metric] of [
      ['LambdaErrors', M.lambda.errors],
      ['LambdaThrottles', M.lambda.throttles],
    ]) {
      const a = alarmProps(s, name);
      assert.equal(a.Namespace, M.lambda.namespace);
      assert.equal(a.MetricName, metric);
      assert.deepEqual(a.Dimensions, [{ Name: 'FunctionName', Value: { Ref: s.logicalId(s.stack.api.function) } }]);
      assert.equal(a.Statistic, 'Sum');
      assert.equal(a.Threshold, 1);
    }
  });

  it('add up DynamoDB system errors and throttled requests over the operations the function performs', () => {
    const s = synth();
    for (const [name, metric] of [
      ['DynamoDbSystemErrors', M.dynamodb.systemErrors],
      ['DynamoDbThrottles', M.dynamodb.throttledRequests],
    ]) {
      const a = alarmProps(s, name);
      const metrics = metricsOf(a);
      const table = { Ref: s.logicalId(s.stack.storage.table) };
      assert.deepEqual(
        metrics.map((m) => [m.namespace, m.name, m.dimensions]),
        ['PutItem', 'UpdateItem', 'GetItem'].map((op) => [
          M.dynamodb.namespace,
          metric,
          [
            { Name: 'Operation', Value: op },
            { Name: 'TableName', Value: table },
          ],
        ]),
      );
      assert.equal(a.Threshold, 1);
    }
  });

  it("fire on the backend's reuse_detected metric, named in contract.json, for this stage's function only", () => {
    const s = synth();
    const a = alarmProps(s, 'ReuseDetected');
    assert.equal(M.namespace, 'TokenService');
    assert.equal(M.reuseDetected, 'reuse_detected');
    assert.equal(a.Namespace, M.namespace);
    assert.equal(a.MetricName, M.reuseDetected);
    assert.deepEqual(a.Dimensions, [{ Name: M.functionNameDimension, Value: { Ref: s.logicalId(s.stack.api.function) } }]);
    assert.equal(a.Threshold, 1);
  });

  it('use no metric name that is not in contract.json', () => {
    const s = synth();
    const known = new Set<string>();
    const walk = (v: any) => {
      if (typeof v === 'string') known.add(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(M);
    for (const [, alarm] of resourcesOf(s.template, 'AWS::CloudWatch::Alarm')) {
      for (const m of metricsOf(alarm.Properties)) {
        assert.ok(known.has(m.namespace), m.namespace);
        assert.ok(known.has(m.name), m.name);
      }
    }
    // The dashboard's metric arrays start [namespace, metricName, ...].
    const body = JSON.stringify(only(s.template, 'AWS::CloudWatch::Dashboard').props.DashboardBody);
    for (const [, namespace, name] of body.matchAll(/\[\\"(AWS\/[A-Za-z0-9]+|TokenService)\\",\\"([A-Za-z0-9_]+)\\"/g)) {
      assert.ok(known.has(namespace) && known.has(name), `${namespace} ${name}`);
    }
  });
});

describe('alarm topic', () => {
  it('accepts only TLS publishers and has no subscriptions unless alarmEmail is given', () => {
    const s = synth();
    assert.deepEqual(s.template.findResources('AWS::SNS::Subscription'), {});
    const policy = only(s.template, 'AWS::SNS::TopicPolicy').props.PolicyDocument.Statement;
    assert.ok(policy.some((st: any) => st.Effect === 'Deny' && st.Condition?.Bool?.['aws:SecureTransport'] === 'false'));
  });

  it('subscribes each alarmEmail address by e-mail', () => {
    const s = synth({ alarmEmail: 'ops@example.com,oncall@example.org' });
    const subs = resourcesOf(s.template, 'AWS::SNS::Subscription').map(([, r]) => r.Properties);
    assert.deepEqual(
      subs.map((p) => [p.Protocol, p.Endpoint]),
      [
        ['email', 'ops@example.com'],
        ['email', 'oncall@example.org'],
      ],
    );
    for (const p of subs) assert.deepEqual(p.TopicArn, { Ref: s.logicalId(s.stack.monitoring.topic) });
  });
});

describe('dashboard', () => {
  it('is named after the stack and region (dashboards are global per account) and graphs every area', () => {
    const s = synth();
    const { props } = only(s.template, 'AWS::CloudWatch::Dashboard');
    assert.deepEqual(props.DashboardName, { 'Fn::Join': ['', ['TokenService-', { Ref: 'AWS::Region' }]] });
    const body = JSON.stringify(props.DashboardBody);
    for (const title of ['API requests and errors', 'API latency', 'Alarms', 'Lambda duration', 'DynamoDB latency by operation', 'Token reuse attempts', 'WAF']) {
      assert.ok(body.includes(title), title);
    }
    assert.ok(body.includes(M.waf.blockedRequests) && body.includes(M.waf.perIpRateRuleMetric));
    assert.ok(!JSON.stringify(only(synth({ waf: 'false' }).template, 'AWS::CloudWatch::Dashboard').props).includes('AWS/WAFV2'));
  });
});
