import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CachedSecrets, parsedSecret } from '../../lambdas/shared/secrets';

/** A small fake of the Secrets Manager client: counts calls, answers from a map, fails when told to. */
function fakeClient(values: Record<string, string>) {
  const fake = {
    calls: 0,
    fail: false,
    send: async (cmd: { input: { SecretId?: string } }) => {
      fake.calls++;
      if (fake.fail) throw new Error('ThrottlingException: Rate exceeded');
      return { SecretString: values[cmd.input.SecretId ?? ''] };
    },
  };
  return fake;
}
const asClient = (f: ReturnType<typeof fakeClient>) => f as unknown as Pick<SecretsManagerClient, 'send'>;

test('serves a secret from cache within its time-to-live', async () => {
  const client = fakeClient({ a: 'one' });
  let now = 0;
  const secrets = new CachedSecrets(asClient(client), 1000, () => now);
  await secrets.get('a');
  now = 999;
  expect(await secrets.get('a')).toBe('one');
  expect(client.calls).toBe(1);
});

test('fetches again after the time-to-live, picking up a rotated value', async () => {
  const values = { a: 'one' };
  const client = fakeClient(values);
  let now = 0;
  const secrets = new CachedSecrets(asClient(client), 1000, () => now);
  await secrets.get('a');
  values.a = 'two';
  now = 1000;
  expect(await secrets.get('a')).toBe('two');
  expect(client.calls).toBe(2);
});

test('fails closed with 503 when Secrets Manager is unreachable or throttling, and caches no failure', async () => {
  const client = fakeClient({ a: 'one' });
  client.fail = true;
  const secrets = new CachedSecrets(asClient(client), 1000, () => 0);
  await expect(secrets.get('a')).rejects.toMatchObject({ code: 'unavailable', status: 503 });
  client.fail = false;
  expect(await secrets.get('a')).toBe('one');
});

test('fails closed on a missing or empty secret', async () => {
  const secrets = new CachedSecrets(asClient(fakeClient({})), 1000, () => 0);
  await expect(secrets.get('nope')).rejects.toMatchObject({ code: 'unavailable' });
});

test('rejects a malformed secret without quoting its value', async () => {
  const secretValue = 'not-json-but-very-secret';
  const read = parsedSecret(new CachedSecrets(asClient(fakeClient({ s: secretValue })), 1000, () => 0), 's', (raw) => JSON.parse(raw) as unknown);
  const err = (await read().catch((e: unknown) => e)) as Error & { cause?: Error };
  expect(err).toMatchObject({ code: 'unavailable' });
  expect(`${err.message} ${err.cause?.message ?? ''}`).not.toContain('very-secret');
});

test('parses a secret once per value', async () => {
  let parses = 0;
  const read = parsedSecret(new CachedSecrets(asClient(fakeClient({ s: '{"a":1}' })), 1000, () => 0), 's', (raw) => {
    parses++;
    return JSON.parse(raw) as unknown;
  });
  await read();
  await read();
  expect(parses).toBe(1);
});
