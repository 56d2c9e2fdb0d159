import type { APIGatewayProxyEvent, APIGatewayProxyResult, APIGatewayRequestAuthorizerEvent, Context } from 'aws-lambda';
import { z } from 'zod';
import { audit, metrics, metricsFor } from '../../lambdas/shared/audit';
import { RateLimitedError, UnavailableError, UpstreamError } from '../../lambdas/shared/errors';
import { type ApiResponse, apiHandler } from '../../lambdas/shared/http';
import { maskPhone } from '../../lambdas/shared/logger';
import { registerCanary } from '../support/log-capture';
import { findLeaks } from '../support/log-scan';
import { AUDIT_FIELDS, AUDIT_MESSAGE, DIMENSION, METRIC, METRICS_NAMESPACE, SERVICE_NAME } from '../../lambdas/shared/observability';

/**
 * The signals the alarms, the dashboard and the runbook queries depend on: every handled request and every
 * authorizer decision writes one audit line with the documented fields, and the metrics in embedded metric
 * format (namespace, name, dimensions) that lib/constructs/monitoring.ts watches. Output is captured from
 * stdout, where Powertools writes it on Lambda, and scanned for the canaries it must never contain.
 */

const ALLOWED = 'http://localhost:5173';
const USER_ID = '6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f';
const NUMBER = '+14155550123';
const CANARY_TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJjYW5hcnkiOiJ0b2tlbi0xIn0.Y2FuYXJ5LXNpZ25hdHVyZQ';
const CANARY_SECRET = 'canary-secret-7f3a9c';
registerCanary(CANARY_TOKEN, CANARY_SECRET);

interface Emf {
  _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
  [key: string]: unknown;
}

let written: string[] = [];
beforeEach(() => {
  written = [];
  // Powertools writes INFO and metrics to stdout, WARN and ERROR to stderr: both are the function's log.
  for (const stream of [process.stdout, process.stderr]) {
    jest.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
  }
});
afterEach(() => jest.restoreAllMocks());

const lines = (): Record<string, unknown>[] =>
  written
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const auditLines = () => lines().filter((l) => l['message'] === AUDIT_MESSAGE);
const emfLines = () => lines().filter((l): l is Emf => typeof l['_aws'] === 'object');

/** Data points as `name{dim=value,…}`, one per metric per dimension set. */
function datapoints(): string[] {
  return emfLines().flatMap((e) =>
    e._aws.CloudWatchMetrics.flatMap((d) => {
      expect(d.Namespace).toBe(METRICS_NAMESPACE);
      return d.Metrics.flatMap((m) => d.Dimensions.map((dims) => `${m.Name}{${dims.map((k) => `${k}=${String(e[k])}`).join(',')}}`));
    }),
  );
}

function event(resource: string, body: string, headers: Record<string, string> = {}): APIGatewayProxyEvent {
  const all = { 'Content-Type': 'application/json', Origin: ALLOWED, Authorization: `Bearer ${CANARY_TOKEN}`, 'X-Api-Key': CANARY_SECRET, ...headers };
  return {
    httpMethod: 'POST',
    resource,
    path: resource,
    headers: all,
    multiValueHeaders: Object.fromEntries(Object.entries(all).map(([k, v]) => [k, [v]])),
    body,
    isBase64Encoded: false,
    pathParameters: null,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    stageVariables: null,
    requestContext: {
      requestId: 'apigw-req-1',
      identity: { sourceIp: '203.0.113.7' },
      authorizer: { userId: USER_ID, sessionId: 'sess-1', exp: Math.floor(Date.now() / 1000) + 600, principalId: USER_ID },
    } as unknown as APIGatewayProxyEvent['requestContext'],
  };
}

const context = (functionName = 'token') => ({ awsRequestId: 'lambda-req-1', functionName }) as Context;

function handlerReturning(logic: () => Promise<ApiResponse>) {
  return apiHandler({ allowedOrigins: [ALLOWED], schema: z.object({ to: z.string().optional(), callSid: z.string().optional() }).strict() }, logic);
}

async function run(resource: string, logic: () => Promise<ApiResponse>, body = '{}'): Promise<APIGatewayProxyResult> {
  return handlerReturning(logic)(event(resource, body), context());
}

describe('audit lines from the route handlers', () => {
  test('a new voice session writes one audit line with every field the runbook queries use', async () => {
    await run('/api/twilio/token', () => Promise.resolve({ status: 200, body: {}, audit: { outcome: 'issued', reason: 'new_session' } }));

    const [line, ...rest] = auditLines();
    expect(rest).toEqual([]);
    for (const field of AUDIT_FIELDS) expect(line).toHaveProperty(field);
    expect(line).toMatchObject({
      level: 'INFO',
      service: expect.any(String),
      timestamp: expect.any(String),
      requestId: 'apigw-req-1',
      lambdaRequestId: 'lambda-req-1',
      userId: USER_ID,
      sourceIp: '203.0.113.7',
      route: 'POST /api/twilio/token',
      operation: 'token',
      outcome: 'issued',
      reason: 'new_session',
      status: 200,
    });
  });

  test('a rate-limited request is audited as limited with the limiter as its reason', async () => {
    await run('/api/twilio/token', () => Promise.reject(new RateLimitedError(30, 'ip_limit')));

    expect(auditLines()).toEqual([expect.objectContaining({ level: 'WARN', outcome: 'limited', reason: 'ip_limit', status: 429, code: 'rate_limited' })]);
  });

  test('a Twilio failure is audited as failed with status 502 and its cause', async () => {
    await run('/api/twilio/voice', () => Promise.reject(new UpstreamError({ reason: 'twilio_create_call_20003', cause: new Error('Authenticate') })), JSON.stringify({ to: NUMBER }));

    expect(auditLines()).toEqual([
      expect.objectContaining({ level: 'ERROR', operation: 'voice', outcome: 'failed', reason: 'twilio_create_call_20003', status: 502, cause: 'Error: Authenticate' }),
    ]);
  });

  test('an unexpected error is audited as failed with status 500', async () => {
    await run('/api/twilio/hangup', () => Promise.reject(new Error('boom')));

    expect(auditLines()).toEqual([expect.objectContaining({ operation: 'hangup', outcome: 'failed', reason: 'unexpected', status: 500 })]);
  });

  test('a foreign origin is audited as denied', async () => {
    await handlerReturning(() => Promise.resolve({ status: 200 }))(event('/api/twilio/token', '{}', { Origin: 'https://evil.example' }), context());

    expect(auditLines()).toEqual([expect.objectContaining({ outcome: 'denied', reason: 'origin_not_allowed', status: 403 })]);
  });
});

describe('metrics in embedded metric format', () => {
  const base = `{${DIMENSION.service}=${SERVICE_NAME}}`;

  test.each([
    ['/api/twilio/token', { outcome: 'issued', reason: 'new_session' }, METRIC.TokensIssued],
    ['/api/twilio/token', { outcome: 'reused', reason: 'session_valid' }, METRIC.SessionsReused],
    ['/api/twilio/voice', { outcome: 'issued', reason: 'call_placed' }, METRIC.CallsStarted],
    ['/api/twilio/hangup', { outcome: 'ended', reason: 'ended' }, METRIC.CallsEnded],
  ] as const)('%s with outcome %j counts %s under {service}', async (resource, auditInfo, metric) => {
    await run(resource, () => Promise.resolve({ status: 200, body: {}, audit: auditInfo }));

    expect(datapoints()).toContain(`${metric}${base}`);
  });

  test('a hangup of an already-ended call counts no ended call', async () => {
    await run('/api/twilio/hangup', () => Promise.resolve({ status: 200, body: {}, audit: { outcome: 'ended', reason: 'already_ended' } }));

    expect(datapoints().filter((d) => d.startsWith(METRIC.CallsEnded))).toEqual([]);
  });

  test('a rate-limited request counts RateLimited in total and by limiter', async () => {
    await run('/api/twilio/token', () => Promise.reject(new RateLimitedError(30, 'user_token_quota')));

    expect(datapoints()).toEqual(expect.arrayContaining([`${METRIC.RateLimited}${base}`, `${METRIC.RateLimited}{service=${SERVICE_NAME},limiter=user_token_quota}`]));
  });

  test('a Twilio failure counts UpstreamErrors; a DynamoDB outage counts ServerErrors', async () => {
    await run('/api/twilio/voice', () => Promise.reject(new UpstreamError({ reason: 'twilio_create_call_network' })));
    await run('/api/twilio/voice', () => Promise.reject(new UnavailableError({ reason: 'dynamodb_unavailable' })));

    expect(datapoints()).toEqual(expect.arrayContaining([`${METRIC.UpstreamErrors}${base}`, `${METRIC.ServerErrors}${base}`, `${METRIC.ServerErrors}{service=${SERVICE_NAME},reason=dynamodb_unavailable}`]));
  });

  test('authorizer denials count AuthDenied in total and by reason; failures count AuthorizerFailures', () => {
    audit({ operation: 'authorizer', outcome: 'denied', reason: 'expired', route: 'POST /api/twilio/token', requestId: 'r', status: 401 });
    audit({ operation: 'authorizer', outcome: 'failed', reason: 'jwks_unavailable', route: 'POST /api/twilio/token', requestId: 'r', status: 503 });
    metrics.publishStoredMetrics(); // what the observe() middleware does after each invocation

    expect(datapoints()).toEqual(
      expect.arrayContaining([`${METRIC.AuthDenied}${base}`, `${METRIC.AuthDenied}{service=${SERVICE_NAME},reason=expired}`, `${METRIC.AuthorizerFailures}${base}`]),
    );
  });

  test('an allowed decision counts nothing', () => {
    expect(metricsFor({ operation: 'authorizer', outcome: 'allowed', reason: 'valid_session' })).toEqual([]);
  });

  test('a reason that is not a plain code cannot smuggle data into a dimension value', () => {
    audit({ operation: 'authorizer', outcome: 'denied', reason: `claim_${'x'.repeat(100)} ${NUMBER}`, route: 'r', requestId: 'r' });

    const reasons = emfLines().map((e) => e['reason']).filter(Boolean) as string[];
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
  });
});

describe('what never reaches the logs', () => {
  test('no token, secret header or full phone number appears in any line, success or failure', async () => {
    const body = JSON.stringify({ to: NUMBER });
    await run('/api/twilio/voice', () => Promise.resolve({ status: 201, body: {}, audit: { outcome: 'issued', reason: 'call_placed', detail: { to: maskPhone(NUMBER) } } }), body);
    await run('/api/twilio/voice', () => Promise.reject(new UpstreamError({ reason: 'twilio_create_call_21215' })), body);
    await run('/api/twilio/voice', () => Promise.reject(new Error('unexpected')), body);

    const out = written.join('');
    expect(auditLines()).toHaveLength(3);
    expect(auditLines()[0]).toMatchObject({ to: '+1********23' });
    for (const canary of [CANARY_TOKEN, CANARY_SECRET, NUMBER, 'Bearer', 'eyJ']) expect(out).not.toContain(canary);
  });

  test('the authorizer audits a denial without logging the Authorization header', async () => {
    process.env['SUPABASE_URL'] = 'https://example.supabase.co';
    process.env['ALLOWED_ORIGINS'] = ALLOWED;
    const { handler } = await import('../../lambdas/authorizer/handler');
    const authorizerEvent = {
      type: 'REQUEST',
      methodArn: 'arn:aws:execute-api:us-east-1:123456789012:abc/prod/POST/api/twilio/token',
      resource: '/api/twilio/token',
      path: '/api/twilio/token',
      httpMethod: 'POST',
      headers: { Authorization: `Bearer ${CANARY_TOKEN}` },
      multiValueHeaders: { Authorization: [`Bearer ${CANARY_TOKEN}`] },
      requestContext: { requestId: 'apigw-req-2', identity: { sourceIp: '198.51.100.9' } },
    } as unknown as APIGatewayRequestAuthorizerEvent;

    const result = await handler(authorizerEvent, context('authorizer'));

    expect(result.policyDocument.Statement[0]).toMatchObject({ Effect: 'Deny' });
    expect(auditLines()).toEqual([
      expect.objectContaining({ operation: 'authorizer', outcome: 'denied', reason: 'missing_kid', requestId: 'apigw-req-2', sourceIp: '198.51.100.9', status: 401 }),
    ]);
    expect(datapoints()).toContain(`${METRIC.AuthDenied}{service=${SERVICE_NAME}}`);
    expect(written.join('')).not.toContain(CANARY_TOKEN.split('.')[1]);
  });
});

describe('cold starts', () => {
  test('the first invocation of a function counts ColdStart with its function name', async () => {
    // Every handler module shares one Metrics instance per process, as one function does on Lambda.
    // Powertools counts a cold start only where Lambda says the environment was initialised on demand.
    process.env['AWS_LAMBDA_INITIALIZATION_TYPE'] = 'on-demand';
    jest.resetModules();
    const fresh = await import('../../lambdas/shared/http');
    const h = fresh.apiHandler({ allowedOrigins: [ALLOWED], schema: z.object({}).strict() }, () => Promise.resolve({ status: 200 }));
    await h(event('/api/twilio/token', '{}'), context('voice-token-Token'));
    await h(event('/api/twilio/token', '{}'), context('voice-token-Token'));

    expect(datapoints().filter((d) => d.startsWith(METRIC.ColdStart))).toEqual([`${METRIC.ColdStart}{service=${SERVICE_NAME},function_name=voice-token-Token}`]);
  });
});

describe('the whole-run log scan (test/support/log-scan.ts), proved able to fail', () => {
  const line = (fields: Record<string, unknown>) => JSON.stringify({ level: 'INFO', message: 'audit', ...fields });

  test('passes clean audit lines with masked numbers', () => {
    expect(findLeaks([line({ to: '+1********23', userId: USER_ID })], [CANARY_SECRET])).toEqual([]);
  });

  test.each([
    ['a JWT', line({ token: CANARY_TOKEN })],
    ['a bearer credential', line({ header: 'Bearer abcdefghijklmnop' })],
    ['a private key', line({ key: '-----BEGIN PRIVATE KEY-----' })],
    ['a full phone number', line({ to: NUMBER })],
    ['a registered canary', JSON.stringify({ requestId: 'x', resourcePath: `/${CANARY_SECRET}` })],
  ])('fails on %s', (name, text) => {
    expect(findLeaks([text], [CANARY_SECRET])).toEqual([expect.stringContaining(name)]);
  });
});

describe('phone numbers in logs', () => {
  test.each([
    ['+14155550123', '+1********23'],
    ['+447911123456', '+44********56'],
    ['+79161234567', '+7********67'],
    ['+35312345678', '+353******78'],
    ['+8613812345678', '+86*********78'],
    ['+97150123456', '+971******56'],
  ])('masks %s to its country code and last two digits', (number, masked) => {
    expect(maskPhone(number)).toBe(masked);
  });

  test('rejects anything that is not E.164 rather than echoing it', () => {
    expect(maskPhone('0044 7911 123456')).toBe('[invalid]');
  });
});
