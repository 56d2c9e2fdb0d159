import { randomBytes, randomUUID } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { hangUp } from '../../lambdas/hangup/service';
import type { Deps } from '../../lambdas/shared/deps';
import { ApiError, InvalidRequestError, UpstreamError } from '../../lambdas/shared/errors';
import type { Caller } from '../../lambdas/shared/http';
import { DynamoStore, type Store } from '../../lambdas/shared/store';
import type { TwilioCredentials, TwilioPort } from '../../lambdas/shared/twilio';
import { openSession } from '../../lambdas/token/service';
import { placeCall } from '../../lambdas/voice/service';
import { type TestTable, startTable } from '../support/dynalite';
import { testKeyring, testTwilioCredentials } from '../support/fixtures';

/** A small fake of the Twilio port: records what it was asked, fails when told to. */
class FakeTwilio implements TwilioPort {
  minted: string[] = [];
  created: string[] = [];
  ended: string[] = [];
  failCreate: Error | undefined;
  mintAccessToken(_c: TwilioCredentials, identity: string, ttl: number): string {
    const token = `tok-${identity}-${ttl}-${randomBytes(8).toString('hex')}`;
    this.minted.push(token);
    return token;
  }
  async createCall(_c: TwilioCredentials, to: string) {
    if (this.failCreate) throw this.failCreate;
    this.created.push(to);
    return { sid: `CA${randomBytes(16).toString('hex')}`, status: 'queued' as const };
  }
  async endCall(_c: TwilioCredentials, sid: string) {
    this.ended.push(sid);
    return 'completed' as const;
  }
}

const creds = testTwilioCredentials();
const keyring = testKeyring();
const limits = { tokenTtlSeconds: 3600, ipTokenLimitPerMinute: 5, userTokenQuotaPerDay: 3, userCallQuotaPerDay: 3, dialPrefixes: ['+1', '+44'], concurrentCallLimit: 10, maxCallSeconds: 3600, statusCallbackUrl: 'https://api.example.com/prod/api/twilio/status' };

let t: TestTable;
const clock = 1_800_000_000_000;
beforeAll(async () => {
  t = await startTable();
});
afterAll(() => t.stop());

function deps(overrides: Partial<Deps> = {}): Deps & { twilio: FakeTwilio } {
  return {
    store: new DynamoStore(t.client, t.table),
    twilio: new FakeTwilio(),
    twilioCredentials: async () => creds,
    keyring: async () => keyring,
    now: () => clock,
    ...overrides,
  } as Deps & { twilio: FakeTwilio };
}
const caller = (ip = `10.0.0.${Math.floor(Math.random() * 250)}`): Caller => ({ userId: randomUUID(), sessionId: 's', exp: clock / 1000 + 3600, sourceIp: ip });

async function rawItems(): Promise<string> {
  const out = await t.client.send(new ScanCommand({ TableName: t.table }));
  return JSON.stringify(out.Items);
}

describe('token service', () => {
  test('opens a session, stores the token encrypted and never returns it', async () => {
    const d = deps();
    const c = caller();
    const res = await openSession(d, limits, c);
    expect(res).toEqual({ session: { status: 'active', expiresAt: new Date(clock + 3600_000).toISOString() }, reused: false });
    expect(JSON.stringify(res)).not.toContain(d.twilio.minted[0]!);
    const raw = await rawItems();
    const token = d.twilio.minted[0]!;
    for (const form of [token, Buffer.from(token).toString('base64'), Buffer.from(token).toString('base64url'), Buffer.from(token).toString('hex')]) {
      expect(raw).not.toContain(form);
    }
  });

  test('reuses an unexpired session instead of storing a new token', async () => {
    const d = deps();
    const c = caller();
    const first = await openSession(d, limits, c);
    const stored = await d.store.getSession(c.userId, Math.floor(clock / 1000));
    const again = await openSession(d, limits, c);
    expect(again).toEqual({ session: first.session, reused: true });
    // The speculative token of the second request was never stored: the first one still is.
    expect(await d.store.getSession(c.userId, Math.floor(clock / 1000))).toEqual(stored);
  });

  test('mints a new token when the stored one is close to expiry', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    const later = deps({ now: () => clock + (3600 - 200) * 1000 });
    expect((await openSession(later, limits, c)).reused).toBe(false);
  });

  test('rejects the sixth request from one IP within a minute with a retry time', async () => {
    const d = deps();
    const ip = '192.0.2.77';
    for (let i = 0; i < 5; i++) await openSession(d, limits, caller(ip));
    await expect(openSession(d, limits, caller(ip))).rejects.toMatchObject({ code: 'rate_limited', status: 429 });
  });

  test('rejects minting beyond the per-user daily quota', async () => {
    const c = caller();
    for (let i = 0; i < 3; i++) {
      // Each mint is forced by a clock far enough ahead that the previous session is near expiry.
      await openSession(deps({ now: () => clock + i * 3500_000 }), limits, { ...c, sourceIp: `198.51.100.${i}` });
    }
    await expect(openSession(deps({ now: () => clock + 3 * 3500_000 }), limits, { ...c, sourceIp: '198.51.100.9' })).rejects.toMatchObject({ code: 'rate_limited' });
  });
});

describe('voice service', () => {
  test('rejects a call without an active voice session with 409', async () => {
    await expect(placeCall(deps(), limits, caller(), '+14155550123', undefined)).rejects.toMatchObject({ code: 'no_voice_session', status: 409 });
  });

  test('rejects destinations outside the dialling prefixes with 403', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    await expect(placeCall(d, limits, c, '+9005550123', undefined)).rejects.toMatchObject({ code: 'destination_not_allowed', status: 403 });
    expect(d.twilio.created).toHaveLength(0);
  });

  test('places a call and records that the caller owns it', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    const { call } = await placeCall(d, limits, c, '+14155550123', undefined);
    expect(call).toEqual({ sid: expect.stringMatching(/^CA[0-9a-f]{32}$/), status: 'queued' });
    expect((await d.store.getSessionAndCall(c.userId, call.sid, clock / 1000)).call?.userId).toBe(c.userId);
  });

  test('returns the same call for a retried Idempotency-Key instead of dialling twice', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    const first = await placeCall(d, limits, c, '+14155550123', 'retry-key-0001');
    const second = await placeCall(d, limits, c, '+14155550123', 'retry-key-0001');
    expect(second.call.sid).toBe(first.call.sid);
    expect(second.replayed).toBe(true);
    expect(d.twilio.created).toHaveLength(1);
  });

  test('a replay of an Idempotency-Key shows the call as it stands now, not as it was placed', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    const first = await placeCall(d, limits, c, '+14155550123', 'retry-key-0002');
    await d.store.advanceCallStatus(c.userId, first.call.sid, 'busy', clock / 1000);
    expect((await placeCall(d, limits, c, '+14155550123', 'retry-key-0002')).call).toEqual({ sid: first.call.sid, status: 'busy' });
    expect(d.twilio.created).toHaveLength(1);
  });

  test('rejects an Idempotency-Key reused for another destination', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    await placeCall(d, limits, c, '+14155550123', 'retry-key-0002');
    await expect(placeCall(d, limits, c, '+14155550124', 'retry-key-0002')).rejects.toBeInstanceOf(InvalidRequestError);
  });

  test('leaves no call record and a reusable key when Twilio fails, so a retry is safe', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    d.twilio.failCreate = new UpstreamError({ reason: 'twilio_create_500' });
    await expect(placeCall(d, limits, c, '+14155550123', 'retry-key-0003')).rejects.toMatchObject({ status: 502 });
    d.twilio.failCreate = undefined;
    const retried = await placeCall(d, limits, c, '+14155550123', 'retry-key-0003');
    expect(retried.replayed).toBe(false);
    expect(d.twilio.created).toHaveLength(1);
  });

  test('ends the call at Twilio when its record cannot be written, and fails closed', async () => {
    const base = deps();
    const c = caller();
    await openSession(base, limits, c);
    const failing: Store = Object.assign(Object.create(base.store) as Store, {
      putCall: async () => {
        throw new ApiError('unavailable');
      },
    });
    const d = deps({ store: failing, twilio: base.twilio });
    await expect(placeCall(d, limits, c, '+14155550123', undefined)).rejects.toMatchObject({ status: 503 });
    expect(base.twilio.ended).toHaveLength(1);
  });

  test('rejects calls beyond the per-user daily quota', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    for (let i = 0; i < 3; i++) await placeCall(d, limits, c, '+14155550123', undefined);
    await expect(placeCall(d, limits, c, '+14155550123', undefined)).rejects.toMatchObject({ code: 'rate_limited' });
  });
});

describe('hangup service', () => {
  test('ends an own call through Twilio and reports completed', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    const { call } = await placeCall(d, limits, c, '+14155550123', undefined);
    expect(await hangUp(d, c, call.sid)).toEqual({ call: { sid: call.sid, status: 'completed' }, twilioCalled: true });
  });

  test('reports an already-ended call as completed without calling Twilio', async () => {
    const d = deps();
    const c = caller();
    await openSession(d, limits, c);
    const { call } = await placeCall(d, limits, c, '+14155550123', undefined);
    await hangUp(d, c, call.sid);
    const again = await hangUp(d, c, call.sid);
    expect(again.twilioCalled).toBe(false);
    expect(d.twilio.ended).toHaveLength(1);
  });

  test('rejects hanging up another user’s call exactly like an unknown one, without touching Twilio', async () => {
    const d = deps();
    const owner = caller();
    const intruder = caller();
    await openSession(d, limits, owner);
    await openSession(d, limits, intruder);
    const { call } = await placeCall(d, limits, owner, '+14155550123', undefined);
    const before = await rawItems();
    const foreign = await hangUp(d, intruder, call.sid).catch((e: unknown) => e as ApiError);
    const unknown = await hangUp(d, intruder, `CA${'f'.repeat(32)}`).catch((e: unknown) => e as ApiError);
    expect(foreign).toMatchObject({ code: 'call_not_found', status: 404, message: (unknown as ApiError).message });
    expect(d.twilio.ended).toHaveLength(0);
    expect(await rawItems()).toBe(before);
  });

  test('rejects a hangup without a voice session with 409', async () => {
    await expect(hangUp(deps(), caller(), `CA${'a'.repeat(32)}`)).rejects.toMatchObject({ code: 'no_voice_session' });
  });
});
