import { createHmac, randomUUID, webcrypto } from 'node:crypto';
import { type CryptoKey, type JWK, type JWTVerifyGetKey, createLocalJWKSet, exportJWK, exportSPKI, generateKeyPair } from 'jose';

/**
 * Keys and Supabase-style access tokens for tests, all generated at run time (nothing is committed).
 *
 * Tokens are serialised and signed here by hand rather than with jose's `SignJWT`, because jose (rightly)
 * refuses to produce some of the hostile tokens the authorizer tests need: a `crit` header it does not
 * understand, an `alg` that does not match the key, an empty signature. The signatures themselves come from
 * WebCrypto (ES256, RS256) and node:crypto HMAC (HS*), so valid tokens are valid by any verifier's measure.
 */

/** The issuer of the test Supabase project. */
export const ISSUER = 'https://proj.supabase.co/auth/v1';

export type AsymmetricAlg = 'ES256' | 'RS256';
export type HmacAlg = 'HS256' | 'HS384' | 'HS512';

/** An asymmetric key pair with its `kid`, as a Supabase project's JWKS publishes it. */
export interface TestKey {
  readonly alg: AsymmetricAlg;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Public JWK with `kid`, `alg` and `use`. */
  readonly publicJwk: JWK;
}

/** An HMAC secret (Supabase's legacy JWT secret, or an attacker's guess at one). */
export interface HmacKey {
  readonly alg: HmacAlg;
  readonly secret: Uint8Array;
}

export type SigningKey = TestKey | HmacKey;

/** Generates an ES256 (P-256) or RS256 (2048-bit) key pair with a fresh `kid`. */
export async function generateTestKey(alg: AsymmetricAlg, kid: string = `${alg.toLowerCase()}-${randomUUID()}`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, publicJwk };
}

/** A key source over the given public keys, like the project's `/.well-known/jwks.json`, without a network. */
export function localJwks(keys: readonly TestKey[]): JWTVerifyGetKey {
  return createLocalJWKSet({ keys: keys.map((k) => k.publicJwk) });
}

/** The public key as PEM (SPKI), the usual "secret" of an HS/RS key-confusion attack. */
export function publicKeyPem(key: TestKey): Promise<string> {
  return exportSPKI(key.publicKey);
}

/** A random HMAC secret as Supabase generates legacy JWT secrets (40+ characters). */
export function randomHmacSecret(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(32))).toString('base64url');
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Claims of a Supabase access token for a signed-in (non-anonymous) user, valid for an hour. */
export function supabaseClaims(iat: number = nowSeconds()): Record<string, unknown> {
  return {
    iss: ISSUER,
    aud: 'authenticated',
    role: 'authenticated',
    sub: randomUUID(),
    session_id: randomUUID(),
    is_anonymous: false,
    iat,
    exp: iat + 3600,
    aal: 'aal1',
    email: 'user@example.com',
    amr: [{ method: 'password', timestamp: iat }],
  };
}

/** Applies overrides to an object; an override whose value is `undefined` removes the field. */
function merge(base: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base, ...overrides };
  for (const [k, v] of Object.entries(overrides)) if (v === undefined) delete out[k];
  return out;
}

export function b64url(input: string | Uint8Array): string {
  return Buffer.from(typeof input === 'string' ? Buffer.from(input, 'utf8') : input).toString('base64url');
}

/** Signs `signingInput` (`header.payload`) with the key under the given JWS algorithm. */
export async function signRaw(key: SigningKey, signingInput: string): Promise<Uint8Array> {
  const data = Buffer.from(signingInput, 'ascii');
  if ('secret' in key) {
    const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[key.alg];
    return createHmac(hash, key.secret).update(data).digest();
  }
  const algorithm = key.alg === 'ES256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
  return new Uint8Array(await webcrypto.subtle.sign(algorithm, key.privateKey as webcrypto.CryptoKey, data));
}

/**
 * A Supabase-style access token signed by `key`. `claims` and `header` override the defaults
 * (`undefined` removes a field); the header defaults to `{alg, typ: 'JWT', kid}` (no `kid` for HMAC keys).
 */
export async function signToken(key: SigningKey, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const baseHeader: Record<string, unknown> = 'secret' in key ? { alg: key.alg, typ: 'JWT' } : { alg: key.alg, typ: 'JWT', kid: key.kid };
  const signingInput = `${b64url(JSON.stringify(merge(baseHeader, header)))}.${b64url(JSON.stringify(merge(supabaseClaims(), claims)))}`;
  return `${signingInput}.${b64url(await signRaw(key, signingInput))}`;
}

/** A compact token from raw parts, for attacks: objects are JSON-encoded, strings are taken as they are. */
export function craftToken(header: Record<string, unknown> | string, payload: Record<string, unknown> | string, signature: Uint8Array | string = ''): string {
  const part = (p: Record<string, unknown> | string) => (typeof p === 'string' ? p : b64url(JSON.stringify(p)));
  return `${part(header)}.${part(payload)}.${typeof signature === 'string' ? signature : b64url(signature)}`;
}

/** The three segments of a compact token, decoded where they are JSON. */
export function splitToken(token: string): { header: Record<string, unknown>; payload: Record<string, unknown>; signature: string } {
  const [h = '', p = '', signature = ''] = token.split('.');
  const json = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;
  return { header: json(h), payload: json(p), signature };
}

/** Re-encodes an IEEE P1363 ECDSA signature (r || s, 32 bytes each) as ASN.1 DER, as OpenSSL emits it. */
export function p1363ToDer(signature: Uint8Array): Uint8Array {
  const int = (bytes: Uint8Array) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    const trimmed = bytes.slice(i);
    const padded = (trimmed[0] ?? 0) & 0x80 ? Uint8Array.from([0, ...trimmed]) : trimmed;
    return [0x02, padded.length, ...padded];
  };
  const half = signature.length / 2;
  const body = [...int(signature.slice(0, half)), ...int(signature.slice(half))];
  return Uint8Array.from([0x30, body.length, ...body]);
}
