import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SECURITY_HEADERS } from '../../lambdas/shared/contract';
import { type LocalSecrets, signDevToken } from '../../local/keys';
import { type Reply, send, sendRaw } from '../support/http';
import { type LocalProcess, startLocalProcess } from '../support/local-process';

/**
 * End to end over real HTTP: `npm start` as a child process (local gateway, real handlers and authorizer,
 * dynalite, Secrets Manager and Twilio stand-ins), driven with tokens from the local issuer. Covers the
 * seed's testing plan. Each test speaks from its own loopback source address, so per-IP limits do not mix.
 */

const ALLOWED = 'http://localhost:5173';
let api: LocalProcess;
let secrets: LocalSecrets;
const replies: Reply[] = [];
const sentTokens: string[] = [];
let nextIp = 10;

beforeAll(async () => {
  api = await startLocalProcess({ ALLOWED_ORIGINS: ALLOWED });
  secrets = JSON.parse(readFileSync(join(api.localDir, 'secrets.json'), 'utf8')) as LocalSecrets;
}, 60_000);

afterAll(async () => {
  const code = await api.stop();
  expect(code).toBe(0);
});

async function token(claims: Record<string, unknown> = {}, ttlSeconds = 3600, sub = randomUUID()): Promise<string> {
  const t = await signDevToken(secrets, { issuer: `${api.url}/auth/v1`, sub, ttlSeconds, claims });
  sentTokens.push(t);
  return t;
}

function client() {
  const localAddress = `127.0.0.${nextIp++}`;
  return async (path: string, o: { token?: string; body?: unknown; headers?: Record<string, string>; method?: string } = {}) => {
    const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(o.token ? { Authorization: `Bearer ${o.token}` } : {}), ...(o.headers ?? {}) };
    const reply = await send(`${api.url}${path}`, {
      method: o.method ?? 'POST',
      headers,
      ...(o.body === undefined ? {} : { body: typeof o.body === 'string' ? o.body : JSON.stringify(o.body) }),
      localAddress,
    });
    replies.push(reply);
    return reply;
  };
}

const expectSecurityHeaders = (r: Reply) => {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(r.headers[k.toLowerCase()]).toBe(v);
};

test('an authenticated user opens a voice session, calls and hangs up', async () => {
  const call = client();
  const t = await token();
  const opened = await call('/api/twilio/token', { token: t, headers: { Origin: ALLOWED } });
  expect(opened.status).toBe(200);
  expect(opened.json()).toEqual({ session: { status: 'active', expiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) } });
  expect(opened.headers['access-control-allow-origin']).toBe(ALLOWED);
  expect(opened.headers['vary']).toContain('Origin');
  expectSecurityHeaders(opened);

  const placed = await call('/api/twilio/voice', { token: t, body: { to: '+14155550123' }, headers: { Origin: ALLOWED } });
  expect(placed.status).toBe(201);
  const sid = placed.json<{ call: { sid: string; status: string } }>().call.sid;
  expect(placed.json()).toEqual({ call: { sid: expect.stringMatching(/^CA[0-9a-f]{32}$/), status: 'queued' } });

  const ended = await call('/api/twilio/hangup', { token: t, body: { callSid: sid } });
  expect(ended.status).toBe(200);
  expect(ended.json()).toEqual({ call: { sid, status: 'completed' } });
  const again = await call('/api/twilio/hangup', { token: t, body: { callSid: sid } });
  expect(again.json()).toEqual({ call: { sid, status: 'completed' } });
});

test('a second token request reuses the stored session', async () => {
  const call = client();
  const t = await token();
  const first = await call('/api/twilio/token', { token: t });
  const second = await call('/api/twilio/token', { token: t });
  expect(second.json()).toEqual(first.json());
});

describe('rejects requests without a valid session with 401', () => {
  test.each([
    ['no Authorization header', async () => undefined],
    ['an expired token', async () => token({}, -120)],
    ['a tampered token', async () => (await token()).replace(/\.([A-Za-z0-9_-])/, (_m, c: string) => `.${c === 'A' ? 'B' : 'A'}`)],
    ['an anonymous sign-in', async () => token({ is_anonymous: true })],
    ['the anon role', async () => token({ role: 'anon' })],
    ['the service_role role', async () => token({ role: 'service_role' })],
    ['another issuer', async () => token({ iss: 'https://evil.supabase.co/auth/v1' })],
    ['garbage', async () => 'not-a-jwt'],
  ])('rejects %s', async (_name, make) => {
    const call = client();
    const t = await make();
    const r = await call('/api/twilio/token', { ...(t ? { token: t } : {}), headers: { Origin: ALLOWED } });
    expect(r.status).toBe(401);
    expect(r.json()).toEqual({ error: { code: 'unauthenticated', message: expect.any(String) } });
    expectSecurityHeaders(r);
  });

  test('rejects an invalid token readably for an allowed origin and unreadably for a foreign one', async () => {
    const call = client();
    const allowed = await call('/api/twilio/token', { token: 'x.y.z', headers: { Origin: ALLOWED } });
    expect(allowed.status).toBe(401);
    expect(allowed.headers['access-control-allow-origin']).toBe(ALLOWED);
    const foreign = await call('/api/twilio/token', { token: 'x.y.w', headers: { Origin: 'https://evil.example' } });
    expect(foreign.status).toBe(401);
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined();
  });
});

test('rejects the sixth token request from one IP within a minute with 429 and Retry-After', async () => {
  // Start at the top of a fresh minute window, so the five admitted requests share one window.
  const s = new Date().getUTCSeconds();
  if (s > 45) await new Promise((r) => setTimeout(r, (61 - s) * 1000));
  const call = client();
  const statuses: number[] = [];
  let last: Reply | undefined;
  for (let i = 0; i < 6; i++) {
    last = await call('/api/twilio/token', { token: await token(), headers: { 'X-Forwarded-For': `203.0.113.${i}` } });
    statuses.push(last.status);
  }
  expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  expect(last!.json()).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
  expect(Number(last!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(Number(last!.headers['retry-after'])).toBeLessThanOrEqual(60);
}, 30_000);

describe('CORS', () => {
  test('refuses a foreign origin with 403 and no CORS headers', async () => {
    const call = client();
    const r = await call('/api/twilio/token', { token: await token(), headers: { Origin: 'https://evil.example' } });
    expect(r.status).toBe(403);
    expect(r.json()).toEqual({ error: { code: 'origin_not_allowed', message: expect.any(String) } });
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
  });

  test.each(['http://localhost:5173.evil.com', 'http://evil.localhost:5173', 'https://localhost:5173', 'http://localhost:5174', 'null'])(
    'treats the look-alike origin %s as foreign',
    async (origin) => {
      const call = client();
      const r = await call('/api/twilio/token', { token: await token(), headers: { Origin: origin } });
      expect(r.status).toBe(403);
      expect(r.headers['access-control-allow-origin']).toBeUndefined();
    },
  );

  test('answers preflight for an allowed origin without the authorizer, and refuses a foreign one', async () => {
    const call = client();
    const ok = await call('/api/twilio/voice', { method: 'OPTIONS', headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' } });
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(String(ok.headers['access-control-allow-headers'])).toMatch(/Authorization/);
    expectSecurityHeaders(ok);
    const bad = await call('/api/twilio/voice', { method: 'OPTIONS', headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
    expect(bad.status).toBe(403);
    expect(bad.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('bad input gets a clear 4xx', () => {
  test.each([
    ['malformed JSON', '/api/twilio/voice', '{"to":', {}, 400, 'invalid_request'],
    ['an unknown field', '/api/twilio/voice', { to: '+14155550123', extra: 1 }, {}, 400, 'invalid_request'],
    ['a bad number', '/api/twilio/voice', { to: '0044' }, {}, 400, 'invalid_request'],
    ['a bad call SID', '/api/twilio/hangup', { callSid: 'CA123' }, {}, 400, 'invalid_request'],
    ['a body over the limit', '/api/twilio/voice', { to: '+14155550123', pad: 'x'.repeat(5000) }, {}, 413, 'payload_too_large'],
    ['a non-JSON body', '/api/twilio/voice', 'to=+14155550123', { 'Content-Type': 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
  ])('rejects %s', async (_name, path, body, headers, status, code) => {
    const call = client();
    const t = await token();
    await call('/api/twilio/token', { token: t });
    const r = await call(path, { token: t, body, headers: headers as Record<string, string> });
    expect(r.status).toBe(status);
    expect(r.json()).toEqual({ error: { code, message: expect.any(String) } });
  });

  test('rejects a call before a voice session is opened with 409', async () => {
    const call = client();
    const r = await call('/api/twilio/voice', { token: await token(), body: { to: '+14155550123' } });
    expect(r.status).toBe(409);
    expect(r.json<{ error: { code: string } }>().error.code).toBe('no_voice_session');
  });

  test('rejects a destination outside the allowed prefixes with 403', async () => {
    const call = client();
    const t = await token();
    await call('/api/twilio/token', { token: t });
    const r = await call('/api/twilio/voice', { token: t, body: { to: '+8825550123' } });
    expect(r.status).toBe(403);
    expect(r.json<{ error: { code: string } }>().error.code).toBe('destination_not_allowed');
  });

  test('maps Twilio error 21211 to 400, not 5xx', async () => {
    const call = client();
    const t = await token();
    await call('/api/twilio/token', { token: t });
    const r = await call('/api/twilio/voice', { token: t, body: { to: '+15005550001' } });
    expect(r.status).toBe(400);
  });

  test('rejects hanging up another user’s call with 404 call_not_found', async () => {
    const call = client();
    const owner = await token();
    const intruder = await token();
    await call('/api/twilio/token', { token: owner });
    await call('/api/twilio/token', { token: intruder });
    const sid = (await call('/api/twilio/voice', { token: owner, body: { to: '+14155550123' } })).json<{ call: { sid: string } }>().call.sid;
    const r = await call('/api/twilio/hangup', { token: intruder, body: { callSid: sid } });
    expect(r.status).toBe(404);
    expect(r.json<{ error: { code: string } }>().error.code).toBe('call_not_found');
    const unknown = await call('/api/twilio/hangup', { token: intruder, body: { callSid: `CA${'0'.repeat(32)}` } });
    expect(unknown.text).toBe(r.text);
  });

  test('answers an unknown route with a JSON 404', async () => {
    const call = client();
    const r = await call('/api/twilio/nope', { token: await token() });
    expect(r.status).toBe(404);
    expect(r.json<{ error: { code: string } }>().error.code).toBe('not_found');
    expectSecurityHeaders(r);
  });
});

describe('ambiguous or broken requests get a clear 4xx', () => {
  const raw = (lines: string[], body = '') => `${lines.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  let ip = 200;
  const rawSend = (text: string) => sendRaw(api.port, text, `127.0.0.${ip++}`);

  test('rejects an Authorization header sent twice in two spellings, and does not cache the good copy for the bad one', async () => {
    const good = await token();
    const twice = await rawSend(raw(['POST /api/twilio/token HTTP/1.1', 'Host: x', 'authorization: junk-value', `AUTHORIZATION: Bearer ${good}`, 'Connection: close']));
    expect(twice.status).toBe(401);
    const junkAlone = await rawSend(raw(['POST /api/twilio/token HTTP/1.1', 'Host: x', 'Authorization: junk-value', 'Connection: close']));
    expect(junkAlone.status).toBe(401);
  });

  test('rejects an Origin header sent twice in two spellings with 403', async () => {
    const r = await rawSend(raw(['POST /api/twilio/token HTTP/1.1', 'Host: x', `Authorization: Bearer ${await token()}`, 'Origin: https://evil.example', `ORIGIN: ${ALLOWED}`, 'Connection: close']));
    expect(r.status).toBe(403);
    expect(r.head).not.toMatch(/access-control-allow-origin/i);
  });

  test('rejects an Idempotency-Key sent twice with 400', async () => {
    const t = await token();
    await rawSend(raw(['POST /api/twilio/token HTTP/1.1', 'Host: x', `Authorization: Bearer ${t}`, 'Connection: close']));
    const body = JSON.stringify({ to: '+14155550123' });
    const r = await rawSend(raw(['POST /api/twilio/voice HTTP/1.1', 'Host: x', `Authorization: Bearer ${t}`, 'Content-Type: application/json', 'Idempotency-Key: first-key-0001', 'Idempotency-Key: second-key-0002', 'Connection: close'], body));
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toEqual({ error: { code: 'invalid_request', message: expect.stringContaining('idempotency-key') } });
  });

  test.each([
    ['a malformed request target', 'POST http://[::1/x HTTP/1.1', 404],
    ['an unknown method', 'FOO /api/twilio/token HTTP/1.1', 400],
  ])('answers %s with the JSON contract and the security headers', async (_name, requestLine, status) => {
    const r = await rawSend(raw([requestLine, 'Host: x', 'Connection: close']));
    expect(r.status).toBe(status);
    expect(JSON.parse(r.body)).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
    for (const k of Object.keys(SECURITY_HEADERS)) expect(r.head.toLowerCase()).toContain(`${k.toLowerCase()}:`);
  });

  test('answers oversized headers with 431 and the JSON contract', async () => {
    const r = await rawSend(raw(['POST /api/twilio/token HTTP/1.1', 'Host: x', `X-Pad: ${'a'.repeat(20_000)}`, 'Connection: close']));
    expect(r.status).toBe(431);
    expect(JSON.parse(r.body).error.code).toBe('invalid_request');
  });

  test('matches paths as sent: dot segments and encodings do not reach a route', async () => {
    for (const path of ['/api/twilio/x/%2e%2e/hangup', '/api/twilio/./token', '//api/twilio/token', '/api/twilio/token/']) {
      const r = await rawSend(raw([`POST ${path} HTTP/1.1`, 'Host: x', `Authorization: Bearer ${await token()}`, 'Connection: close']));
      expect(r.status).toBe(404);
    }
  });
});

test('the dev:token command prints a token the API accepts', async () => {
  const root = resolve(__dirname, '../..');
  const printed = execFileSync(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), join(root, 'local/dev-token.ts'), '--sub', randomUUID(), '--claims', '{"aal":"aal2"}'], {
    env: { ...process.env, PORT: String(api.port), LOCAL_DIR: api.localDir },
  })
    .toString()
    .trim();
  sentTokens.push(printed);
  const r = await client()('/api/twilio/token', { token: printed });
  expect(r.status).toBe(200);
});

test('no response or log line contains a token, key or secret', () => {
  const haystacks = [...replies.map((r) => JSON.stringify(r.headers) + r.text), api.output()];
  const canaries = [
    ...sentTokens,
    secrets.twilio['apiKeySecret']!,
    secrets.usageKey,
    String(secrets.issuer.privateJwk.d),
    ...Object.values(secrets.encryptionKeys.keys),
  ];
  for (const text of haystacks) {
    for (const c of canaries) expect(text).not.toContain(c);
    // Every JWT (a Supabase token or a minted Twilio token) starts with a base64url JSON header.
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
    expect(text).not.toMatch(/\bat \S+ \(.*:\d+:\d+\)/); // no stack traces
    // Full phone numbers never reach a log line (masked), nor Twilio's messages that quote them.
    const logLines = text === api.output() ? text.split('\n').filter((l) => l.startsWith('{')) : [];
    for (const number of ['+14155550123', '+15005550001', '+8825550123']) expect(logLines.join('\n')).not.toContain(number);
  }
});
