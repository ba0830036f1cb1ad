/**
 * Alarms, the topic they notify, and a dashboard. Every metric name comes from
 * `contract.json`'s `metrics` (the backend's `reuse_detected` included), so a rename on either
 * side fails a test rather than leaving an alarm that never fires.
 *
 * Each alarm notifies the topic when it goes into ALARM and when it recovers (OK). Subscribe with
 * `-c alarmEmail=a@example.com,b@example.com`, or subscribe anything else to the `AlarmTopicArn`
 * output. Missing data (no traffic) counts as healthy.
 */
import { Aws, Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { TABLE_ITEM_ACTIONS, type TokenApi } from './api.ts';
import { contract } from './contract.ts';
import { RATE_RULE_NAME, type ApiFirewall } from './waf.ts';

const M = contract.metrics;

/** Alarm thresholds and windows; the README's alarm table is written from these. */
export const ALARM = {
  period: Duration.minutes(5),
  /** 5xx answers, percent of requests in a period, with at least `minRequests` requests. */
  serverErrorPercent: 5,
  /** 4xx answers (API Gateway's own 429 throttling among them), percent of requests. */
  clientErrorPercent: 25,
  /** Below this many requests in a period an error rate is noise, not a signal. */
  minRequests: 20,
  /** p99 of API Gateway's Latency (request in to response out), milliseconds. */
  latencyP99Ms: 1000,
  /** The p99 alarm fires when this many of the last `latencyPeriods` periods are over. */
  latencyDatapoints: 2,
  latencyPeriods: 3,
} as const;

export interface MonitoringProps {
  /** Prefix of alarm and dashboard names: the stack name. */
  readonly namePrefix: string;
  readonly api: TokenApi;
  /** The API's name: the REST API's `ApiName` metric dimension. */
  readonly apiName: string;
  readonly table: dynamodb.ITable;
  readonly firewall?: ApiFirewall;
  readonly alarmEmails: readonly string[];
}

/** The alarm topic, the alarms and the dashboard. */
export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  /** By short name, e.g. `ApiServerErrorRate`. */
  readonly alarms: Record<string, cloudwatch.Alarm> = {};
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { api } = props;

    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `Token service alarms (${props.namePrefix})`,
      enforceSSL: true,
    });
    // Not encrypted with KMS: CloudWatch alarms cannot publish to a topic encrypted with the AWS
    // managed SNS key, and the messages are alarm state changes (no tokens or keys).
    for (const email of props.alarmEmails) this.topic.addSubscription(new subscriptions.EmailSubscription(email));

    // API Gateway: REST metrics are keyed by API name and stage, HTTP API metrics by API id.
    const apiNames = api.apiType === 'rest' ? M.apiGateway.rest : M.apiGateway.http;
    const apiDimensions: Record<string, string> =
      api.apiType === 'rest'
        ? { ApiName: props.apiName, Stage: api.metricsStage }
        : { ApiId: api.httpApi!.apiId, Stage: api.metricsStage };
    const apiMetric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({ namespace: M.apiGateway.namespace, metricName, dimensionsMap: apiDimensions, statistic, period: ALARM.period });
    const requests = apiMetric(apiNames.requests, 'Sum');
    const serverErrors = apiMetric(apiNames.serverErrors, 'Sum');
    const clientErrors = apiMetric(apiNames.clientErrors, 'Sum');
    const latencyP99 = apiMetric(apiNames.latency, 'p99');
    const latencyP50 = apiMetric(apiNames.latency, 'p50');

    const fnDimensions = { FunctionName: api.function.functionName };
    const lambdaMetric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({ namespace: M.lambda.namespace, metricName, dimensionsMap: fnDimensions, statistic, period: ALARM.period });

    // DynamoDB reports SystemErrors and ThrottledRequests per operation only (dimensions
    // TableName and Operation), so the alarms add up the operations the function performs.
    const operations = TABLE_ITEM_ACTIONS.map((action) => action.replace(/^dynamodb:/, ''));
    const tableMetric = (metricName: string, operation: string, statistic = 'Sum') =>
      new cloudwatch.Metric({
        namespace: M.dynamodb.namespace,
        metricName,
        dimensionsMap: { TableName: props.table.tableName, Operation: operation },
        statistic,
        period: ALARM.period,
      });
    const sumOverOperations = (metricName: string, label: string) => {
      // Ids unique per metric name, so that two such sums can share a graph.
      const id = (op: string) => `${metricName}${op}`.replace(/^[A-Z]/, (c) => c.toLowerCase());
      return new cloudwatch.MathExpression({
        expression: operations.map(id).join(' + '),
        usingMetrics: Object.fromEntries(operations.map((op) => [id(op), tableMetric(metricName, op)])),
        label,
        period: ALARM.period,
      });
    };

    const reuseDetected = new cloudwatch.Metric({
      namespace: M.namespace,
      metricName: M.reuseDetected,
      dimensionsMap: { [M.functionNameDimension]: api.function.functionName },
      statistic: 'Sum',
      period: ALARM.period,
    });

    const percentOfRequests = (errors: cloudwatch.IMetric, label: string) =>
      new cloudwatch.MathExpression({
        expression: `IF(requests >= ${ALARM.minRequests}, 100 * errors / requests, 0)`,
        usingMetrics: { errors, requests },
        label,
        period: ALARM.period,
      });

    const alarm = (
      name: string,
      metric: cloudwatch.Metric | cloudwatch.MathExpression,
      threshold: number,
      description: string,
      options: Partial<cloudwatch.CreateAlarmOptions> = {},
    ) => {
      const created = metric.createAlarm(this, name, {
        alarmName: `${props.namePrefix}-${name}`,
        alarmDescription: description,
        threshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        ...options,
      });
      created.addAlarmAction(new actions.SnsAction(this.topic));
      created.addOkAction(new actions.SnsAction(this.topic));
      this.alarms[name] = created;
      return created;
    };

    alarm(
      'ApiServerErrorRate',
      percentOfRequests(serverErrors, '5xx % of requests'),
      ALARM.serverErrorPercent,
      `At least ${ALARM.serverErrorPercent}% of API answers in 5 minutes were 5xx (with ${ALARM.minRequests}+ requests): the Lambda fails, times out or cannot reach DynamoDB or Secrets Manager.`,
    );
    alarm(
      'ApiClientErrorRate',
      percentOfRequests(clientErrors, '4xx % of requests'),
      ALARM.clientErrorPercent,
      `At least ${ALARM.clientErrorPercent}% of API answers in 5 minutes were 4xx (with ${ALARM.minRequests}+ requests): API Gateway throttling (429, shared by all clients) or a broken client.`,
    );
    alarm(
      'ApiLatencyP99',
      latencyP99,
      ALARM.latencyP99Ms,
      `API p99 latency at or over ${ALARM.latencyP99Ms} ms in ${ALARM.latencyDatapoints} of the last ${ALARM.latencyPeriods} 5-minute periods.`,
      { evaluationPeriods: ALARM.latencyPeriods, datapointsToAlarm: ALARM.latencyDatapoints },
    );
    alarm(
      'LambdaErrors',
      lambdaMetric(M.lambda.errors, 'Sum'),
      1,
      'The token Lambda crashed or timed out (Lambda Errors, not HTTP error answers) at least once in 5 minutes.',
    );
    alarm(
      'LambdaThrottles',
      lambdaMetric(M.lambda.throttles, 'Sum'),
      1,
      'Lambda refused to run the token function at least once in 5 minutes: the account or function concurrency limit was reached.',
    );
    alarm(
      'DynamoDbSystemErrors',
      sumOverOperations(M.dynamodb.systemErrors, 'DynamoDB system errors'),
      1,
      `DynamoDB answered the token table's ${operations.join('/')} with a 500 (SystemErrors) at least once in 5 minutes.`,
    );
    alarm(
      'DynamoDbThrottles',
      sumOverOperations(M.dynamodb.throttledRequests, 'DynamoDB throttled requests'),
      1,
      `DynamoDB throttled the token table's ${operations.join('/')} at least once in 5 minutes (on-demand tables throttle above twice their previous peak).`,
    );
    alarm(
      'ReuseDetected',
      reuseDetected,
      1,
      `Someone presented an already-used token at least once in 5 minutes (${M.namespace}/${M.reuseDetected}, emitted by the backend).`,
    );

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      // Dashboards are global per account, so the region is part of the name.
      dashboardName: `${props.namePrefix}-${Aws.REGION}`,
      defaultInterval: Duration.hours(3),
    });
    const graph = (title: string, left: cloudwatch.IMetric[], width = 8) =>
      new cloudwatch.GraphWidget({ title, left, width, height: 6 });
    this.dashboard.addWidgets(
      graph('API requests and errors', [requests, clientErrors, serverErrors]),
      graph('API latency (ms)', [latencyP50, latencyP99]),
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: Object.values(this.alarms), width: 8, height: 6 }),
    );
    this.dashboard.addWidgets(
      graph('Lambda invocations, errors, throttles', [
        lambdaMetric(M.lambda.invocations, 'Sum'),
        lambdaMetric(M.lambda.errors, 'Sum'),
        lambdaMetric(M.lambda.throttles, 'Sum'),
      ]),
      graph('Lambda duration (ms)', [lambdaMetric(M.lambda.duration, 'p50'), lambdaMetric(M.lambda.duration, 'p99')]),
      graph('Lambda concurrent executions', [lambdaMetric(M.lambda.concurrentExecutions, 'Maximum')]),
    );
    this.dashboard.addWidgets(
      graph('DynamoDB system errors and throttles', [
        sumOverOperations(M.dynamodb.systemErrors, 'system errors'),
        sumOverOperations(M.dynamodb.throttledRequests, 'throttled requests'),
      ]),
      graph(
        'DynamoDB latency by operation (ms)',
        operations.map((op) => tableMetric(M.dynamodb.successfulRequestLatency, op, 'Average')),
      ),
      graph('Token reuse attempts', [reuseDetected]),
    );
    if (props.firewall) {
      const wafMetric = (metricName: string, rule: string) =>
        new cloudwatch.Metric({
          namespace: M.waf.namespace,
          metricName,
          dimensionsMap: { WebACL: props.firewall!.webAclName, Region: Aws.REGION, Rule: rule },
          statistic: 'Sum',
          period: ALARM.period,
        });
      this.dashboard.addWidgets(
        graph(
          // The web ACL's own metric name counts what its default action (allow) let through.
          `WAF: requests allowed, and blocked by ${RATE_RULE_NAME}`,
          [wafMetric(M.waf.allowedRequests, M.waf.webAclMetric), wafMetric(M.waf.blockedRequests, M.waf.perIpRateRuleMetric)],
          24,
        ),
      );
    }
  }
}
