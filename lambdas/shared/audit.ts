import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type middy from '@middy/core';
import { logger } from './logger';
import { AUDIT_MESSAGE, BREAKDOWN, METRIC, METRICS_NAMESPACE, type MetricName, OUTCOME, type Operation, type Outcome, SERVICE_NAME } from './observability';

/**
 * The audit trail and the metrics: one JSON line per audited request (token, voice and hangup operations,
 * authorizer decisions) and the embedded-metric-format counts derived from it. Nothing here calls
 * CloudWatch: EMF lines go to stdout and CloudWatch Logs extracts the metrics (no PutMetricData).
 *
 * Namespace and service are fixed by the shared constants (not the environment), so the metric identity
 * the alarms watch is the one the code emits.
 */
export const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME });

/**
 * Audit lines are always written at INFO: `POWERTOOLS_LOG_LEVEL` (the `logLevel` config) tunes the
 * diagnostic logger, and must not be able to switch the audit trail off.
 */
const auditLogger = logger.createChild({ logLevel: 'INFO' });

export interface AuditEntry {
  readonly operation: Operation;
  readonly outcome: Outcome;
  /** Short snake_case reason code (an error's `reason`, or what the success was). Never user data. */
  readonly reason: string;
  /** `METHOD /resource`, e.g. `POST /api/twilio/token`. */
  readonly route: string;
  /** API Gateway's request id (the access log's `requestId`). */
  readonly requestId: string | undefined;
  /** The Lambda invocation id (the function log's `function_request_id`). */
  readonly lambdaRequestId?: string | undefined;
  /** Supabase user id, when the authorizer established it. */
  readonly userId?: string | undefined;
  /** API Gateway's `requestContext.identity.sourceIp`. */
  readonly sourceIp?: string | undefined;
  /** HTTP status sent (handlers), or the status API Gateway sends for the decision (authorizer). */
  readonly status?: number | undefined;
  /** Extra non-secret fields: a call SID, a masked number, an expiry. Never tokens, secrets or full numbers. */
  readonly detail?: Readonly<Record<string, string | number | undefined>>;
}

/** Reason codes become dimension values: keep them short and plain so no request data can leak into one. */
const dimensionValue = (reason: string) => reason.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'unknown';

/** The metrics an audited outcome counts toward (each with unit Count, value 1). */
export function metricsFor(entry: Pick<AuditEntry, 'operation' | 'outcome' | 'reason' | 'status'>): MetricName[] {
  const { operation, outcome } = entry;
  switch (outcome) {
    case OUTCOME.issued:
      return operation === 'token' ? [METRIC.TokensIssued] : operation === 'voice' ? [METRIC.CallsStarted] : [];
    case OUTCOME.reused:
      return operation === 'token' ? [METRIC.SessionsReused] : [];
    case OUTCOME.ended:
      return entry.reason === 'ended' ? [METRIC.CallsEnded] : [];
    case OUTCOME.recorded:
      return [METRIC.CallStatusUpdates];
    case OUTCOME.allowed:
    case OUTCOME.ignored:
    case OUTCOME.read:
      return [];
    case OUTCOME.denied:
      if (operation === 'authorizer') return [METRIC.AuthDenied];
      return operation === 'status' && entry.reason === 'bad_signature' ? [METRIC.CallbackSignatureFailures] : [METRIC.RequestsRejected];
    case OUTCOME.limited:
      return [METRIC.RateLimited];
    case OUTCOME.rejected:
      return [METRIC.RequestsRejected];
    case OUTCOME.failed:
      if (operation === 'authorizer') return [METRIC.AuthorizerFailures];
      return entry.status === 502 ? [METRIC.UpstreamErrors] : [METRIC.ServerErrors];
  }
}

/**
 * Writes the audit line for one request and counts its metrics. The one place audit lines come from:
 * the http middleware calls it for every handled request, the authorizer for every decision.
 */
export function audit(entry: AuditEntry): void {
  const { detail, ...fields } = entry;
  const quiet: readonly Outcome[] = [OUTCOME.allowed, OUTCOME.issued, OUTCOME.reused, OUTCOME.ended, OUTCOME.recorded, OUTCOME.ignored, OUTCOME.read];
  const level = entry.outcome === OUTCOME.failed ? 'error' : quiet.includes(entry.outcome) ? 'info' : 'warn';
  auditLogger[level](AUDIT_MESSAGE, { ...detail, ...fields });
  for (const name of metricsFor(entry)) {
    metrics.addMetric(name, MetricUnit.Count, 1);
    const dimension = BREAKDOWN[name];
    // A second data point with the reason (or limiter) as a dimension, for the dashboard breakdowns; the
    // alarms watch the `{service}`-only series above, which needs no metric math over unknown reasons.
    if (dimension) metrics.singleMetric().addDimension(dimension, dimensionValue(entry.reason)).addMetric(name, MetricUnit.Count, 1);
  }
}

/**
 * Outermost middleware of every function: counts the cold start, re-rolls debug-log sampling for this
 * invocation, and flushes the stored metrics after everything else (errors included) has run.
 * Not Powertools' `logMetrics`: that one warns on every invocation without metrics (an allowed
 * authorizer decision, a preflight), which would be noise in the logs.
 */
export function observe<E, R>(): middy.MiddlewareObj<E, R> {
  const flush = () => {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  };
  return {
    before: (request) => {
      metrics.captureColdStartMetric(request.context.functionName);
      logger.refreshSampleRateCalculation();
    },
    after: flush,
    onError: flush,
  };
}
