import { randomBytes, randomUUID } from 'node:crypto';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import * as z from 'zod/mini';
import { hangUp } from '../../lambdas/hangup/service';
import type { Deps } from '../../lambdas/shared/deps';
import { apiHandler } from '../../lambdas/shared/http';
import type { Caller } from '../../lambdas/shared/http';
import { DynamoStore } from '../../lambdas/shared/store';
import type { TwilioPort } from '../../lambdas/shared/twilio';
import { openSession } from '../../lambdas/token/service';
import { placeCall, readCall } from '../../lambdas/voice/service';
import { type TestTable, startTable } from '../support/dynalite';
import { proxyEvent, testKeyring, testTwilioCredentials } from '../support/fixtures';

/** GET /api/twilio/voice?callSid=…: a call's state as recorded, own calls only, the query validated like a body. */

const creds = testTwilioCredentials();
const keyring = testKeyring();
const limits = { tokenTtlSeconds: 3600, ipTokenLimitPerMinute: 1000, userTokenQuotaPerDay: 1000, userCallQuotaPerDay: 1000, dialPrefixes: ['+1'], concurrentCallLimit: 10, maxCallSeconds: 3600, statusCallbackUrl: 'https://api.example.com/prod/api/twilio/status' };
const clock = 1_800_000_000_000;
const twilio: TwilioPort = {
  mintAccessToken: () => `tok.${randomBytes(8).toString('hex')}.sig`,
  createCall: async () => ({ sid: `CA${randomBytes(16).toString('hex')}`, status: 'queued' }),
  endCall: async () => 'completed',
};

let t: TestTable;
let d: Deps;
beforeAll(async () => {
  t = await startTable();
  d = { store: new DynamoStore(t.client, t.table), twilio, twilioCredentials: async () => creds, keyring: async () => keyring, now: () => clock };
});
afterAll(() => t.stop());

const caller = (): Caller => ({ userId: randomUUID(), sessionId: 's', exp: clock / 1000 + 3600, sourceIp: '198.51.100.7' });
async function withCall() {
  const c = caller();
  await openSession(d, limits, c);
  const { call } = await placeCall(d, limits, c, '+14155550123', undefined);
  return { c, sid: call.sid };
}

describe('readCall', () => {
  test('shows the recorded state, moving as Twilio reports it, and the end without any action of the user', async () => {
    const { c, sid } = await withCall();
    expect(await readCall(d, c, sid)).toEqual({ sid, status: 'queued' });
    await d.store.advanceCallStatus(c.userId, sid, 'in-progress', clock / 1000);
    expect((await readCall(d, c, sid)).status).toBe('in-progress');
    await d.store.advanceCallStatus(c.userId, sid, 'no-answer', clock / 1000);
    expect((await readCall(d, c, sid)).status).toBe('no-answer');
  });

  test('shows a call ended through /hangup as completed at once, before Twilio\'s callback arrives', async () => {
    const { c, sid } = await withCall();
    await hangUp(d, c, sid);
    expect(await readCall(d, c, sid)).toEqual({ sid, status: 'completed' });
  });

  test('another user\'s call and an unknown call are both "not found"', async () => {
    const { sid } = await withCall();
    const intruder = caller();
    await expect(readCall(d, intruder, sid)).rejects.toMatchObject({ status: 404, code: 'call_not_found' });
    await expect(readCall(d, intruder, `CA${'9'.repeat(32)}`)).rejects.toMatchObject({ status: 404, code: 'call_not_found' });
  });

  test('needs no voice session: a logged-out user still sees how their call ended', async () => {
    const { c, sid } = await withCall();
    await d.store.deleteSession(c.userId);
    expect((await readCall(d, c, sid)).status).toBe('queued');
  });
});

describe('GET query validation (apiHandler with querySchema)', () => {
  const get = z.strictObject({ callSid: z.string().check(z.regex(/^CA[0-9a-f]{32}$/)) });
  const post = z.strictObject({ to: z.string() });
  const seen: unknown[] = [];
  const fn = apiHandler<z.infer<typeof get> | z.infer<typeof post>>(
    { allowedOrigins: ['https://app.example.com'], schema: post, querySchema: get, methods: ['POST', 'GET'], now: () => clock },
    async ({ body }) => {
      seen.push(body);
      return { status: 200, body: { ok: true } };
    },
  );
  const invoke = (query: Record<string, string[]> | null, body: string | null = null) =>
    fn(
      proxyEvent({ method: 'GET', path: '/api/twilio/voice', query, body, sourceIp: '198.51.100.7', authorizer: { userId: randomUUID(), exp: clock / 1000 + 60 } }),
      { awsRequestId: 'a', functionName: 'voice' } as Context,
    ) as Promise<APIGatewayProxyResult>;
  const code = (r: APIGatewayProxyResult) => (JSON.parse(r.body) as { error?: { code: string } }).error?.code;
  const sid = `CA${'a'.repeat(32)}`;

  test('passes a valid callSid to the logic as the input', async () => {
    seen.length = 0;
    expect((await invoke({ callSid: [sid] })).statusCode).toBe(200);
    expect(seen).toEqual([{ callSid: sid }]);
  });

  test.each([
    ['no query', null],
    ['a malformed callSid', { callSid: ['CA123'] }],
    ['an unknown parameter', { callSid: [sid], extra: ['1'] }],
    ['a repeated callSid', { callSid: [sid, sid] }],
  ])('refuses %s with 400 invalid_request, never reaching the logic', async (_name, query) => {
    seen.length = 0;
    const r = await invoke(query);
    expect([r.statusCode, code(r)]).toEqual([400, 'invalid_request']);
    expect(seen).toEqual([]);
  });

  test('refuses a body on GET', async () => {
    const r = await invoke({ callSid: [sid] }, '{"to":"+14155550123"}');
    expect([r.statusCode, code(r)]).toEqual([400, 'invalid_request']);
  });
});
