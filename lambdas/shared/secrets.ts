import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { UnavailableError } from './errors';

/**
 * Reads secrets from Secrets Manager by id and caches each value for a time-to-live, so a warm function
 * makes one call per secret per TTL and picks up a rotated value within it. A failure fails closed
 * (503 unavailable) and is not cached.
 */
export interface SecretSource {
  get(secretId: string): Promise<string>;
}

type Client = Pick<SecretsManagerClient, 'send'>;

export class CachedSecrets implements SecretSource {
  private readonly cache = new Map<string, { value: string; until: number }>();
  private resolved: Client | undefined;

  /**
   * @param client the Secrets Manager client, or a factory that creates it on first use (the authorizer
   *   loads the SDK only when it has a secret to read).
   */
  constructor(
    private readonly client: Client | (() => Promise<Client>),
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(secretId: string): Promise<string> {
    const hit = this.cache.get(secretId);
    if (hit && hit.until > this.now()) return hit.value;
    let value: string | undefined;
    try {
      const { GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
      this.resolved ??= typeof this.client === 'function' ? await this.client() : this.client;
      const out = await this.resolved.send(new GetSecretValueCommand({ SecretId: secretId }));
      value = out.SecretString;
    } catch (err) {
      throw new UnavailableError({ reason: 'secrets_unavailable', cause: err });
    }
    if (!value) throw new UnavailableError({ reason: 'secret_empty' });
    this.cache.set(secretId, { value, until: this.now() + this.ttlMs });
    return value;
  }
}

/** Parses a secret once per value: the parsed result is cached beside the raw string it came from. */
export function parsedSecret<T>(secrets: SecretSource, secretId: string, parse: (raw: string) => T): () => Promise<T> {
  let last: { raw: string; parsed: T } | undefined;
  return async () => {
    const raw = await secrets.get(secretId);
    if (last?.raw !== raw) {
      try {
        last = { raw, parsed: parse(raw) };
      } catch (err) {
        // A malformed secret is an operator error: fail closed, log the reason, never the value.
        // JSON.parse messages quote the input, so only our own messages are kept.
        const why = err instanceof SyntaxError ? 'not valid JSON' : (err as Error).message;
        throw new UnavailableError({ reason: 'secret_malformed', cause: new Error(`secret ${secretId} is malformed: ${why}`) });
      }
    }
    return last.parsed;
  };
}
