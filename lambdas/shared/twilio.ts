import { CALL_SID, E164 } from './contract';
import { InvalidRequestError, UpstreamError } from './errors';
import { type CallStatus, STATUS_RANK } from './store';

/** The Twilio credentials secret (JSON in Secrets Manager). */
export interface TwilioCredentials {
  readonly accountSid: string;
  readonly apiKeySid: string;
  readonly apiKeySecret: string;
  /** TwiML App that tells Twilio what to do when the call connects (or `voiceUrl`). */
  readonly twimlAppSid?: string;
  readonly voiceUrl?: string;
  /** The verified caller id calls are placed from (E.164). */
  readonly callerId: string;
  /** The account's auth token: Twilio signs status callbacks with it. Needed by the status function only. */
  readonly authToken?: string;
}

export function parseTwilioCredentials(raw: string): TwilioCredentials {
  const v = JSON.parse(raw) as Record<string, unknown>;
  const s = (k: string, re: RegExp): string => {
    const x = v[k];
    if (typeof x !== 'string' || !re.test(x)) throw new Error(`twilio secret: "${k}" is missing or malformed`);
    return x;
  };
  const creds: TwilioCredentials = {
    accountSid: s('accountSid', /^AC[0-9a-f]{32}$/),
    apiKeySid: s('apiKeySid', /^SK[0-9a-f]{32}$/),
    apiKeySecret: s('apiKeySecret', /^.{16,}$/),
    callerId: s('callerId', E164),
    ...(v['twimlAppSid'] ? { twimlAppSid: s('twimlAppSid', /^AP[0-9a-f]{32}$/) } : {}),
    ...(v['voiceUrl'] ? { voiceUrl: s('voiceUrl', /^https:\/\/\S+$/) } : {}),
    ...(v['authToken'] ? { authToken: s('authToken', /^[0-9a-f]{32}$/) } : {}),
  };
  if (!creds.twimlAppSid && !creds.voiceUrl) throw new Error('twilio secret: set "twimlAppSid" or "voiceUrl"');
  return creds;
}

/** Twilio allows letters, digits and underscore in an identity, at most 121 characters. */
export function twilioIdentity(userId: string): string {
  const id = `u_${userId.toLowerCase().replace(/-/g, '_')}`;
  if (!/^[A-Za-z0-9_]{1,121}$/.test(id)) throw new InvalidRequestError({ reason: 'identity_unmappable' });
  return id;
}

/** The Twilio port used by the services. */
export interface TwilioPort {
  /** Mints a Voice Access Token (a JWT signed with the API key secret). Local: no network. */
  mintAccessToken(creds: TwilioCredentials, identity: string, ttlSeconds: number): string;
  createCall(creds: TwilioCredentials, to: string, opts: CallOptions): Promise<{ sid: string; status: CallStatus }>;
  /** Ends a call; resolves `already_ended` when Twilio says it is over or gone. */
  endCall(creds: TwilioCredentials, callSid: string): Promise<'completed' | 'already_ended'>;
  /**
   * A call's current status at Twilio (`completed` for one Twilio no longer knows). Used only to find calls
   * whose end was never reported (see `reconcileSlots`); a port without it never reconciles.
   */
  fetchCallStatus?(creds: TwilioCredentials, callSid: string): Promise<CallStatus>;
}

export interface CallOptions {
  /** Where Twilio reports the call's progress (signed with the auth token). */
  readonly statusCallback: string;
  /** Longest the call may last, seconds (Twilio ends it then). */
  readonly timeLimit: number;
}

/**
 * The status callback URL of one user's calls: the route's public URL with the owner as its only query
 * parameter. Twilio signs the whole URL, so the owner named there is as trustworthy as the signature.
 */
export function callbackUrlFor(statusCallbackUrl: string, userId: string): string {
  return `${statusCallbackUrl}?u=${encodeURIComponent(userId)}`;
}

/** The call events Twilio reports to the status callback. */
export const STATUS_CALLBACK_EVENTS = ['initiated', 'ringing', 'answered', 'completed'] as const;

/** Twilio errors the caller can fix by changing the request: they map to 400, never 5xx. */
const USER_FIXABLE = new Set([
  13223, // invalid phone number format
  13224, // invalid phone number
  21211, // invalid 'To' phone number
  21214, // 'To' number cannot be reached
  21216, // number blocked
  21217, // not a valid phone number
  21401, // invalid phone number
  21610, // number unsubscribed
]);
/** Update errors that mean the call is already over (or no longer exists at Twilio). */
const ALREADY_ENDED = new Set([20404, 21220]);

/** Mints a Voice Access Token; see `twilio-token.ts` (only the token function loads it). */
export type Minter = (creds: TwilioCredentials, identity: string, ttlSeconds: number) => string;

/** A Twilio REST error answer: `{code, message, more_info, status}`. Only `code` and the HTTP status are kept. */
export class TwilioApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number | undefined,
  ) {
    super(`Twilio error ${code ?? 'unknown'} (HTTP ${status})`);
    this.name = 'TwilioApiError';
  }
}

/**
 * The two Calls requests this service makes, as plain HTTPS form posts with API-key Basic auth: the
 * `twilio` SDK's REST client would add 3.8 MB and ~150 ms to every cold start for these two requests.
 * Requests and answers are checked against Twilio's OpenAPI description in the contract tests.
 */
export class TwilioRest implements TwilioPort {
  private readonly base: string;

  constructor(
    baseUrl: string | undefined,
    private readonly timeoutMs = 5000,
    private readonly mint?: Minter,
  ) {
    this.base = (baseUrl ?? 'https://api.twilio.com').replace(/\/+$/, '');
  }

  mintAccessToken(creds: TwilioCredentials, identity: string, ttlSeconds: number): string {
    if (!this.mint) throw new Error('TwilioRest: no token minter configured');
    return this.mint(creds, identity, ttlSeconds);
  }

  /** Sends a request to a Calls URL (a form for POST); resolves the JSON answer, throws TwilioApiError on an error status. */
  private async post(creds: TwilioCredentials, path: string, form: URLSearchParams | undefined): Promise<Record<string, unknown>> {
    // API-key credentials (not the account auth token): revocable and scoped to this service.
    const auth = Buffer.from(`${creds.apiKeySid}:${creds.apiKeySecret}`).toString('base64');
    const res = await fetch(`${this.base}/2010-04-01/Accounts/${creds.accountSid}/${path}`, {
      method: form ? 'POST' : 'GET',
      headers: { Authorization: `Basic ${auth}`, Accept: 'application/json', ...(form ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}) },
      ...(form ? { body: form.toString() } : {}),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON (a proxy's page): the status alone decides
    }
    if (res.status >= 400) throw new TwilioApiError(res.status, typeof body['code'] === 'number' ? body['code'] : undefined);
    return body;
  }

  async createCall(creds: TwilioCredentials, to: string, opts: CallOptions): Promise<{ sid: string; status: CallStatus }> {
    const form = new URLSearchParams({ To: to, From: creds.callerId });
    if (creds.twimlAppSid) form.set('ApplicationSid', creds.twimlAppSid);
    else form.set('Url', creds.voiceUrl!);
    form.set('StatusCallback', opts.statusCallback);
    form.set('StatusCallbackMethod', 'POST');
    for (const event of STATUS_CALLBACK_EVENTS) form.append('StatusCallbackEvent', event);
    form.set('TimeLimit', String(opts.timeLimit));
    try {
      const call = await this.post(creds, 'Calls.json', form);
      const sid = call['sid'];
      const status = call['status'];
      if (typeof sid !== 'string' || !CALL_SID.test(sid) || typeof status !== 'string' || !(status in STATUS_RANK)) {
        throw new TwilioApiError(502, undefined);
      }
      return { sid, status: status as CallStatus };
    } catch (err) {
      throw mapTwilioError(err, 'create');
    }
  }

  async endCall(creds: TwilioCredentials, callSid: string): Promise<'completed' | 'already_ended'> {
    try {
      // `completed` ends a call in any state, including one that is ringing or in progress.
      await this.post(creds, `Calls/${callSid}.json`, new URLSearchParams({ Status: 'completed' }));
      return 'completed';
    } catch (err) {
      if (err instanceof TwilioApiError && err.code !== undefined && ALREADY_ENDED.has(err.code)) return 'already_ended';
      throw mapTwilioError(err, 'end');
    }
  }

  async fetchCallStatus(creds: TwilioCredentials, callSid: string): Promise<CallStatus> {
    try {
      const status = (await this.post(creds, `Calls/${callSid}.json`, undefined))['status'];
      if (typeof status !== 'string' || !(status in STATUS_RANK)) throw new TwilioApiError(502, undefined);
      return status as CallStatus;
    } catch (err) {
      if (err instanceof TwilioApiError && err.code === 20404) return 'completed';
      throw mapTwilioError(err, 'fetch');
    }
  }
}

/**
 * Maps a Twilio failure to the contract: user-fixable → 400, everything else → 502. The cause kept for
 * the log carries the error code only: Twilio's messages quote the phone number, which must not reach the
 * logs. No answer at all (timeout, connection refused or reset) is `twilio_<op>_network`.
 */
export function mapTwilioError(err: unknown, op: string): Error {
  if (err instanceof TwilioApiError) {
    const cause = new Error(err.message);
    if (err.code !== undefined && USER_FIXABLE.has(err.code)) {
      return new InvalidRequestError({ reason: `twilio_${err.code}`, message: 'The destination number is not valid or cannot be called.', cause });
    }
    return new UpstreamError({ reason: `twilio_${op}_${err.code ?? err.status}`, cause });
  }
  const e = err as { name?: unknown; cause?: { code?: unknown } } | undefined;
  const code = typeof e?.cause?.code === 'string' ? e.cause.code : typeof e?.name === 'string' ? e.name : 'network';
  return new UpstreamError({ reason: `twilio_${op}_${NO_ANSWER}`, cause: new Error(`Twilio request failed (${code})`) });
}

const NO_ANSWER = 'network';

/** Whether a failure mapped above means Twilio never answered (so what was asked may or may not have happened). */
export function twilioNeverAnswered(err: unknown): boolean {
  return err instanceof UpstreamError && err.reason.endsWith(`_${NO_ANSWER}`);
}
