import { randomBytes, randomUUID } from 'node:crypto';
import type { Deps } from '../../lambdas/shared/deps';
import type { Caller } from '../../lambdas/shared/http';
import { type CallStatus, DynamoStore } from '../../lambdas/shared/store';
import type { TwilioCredentials, TwilioPort } from '../../lambdas/shared/twilio';
import { openSession } from '../../lambdas/token/service';
import { placeCall, readCall } from '../../lambdas/voice/service';
import { type TestTable, startTable } from '../support/dynalite';
import { testKeyring, testTwilioCredentials } from '../support/fixtures';

/**
 * A call whose end Twilio never reported (the callback was lost, refused or throttled) must not keep its user
 * at the concurrent-call cap until the slot expires: meeting the cap asks Twilio about the user's live calls.
 */

const creds = testTwilioCredentials();
const keyring = testKeyring();
const limits = { tokenTtlSeconds: 3600, ipTokenLimitPerMinute: 1000, userTokenQuotaPerDay: 1000, userCallQuotaPerDay: 1000, dialPrefixes: ['+1'], concurrentCallLimit: 1, maxCallSeconds: 3600, statusCallbackUrl: 'https://api.example.com/prod/api/twilio/status' };
const START = 1_800_000_000_000;

/** Twilio as seen by the service; `atTwilio` says how each call stands there, whatever our records say. */
class Twilio implements TwilioPort {
  atTwilio = new Map<string, CallStatus>();
  fetched: string[] = [];
  fail = false;
  mintAccessToken = () => `tok.${randomBytes(8).toString('hex')}.sig`;
  async createCall() {
    const sid = `CA${randomBytes(16).toString('hex')}`;
    this.atTwilio.set(sid, 'in-progress');
    return { sid, status: 'queued' as const };
  }
  async endCall() {
    return 'completed' as const;
  }
  async fetchCallStatus(_c: TwilioCredentials, sid: string) {
    this.fetched.push(sid);
    if (this.fail) throw new Error('Twilio unreachable');
    return this.atTwilio.get(sid) ?? 'completed';
  }
}

let t: TestTable;
beforeAll(async () => {
  t = await startTable();
});
afterAll(() => t.stop());

function setup() {
  let clock = START;
  const twilio = new Twilio();
  const d: Deps = { store: new DynamoStore(t.client, t.table), twilio, twilioCredentials: async () => creds, keyring: async () => keyring, now: () => clock };
  const c: Caller = { userId: randomUUID(), sessionId: 's', exp: START / 1000 + 7200, sourceIp: '198.51.100.9' };
  return { d, c, twilio, advance: (ms: number) => (clock += ms) };
}
const call = (s: ReturnType<typeof setup>) => placeCall(s.d, limits, s.c, '+14155550123', undefined);

test('a call that ended at Twilio without a callback frees its slot when its user meets the cap', async () => {
  const s = setup();
  await openSession(s.d, limits, s.c);
  const first = await call(s);
  s.twilio.atTwilio.set(first.call.sid, 'completed'); // the far end hung up; the callback never came
  s.advance(60_000);

  const second = await call(s);

  expect(second.call.sid).not.toBe(first.call.sid);
  expect(s.twilio.fetched).toEqual([first.call.sid]);
  expect((await readCall(s.d, s.c, first.call.sid)).status).toBe('completed');
});

test('a call still live at Twilio keeps its slot: 429, and Twilio is asked at most once per 30 s', async () => {
  const s = setup();
  await openSession(s.d, limits, s.c);
  const first = await call(s);
  s.advance(60_000);

  await expect(call(s)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
  await expect(call(s)).rejects.toMatchObject({ status: 429 });
  expect(s.twilio.fetched).toEqual([first.call.sid]);
  s.advance(31_000);
  await expect(call(s)).rejects.toMatchObject({ status: 429 });
  expect(s.twilio.fetched).toEqual([first.call.sid, first.call.sid]);
});

test('a call younger than 30 s is not asked about (its callbacks may be on their way)', async () => {
  const s = setup();
  await openSession(s.d, limits, s.c);
  await call(s);
  s.advance(5_000);
  await expect(call(s)).rejects.toMatchObject({ status: 429 });
  expect(s.twilio.fetched).toEqual([]);
});

test('Twilio unreachable: the cap stays closed (429), nothing freed', async () => {
  const s = setup();
  await openSession(s.d, limits, s.c);
  const first = await call(s);
  s.twilio.atTwilio.set(first.call.sid, 'completed');
  s.twilio.fail = true;
  s.advance(60_000);
  await expect(call(s)).rejects.toMatchObject({ status: 429, reason: 'concurrent_calls' });
  expect((await readCall(s.d, s.c, first.call.sid)).status).toBe('queued');
});
