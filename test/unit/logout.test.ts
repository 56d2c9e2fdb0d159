import { randomBytes, randomUUID } from 'node:crypto';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import { z } from 'zod';
import { hangUp } from '../../lambdas/hangup/service';
import type { Deps } from '../../lambdas/shared/deps';
import { type Caller, apiHandler } from '../../lambdas/shared/http';
import { DynamoStore } from '../../lambdas/shared/store';
import type { TwilioPort } from '../../lambdas/shared/twilio';
import { closeSession, openSession } from '../../lambdas/token/service';
import { type VoiceLimits, placeCall } from '../../lambdas/voice/service';
import { type TestTable, startTable } from '../support/dynalite';
import { proxyEvent, testKeyring, testTwilioCredentials } from '../support/fixtures';

/**
 * Logout (DELETE /api/twilio/token): the caller's voice session is deleted, /voice and /hangup answer 409 until a
 * new session is opened, a repeated DELETE is still 204, and nobody else's session is touched.
 */

const ORIGIN = 'http://localhost:5173';
const creds = testTwilioCredentials();
const keyring = testKeyring();
const tokenLimits = { tokenTtlSeconds: 3600, ipTokenLimitPerMinute: 1_000_000, userTokenQuotaPerDay: 1000 };
const voiceLimits: VoiceLimits = { userCallQuotaPerDay: 1000, dialPrefixes: ['+1'], concurrentCallLimit: 10, maxCallSeconds: 600, statusCallbackUrl: 'https://api.example.com/prod/api/twilio/status' };

const twilio: TwilioPort = {
  mintAccessToken: () => `tok-${randomBytes(8).toString('hex')}`,
  createCall: async () => ({ sid: `CA${randomBytes(16).toString('hex')}`, status: 'queued' as const }),
  endCall: async () => 'completed' as const,
};

let t: TestTable;
let d: Deps;
beforeAll(async () => {
  t = await startTable();
  d = { store: new DynamoStore(t.client, t.table), twilio, twilioCredentials: async () => creds, keyring: async () => keyring, now: Date.now };
});
afterAll(() => t.stop());

/** The token route as `lambdas/token/handler.ts` builds it (POST opens, DELETE closes), over the test deps. */
const tokenHandler = () =>
  apiHandler({ allowedOrigins: [ORIGIN], schema: z.object({}).strict(), methods: ['POST', 'DELETE'] }, async ({ method, caller }) => {
    if (method === 'DELETE') {
      await closeSession(d, caller);
      return { status: 204, audit: { outcome: 'ended', reason: 'session_closed' } };
    }
    const { session } = await openSession(d, tokenLimits, caller);
    return { status: 200, body: { session } };
  });

async function send(method: 'POST' | 'DELETE', c: Caller | undefined, headers: Record<string, string> = {}): Promise<APIGatewayProxyResult> {
  const event = proxyEvent({ method, path: '/api/twilio/token', headers, sourceIp: '203.0.113.50', ...(c ? { authorizer: { userId: c.userId, sessionId: c.sessionId, exp: c.exp } } : {}) });
  return (await tokenHandler()(event, { awsRequestId: randomUUID() } as Context)) as APIGatewayProxyResult;
}

const newCaller = (): Caller => ({ userId: randomUUID(), sessionId: randomUUID(), exp: Math.floor(Date.now() / 1000) + 3600, sourceIp: '203.0.113.50' });

async function sessionItem(userId: string) {
  return (await t.client.send(new GetItemCommand({ TableName: t.table, Key: { pk: { S: `USER#${userId}` }, sk: { S: 'SESSION' } }, ConsistentRead: true }))).Item;
}

async function loggedIn() {
  const c = newCaller();
  expect((await send('POST', c)).statusCode).toBe(200);
  const { call } = await placeCall(d, voiceLimits, c, '+14155550123', undefined);
  return { c, callSid: call.sid };
}

describe('DELETE /api/twilio/token (logout)', () => {
  test('answers 204 with no body and deletes the stored token (the day\'s mint count stays)', async () => {
    const { c } = await loggedIn();
    expect((await sessionItem(c.userId))?.['ct']).toBeDefined();

    const r = await send('DELETE', c);

    expect([r.statusCode, r.body]).toEqual([204, '']);
    const item = await sessionItem(c.userId);
    expect(item?.['ct']).toBeUndefined();
    expect(item?.['kv']).toBeUndefined();
    expect(Object.keys(item ?? {}).filter((k) => /^t\d+$/.test(k))).toHaveLength(1);
  });

  test('after logout, /voice and /hangup answer 409 no_voice_session', async () => {
    const { c, callSid } = await loggedIn();

    await send('DELETE', c);

    await expect(placeCall(d, voiceLimits, c, '+14155550123', undefined)).rejects.toMatchObject({ status: 409, code: 'no_voice_session' });
    await expect(hangUp(d, c, callSid)).rejects.toMatchObject({ status: 409, code: 'no_voice_session' });
  });

  test('a second DELETE, and a DELETE with no session ever opened, are 204 too', async () => {
    const { c } = await loggedIn();

    const first = await send('DELETE', c);
    const second = await send('DELETE', c);
    const never = await send('DELETE', newCaller());

    expect([first.statusCode, second.statusCode, never.statusCode]).toEqual([204, 204, 204]);
  });

  test('user A\'s logout never touches user B\'s session', async () => {
    const a = await loggedIn();
    const b = await loggedIn();
    const before = await sessionItem(b.c.userId);

    await send('DELETE', a.c);

    expect(await sessionItem(b.c.userId)).toEqual(before);
    await expect(placeCall(d, voiceLimits, b.c, '+14155550123', undefined)).resolves.toMatchObject({ replayed: false });
    await expect(hangUp(d, b.c, b.callSid)).resolves.toMatchObject({ call: { status: 'completed' } });
  });

  test('a new POST /token after logout opens a new session, and calls work again', async () => {
    const { c, callSid } = await loggedIn();
    await send('DELETE', c);

    const r = await send('POST', c);

    expect(r.statusCode).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ session: { status: 'active' } });
    expect(await sessionItem(c.userId)).toBeDefined();
    await expect(placeCall(d, voiceLimits, c, '+14155550123', undefined)).resolves.toMatchObject({ replayed: false });
    await expect(hangUp(d, c, callSid)).resolves.toMatchObject({ call: { sid: callSid, status: 'completed' } });
  });

  test('rejects a DELETE from a foreign Origin (403) and keeps the session', async () => {
    const { c } = await loggedIn();
    const before = await sessionItem(c.userId);

    const r = await send('DELETE', c, { Origin: 'https://evil.example' });

    expect([r.statusCode, (JSON.parse(r.body) as { error: { code: string } }).error.code]).toEqual([403, 'origin_not_allowed']);
    expect(await sessionItem(c.userId)).toEqual(before);
  });

  test('rejects a DELETE without the authorizer\'s context (401) and deletes nothing', async () => {
    const { c } = await loggedIn();
    const before = await sessionItem(c.userId);

    const r = await send('DELETE', undefined);

    expect(r.statusCode).toBe(401);
    expect(await sessionItem(c.userId)).toEqual(before);
  });

  test('rejects a DELETE whose Supabase session has expired (401) and keeps the voice session', async () => {
    const { c } = await loggedIn();
    const before = await sessionItem(c.userId);

    const r = await send('DELETE', { ...c, exp: Math.floor(Date.now() / 1000) - 1 });

    expect(r.statusCode).toBe(401);
    expect(await sessionItem(c.userId)).toEqual(before);
  });
});
