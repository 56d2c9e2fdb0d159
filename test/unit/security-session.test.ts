import { randomBytes, randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { createVerifier } from '../../lambdas/authorizer/service';
import { createSessionCheck } from '../../lambdas/authorizer/session-check';
import { loadConfig } from '../../lambdas/shared/config';
import { parseKeyring } from '../../lambdas/shared/crypto';
import type { Deps } from '../../lambdas/shared/deps';
import type { Caller } from '../../lambdas/shared/http';
import { DynamoStore } from '../../lambdas/shared/store';
import type { TwilioCredentials, TwilioPort } from '../../lambdas/shared/twilio';
import { hangUp } from '../../lambdas/hangup/service';
import { openSession } from '../../lambdas/token/service';
import { placeCall } from '../../lambdas/voice/service';
import { close, listen } from '../../local/http-util';
import { type TestTable, startTable } from '../support/dynalite';
import { ISSUER, type TestKey, generateTestKey, localJwks, signToken, splitToken } from '../support/jwt';

/**
 * The two optional session hardenings, both off by default: the online check that the Supabase session is still
 * signed in (against a loopback stand-in of Supabase's `GET /auth/v1/user`), and binding a voice session to the
 * IP that opened it.
 */

describe('online session check (Supabase GET /auth/v1/user)', () => {
  const ANON_KEY = `anon-${randomBytes(8).toString('hex')}`;
  let es: TestKey;
  let server: Server;
  let url: string;
  /** Session ids Supabase still knows; everything else is signed out. */
  const signedIn = new Set<string>();
  let requests = 0;
  let mode: 'normal' | 'error' | 'hang' = 'normal';

  beforeAll(async () => {
    es = await generateTestKey('ES256');
    // What Supabase's auth server answers: the user for a live session, 403 session_not_found after sign-out,
    // 401 without the project's apikey.
    server = createServer((req: IncomingMessage, res) => {
      requests++;
      if (mode === 'hang') return;
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (mode === 'error') return reply(500, { code: 500, msg: 'Internal Server Error' });
      if (req.url !== '/auth/v1/user' || req.method !== 'GET') return reply(404, { code: 404, msg: 'Not found' });
      if (req.headers['apikey'] !== ANON_KEY) return reply(401, { message: 'Invalid API key' });
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      const { payload } = splitToken(token);
      if (!signedIn.has(String(payload['session_id']))) return reply(403, { code: 403, error_code: 'session_not_found', msg: 'Session from session_id claim in JWT does not exist' });
      return reply(200, { id: payload['sub'], aud: 'authenticated', role: 'authenticated', email: 'user@example.com' });
    });
    url = `http://127.0.0.1:${await listen(server, 0)}`;
  });
  afterAll(() => close(server));
  beforeEach(() => {
    requests = 0;
    mode = 'normal';
  });

  let clock = Date.now();
  const verifier = (apiKey = ANON_KEY, timeoutMs = 300) =>
    createVerifier({
      issuer: ISSUER,
      jwksUrl: 'http://127.0.0.1:9/never-fetched',
      jwks: localJwks([es]),
      sessionCheck: createSessionCheck({ url: `${url}/auth/v1/user`, apiKey, now: () => clock, timeoutMs }),
    });
  const session = async () => {
    const sessionId = randomUUID();
    signedIn.add(sessionId);
    return { sessionId, token: `Bearer ${await signToken(es, { session_id: sessionId })}` };
  };

  test('is off by default: the Lambda config leaves it disabled and the verifier asks no one', async () => {
    expect(loadConfig({ SUPABASE_URL: 'https://proj.supabase.co' }).sessionCheck).toBe(false);
    const plain = createVerifier({ issuer: ISSUER, jwksUrl: 'http://127.0.0.1:9/never-fetched', jwks: localJwks([es]) });
    expect((await plain((await session()).token)).ok).toBe(true);
    expect(requests).toBe(0);
  });

  test('accepts a session that is still signed in', async () => {
    expect((await verifier()((await session()).token)).ok).toBe(true);
    expect(requests).toBe(1);
  });

  test('rejects a session that has been signed out', async () => {
    const s = await session();
    signedIn.delete(s.sessionId);
    expect(await verifier()(s.token)).toEqual({ ok: false, reason: 'session_signed_out' });
  });

  test('caches the answer briefly: a burst costs one request, and a sign-out is seen once the cache expires', async () => {
    clock = Date.now();
    const verify = verifier();
    const s = await session();
    for (let i = 0; i < 20; i++) expect((await verify(s.token)).ok).toBe(true);
    expect(requests).toBe(1);

    signedIn.delete(s.sessionId);
    clock += 29_000;
    expect((await verify(s.token)).ok).toBe(true); // still within the 30 s cache
    clock += 2_000;
    expect(await verify(s.token)).toEqual({ ok: false, reason: 'session_signed_out' });
    expect(requests).toBe(2);
  });

  test('never asks Supabase about a token that fails verification', async () => {
    const forged = `Bearer ${await signToken(await generateTestKey('ES256'), {}, { kid: es.kid })}`;
    expect((await verifier()(forged)).ok).toBe(false);
    expect(requests).toBe(0);
  });

  test('rejects when Supabase refuses the project key (a misconfiguration cannot turn into an Allow)', async () => {
    expect(await verifier('wrong-key')((await session()).token)).toEqual({ ok: false, reason: 'session_signed_out' });
  });

  test.each([
    ['answers 500', 'error' as const],
    ['does not answer in time', 'hang' as const],
  ])('fails closed (503) when Supabase %s', async (_name, m) => {
    const s = await session();
    mode = m;
    await expect(verifier()(s.token)).rejects.toMatchObject({ code: 'unavailable', status: 503 });
  });
});

describe('binding a voice session to the IP that opened it', () => {
  class FakeTwilio implements TwilioPort {
    mintAccessToken() {
      return `tok-${randomBytes(8).toString('hex')}`;
    }
    async createCall() {
      return { sid: `CA${randomBytes(16).toString('hex')}`, status: 'queued' as const };
    }
    async endCall() {
      return 'completed' as const;
    }
  }
  const creds: TwilioCredentials = { accountSid: `AC${'0'.repeat(32)}`, apiKeySid: `SK${'0'.repeat(32)}`, apiKeySecret: 'x'.repeat(32), twimlAppSid: `AP${'0'.repeat(32)}`, callerId: '+15005550006' };
  const keyring = parseKeyring(JSON.stringify({ current: 'v1', keys: { v1: randomBytes(32).toString('base64') } }));
  const base = { tokenTtlSeconds: 3600, ipTokenLimitPerMinute: 100, userTokenQuotaPerDay: 100, userCallQuotaPerDay: 100, dialPrefixes: ['+1'], concurrentCallLimit: 100, maxCallSeconds: 3600, statusCallbackUrl: 'https://api.example.com/prod/api/twilio/status' };
  const bound = { ...base, bindSessionToIp: true };

  let t: TestTable;
  let d: Deps;
  beforeAll(async () => {
    t = await startTable();
    d = { store: new DynamoStore(t.client, t.table), twilio: new FakeTwilio(), twilioCredentials: async () => creds, keyring: async () => keyring, now: Date.now };
  });
  afterAll(() => t.stop());

  const user = () => {
    const userId = randomUUID();
    return (sourceIp: string): Caller => ({ userId, sessionId: 's', exp: Math.floor(Date.now() / 1000) + 3600, sourceIp });
  };

  test('is off by default: the Lambda config leaves it disabled and another IP may use the session', async () => {
    expect(loadConfig({ SUPABASE_URL: 'https://proj.supabase.co' }).bindSessionToIp).toBe(false);
    const from = user();
    await openSession(d, base, from('192.0.2.1'));
    const { call } = await placeCall(d, base, from('198.51.100.9'), '+14155550123', undefined);
    expect((await hangUp(d, from('203.0.113.5'), call.sid)).call.status).toBe('completed');
  });

  test('stores the opener\'s IP with the session when enabled', async () => {
    const from = user();
    await openSession(d, bound, from('192.0.2.2'));
    const item = await t.client.send(new GetItemCommand({ TableName: t.table, Key: { pk: { S: `USER#${from('x').userId}` }, sk: { S: 'SESSION' } } }));
    expect(item.Item?.['ip']?.S).toBe('192.0.2.2');
  });

  test('rejects /voice and /hangup from another IP with 409 no_voice_session, and serves the opener', async () => {
    const from = user();
    await openSession(d, bound, from('192.0.2.3'));
    const { call } = await placeCall(d, bound, from('192.0.2.3'), '+14155550123', undefined);

    await expect(placeCall(d, bound, from('198.51.100.3'), '+14155550123', undefined)).rejects.toMatchObject({ status: 409, code: 'no_voice_session' });
    await expect(hangUp(d, from('198.51.100.3'), call.sid, bound)).rejects.toMatchObject({ status: 409, code: 'no_voice_session' });
    expect((await hangUp(d, from('192.0.2.3'), call.sid, bound)).call.status).toBe('completed');
  });

  test('opening a session from a new IP replaces the old one and moves the binding', async () => {
    const from = user();
    await openSession(d, bound, from('192.0.2.4'));

    const moved = await openSession(d, bound, from('198.51.100.4'));

    expect(moved.reused).toBe(false);
    await placeCall(d, bound, from('198.51.100.4'), '+14155550123', undefined);
    await expect(placeCall(d, bound, from('192.0.2.4'), '+14155550123', undefined)).rejects.toMatchObject({ status: 409 });
  });

  test('reuses the session for the same IP', async () => {
    const from = user();
    await openSession(d, bound, from('192.0.2.5'));
    expect((await openSession(d, bound, from('192.0.2.5'))).reused).toBe(true);
  });
});
