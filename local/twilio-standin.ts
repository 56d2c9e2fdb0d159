import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import { readBody } from './http-util';

/**
 * A loopback stand-in for the part of Twilio's REST API this service uses: the Calls resource of API
 * 2010-04-01 (create, fetch, update). Authenticates with the API key like Twilio, answers with Twilio's
 * JSON shapes and error codes, and keeps every call in memory. Magic number `+15005550001` is refused with
 * 21211 (invalid "To"), as with Twilio's test credentials.
 */

export interface StandInCall {
  sid: string;
  to: string;
  from: string;
  status: 'queued' | 'ringing' | 'in-progress' | 'completed' | 'canceled';
  params: Record<string, string>;
}

export interface TwilioStandIn {
  readonly server: Server;
  readonly calls: Map<string, StandInCall>;
  /** Every request received: method, path and form parameters (for contract tests). */
  readonly requests: { method: string; path: string; params: Record<string, string> }[];
  /** Makes the next N requests fail: with an HTTP status and Twilio error code, or by never answering. */
  failNext(n: number, failure: { status: number; code: number } | 'timeout'): void;
}

export interface Credentials {
  readonly accountSid: string;
  readonly apiKeySid: string;
  readonly apiKeySecret: string;
}

const E164 = /^\+[1-9]\d{6,14}$/;

export function twilioStandIn(creds: Credentials): TwilioStandIn {
  const calls = new Map<string, StandInCall>();
  const requests: TwilioStandIn['requests'] = [];
  let failures: { n: number; failure: { status: number; code: number } | 'timeout' } | undefined;
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
      status: c.status,
      start_time: null,
      end_time: c.status === 'completed' || c.status === 'canceled' ? now : null,
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
      const params = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
      requests.push({ method: req.method ?? '', path, params });
      const reply = (status: number, payload: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(payload));
      };
      const error = (status: number, code: number, message: string) =>
        reply(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });

      if (failures && failures.n > 0) {
        failures.n -= 1;
        if (failures.failure === 'timeout') return; // never answer: the client's timeout fires
        return error(failures.failure.status, failures.failure.code, 'Injected failure');
      }
      if (!authorised(req)) return error(401, 20003, 'Authenticate');

      if (req.method === 'POST' && path === `${base}.json`) {
        const to = params['To'] ?? '';
        if (to === '+15005550001' || !E164.test(to)) return error(400, 21211, `The 'To' number ${to.slice(0, 20)} is not a valid phone number.`);
        if (!params['From']) return error(400, 21603, "A 'From' phone number is required.");
        if (!params['Url'] && !params['ApplicationSid'] && !params['Twiml']) return error(400, 21205, 'Url parameter is required.');
        const call: StandInCall = { sid: `CA${randomBytes(16).toString('hex')}`, to, from: params['From'], status: 'queued', params };
        calls.set(call.sid, call);
        return reply(201, resource(call));
      }
      const m = path.startsWith(`${base}/`) ? /^(CA[0-9a-f]{32})\.json$/.exec(path.slice(base.length + 1)) : null;
      const call = m ? calls.get(m[1]!) : undefined;
      if (m && !call) return error(404, 20404, `The requested resource ${path} was not found`);
      if (call && req.method === 'GET') return reply(200, resource(call));
      if (call && req.method === 'POST') {
        const status = params['Status'];
        if (status !== 'completed' && status !== 'canceled') return error(400, 21218, 'Invalid Status value.');
        if (call.status === 'completed' || call.status === 'canceled') return error(400, 21220, 'Call is not in-progress. Cannot redirect.');
        call.status = status === 'canceled' && call.status === 'queued' ? 'canceled' : 'completed';
        return reply(200, resource(call));
      }
      return error(404, 20404, `The requested resource ${path} was not found`);
    })();
  });

  return {
    server,
    calls,
    requests,
    failNext: (n, failure) => {
      failures = { n, failure };
    },
  };
}
