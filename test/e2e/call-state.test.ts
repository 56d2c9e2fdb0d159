import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SECURITY_HEADERS } from '../../lambdas/shared/contract';
import { twilioSignature } from '../../lambdas/shared/twilio-signature';
import { STATUS_CALLBACK_PATH } from '../../lib/routes';
import { type LocalSecrets, signDevToken } from '../../local/keys';
import type { LocalApi } from '../../local/server';
import type { TwilioStandIn } from '../../local/twilio-standin';
import { type Reply, send } from '../support/http';

/**
 * Call state end to end, over real HTTP through the local gateway: the Twilio stand-in places each call,
 * moves it through initiated → ringing → in-progress and hangs up the far end after one second
 * (`TWILIO_STANDIN_TALK_SECONDS=1`), sending its signed status callbacks to `POST /api/twilio/status` as Twilio
 * would; the tests read the call's state through `GET /api/twilio/voice?callSid=` as a page does. The
 * concurrent-call cap is 1 here. Local mode runs in this process so that the test can see what
 * reached the stand-in (`requests`) and what it reported (`deliveries`); the tests poll those, never sleep.
 */

const ALLOWED = 'http://localhost:5173';
const NUMBER = '+14155550123';
const BUSY = '+15005550002';
const NO_ANSWER = '+15005550003';

let api: LocalApi;
let twilio: TwilioStandIn;
let secrets: LocalSecrets;
let nextIp = 60;

beforeAll(async () => {
  process.env['LOCAL_DIR'] = mkdtempSync(join(tmpdir(), 'voice-token-call-state-'));
  // Read by local mode itself (the stand-in's timing), so it goes into the environment before it starts.
  process.env['TWILIO_STANDIN_TALK_SECONDS'] = '1';
  const { startLocal } = await import('../../local/server');
  api = await startLocal({
    port: 0,
    demoPort: 'off',
    log: () => undefined,
    env: { ALLOWED_ORIGINS: ALLOWED, CONCURRENT_CALL_LIMIT: '1', POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true' },
  });
  twilio = api.twilio!;
  secrets = JSON.parse(readFileSync(join(process.env['LOCAL_DIR'], 'secrets.json'), 'utf8')) as LocalSecrets;
}, 60_000);

afterAll(async () => {
  await api?.stop();
});

const token = () => signDevToken(secrets, { issuer: `${api.url}/auth/v1`, sub: randomUUID(), ttlSeconds: 3600 });

/** One browser user on its own loopback address (per-IP limits do not mix), with its own session token. */
async function user() {
  const localAddress = `127.0.0.${nextIp++}`;
  const t = await token();
  const request = (method: string, path: string, o: { body?: object; headers?: Record<string, string>; auth?: boolean } = {}) => {
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    return send(`${api.url}${path}`, {
      method,
      headers: {
        ...(o.auth === false ? {} : { Authorization: `Bearer ${t}` }),
        ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) }),
        ...(o.headers ?? {}),
      },
      ...(body === undefined ? {} : { body }),
      localAddress,
    });
  };
  return {
    request,
    openSession: () => request('POST', '/api/twilio/token', { body: {} }),
    closeSession: () => request('DELETE', '/api/twilio/token'),
    call: (to: string, idempotencyKey?: string) => request('POST', '/api/twilio/voice', { body: { to }, ...(idempotencyKey ? { headers: { 'Idempotency-Key': idempotencyKey } } : {}) }),
    hangup: (callSid: string) => request('POST', '/api/twilio/hangup', { body: { callSid } }),
    getCall: (callSid: string) => request('GET', `/api/twilio/voice?callSid=${encodeURIComponent(callSid)}`),
  };
}

type User = Awaited<ReturnType<typeof user>>;
const ORDER = ['queued', 'initiated', 'ringing', 'in-progress'];
const ENDED = ['completed', 'busy', 'failed', 'no-answer', 'canceled'];
const rank = (status: string) => (ENDED.includes(status) ? ORDER.length : ORDER.indexOf(status));

/**
 * Polls `GET /api/twilio/voice?callSid=` (every 50 ms) as a page would, until the call is over; returns the
 * statuses it read, each once, in the order seen. Every read must be a 200 of the documented shape.
 */
async function followCall(u: User, sid: string, ms = 10_000): Promise<string[]> {
  const seen: string[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await u.getCall(sid);
    expect(r.status).toBe(200);
    const { call } = r.json<{ call: { sid: string; status: string } }>();
    expect(call.sid).toBe(sid);
    if (seen.at(-1) !== call.status) seen.push(call.status);
    if (ENDED.includes(call.status)) return seen;
    if (Date.now() > deadline) throw new Error(`timed out following ${sid}: ${seen.join(' → ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The statuses only move forward (queued < initiated < ringing < in-progress < ended). */
const movesForward = (seen: string[]) => seen.every((s, i) => i === 0 || rank(s) > rank(seen[i - 1]!));

const sidOf = (r: Reply) => r.json<{ call: { sid: string } }>().call.sid;

/** Polls until `check` holds (every 25 ms, at most `ms`): no fixed sleeps. */
async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The statuses the stand-in reported for a call, each with what the gateway answered. */
const reported = (sid: string) => twilio.deliveries.filter((d) => d.params['CallSid'] === sid).map((d) => `${d.params['CallStatus']} ${d.status}`);
/** Requests that reached the stand-in about one existing call (fetch or update; creation names no SID). */
const requestsAbout = (sid: string) => twilio.requests.filter((r) => r.path.includes(sid));
const ended = (sid: string, status: string) => () => reported(sid).includes(`${status} 204`);

/** A status callback as Twilio would send it for the call's owner, signed with `authToken` (the real one by default). */
function callback(ownerOf: string, fields: Record<string, string>, o: { authToken?: string; headers?: Record<string, string>; localAddress?: string } = {}) {
  const url = `${api.url}${STATUS_CALLBACK_PATH}?u=${encodeURIComponent(ownerOf)}`;
  const params = { AccountSid: secrets.twilio['accountSid']!, ApiVersion: '2010-04-01', ...fields };
  const body = new URLSearchParams(params).toString();
  return send(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      'X-Twilio-Signature': twilioSignature(o.authToken ?? secrets.twilio['authToken']!, url, Object.entries(params)),
      ...(o.headers ?? {}),
    },
    body,
    localAddress: o.localAddress ?? `127.0.0.${nextIp++}`,
  });
}

/** The owner's user id of a call, as the voice function put it into the call's StatusCallback URL. */
const ownerOf = (sid: string) => new URL(twilio.calls.get(sid)!.params['StatusCallback']!).searchParams.get('u')!;

const corsHeaders = (r: Reply) => Object.keys(r.headers).filter((k) => k.startsWith('access-control-'));

describe('a call ends on its own, as Twilio reports it', () => {
  test('a call the far end hangs up is completed without any action of the user, and frees its slot at once', async () => {
    const alice = await user();
    expect((await alice.openSession()).status).toBe(200);
    const placed = await alice.call(NUMBER);
    expect(placed.status).toBe(201);
    const sid = sidOf(placed);

    // While the call is live, the cap (1 here) refuses a second one, readably.
    const refused = await alice.call(NUMBER, 'second-call-0001');
    expect(refused.status).toBe(429);
    expect(refused.json()).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);

    // The user does nothing but read the call. The far end answers, talks for a second and hangs up; Twilio
    // says so, and GET shows the call move on and end.
    const seen = await followCall(alice, sid);
    expect(movesForward(seen)).toBe(true);
    expect(seen).toEqual(expect.arrayContaining(['ringing', 'in-progress']));
    expect(seen.at(-1)).toBe('completed');
    await until('the far end to hang up', ended(sid, 'completed'));
    expect(reported(sid)).toEqual(['initiated 204', 'ringing 204', 'in-progress 204', 'completed 204']);

    // The slot is free: the same request, same Idempotency-Key, is now admitted.
    const second = await alice.call(NUMBER, 'second-call-0001');
    expect(second.status).toBe(201);
    expect(sidOf(second)).not.toBe(sid);

    // Hanging up the first call is a success answered from its record: nothing reaches Twilio for it.
    const hungUp = await alice.hangup(sid);
    expect(hungUp.status).toBe(200);
    expect(hungUp.json()).toEqual({ call: { sid, status: 'completed' } });
    expect(requestsAbout(sid)).toEqual([]);

    // The second call is still live, so it does go to Twilio.
    expect((await alice.hangup(sidOf(second))).status).toBe(200);
    expect(requestsAbout(sidOf(second))).toHaveLength(1);
  });

  test.each([
    ['a busy', BUSY, 'busy', ['initiated 204', 'ringing 204', 'busy 204']],
    ['an unanswered', NO_ANSWER, 'no-answer', ['initiated 204', 'ringing 204', 'no-answer 204']],
  ])('%s call ends on its own and frees its slot', async (_name, to, status, sequence) => {
    const bob = await user();
    await bob.openSession();
    const placed = await bob.call(to);
    expect(placed.status).toBe(201);
    const sid = sidOf(placed);

    const seen = await followCall(bob, sid);
    expect(movesForward(seen)).toBe(true);
    expect(seen.at(-1)).toBe(status);
    await until(`the call to be ${status}`, ended(sid, status));
    expect(reported(sid)).toEqual(sequence);
    expect((await bob.getCall(sid)).json()).toEqual({ call: { sid, status } });

    const next = await bob.call(NUMBER);
    expect(next.status).toBe(201);
    expect((await bob.hangup(sid)).json()).toEqual({ call: { sid, status: 'completed' } });
    expect(requestsAbout(sid)).toEqual([]);
    await bob.hangup(sidOf(next));
  });
});

describe('reading a call: GET /api/twilio/voice?callSid=', () => {
  test('shows completed at once after /hangup, before Twilio’s callback, and keeps showing it', async () => {
    const gina = await user();
    await gina.openSession();
    const sid = sidOf(await gina.call(NUMBER));
    expect((await gina.hangup(sid)).status).toBe(200);
    expect((await gina.getCall(sid)).json()).toEqual({ call: { sid, status: 'completed' } });
    await until('Twilio to report the end', ended(sid, 'completed'));
    expect((await gina.getCall(sid)).json()).toEqual({ call: { sid, status: 'completed' } });
  });

  test('needs no voice session, only the user’s own session token', async () => {
    const hana = await user();
    await hana.openSession();
    const sid = sidOf(await hana.call(NUMBER));
    expect((await hana.closeSession()).status).toBe(204);
    const r = await hana.getCall(sid);
    expect(r.status).toBe(200);
    expect(r.json<{ call: { sid: string } }>().call.sid).toBe(sid);
    expect((await hana.request('GET', `/api/twilio/voice?callSid=${sid}`, { auth: false })).status).toBe(401);
    await until('the far end to hang up', ended(sid, 'completed'));
  });

  test('rejects another user’s call and an unknown SID with the same 404 call_not_found', async () => {
    const ivan = await user();
    const judy = await user();
    await ivan.openSession();
    const sid = sidOf(await ivan.call(NUMBER));
    const theirs = await judy.getCall(sid);
    const unknown = await judy.getCall(`CA${'9'.repeat(32)}`);
    expect(theirs.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(theirs.json()).toEqual({ error: { code: 'call_not_found', message: expect.any(String) } });
    expect(theirs.text).toBe(unknown.text);
    expect((await ivan.getCall(sid)).status).toBe(200);
    await ivan.hangup(sid);
  });

  test('rejects a missing, empty, malformed or repeated callSid, another parameter and a body with 400 invalid_request', async () => {
    const kim = await user();
    await kim.openSession();
    const sid = sidOf(await kim.call(NUMBER));
    const bad = [
      await kim.request('GET', '/api/twilio/voice'),
      await kim.request('GET', '/api/twilio/voice?callSid='),
      await kim.request('GET', '/api/twilio/voice?callSid=CA123'),
      await kim.request('GET', `/api/twilio/voice?callSid=${sid.toUpperCase()}`),
      await kim.request('GET', `/api/twilio/voice?callSid=${sid}&callSid=${sid}`),
      await kim.request('GET', `/api/twilio/voice?callSid=${sid}&extra=1`),
      await kim.request('GET', `/api/twilio/voice?callSid=${sid}`, { body: { callSid: sid } }),
    ];
    for (const r of bad) {
      expect(r.status).toBe(400);
      expect(r.json()).toEqual({ error: { code: 'invalid_request', message: expect.any(String) } });
    }
    expect((await kim.getCall(sid)).status).toBe(200);
    await kim.hangup(sid);
  });

  test('the CORS preflight of /api/twilio/voice allows GET for an allowed origin only', async () => {
    const leo = await user();
    const ok = await leo.request('OPTIONS', '/api/twilio/voice', { auth: false, headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' } });
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(String(ok.headers['access-control-allow-methods']).split(',')).toEqual(expect.arrayContaining(['POST', 'GET']));
    const bad = await leo.request('OPTIONS', '/api/twilio/voice', { auth: false, headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'GET' } });
    expect(bad.status).toBe(403);
    expect(corsHeaders(bad)).toEqual([]);
    // The GET itself: CORS headers for the allowed origin, none (and 403) for a foreign one.
    await leo.openSession();
    const sid = sidOf(await leo.call(NUMBER));
    expect((await leo.request('GET', `/api/twilio/voice?callSid=${sid}`, { headers: { Origin: ALLOWED } })).headers['access-control-allow-origin']).toBe(ALLOWED);
    const foreign = await leo.request('GET', `/api/twilio/voice?callSid=${sid}`, { headers: { Origin: 'https://evil.example' } });
    expect(foreign.status).toBe(403);
    expect(corsHeaders(foreign)).toEqual([]);
    await leo.hangup(sid);
  });
});

describe('logout', () => {
  test('DELETE /api/twilio/token ends the voice session: 204, then 409 for calls, 204 again, and a new session works', async () => {
    const carol = await user();
    await carol.openSession();

    const out = await carol.request('DELETE', '/api/twilio/token', { headers: { Origin: ALLOWED } });
    expect(out.status).toBe(204);
    expect(out.text).toBe('');
    expect(out.headers['access-control-allow-origin']).toBe(ALLOWED);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(out.headers[k.toLowerCase()]).toBe(v);

    const call = await carol.call(NUMBER);
    expect(call.status).toBe(409);
    expect(call.json<{ error: { code: string } }>().error.code).toBe('no_voice_session');
    expect((await carol.hangup(`CA${'0'.repeat(32)}`)).status).toBe(409);
    expect((await carol.closeSession()).status).toBe(204);

    expect((await carol.openSession()).status).toBe(200);
    const again = await carol.call(NUMBER);
    expect(again.status).toBe(201);
    await carol.hangup(sidOf(again));
  });

  test('rejects logout without a session token with 401 and from a foreign origin with 403', async () => {
    const dave = await user();
    expect((await dave.request('DELETE', '/api/twilio/token', { auth: false, headers: { Origin: ALLOWED } })).status).toBe(401);
    const foreign = await dave.request('DELETE', '/api/twilio/token', { headers: { Origin: 'https://evil.example' } });
    expect(foreign.status).toBe(403);
    expect(corsHeaders(foreign)).toEqual([]);
  });

  test('the CORS preflight of /api/twilio/token allows DELETE for an allowed origin only', async () => {
    const erin = await user();
    const ok = await erin.request('OPTIONS', '/api/twilio/token', { auth: false, headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'DELETE', 'Access-Control-Request-Headers': 'authorization' } });
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(String(ok.headers['access-control-allow-methods']).split(',')).toEqual(expect.arrayContaining(['POST', 'DELETE']));
    const bad = await erin.request('OPTIONS', '/api/twilio/token', { auth: false, headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'DELETE' } });
    expect(bad.status).toBe(403);
    expect(corsHeaders(bad)).toEqual([]);
  });
});

describe('the status callback trusts only Twilio', () => {
  test('rejects forged callbacks with 403 invalid_signature and changes nothing', async () => {
    const frank = await user();
    await frank.openSession();
    const sid = sidOf(await frank.call(NUMBER));
    const owner = ownerOf(sid);
    const fields = { CallSid: sid, CallStatus: 'completed' };

    const forged = [
      await callback(owner, fields, { authToken: 'f'.repeat(32) }), // signed with a guessed auth token
      await callback(owner, fields, { headers: { 'X-Twilio-Signature': 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' } }),
      await callback(owner, fields, { headers: { 'X-Twilio-Signature': '' } }),
      await callback(randomUUID(), fields, { authToken: 'f'.repeat(32) }), // another owner in the URL
    ];
    for (const r of forged) {
      expect(r.status).toBe(403);
      expect(r.json()).toEqual({ error: { code: 'invalid_signature', message: expect.any(String) } });
    }
    // A genuine signature over other fields does not cover the forged ones.
    const tampered = await send(`${api.url}${STATUS_CALLBACK_PATH}?u=${owner}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        'X-Twilio-Signature': twilioSignature(secrets.twilio['authToken']!, `${api.url}${STATUS_CALLBACK_PATH}?u=${owner}`, Object.entries({ AccountSid: secrets.twilio['accountSid']!, CallSid: sid, CallStatus: 'ringing' })),
      },
      body: new URLSearchParams({ AccountSid: secrets.twilio['accountSid']!, CallSid: sid, CallStatus: 'completed' }).toString(),
      localAddress: `127.0.0.${nextIp++}`,
    });
    expect(tampered.status).toBe(403);

    // Nothing changed: the call still holds the one slot (unless the far end has hung up meanwhile, which
    // Twilio's genuine callback says), and it is still live.
    if (!ended(sid, 'completed')()) expect((await frank.call(NUMBER)).status).toBe(429);
    await until('the far end to hang up', ended(sid, 'completed'));
    expect(reported(sid)).toEqual(['initiated 204', 'ringing 204', 'in-progress 204', 'completed 204']);
  });

  test('refuses a genuinely signed callback that carries an Origin header (a browser) with 403, without CORS headers', async () => {
    for (const origin of [ALLOWED, 'https://evil.example']) {
      const r = await callback(randomUUID(), { CallSid: `CA${'2'.repeat(32)}`, CallStatus: 'completed' }, { headers: { Origin: origin } });
      expect(r.status).toBe(403);
      expect(r.json<{ error: { code: string } }>().error.code).toBe('origin_not_allowed');
      expect(corsHeaders(r)).toEqual([]);
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(r.headers[k.toLowerCase()]).toBe(v);
    }
  });

  test('answers no CORS headers on the status route for any origin, and has no preflight', async () => {
    const accepted = await callback(randomUUID(), { CallSid: `CA${'3'.repeat(32)}`, CallStatus: 'ringing' });
    expect(accepted.status).toBe(204);
    expect(corsHeaders(accepted)).toEqual([]);
    for (const origin of [ALLOWED, 'https://evil.example', 'null']) {
      const preflight = await send(`${api.url}${STATUS_CALLBACK_PATH}`, { method: 'OPTIONS', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' } });
      expect(preflight.status).toBeGreaterThanOrEqual(400);
      expect(corsHeaders(preflight)).toEqual([]);
      const posted = await send(`${api.url}${STATUS_CALLBACK_PATH}`, { method: 'POST', headers: { Origin: origin, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'CallSid=x' });
      expect(posted.status).toBe(403);
      expect(corsHeaders(posted)).toEqual([]);
    }
  });
});
