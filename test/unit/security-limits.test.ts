import { randomBytes, randomUUID } from 'node:crypto';
import { type Server as NetServer, type Socket, createServer as createTcpServer } from 'node:net';
import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import fc from 'fast-check';
import { z } from 'zod';
import { AWS_CLIENT_OPTIONS } from '../../lambdas/shared/aws';
import type { Deps } from '../../lambdas/shared/deps';
import { apiHandler } from '../../lambdas/shared/http';
import { DynamoStore, type Store } from '../../lambdas/shared/store';
import type { TwilioPort } from '../../lambdas/shared/twilio';
import { openSession } from '../../lambdas/token/service';
import { placeCall } from '../../lambdas/voice/service';
import { type TestTable, startTable } from '../support/dynalite';
import { FULL_SCALE, scale } from '../support/scale';
import { proxyEvent, testKeyring, testTwilioCredentials } from '../support/fixtures';

/**
 * The limits are exact: K of M concurrent requests pass, the rest get 429 with Retry-After, over repeated runs on
 * dynalite and over fast-check's scheduled interleavings; windows never admit more than K; no client header
 * moves the per-IP key; and a limiter that cannot write denies (503) with nothing issued.
 */

const K = 5;
const M = 50;
const RUNS = scale(3, 20);
const INTERLEAVINGS = scale(30, 200);

class CountingTwilio implements TwilioPort {
  minted = 0;
  created = 0;
  mintAccessToken(): string {
    this.minted++;
    return `tok-${randomBytes(8).toString('hex')}`;
  }
  async createCall() {
    this.created++;
    return { sid: `CA${randomBytes(16).toString('hex')}`, status: 'queued' as const };
  }
  async endCall() {
    return 'completed' as const;
  }
}

const creds = testTwilioCredentials();
const keyring = testKeyring();
const limits = { tokenTtlSeconds: 3600, ipTokenLimitPerMinute: K, userTokenQuotaPerDay: 1000, userCallQuotaPerDay: K, dialPrefixes: ['+1'], concurrentCallLimit: 1000, maxCallSeconds: 3600, statusCallbackUrl: 'https://api.example.com/prod/api/twilio/status' };

let t: TestTable;
beforeAll(async () => {
  t = await startTable();
});
afterAll(() => t.stop());

function deps(store: Store = new DynamoStore(t.client, t.table), now = Date.now()): Deps & { twilio: CountingTwilio } {
  return { store, twilio: new CountingTwilio(), twilioCredentials: async () => creds, keyring: async () => keyring, now: () => now };
}

/** The token route's handler chain over the given deps: HTTP status and headers as API Gateway would return them. */
function tokenRoute(d: Deps) {
  const fn = apiHandler({ allowedOrigins: ['http://localhost:5173'], schema: z.object({}).strict() }, async ({ caller }) => ({ status: 200, body: await openSession(d, limits, caller) }));
  return async (sourceIp: string, headers: Record<string, string> = {}, userId: string = randomUUID()): Promise<APIGatewayProxyResult> => {
    const event = proxyEvent({ method: 'POST', path: '/api/twilio/token', headers, sourceIp, authorizer: { userId, sessionId: 's', exp: Math.floor(Date.now() / 1000) + 3600 } });
    return (await fn(event, { awsRequestId: randomUUID() } as Context)) as APIGatewayProxyResult;
  };
}

const retryAfter = (r: APIGatewayProxyResult) => Number(r.headers?.['Retry-After']);

describe(`K=${K} of M=${M} concurrent requests, ${RUNS} runs on dynalite`, () => {
  test('per IP: exactly K token requests pass and M-K get 429 with Retry-After, in every run', async () => {
    const summary: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const d = deps();
      const route = tokenRoute(d);
      const ip = `198.18.${run}.${Math.floor(Math.random() * 250)}`;

      const replies = await Promise.all(Array.from({ length: M }, () => route(ip)));

      const ok = replies.filter((r) => r.statusCode === 200);
      const limited = replies.filter((r) => r.statusCode === 429);
      summary.push(`${ok.length}/${limited.length}`);
      expect(ok).toHaveLength(K);
      expect(limited).toHaveLength(M - K);
      expect(limited.every((r) => retryAfter(r) >= 1 && retryAfter(r) <= 60)).toBe(true);
      expect(d.twilio.minted).toBe(K);
    }
    if (FULL_SCALE) console.info(`per-IP runs (passed/429): ${summary.join(' ')}`);
  }, 120_000);

  test('per user: exactly K calls are placed of M concurrent ones, the rest are rate limited', async () => {
    const summary: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const d = deps();
      const caller = { userId: randomUUID(), sessionId: 's', exp: Math.floor(Date.now() / 1000) + 3600, sourceIp: `198.19.${run}.1` };
      await openSession(d, limits, caller);

      const outcomes = await Promise.allSettled(Array.from({ length: M }, () => placeCall(d, limits, caller, '+14155550123', undefined)));

      const limited = outcomes.filter((o) => o.status === 'rejected' && (o.reason as { status?: number }).status === 429);
      summary.push(`${d.twilio.created}/${limited.length}`);
      expect(d.twilio.created).toBe(K);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(K);
      expect(limited).toHaveLength(M - K);
      expect(limited.every((o) => ((o as PromiseRejectedResult).reason as { retryAfter: number }).retryAfter >= 1)).toBe(true);
    }
    if (FULL_SCALE) console.info(`per-user call runs (placed/429): ${summary.join(' ')}`);
  }, 120_000);

  test('per user: exactly K token mints of M concurrent ones against the daily quota', async () => {
    for (let run = 0; run < RUNS; run++) {
      const store = new DynamoStore(t.client, t.table);
      const name = `user-token#${randomUUID()}`;
      const results = await Promise.all(Array.from({ length: M }, () => store.consume(name, K, 86_400, 1_800_000_000)));
      expect(results.filter((r) => r.allowed)).toHaveLength(K);
      expect(results.filter((r) => !r.allowed).every((r) => r.retryAfter >= 1 && r.retryAfter <= 86_400)).toBe(true);
    }
  }, 60_000);
});

describe('scheduled interleavings (fast-check scheduler over the real store on dynalite)', () => {
  /** A DynamoDB client whose requests are dispatched, and whose answers are delivered, in an order fast-check picks. */
  const scheduledClient = (s: fc.Scheduler): Pick<DynamoDBClient, 'send'> => ({
    send: ((cmd: Parameters<DynamoDBClient['send']>[0]) =>
      s
        .schedule(Promise.resolve(), 'dispatch')
        .then(() => t.client.send(cmd))
        .then((out) => s.schedule(Promise.resolve(out), 'answer'))) as DynamoDBClient['send'],
  });

  /** Requests at second offsets spread over up to three 60 s windows, so rollovers are in play. */
  const scenario = fc.record({
    limit: fc.integer({ min: 1, max: 6 }),
    offsets: fc.array(fc.integer({ min: 0, max: 179 }), { minLength: 1, maxLength: 30 }),
  });
  const WINDOW0 = 1_800_000_000 - (1_800_000_000 % 60);

  /** Per window: how many were admitted and how many were asked. */
  function tally(offsets: number[], allowed: boolean[]) {
    const per = new Map<number, { asked: number; admitted: number }>();
    offsets.forEach((o, i) => {
      const w = Math.floor(o / 60);
      const e = per.get(w) ?? { asked: 0, admitted: 0 };
      e.asked++;
      if (allowed[i]) e.admitted++;
      per.set(w, e);
    });
    return [...per.values()];
  }

  test(`admits exactly min(K, asked) in every window, in each of ${INTERLEAVINGS} interleavings`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), scenario, async (s, { limit, offsets }) => {
        const store = new DynamoStore(scheduledClient(s), t.table);
        const name = `sched-${randomUUID()}`;
        const allowed = (await s.waitFor(Promise.all(offsets.map((o) => store.consume(name, limit, 60, WINDOW0 + o))))).map((r) => r.allowed);
        return tally(offsets, allowed).every((w) => w.admitted === Math.min(limit, w.asked));
      }),
      { numRuns: INTERLEAVINGS },
    );
  }, 120_000);

  test('would catch a limiter that reads, then writes (negative control)', async () => {
    // The same scheduler finds the race in a naive read-check-write limiter: proof the property has teeth.
    const naive = (client: Pick<DynamoDBClient, 'send'>) => async (name: string, limit: number, now: number) => {
      const Key = { pk: { S: `LIMIT#${name}` }, sk: { S: `W#${Math.floor(now / 60) * 60}` } };
      const got = await client.send(new GetItemCommand({ TableName: t.table, Key, ConsistentRead: true }));
      const n = Number(got.Item?.['n']?.N ?? '0');
      if (n >= limit) return false;
      await client.send(new PutItemCommand({ TableName: t.table, Item: { ...Key, n: { N: String(n + 1) } } }));
      return true;
    };
    const result = await fc.check(
      fc.asyncProperty(fc.scheduler(), scenario, async (s, { limit, offsets }) => {
        const consume = naive(scheduledClient(s));
        const name = `naive-${randomUUID()}`;
        const allowed = await s.waitFor(Promise.all(offsets.map((o) => consume(name, limit, WINDOW0 + o))));
        return tally(offsets, allowed).every((w) => w.admitted <= limit);
      }),
      { numRuns: 200 },
    );
    expect(result.failed).toBe(true);
  }, 120_000);

  test('a window rollover starts a fresh count but never admits more than K within one window', async () => {
    const store = new DynamoStore(t.client, t.table);
    const name = `roll-${randomUUID()}`;
    const late = await Promise.all(Array.from({ length: M }, () => store.consume(name, K, 60, WINDOW0 + 59)));
    const early = await Promise.all(Array.from({ length: M }, () => store.consume(name, K, 60, WINDOW0 + 60)));
    expect(late.filter((r) => r.allowed)).toHaveLength(K);
    expect(late.filter((r) => !r.allowed).every((r) => r.retryAfter === 1)).toBe(true);
    expect(early.filter((r) => r.allowed)).toHaveLength(K);
  });
});

describe('the per-IP key is the gateway\'s source IP, never a client header', () => {
  const SPOOFS = ['X-Forwarded-For', 'X-Real-IP', 'Forwarded', 'True-Client-IP', 'CF-Connecting-IP', 'X-Client-IP', 'X-Cluster-Client-IP', 'Fastly-Client-IP'];

  test('rotating spoofed client-IP headers from one source IP still hits the limit after K', async () => {
    const route = tokenRoute(deps());
    const ip = `198.20.0.${Math.floor(Math.random() * 250)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 2 * SPOOFS.length; i++) {
      const name = SPOOFS[i % SPOOFS.length]!;
      const value = name === 'Forwarded' ? `for=203.0.113.${i}` : `203.0.113.${i}, 10.0.0.${i}`;
      statuses.push((await route(ip, { [name]: value })).statusCode);
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(K);
    expect(statuses.slice(K).every((s) => s === 429)).toBe(true);
  });

  test('one spoofed header value shared by many source IPs does not merge their limits', async () => {
    const route = tokenRoute(deps());
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => route(`198.21.0.${i + 1}`, { 'X-Forwarded-For': '203.0.113.7' })));
    expect(statuses.every((r) => r.statusCode === 200)).toBe(true);
  });
});

describe('a limiter that cannot write denies with 503 and issues nothing', () => {
  let blackhole: NetServer;
  let blackholePort = 0;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    // Accepts connections and never answers: a DynamoDB that hangs.
    blackhole = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    blackholePort = (blackhole.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => blackhole.close(() => resolve()));
  });

  const client = (endpoint: string) => new DynamoDBClient({ ...AWS_CLIENT_OPTIONS, endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

  test.each([
    ['DynamoDB refuses connections', () => 'http://127.0.0.1:9'],
    ['DynamoDB hangs (timeout)', () => `http://127.0.0.1:${blackholePort}`],
  ])('%s: 503 unavailable, no token minted, nothing stored', async (_name, endpoint) => {
    const dead = client(endpoint());
    const d = deps(new DynamoStore(dead, t.table));
    const started = Date.now();

    const reply = await tokenRoute(d)('198.22.0.1');

    expect(reply.statusCode).toBe(503);
    expect(JSON.parse(reply.body)).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
    expect(d.twilio.minted).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000); // inside the handler's 10 s timeout
    dead.destroy();
  }, 20_000);

  test.each([
    ['throws a DynamoDB error', () => Promise.reject(new Error('ProvisionedThroughputExceededException'))],
    ['never settles within the bound', () => new Promise<never>(() => undefined)],
  ])('a limiter whose write %s never admits', async (_name, failure) => {
    const store = Object.assign(Object.create(new DynamoStore(t.client, t.table)) as Store, { consume: failure });
    const d = deps(store);
    const outcome = await Promise.race([
      openSession(d, limits, { userId: randomUUID(), sessionId: 's', exp: Math.floor(Date.now() / 1000) + 3600, sourceIp: '198.22.0.2' }).then(
        () => 'admitted',
        () => 'denied',
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 500)),
    ]);
    expect(outcome).not.toBe('admitted');
    expect(d.twilio.minted).toBe(0);
  });
});
