import { API_ERROR_CODES, type CallStatus, ENDED_CALL_STATUSES, type FetchLike, VoiceApiError, createVoiceClient, isCallOver, parseRetryAfter } from '../../client/src/voice-client';
import { ERRORS } from '../../lambdas/shared/contract';
import { ENDED_STATUSES } from '../../lambdas/shared/store';

/** The browser client against a scripted `fetch`: what it sends, what it returns, how it fails. */

interface Sent {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  credentials: string;
}

function fakeFetch(answer: { status: number; body?: string; headers?: Record<string, string> } | Error) {
  const sent: Sent[] = [];
  const fetch: FetchLike = async (url, init) => {
    sent.push({ url, method: init.method, headers: init.headers, body: init.body, credentials: init.credentials });
    if (answer instanceof Error) throw answer;
    const headers = new Map(Object.entries(answer.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    return { status: answer.status, headers: { get: (n: string) => headers.get(n.toLowerCase()) ?? null }, text: async () => answer.body ?? '' };
  };
  return { fetch, sent };
}

const SID = `CA${'ab'.repeat(16)}`;
const client = (f: FetchLike, getAccessToken: () => unknown = () => 'session-jwt') =>
  createVoiceClient({ baseUrl: 'https://api.example.com/prod/', getAccessToken: getAccessToken as () => string, fetch: f });

async function failure(p: Promise<unknown>): Promise<VoiceApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VoiceApiError);
  return err as VoiceApiError;
}

test('knows exactly the error codes of the contract', () => {
  expect([...API_ERROR_CODES].sort()).toEqual(Object.keys(ERRORS).sort());
});

test('opens a session with the bearer token, JSON, no cookies, and returns only the session fields', async () => {
  const { fetch, sent } = fakeFetch({ status: 200, body: JSON.stringify({ session: { status: 'active', expiresAt: '2026-12-03T18:00:00.000Z', extra: 'x' } }) });
  const session = await client(fetch).openSession();
  expect(session).toEqual({ status: 'active', expiresAt: '2026-12-03T18:00:00.000Z' });
  expect(sent).toEqual([
    {
      url: 'https://api.example.com/prod/api/twilio/token',
      method: 'POST',
      headers: { Authorization: 'Bearer session-jwt', 'Content-Type': 'application/json' },
      body: '{}',
      credentials: 'omit',
    },
  ]);
});

test('takes the result of supabase.auth.getSession() as it is', async () => {
  const { fetch, sent } = fakeFetch({ status: 200, body: JSON.stringify({ session: { status: 'active', expiresAt: '2026-12-03T18:00:00.000Z' } }) });
  await client(fetch, async () => ({ data: { session: { access_token: 'from-supabase', refresh_token: 'r' } }, error: null })).openSession();
  expect(sent[0]!.headers['Authorization']).toBe('Bearer from-supabase');
});

test.each([
  ['a signed-out Supabase session', async () => ({ data: { session: null }, error: null })],
  ['an empty token', () => ''],
  ['undefined', () => undefined],
])('fails with unauthenticated and sends nothing for %s', async (_name, get) => {
  const { fetch, sent } = fakeFetch({ status: 200, body: '{}' });
  const err = await failure(client(fetch, get).openSession());
  expect(err).toMatchObject({ code: 'unauthenticated', status: 0 });
  expect(sent).toHaveLength(0);
});

test('places a call with the Idempotency-Key it is given and returns the call', async () => {
  const { fetch, sent } = fakeFetch({ status: 201, body: JSON.stringify({ call: { sid: SID, status: 'queued' } }) });
  const call = await client(fetch).call('+14155550123', { idempotencyKey: 'key-0001-abcd' });
  expect(call).toEqual({ sid: SID, status: 'queued' });
  expect(sent[0]!.url).toBe('https://api.example.com/prod/api/twilio/voice');
  expect(sent[0]!.headers['Idempotency-Key']).toBe('key-0001-abcd');
  expect(JSON.parse(sent[0]!.body!)).toEqual({ to: '+14155550123' });
});

test('hangs up a call by its SID', async () => {
  const { fetch, sent } = fakeFetch({ status: 200, body: JSON.stringify({ call: { sid: SID, status: 'completed' } }) });
  await expect(client(fetch).hangup(SID)).resolves.toEqual({ sid: SID, status: 'completed' });
  expect(JSON.parse(sent[0]!.body!)).toEqual({ callSid: SID });
});

test('fails with the contract code, status, message and Retry-After of an error answer', async () => {
  const { fetch } = fakeFetch({ status: 429, headers: { 'Retry-After': '42' }, body: JSON.stringify({ error: { code: 'rate_limited', message: 'Too many requests.' } }) });
  const err = await failure(client(fetch).openSession());
  expect(err).toMatchObject({ name: 'VoiceApiError', code: 'rate_limited', status: 429, retryAfter: 42, message: 'Too many requests.' });
});

test('fails with the 401 code so that a frontend can send the user to sign in', async () => {
  const { fetch } = fakeFetch({ status: 401, body: JSON.stringify({ error: { code: 'unauthenticated', message: 'Sign in again.' } }) });
  const err = await failure(client(fetch).call('+14155550123'));
  expect(err).toMatchObject({ code: 'unauthenticated', status: 401, retryAfter: undefined });
});

test('fails with network_error when no answer can be read (offline or CORS)', async () => {
  const { fetch } = fakeFetch(new TypeError('Failed to fetch'));
  const err = await failure(client(fetch).openSession());
  expect(err).toMatchObject({ code: 'network_error', status: 0 });
  expect(err.cause).toBeInstanceOf(TypeError);
});

test.each([
  ['an HTML error page', { status: 502, body: '<html>Bad gateway</html>' }],
  ['an unknown error code', { status: 418, body: JSON.stringify({ error: { code: 'teapot', message: 'x' } }) }],
  ['a success without a call', { status: 201, body: JSON.stringify({ ok: true }) }],
  ['a call with an unknown status', { status: 201, body: JSON.stringify({ call: { sid: SID, status: 'exploded' } }) }],
])('fails with unexpected_response on %s', async (_name, answer) => {
  const { fetch } = fakeFetch(answer);
  const err = await failure(client(fetch).call('+14155550123'));
  expect(err).toMatchObject({ code: 'unexpected_response', status: answer.status });
});

test('rejects a base URL that is not http(s)', () => {
  expect(() => createVoiceClient({ baseUrl: 'ftp://x', getAccessToken: () => 't' })).toThrow(TypeError);
});

test('reads Retry-After as seconds or as an HTTP date', () => {
  expect(parseRetryAfter('7')).toBe(7);
  expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(30);
  expect(parseRetryAfter(null)).toBeUndefined();
  expect(parseRetryAfter('soon')).toBeUndefined();
});

describe('closeSession (logout)', () => {
  test('sends DELETE /api/twilio/token with the bearer token, no body and no cookies, and resolves on 204', async () => {
    const { fetch, sent } = fakeFetch({ status: 204 });
    await expect(client(fetch).closeSession()).resolves.toBeUndefined();
    expect(sent).toEqual([{ url: 'https://api.example.com/prod/api/twilio/token', method: 'DELETE', headers: { Authorization: 'Bearer session-jwt' }, body: undefined, credentials: 'omit' }]);
  });

  test('fails with unauthenticated and sends nothing once Supabase has signed the user out', async () => {
    const { fetch, sent } = fakeFetch({ status: 204 });
    const err = await failure(client(fetch, async () => ({ data: { session: null }, error: null })).closeSession());
    expect(err).toMatchObject({ code: 'unauthenticated', status: 0 });
    expect(sent).toHaveLength(0);
  });

  test('fails with the contract code of an error answer', async () => {
    const { fetch } = fakeFetch({ status: 401, body: JSON.stringify({ error: { code: 'unauthenticated', message: 'Sign in again.' } }) });
    await expect(failure(client(fetch).closeSession())).resolves.toMatchObject({ code: 'unauthenticated', status: 401 });
  });

  test('fails with unexpected_response on a success status other than 204', async () => {
    const { fetch } = fakeFetch({ status: 200, body: JSON.stringify({ session: { status: 'active', expiresAt: 'x' } }) });
    await expect(failure(client(fetch).closeSession())).resolves.toMatchObject({ code: 'unexpected_response', status: 200 });
  });
});

test('fails a call over the concurrent-call cap with rate_limited and its Retry-After', async () => {
  const { fetch } = fakeFetch({ status: 429, headers: { 'Retry-After': '5' }, body: JSON.stringify({ error: { code: 'rate_limited', message: 'Too many requests: try again later.' } }) });
  const err = await failure(client(fetch).call('+14155550123', { idempotencyKey: 'key-0002-abcd' }));
  expect(err).toMatchObject({ code: 'rate_limited', status: 429, retryAfter: 5 });
});

describe('getCall (reading a call’s state)', () => {
  test('sends GET /api/twilio/voice?callSid= with the bearer token, no body, no Content-Type and no cookies', async () => {
    const { fetch, sent } = fakeFetch({ status: 200, body: JSON.stringify({ call: { sid: SID, status: 'ringing' } }) });
    await client(fetch).getCall(SID);
    expect(sent).toEqual([{ url: `https://api.example.com/prod/api/twilio/voice?callSid=${SID}`, method: 'GET', headers: { Authorization: 'Bearer session-jwt' }, body: undefined, credentials: 'omit' }]);
  });

  test.each(['queued', 'initiated', 'ringing', 'in-progress', 'completed', 'busy', 'failed', 'no-answer', 'canceled'])('returns only the sid and the status of a %s call', async (status) => {
    const { fetch } = fakeFetch({ status: 200, body: JSON.stringify({ call: { sid: SID, status, to: '+14155550123' } }) });
    await expect(client(fetch).getCall(SID)).resolves.toEqual({ sid: SID, status });
  });

  test('escapes the SID into the query, so a caller’s string cannot add parameters', async () => {
    const { fetch, sent } = fakeFetch({ status: 400, body: JSON.stringify({ error: { code: 'invalid_request', message: 'Bad SID.' } }) });
    await failure(client(fetch).getCall('CA1&callSid=CA2'));
    expect(sent[0]!.url).toBe('https://api.example.com/prod/api/twilio/voice?callSid=CA1%26callSid%3DCA2');
  });

  test('fails with call_not_found for someone else’s or an unknown call', async () => {
    const { fetch } = fakeFetch({ status: 404, body: JSON.stringify({ error: { code: 'call_not_found', message: 'No such call.' } }) });
    await expect(failure(client(fetch).getCall(SID))).resolves.toMatchObject({ code: 'call_not_found', status: 404, message: 'No such call.' });
  });

  test('fails with unexpected_response on a 200 without a known call status', async () => {
    const { fetch } = fakeFetch({ status: 200, body: JSON.stringify({ call: { sid: SID, status: 'exploded' } }) });
    await expect(failure(client(fetch).getCall(SID))).resolves.toMatchObject({ code: 'unexpected_response', status: 200 });
  });

  test('fails with unauthenticated and sends nothing when signed out', async () => {
    const { fetch, sent } = fakeFetch({ status: 200, body: '{}' });
    await expect(failure(client(fetch, () => null).getCall(SID))).resolves.toMatchObject({ code: 'unauthenticated', status: 0 });
    expect(sent).toHaveLength(0);
  });

  test('isCallOver is true exactly for the ended statuses', () => {
    const all: CallStatus[] = ['queued', 'initiated', 'ringing', 'in-progress', 'completed', 'busy', 'failed', 'no-answer', 'canceled'];
    expect(all.filter(isCallOver)).toEqual(['completed', 'busy', 'failed', 'no-answer', 'canceled']);
    expect([...ENDED_CALL_STATUSES].sort()).toEqual(['busy', 'canceled', 'completed', 'failed', 'no-answer']);
    // The same set the service uses to free a call's slot.
    expect([...ENDED_CALL_STATUSES].sort()).toEqual([...ENDED_STATUSES].sort());
  });
});
