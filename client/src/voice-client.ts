/**
 * A small, dependency-free browser client for the voice token service.
 *
 * It speaks only to the service's own API with the user's Supabase access token. The Twilio Access Token
 * stays on the server: no response carries it, and this client neither asks for one nor keeps anything
 * between calls (no storage, no cookies, no cache).
 *
 * ```ts
 * const voice = createVoiceClient({ baseUrl: import.meta.env.VITE_VOICE_API_URL, getAccessToken: () => supabase.auth.getSession() });
 * await voice.openSession();
 * const call = await voice.call('+14155550123', { idempotencyKey: crypto.randomUUID() });
 * const { status } = await voice.getCall(call.sid); // poll it; stop when isCallOver(status)
 * await voice.hangup(call.sid);
 * await voice.closeSession(); // on sign-out, before supabase.auth.signOut()
 * ```
 *
 * Copy this one file into a frontend, or import it by path; it needs ES2020 and `fetch`, nothing else.
 */

/** Error codes of the API's contract (`{"error":{"code","message"}}`), one per documented failure. */
export const API_ERROR_CODES = [
  'invalid_request',
  'unauthenticated',
  'origin_not_allowed',
  'destination_not_allowed',
  'invalid_signature',
  'call_not_found',
  'not_found',
  'method_not_allowed',
  'no_voice_session',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'internal_error',
  'upstream_error',
  'unavailable',
] as const;

export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/**
 * Failures that happen before or without a readable answer from the API (`status` is 0):
 * - `network_error`: no answer could be read: offline, DNS, a timeout, or a response the browser hid from
 *   the page because CORS did not allow this origin to read it (the browser reports all of these alike);
 * - `unexpected_response`: an answer that is not the API's JSON contract (a proxy's error page, say).
 * A missing access token is reported as `unauthenticated` with status 0: nothing was sent.
 */
export type ClientErrorCode = 'network_error' | 'unexpected_response';

export type VoiceErrorCode = ApiErrorCode | ClientErrorCode;

/** The one error this client throws. Branch on `code`; show `message` to the user as it is. */
export class VoiceApiError extends Error {
  override readonly name = 'VoiceApiError';
  /** The contract's error code, or a client-side code (see {@link ClientErrorCode}). */
  readonly code: VoiceErrorCode;
  /** HTTP status of the answer; 0 when there was no readable answer or nothing was sent. */
  readonly status: number;
  /** Seconds to wait before retrying, from `Retry-After` (on `rate_limited`); undefined when not given. */
  readonly retryAfter: number | undefined;

  constructor(code: VoiceErrorCode, message: string, status: number, retryAfter?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** An open voice session. The Twilio token behind it never leaves the server. */
export interface VoiceSession {
  readonly status: 'active';
  /** When the session ends, ISO 8601 (UTC). Open it again before then to keep calling. */
  readonly expiresAt: string;
}

/**
 * Twilio's call statuses, as the API reports them: `queued` (just placed) < `initiated` < `ringing` <
 * `in-progress` < one of the ended ones (see {@link ENDED_CALL_STATUSES}).
 */
export type CallStatus = 'queued' | 'initiated' | 'ringing' | 'in-progress' | 'completed' | 'busy' | 'failed' | 'no-answer' | 'canceled';

/** The statuses of a call that is over: it never changes again, so stop polling `getCall()`. */
export const ENDED_CALL_STATUSES: ReadonlySet<CallStatus> = new Set<CallStatus>(['completed', 'busy', 'failed', 'no-answer', 'canceled']);

/** Whether a call with this status is over (hung up, busy, unanswered, failed or canceled). */
export function isCallOver(status: CallStatus): boolean {
  return ENDED_CALL_STATUSES.has(status);
}

export interface CallInfo {
  /** Twilio's call SID, `CA` + 32 hex digits. */
  readonly sid: string;
  readonly status: CallStatus;
}

/** The shape of `supabase.auth.getSession()`'s result, so it can be passed as `getAccessToken` directly. */
export interface SupabaseSessionResult {
  readonly data: { readonly session: { readonly access_token: string } | null };
}

/** An access token, nothing (signed out), or Supabase's `getSession()` result. */
export type AccessTokenSource = string | null | undefined | SupabaseSessionResult;

/** The part of `fetch` this client uses (the browser's by default). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; credentials: 'omit'; cache: 'no-store'; redirect: 'error' },
) => Promise<{ readonly status: number; readonly headers: { get(name: string): string | null }; text(): Promise<string> }>;

export interface VoiceClientOptions {
  /** The API's base URL without a trailing path: the stack's `ApiUrl` output, or `http://127.0.0.1:3000` locally. */
  readonly baseUrl: string;
  /**
   * Called before every request for the current Supabase access token. Pass `() => supabase.auth.getSession()`
   * as it is, or any function returning the token string. Returning nothing fails with `unauthenticated`.
   */
  readonly getAccessToken: () => AccessTokenSource | Promise<AccessTokenSource>;
  /** Default: the global `fetch`. */
  readonly fetch?: FetchLike;
}

export interface CallOptions {
  /**
   * 8–128 of `A-Za-z0-9_-`. Reuse the same key when retrying one call (after a network error, say): the API
   * returns the first call instead of dialling twice. A fresh `crypto.randomUUID()` per call is a good key.
   */
  readonly idempotencyKey?: string;
}

export interface VoiceClient {
  /** `POST /api/twilio/token`: opens (or reuses) the user's voice session. */
  openSession(): Promise<VoiceSession>;
  /** `POST /api/twilio/voice`: places a call to an E.164 number. Needs an open session (else `no_voice_session`). */
  call(to: string, options?: CallOptions): Promise<CallInfo>;
  /** `POST /api/twilio/hangup`: ends one of the user's calls; ending an ended call succeeds. */
  hangup(callSid: string): Promise<CallInfo>;
  /**
   * `GET /api/twilio/voice?callSid=…`: one of the user's calls as it stands, as Twilio last reported it. Poll it
   * (every second or two) until {@link isCallOver}: a call the far end hangs up, or that is busy or unanswered,
   * ends with no action of the user. Needs no voice session. Someone else's call or an unknown SID fails with
   * `call_not_found`, a malformed SID with `invalid_request`.
   */
  getCall(callSid: string): Promise<CallInfo>;
  /**
   * `DELETE /api/twilio/token`: ends the user's voice session (logout); afterwards `call` and `hangup` fail
   * with `no_voice_session` until `openSession()`. Resolves also when there was no session. Call it on sign-out,
   * before `supabase.auth.signOut()` (it needs the access token). Calls already placed are not ended.
   */
  closeSession(): Promise<void>;
}

const CALL_STATUSES: readonly string[] = ['queued', 'initiated', 'ringing', 'in-progress', 'completed', 'busy', 'failed', 'no-answer', 'canceled'];

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && !url.search && !url.hash;
  } catch {
    return false;
  }
}

/** Reads the token out of whatever `getAccessToken` returned. */
export function accessTokenOf(source: AccessTokenSource): string | undefined {
  if (typeof source === 'string') return source || undefined;
  if (isObject(source) && isObject(source.data) && isObject(source.data.session)) {
    const token = source.data.session.access_token;
    return typeof token === 'string' && token ? token : undefined;
  }
  return undefined;
}

/** `Retry-After` in seconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

export function createVoiceClient(options: VoiceClientOptions): VoiceClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  if (!isHttpUrl(baseUrl)) throw new TypeError('baseUrl must be an http(s) URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod');
  // Bound here: calling the browser's fetch as a method of another object throws "Illegal invocation".
  const fetchFn: FetchLike = options.fetch ?? (globalThis as unknown as { fetch: FetchLike }).fetch.bind(globalThis);

  /**
   * Sends one request with the bearer token; resolves to the JSON body of the expected status (an empty
   * object for a 204), and throws a VoiceApiError for anything else.
   */
  async function request(method: 'POST' | 'DELETE' | 'GET', path: string, body: Json | undefined, expected: number, extraHeaders: Record<string, string> = {}): Promise<Json> {
    let source: AccessTokenSource;
    try {
      source = await options.getAccessToken();
    } catch (cause) {
      throw new VoiceApiError('unauthenticated', 'Could not read the sign-in session.', 0, undefined, { cause });
    }
    const token = accessTokenOf(source);
    if (!token) throw new VoiceApiError('unauthenticated', 'Sign in first: there is no session.', 0);

    let res: Awaited<ReturnType<FetchLike>>;
    try {
      res = await fetchFn(`${baseUrl}${path}`, {
        method,
        // No body, no Content-Type (a DELETE or GET): one header fewer in the CORS preflight.
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...extraHeaders },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        // The API authenticates with the bearer token only; cookies are never needed and never sent.
        credentials: 'omit',
        cache: 'no-store',
        redirect: 'error',
      });
    } catch (cause) {
      throw new VoiceApiError('network_error', 'The voice service could not be reached (offline, or this site is not allowed to call it).', 0, undefined, { cause });
    }
    const text = await res.text().catch(() => '');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.status === expected && expected === 204) return {};
    if (res.status === expected && isObject(json)) return json;
    if (res.status >= 400 && isObject(json) && isObject(json.error)) {
      const { code, message } = json.error;
      if (typeof code === 'string' && (API_ERROR_CODES as readonly string[]).includes(code)) {
        const sentence = typeof message === 'string' && message ? message : code;
        throw new VoiceApiError(code as ApiErrorCode, sentence, res.status, parseRetryAfter(res.headers.get('Retry-After')));
      }
    }
    throw new VoiceApiError('unexpected_response', `The voice service answered unexpectedly (HTTP ${res.status}).`, res.status, parseRetryAfter(res.headers.get('Retry-After')));
  }

  const unexpected = (status: number) => new VoiceApiError('unexpected_response', 'The voice service answered unexpectedly.', status);

  // Results are rebuilt field by field: nothing else the server might add is passed on to the page.
  const callOf = (json: Json, status: number): CallInfo => {
    const call = json.call;
    if (!isObject(call) || typeof call.sid !== 'string' || typeof call.status !== 'string' || !CALL_STATUSES.includes(call.status)) throw unexpected(status);
    return { sid: call.sid, status: call.status as CallStatus };
  };

  return {
    async openSession() {
      const json = await request('POST', '/api/twilio/token', {}, 200);
      const s = json.session;
      if (!isObject(s) || s.status !== 'active' || typeof s.expiresAt !== 'string') throw unexpected(200);
      return { status: 'active', expiresAt: s.expiresAt };
    },
    async call(to, callOptions = {}) {
      const headers: Record<string, string> = callOptions.idempotencyKey === undefined ? {} : { 'Idempotency-Key': callOptions.idempotencyKey };
      return callOf(await request('POST', '/api/twilio/voice', { to }, 201, headers), 201);
    },
    async hangup(callSid) {
      return callOf(await request('POST', '/api/twilio/hangup', { callSid }, 200), 200);
    },
    async getCall(callSid) {
      return callOf(await request('GET', `/api/twilio/voice?callSid=${encodeURIComponent(callSid)}`, undefined, 200), 200);
    },
    async closeSession() {
      await request('DELETE', '/api/twilio/token', undefined, 204);
    },
  };
}
