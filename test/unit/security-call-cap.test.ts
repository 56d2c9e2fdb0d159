import { randomBytes, randomUUID } from 'node:crypto';
import { type DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import fc from 'fast-check';
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks';
import { z } from 'zod';
import { hangUp } from '../../lambdas/hangup/service';
import type { Deps } from '../../lambdas/shared/deps';
import { UpstreamError } from '../../lambdas/shared/errors';
import { type Caller, apiHandler } from '../../lambdas/shared/http';
import { type CallStatus, DynamoStore } from '../../lambdas/shared/store';
import { type TwilioPort, callbackUrlFor, mapTwilioError } from '../../lambdas/shared/twilio';
import { recordCallStatus } from '../../lambdas/status/service';
import { openSession } from '../../lambdas/token/service';
import { SLOT_SLACK_SECONDS, type VoiceLimits, placeCall } from '../../lambdas/voice/service';
import { type TestTable, startTable } from '../support/dynalite';
import { FULL_SCALE, scale } from '../support/scale';
import { proxyEvent, testKeyring, testTwilioCredentials } from '../support/fixtures';

/**
 * The concurrent-call cap is exact: of M concurrent /voice requests for one user with K allowed, exactly K place a
 * call and M-K get 429 `rate_limited` with Retry-After, over repeated runs on dynalite and over fast-check's
 * scheduled interleavings of admissions and releases. A call that ends (status callback or /hangup) frees its slot
 * at once; a slot whose expiry passed stops counting; the daily quota wins when lower; a Twilio failure frees the
 * slot, a Twilio timeout (the call may exist) keeps it.
 */

const K = 5;
const M = 50;
const RUNS = scale(3, 20);
const INTERLEAVINGS = scale(30, 200);
const SEED = FULL_SCALE ? undefined : 20261203;
const STATUS_URL = 'https://api.example.com/prod/api/twilio/status';
/** A fixed clock well inside one UTC day, so no daily window rolls over while a test moves it. */
const DAY = Math.floor(Date.now() / 86_400_000) * 86_400;
const T0 = DAY + 3600;

const creds = testTwilioCredentials();
const keyring = testKeyring();
const tokenLimits = { tokenTtlSeconds: 86_400, ipTokenLimitPerMinute: 1_000_000, userTokenQuotaPerDay: 1000 };
const voiceLimits: VoiceLimits = { userCallQuotaPerDay: 1000, dialPrefixes: ['+1'], concurrentCallLimit: K, maxCallSeconds: 600, statusCallbackUrl: STATUS_URL };
const statusConfig = { statusCallbackUrl: STATUS_URL, statusLimitPerIpPerMinute: 1_000_000 };

/** Counts the calls it places; the next createCall can be made to fail. */
class CountingTwilio implements TwilioPort {
  created = 0;
  failNext: Error | undefined;
  mintAccessToken(): string {
    return `tok-${randomBytes(8).toString('hex')}`;
  }
  async createCall() {
    const fail = this.failNext;
    this.failNext = undefined;
    if (fail) throw fail;
    this.created++;
    return { sid: `CA${randomBytes(16).toString('hex')}`, status: 'queued' as const };
  }
  async endCall() {
    return 'completed' as const;
  }
}

let t: TestTable;
beforeAll(async () => {
  t = await startTable();
});
afterAll(() => t.stop());

/** Deps over the real store on dynalite, with a clock the test moves (epoch seconds). */
function deps() {
  const clock = { now: T0 };
  const d: Deps & { twilio: CountingTwilio } = { store: new DynamoStore(t.client, t.table), twilio: new CountingTwilio(), twilioCredentials: async () => creds, keyring: async () => keyring, now: () => clock.now * 1000 };
  return { d, clock };
}

const newCaller = (): Caller => ({ userId: randomUUID(), sessionId: 's', exp: T0 + 86_400, sourceIp: '203.0.113.30' });

async function withSession(d: Deps): Promise<Caller> {
  const c = newCaller();
  await openSession(d, tokenLimits, c);
  return c;
}

async function liveSlots(userId: string): Promise<string[]> {
  const out = await t.client.send(new GetItemCommand({ TableName: t.table, Key: { pk: { S: `USER#${userId}` }, sk: { S: 'CALLS' } }, ConsistentRead: true }));
  return out.Item?.['live']?.SS ?? [];
}

/** The /voice route's handler chain over the given deps: status and headers as API Gateway would return them. */
function voiceRoute(d: Deps, limits: VoiceLimits = voiceLimits) {
  const fn = apiHandler({ allowedOrigins: ['http://localhost:5173'], schema: z.object({ to: z.string() }).strict() }, async ({ body, caller }) => ({
    status: 201,
    body: { call: (await placeCall(d, limits, caller, body.to, undefined)).call },
  }));
  return async (c: Caller): Promise<APIGatewayProxyResult> => {
    const event = proxyEvent({ method: 'POST', path: '/api/twilio/voice', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: '+14155550123' }), sourceIp: c.sourceIp, authorizer: { userId: c.userId, sessionId: c.sessionId, exp: Math.floor(Date.now() / 1000) + 3600 } });
    return (await fn(event, { awsRequestId: randomUUID() } as Context)) as APIGatewayProxyResult;
  };
}

/** What `placeCall` threw: the contract status, code and the limiter behind a 429. */
const refusal = (p: Promise<unknown>) => p.then(() => 'placed', (e: { status: number; code: string; reason: string; retryAfter?: number }) => ({ status: e.status, code: e.code, reason: e.reason, retryAfter: e.retryAfter }));

/** Twilio's signed `completed` callback for one call. */
function completedCallback(userId: string, callSid: string) {
  const params: [string, string][] = [
    ['AccountSid', creds.accountSid],
    ['CallSid', callSid],
    ['CallStatus', 'completed'],
  ];
  const signature = getExpectedTwilioSignature(creds.authToken, callbackUrlFor(STATUS_URL, userId), Object.fromEntries(params));
  return { params, query: { u: userId }, signature, signatureSettings: undefined, sourceIp: '203.0.113.40' };
}

describe(`cap K=${K}, M=${M} concurrent /voice requests for one user, ${RUNS} runs on dynalite`, () => {
  test('exactly K calls are placed and M-K get 429 rate_limited with Retry-After, in every run', async () => {
    const summary: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const { d } = deps();
      const c = await withSession(d);
      const route = voiceRoute(d);

      const replies = await Promise.all(Array.from({ length: M }, () => route(c)));

      const placed = replies.filter((r) => r.statusCode === 201);
      const limited = replies.filter((r) => r.statusCode === 429);
      summary.push(`${placed.length}/${limited.length}`);
      expect(placed).toHaveLength(K);
      expect(limited).toHaveLength(M - K);
      for (const r of limited) {
        expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'rate_limited' } });
        expect(Number(r.headers?.['Retry-After'])).toBeGreaterThanOrEqual(1);
      }
      expect(d.twilio.created).toBe(K);
      expect(await liveSlots(c.userId)).toHaveLength(K);
    }
    if (FULL_SCALE) console.info(`concurrent-call cap runs (placed/429): ${summary.join(' ')}`);
  }, 180_000);

  test('the refusals are the concurrent-call limiter, not the daily quota', async () => {
    const { d } = deps();
    const c = await withSession(d);

    const outcomes = await Promise.all(Array.from({ length: M }, () => refusal(placeCall(d, voiceLimits, c, '+14155550123', undefined))));

    expect(outcomes.filter((o) => o === 'placed')).toHaveLength(K);
    const refused = outcomes.filter((o) => o !== 'placed');
    expect(refused).toHaveLength(M - K);
    for (const o of refused) expect(o).toMatchObject({ status: 429, code: 'rate_limited', reason: 'concurrent_calls', retryAfter: expect.any(Number) });
    expect(refused.every((o) => typeof o === 'object' && (o.retryAfter ?? 0) >= 1)).toBe(true);
  }, 60_000);
});

describe('scheduled interleavings of admissions and releases (fast-check scheduler over the real store)', () => {
  const scheduledClient = (s: fc.Scheduler): Pick<DynamoDBClient, 'send'> => ({
    send: ((cmd: Parameters<DynamoDBClient['send']>[0]) =>
      s
        .schedule(Promise.resolve(), 'dispatch')
        .then(() => t.client.send(cmd))
        .then((out) => s.schedule(Promise.resolve(out), 'answer'))) as DynamoDBClient['send'],
  });
  const scenario = fc
    .record({ cap: fc.integer({ min: 1, max: 6 }), pre: fc.nat(), admits: fc.integer({ min: 1, max: 12 }), releases: fc.nat() })
    .map(({ cap, pre, admits, releases }) => {
      const held = pre % (cap + 1);
      return { cap, held, admits, releases: releases % (held + 1) };
    });

  test(`never more than the cap live, no slot lost, and no admission refused while room was left, in ${INTERLEAVINGS} interleavings`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), scenario, async (s, { cap, held, admits, releases }) => {
        const plain = new DynamoStore(t.client, t.table);
        const userId = randomUUID();
        const limits = { concurrentCalls: cap, callsPerDay: 1000, slotExpiresAt: T0 + 600 };
        const before: string[] = [];
        for (let i = 0; i < held; i++) {
          const r = await plain.admitCall(userId, limits, T0);
          if (!r.allowed) throw new Error('setup not admitted');
          before.push(r.slot);
        }
        const store = new DynamoStore(scheduledClient(s), t.table);
        const released = before.slice(0, releases);

        const results = await s.waitFor(
          Promise.all([...Array.from({ length: admits }, () => store.admitCall(userId, limits, T0)), ...released.map((slot) => store.releaseCallSlot(userId, slot).then(() => undefined))]),
        );

        const admitted = results.filter((r) => r?.allowed).map((r) => (r as { slot: string }).slot);
        const refused = results.filter((r) => r && !r.allowed);
        const live = await liveSlots(userId);
        expect(new Set(live)).toEqual(new Set([...before.slice(releases), ...admitted]));
        expect(live.length).toBeLessThanOrEqual(cap);
        // A refusal means the cap was reached at that moment: at least the room free at the start was taken.
        if (refused.length > 0) expect(admitted.length).toBeGreaterThanOrEqual(cap - held);
        else expect(admitted).toHaveLength(admits);
        for (const r of refused) expect(r).toMatchObject({ allowed: false, limiter: 'concurrent_calls' });
        const calls = await t.client.send(new GetItemCommand({ TableName: t.table, Key: { pk: { S: `USER#${userId}` }, sk: { S: 'CALLS' } }, ConsistentRead: true }));
        // Refused admissions do not count against the daily quota.
        expect(Number(calls.Item?.[`d${DAY}`]?.N)).toBe(held + admitted.length);
      }),
      { numRuns: INTERLEAVINGS, seed: SEED },
    );
  }, 180_000);

  test('would catch an admission that reads the live slots, then writes (negative control)', async () => {
    /** Counts the live slots, then adds one: the race the single conditional UpdateItem closes. */
    class ReadThenWrite extends DynamoStore {
      override async admitCall(userId: string, limits: { concurrentCalls: number; slotExpiresAt: number }) {
        const Key = { pk: { S: `USER#${userId}` }, sk: { S: 'CALLS' } };
        const got = await this.send(new GetItemCommand({ TableName: t.table, Key, ConsistentRead: true }));
        if ((got.Item?.['live']?.SS ?? []).length >= limits.concurrentCalls) return { allowed: false as const, limiter: 'concurrent_calls' as const, retryAfter: 5 };
        const slot = `${randomBytes(9).toString('base64url')}:${limits.slotExpiresAt}`;
        await this.send(new UpdateItemCommand({ TableName: t.table, Key, UpdateExpression: 'ADD #live :s', ExpressionAttributeNames: { '#live': 'live' }, ExpressionAttributeValues: { ':s': { SS: [slot] } } }));
        return { allowed: true as const, slot };
      }
      constructor(private readonly send: DynamoDBClient['send']) {
        super({ send }, t.table);
      }
    }
    const result = await fc.check(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 10 }), async (s, cap, admits) => {
        const store = new ReadThenWrite(scheduledClient(s).send);
        const userId = randomUUID();
        await s.waitFor(Promise.all(Array.from({ length: admits }, () => store.admitCall(userId, { concurrentCalls: cap, slotExpiresAt: T0 + 600 }))));
        return (await liveSlots(userId)).length <= cap;
      }),
      { numRuns: 100, seed: 20261203 },
    );
    expect(result.failed).toBe(true);
  }, 120_000);
});

describe('what frees a slot, and what does not', () => {
  const capped = { ...voiceLimits, concurrentCallLimit: 2 };
  const place = (d: Deps, c: Caller, limits: VoiceLimits = capped) => placeCall(d, limits, c, '+14155550123', undefined);

  async function full() {
    const { d, clock } = deps();
    const c = await withSession(d);
    const calls = [await place(d, c), await place(d, c)];
    await expect(place(d, c)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
    return { d, clock, c, calls };
  }

  test('a completed status callback frees the slot at once: the next call is admitted', async () => {
    const { d, c, calls } = await full();

    await recordCallStatus(d, statusConfig, completedCallback(c.userId, calls[0]!.call.sid));

    await expect(place(d, c)).resolves.toMatchObject({ replayed: false });
    await expect(place(d, c)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
  });

  test.each<CallStatus>(['busy', 'failed', 'no-answer', 'canceled'])('a %s status callback frees the slot too', async (status) => {
    const { d, c, calls } = await full();
    const cb = completedCallback(c.userId, calls[1]!.call.sid);
    const params: [string, string][] = cb.params.map(([k, v]) => (k === 'CallStatus' ? [k, status] : [k, v]));
    const signature = getExpectedTwilioSignature(creds.authToken, callbackUrlFor(STATUS_URL, c.userId), Object.fromEntries(params));

    await recordCallStatus(d, statusConfig, { ...cb, params, signature });

    await expect(place(d, c)).resolves.toMatchObject({ replayed: false });
  });

  test('an in-progress status callback does not free the slot', async () => {
    const { d, c, calls } = await full();
    const cb = completedCallback(c.userId, calls[0]!.call.sid);
    const params: [string, string][] = cb.params.map(([k, v]) => (k === 'CallStatus' ? [k, 'in-progress'] : [k, v]));
    const signature = getExpectedTwilioSignature(creds.authToken, callbackUrlFor(STATUS_URL, c.userId), Object.fromEntries(params));

    await recordCallStatus(d, statusConfig, { ...cb, params, signature });

    await expect(place(d, c)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
  });

  test('/hangup frees the slot at once: the next call is admitted', async () => {
    const { d, c, calls } = await full();

    await hangUp(d, c, calls[1]!.call.sid);

    await expect(place(d, c)).resolves.toMatchObject({ replayed: false });
    await expect(place(d, c)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
  });

  test('a slot whose expiry passed stops counting, without any callback', async () => {
    const { d, clock, c } = await full();
    const expiry = T0 + capped.maxCallSeconds + SLOT_SLACK_SECONDS;

    clock.now = expiry - 1;
    await expect(place(d, c)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
    clock.now = expiry;
    await expect(place(d, c)).resolves.toMatchObject({ replayed: false });
    await expect(place(d, c)).resolves.toMatchObject({ replayed: false });
    await expect(place(d, c)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
    expect(await liveSlots(c.userId)).toHaveLength(2);
  });

  test('the daily quota wins when lower than the cap (user_call_quota), also after calls end', async () => {
    const { d } = deps();
    const c = await withSession(d);
    const limits = { ...voiceLimits, concurrentCallLimit: 5, userCallQuotaPerDay: 3 };

    const outcomes = await Promise.all(Array.from({ length: 10 }, () => refusal(place(d, c, limits))));

    expect(outcomes.filter((o) => o === 'placed')).toHaveLength(3);
    const refused = outcomes.filter((o) => o !== 'placed');
    expect(refused).toHaveLength(7);
    for (const o of refused) expect(o).toMatchObject({ status: 429, reason: 'user_call_quota' });
    expect(refused.every((o) => typeof o === 'object' && (o.retryAfter ?? 0) >= 1 && (o.retryAfter ?? 0) <= 86_400)).toBe(true);
    expect(d.twilio.created).toBe(3);

    for (const slot of await liveSlots(c.userId)) await d.store.releaseCallSlot(c.userId, slot);
    await expect(place(d, c, limits)).rejects.toMatchObject({ status: 429, reason: 'user_call_quota' });
  });

  test('a failed Twilio create (5xx) frees the slot', async () => {
    const { d, c } = await full();
    await d.store.releaseCallSlot(c.userId, (await liveSlots(c.userId))[0]!);
    d.twilio.failNext = new UpstreamError({ reason: 'twilio_create_20500' });

    await expect(place(d, c)).rejects.toMatchObject({ status: 502 });

    expect(await liveSlots(c.userId)).toHaveLength(1);
    await expect(place(d, c)).resolves.toMatchObject({ replayed: false });
  });

  test('a Twilio timeout keeps the slot (the call may exist)', async () => {
    const { d, c } = await full();
    await d.store.releaseCallSlot(c.userId, (await liveSlots(c.userId))[0]!);
    d.twilio.failNext = mapTwilioError(Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError', code: 'ETIMEDOUT' }), 'create');

    await expect(place(d, c)).rejects.toMatchObject({ status: 502 });

    expect(await liveSlots(c.userId)).toHaveLength(2);
    await expect(place(d, c)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
  });
});
