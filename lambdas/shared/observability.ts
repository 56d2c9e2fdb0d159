/**
 * Names shared by the code that emits signals (lambdas/shared/audit.ts) and the code that watches them
 * (lib/constructs/monitoring.ts, docs/runbook.md queries). Both sides import these constants, so a rename
 * breaks a test rather than silently blinding an alarm in production. No imports: the CDK app loads this.
 */

/** CloudWatch namespace of the embedded-metric-format metrics. */
export const METRICS_NAMESPACE = 'TwilioVoiceToken';
/** Powertools service name: the `service` field of every log line and the `service` metric dimension. */
export const SERVICE_NAME = 'twilio-voice-token';

/** Metric names (unit Count). Each is emitted with the dimension set `{service}`; see BREAKDOWN for more. */
export const METRIC = {
  /** A new Twilio Access Token was minted and stored (a voice session opened). */
  TokensIssued: 'TokensIssued',
  /** `/token` found an unexpired stored session and reused it. */
  SessionsReused: 'SessionsReused',
  /** The authorizer refused a request (bad, expired, anonymous… token). */
  AuthDenied: 'AuthDenied',
  /** The authorizer could not decide (JWKS or Secrets Manager unreachable): API Gateway answered 503. */
  AuthorizerFailures: 'AuthorizerFailures',
  /** A request refused by an application limit (429). */
  RateLimited: 'RateLimited',
  /** A request the handlers refused for a client reason (400, 401, 403, 404, 409, 413, 415). */
  RequestsRejected: 'RequestsRejected',
  /** A call placed through Twilio. */
  CallsStarted: 'CallsStarted',
  /** A live call ended through `/hangup`. */
  CallsEnded: 'CallsEnded',
  /** A status callback from Twilio moved a call record to a new state. */
  CallStatusUpdates: 'CallStatusUpdates',
  /** A request to the status callback route without a valid `X-Twilio-Signature` (forged, or a wrong auth token). */
  CallbackSignatureFailures: 'CallbackSignatureFailures',
  /** Twilio failed in a way the user cannot fix (502). */
  UpstreamErrors: 'UpstreamErrors',
  /** DynamoDB or Secrets Manager unreachable, or an unexpected error (5xx other than 502). */
  ServerErrors: 'ServerErrors',
  /** Powertools' cold-start metric, with the dimensions `{service, function_name}`. */
  ColdStart: 'ColdStart',
} as const;
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** Metric dimension names. */
export const DIMENSION = {
  service: 'service',
  /** Denial, rejection or failure reason (a short snake_case code, never user data). */
  reason: 'reason',
  /** Which application limit refused the request (`ip_limit`, `user_token_quota`, `user_call_quota`…). */
  limiter: 'limiter',
  /** Powertools' dimension on ColdStart. */
  functionName: 'function_name',
} as const;

/** Metrics also emitted with one extra dimension (in addition to `{service}`), for the dashboard breakdowns. */
export const BREAKDOWN: Readonly<Partial<Record<MetricName, (typeof DIMENSION)[keyof typeof DIMENSION]>>> = {
  [METRIC.AuthDenied]: DIMENSION.reason,
  [METRIC.AuthorizerFailures]: DIMENSION.reason,
  [METRIC.RateLimited]: DIMENSION.limiter,
  [METRIC.RequestsRejected]: DIMENSION.reason,
  [METRIC.UpstreamErrors]: DIMENSION.reason,
  [METRIC.ServerErrors]: DIMENSION.reason,
};

/** The `message` of every audit line: filter on it in Logs Insights (`filter message = "audit"`). */
export const AUDIT_MESSAGE = 'audit';

/** What an audited request did. */
export const OUTCOME = {
  /** `/token`: a new token was minted and stored. `/voice`: a call was placed. */
  issued: 'issued',
  /** `/token`: the stored session was reused. `/voice`: an Idempotency-Key replay returned the same call. */
  reused: 'reused',
  /** `/hangup`: the call was ended (or had already ended). `DELETE /token`: the voice session was ended. */
  ended: 'ended',
  /** `GET /voice`: the caller read the state of one of their calls. */
  read: 'read',
  /** Status callback: the call record moved to the reported state. */
  recorded: 'recorded',
  /** Status callback: valid, but nothing to change (unknown call, duplicate or late event). */
  ignored: 'ignored',
  /** Authorizer: the session is valid. */
  allowed: 'allowed',
  /** Authorizer refusal, or a handler's 401/403 (expired session, foreign origin, blocked destination). */
  denied: 'denied',
  /** An application limit refused the request (429). */
  limited: 'limited',
  /** A client error other than denied/limited (400, 404, 409, 413, 415). */
  rejected: 'rejected',
  /** The service could not complete the request (5xx). */
  failed: 'failed',
} as const;
export type Outcome = (typeof OUTCOME)[keyof typeof OUTCOME];

/** Audit line fields that alarms, the dashboard and the runbook queries depend on. */
export const AUDIT_FIELDS = ['requestId', 'userId', 'sourceIp', 'route', 'operation', 'outcome', 'reason', 'status'] as const;

/** `operation` values: the route's function, or the authorizer. */
export type Operation = 'token' | 'voice' | 'hangup' | 'status' | 'authorizer';
