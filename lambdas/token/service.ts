import { seal } from '../shared/crypto';
import { type Deps, seconds, sessionDecrypts } from '../shared/deps';
import { RateLimitedError } from '../shared/errors';
import type { Caller } from '../shared/http';
import { sessionItemKey } from '../shared/store';
import { twilioIdentity } from '../shared/twilio';

export interface TokenLimits {
  /** Lifetime of a minted token (and so of the voice session), seconds; at most 24 h. */
  readonly tokenTtlSeconds: number;
  /** `/token` requests per source IP per minute. */
  readonly ipTokenLimitPerMinute: number;
  /** Tokens minted per user per day. */
  readonly userTokenQuotaPerDay: number;
  /** Bind the voice session to the source IP that opens it (a session from another IP is replaced). */
  readonly bindSessionToIp?: boolean;
}

export interface SessionView {
  readonly status: 'active';
  readonly expiresAt: string;
}

/** A stored token this close to expiry is replaced rather than reused (300 s, or a quarter of the TTL). */
export const renewBeforeSeconds = (ttl: number) => Math.min(300, Math.floor(ttl / 4));

/**
 * Opens (or reuses) the caller's voice session: mints a Twilio Voice Access Token, encrypts it and stores
 * it with a TTL. The token itself never leaves the server; the caller learns only when the session ends.
 */
export async function openSession(deps: Deps, limits: TokenLimits, caller: Caller): Promise<{ session: SessionView; reused: boolean }> {
  const now = seconds(deps.now());

  // Per-IP limit first, on every request (reuse included): cheap rejection, and fail closed on error.
  const ip = await deps.store.consume(`ip-token#${caller.sourceIp}`, limits.ipTokenLimitPerMinute, 60, now);
  if (!ip.allowed) throw new RateLimitedError(ip.retryAfter, 'ip_limit');

  // Mint first (local work, no network), then one conditional write that either stores this session and
  // counts it against the daily quota, or keeps the usable session already stored: two round trips either way.
  const ttl = Math.min(limits.tokenTtlSeconds, 86_400);
  const [creds, keyring] = await Promise.all([deps.twilioCredentials(), deps.keyring()]);
  const jwt = deps.twilio.mintAccessToken(creds, twilioIdentity(caller.userId), ttl);
  const session = { userId: caller.userId, ...seal(keyring, sessionItemKey(caller.userId), jwt), issuedAt: now, expiresAt: now + ttl, ...(limits.bindSessionToIp ? { ip: caller.sourceIp } : {}) };
  const quota = limits.userTokenQuotaPerDay;
  const keep = { keepIfExpiringAfter: now + renewBeforeSeconds(ttl), ...(limits.bindSessionToIp ? { boundIp: caller.sourceIp } : {}) };

  let out = await deps.store.writeSession(session, { dailyQuota: quota, ...keep }, now);
  if (!out.written && out.reason === 'kept') {
    if (await sessionDecrypts(deps, out.current)) return { session: view(out.current.expiresAt), reused: true };
    // The stored token no longer decrypts (tampered, or its key version retired): replace it.
    out = await deps.store.writeSession(session, { dailyQuota: quota }, now);
  }
  if (!out.written) throw new RateLimitedError(out.reason === 'quota' ? out.retryAfter : 1, 'user_token_quota');
  return { session: view(session.expiresAt), reused: false };
}

const view = (expiresAt: number): SessionView => ({ status: 'active', expiresAt: new Date(expiresAt * 1000).toISOString() });

/**
 * Ends the caller's voice session (logout): the stored token is deleted, so `/voice` and `/hangup` answer 409
 * until a new session is opened. Idempotent. Calls already placed go on until they end.
 */
export async function closeSession(deps: Deps, caller: Caller): Promise<void> {
  await deps.store.deleteSession(caller.userId);
}
