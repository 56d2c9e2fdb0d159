import { type Deps, requireSession, seconds } from '../shared/deps';
import { CallNotFoundError } from '../shared/errors';
import type { Caller } from '../shared/http';

/**
 * Ends one of the caller's own calls. A call that is unknown or belongs to someone else is "not found",
 * with no difference visible and no Twilio request made. A call that has already ended (its record says so,
 * or its live-call slot is gone) is a success without a Twilio request. Ending a call frees its slot under
 * the concurrent-call cap at once; Twilio's `completed` status callback then moves its record.
 */
export async function hangUp(
  deps: Deps,
  caller: Caller,
  callSid: string,
  opts: { readonly bindSessionToIp?: boolean } = {},
): Promise<{ call: { sid: string; status: 'completed' }; twilioCalled: boolean }> {
  const now = seconds(deps.now());
  const { session, call } = await deps.store.getSessionAndCall(caller.userId, callSid, now);
  await requireSession(deps, session, opts.bindSessionToIp ? caller.sourceIp : undefined);
  if (!call) throw new CallNotFoundError({ reason: 'not_owned_or_unknown' });
  const done = { sid: callSid, status: 'completed' as const };
  if (!call.live) return { call: done, twilioCalled: false };
  await deps.twilio.endCall(await deps.twilioCredentials(), callSid);
  if (call.slot) await deps.store.releaseCallSlot(caller.userId, call.slot);
  // A record from before live-call slots has none to free: its state is the only record of the end.
  else await deps.store.advanceCallStatus(caller.userId, callSid, 'completed', now);
  return { call: done, twilioCalled: true };
}
