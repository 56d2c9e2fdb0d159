import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AWS_CLIENT_OPTIONS } from './aws';
import type { LambdaConfig } from './config';
import { DecryptionError, type Keyring, open, parseKeyring } from './crypto';
import { NoVoiceSessionError } from './errors';
import { logger } from './logger';
import { CachedSecrets, parsedSecret } from './secrets';
import { DynamoStore, type SessionRecord, type Store, sessionItemKey } from './store';
import { type Minter, type TwilioCredentials, type TwilioPort, TwilioRest, parseTwilioCredentials } from './twilio';

/** Everything a route service needs from the outside world: the ports, with production adapters below. */
export interface Deps {
  readonly store: Store;
  readonly twilio: TwilioPort;
  readonly twilioCredentials: () => Promise<TwilioCredentials>;
  readonly keyring: () => Promise<Keyring>;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}

/**
 * Builds the production adapters once per cold start (module scope in each handler). Only the token
 * function passes `mint` (so only its bundle loads the AccessToken module).
 */
export function productionDeps(config: LambdaConfig, opts: { readonly mint?: Minter } = {}): Deps {
  // Fail fast at cold start on a wiring mistake, rather than on the first request.
  for (const [name, value] of Object.entries({ TABLE_NAME: config.tableName, TWILIO_SECRET_ID: config.twilioSecretId, ENCRYPTION_KEYS_SECRET_ID: config.encryptionKeysSecretId })) {
    if (!value) throw new Error(`Environment variable ${name} is required`);
  }
  // Secrets Manager's client is built on the first secret read, not at cold start: a warm function reads
  // each secret once per TTL, and a request refused before it needs one never loads it.
  const secrets = new CachedSecrets(async () => new (await import('@aws-sdk/client-secrets-manager')).SecretsManagerClient(AWS_CLIENT_OPTIONS), config.secretCacheTtlSeconds * 1000);
  return {
    store: new DynamoStore(new DynamoDBClient(AWS_CLIENT_OPTIONS), config.tableName),
    twilio: new TwilioRest(config.twilioApiBaseUrl, 5000, opts.mint),
    twilioCredentials: parsedSecret(secrets, config.twilioSecretId, parseTwilioCredentials),
    keyring: parsedSecret(secrets, config.encryptionKeysSecretId, parseKeyring),
    now: Date.now,
  };
}

/** Epoch seconds. */
export const seconds = (ms: number) => Math.floor(ms / 1000);

/**
 * Whether a stored session's token still decrypts under its key version and item binding. A session that
 * does not (tampered, or its key version retired) is logged and treated as absent by every caller.
 */
export async function sessionDecrypts(deps: Deps, session: SessionRecord): Promise<boolean> {
  try {
    open(await deps.keyring(), sessionItemKey(session.userId), session);
    return true;
  } catch (err) {
    if (!(err instanceof DecryptionError)) throw err;
    logger.warn('stored session failed authentication', { userId: session.userId, kv: session.kv });
    return false;
  }
}

/**
 * Proves a stored session is usable: present, unexpired (the store already filtered) and its token
 * decrypts under its key version and item binding; and, when sessions are bound to the IP that opened them,
 * used from that IP. Anything else means "no voice session" (409): the client opens one from where it is.
 */
export async function requireSession(deps: Deps, session: SessionRecord | undefined, boundTo?: string): Promise<SessionRecord> {
  if (!session) throw new NoVoiceSessionError({ reason: 'no_session' });
  if (boundTo !== undefined && session.ip !== boundTo) throw new NoVoiceSessionError({ reason: 'session_ip_mismatch' });
  if (!(await sessionDecrypts(deps, session))) throw new NoVoiceSessionError({ reason: 'session_undecryptable' });
  return session;
}
