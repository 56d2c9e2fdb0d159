import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { AUDIT_MESSAGE, BREAKDOWN, DIMENSION, METRIC, METRICS_NAMESPACE, type MetricName, SERVICE_NAME } from '../../lambdas/shared/observability';
import type { AlarmConfig } from '../config';

/** Metrics the stack derives from the API's JSON access logs (metric filters), in the same namespace. */
export const GATEWAY_METRIC = {
  /** Requests refused because the usage plan's quota is used up (`errorType = QUOTA_EXCEEDED`). */
  QuotaExceeded: 'GatewayQuotaExceeded',
  /** Requests API Gateway answered 5xx because the authorizer failed or is misconfigured. */
  AuthorizerFailures: 'GatewayAuthorizerFailures',
} as const;

/** The access-log field the metric filters read (see `ACCESS_LOG_FIELDS` in api.ts). */
export const ACCESS_LOG_ERROR_TYPE_FIELD = 'errorType';

const FIVE_MINUTES = Duration.minutes(5);

export interface MonitoringProps {
  readonly alarms: AlarmConfig;
  readonly restApi: apigateway.RestApi;
  readonly accessLogs: logs.ILogGroup;
  readonly table: dynamodb.Table;
  /** Every function by a short name used in alarm ids (`Authorizer`, `Token`, `Voice`, `Hangup`, `Status`). */
  readonly functions: Readonly<Record<string, lambda.Function>>;
}

/** One alarm as the runbook describes it: what it means and the first thing to do. */
export interface AlarmSpec {
  /** Construct id and alarm-name suffix, PascalCase. */
  readonly id: string;
  /** Runbook section heading; its GitHub anchor is `anchor`. */
  readonly title: string;
  readonly anchor: string;
  readonly meaning: string;
  readonly firstAction: string;
}

/** `Token issuance spike (ceiling)` → `token-issuance-spike-ceiling`, GitHub's heading anchor. */
export const anchorOf = (title: string) =>
  title
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .trim()
    .replace(/ /g, '-');

/** A metric the functions emit (EMF), with the `{service}` dimension set they always write. */
export function serviceMetric(name: MetricName, statistic = cloudwatch.Stats.SUM, period = FIVE_MINUTES): cloudwatch.Metric {
  return new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: name, dimensionsMap: { [DIMENSION.service]: SERVICE_NAME }, statistic, period });
}

/** Every series of a metric broken down by its extra dimension (dashboards only: alarms cannot SEARCH). */
function breakdown(name: MetricName, label: string): cloudwatch.MathExpression {
  const dim = BREAKDOWN[name]!;
  return new cloudwatch.MathExpression({
    expression: `SEARCH('{${METRICS_NAMESPACE},${DIMENSION.service},${dim}} MetricName="${name}"', 'Sum', 300)`,
    label,
    period: FIVE_MINUTES,
    usingMetrics: {},
  });
}

/**
 * What the security team and on-call read: an alarm topic (KMS-encrypted, TLS-only, optional email), one
 * alarm per abuse pattern and per failure mode, each with a description that says what it means, the first
 * thing to do and its runbook section, and a dashboard grouped the way on-call reads it: alarms, abuse,
 * health, dependencies, audit log.
 */
export class Monitoring extends Construct {
  public readonly topic: sns.Topic;
  public readonly dashboard: cloudwatch.Dashboard;
  /** Every alarm with the spec its description was written from. */
  public readonly alarms: { readonly spec: AlarmSpec; readonly alarm: cloudwatch.Alarm }[] = [];
  /** Console URL of the dashboard. */
  public readonly dashboardUrl: string;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { alarms: config } = props;

    // CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, so the topic gets its own key.
    const key = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'Twilio voice token alarms', masterKey: key, enforceSSL: true });
    // Only alarms of this account may publish (and so use the key): guards against a confused deputy.
    this.topic.grantPublish(new iam.ServicePrincipal('cloudwatch.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }));
    if (config.email) {
      const subscription = this.topic.addSubscription(new subscriptions.EmailSubscription(config.email));
      Validations.of(subscription).acknowledge({
        id: 'Serverless-SNSRedrivePolicy',
        reason: 'An email subscription: SNS retries email delivery itself, and a dead-letter queue of undelivered alarm mails would be read by nobody; the alarm state stays in CloudWatch and on the dashboard.',
      });
    }
    const action = new actions.SnsAction(this.topic);

    const add = (spec: Omit<AlarmSpec, 'anchor'>, props: Omit<cloudwatch.AlarmProps, 'alarmDescription' | 'alarmName'>, anomaly?: { stdDevs: number }) => {
      const full: AlarmSpec = { ...spec, anchor: anchorOf(spec.title) };
      const common = {
        alarmName: `${stack.stackName}-${spec.id}`,
        alarmDescription: `${spec.title}: ${spec.meaning} First: ${spec.firstAction} Runbook: ${config.runbookUrl}#${full.anchor}`,
        ...props,
      };
      const alarm = anomaly
        ? new cloudwatch.AnomalyDetectionAlarm(this, spec.id, {
            ...common,
            metric: props.metric,
            stdDevs: anomaly.stdDevs,
            comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_UPPER_THRESHOLD,
          })
        : new cloudwatch.Alarm(this, spec.id, common);
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
      this.alarms.push({ spec: full, alarm });
      return alarm;
    };
    const quiet = cloudwatch.TreatMissingData.NOT_BREACHING;
    const atLeast = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;

    // --- Abuse: unusual token generation, denials, limits -------------------------------------------------
    add(
      {
        id: 'TokenIssuanceAnomaly',
        title: 'Token issuance anomaly',
        meaning: 'Tokens minted per 5 minutes rose above the band learned from this service\'s own history (3 standard deviations).',
        firstAction: 'Look up which users and IPs minted the tokens (runbook query) and whether the rise is a launch or an abuse pattern.',
      },
      { metric: serviceMetric(METRIC.TokensIssued), threshold: 0, evaluationPeriods: 3, datapointsToAlarm: 2, treatMissingData: quiet },
      { stdDevs: 3 },
    );
    add(
      {
        id: 'TokenIssuanceCeiling',
        title: 'Token issuance ceiling',
        meaning: `At least ${config.tokensIssuedPer5Minutes} tokens were minted in 5 minutes, above the fixed ceiling that no normal day reaches.`,
        firstAction: 'Find the top users and IPs minting tokens; revoke the sessions of any abusing account and tighten the limits.',
      },
      { metric: serviceMetric(METRIC.TokensIssued), threshold: config.tokensIssuedPer5Minutes, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
    );
    add(
      {
        id: 'AuthDenialSpike',
        title: 'Auth denial spike',
        meaning: `The authorizer refused at least ${config.authDenialsPer5Minutes} requests in 5 minutes: forged, expired or replayed tokens, or a broken frontend.`,
        firstAction: 'Break the denials down by reason and source IP; a single IP with bad_signature or forbidden_header is an attack.',
      },
      { metric: serviceMetric(METRIC.AuthDenied), threshold: config.authDenialsPer5Minutes, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
    );
    add(
      {
        id: 'RateLimitSpike',
        title: 'Rate limit spike',
        meaning: `At least ${config.rateLimitedPer5Minutes} requests were refused by an application limit (429) in 5 minutes: someone is hammering the API.`,
        firstAction: 'Break the 429s down by limiter, user and source IP; block the IP or revoke the user if it is abuse.',
      },
      { metric: serviceMetric(METRIC.RateLimited), threshold: config.rateLimitedPer5Minutes, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
    );
    add(
      {
        id: 'CallbackSignatureFailures',
        title: 'Callback signature failures',
        meaning: `At least ${config.callbackSignatureFailuresPer5Minutes} requests to the status callback route in 5 minutes had no valid X-Twilio-Signature (refused with 403): forged callbacks, a rotated auth token, or a publicBaseUrl that is not the URL Twilio calls.`,
        firstAction: 'Check whether all callbacks fail (auth token or URL mismatch: fix the secret or publicBaseUrl) or a few IPs do (probing: block them).',
      },
      { metric: serviceMetric(METRIC.CallbackSignatureFailures), threshold: config.callbackSignatureFailuresPer5Minutes, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
    );

    // --- Health of the API and the functions ----------------------------------------------------------------
    const stage = props.restApi.deploymentStage;
    add(
      {
        id: 'Api5xxRate',
        title: 'API 5xx rate',
        meaning: 'More than 5% of API requests got a 5xx in 2 of the last 3 5-minute periods (with at least 10 requests): users cannot open sessions or call.',
        firstAction: 'Read the failed audit lines by reason: dynamodb_unavailable, secrets_unavailable and twilio_* each point to their own section.',
      },
      {
        metric: new cloudwatch.MathExpression({
          // A lone 5xx on a quiet night is not a 100% error rate worth waking someone for.
          expression: 'IF(requests >= 10, errors / requests, 0)',
          usingMetrics: { errors: stage.metricServerError({ statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES }), requests: stage.metricCount({ statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES }) },
          period: FIVE_MINUTES,
          label: '5xx share of requests',
        }),
        threshold: 0.05,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        treatMissingData: quiet,
      },
    );

    const gatewayMetric = (metricName: string, pattern: logs.IFilterPattern) =>
      new logs.MetricFilter(this, `${metricName}Filter`, { logGroup: props.accessLogs, filterPattern: pattern, metricNamespace: METRICS_NAMESPACE, metricName, metricValue: '1' }).metric({
        statistic: cloudwatch.Stats.SUM,
        period: FIVE_MINUTES,
      });
    const errorType = `$.${ACCESS_LOG_ERROR_TYPE_FIELD}`;
    const authorizerFailures = gatewayMetric(
      GATEWAY_METRIC.AuthorizerFailures,
      logs.FilterPattern.any(logs.FilterPattern.stringValue(errorType, '=', 'AUTHORIZER_FAILURE'), logs.FilterPattern.stringValue(errorType, '=', 'AUTHORIZER_CONFIGURATION_ERROR')),
    );
    add(
      {
        id: 'AuthorizerFailures',
        title: 'Authorizer failures',
        meaning: 'API Gateway answered at least 3 requests in 5 minutes with 503 because the authorizer failed (JWKS or Secrets Manager unreachable, crash, timeout or missing permission). Nobody can sign in.',
        firstAction: 'Read the authorizer\'s failed audit lines for the reason; check the Supabase JWKS URL and Secrets Manager from the Lambda\'s region.',
      },
      { metric: authorizerFailures, threshold: 3, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
    );

    for (const [name, fn] of Object.entries(props.functions)) {
      add(
        {
          id: `${name}Errors`,
          title: `${name} function errors`,
          meaning: `The ${name.toLowerCase()} function failed at least 3 invocations in 5 minutes outside the error contract (crash, timeout or failed cold start).`,
          firstAction: `Open the ${name.toLowerCase()} function's log group at the alarm time and read the ERROR lines and the Lambda REPORT lines for timeouts.`,
        },
        { metric: fn.metricErrors({ statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES }), threshold: 3, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
      );
      add(
        {
          id: `${name}Throttles`,
          title: `${name} function throttles`,
          meaning: `Lambda refused to run the ${name.toLowerCase()} function at least once in 5 minutes: the account's concurrency is used up.`,
          firstAction: 'Check the account\'s concurrent executions and which functions use them; raise the quota or reserve concurrency.',
        },
        { metric: fn.metricThrottles({ statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES }), threshold: 1, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
      );
    }

    // --- Dependencies: DynamoDB, Twilio, the usage plan ----------------------------------------------------
    const tableOps = [dynamodb.Operation.GET_ITEM, dynamodb.Operation.BATCH_GET_ITEM, dynamodb.Operation.PUT_ITEM, dynamodb.Operation.UPDATE_ITEM, dynamodb.Operation.DELETE_ITEM];
    add(
      {
        id: 'DynamoDbThrottles',
        title: 'DynamoDB throttles',
        meaning: 'The table throttled at least one read or write in 5 minutes; limits fail closed, so users got 503 and no token.',
        firstAction: 'Check for a hot partition (one IP or user counter hammered) in the rate-limit audit lines, and the table\'s capacity mode.',
      },
      {
        metric: new cloudwatch.MathExpression({
          expression: 'reads + writes',
          usingMetrics: {
            reads: props.table.metric('ReadThrottleEvents', { statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES }),
            writes: props.table.metric('WriteThrottleEvents', { statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES }),
          },
          period: FIVE_MINUTES,
          label: 'throttled reads and writes',
        }),
        threshold: 1,
        comparisonOperator: atLeast,
        evaluationPeriods: 1,
        treatMissingData: quiet,
      },
    );
    add(
      {
        id: 'DynamoDbSystemErrors',
        title: 'DynamoDB system errors',
        meaning: 'DynamoDB returned at least one internal error in 5 minutes for the table\'s operations; affected requests failed closed (503).',
        firstAction: 'Check the AWS Health Dashboard for DynamoDB in this region; the SDK retries once, so a lasting rate is an AWS-side event.',
      },
      {
        metric: props.table.metricSystemErrorsForOperations({ operations: tableOps, statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES }),
        threshold: 1,
        comparisonOperator: atLeast,
        evaluationPeriods: 1,
        treatMissingData: quiet,
      },
    );
    add(
      {
        id: 'TwilioUpstreamErrors',
        title: 'Twilio upstream errors',
        meaning: `Twilio failed at least ${config.upstreamErrorsPer5Minutes} requests in 5 minutes in a way users cannot fix (502): outage, revoked API key or suspended account.`,
        firstAction: 'Read the reasons (twilio_<op>_<code>): 20003 means the API key is revoked or wrong, rotate it; otherwise check status.twilio.com.',
      },
      { metric: serviceMetric(METRIC.UpstreamErrors), threshold: config.upstreamErrorsPer5Minutes, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
    );
    const quotaExceeded = gatewayMetric(GATEWAY_METRIC.QuotaExceeded, logs.FilterPattern.stringValue(errorType, '=', 'QUOTA_EXCEEDED'));
    add(
      {
        id: 'UsagePlanQuotaExhausted',
        title: 'Usage plan quota exhausted',
        meaning: 'API Gateway refused requests in the last 5 minutes because the usage plan\'s quota for the period is used up: every user gets 429 until it resets.',
        firstAction: 'Check whether the traffic is legitimate (requests by IP in the access log); raise the quota in config only if it is.',
      },
      { metric: quotaExceeded, threshold: 1, comparisonOperator: atLeast, evaluationPeriods: 1, treatMissingData: quiet },
    );

    this.dashboard = this.buildDashboard(props, authorizerFailures, quotaExceeded, config.runbookUrl);
    this.dashboardUrl = `https://${stack.region}.console.aws.amazon.com/cloudwatch/home?region=${stack.region}#dashboards:name=${this.dashboard.dashboardName}`;
  }

  private buildDashboard(props: MonitoringProps, authorizerFailures: cloudwatch.IMetric, quotaExceeded: cloudwatch.IMetric, runbookUrl: string): cloudwatch.Dashboard {
    const stage = props.restApi.deploymentStage;
    const fns = Object.entries(props.functions);
    const sum = { statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES };
    const graph = (title: string, left: cloudwatch.IMetric[], width = 8) => new cloudwatch.GraphWidget({ title, left, width, height: 6 });
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(6) });
    dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: `# Twilio voice token service\nAlarms first; then abuse (tokens, denials, limits), health (API, functions), dependencies (Twilio, DynamoDB) and the audit log. Every alarm links its section of the [runbook](${runbookUrl}).`,
        width: 24,
        height: 2,
      }),
    );
    dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms.map((a) => a.alarm), width: 24, height: 4 }));
    dashboard.addWidgets(
      graph('Tokens issued / sessions reused', [serviceMetric(METRIC.TokensIssued), serviceMetric(METRIC.SessionsReused)]),
      graph('Auth denials by reason', [breakdown(METRIC.AuthDenied, 'denied')]),
      graph('Rate limited by limiter', [breakdown(METRIC.RateLimited, 'limited')]),
    );
    dashboard.addWidgets(
      graph('API requests, 4xx, 5xx', [stage.metricCount(sum), stage.metricClientError(sum), stage.metricServerError(sum)]),
      graph('Latency p99 (API, integration)', [stage.metricLatency({ statistic: 'p99', period: FIVE_MINUTES }), stage.metricIntegrationLatency({ statistic: 'p99', period: FIVE_MINUTES })]),
      graph('Authorizer failures (gateway) and by reason', [authorizerFailures, breakdown(METRIC.AuthorizerFailures, 'failed')]),
    );
    dashboard.addWidgets(
      graph('Function errors', fns.map(([name, fn]) => fn.metricErrors({ ...sum, label: name }))),
      graph('Function throttles', fns.map(([name, fn]) => fn.metricThrottles({ ...sum, label: name }))),
      graph('Cold starts', fns.map(([name, fn]) => new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: METRIC.ColdStart, dimensionsMap: { [DIMENSION.service]: SERVICE_NAME, [DIMENSION.functionName]: fn.functionName }, ...sum, label: name }))),
    );
    dashboard.addWidgets(
      graph('Calls started / ended; status callbacks recorded, bad signatures', [
        serviceMetric(METRIC.CallsStarted),
        serviceMetric(METRIC.CallsEnded),
        serviceMetric(METRIC.CallStatusUpdates),
        serviceMetric(METRIC.CallbackSignatureFailures),
      ]),
      graph('Twilio errors by reason; server errors by reason', [breakdown(METRIC.UpstreamErrors, 'twilio'), breakdown(METRIC.ServerErrors, 'server')]),
      graph('DynamoDB throttles, system errors; usage-plan quota', [
        props.table.metric('ReadThrottleEvents', sum),
        props.table.metric('WriteThrottleEvents', sum),
        props.table.metricSystemErrorsForOperations({ ...sum, operations: [dynamodb.Operation.GET_ITEM, dynamodb.Operation.PUT_ITEM, dynamodb.Operation.UPDATE_ITEM] }),
        quotaExceeded,
      ]),
    );
    dashboard.addWidgets(
      new cloudwatch.LogQueryWidget({
        title: 'Audit: latest refusals and failures',
        logGroupNames: fns.map(([, fn]) => fn.logGroup.logGroupName),
        queryLines: [
          `filter message = "${AUDIT_MESSAGE}" and outcome in ["denied", "limited", "failed"]`,
          'fields @timestamp, operation, outcome, reason, status, userId, sourceIp, route, requestId',
          'sort @timestamp desc',
          'limit 50',
        ],
        width: 24,
        height: 8,
      }),
    );
    return dashboard;
  }
}
