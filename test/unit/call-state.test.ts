import { randomBytes, randomUUID } from 'node:crypto';
import { type DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks';
import type { Deps } from '../../lambdas/shared/deps';
import { type AdvanceResult, type CallStatus, DynamoStore, ENDED_STATUSES, STATUS_RANK, type Store } from '../../lambdas/shared/store';
import { type TwilioPort, callbackUrlFor } from '../../lambdas/shared/twilio';
import { type StatusConfig, recordCallStatus } from '../../lambdas/status/service';
import { type TestTable, startTable } from '../support/dynalite';
import { FULL_SCALE, scale } from '../support/scale';
import { testKeyring, testTwilioCredentials } from '../support/fixtures';

/**
 * Call state: whatever order and however often Twilio delivers a call's status callbacks, sequentially or at
 * once, the record ends at the latest state of the call's life that was delivered (a late `ringing` never
 * overwrites `completed`), and the call's live slot is freed exactly when an end was delivered. Expired
 * records are never updated.
 */

const SEED = FULL_SCALE ? undefined : 20261203;
const RUNS = scale(40, 300);
const STATUS_URL = 'https://api.example.com/prod/api/twilio/status';
const NOW_MS = Date.now();
const NOW = Math.floor(NOW_MS / 1000);

const creds = testTwilioCredentials();
const keyring = testKeyring();
const config: StatusConfig = { statusCallbackUrl: STATUS_URL, statusLimitPerIpPerMinute: 1_000_000 };
const noTwilio: TwilioPort = {
  mintAccessToken: () => 'unused',
  createCall: () => Promise.reject(new Error('unused')),
  endCall: () => Promise.reject(new Error('unused')),
};

let t: TestTable;
beforeAll(async () => {
  t = await startTable();
});
afterAll(() => t.stop());

const deps = (store: Store = new DynamoStore(t.client, t.table)): Deps => ({ store, twilio: noTwilio, twilioCredentials: async () => creds, keyring: async () => keyring, now: () => NOW_MS });

/** A placed call: a record in `queued` holding a live slot, as `placeCall` leaves it. */
async function placedCall(expiresAt = NOW + 86_400) {
  const store = new DynamoStore(t.client, t.table);
  const userId = randomUUID();
  const admitted = await store.admitCall(userId, { concurrentCalls: 10, callsPerDay: 100, slotExpiresAt: NOW + 3600 }, NOW);
  if (!admitted.allowed) throw new Error('not admitted');
  const callSid = `CA${randomBytes(16).toString('hex')}`;
  await store.putCall({ userId, callSid, status: 'queued', slot: admitted.slot, to: '+1415***0123', createdAt: NOW - 10, expiresAt });
  return { userId, callSid, slot: admitted.slot };
}

/** One status callback, signed as Twilio signs it (with Twilio's SDK). */
function callback(userId: string, callSid: string, status: CallStatus, sequence: number) {
  const params: [string, string][] = [
    ['AccountSid', creds.accountSid],
    ['CallSid', callSid],
    ['CallStatus', status],
    ['SequenceNumber', String(sequence)],
    ['To', '+14155550123'],
  ];
  const signature = getExpectedTwilioSignature(creds.authToken, callbackUrlFor(STATUS_URL, userId), Object.fromEntries(params));
  return { params, query: { u: userId }, signature, signatureSettings: undefined, sourceIp: '203.0.113.20' };
}

async function recordOf(userId: string, callSid: string) {
  const out = await t.client.send(new GetItemCommand({ TableName: t.table, Key: { pk: { S: `USER#${userId}` }, sk: { S: `CALL#${callSid}` } }, ConsistentRead: true }));
  return out.Item;
}
async function liveSlots(userId: string): Promise<string[]> {
  const out = await t.client.send(new GetItemCommand({ TableName: t.table, Key: { pk: { S: `USER#${userId}` }, sk: { S: 'CALLS' } }, ConsistentRead: true }));
  return out.Item?.['live']?.SS ?? [];
}

/**
 * A call's real life: queued → initiated → ringing → in-progress → one end (or still going), and the callbacks
 * Twilio delivers from it: any of its states, some twice or more, in any order.
 */
const deliveries = fc
  .record({
    reached: fc.integer({ min: 0, max: 4 }),
    end: fc.constantFrom<CallStatus>(...[...ENDED_STATUSES]),
    picks: fc.array(fc.nat(), { minLength: 1, maxLength: 12 }),
  })
  .chain(({ reached, end, picks }) => {
    const life: CallStatus[] = (['queued', 'initiated', 'ringing', 'in-progress'] as CallStatus[]).slice(0, Math.min(reached + 1, 4));
    if (reached === 4) life.push(end);
    const drawn = picks.map((p) => life[p % life.length]!);
    return fc.shuffledSubarray(drawn, { minLength: drawn.length, maxLength: drawn.length });
  });

/** The state the record must end in: the latest of the call's life that was delivered (it starts `queued`). */
const expectedFinal = (delivered: CallStatus[]): CallStatus => delivered.reduce<CallStatus>((a, s) => (STATUS_RANK[s] > STATUS_RANK[a] ? s : a), 'queued');

async function checkOutcome(userId: string, callSid: string, slot: string, delivered: CallStatus[]) {
  const item = await recordOf(userId, callSid);
  const want = expectedFinal(delivered);
  expect(item?.['status']?.S).toBe(want);
  expect(Number(item?.['rank']?.N)).toBe(STATUS_RANK[want]);
  const ended = delivered.some((s) => ENDED_STATUSES.has(s));
  expect((await liveSlots(userId)).includes(slot)).toBe(!ended);
}

describe('any delivery order of a call\'s callbacks, through recordCallStatus on dynalite', () => {
  test('sequentially: the record ends at the latest delivered state and the slot is freed iff an end was delivered', async () => {
    await fc.assert(
      fc.asyncProperty(deliveries, async (delivered) => {
        const { userId, callSid, slot } = await placedCall();
        const d = deps();
        for (const [i, s] of delivered.entries()) await recordCallStatus(d, config, callback(userId, callSid, s, i));
        await checkOutcome(userId, callSid, slot, delivered);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  }, 120_000);

  test('concurrently: the same, with every callback in flight at once', async () => {
    await fc.assert(
      fc.asyncProperty(deliveries, async (delivered) => {
        const { userId, callSid, slot } = await placedCall();
        const d = deps();
        await Promise.all(delivered.map((s, i) => recordCallStatus(d, config, callback(userId, callSid, s, i))));
        await checkOutcome(userId, callSid, slot, delivered);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  }, 120_000);

  /** A DynamoDB client whose requests are dispatched, and answers delivered, in an order fast-check picks. */
  const scheduledClient = (s: fc.Scheduler): Pick<DynamoDBClient, 'send'> => ({
    send: ((cmd: Parameters<DynamoDBClient['send']>[0]) =>
      s
        .schedule(Promise.resolve(), 'dispatch')
        .then(() => t.client.send(cmd))
        .then((out) => s.schedule(Promise.resolve(out), 'answer'))) as DynamoDBClient['send'],
  });

  test('over scheduled interleavings of every DynamoDB request and answer: the same', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), deliveries, async (s, delivered) => {
        const { userId, callSid, slot } = await placedCall();
        const d = deps(new DynamoStore(scheduledClient(s), t.table));
        await s.waitFor(Promise.all(delivered.map((st, i) => recordCallStatus(d, config, callback(userId, callSid, st, i)))));
        await checkOutcome(userId, callSid, slot, delivered);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  }, 120_000);

  test('would catch a store that writes every callback (negative control)', async () => {
    /** Moves the record to whatever arrived last: what the rank condition prevents. */
    class LastWriteWins extends DynamoStore {
      override async advanceCallStatus(userId: string, callSid: string, status: CallStatus): Promise<AdvanceResult> {
        await t.client.send(
          new UpdateItemCommand({
            TableName: t.table,
            Key: { pk: { S: `USER#${userId}` }, sk: { S: `CALL#${callSid}` } },
            UpdateExpression: 'SET #s = :s, #r = :r',
            ExpressionAttributeNames: { '#s': 'status', '#r': 'rank' },
            ExpressionAttributeValues: { ':s': { S: status }, ':r': { N: String(STATUS_RANK[status]) } },
          }),
        );
        return super.advanceCallStatus(userId, callSid, status, NOW);
      }
    }
    const result = await fc.check(
      fc.asyncProperty(deliveries, async (delivered) => {
        const { userId, callSid } = await placedCall();
        const d = deps(new LastWriteWins(t.client, t.table));
        for (const [i, s] of delivered.entries()) await recordCallStatus(d, config, callback(userId, callSid, s, i));
        return (await recordOf(userId, callSid))?.['status']?.S === expectedFinal(delivered);
      }),
      { numRuns: 100, seed: 20261203 },
    );
    expect(result.failed).toBe(true);
  }, 120_000);

  test('a late ringing after completed changes nothing, and the slot stays free', async () => {
    const { userId, callSid, slot } = await placedCall();
    const d = deps();

    const ended = await recordCallStatus(d, config, callback(userId, callSid, 'completed', 3));
    const late = await recordCallStatus(d, config, callback(userId, callSid, 'ringing', 1));

    expect([ended.result, late.result]).toEqual(['updated', 'stale']);
    expect((await recordOf(userId, callSid))?.['status']?.S).toBe('completed');
    expect(await liveSlots(userId)).not.toContain(slot);
  });
});

describe('expired call records (expiresAt passed, item still present) are never updated', () => {
  test.each([0, 1, 3600])('a record that expired %i s ago is unknown to every callback, and is left as it was', async (ago) => {
    const { userId, callSid, slot } = await placedCall(NOW - ago);
    const before = await recordOf(userId, callSid);
    const d = deps();

    const outcomes = [];
    for (const [i, s] of (['ringing', 'in-progress', 'completed'] as CallStatus[]).entries()) outcomes.push((await recordCallStatus(d, config, callback(userId, callSid, s, i))).result);

    expect(outcomes).toEqual(['unknown', 'unknown', 'unknown']);
    expect(await recordOf(userId, callSid)).toEqual(before);
    expect(await liveSlots(userId)).toContain(slot);
  });

  test('over any delivery, concurrently: never updated', async () => {
    await fc.assert(
      fc.asyncProperty(deliveries, fc.integer({ min: 0, max: 100_000 }), async (delivered, ago) => {
        const { userId, callSid } = await placedCall(NOW - ago);
        const before = await recordOf(userId, callSid);
        await Promise.all(delivered.map((s, i) => recordCallStatus(deps(), config, callback(userId, callSid, s, i))));
        expect(await recordOf(userId, callSid)).toEqual(before);
      }),
      { numRuns: scale(20, 100), seed: SEED },
    );
  }, 120_000);
});
