import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import { E164 } from '../lambdas/shared/contract';
import { twilioSignature } from '../lambdas/shared/twilio-signature';
import { readBody } from './http-util';

/**
 * A loopback stand-in for the part of Twilio's REST API this service uses: the Calls resource of API
 * 2010-04-01 (create, fetch, update). Authenticates with the API key like Twilio, answers with Twilio's
 * JSON shapes and error codes, and keeps every call in memory. Magic number `+15005550001` is refused with
 * 21211 (invalid "To"), as with Twilio's test credentials.
 *
 * Like Twilio, it reports each call's progress to the call's `StatusCallback` URL (form-encoded POSTs signed
 * with the auth token in `X-Twilio-Signature`, for the events asked for in `StatusCallbackEvent`): initiated,
 * ringing, answered (`in-progress`), then completed when the far end hangs up after `talkMs`, or at once when
 * the call is ended through the API. Magic number `+15005550002` is busy, `+15005550003` does not answer.
 */

export type StandInStatus = 'queued' | 'initiated' | 'ringing' | 'in-progress' | 'completed' | 'busy' | 'no-answer' | 'canceled';

export interface StandInCall {
  sid: string;
  to: string;
  from: string;
  status: StandInStatus;
  params: Record<string, string>;
  /** StatusCallbackEvent values, in the order sent. */
  events: string[];
  answeredAt?: number;
  timers: NodeJS.Timeout[];
  /** Callbacks are sent one after another, like Twilio's, in order. */
  chain: Promise<void>;
  sequence: number;
}

/** When the stand-in moves a call on, milliseconds after it was created (completed: after it was answered). */
export interface CallTiming {
  readonly ringMs: number;
  readonly answerMs: number;
  /** How long the far end talks before hanging up. */
  readonly talkMs: number;
}

/** Defaults for local mode: the far end hangs up after 30 s. `TWILIO_STANDIN_TALK_SECONDS` changes that. */
export const DEFAULT_TIMING: CallTiming = { ringMs: 200, answerMs: 1500, talkMs: 30_000 };

/** One status callback the stand-in sent, and what it got back. */
export interface Delivery {
  readonly url: string;
  readonly params: Record<string, string>;
  readonly status: number | 'error';
}

export interface TwilioStandIn {
  readonly server: Server;
  readonly calls: Map<string, StandInCall>;
  /** Every request received: method, path and form parameters (for contract tests). */
  readonly requests: { method: string; path: string; params: Record<string, string>; form: [string, string][] }[];
  /** Status callbacks sent, in order, with the status each got. */
  readonly deliveries: Delivery[];
  /**
   * Makes the next N requests fail: with an HTTP status and Twilio error code; by never answering
   * (`timeout`: nothing done); or by doing the work and never answering (`lost-answer`).
   */
  failNext(n: number, failure: Failure): void;
  /** The far end hangs up now (a call in progress completes; one still ringing is not answered). */
  hangUpFarEnd(sid: string): void;
  /** Resolves when every callback scheduled so far for the call has been delivered. */
  settled(sid: string): Promise<void>;
  /** Cancels pending callbacks (the server's close does too). */
  stop(): void;
}

export type Failure = { status: number; code: number } | 'timeout' | 'lost-answer';

export interface Credentials {
  readonly accountSid: string;
  readonly apiKeySid: string;
  readonly apiKeySecret: string;
  /** Signs status callbacks; without it none are sent. */
  readonly authToken?: string;
}


export function twilioStandIn(creds: Credentials, timing: CallTiming = DEFAULT_TIMING): TwilioStandIn {
  const calls = new Map<string, StandInCall>();
  const requests: TwilioStandIn['requests'] = [];
  const deliveries: Delivery[] = [];

  /** Sends one signed status callback for the call's current status (if the call asked for that event). */
  const report = (call: StandInCall, event: string) => {
    const url = call.params['StatusCallback'];
    if (!url || !creds.authToken || !call.events.includes(event)) return;
    call.sequence += 1;
    const params: Record<string, string> = {
      AccountSid: creds.accountSid,
      ApiVersion: '2010-04-01',
      CallSid: call.sid,
      CallStatus: call.status,
      CallbackSource: 'call-progress-events',
      Called: call.to,
      Caller: call.from,
      Direction: 'outbound-api',
      From: call.from,
      SequenceNumber: String(call.sequence - 1),
      Timestamp: new Date().toUTCString(),
      To: call.to,
      ...(event === 'completed' ? { CallDuration: String(call.answeredAt ? Math.round((Date.now() - call.answeredAt) / 1000) : 0), Duration: '1' } : {}),
    };
    const signature = twilioSignature(creds.authToken, url, Object.entries(params));
    call.chain = call.chain.then(async () => {
      let status: number | 'error' = 'error';
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': signature, 'User-Agent': 'TwilioProxy/1.1' },
          body: new URLSearchParams(params).toString(),
          signal: AbortSignal.timeout(15_000),
        });
        status = res.status;
        await res.arrayBuffer();
      } catch {
        // Twilio does not retry a failed status callback either.
      }
      deliveries.push({ url, params, status });
    });
  };

  const ended = (c: StandInCall) => ['completed', 'busy', 'no-answer', 'canceled'].includes(c.status);
  const end = (call: StandInCall, status: 'completed' | 'busy' | 'no-answer' | 'canceled') => {
    if (ended(call)) return;
    call.timers.forEach(clearTimeout);
    call.status = status;
    report(call, 'completed');
  };
  const schedule = (call: StandInCall, ms: number, step: () => void) => {
    const t = setTimeout(() => {
      if (!ended(call)) step();
    }, ms);
    t.unref();
    call.timers.push(t);
  };
  /** Moves a new call through its life, as the far end would. */
  const run = (call: StandInCall) => {
    call.status = 'initiated';
    report(call, 'initiated');
    schedule(call, timing.ringMs, () => {
      call.status = 'ringing';
      report(call, 'ringing');
      if (call.to === '+15005550002') return end(call, 'busy');
      if (call.to === '+15005550003') return schedule(call, timing.answerMs, () => end(call, 'no-answer'));
      schedule(call, timing.answerMs, () => {
        call.status = 'in-progress';
        call.answeredAt = Date.now();
        report(call, 'answered');
        schedule(call, timing.talkMs, () => end(call, 'completed'));
      });
    });
  };
  let failures: { n: number; failure: Failure } | undefined;
  const base = `/2010-04-01/Accounts/${creds.accountSid}/Calls`;

  const resource = (c: StandInCall) => {
    const now = new Date().toUTCString();
    return {
      sid: c.sid,
      account_sid: creds.accountSid,
      api_version: '2010-04-01',
      date_created: now,
      date_updated: now,
      parent_call_sid: null,
      to: c.to,
      to_formatted: c.to,
      from: c.from,
      from_formatted: c.from,
      phone_number_sid: null,
      // `initiated` exists only in status callbacks; the REST resource still says `queued`.
      status: c.status === 'initiated' ? 'queued' : c.status,
      start_time: null,
      end_time: ended(c) ? now : null,
      duration: null,
      price: null,
      price_unit: 'USD',
      direction: 'outbound-api',
      answered_by: null,
      forwarded_from: null,
      group_sid: null,
      caller_name: null,
      queue_time: '0',
      trunk_sid: null,
      uri: `${base}/${c.sid}.json`,
      subresource_uris: { notifications: `${base}/${c.sid}/Notifications.json`, recordings: `${base}/${c.sid}/Recordings.json` },
    };
  };

  const authorised = (req: IncomingMessage) => {
    const expected = `Basic ${Buffer.from(`${creds.apiKeySid}:${creds.apiKeySecret}`).toString('base64')}`;
    return req.headers.authorization === expected;
  };

  const server = createServer((req, res) => {
    void (async () => {
      const raw = (await readBody(req, 64 * 1024)) ?? Buffer.alloc(0);
      const path = (req.url ?? '').split('?')[0]!;
      const form: [string, string][] = [...new URLSearchParams(raw.toString('utf8'))];
      const params = Object.fromEntries(form);
      requests.push({ method: req.method ?? '', path, params, form });
      let answer = true;
      const reply = (status: number, payload: unknown) => {
        if (!answer) return; // the work is done, but the answer is lost on the way back
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(payload));
      };
      const error = (status: number, code: number, message: string) =>
        reply(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });

      if (failures && failures.n > 0) {
        failures.n -= 1;
        if (failures.failure === 'timeout') return; // never answer: the client's timeout fires
        if (failures.failure === 'lost-answer') answer = false;
        else return error(failures.failure.status, failures.failure.code, 'Injected failure');
      }
      if (!authorised(req)) return error(401, 20003, 'Authenticate');

      if (req.method === 'POST' && path === `${base}.json`) {
        const to = params['To'] ?? '';
        if (to === '+15005550001' || !E164.test(to)) return error(400, 21211, `The 'To' number ${to.slice(0, 20)} is not a valid phone number.`);
        if (!params['From']) return error(400, 21603, "A 'From' phone number is required.");
        if (!params['Url'] && !params['ApplicationSid'] && !params['Twiml']) return error(400, 21205, 'Url parameter is required.');
        const events = form.filter(([k]) => k === 'StatusCallbackEvent').flatMap(([, e]) => e.split(/[\s,]+/)).filter(Boolean);
        const call: StandInCall = { sid: `CA${randomBytes(16).toString('hex')}`, to, from: params['From'], status: 'queued', params, events: events.length ? events : ['completed'], timers: [], chain: Promise.resolve(), sequence: 0 };
        calls.set(call.sid, call);
        reply(201, resource(call));
        // Twilio starts dialling after answering the request.
        setImmediate(() => run(call));
        return;
      }
      const m = path.startsWith(`${base}/`) ? /^(CA[0-9a-f]{32})\.json$/.exec(path.slice(base.length + 1)) : null;
      const call = m ? calls.get(m[1]!) : undefined;
      if (m && !call) return error(404, 20404, `The requested resource ${path} was not found`);
      if (call && req.method === 'GET') return reply(200, resource(call));
      if (call && req.method === 'POST') {
        const status = params['Status'];
        if (status !== 'completed' && status !== 'canceled') return error(400, 21218, 'Invalid Status value.');
        if (ended(call)) return error(400, 21220, 'Call is not in-progress. Cannot redirect.');
        end(call, status === 'canceled' && call.status === 'queued' ? 'canceled' : 'completed');
        return reply(200, resource(call));
      }
      return error(404, 20404, `The requested resource ${path} was not found`);
    })();
  });

  const stop = () => calls.forEach((c) => c.timers.forEach(clearTimeout));
  server.on('close', stop);

  return {
    server,
    calls,
    requests,
    deliveries,
    failNext: (n, failure) => {
      failures = { n, failure };
    },
    hangUpFarEnd: (sid) => {
      const call = calls.get(sid);
      if (call) end(call, call.status === 'in-progress' ? 'completed' : 'no-answer');
    },
    settled: async (sid) => {
      await calls.get(sid)?.chain;
    },
    stop,
  };
}
