import { randomBytes, randomUUID } from 'node:crypto';
import { type AttributeValue, DynamoDBClient, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import { z } from 'zod';
import { hangUp } from '../../lambdas/hangup/service';
import { AWS_CLIENT_OPTIONS } from '../../lambdas/shared/aws';
import { parseKeyring, seal } from '../../lambdas/shared/crypto';
import type { Deps } from '../../lambdas/shared/deps';
import { type ApiRequest, type Caller, apiHandler } from '../../lambdas/shared/http';
import { CachedSecrets, parsedSecret } from '../../lambdas/shared/secrets';
import { DynamoStore, type Store, sessionItemKey } from '../../lambdas/shared/store';
import { type TwilioCredentials, type TwilioPort, TwilioRest, parseTwilioCredentials } from '../../lambdas/shared/twilio';
import { mintAccessToken } from '../../lambdas/shared/twilio-token';
import { openSession } from '../../lambdas/token/service';
import { BLOCKED_PREFIXES, placeCall } from '../../lambdas/voice/service';
import { close, listen } from '../../local/http-util';
import { type TwilioStandIn, twilioStandIn } from '../../local/twilio-standin';
import { type TestTable, startTable } from '../support/dynalite';
import { FULL_SCALE, scale } from '../support/scale';
import { proxyEvent, testKeyring, testTwilioCredentials } from '../support/fixtures';

/**
 * Storage, authorization and fault claims: no plaintext token at rest, no IV reuse, expired-but-present items are
 * absent to every read and conditional write, the BOLA matrix, the toll-fraud guard, and every fault mapped to the
 * contract with nothing issued, nothing lost or dangling, and a safe retry.
 */

const WRITES = scale(250, 1_000);
const IVS = scale(10_000, 100_000);
const NOW_MS = Date.now();
const NOW = Math.floor(NOW_MS / 1000);

const creds = testTwilioCredentials();
const keyring = testKeyring();
const limits = { tokenTtlSeconds: 3600, ipTokenLimitPerMinute: 1_000_000, userTokenQuotaPerDay: 1000, userCallQuotaPerDay: 1000, dialPrefixes: ['+1', '+44', '+8'], concurrentCallLimit: 1000, maxCallSeconds: 3600, statusCallbackUrl: 'https://api.example.com/prod/api/twilio/status' };

/** Records what it was asked; the minted token carries a canary that must never be found at rest. */
class FakeTwilio implements TwilioPort {
  readonly minted: string[] = [];
  readonly created: string[] = [];
  readonly ended: string[] = [];
  mintAccessToken(): string {
    const token = `eyJ.CANARY-${randomBytes(12).toString('hex')}.sig`;
    this.minted.push(token);
    return token;
  }
  async createCall(_c: TwilioCredentials, to: string) {
    this.created.push(to);
    return { sid: `CA${randomBytes(16).toString('hex')}`, status: 'queued' as const };
  }
  async endCall(_c: TwilioCredentials, sid: string) {
    this.ended.push(sid);
    return 'completed' as const;
  }
}

let t: TestTable;
beforeAll(async () => {
  t = await startTable();
});
afterAll(() => t.stop());

function deps(overrides: Partial<Deps> = {}): Deps & { twilio: FakeTwilio } {
  return { store: new DynamoStore(t.client, t.table), twilio: new FakeTwilio(), twilioCredentials: async () => creds, keyring: async () => keyring, now: () => NOW_MS, ...overrides } as Deps & { twilio: FakeTwilio };
}
const newCaller = (): Caller => ({ userId: randomUUID(), sessionId: 's', exp: NOW + 3600, sourceIp: `10.1.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}` });

async function scanAll(): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  for (let page = 0; page < 1000; page++) {
    const out = await t.client.send(new ScanCommand({ TableName: t.table, ...(start ? { ExclusiveStartKey: start } : {}) }));
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
    if (!start) break;
  }
  return items;
}
const itemsOf = async (userId: string) => (await scanAll()).filter((i) => i['pk']?.S === `USER#${userId}`);

/** Every encoding of a secret an accidental write could produce. */
const encodings = (s: string) => [s, Buffer.from(s).toString('base64'), Buffer.from(s).toString('base64url'), Buffer.from(s).toString('hex'), encodeURIComponent(s)];

describe('tokens at rest', () => {
  test(`no plaintext token in any stored attribute after ${WRITES} writes (raw, base64, base64url, hex)`, async () => {
    const d = deps();
    for (let i = 0; i < WRITES; i += 50) await Promise.all(Array.from({ length: Math.min(50, WRITES - i) }, () => openSession(d, limits, newCaller())));
    expect(d.twilio.minted).toHaveLength(WRITES);

    const dump = JSON.stringify(await scanAll());
    const forms = d.twilio.minted.flatMap((tok) => [...encodings(tok), ...encodings(tok.split('.')[1]!)]);
    const found = forms.filter((f) => dump.includes(f));

    expect(found).toEqual([]);
    expect(dump).not.toContain('CANARY');
    if (FULL_SCALE) console.info(`at rest: ${WRITES} sessions written, ${forms.length} canary forms searched, ${found.length} found`);
  }, 120_000);

  test(`never repeats an IV over ${IVS} encryptions`, () => {
    const ivs = new Set<string>();
    for (let i = 0; i < IVS; i++) ivs.add(seal(keyring, sessionItemKey('u'), 'token').ct.split('.')[0]!);
    expect(ivs.size).toBe(IVS);
  });
});

describe('expired-but-present items are absent to every read and conditional write', () => {
  const put = (item: Record<string, AttributeValue>) => t.client.send(new PutItemCommand({ TableName: t.table, Item: item }));
  const store = () => new DynamoStore(t.client, t.table);

  test('sessions: getSession and getSessionAndCall skip an expired session; /token mints afresh; /voice and /hangup get 409', async () => {
    const c = newCaller();
    const sealed = seal(keyring, sessionItemKey(c.userId), 'old-token');
    await put({ pk: { S: `USER#${c.userId}` }, sk: { S: 'SESSION' }, kv: { S: sealed.kv }, ct: { S: sealed.ct }, issuedAt: { N: String(NOW - 7200) }, expiresAt: { N: String(NOW) } });
    const d = deps();

    expect(await store().getSession(c.userId, NOW)).toBeUndefined();
    expect((await store().getSessionAndCall(c.userId, `CA${'1'.repeat(32)}`, NOW)).session).toBeUndefined();
    await expect(placeCall(d, limits, c, '+14155550123', undefined)).rejects.toMatchObject({ status: 409 });
    await expect(hangUp(d, c, `CA${'1'.repeat(32)}`)).rejects.toMatchObject({ status: 409 });
    expect((await openSession(d, limits, c)).reused).toBe(false);
    expect(d.twilio.minted).toHaveLength(1);
  });

  test('calls: an expired call record is unknown (404) and its status is not updated', async () => {
    const d = deps();
    const c = newCaller();
    await openSession(d, limits, c);
    const sid = `CA${randomBytes(16).toString('hex')}`;
    await put({ pk: { S: `USER#${c.userId}` }, sk: { S: `CALL#${sid}` }, status: { S: 'queued' }, to: { S: '+1***' }, createdAt: { N: String(NOW - 90_000) }, expiresAt: { N: String(NOW) } });

    await expect(hangUp(d, c, sid)).rejects.toMatchObject({ status: 404 });
    expect(await store().advanceCallStatus(c.userId, sid, 'completed', NOW)).toEqual({ result: 'unknown' });

    expect(d.twilio.ended).toEqual([]);
    expect((await itemsOf(c.userId)).find((i) => i['sk']?.S === `CALL#${sid}`)?.['status']?.S).toBe('queued');
  });

  test('idempotency keys: a key whose call record expired (a day later) or whose claim went stale can be claimed again', async () => {
    const userId = randomUUID();
    const lim = { concurrentCalls: 100, callsPerDay: 1000, slotExpiresAt: NOW + 3600 };
    const done = { hash: 'e'.repeat(64), requestHash: 'h' };
    const pending = { hash: 'f'.repeat(64), requestHash: 'other' };
    // Claims made a day ago; the call made under `done` has an expired-but-present record.
    await put({ pk: { S: `USER#${userId}` }, sk: { S: 'CALLS' }, [`k${done.hash}`]: { M: { rh: { S: 'h' }, at: { N: String(NOW - 86_400) } } }, [`k${pending.hash}`]: { M: { rh: { S: 'other' }, at: { N: String(NOW - 86_400) } } }, expiresAt: { N: String(NOW + 60) } });
    await put({ pk: { S: `USER#${userId}` }, sk: { S: `CALL#CA${'2'.repeat(32)}` }, status: { S: 'completed' }, idem: { S: done.hash }, slot: { S: '' }, to: { S: '+1***' }, createdAt: { N: String(NOW - 86_400) }, expiresAt: { N: String(NOW) } });

    expect((await store().admitCall(userId, lim, NOW, done)).allowed).toBe(true);
    expect((await store().admitCall(userId, lim, NOW, pending)).allowed).toBe(true);
  });

  test('counters: an expired counter at its limit does not block its window', async () => {
    const window = NOW - (NOW % 60);
    await put({ pk: { S: 'LIMIT#expired-counter' }, sk: { S: `W#${window}` }, n: { N: '5' }, expiresAt: { N: String(NOW) } });

    // A window's counter outlives the window by 60 s, so an expired one can only belong to a past window; the
    // limiter's key includes the window, so the current window is never read from it.
    expect((await store().consume('expired-counter', 5, 60, window + 60)).allowed).toBe(true);
  });
});

describe('BOLA matrix: 5 users × 5 calls', () => {
  test('all 100 cross-user hangups get 404 with zero Twilio requests and zero writes; all 25 own hangups succeed', async () => {
    const d = deps();
    const users = Array.from({ length: 5 }, newCaller);
    const calls = new Map<string, string[]>();
    for (const u of users) {
      await openSession(d, limits, u);
      const sids: string[] = [];
      for (let i = 0; i < 5; i++) sids.push((await placeCall(d, limits, u, '+14155550123', undefined)).call.sid);
      calls.set(u.userId, sids);
    }
    const before = JSON.stringify(await scanAll());

    const cross: number[] = [];
    for (const intruder of users) {
      for (const owner of users) {
        if (owner === intruder) continue;
        for (const sid of calls.get(owner.userId)!) cross.push(await hangUp(d, intruder, sid).then(() => 200, (e: { status: number }) => e.status));
      }
    }

    expect(cross).toHaveLength(100);
    expect(cross.every((s) => s === 404)).toBe(true);
    expect(d.twilio.ended).toEqual([]);
    expect(JSON.stringify(await scanAll())).toBe(before);

    const own: string[] = [];
    for (const u of users) for (const sid of calls.get(u.userId)!) own.push((await hangUp(d, u, sid)).call.status);
    expect(own).toEqual(Array(25).fill('completed'));
    expect(d.twilio.ended).toHaveLength(25);
  }, 30_000);
});

describe('toll-fraud guard', () => {
  test.each([
    ['+19005550123', 'NANP 900 premium rate'],
    ['+19765550123', 'NANP 976 pay-per-call'],
    ['+449098790000', 'UK 09 premium rate'],
    ['+448712345678', 'UK 087 special rate'],
    ['+448451234567', 'UK 084 shared cost'],
    ['+447012345678', 'UK 070 personal numbering'],
    ['+870772001234', 'Inmarsat'],
    ['+881612345678', 'satellite (GMSS)'],
    ['+88234567890', 'international networks (882)'],
    ['+88312345678', 'international networks (883)'],
  ])('refuses %s (%s) with 403 even though its prefix is allowed, without asking Twilio', async (to) => {
    const d = deps();
    const c = newCaller();
    await openSession(d, limits, c);
    await expect(placeCall(d, limits, c, to, undefined)).rejects.toMatchObject({ status: 403, code: 'destination_not_allowed' });
    expect(d.twilio.created).toEqual([]);
  });

  test.each(['+33123456789', '+4915112345678', '+61212345678', '+7912345678'])('refuses %s outside the allowed prefixes with 403', async (to) => {
    const d = deps();
    const c = newCaller();
    await openSession(d, limits, c);
    await expect(placeCall(d, limits, c, to, undefined)).rejects.toMatchObject({ status: 403, code: 'destination_not_allowed' });
    expect(d.twilio.created).toEqual([]);
  });

  test('still places ordinary calls inside the allowed prefixes', async () => {
    const d = deps();
    const c = newCaller();
    await openSession(d, limits, c);
    for (const to of ['+14155550123', '+442079460000', '+18005550123']) await placeCall(d, limits, c, to, undefined);
    expect(d.twilio.created).toHaveLength(3);
  });

  test('every built-in blocked range is an E.164 prefix', () => {
    for (const p of BLOCKED_PREFIXES) expect(p).toMatch(/^\+[1-9]\d{1,6}$/);
  });
});

describe('faults map to the contract, issue nothing and leave a safe retry', () => {
  /** Any service behind the real handler chain: what the client would see. */
  function route<B>(schema: z.ZodType<B>, logic: (req: ApiRequest<B>) => Promise<unknown>) {
    const fn = apiHandler({ allowedOrigins: ['http://localhost:5173'], schema }, async (req) => ({ status: 200, body: await logic(req) }));
    return async (caller: Caller, body: unknown, headers: Record<string, string> = {}): Promise<APIGatewayProxyResult> => {
      const all = { 'Content-Type': 'application/json', ...headers };
      const event = proxyEvent({ method: 'POST', path: '/r', headers: all, body: JSON.stringify(body), sourceIp: caller.sourceIp, authorizer: { userId: caller.userId, sessionId: 's', exp: caller.exp } });
      return (await fn(event, { awsRequestId: randomUUID() } as Context)) as APIGatewayProxyResult;
    };
  }
  const token = (d: Deps) => route(z.object({}).strict(), ({ caller }) => openSession(d, limits, caller));
  const voice = (d: Deps) => route(z.object({ to: z.string() }).strict(), ({ caller, body, headers }) => placeCall(d, limits, caller, body.to, headers['idempotency-key']));
  const hangup = (d: Deps) => route(z.object({ callSid: z.string() }).strict(), ({ caller, body }) => hangUp(d, caller, body.callSid));
  const code = (r: APIGatewayProxyResult) => (JSON.parse(r.body) as { error?: { code: string } }).error?.code;

  describe('DynamoDB unreachable', () => {
    let dead: DynamoDBClient;
    beforeAll(() => {
      dead = new DynamoDBClient({ ...AWS_CLIENT_OPTIONS, endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    });
    afterAll(() => dead.destroy());

    test('every route answers 503 unavailable and Twilio is never asked', async () => {
      const d = deps({ store: new DynamoStore(dead, t.table) });
      const c = newCaller();
      const replies = [await token(d)(c, {}), await voice(d)(c, { to: '+14155550123' }), await hangup(d)(c, { callSid: `CA${'3'.repeat(32)}` })];
      expect(replies.map((r) => [r.statusCode, code(r)])).toEqual(Array(3).fill([503, 'unavailable']));
      expect([d.twilio.minted, d.twilio.created, d.twilio.ended]).toEqual([[], [], []]);
    });
  });

  describe('Secrets Manager unreachable or throttling', () => {
    const failing = (err: Error) => {
      const secrets = new CachedSecrets({ send: () => Promise.reject(err) } as unknown as Pick<SecretsManagerClient, 'send'>, 60_000);
      return { twilioCredentials: parsedSecret(secrets, 'twilio', parseTwilioCredentials), keyring: parsedSecret(secrets, 'keys', parseKeyring) };
    };
    test.each([
      ['unreachable', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:443'), { name: 'Error' })],
      ['throttling', Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' })],
    ])('%s: /token answers 503, nothing minted, nothing stored', async (_name, err) => {
      const d = deps(failing(err));
      const c = newCaller();
      const r = await token(d)(c, {});
      expect([r.statusCode, code(r)]).toEqual([503, 'unavailable']);
      expect(r.body).not.toMatch(/ECONNREFUSED|Throttling|Rate exceeded/);
      expect(d.twilio.minted).toEqual([]);
      expect(await itemsOf(c.userId)).toEqual([]);
    });
  });

  describe('Twilio failures (the real adapter against the loopback stand-in)', () => {
    let standIn: TwilioStandIn;
    let base: string;
    beforeAll(async () => {
      standIn = twilioStandIn(creds);
      base = `http://127.0.0.1:${await listen(standIn.server, 0)}`;
    });
    afterAll(() => close(standIn.server));

    const rest = () => new TwilioRest(base, 500, mintAccessToken);
    /** A voice session for a fresh user, with the real Twilio adapter. */
    async function ready() {
      const d = deps({ twilio: rest() });
      const c = newCaller();
      await openSession(d, limits, c);
      return { d, c };
    }
    const callRecords = async (userId: string) => (await itemsOf(userId)).filter((i) => i['sk']?.S?.startsWith('CALL#'));

    test.each([
      ['Twilio 5xx', { status: 500, code: 20500 }, 502, 'upstream_error'],
      ['Twilio 20003 (bad credentials)', { status: 401, code: 20003 }, 502, 'upstream_error'],
      ['Twilio 21211 (invalid To)', { status: 400, code: 21211 }, 400, 'invalid_request'],
    ])('%s on /voice: %s, no call record, and a retry with the same Idempotency-Key places exactly one call', async (_name, failure, status, errorCode) => {
      const { d, c } = await ready();
      const key = `retry-${randomUUID()}`;
      const callsBefore = standIn.calls.size;
      standIn.failNext(1, failure);

      const failed = await voice(d)(c, { to: '+14155550123' }, { 'Idempotency-Key': key });
      expect([failed.statusCode, code(failed)]).toEqual([status, errorCode]);
      expect(await callRecords(c.userId)).toEqual([]);

      const retried = await voice(d)(c, { to: '+14155550123' }, { 'Idempotency-Key': key });
      const again = await voice(d)(c, { to: '+14155550123' }, { 'Idempotency-Key': key });
      expect(retried.statusCode).toBe(200);
      const callOf = (r: APIGatewayProxyResult) => (JSON.parse(r.body) as { call: unknown }).call;
      expect(callOf(again)).toEqual(callOf(retried));
      expect(standIn.calls.size - callsBefore).toBe(1);
      expect(await callRecords(c.userId)).toHaveLength(1);
    }, 20_000);

    test.each([
      ['the request never reached Twilio', 'timeout' as const, 0],
      ['Twilio placed the call but its answer was lost', 'lost-answer' as const, 1],
    ])('a Twilio timeout on /voice (%s): 502, no record, and the same Idempotency-Key never dials again; a new key does', async (_name, failure, placedByFirst) => {
      const { d, c } = await ready();
      const key = `retry-${randomUUID()}`;
      const callsBefore = standIn.calls.size;
      standIn.failNext(1, failure);

      const failed = await voice(d)(c, { to: '+14155550123' }, { 'Idempotency-Key': key });
      expect([failed.statusCode, code(failed)]).toEqual([502, 'upstream_error']);
      expect(await callRecords(c.userId)).toEqual([]);
      expect(standIn.calls.size - callsBefore).toBe(placedByFirst);

      // Whether or not Twilio placed it, a retry with the same key answers the same failure and dials nothing.
      for (let i = 0; i < 3; i++) {
        const retried = await voice(d)(c, { to: '+14155550123' }, { 'Idempotency-Key': key });
        expect([retried.statusCode, code(retried)]).toEqual([502, 'upstream_error']);
      }
      expect(standIn.calls.size - callsBefore).toBe(placedByFirst);

      // A new key is a new intent: exactly one more call.
      const fresh = await voice(d)(c, { to: '+14155550123' }, { 'Idempotency-Key': `fresh-${randomUUID()}` });
      expect(fresh.statusCode).toBe(200);
      expect(standIn.calls.size - callsBefore).toBe(placedByFirst + 1);
      expect(await callRecords(c.userId)).toHaveLength(1);
    }, 20_000);

    test.each([
      ['Twilio 5xx', { status: 500, code: 20500 }],
      ['a Twilio timeout', 'timeout' as const],
    ])('%s on /hangup after the call was recorded: 502, the record stays live, and a retry ends the call', async (_name, failure) => {
      const { d, c } = await ready();
      const placed = await voice(d)(c, { to: '+14155550123' });
      const sid = (JSON.parse(placed.body) as { call: { sid: string } }).call.sid;
      standIn.failNext(1, failure);

      const failed = await hangup(d)(c, { callSid: sid });
      expect([failed.statusCode, code(failed)]).toEqual([502, 'upstream_error']);
      expect((await callRecords(c.userId))[0]?.['status']?.S).toBe('queued');

      const retried = await hangup(d)(c, { callSid: sid });
      expect(retried.statusCode).toBe(200);
      expect(standIn.calls.get(sid)?.status).toBe('completed');
      // Its live-call slot is free (its record moves when Twilio's `completed` callback arrives), so a
      // third hangup is answered without asking Twilio again.
      expect((await d.store.getSessionAndCall(c.userId, sid, Math.floor(d.now() / 1000))).call?.live).toBe(false);
      const requestsBefore = standIn.requests.length;
      expect((await hangup(d)(c, { callSid: sid })).statusCode).toBe(200);
      expect(standIn.requests.length).toBe(requestsBefore);
    }, 20_000);

    test('a call placed but not recordable is ended at Twilio, not left dangling, and the client gets 503', async () => {
      const { d, c } = await ready();
      const store = Object.assign(Object.create(d.store) as Store, { putCall: () => Promise.reject(new Error('DynamoDB down')) });
      const r = await voice({ ...d, store })(c, { to: '+14155550123' });
      expect(r.statusCode).toBe(503);
      const last = [...standIn.calls.values()].pop();
      expect(last?.status).toBe('completed');
    });
  });
});
