import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { UnavailableError } from '../../lambdas/shared/errors';
import { DynamoStore } from '../../lambdas/shared/store';
import { type TestTable, startTable } from '../support/dynalite';

let t: TestTable;
let store: DynamoStore;
beforeAll(async () => {
  t = await startTable();
  store = new DynamoStore(t.client, t.table);
});
afterAll(() => t.stop());

const NOW = 1_800_000_000;

describe('limiter (atomic conditional counters on dynalite)', () => {
  test('admits exactly K of M concurrent requests in one window', async () => {
    for (let run = 0; run < 5; run++) {
      const results = await Promise.all(Array.from({ length: 50 }, () => store.consume(`conc-${run}`, 5, 60, NOW)));
      expect(results.filter((r) => r.allowed)).toHaveLength(5);
      expect(results.filter((r) => !r.allowed).every((r) => r.retryAfter >= 1 && r.retryAfter <= 60)).toBe(true);
    }
  });

  test('starts a fresh count in the next window', async () => {
    const window = Math.floor(NOW / 60) * 60;
    for (let i = 0; i < 5; i++) expect((await store.consume('roll', 5, 60, window + 59)).allowed).toBe(true);
    expect((await store.consume('roll', 5, 60, window + 59)).allowed).toBe(false);
    expect((await store.consume('roll', 5, 60, window + 60)).allowed).toBe(true);
  });

  test('says how long until the window ends', async () => {
    const window = Math.floor(NOW / 60) * 60;
    await store.consume('retry', 1, 60, window + 10);
    expect(await store.consume('retry', 1, 60, window + 10)).toEqual({ allowed: false, retryAfter: 50 });
  });

  test('fails closed when DynamoDB is unreachable', async () => {
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    const dead = new DynamoDBClient({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
    await expect(new DynamoStore(dead, 'x').consume('ip', 5, 60, NOW)).rejects.toBeInstanceOf(UnavailableError);
    dead.destroy();
  });
});

describe('sessions and calls', () => {
  const session = (userId: string, expiresAt: number, ip?: string) => ({ userId, kv: 'v1', ct: `ct-${expiresAt}-${ip ?? ''}`, issuedAt: NOW, expiresAt, ...(ip ? { ip } : {}) });

  test('writeSession stores a session and counts it in one conditional write; keeps a usable one; refuses past the daily quota', async () => {
    const keep = { dailyQuota: 2, keepIfExpiringAfter: NOW + 300 };
    expect(await store.writeSession(session('w1', NOW + 3600), keep, NOW)).toEqual({ written: true });
    // A usable session is kept and returned, and nothing is counted.
    expect(await store.writeSession(session('w1', NOW + 7200), keep, NOW)).toMatchObject({ written: false, reason: 'kept', current: { expiresAt: NOW + 3600 } });
    // Close to expiry: replaced, and counted (2 of 2).
    expect(await store.writeSession(session('w1', NOW + 7200), { ...keep, keepIfExpiringAfter: NOW + 3600 }, NOW)).toEqual({ written: true });
    // Over the quota: refused, with the seconds to the next UTC day; the stored session is untouched.
    expect(await store.writeSession(session('w1', NOW + 9000), { dailyQuota: 2 }, NOW)).toEqual({ written: false, reason: 'quota', retryAfter: 86_400 - (NOW % 86_400) });
    expect((await store.getSession('w1', NOW))?.expiresAt).toBe(NOW + 7200);
  });

  test('writeSession replaces a session bound to another IP, and keeps one from the same IP', async () => {
    const bound = (ip: string) => ({ dailyQuota: 10, keepIfExpiringAfter: NOW + 300, boundIp: ip });
    expect(await store.writeSession(session('w2', NOW + 3600, '198.51.100.1'), bound('198.51.100.1'), NOW)).toEqual({ written: true });
    expect(await store.writeSession(session('w2', NOW + 3601, '198.51.100.1'), bound('198.51.100.1'), NOW)).toMatchObject({ written: false, reason: 'kept' });
    expect(await store.writeSession(session('w2', NOW + 3602, '203.0.113.9'), bound('203.0.113.9'), NOW)).toEqual({ written: true });
    expect((await store.getSession('w2', NOW))?.ip).toBe('203.0.113.9');
  });

  test('logout removes the token but keeps the day\'s mint count, so logging out and in cannot reset the quota', async () => {
    expect(await store.writeSession(session('w3', NOW + 3600), { dailyQuota: 1, keepIfExpiringAfter: NOW + 300 }, NOW)).toEqual({ written: true });
    await store.deleteSession('w3');
    await store.deleteSession('w3'); // idempotent
    expect(await store.getSession('w3', NOW)).toBeUndefined();
    expect(await store.writeSession(session('w3', NOW + 3600), { dailyQuota: 1, keepIfExpiringAfter: NOW + 300 }, NOW)).toMatchObject({ written: false, reason: 'quota' });
    await store.deleteSession('never-had-one');
  });

  test('concurrent first writes store one session and count one token', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.writeSession(session('w4', NOW + 3600 + i), { dailyQuota: 100, keepIfExpiringAfter: NOW + 300 }, NOW)));
    expect(results.filter((r) => r.written)).toHaveLength(1);
    expect(results.filter((r) => !r.written && r.reason === 'kept')).toHaveLength(19);
  });

  test('treats an expired session that DynamoDB has not deleted yet as absent', async () => {
    await store.writeSession({ userId: 'u-exp', kv: 'v1', ct: 'x', issuedAt: NOW - 100, expiresAt: NOW - 1 }, { dailyQuota: 10 }, NOW - 100);
    expect(await store.getSession('u-exp', NOW)).toBeUndefined();
    expect(await store.getSession('u-exp', NOW - 2)).toBeDefined();
  });

  test('reads a session and a call in one round trip, each filtered by expiry', async () => {
    await store.writeSession({ userId: 'u1', kv: 'v1', ct: 'x', issuedAt: NOW, expiresAt: NOW + 100 }, { dailyQuota: 10 }, NOW);
    await store.putCall({ userId: 'u1', callSid: 'CA1', status: 'queued', to: '+1***', createdAt: NOW, expiresAt: NOW + 100, slot: '' });
    const both = await store.getSessionAndCall('u1', 'CA1', NOW);
    expect(both.session?.userId).toBe('u1');
    expect(both.call?.status).toBe('queued');
    expect((await store.getSessionAndCall('u1', 'CA1', NOW + 100)).call).toBeUndefined();
  });

  test('never shows one user the call of another', async () => {
    await store.putCall({ userId: 'owner', callSid: 'CA2', status: 'queued', to: '+1***', createdAt: NOW, expiresAt: NOW + 100, slot: '' });
    expect((await store.getSessionAndCall('intruder', 'CA2', NOW)).call).toBeUndefined();
  });

  test('updates the status of an own, live call record only', async () => {
    await store.putCall({ userId: 'u3', callSid: 'CA3', status: 'queued', to: '+1***', createdAt: NOW, expiresAt: NOW + 100, slot: '' });
    expect(await store.advanceCallStatus('u3', 'CA3', 'completed', NOW)).toMatchObject({ result: 'updated', call: { status: 'completed' } });
    expect((await store.getSessionAndCall('u3', 'CA3', NOW)).call?.status).toBe('completed');
    expect(await store.advanceCallStatus('someone-else', 'CA3', 'completed', NOW)).toEqual({ result: 'unknown' });
    expect((await store.getSessionAndCall('someone-else', 'CA3', NOW)).call).toBeUndefined();
  });
});

describe('idempotency keys (claimed with the admission, on the CALLS item)', () => {
  const lim = { concurrentCalls: 100, callsPerDay: 1000, slotExpiresAt: NOW + 3600 };
  const key = (n: string, requestHash = 'h') => ({ hash: n.padEnd(64, '0'), requestHash });
  const record = (userId: string, callSid: string, slot: string, idem: string) => store.putCall({ userId, callSid, status: 'queued', to: '+1***', createdAt: NOW, expiresAt: NOW + 86_400, slot, idem });

  test('lets exactly one of many concurrent admissions claim a key; the others see it pending', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => store.admitCall('u4', lim, NOW, key('a1'))));
    expect(results.filter((r) => r.allowed)).toHaveLength(1);
    expect(results.filter((r) => !r.allowed && r.limiter === 'idempotency' && r.replay.state === 'pending')).toHaveLength(19);
  });

  test('finds the call a key produced, and refuses the key for another request', async () => {
    const first = await store.admitCall('u5', lim, NOW, key('b2'));
    if (!first.allowed) throw new Error('not admitted');
    await record('u5', 'CA5', first.slot, key('b2').hash);
    expect(await store.admitCall('u5', lim, NOW + 120, key('b2'))).toMatchObject({ allowed: false, limiter: 'idempotency', replay: { state: 'done', call: { callSid: 'CA5', live: true } } });
    expect(await store.admitCall('u5', lim, NOW + 120, key('b2', 'other'))).toMatchObject({ replay: { state: 'mismatch' } });
  });

  test('a key whose call was never placed can be claimed again after release, or after its claim went stale', async () => {
    const first = await store.admitCall('u6', lim, NOW, key('c3'));
    if (!first.allowed) throw new Error('not admitted');
    await store.releaseCallSlot('u6', first.slot, key('c3').hash);
    expect((await store.admitCall('u6', lim, NOW, key('c3'))).allowed).toBe(true);
    // A claim whose request crashed before recording a call: pending for a minute, then taken over.
    expect(await store.admitCall('u6', lim, NOW + 30, key('c3'))).toMatchObject({ replay: { state: 'pending' } });
    expect((await store.admitCall('u6', lim, NOW + 61, key('c3'))).allowed).toBe(true);
  });

  test('a key marked "outcome unknown" never admits again', async () => {
    expect((await store.admitCall('u7', lim, NOW, key('d4'))).allowed).toBe(true);
    await store.markOutcomeUnknown('u7', key('d4').hash);
    expect(await store.admitCall('u7', lim, NOW + 3600, key('d4'))).toMatchObject({ replay: { state: 'unknown_outcome' } });
  });
});

describe('limiter edge cases', () => {
  test('ignores an expired-but-present counter item from an old window', async () => {
    await t.client.send(new PutItemCommand({ TableName: t.table, Item: { pk: { S: 'LIMIT#old' }, sk: { S: `W#${Math.floor(NOW / 60) * 60}` }, n: { N: '99' }, expiresAt: { N: '1' } } }));
    expect((await store.consume('old', 5, 60, NOW + 60)).allowed).toBe(true);
  });
});
