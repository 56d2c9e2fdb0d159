import { createHash } from 'node:crypto';
import { UnavailableError } from '../shared/errors';

/**
 * The optional online session check: asks Supabase's auth API whether the session behind a (valid) access token
 * is still signed in, the way `supabase.auth.getUser(jwt)` does: `GET ${SUPABASE_URL}/auth/v1/user` with the
 * token as Bearer and the project's anon key as `apikey`. A direct request rather than @supabase/supabase-js:
 * `getUser` is exactly this one request, and the client library would add its auth, PostgREST, storage and
 * realtime modules to the authorizer's bundle and cold start for nothing.
 *
 * 200 with the token's user: signed in. 401/403/404 (signed out, session or user gone): denied. Anything else
 * (5xx, 429, timeout, network): the check could not decide, so the authorizer fails closed (503). Answers are
 * cached briefly per token, so a burst costs one request; a sign-out is seen within the cache time.
 */

export interface SessionCheckOptions {
  /** `${SUPABASE_URL}/auth/v1/user` */
  readonly url: string;
  /** The project's anon (publishable) key. */
  readonly apiKey: string;
  /** How long an answer is reused, seconds. Default 30. */
  readonly cacheSeconds?: number;
  /** Per-request timeout, milliseconds. Default 2000 (inside the authorizer's 5 s). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
}

/** Resolves true while the session is signed in, false once it is not; throws UnavailableError when unsure. */
export type SessionCheck = (token: string, userId: string) => Promise<boolean>;

/** Entries kept at most; the cache is dropped whole when full (a bound, not an LRU: answers live 30 s anyway). */
const MAX_ENTRIES = 10_000;

export function createSessionCheck(o: SessionCheckOptions): SessionCheck {
  const ttlMs = (o.cacheSeconds ?? 30) * 1000;
  const now = o.now ?? Date.now;
  const doFetch = o.fetch ?? fetch;
  const cache = new Map<string, { signedIn: boolean; until: number }>();

  return async (token, userId) => {
    const key = createHash('sha256').update(token).digest('hex');
    const hit = cache.get(key);
    if (hit && hit.until > now()) return hit.signedIn;

    let status: number;
    let body: unknown;
    try {
      const res = await doFetch(o.url, {
        method: 'GET',
        headers: { Authorization: `Bearer ${token}`, apikey: o.apiKey, Accept: 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(o.timeoutMs ?? 2000),
      });
      status = res.status;
      body = status === 200 ? await res.json() : undefined;
    } catch (err) {
      throw new UnavailableError({ reason: 'session_check_unavailable', cause: err });
    }
    let signedIn: boolean;
    if (status === 200) signedIn = typeof body === 'object' && body !== null && String((body as { id?: unknown }).id).toLowerCase() === userId;
    else if (status === 401 || status === 403 || status === 404) signedIn = false;
    else throw new UnavailableError({ reason: 'session_check_unavailable', cause: new Error(`Supabase auth answered HTTP ${status}`) });

    if (cache.size >= MAX_ENTRIES) cache.clear();
    cache.set(key, { signedIn, until: now() + ttlMs });
    return signedIn;
  };
}
