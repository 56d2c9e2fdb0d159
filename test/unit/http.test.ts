import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { z } from 'zod';
import { ERRORS, MAX_BODY_BYTES, SECURITY_HEADERS, errorBody } from '../../lambdas/shared/contract';
import {
  type ApiError,
  CallNotFoundError,
  DestinationNotAllowedError,
  InvalidRequestError,
  MethodNotAllowedError,
  NoVoiceSessionError,
  OriginNotAllowedError,
  PayloadTooLargeError,
  RateLimitedError,
  UnauthenticatedError,
  UnavailableError,
  UnsupportedMediaTypeError,
  UpstreamError,
} from '../../lambdas/shared/errors';
import { type ApiRequest, type ApiResponse, apiHandler } from '../../lambdas/shared/http';
import { logger } from '../../lambdas/shared/logger';

/**
 * The shared middy chain every route runs through, driven with hand-built API Gateway (REST, v1) events:
 * exact-origin CORS and the CSRF guard, security headers on every response, body limits and parsing, the
 * re-check of the session expiry, and the JSON error contract.
 */

const ALLOWED = 'http://localhost:5173';
const FOREIGN = 'https://evil.example';
const USER_ID = '6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f';
const NOW = Date.UTC(2030, 0, 1);
const FUTURE_EXP = NOW / 1000 + 600;

const schema = z.object({ note: z.string().optional() }).strict();
type Body = z.infer<typeof schema>;

let logic: jest.Mock<Promise<ApiResponse>, [ApiRequest<Body>]>;
let handler: ReturnType<typeof apiHandler<Body>>;

beforeEach(() => {
  logic = jest.fn((req: ApiRequest<Body>) => Promise.resolve<ApiResponse>({ status: 200, body: { ok: true, userId: req.caller.userId } }));
  handler = apiHandler<Body>({ allowedOrigins: [ALLOWED], schema, fieldHelp: { note: 'note must be a string.' }, now: () => NOW }, (req) => logic(req));
  // The error mapper logs every refusal; keep the test output readable.
  for (const level of ['info', 'warn', 'error'] as const) jest.spyOn(logger, level).mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

interface EventOptions {
  readonly method?: string;
  readonly origin?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | null;
  /** The authorizer's context; `null` for none (preflight, or an unprotected path). */
  readonly authorizer?: Record<string, string | number> | null;
  readonly isBase64Encoded?: boolean;
  readonly multiValueHeaders?: Record<string, string[]>;
}

/** An API Gateway REST proxy event as a protected `POST` route receives it. */
function apiEvent(opts: EventOptions = {}): APIGatewayProxyEvent {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    ...(opts.origin === undefined ? {} : { Origin: opts.origin }),
    ...opts.headers,
  };
  const authorizer = opts.authorizer === undefined ? { userId: USER_ID, sessionId: 'sess-1', exp: FUTURE_EXP, principalId: USER_ID } : opts.authorizer;
  return {
    httpMethod: opts.method ?? 'POST',
    resource: '/api/twilio/token',
    path: '/api/twilio/token',
    headers,
    multiValueHeaders: opts.multiValueHeaders ?? Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    body: opts.body === undefined ? '{}' : opts.body,
    isBase64Encoded: opts.isBase64Encoded ?? false,
    pathParameters: null,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      stage: 'prod',
      requestId: 'req-1',
      httpMethod: opts.method ?? 'POST',
      path: '/prod/api/twilio/token',
      resourcePath: '/api/twilio/token',
      resourceId: 'res1',
      protocol: 'HTTP/1.1',
      requestTimeEpoch: NOW,
      identity: { sourceIp: '203.0.113.7' },
      ...(authorizer === null ? {} : { authorizer }),
    } as unknown as APIGatewayProxyEvent['requestContext'],
  };
}

const context = { awsRequestId: 'aws-req-1', functionName: 'token' } as Context;
const invoke = (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => handler(event, context);

/** A response header, looked up case-insensitively as a browser would. */
function header(res: APIGatewayProxyResult, name: string): string | undefined {
  const entry = Object.entries(res.headers ?? {}).find(([k]) => k.toLowerCase() === name.toLowerCase());
  return entry === undefined ? undefined : String(entry[1]);
}

function expectSecurityHeaders(res: APIGatewayProxyResult): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect([name, header(res, name)]).toEqual([name, value]);
}

function expectError(res: APIGatewayProxyResult, status: number, code: string): void {
  expect(res.statusCode).toBe(status);
  const body = JSON.parse(res.body) as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
  expect(body.error['code']).toBe(code);
  expect(typeof body.error['message']).toBe('string');
}

describe('CORS and the origin guard', () => {
  test('echoes an allowed origin with Vary: Origin', async () => {
    const res = await invoke(apiEvent({ origin: ALLOWED }));

    expect(res.statusCode).toBe(200);
    expect(header(res, 'Access-Control-Allow-Origin')).toBe(ALLOWED);
    expect(header(res, 'Vary')).toMatch(/\bOrigin\b/);
  });

  test('lets an allowed origin read Retry-After', async () => {
    const res = await invoke(apiEvent({ origin: ALLOWED }));

    expect(header(res, 'Access-Control-Expose-Headers')).toMatch(/\bRetry-After\b/);
  });

  test('rejects a foreign origin with 403 origin_not_allowed and no Access-Control-Allow-Origin', async () => {
    const res = await invoke(apiEvent({ origin: FOREIGN }));

    expectError(res, 403, 'origin_not_allowed');
    expect(header(res, 'Access-Control-Allow-Origin')).toBeUndefined();
  });

  test('rejects a foreign origin before the route logic runs', async () => {
    await invoke(apiEvent({ origin: FOREIGN }));

    expect(logic).not.toHaveBeenCalled();
  });

  test.each([
    ['a suffix', 'http://localhost:5173.evil.com'],
    ['a prefix', 'http://evil.localhost:5173'],
    ['another scheme', 'https://localhost:5173'],
    ['another port', 'http://localhost:5174'],
    ['no port', 'http://localhost'],
    ['a trailing slash', 'http://localhost:5173/'],
    ['upper case', 'HTTP://LOCALHOST:5173'],
    ['a path', 'http://localhost:5173/app'],
    ['the "null" origin', 'null'],
    ['the wildcard', '*'],
    ['an empty origin', ''],
    ['surrounding whitespace', ` ${ALLOWED} `],
    ['two origins in one header', `${ALLOWED} ${FOREIGN}`],
  ])('rejects a look-alike origin with %s', async (_name, origin) => {
    const res = await invoke(apiEvent({ origin }));

    expectError(res, 403, 'origin_not_allowed');
    expect(header(res, 'Access-Control-Allow-Origin')).toBeUndefined();
    expect(logic).not.toHaveBeenCalled();
  });

  // @middy/http-cors looks origins up in a plain object; names inherited from Object.prototype must
  // still not count as allowlisted.
  test.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])(
    'rejects the origin %s without echoing it in Access-Control-Allow-Origin',
    async (origin) => {
      const res = await invoke(apiEvent({ origin }));

      expectError(res, 403, 'origin_not_allowed');
      expect(header(res, 'Access-Control-Allow-Origin')).toBeUndefined();
    },
  );

  // DESIGN.md: origins not on the allowlist get no CORS headers, not even Allow-Methods or Max-Age.
  test('rejects a foreign origin with no CORS headers at all', async () => {
    const res = await invoke(apiEvent({ origin: FOREIGN }));

    expectError(res, 403, 'origin_not_allowed');
    expect(Object.keys(res.headers ?? {}).filter((k) => k.toLowerCase().startsWith('access-control-'))).toEqual([]);
  });

  test('rejects an Origin header sent twice, even when one copy is allowed', async () => {
    const res = await invoke(apiEvent({ origin: ALLOWED, multiValueHeaders: { 'Content-Type': ['application/json'], Origin: [ALLOWED, FOREIGN] } }));

    expectError(res, 403, 'origin_not_allowed');
    expect(logic).not.toHaveBeenCalled();
  });

  test('serves a request without Origin, with no CORS header', async () => {
    const res = await invoke(apiEvent());

    expect(res.statusCode).toBe(200);
    expect(header(res, 'Access-Control-Allow-Origin')).toBeUndefined();
  });

  test('lets an allowed origin read an error response', async () => {
    logic.mockRejectedValueOnce(new UnauthenticatedError());

    const res = await invoke(apiEvent({ origin: ALLOWED }));

    expectError(res, 401, 'unauthenticated');
    expect(header(res, 'Access-Control-Allow-Origin')).toBe(ALLOWED);
  });
});

describe('preflight', () => {
  const preflight = (origin: string) =>
    apiEvent({ method: 'OPTIONS', origin, body: null, authorizer: null, headers: { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' } });

  test('answers a preflight from an allowed origin with 204 and the allowed methods and headers', async () => {
    const res = await invoke(preflight(ALLOWED));

    expect(res.statusCode).toBe(204);
    expect(header(res, 'Access-Control-Allow-Origin')).toBe(ALLOWED);
    expect(header(res, 'Access-Control-Allow-Methods')?.split(',')).toEqual(expect.arrayContaining(['POST']));
    expect(header(res, 'Access-Control-Allow-Headers')?.split(',')).toEqual(expect.arrayContaining(['Authorization', 'Content-Type', 'Idempotency-Key']));
    expect(header(res, 'Vary')).toMatch(/\bOrigin\b/);
  });

  test('answers a preflight with the security headers', async () => {
    expectSecurityHeaders(await invoke(preflight(ALLOWED)));
  });

  test('answers a preflight without running the route logic', async () => {
    await invoke(preflight(ALLOWED));

    expect(logic).not.toHaveBeenCalled();
  });

  test('rejects a preflight from a foreign origin with 403 and no Access-Control-Allow-Origin', async () => {
    const res = await invoke(preflight(FOREIGN));

    expectError(res, 403, 'origin_not_allowed');
    expect(header(res, 'Access-Control-Allow-Origin')).toBeUndefined();
    expect(logic).not.toHaveBeenCalled();
  });
});

describe('security headers', () => {
  test('are on a success response', async () => {
    expectSecurityHeaders(await invoke(apiEvent({ origin: ALLOWED })));
  });

  const thrown: readonly [string, () => ApiError][] = [
    ['invalid_request', () => new InvalidRequestError()],
    ['unauthenticated', () => new UnauthenticatedError()],
    ['origin_not_allowed', () => new OriginNotAllowedError()],
    ['destination_not_allowed', () => new DestinationNotAllowedError()],
    ['call_not_found', () => new CallNotFoundError()],
    ['method_not_allowed', () => new MethodNotAllowedError()],
    ['no_voice_session', () => new NoVoiceSessionError()],
    ['payload_too_large', () => new PayloadTooLargeError()],
    ['unsupported_media_type', () => new UnsupportedMediaTypeError()],
    ['rate_limited', () => new RateLimitedError(30, 'test')],
    ['upstream_error', () => new UpstreamError()],
    ['unavailable', () => new UnavailableError()],
  ];

  test.each(thrown)('are on a %s error, which keeps its contract status and body', async (code, make) => {
    logic.mockRejectedValueOnce(make());

    const res = await invoke(apiEvent({ origin: ALLOWED }));

    expectSecurityHeaders(res);
    expect(res.statusCode).toBe(ERRORS[code as keyof typeof ERRORS].status);
    expect(res.body).toBe(errorBody(code as keyof typeof ERRORS));
  });

  test('are on an error from the middleware itself (foreign origin)', async () => {
    expectSecurityHeaders(await invoke(apiEvent({ origin: FOREIGN })));
  });

  test('are on the 500 for an unexpected error', async () => {
    logic.mockRejectedValueOnce(new Error('boom'));

    expectSecurityHeaders(await invoke(apiEvent({ origin: ALLOWED })));
  });
});

describe('unexpected failures', () => {
  test('fails with a generic 500 internal_error that reveals nothing of the error', async () => {
    const err = new Error('connect ECONNREFUSED 10.0.0.7:5432 password=hunter2');
    logic.mockRejectedValueOnce(err);

    const res = await invoke(apiEvent({ origin: ALLOWED }));

    expect(res.statusCode).toBe(500);
    expect(res.body).toBe(errorBody('internal_error'));
    expect(res.body).not.toContain('hunter2');
    expect(res.body).not.toContain('ECONNREFUSED');
    expect(res.body).not.toMatch(/\bat .+:\d+:\d+/);
  });

  test('fails with a generic 500 when something other than an Error is thrown', async () => {
    logic.mockImplementationOnce(() => Promise.reject(new Map([['secret', 'hunter2']])));

    const res = await invoke(apiEvent({ origin: ALLOWED }));

    expect(res.statusCode).toBe(500);
    expect(res.body).toBe(errorBody('internal_error'));
  });
});

describe('request bodies', () => {
  test('accepts a body of exactly the size limit', async () => {
    const body = JSON.stringify({ note: 'x'.repeat(MAX_BODY_BYTES - '{"note":""}'.length) });
    expect(Buffer.byteLength(body)).toBe(MAX_BODY_BYTES);

    const res = await invoke(apiEvent({ body }));

    expect(res.statusCode).toBe(200);
  });

  test('rejects a body over 4096 bytes with 413 payload_too_large', async () => {
    const body = JSON.stringify({ note: 'x'.repeat(MAX_BODY_BYTES) });

    const res = await invoke(apiEvent({ origin: ALLOWED, body }));

    expectError(res, 413, 'payload_too_large');
    expect(logic).not.toHaveBeenCalled();
  });

  test('rejects a body over the limit counted in bytes, not characters', async () => {
    const body = JSON.stringify({ note: 'é'.repeat(MAX_BODY_BYTES / 2) });
    expect(body.length).toBeLessThan(MAX_BODY_BYTES + 20);

    expectError(await invoke(apiEvent({ body })), 413, 'payload_too_large');
  });

  test('rejects a base64-encoded body whose decoded size is over the limit', async () => {
    const body = Buffer.from(JSON.stringify({ note: 'x'.repeat(MAX_BODY_BYTES) })).toString('base64');

    expectError(await invoke(apiEvent({ body, isBase64Encoded: true })), 413, 'payload_too_large');
  });

  test.each([
    ['text/plain', { 'Content-Type': 'text/plain' }],
    ['form encoding', { 'Content-Type': 'application/x-www-form-urlencoded' }],
    ['a JSON look-alike type', { 'Content-Type': 'application/jsonp' }],
    ['JSON declared in UTF-16', { 'Content-Type': 'application/json; charset=utf-16' }],
    ['JSON declared in Latin-1', { 'Content-Type': 'application/json;charset="iso-8859-1"' }],
  ])('rejects a body sent as %s with 415 unsupported_media_type', async (_name, headers) => {
    const res = await invoke(apiEvent({ body: '{}', headers }));

    expectError(res, 415, 'unsupported_media_type');
    expect(logic).not.toHaveBeenCalled();
  });

  test('rejects a body without a Content-Type with 415', async () => {
    const event = apiEvent({ body: '{}' });
    delete event.headers['Content-Type'];
    delete event.multiValueHeaders['Content-Type'];

    expectError(await invoke(event), 415, 'unsupported_media_type');
  });

  test('accepts application/json with a charset parameter', async () => {
    const res = await invoke(apiEvent({ body: '{}', headers: { 'Content-Type': 'application/json; charset=utf-8' } }));

    expect(res.statusCode).toBe(200);
  });

  test('accepts an empty body as an empty object', async () => {
    const res = await invoke(apiEvent({ body: null, headers: {} }));

    expect(res.statusCode).toBe(200);
    expect(logic).toHaveBeenCalledWith(expect.objectContaining({ body: {} }));
  });

  test('rejects malformed JSON with 400 invalid_request', async () => {
    const res = await invoke(apiEvent({ body: '{"note": ' }));

    expectError(res, 400, 'invalid_request');
    expect(logic).not.toHaveBeenCalled();
  });

  test('rejects an unknown field with 400 invalid_request naming the field', async () => {
    const res = await invoke(apiEvent({ body: '{"admin":true}' }));

    expectError(res, 400, 'invalid_request');
    expect(JSON.parse(res.body)).toEqual({ error: { code: 'invalid_request', message: 'Unknown field "admin".' } });
  });

  test('rejects a field of the wrong type with 400 and the field help', async () => {
    const res = await invoke(apiEvent({ body: '{"note":42}' }));

    expect(JSON.parse(res.body)).toEqual({ error: { code: 'invalid_request', message: 'note must be a string.' } });
  });

  test.each([['an array', '[]'], ['a string', '"hi"'], ['null', 'null']])('rejects %s as the body with 400', async (_name, body) => {
    expectError(await invoke(apiEvent({ body })), 400, 'invalid_request');
  });

  test('passes the parsed body, the caller and the request id to the logic', async () => {
    await invoke(apiEvent({ body: '{"note":"hello"}' }));

    expect(logic).toHaveBeenCalledWith({
      method: 'POST',
      body: { note: 'hello' },
      caller: { userId: USER_ID, sessionId: 'sess-1', exp: FUTURE_EXP, sourceIp: '203.0.113.7' },
      headers: expect.objectContaining({ 'content-type': 'application/json' }) as unknown,
      requestId: 'aws-req-1',
    });
  });

  test('takes the source IP from the request context, never from X-Forwarded-For', async () => {
    await invoke(apiEvent({ headers: { 'X-Forwarded-For': '198.51.100.1' } }));

    expect(logic.mock.calls[0]![0].caller.sourceIp).toBe('203.0.113.7');
  });
});

describe('session re-check', () => {
  test('rejects an expired exp in the authorizer context with 401, so a cached Allow cannot outlive the session', async () => {
    const res = await invoke(apiEvent({ origin: ALLOWED, authorizer: { userId: USER_ID, sessionId: 's', exp: NOW / 1000 - 1 } }));

    expectError(res, 401, 'unauthenticated');
    expect(logic).not.toHaveBeenCalled();
  });

  test('rejects an exp equal to now with 401', async () => {
    expectError(await invoke(apiEvent({ authorizer: { userId: USER_ID, sessionId: 's', exp: NOW / 1000 } })), 401, 'unauthenticated');
  });

  test('accepts exp given as a string, as API Gateway delivers authorizer context', async () => {
    const res = await invoke(apiEvent({ authorizer: { userId: USER_ID, sessionId: 's', exp: String(FUTURE_EXP) } }));

    expect(res.statusCode).toBe(200);
  });

  test('rejects a missing authorizer context with 401', async () => {
    const res = await invoke(apiEvent({ authorizer: null }));

    expectError(res, 401, 'unauthenticated');
    expect(logic).not.toHaveBeenCalled();
  });

  test.each([
    ['no userId', { sessionId: 's', exp: FUTURE_EXP }],
    ['an empty userId', { userId: '', sessionId: 's', exp: FUTURE_EXP }],
    ['no exp', { userId: USER_ID, sessionId: 's' }],
    ['a non-numeric exp', { userId: USER_ID, sessionId: 's', exp: 'soon' }],
  ])('rejects an authorizer context with %s with 401', async (_name, authorizer) => {
    expectError(await invoke(apiEvent({ authorizer })), 401, 'unauthenticated');
  });
});

describe('error contract', () => {
  test('rejects with 429 rate_limited and Retry-After in seconds', async () => {
    logic.mockRejectedValueOnce(new RateLimitedError(41.2, 'ip_token_limit'));

    const res = await invoke(apiEvent({ origin: ALLOWED }));

    expectError(res, 429, 'rate_limited');
    expect(header(res, 'Retry-After')).toBe('42');
  });

  test('answers errors as application/json', async () => {
    logic.mockRejectedValueOnce(new CallNotFoundError());

    const res = await invoke(apiEvent());

    expect(header(res, 'Content-Type')).toBe('application/json');
  });

  test('keeps an error message chosen by the service', async () => {
    logic.mockRejectedValueOnce(new InvalidRequestError({ message: 'to must be an E.164 number.' }));

    const res = await invoke(apiEvent());

    expect(res.body).toBe(JSON.stringify({ error: { code: 'invalid_request', message: 'to must be an E.164 number.' } }));
  });

  test('never puts the cause of an error into the response', async () => {
    logic.mockRejectedValueOnce(new UpstreamError({ cause: new Error('Twilio said: account AC123 suspended') }));

    const res = await invoke(apiEvent());

    expect(res.body).toBe(errorBody('upstream_error'));
  });

  test('answers a success without a body with an empty body', async () => {
    logic.mockResolvedValueOnce({ status: 204 });

    const res = await invoke(apiEvent());

    expect(res).toMatchObject({ statusCode: 204, body: '' });
  });
});
