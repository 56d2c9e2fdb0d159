import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { MAX_AUTHORIZATION_HEADER_BYTES } from '../shared/contract';
import { UnavailableError } from '../shared/errors';
import type { SessionCheck } from './session-check';

/**
 * Verifies Supabase access tokens. Asymmetric tokens (ES256, RS256) are checked against the project's
 * JWKS; HS256 only when the legacy JWT secret is configured. Every choice an attacker could steer is
 * pinned: the algorithm allowlist per key type, no `jku`/`x5u`/`x5c`/`jwk`/`crit` headers, the issuer,
 * the audience, the role, a UUID subject, no anonymous sign-ins, and `exp`/`nbf`/`iat` with a small leeway.
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

  return async function verify(authorization: string | undefined, duplicated = false): Promise<Verdict> {
    if (duplicated) return deny('duplicate_authorization');
    if (!authorization) return deny('missing_token');
    // Size first: an oversized header is refused before any parsing, crypto or key fetch.
    if (Buffer.byteLength(authorization, 'utf8') > MAX_AUTHORIZATION_HEADER_BYTES) return deny('token_too_large');
    const m = BEARER.exec(authorization);
    if (!m) return deny('malformed_token');
    const token = m[1]!;

    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
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
      const verifyOpts = {
        issuer: opts.issuer,
        audience: 'authenticated',
        algorithms: [alg],
        clockTolerance: tolerance,
        requiredClaims: ['sub', 'exp', 'iat', 'role'],
        currentDate: new Date(now()),
      };
      payload = symmetric
        ? (await jwtVerify(token, new TextEncoder().encode(await opts.hsSecret!()), verifyOpts)).payload
        : (await jwtVerify(token, jwks, verifyOpts)).payload;
    } catch (err) {
      return classify(err);
    }

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
