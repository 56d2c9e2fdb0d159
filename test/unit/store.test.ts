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

describe('idempotency keys', () => {
  test('lets exactly one of many concurrent requests claim a key', async () => {
    const claims = await Promise.all(Array.from({ length: 20 }, () => store.claimIdempotencyKey('u4', 'k1', 'h', NOW, 60)));
    expect(claims.filter((c) => c.state === 'claimed')).toHaveLength(1);
    expect(claims.filter((c) => c.state === 'pending')).toHaveLength(19);
  });

  test('returns the call a completed key produced, and refuses reuse for another request', async () => {
    await store.claimIdempotencyKey('u5', 'k2', 'h', NOW, 60);
    await store.completeIdempotencyKey('u5', 'k2', 'CA5', NOW + 3600);
    expect(await store.claimIdempotencyKey('u5', 'k2', 'h', NOW + 120, 60)).toEqual({ state: 'done', callSid: 'CA5' });
    expect(await store.claimIdempotencyKey('u5', 'k2', 'other', NOW + 120, 60)).toEqual({ state: 'mismatch' });
  });

  test('lets a key be claimed again after release or expiry', async () => {
    await store.claimIdempotencyKey('u6', 'k3', 'h', NOW, 60);
    await store.releaseIdempotencyKey('u6', 'k3');
    expect((await store.claimIdempotencyKey('u6', 'k3', 'h', NOW, 60)).state).toBe('claimed');
    expect((await store.claimIdempotencyKey('u6', 'k3', 'h', NOW + 61, 60)).state).toBe('claimed');
  });

  test('ignores an expired-but-present counter item from an old window', async () => {
    await t.client.send(new PutItemCommand({ TableName: t.table, Item: { pk: { S: 'LIMIT#old' }, sk: { S: `W#${Math.floor(NOW / 60) * 60}` }, n: { N: '99' }, expiresAt: { N: '1' } } }));
    expect((await store.consume('old', 5, 60, NOW + 60)).allowed).toBe(true);
  });
});
