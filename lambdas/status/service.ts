import { CALL_SID } from '../shared/contract';
import { type Deps, seconds } from '../shared/deps';
import { ForbiddenSignatureError, InvalidRequestError, RateLimitedError, UnavailableError } from '../shared/errors';
import { logger } from '../shared/logger';
import { type CallStatus, CALL_STATUSES, ENDED_STATUSES } from '../shared/store';
import { callbackUrlFor } from '../shared/twilio';
import { type FormParams, validTwilioSignature } from '../shared/twilio-signature';

export interface StatusConfig {
  /** Public URL of this route as given to Twilio (the URL signatures are checked against). */
  readonly statusCallbackUrl: string;
  /** Rejected (unsigned, mis-signed, foreign) callbacks per source IP per minute before answering 429. */
  readonly statusLimitPerIpPerMinute: number;
}

/** One status callback as it arrived: form parameters, the two signature headers, the query and the source IP. */
export interface StatusCallback {
  readonly params: FormParams;
  readonly query: Readonly<Record<string, string>>;
  readonly signature: string | undefined;
  readonly signatureSettings: string | undefined;
  readonly sourceIp: string;
}

export interface StatusOutcome {
  readonly result: 'updated' | 'stale' | 'unknown';
  readonly userId: string;
  readonly callSid: string;
  readonly status: CallStatus;
}

const USER_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Records what Twilio reports about a call. First the signature over the exact public URL and every
 * parameter, then the account (403, nothing written but the rejection count of the source IP; past the
 * per-IP limit, 429), then the content. A valid callback moves the call record up its state order only, so
 * duplicates and reordering are harmless; an ended call frees its live-call slot. Unknown calls are ignored.
 * Valid callbacks are never limited here: Twilio does not retry a refused one, and a lost `completed` would
 * hold a live-call slot until it expires (API Gateway's method throttle bounds the route as a whole).
 */
export async function recordCallStatus(deps: Deps, config: StatusConfig, cb: StatusCallback): Promise<StatusOutcome> {
  const now = seconds(deps.now());
  const reject = async (reason: string): Promise<never> => {
    const limit = await deps.store.consume(`ip-status-rejected#${cb.sourceIp}`, config.statusLimitPerIpPerMinute, 60, now);
    if (!limit.allowed) throw new RateLimitedError(limit.retryAfter, 'status_ip_limit');
    throw new ForbiddenSignatureError({ reason });
  };

  const creds = await deps.twilioCredentials();
  if (!creds.authToken) throw new UnavailableError({ reason: 'twilio_auth_token_missing' });

  // The only URL we ever give Twilio is the route's URL with `?u=<owner>`; anything else cannot verify.
  const userId = Object.keys(cb.query).length === 1 ? cb.query['u'] : undefined;
  const url = userId !== undefined && USER_ID.test(userId) ? callbackUrlFor(config.statusCallbackUrl, userId) : undefined;
  if (!url || !validTwilioSignature({ authToken: creds.authToken, url, params: cb.params, signature: cb.signature, settingsHeader: cb.signatureSettings })) {
    return reject('bad_signature');
  }

  const single = (name: string): string | undefined => {
    const values = cb.params.filter(([k]) => k === name);
    return values.length === 1 ? values[0]![1] : undefined;
  };
  if (single('AccountSid') !== creds.accountSid) return reject('foreign_account');
  const callSid = single('CallSid') ?? '';
  const status = single('CallStatus') ?? '';
  if (!CALL_SID.test(callSid) || !(CALL_STATUSES as string[]).includes(status)) {
    throw new InvalidRequestError({ reason: 'bad_callback_fields', message: 'CallSid and CallStatus are required.' });
  }

  const out = await deps.store.advanceCallStatus(userId!, callSid, status as CallStatus, now);
  if (out.result === 'unknown') {
    logger.warn('status callback for an unknown call ignored', { userId, callSid, status });
    return { result: 'unknown', userId: userId!, callSid, status: status as CallStatus };
  }
  // Freed also on a repeated end report: a slot left behind by an earlier failure is freed then.
  if (ENDED_STATUSES.has(out.call.status)) await deps.store.releaseCallSlot(userId!, out.call.slot);
  return { result: out.result, userId: userId!, callSid, status: status as CallStatus };
}
