import { createHash } from 'node:crypto';
import { type Deps, requireSession, seconds } from '../shared/deps';
import { CallNotFoundError, DestinationNotAllowedError, InvalidRequestError, RateLimitedError, UnavailableError, UpstreamError } from '../shared/errors';
import type { Caller } from '../shared/http';
import { logger, maskPhone } from '../shared/logger';
import { type CallRecord, type CallStatus, ENDED_STATUSES, type KeyClaim, type KeyReplay } from '../shared/store';
import { callbackUrlFor, twilioNeverAnswered } from '../shared/twilio';

export interface VoiceLimits {
  readonly userCallQuotaPerDay: number;
  /** E.164 prefixes calls may go to (toll-fraud guard). */
  readonly dialPrefixes: readonly string[];
  /** Only the IP that opened the voice session may use it. */
  readonly bindSessionToIp?: boolean;
  /** Calls a user may have live at once. */
  readonly concurrentCallLimit: number;
  /** Longest a call may last (Twilio's `timeLimit`), seconds. */
  readonly maxCallSeconds: number;
  /** Public URL of `POST /api/twilio/status`, where Twilio reports each call's progress. */
  readonly statusCallbackUrl: string;
}

/** Slack on a live-call slot beyond `maxCallSeconds`: queueing and ringing (Twilio rings for up to 60 s). */
export const SLOT_SLACK_SECONDS = 180;

/** How long a call record is kept for ownership checks (and hangup), seconds. */
export const CALL_RECORD_TTL_SECONDS = 24 * 3600;

/**
 * Premium-rate, shared-cost and satellite ranges, refused even when a configured dialling prefix covers them:
 * the usual targets of toll fraud (international revenue share fraud), where each minute pays the number's owner.
 * A short built-in list of well-known ranges, not a complete tariff table: keep `dialPrefixes` narrow too.
 */
export const BLOCKED_PREFIXES: readonly string[] = [
  '+1900', // NANP premium rate (1-900)
  '+1976', // NANP pay-per-call (976)
  '+449', // UK premium rate (09)
  '+4484', // UK shared cost (084)
  '+4487', // UK special rate (087)
  '+4470', // UK personal numbering (070), often passed off as mobiles
  '+870', // Inmarsat
  '+881', // Global Mobile Satellite System
  '+882', // International Networks
  '+883', // International Networks
  '+979', // International Premium Rate Service
  '+808', // International Shared Cost Service
];

/** Whether `to` may be dialled: inside a configured prefix and outside every built-in premium range. */
export function destinationAllowed(to: string, dialPrefixes: readonly string[]): boolean {
  return dialPrefixes.some((p) => to.startsWith(p)) && !BLOCKED_PREFIXES.some((p) => to.startsWith(p));
}

const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{8,128}$/;
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

export interface CallView {
  readonly sid: string;
  readonly status: CallStatus;
}

/**
 * Places a call for the caller through Twilio's REST API, records that the caller owns it, and honours
 * `Idempotency-Key` so that a retried request returns the same call instead of dialling twice.
 */
export async function placeCall(deps: Deps, limits: VoiceLimits, caller: Caller, to: string, idempotencyKey: string | undefined): Promise<{ call: CallView; replayed: boolean }> {
  const now = seconds(deps.now());
  await requireSession(deps, await deps.store.getSession(caller.userId, now), limits.bindSessionToIp ? caller.sourceIp : undefined);

  if (!destinationAllowed(to, limits.dialPrefixes)) {
    const premium = BLOCKED_PREFIXES.some((p) => to.startsWith(p));
    throw new DestinationNotAllowedError({ reason: premium ? 'premium_range_blocked' : 'prefix_not_allowed' });
  }

  let key: KeyClaim | undefined;
  if (idempotencyKey !== undefined) {
    if (!IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new InvalidRequestError({ reason: 'bad_idempotency_key', message: 'Idempotency-Key must be 8 to 128 letters, digits, "-" or "_".' });
    }
    key = { hash: sha256(idempotencyKey), requestHash: sha256(to) };
  }

  // Daily quota, concurrent-call cap and the Idempotency-Key claim in one atomic step; the slot is held until
  // the call ends, and the call record carries the key's hash (so a replay finds the call, with no extra write).
  const admit = () =>
    deps.store.admitCall(caller.userId, { concurrentCalls: limits.concurrentCallLimit, callsPerDay: limits.userCallQuotaPerDay, slotExpiresAt: now + limits.maxCallSeconds + SLOT_SLACK_SECONDS }, now, key);
  let admitted = await admit();
  // At the cap: a call whose end Twilio never reported (a lost callback) would hold its slot until it expires.
  // Ask Twilio about the user's live calls, free the slots of those that ended, and try once more.
  if (!admitted.allowed && admitted.limiter === 'concurrent_calls' && (await reconcileSlots(deps, caller.userId, now)) > 0) admitted = await admit();
  if (!admitted.allowed) {
    if (admitted.limiter !== 'idempotency') throw new RateLimitedError(admitted.retryAfter, admitted.limiter);
    return replay(admitted.replay);
  }
  const slot = admitted.slot;
  // Frees the slot and the key claim of a call that was never placed: a retry with the key may dial.
  const unclaim = () =>
    deps.store.releaseCallSlot(caller.userId, slot, key?.hash).catch((err: unknown) => logger.error('could not free call slot; it frees itself at its expiry', { userId: caller.userId, cause: String(err) }));

  const creds = await deps.twilioCredentials().catch(async (err: unknown) => {
    await unclaim();
    throw err;
  });
  let call: { sid: string; status: CallStatus };
  try {
    call = await deps.twilio.createCall(creds, to, { statusCallback: callbackUrlFor(limits.statusCallbackUrl, caller.userId), timeLimit: limits.maxCallSeconds });
  } catch (err) {
    if (!twilioNeverAnswered(err)) {
      await unclaim();
      throw err;
    }
    // No answer from Twilio (timeout, connection lost): the call may exist. Its slot stays taken until it
    // expires, and a retry with the same Idempotency-Key gets this failure again instead of a second call.
    logger.warn('Twilio did not answer calls.create; the call may exist', { userId: caller.userId });
    if (key) {
      await deps.store.markOutcomeUnknown(caller.userId, key.hash).catch((e: unknown) =>
        logger.error('could not record the unknown outcome of an idempotency key', { userId: caller.userId, cause: String(e) }),
      );
    }
    throw err;
  }
  try {
    await deps.store.putCall({ userId: caller.userId, callSid: call.sid, status: call.status, slot, to: maskPhone(to), createdAt: now, expiresAt: now + CALL_RECORD_TTL_SECONDS, ...(key ? { idem: key.hash } : {}) });
  } catch (err) {
    // The call exists at Twilio but nobody could hang it up through us: end it rather than leave it dangling.
    logger.error('call placed but not recorded; ending it', { userId: caller.userId, callSid: call.sid });
    await deps.twilio.endCall(creds, call.sid).catch((e: unknown) => logger.error('could not end unrecorded call', { callSid: call.sid, cause: String(e) }));
    await unclaim();
    throw err instanceof UnavailableError ? err : new UnavailableError({ reason: 'call_record_failed', cause: err });
  }
  return { call: { sid: call.sid, status: call.status }, replayed: false };
}

/** The answer to a request whose Idempotency-Key was used before: the same call as it stands, or why not. */
function replay(r: KeyReplay): { call: CallView; replayed: true } {
  switch (r.state) {
    case 'done':
      return { call: viewOf(r.call), replayed: true };
    case 'pending':
      throw new RateLimitedError(1, 'idempotency_in_progress');
    case 'mismatch':
      throw new InvalidRequestError({ reason: 'idempotency_mismatch', message: 'This Idempotency-Key was already used for a different request.' });
    case 'unknown_outcome':
      // The first attempt timed out at Twilio: it may have dialled. The same key never dials again.
      throw new UpstreamError({ reason: 'idempotent_replay_unknown_outcome', message: 'The first attempt with this Idempotency-Key may have placed the call; it was not retried.' });
  }
}

/** A call younger than this is not asked about: its callbacks may simply not have arrived yet. */
export const RECONCILE_MIN_AGE_SECONDS = 30;
/** How often one instance asks Twilio about one user's live calls, at most. */
const RECONCILE_INTERVAL_MS = 30_000;
const lastReconciled = new Map<string, number>();

/**
 * Frees the live-call slots of the user's calls that Twilio says have ended although no status callback said
 * so (lost, refused or never sent). Runs only when the user meets the concurrent-call cap, asks Twilio about at
 * most the calls holding slots (older than 30 s), and at most once per 30 s per user and instance. Any failure
 * leaves the slots as they are: the cap stays closed. Returns how many slots it freed.
 */
export async function reconcileSlots(deps: Deps, userId: string, now: number): Promise<number> {
  const fetchStatus = deps.twilio.fetchCallStatus?.bind(deps.twilio);
  const last = lastReconciled.get(userId) ?? 0;
  if (!fetchStatus || deps.now() - last < RECONCILE_INTERVAL_MS) return 0;
  if (lastReconciled.size > 10_000) lastReconciled.clear();
  lastReconciled.set(userId, deps.now());
  try {
    const candidates = (await deps.store.liveCalls(userId, now)).filter((c) => c.createdAt <= now - RECONCILE_MIN_AGE_SECONDS);
    if (candidates.length === 0) return 0;
    const creds = await deps.twilioCredentials();
    let freed = 0;
    for (const call of candidates) {
      const status = await fetchStatus(creds, call.callSid);
      if (!ENDED_STATUSES.has(status)) continue;
      logger.warn('call ended without a status callback; its slot is freed', { userId, callSid: call.callSid, status });
      await deps.store.advanceCallStatus(userId, call.callSid, status, now);
      await deps.store.releaseCallSlot(userId, call.slot);
      freed += 1;
    }
    return freed;
  } catch (err) {
    logger.warn('could not reconcile live calls with Twilio', { userId, cause: String(err) });
    return 0;
  }
}

/**
 * The state of one of the caller's own calls, as Twilio's status callbacks recorded it: a call that hung up,
 * was busy or went unanswered shows so without any action of the user. A call whose live-call slot is gone
 * was ended (by `/hangup`, whose `completed` callback may still be on its way) and shows `completed`. Unknown
 * calls and other users' calls are "not found", alike. Reading needs no voice session, only the user.
 */
export async function readCall(deps: Deps, caller: Caller, callSid: string): Promise<CallView> {
  const { call } = await deps.store.getSessionAndCall(caller.userId, callSid, seconds(deps.now()));
  if (!call) throw new CallNotFoundError({ reason: 'not_owned_or_unknown' });
  return viewOf(call);
}

/**
 * A call as its caller sees it: its recorded state, except that a call no longer live by its slot although
 * its record has not heard the end (ended through /hangup, whose `completed` callback may be on its way) shows
 * `completed`.
 */
function viewOf(call: CallRecord & { readonly live: boolean }): CallView {
  return { sid: call.callSid, status: call.live || ENDED_STATUSES.has(call.status) ? call.status : 'completed' };
}
