import { randomBytes, randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { hangUp } from '../../lambdas/hangup/service';
import type { Deps } from '../../lambdas/shared/deps';
import type { Caller } from '../../lambdas/shared/http';
import { DynamoStore } from '../../lambdas/shared/store';
import { type TwilioPort, callbackUrlFor } from '../../lambdas/shared/twilio';
import { twilioSignature } from '../../lambdas/shared/twilio-signature';
import { recordCallStatus } from '../../lambdas/status/service';
import { closeSession, openSession } from '../../lambdas/token/service';
import { placeCall, readCall } from '../../lambdas/voice/service';
import { type TestTable, startTable } from '../support/dynalite';
import { testKeyring, testTwilioCredentials } from '../support/fixtures';

/**
 * DynamoDB round trips per request, counted at the SDK client (every `send` is one request to DynamoDB):
 * issue 5's targets, which do not depend on the machine. `npm run bench` prints the same counts measured
 * through the local gateway. A change that adds a read or a write to a route's path fails here.
 */

const STATUS_URL = 'https://api.example.com/prod/api/twilio/status';
const creds = testTwilioCredentials();
const keyring = testKeyring();
const limits = {
  tokenTtlSeconds: 3600,
  ipTokenLimitPerMinute: 1000,
  userTokenQuotaPerDay: 1000,
  userCallQuotaPerDay: 1000,
  dialPrefixes: ['+1'],
  concurrentCallLimit: 100,
  maxCallSeconds: 3600,
  statusCallbackUrl: STATUS_URL,
};
const clock = 1_800_000_000_000;

const twilio: TwilioPort = {
  mintAccessToken: () => `tok.${randomBytes(8).toString('hex')}.sig`,
  createCall: async () => ({ sid: `CA${randomBytes(16).toString('hex')}`, status: 'queued' }),
  endCall: async () => 'completed',
};

let t: TestTable;
let counted: DynamoDBClient;
let sent: string[] = [];

beforeAll(async () => {
  t = await startTable();
  // A second client on the same endpoint, counting every command it sends.
  counted = new DynamoDBClient({ endpoint: await t.client.config.endpoint!().then((e) => `${e.protocol}//${e.hostname}:${e.port}`), region: 'us-east-1', credentials: await t.client.config.credentials() });
  counted.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push(context.commandName ?? 'unknown');
      return next(args);
    },
    { step: 'initialize', name: 'countRoundTrips' },
  );
});
afterAll(async () => {
  counted.destroy();
  await t.stop();
});

const deps = (): Deps => ({ store: new DynamoStore(counted, t.table), twilio, twilioCredentials: async () => creds, keyring: async () => keyring, now: () => clock });
const caller = (): Caller => ({ userId: randomUUID(), sessionId: 's', exp: clock / 1000 + 3600, sourceIp: `198.51.100.${1 + Math.floor(Math.random() * 250)}` });

/** The DynamoDB commands one call of `fn` sends. */
async function roundTrips(fn: () => Promise<unknown>): Promise<string[]> {
  sent = [];
  await fn();
  return sent;
}

describe('DynamoDB round trips per request (issue 5 targets)', () => {
  let d: Deps;
  beforeAll(() => {
    d = deps();
  });

  test('POST /token, new session: 2 (per-IP counter; session and daily mint count in one conditional write)', async () => {
    const c = caller();
    expect(await roundTrips(() => openSession(d, limits, c))).toEqual(['UpdateItemCommand', 'UpdateItemCommand']);
  });

  test('POST /token, stored session reused: 2 (the failed conditional write returns the stored item)', async () => {
    const c = caller();
    await openSession(d, limits, c);
    expect(await roundTrips(async () => expect((await openSession(d, limits, c)).reused).toBe(true))).toEqual(['UpdateItemCommand', 'UpdateItemCommand']);
  });

  test('POST /voice: 3 (session read; quota and live-call slot in one write; call record)', async () => {
    const c = caller();
    await openSession(d, limits, c);
    expect(await roundTrips(() => placeCall(d, limits, c, '+14155550123', undefined))).toEqual(['GetItemCommand', 'UpdateItemCommand', 'PutItemCommand']);
  });

  test('POST /voice with Idempotency-Key: 3 (the key is claimed in the same write as the slot; the record carries it)', async () => {
    const c = caller();
    await openSession(d, limits, c);
    const key = `key-${randomUUID()}`;
    expect(await roundTrips(() => placeCall(d, limits, c, '+14155550123', key))).toEqual(['GetItemCommand', 'UpdateItemCommand', 'PutItemCommand']);
    // A replay: session, the refused claim (which returns the CALLS item), and one Query for the call: 3.
    expect(await roundTrips(async () => expect((await placeCall(d, limits, c, '+14155550123', key)).replayed).toBe(true))).toEqual(['GetItemCommand', 'UpdateItemCommand', 'QueryCommand']);
  });

  test('POST /hangup of a live call: 2 (session, call and slots in one BatchGet; the slot freed)', async () => {
    const c = caller();
    await openSession(d, limits, c);
    const { call } = await placeCall(d, limits, c, '+14155550123', undefined);
    expect(await roundTrips(() => hangUp(d, c, call.sid))).toEqual(['BatchGetItemCommand', 'UpdateItemCommand']);
    // An ended call: one read, no write, no Twilio request.
    expect(await roundTrips(() => hangUp(d, c, call.sid))).toEqual(['BatchGetItemCommand']);
  });

  test('GET /voice?callSid=: 1 (the BatchGet of session, call and slots)', async () => {
    const c = caller();
    await openSession(d, limits, c);
    const { call } = await placeCall(d, limits, c, '+14155550123', undefined);
    expect(await roundTrips(() => readCall(d, c, call.sid))).toEqual(['BatchGetItemCommand']);
  });

  test('DELETE /token: 1', async () => {
    const c = caller();
    await openSession(d, limits, c);
    expect(await roundTrips(() => closeSession(d, c))).toEqual(['UpdateItemCommand']);
  });

  test('status callback: 1 for a progress event, 2 for the end of a call (record, then its slot)', async () => {
    const c = caller();
    await openSession(d, limits, c);
    const { call } = await placeCall(d, limits, c, '+14155550123', undefined);
    const callback = (status: string) => {
      const params: [string, string][] = [
        ['AccountSid', creds.accountSid],
        ['CallSid', call.sid],
        ['CallStatus', status],
      ];
      const url = callbackUrlFor(STATUS_URL, c.userId);
      return recordCallStatus(d, { statusCallbackUrl: STATUS_URL, statusLimitPerIpPerMinute: 10 }, { params, query: { u: c.userId }, signature: twilioSignature(creds.authToken!, url, params), signatureSettings: undefined, sourceIp: '203.0.113.5' });
    };
    expect(await roundTrips(() => callback('ringing'))).toEqual(['UpdateItemCommand']);
    expect(await roundTrips(() => callback('completed'))).toEqual(['UpdateItemCommand', 'UpdateItemCommand']);
  });
});
