import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { AUDIT_FIELDS, AUDIT_MESSAGE, METRIC, METRICS_NAMESPACE, SERVICE_NAME } from '../../lambdas/shared/observability';
import { ACCESS_LOG_FIELDS } from '../../lib/constructs/api';
import { ACCESS_LOG_ERROR_TYPE_FIELD, GATEWAY_METRIC, anchorOf } from '../../lib/constructs/monitoring';
import { PROJECT_ROOT, logicalId, synthesize } from './support';

/**
 * The alarms, their topic and the dashboard. Every alarm is checked for the metric it watches, its
 * threshold, period and missing-data handling, its SNS action and a description that carries meaning, a
 * first action and a link to a runbook section that exists.
 */

const { stack, template } = synthesize();
const topicRef = { Ref: logicalId(stack, stack.monitoring.topic) };
const runbook = readFileSync(path.join(PROJECT_ROOT, 'docs', 'runbook.md'), 'utf8');
const runbookAnchors = new Set([...runbook.matchAll(/^#{2,3} (.+)$/gm)].map((m) => anchorOf(m[1]!)));

interface AlarmProps {
  AlarmName: unknown;
  AlarmDescription: string;
  AlarmActions: unknown[];
  OKActions: unknown[];
  MetricName?: string;
  Namespace?: string;
  Dimensions?: { Name: string; Value: unknown }[];
  Statistic?: string;
  Period?: number;
  Threshold?: number;
  ThresholdMetricId?: string;
  ComparisonOperator: string;
  EvaluationPeriods: number;
  DatapointsToAlarm?: number;
  TreatMissingData: string;
  Metrics?: { Id: string; Expression?: string; MetricStat?: { Metric: { MetricName: string; Namespace: string; Dimensions?: { Name: string; Value: unknown }[] }; Period: number; Stat: string } }[];
}

const alarmById = (id: string): AlarmProps => {
  const entry = stack.monitoring.alarms.find((a) => a.spec.id === id);
  if (!entry) throw new Error(`no alarm ${id}`);
  const resource = template.toJSON()['Resources'][logicalId(stack, entry.alarm)] as { Properties: AlarmProps };
  return resource.Properties;
};
const serviceDims = [{ Name: 'service', Value: SERVICE_NAME }];

describe('the alarm topic', () => {
  it('is encrypted with a customer-managed key that rotates, and refuses requests without TLS', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Effect: 'Allow', Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish', Condition: { StringEquals: { 'aws:SourceAccount': Match.anyValue() } } }),
        ]),
      },
    });
  });

  it('lets CloudWatch use the topic key, so alarms can publish to the encrypted topic', () => {
    const key = template.toJSON()['Resources'][logicalId(stack, stack.monitoring.topic.masterKey!)] as { Properties: { EnableKeyRotation: boolean; KeyPolicy: { Statement: { Principal?: { Service?: string }; Action: string[] }[] } } };
    expect(key.Properties.EnableKeyRotation).toBe(true);
    const forCloudWatch = key.Properties.KeyPolicy.Statement.find((s) => s.Principal?.Service === 'cloudwatch.amazonaws.com');
    expect(forCloudWatch?.Action).toEqual(expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey*']));
  });

  it('has no subscription unless an email is configured, then exactly that one', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 0);
    const withEmail = synthesize({ config: { alarms: { email: 'oncall@example.com' } } }).template;
    withEmail.resourceCountIs('AWS::SNS::Subscription', 1);
    withEmail.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
  });
});

describe('every alarm', () => {
  const all = stack.monitoring.alarms;

  it('exists at least nine times, once per construct in the template', () => {
    expect(all.length).toBeGreaterThanOrEqual(9);
    template.resourceCountIs('AWS::CloudWatch::Alarm', all.length);
  });

  it.each(all.map((a) => [a.spec.id, a.spec] as const))('%s notifies the topic on alarm and on recovery', (id) => {
    const p = alarmById(id);
    expect(p.AlarmActions).toEqual([topicRef]);
    expect(p.OKActions).toEqual([topicRef]);
  });

  it.each(all.map((a) => [a.spec.id, a.spec] as const))('%s says what it means, what to do first and links its runbook section', (id, spec) => {
    const { AlarmDescription: d } = alarmById(id);
    expect(d).toContain(spec.meaning);
    expect(d).toContain(`First: ${spec.firstAction}`);
    expect(d).toContain(`Runbook: docs/runbook.md#${spec.anchor}`);
    expect(d.length).toBeLessThanOrEqual(1024);
    expect(runbookAnchors).toContain(spec.anchor);
  });

  it.each(all.map((a) => [a.spec.id] as const))('%s treats missing data as not breaching (no traffic is not an incident)', (id) => {
    expect(alarmById(id).TreatMissingData).toBe('notBreaching');
  });

  it('links the runbook where config says the team reads it', () => {
    const custom = synthesize({ config: { alarms: { runbookUrl: 'https://git.example.com/voice/blob/main/docs/runbook.md' } } });
    const first = custom.stack.monitoring.alarms[0]!;
    const resource = custom.template.toJSON()['Resources'][logicalId(custom.stack, first.alarm)] as { Properties: AlarmProps };
    expect(resource.Properties.AlarmDescription).toContain(`Runbook: https://git.example.com/voice/blob/main/docs/runbook.md#${first.spec.anchor}`);
  });
});

describe('abuse alarms watch the metrics the functions emit', () => {
  const emitted = (p: AlarmProps, metric: string) => {
    expect(p.Namespace).toBe(METRICS_NAMESPACE);
    expect(p.MetricName).toBe(metric);
    expect(p.Dimensions).toEqual(serviceDims);
    expect(p.Statistic).toBe('Sum');
    expect(p.Period).toBe(300);
  };

  it('alarms on token issuance outside the anomaly detection band', () => {
    const p = alarmById('TokenIssuanceAnomaly');
    expect(p.ComparisonOperator).toBe('GreaterThanUpperThreshold');
    expect(p.EvaluationPeriods).toBe(3);
    expect(p.DatapointsToAlarm).toBe(2);
    const band = p.Metrics!.find((m) => m.Expression?.startsWith('ANOMALY_DETECTION_BAND'));
    expect(band?.Expression).toMatch(/, 3\)$/);
    expect(p.ThresholdMetricId).toBe(band?.Id);
    const stat = p.Metrics!.find((m) => m.MetricStat)!.MetricStat!;
    expect(stat).toEqual({ Metric: { MetricName: METRIC.TokensIssued, Namespace: METRICS_NAMESPACE, Dimensions: serviceDims }, Period: 300, Stat: 'Sum' });
  });

  it.each([
    ['TokenIssuanceCeiling', METRIC.TokensIssued, 100],
    ['AuthDenialSpike', METRIC.AuthDenied, 50],
    ['RateLimitSpike', METRIC.RateLimited, 25],
    ['TwilioUpstreamErrors', METRIC.UpstreamErrors, 5],
  ] as const)('%s alarms when %s reaches %d in 5 minutes', (id, metric, threshold) => {
    const p = alarmById(id);
    emitted(p, metric);
    expect(p.Threshold).toBe(threshold);
    expect(p.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
    expect(p.EvaluationPeriods).toBe(1);
  });

  it('takes the static thresholds from config', () => {
    const custom = synthesize({ config: { alarms: { tokensIssuedPer5Minutes: 7, authDenialsPer5Minutes: 8, rateLimitedPer5Minutes: 9, upstreamErrorsPer5Minutes: 10 } } });
    const threshold = (id: string) => {
      const a = custom.stack.monitoring.alarms.find((x) => x.spec.id === id)!;
      return (custom.template.toJSON()['Resources'][logicalId(custom.stack, a.alarm)] as { Properties: AlarmProps }).Properties.Threshold;
    };
    expect([threshold('TokenIssuanceCeiling'), threshold('AuthDenialSpike'), threshold('RateLimitSpike'), threshold('TwilioUpstreamErrors')]).toEqual([7, 8, 9, 10]);
  });
});

describe('health alarms', () => {
  it('alarms on a 5xx share above 5% of at least 10 requests, in 2 of 3 periods of 5 minutes', () => {
    const p = alarmById('Api5xxRate');
    expect(p.Threshold).toBe(0.05);
    expect(p.ComparisonOperator).toBe('GreaterThanThreshold');
    expect([p.EvaluationPeriods, p.DatapointsToAlarm]).toEqual([3, 2]);
    expect(p.Metrics!.find((m) => m.Expression)?.Expression).toBe('IF(requests >= 10, errors / requests, 0)');
    const names = p.Metrics!.filter((m) => m.MetricStat).map((m) => [m.Id, m.MetricStat!.Metric.Namespace, m.MetricStat!.Metric.MetricName, m.MetricStat!.Stat]);
    expect(names.sort()).toEqual([
      ['errors', 'AWS/ApiGateway', '5XXError', 'Sum'],
      ['requests', 'AWS/ApiGateway', 'Count', 'Sum'],
    ]);
    const dims = p.Metrics!.find((m) => m.Id === 'errors')!.MetricStat!.Metric.Dimensions!.map((d) => d.Name).sort();
    expect(dims).toEqual(['ApiName', 'Stage']);
  });

  it.each(['Authorizer', 'Token', 'Voice', 'Hangup'])('alarms on the %s function’s errors (3 in 5 minutes) and throttles (any)', (name) => {
    const fn = name === 'Authorizer' ? stack.functions.authorizer : stack.functions.handlers[name.toLowerCase() as 'token' | 'voice' | 'hangup'];
    const errors = alarmById(`${name}Errors`);
    const throttles = alarmById(`${name}Throttles`);
    for (const [p, metric, threshold] of [[errors, 'Errors', 3], [throttles, 'Throttles', 1]] as const) {
      expect([p.Namespace, p.MetricName, p.Statistic, p.Period, p.Threshold, p.ComparisonOperator]).toEqual(['AWS/Lambda', metric, 'Sum', 300, threshold, 'GreaterThanOrEqualToThreshold']);
      expect(p.Dimensions).toEqual([{ Name: 'FunctionName', Value: { Ref: logicalId(stack, fn) } }]);
    }
  });

  it('alarms on authorizer failures seen by API Gateway, counted from the access log', () => {
    const p = alarmById('AuthorizerFailures');
    expect([p.Namespace, p.MetricName, p.Statistic, p.Threshold]).toEqual([METRICS_NAMESPACE, GATEWAY_METRIC.AuthorizerFailures, 'Sum', 3]);
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: logicalId(stack, stack.api.accessLogs) },
      FilterPattern: '{ ($.errorType = "AUTHORIZER_FAILURE") || ($.errorType = "AUTHORIZER_CONFIGURATION_ERROR") }',
      MetricTransformations: [{ MetricNamespace: METRICS_NAMESPACE, MetricName: GATEWAY_METRIC.AuthorizerFailures, MetricValue: '1' }],
    });
  });
});

describe('dependency alarms', () => {
  it('alarms on any throttled read or write of the table', () => {
    const p = alarmById('DynamoDbThrottles');
    expect(p.Threshold).toBe(1);
    const names = p.Metrics!.filter((m) => m.MetricStat).map((m) => m.MetricStat!.Metric.MetricName).sort();
    expect(names).toEqual(['ReadThrottleEvents', 'WriteThrottleEvents']);
    for (const m of p.Metrics!.filter((x) => x.MetricStat)) expect(m.MetricStat!.Metric.Dimensions).toEqual([{ Name: 'TableName', Value: { Ref: logicalId(stack, stack.table.table) } }]);
  });

  it('alarms on DynamoDB system errors for every operation the functions use', () => {
    const p = alarmById('DynamoDbSystemErrors');
    expect(p.Threshold).toBe(1);
    const ops = p.Metrics!.filter((m) => m.MetricStat).map((m) => m.MetricStat!.Metric.Dimensions!.find((d) => d.Name === 'Operation')!.Value).sort();
    expect(ops).toEqual(['BatchGetItem', 'DeleteItem', 'GetItem', 'PutItem', 'UpdateItem']);
  });

  it('alarms when the usage plan quota is exhausted, counted from the access log', () => {
    const p = alarmById('UsagePlanQuotaExhausted');
    expect([p.Namespace, p.MetricName, p.Threshold]).toEqual([METRICS_NAMESPACE, GATEWAY_METRIC.QuotaExceeded, 1]);
    template.hasResourceProperties('AWS::Logs::MetricFilter', { FilterPattern: '{ $.errorType = "QUOTA_EXCEEDED" }' });
  });

  it('reads a field the access log really has', () => {
    expect(Object.keys(ACCESS_LOG_FIELDS)).toContain(ACCESS_LOG_ERROR_TYPE_FIELD);
  });
});

describe('the dashboard and the runbook', () => {
  const body = () => JSON.stringify(template.findResources('AWS::CloudWatch::Dashboard'));

  it('shows every alarm, the emitted metrics and the audit log query', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const text = body();
    for (const name of [METRIC.TokensIssued, METRIC.SessionsReused, METRIC.AuthDenied, METRIC.RateLimited, METRIC.CallsStarted, METRIC.CallsEnded, METRIC.UpstreamErrors, METRIC.ColdStart]) {
      expect(text).toContain(name);
    }
    expect(text.replace(/\\/g, '')).toContain(`filter message = "${AUDIT_MESSAGE}"`);
    expect(text).toContain('"type\\":\\"alarm\\"');
  });

  it('gives a runbook section per alarm, with Logs Insights queries that use the audit fields', () => {
    for (const a of stack.monitoring.alarms) expect(runbookAnchors).toContain(a.spec.anchor);
    expect(runbook).toContain(`filter message = "${AUDIT_MESSAGE}"`);
    const queried = new Set([...runbook.matchAll(/\b(requestId|userId|sourceIp|route|operation|outcome|reason|status)\b/g)].map((m) => m[1]));
    for (const field of AUDIT_FIELDS) expect(queried).toContain(field);
  });

  it('outputs the alarm topic ARN and the dashboard URL', () => {
    const outputs = template.toJSON()['Outputs'] as Record<string, { Value: unknown }>;
    expect(outputs['AlarmTopicArn']?.Value).toEqual(topicRef);
    expect(JSON.stringify(outputs['DashboardUrl']?.Value)).toContain('#dashboards:name=');
    expect(JSON.stringify(outputs['DashboardUrl']?.Value)).toContain(logicalId(stack, stack.monitoring.dashboard));
  });
});
