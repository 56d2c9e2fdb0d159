import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type JWK, SignJWT, exportJWK, generateKeyPair, importJWK } from 'jose';

/**
 * Local secrets, generated on first use into `.local/` (git-ignored, mode 0600): the local Supabase-style
 * issuer's ES256 key pair, and the values the local Secrets Manager serves. Nothing here is ever committed.
 */

export const localDir = () => process.env['LOCAL_DIR'] ?? join(process.cwd(), '.local');

export interface LocalSecrets {
  readonly issuer: { readonly privateJwk: JWK; readonly publicJwk: JWK };
  readonly twilio: Record<string, string>;
  readonly encryptionKeys: { current: string; keys: Record<string, string> };
  readonly usageKey: string;
}

const hex = (n: number) => randomBytes(n).toString('hex');

async function generate(): Promise<LocalSecrets> {
  const kid = `local-${hex(4)}`;
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return {
    issuer: { privateJwk, publicJwk },
    // Credentials for the local Twilio stand-in only: random, shaped like Twilio's, valid nowhere else.
    twilio: {
      accountSid: `AC${hex(16)}`,
      apiKeySid: `SK${hex(16)}`,
      apiKeySecret: hex(16),
      twimlAppSid: `AP${hex(16)}`,
      callerId: '+15005550006',
      authToken: hex(16),
    },
    encryptionKeys: { current: 'v1', keys: { v1: randomBytes(32).toString('base64') } },
    usageKey: hex(20),
  };
}

/** Loads `.local/secrets.json`, creating it on first use. */
export async function loadLocalSecrets(): Promise<LocalSecrets> {
  const dir = localDir();
  const file = join(dir, 'secrets.json');
  if (existsSync(file)) {
    const existing = JSON.parse(readFileSync(file, 'utf8')) as LocalSecrets;
    // Files written before status callbacks existed lack the auth token that signs them: add one.
    if (existing.twilio['authToken']) return existing;
    const upgraded = { ...existing, twilio: { ...existing.twilio, authToken: hex(16) } };
    writeFileSync(file, JSON.stringify(upgraded, null, 2), { mode: 0o600 });
    return upgraded;
  }
  const secrets = await generate();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

export interface DevTokenOptions {
  readonly issuer: string;
  readonly sub: string;
  readonly ttlSeconds?: number;
  /** Overrides or adds any claim (e.g. `{"role":"anon"}` or `{"exp":1}`). */
  readonly claims?: Record<string, unknown>;
}

/** Signs a Supabase-style access token with the local issuer's key. */
export async function signDevToken(secrets: LocalSecrets, o: DevTokenOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: o.issuer,
    aud: 'authenticated',
    sub: o.sub,
    role: 'authenticated',
    aal: 'aal1',
    session_id: randomUUID(),
    is_anonymous: false,
    iat: now,
    exp: now + (o.ttlSeconds ?? 3600),
    ...(o.claims ?? {}),
  };
  const key = await importJWK(secrets.issuer.privateJwk, 'ES256');
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: secrets.issuer.privateJwk.kid!, typ: 'JWT' }).sign(key);
}
