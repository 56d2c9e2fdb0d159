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
  test('treats an expired session that DynamoDB has not deleted yet as absent', async () => {
    await store.putSession({ userId: 'u-exp', kv: 'v1', ct: 'x', issuedAt: NOW - 100, expiresAt: NOW - 1 });
    expect(await store.getSession('u-exp', NOW)).toBeUndefined();
    expect(await store.getSession('u-exp', NOW - 2)).toBeDefined();
  });

  test('reads a session and a call in one round trip, each filtered by expiry', async () => {
    await store.putSession({ userId: 'u1', kv: 'v1', ct: 'x', issuedAt: NOW, expiresAt: NOW + 100 });
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
