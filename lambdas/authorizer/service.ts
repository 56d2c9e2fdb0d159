import { type JsonWebKey, KeyObject, createHmac, createPublicKey, createSecretKey, timingSafeEqual, verify as verifySignature, type webcrypto } from 'node:crypto';
import { type JWTHeaderParameters, type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, errors } from 'jose';
import { MAX_AUTHORIZATION_HEADER_BYTES } from '../shared/contract';
import { UnavailableError } from '../shared/errors';
import type { SessionCheck } from './session-check';

/**
 * Verifies Supabase access tokens. Asymmetric tokens (ES256, RS256) are checked against the project's
 * JWKS; HS256 only when the legacy JWT secret is configured. Every choice an attacker could steer is
 * pinned: the algorithm allowlist per key type, no `jku`/`x5u`/`x5c`/`jwk`/`crit` headers, the issuer,
 * the audience, the role, a UUID subject, no anonymous sign-ins, and `exp`/`nbf`/`iat` with a small leeway.
 *
 * jose fetches, caches and selects the keys (JWKS cooldown, `kid`/`alg`/`kty` matching); the signature itself
 * is checked with node:crypto on a cached KeyObject, synchronously: jose's WebCrypto path costs almost three
 * times a raw verification on every uncached authorization.
 */

export interface VerifierOptions {
  /** `${SUPABASE_URL}/auth/v1` */
  readonly issuer: string;
  readonly jwksUrl: string;
  /** Returns the legacy HS256 secret; undefined when HS256 is not accepted. */
  readonly hsSecret?: () => Promise<string>;
  /** Leeway for `exp`, `nbf` and `iat`, seconds. Default 30. */
  readonly clockToleranceSeconds?: number;
  /** Key source (tests inject a local one); default: the remote JWKS, cached at module scope. */
  readonly jwks?: JWTVerifyGetKey;
  readonly now?: () => number;
  /** Optional online check that the session is still signed in (off unless configured). */
  readonly sessionCheck?: SessionCheck;
}

export interface Session {
  readonly userId: string;
  readonly sessionId: string;
  readonly exp: number;
  readonly aal: string;
}

export type Verdict = { readonly ok: true; readonly session: Session } | { readonly ok: false; readonly reason: string };

const ASYMMETRIC = new Set(['ES256', 'RS256']);
const FORBIDDEN_HEADERS = ['jku', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'jwk', 'crit'];
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const deny = (reason: string): Verdict => ({ ok: false, reason });

export function createVerifier(opts: VerifierOptions) {
  const tolerance = opts.clockToleranceSeconds ?? 30;
  const now = opts.now ?? Date.now;
  // One JWKS cache per cold start. A `kid` it does not know triggers at most one refetch per cooldown,
  // so a flood of random `kid`s cannot hammer the JWKS endpoint, and a rotated-in key is found.
  const jwks = opts.jwks ?? createRemoteJWKSet(new URL(opts.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000, timeoutDuration: 3_000 });
  // The KeyObject jose selected for a kid and alg, reused for a short while: selecting and converting a key
  // on every token would cost a third of a verification. Short, so a key dropped from the JWKS stops working
  // within this time of jose noticing.
  const selected = new Map<string, { key: KeyObject; until: number }>();
  async function publicKey(header: JWTHeaderParameters, alg: string): Promise<KeyObject> {
    const memoKey = `${alg} ${header.kid}`;
    const hit = selected.get(memoKey);
    // Wall-clock time, like jose's own JWKS cache (`now` is the claims' clock).
    if (hit && hit.until > Date.now()) return hit.key;
    const key = asKeyObject(await jwks(header, { payload: '', signature: '' } as unknown as Parameters<JWTVerifyGetKey>[1]), alg);
    if (selected.size >= 16) selected.clear();
    selected.set(memoKey, { key, until: Date.now() + KEY_MEMO_MS });
    return key;
  }

  return async function verify(authorization: string | undefined, duplicated = false): Promise<Verdict> {
    if (duplicated) return deny('duplicate_authorization');
    if (!authorization) return deny('missing_token');
    // Size first: an oversized header is refused before any parsing, crypto or key fetch.
    if (Buffer.byteLength(authorization, 'utf8') > MAX_AUTHORIZATION_HEADER_BYTES) return deny('token_too_large');
    const m = BEARER.exec(authorization);
    if (!m) return deny('malformed_token');
    const token = m[1]!;

    let header: JWTHeaderParameters;
    try {
      header = decodeSegment(token.slice(0, token.indexOf('.'))) as unknown as JWTHeaderParameters;
    } catch {
      return deny('malformed_token');
    }
    if (FORBIDDEN_HEADERS.some((h) => h in header)) return deny('forbidden_header');
    const alg = header.alg;
    const symmetric = alg === 'HS256' && opts.hsSecret !== undefined;
    if (!alg || (!ASYMMETRIC.has(alg) && !symmetric)) return deny('alg_not_allowed');
    if (!symmetric && (typeof header.kid !== 'string' || header.kid.length === 0 || header.kid.length > 256)) return deny('missing_kid');

    let payload: JWTPayload;
    try {
      const key = symmetric ? hmacKey(await opts.hsSecret!()) : await publicKey(header, alg);
      if (!signatureValid(token, alg, key)) return deny('bad_signature');
      payload = decodePayload(token);
    } catch (err) {
      return classify(err);
    }
    const claims = checkClaims(payload, opts.issuer, Math.floor(now() / 1000), tolerance);
    if (claims) return deny(claims);

    const nowS = Math.floor(now() / 1000);
    if (typeof payload.iat !== 'number' || payload.iat > nowS + tolerance) return deny('issued_in_future');
    if (payload['role'] !== 'authenticated') return deny('bad_role');
    if (typeof payload.sub !== 'string' || !UUID.test(payload.sub)) return deny('bad_subject');
    // Supabase always sends a boolean; anything but an explicit false (or no claim) is treated as anonymous.
    if (payload['is_anonymous'] !== undefined && payload['is_anonymous'] !== false) return deny('anonymous');
    if (typeof payload.exp !== 'number') return deny('missing_exp');
    // Last, and only for an otherwise valid token: a network call must not be an attacker's lever.
    if (opts.sessionCheck && !(await opts.sessionCheck(token, payload.sub.toLowerCase()))) return deny('session_signed_out');

    return {
      ok: true,
      session: {
        userId: payload.sub.toLowerCase(),
        sessionId: typeof payload['session_id'] === 'string' ? payload['session_id'] : '',
        exp: payload.exp,
        aal: typeof payload['aal'] === 'string' ? payload['aal'] : '',
      },
    };
  };
}

/** How long a selected key is reused without asking jose's JWKS cache again, milliseconds. */
const KEY_MEMO_MS = 30_000;

/** A base64url JSON object segment (header or payload); throws on anything else. */
function decodeSegment(segment: string): Record<string, unknown> {
  const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new errors.JWTInvalid('segment is not a JSON object');
  return value as Record<string, unknown>;
}

/** The signed part of a compact JWS and its signature bytes. */
function parts(token: string): { data: Buffer; signature: Buffer } {
  const dot = token.lastIndexOf('.');
  return { data: Buffer.from(token.slice(0, dot), 'ascii'), signature: Buffer.from(token.slice(dot + 1), 'base64url') };
}

const EXPECTED_KEY = { ES256: 'ec', RS256: 'rsa' } as const;

/** The key jose selected, as a node:crypto KeyObject of the type the algorithm requires (cached per key). */
const keyObjects = new WeakMap<object, KeyObject>();
function asKeyObject(key: unknown, alg: string): KeyObject {
  let ko: KeyObject | undefined;
  if (key instanceof KeyObject) ko = key;
  else if (key && typeof key === 'object' && !(key instanceof Uint8Array)) {
    ko = keyObjects.get(key);
    if (!ko) {
      ko = 'type' in key && 'algorithm' in key ? KeyObject.from(key as webcrypto.CryptoKey) : createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
      keyObjects.set(key, ko);
    }
  }
  const wanted = EXPECTED_KEY[alg as keyof typeof EXPECTED_KEY];
  if (!ko || ko.type !== 'public' || ko.asymmetricKeyType !== wanted) throw new errors.JOSEAlgNotAllowed('key type does not match the algorithm');
  if (alg === 'ES256' && ko.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new errors.JOSEAlgNotAllowed('ES256 needs a P-256 key');
  if (alg === 'RS256' && (ko.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new errors.JOSEAlgNotAllowed('RSA keys shorter than 2048 bits are refused');
  return ko;
}

/** The legacy HS256 secret as a KeyObject, cached for the secret value (one entry: the current secret). */
const hmacKeys = new Map<string, KeyObject>();
function hmacKey(secret: string): KeyObject {
  let key = hmacKeys.get(secret);
  if (!key) {
    hmacKeys.clear();
    key = createSecretKey(Buffer.from(secret, 'utf8'));
    hmacKeys.set(secret, key);
  }
  return key;
}

/**
 * Checks the signature with node:crypto. ES256 signatures are exactly 64 bytes (r‖s), never DER. The
 * signature segment must be the canonical base64url of its bytes: Node's decoder ignores a last character's
 * spare bits, and accepting those spellings would let one token travel as several different headers (each a
 * miss in API Gateway's authorizer cache, and a way around any denylist keyed by the token).
 */
function signatureValid(token: string, alg: string, key: KeyObject): boolean {
  const { data, signature } = parts(token);
  if (signature.toString('base64url') !== token.slice(token.lastIndexOf('.') + 1)) return false;
  if (alg === 'HS256') {
    const expected = createHmac('sha256', key).update(data).digest();
    return signature.length === expected.length && timingSafeEqual(signature, expected);
  }
  if (alg === 'ES256' && signature.length !== 64) return false;
  return verifySignature('sha256', data, alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, signature);
}

/** The payload of a verified token: a JSON object, else the token is malformed. */
function decodePayload(token: string): JWTPayload {
  try {
    return decodeSegment(token.slice(token.indexOf('.') + 1, token.lastIndexOf('.'))) as JWTPayload;
  } catch {
    throw new errors.JWTInvalid('payload is not a JSON object');
  }
}

/**
 * The registered claims, in the order jose's jwtVerify checks them (so denial reasons stay the same): presence
 * of iss, aud and the required claims; iss and aud values; iat, nbf and exp as numeric dates, with the leeway.
 * Returns a denial reason, or undefined when they hold.
 */
function checkClaims(p: JWTPayload, issuer: string, nowS: number, tolerance: number): string | undefined {
  for (const claim of ['iss', 'aud', 'role', 'iat', 'exp', 'sub']) if (!Object.hasOwn(p, claim)) return `claim_${claim}`;
  if (p.iss !== issuer) return 'claim_iss';
  const aud = p.aud;
  if (!(aud === 'authenticated' || (Array.isArray(aud) && aud.includes('authenticated')))) return 'claim_aud';
  const numeric = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (!numeric(p.iat)) return 'claim_iat';
  if (p.nbf !== undefined && !numeric(p.nbf)) return 'claim_nbf';
  if (p.nbf !== undefined && p.nbf > nowS + tolerance) return 'claim_nbf';
  if (!numeric(p.exp)) return 'claim_exp';
  if (p.exp! <= nowS - tolerance) return 'expired';
  return undefined;
}

/** Maps jose's errors to a denial reason; failures to reach the key source fail closed as 503. */
function classify(err: unknown): Verdict {
  if (err instanceof errors.JWTExpired) return deny('expired');
  if (err instanceof errors.JWTClaimValidationFailed) return deny(`claim_${err.claim}`);
  if (err instanceof errors.JWSSignatureVerificationFailed) return deny('bad_signature');
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return deny('unknown_kid');
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return deny('alg_not_allowed');
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return deny('malformed_token');
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) throw new UnavailableError({ reason: 'jwks_unavailable', cause: err });
  if (err instanceof UnavailableError) throw err;
  if (err instanceof TypeError && /fetch/i.test(err.message)) throw new UnavailableError({ reason: 'jwks_unavailable', cause: err });
  // jose throws its base JOSEError only when the JWKS answer is not a 200 JSON document: the key source is down.
  if (err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC') throw new UnavailableError({ reason: 'jwks_unavailable', cause: err });
  if (err instanceof errors.JOSEError) return deny('invalid_token');
  // Key import failures for a malformed key or signature shape land here: still a denial, never Allow.
  if (err instanceof Error && (err.name === 'TypeError' || err.name === 'DataError')) return deny('invalid_token');
  throw new UnavailableError({ reason: 'verifier_failure', cause: err });
}
