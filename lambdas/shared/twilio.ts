import twilio from 'twilio';
import AccessToken from 'twilio/lib/jwt/AccessToken';
import RequestClient from 'twilio/lib/base/RequestClient';
import RestException from 'twilio/lib/base/RestException';
import { InvalidRequestError, UpstreamError } from './errors';
import type { CallStatus } from './store';

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
    callerId: s('callerId', /^\+[1-9]\d{6,14}$/),
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

/** Sends the SDK's requests to another base URL (a loopback stand-in), with a request timeout. */
class RebasedRequestClient extends RequestClient {
  constructor(
    private readonly baseUrl: string | undefined,
    timeoutMs: number,
  ) {
    super({ timeout: timeoutMs, keepAlive: true });
  }
  override request<T>(opts: RequestClient.RequestOptions<T>) {
    if (this.baseUrl) opts = { ...opts, uri: opts.uri.replace(/^https:\/\/api\.twilio\.com/, this.baseUrl) };
    return super.request(opts);
  }
}

export class TwilioRest implements TwilioPort {
  private readonly clients = new Map<string, ReturnType<typeof twilio>>();

  constructor(
    private readonly baseUrl: string | undefined,
    private readonly timeoutMs = 5000,
  ) {}

  private client(creds: TwilioCredentials) {
    const key = `${creds.accountSid}:${creds.apiKeySid}:${creds.apiKeySecret}`;
    let c = this.clients.get(key);
    if (!c) {
      // API-key credentials (not the account auth token): revocable and scoped to this service.
      c = twilio(creds.apiKeySid, creds.apiKeySecret, { accountSid: creds.accountSid, httpClient: new RebasedRequestClient(this.baseUrl, this.timeoutMs) });
      this.clients.clear();
      this.clients.set(key, c);
    }
    return c;
  }

  mintAccessToken(creds: TwilioCredentials, identity: string, ttlSeconds: number): string {
    const token = new AccessToken(creds.accountSid, creds.apiKeySid, creds.apiKeySecret, { identity, ttl: Math.min(ttlSeconds, 86_400) });
    token.addGrant(new AccessToken.VoiceGrant({ ...(creds.twimlAppSid ? { outgoingApplicationSid: creds.twimlAppSid } : {}), incomingAllow: false }));
    return token.toJwt();
  }

  async createCall(creds: TwilioCredentials, to: string, opts: CallOptions): Promise<{ sid: string; status: CallStatus }> {
    try {
      const call = await this.client(creds).calls.create({
        to,
        from: creds.callerId,
        ...(creds.twimlAppSid ? { applicationSid: creds.twimlAppSid } : { url: creds.voiceUrl! }),
        statusCallback: opts.statusCallback,
        statusCallbackMethod: 'POST',
        statusCallbackEvent: [...STATUS_CALLBACK_EVENTS],
        timeLimit: opts.timeLimit,
      });
      return { sid: call.sid, status: call.status as CallStatus };
    } catch (err) {
      throw mapTwilioError(err, 'create');
    }
  }

  async endCall(creds: TwilioCredentials, callSid: string): Promise<'completed' | 'already_ended'> {
    try {
      // `completed` ends a call in any state, including one that is ringing or in progress.
      await this.client(creds).calls(callSid).update({ status: 'completed' });
      return 'completed';
    } catch (err) {
      if (err instanceof RestException && err.code !== undefined && ALREADY_ENDED.has(err.code)) return 'already_ended';
      throw mapTwilioError(err, 'end');
    }
  }
}

/**
 * Maps a Twilio SDK failure to the contract: user-fixable → 400, everything else → 502. The cause kept for
 * the log is rebuilt from the error code only: Twilio's messages quote the phone number, which must not
 * reach the logs.
 */
export function mapTwilioError(err: unknown, op: string): Error {
  if (err instanceof RestException) {
    const cause = new Error(`Twilio error ${err.code ?? 'unknown'} (HTTP ${err.status})`);
    if (err.code !== undefined && USER_FIXABLE.has(err.code)) {
      return new InvalidRequestError({ reason: `twilio_${err.code}`, message: 'The destination number is not valid or cannot be called.', cause });
    }
    return new UpstreamError({ reason: `twilio_${op}_${err.code ?? err.status}`, cause });
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  return new UpstreamError({ reason: `twilio_${op}_network`, cause: new Error(`Twilio request failed (${typeof code === 'string' ? code : 'network'})`) });
}
