import { randomBytes, randomUUID } from 'node:crypto';
import { type AttributeValue, ScanCommand } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import fc from 'fast-check';
import { getExpectedTwilioSignature, getSignatureAlgorithm, validateRequest } from 'twilio/lib/webhooks/webhooks';
import type { Deps } from '../../lambdas/shared/deps';
import { webhookHandler } from '../../lambdas/shared/http';
import { type CallStatus, DynamoStore } from '../../lambdas/shared/store';
import { type TwilioCredentials, type TwilioPort, callbackUrlFor } from '../../lambdas/shared/twilio';
import { type FormParams, signatureAlgorithm, twilioSignature, validTwilioSignature } from '../../lambdas/shared/twilio-signature';
import { type StatusConfig, recordCallStatus } from '../../lambdas/status/service';
import { type TestTable, startTable } from '../support/dynalite';
import { FULL_SCALE, scale } from '../support/scale';
import { proxyEvent, testKeyring, testTwilioCredentials } from '../support/fixtures';

/**
 * Twilio status callbacks: our signature check agrees with Twilio's own SDK (`validateRequest`), and through the
 * route's handler chain a callback moves its call record only when it is signed for the exact URL Twilio was given
 * (stage path and owner included), by this account, with every parameter as signed. Everything else is refused
 * with the JSON error contract and leaves the call records untouched.
 */

const SEED = FULL_SCALE ? undefined : 20261203;
const RUNS = scale(150, 1_000);
const STATUS_URL = 'https://api.example.com/prod/api/twilio/status';
const NOW_MS = Date.now();
const NOW = Math.floor(NOW_MS / 1000);

const creds = testTwilioCredentials();
const keyring = testKeyring();
const config: StatusConfig = { statusCallbackUrl: STATUS_URL, statusLimitPerIpPerMinute: 1_000_000 };

/** The SDK's parameter shape: one value per name, or all of a repeated name's values. */
function sdkParams(params: FormParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [k, v] of params) {
    const prev = out[k];
    out[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
  }
  return out;
}

/** Twilio's signature of a request, as Twilio's SDK computes it. */
const sdkSign = (url: string, params: FormParams, token = creds.authToken, algorithm = 'HMAC_SHA1') => getExpectedTwilioSignature(token, url, sdkParams(params), algorithm);

const noTwilio: TwilioPort = {
  mintAccessToken: () => 'unused',
  createCall: () => Promise.reject(new Error('unused')),
  endCall: () => Promise.reject(new Error('unused')),
};

let t: TestTable;
let store: DynamoStore;
beforeAll(async () => {
  t = await startTable();
  store = new DynamoStore(t.client, t.table);
});
afterAll(() => t.stop());

function deps(over: Partial<Deps> = {}): Deps {
  return { store, twilio: noTwilio, twilioCredentials: async () => creds, keyring: async () => keyring, now: () => NOW_MS, ...over };
}

/** The status route as `lambdas/status/handler.ts` builds it, over the given deps and config. */
function statusRoute(d: Deps = deps(), cfg: StatusConfig = config) {
  const fn = webhookHandler(async ({ params, headers, query, sourceIp }) => {
    const out = await recordCallStatus(d, cfg, { params, query, sourceIp, signature: headers['x-twilio-signature'], signatureSettings: headers['x-twilio-webhooks-signature-settings'] });
    return { status: 204, audit: { outcome: out.result === 'updated' ? 'recorded' : 'ignored', reason: out.result, userId: out.userId } };
  });
  return async (req: Req): Promise<APIGatewayProxyResult> => {
    const event = proxyEvent({ method: 'POST', path: '/api/twilio/status', headers: req.headers, query: req.query ?? null, body: req.body, sourceIp: req.sourceIp ?? '203.0.113.10' });
    return (await fn(event, { awsRequestId: randomUUID() } as Context)) as APIGatewayProxyResult;
  };
}

const newSid = () => `CA${randomBytes(16).toString('hex')}`;

/** A call record with a live slot, as `placeCall` leaves it. */
async function placedCall(userId = randomUUID(), status: CallStatus = 'queued') {
  const admitted = await store.admitCall(userId, { concurrentCalls: 100, callsPerDay: 1000, slotExpiresAt: NOW + 3600 }, NOW);
  if (!admitted.allowed) throw new Error('not admitted');
  const callSid = newSid();
  await store.putCall({ userId, callSid, status, slot: admitted.slot, to: '+1415***0123', createdAt: NOW, expiresAt: NOW + 86_400 });
  return { userId, callSid, slot: admitted.slot };
}

/** What Twilio posts for a call event, in Twilio's field names. */
const callbackParams = (callSid: string, status: CallStatus, accountSid = creds.accountSid): [string, string][] => [
  ['AccountSid', accountSid],
  ['ApiVersion', '2010-04-01'],
  ['CallSid', callSid],
  ['CallStatus', status],
  ['Called', '+14155550123'],
  ['Caller', '+15005550006'],
  ['Direction', 'outbound-api'],
  ['From', '+15005550006'],
  ['SequenceNumber', '1'],
  ['Timestamp', new Date(NOW_MS).toUTCString()],
  ['To', '+14155550123'],
  ['CallbackSource', 'call-progress-events'],
];

const form = (params: FormParams) => new URLSearchParams(params.map(([k, v]): [string, string] => [k, v])).toString();

interface Req {
  readonly body: string;
  readonly headers: Record<string, string>;
  readonly query?: Record<string, string[]>;
  readonly sourceIp?: string;
}

/** A request exactly as Twilio sends it for this owner's call: body, signature over the owner's URL, query `u`. */
function signedRequest(userId: string, params: FormParams, extraHeaders: Record<string, string> = {}): Req {
  return {
    body: form(params),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': sdkSign(callbackUrlFor(STATUS_URL, userId), params), ...extraHeaders },
    query: { u: [userId] },
  };
}

/** Every item of the table, by key, except the per-IP callback counters (the flood limit counts every rejected attempt). */
async function tableState(): Promise<Map<string, Record<string, AttributeValue>>> {
  const items = new Map<string, Record<string, AttributeValue>>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await t.client.send(new ScanCommand({ TableName: t.table, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    for (const item of page.Items ?? []) {
      const key = `${item['pk']?.S}|${item['sk']?.S}`;
      if (!key.startsWith('LIMIT#ip-status-rejected#')) items.set(key, item);
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

const statusOf = async (userId: string, callSid: string) => (await tableState()).get(`USER#${userId}|CALL#${callSid}`)?.['status']?.S;
const errorCode = (r: APIGatewayProxyResult) => (JSON.parse(r.body) as { error: { code: string } }).error.code;

/** The JSON error contract and nothing else: no stack trace, no library or AWS message. */
function expectCleanError(r: APIGatewayProxyResult) {
  expect(r.body).toMatch(/^\{"error":\{"code":"[a-z_]+","message":"[^"\\]+"\}\}$/);
  expect(r.body).not.toMatch(/\bat \S+ \(|node_modules|Error:|Exception|dynamo|twilio\.com|\[HTTP/i);
  expect(r.headers?.['Content-Type']).toBe('application/json');
}

describe('the signature check agrees with Twilio\'s SDK (validateRequest / getExpectedTwilioSignature)', () => {
  const userIdArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/);
  const urlArb = fc.record({ host: fc.domain(), stage: fc.stringMatching(/^[a-z0-9]{1,10}$/), port: fc.constantFrom('', ':443'), userId: userIdArb }).map(
    ({ host, stage, port, userId }) => callbackUrlFor(`https://${host}${port}/${stage}/api/twilio/status`, userId),
  );
  // Few names, so that names repeat; values include unicode, empty strings and form-encoding's special characters.
  const nameArb = fc.oneof(fc.constantFrom('CallSid', 'CallStatus', 'To', 'From', 'AccountSid', 'Digits'), fc.string({ unit: 'grapheme', maxLength: 8 }));
  const valueArb = fc.oneof(fc.constant(''), fc.string({ unit: 'grapheme', maxLength: 20 }), fc.constantFrom('+14155550123', 'a&b=c', '%20', ' ', 'é', '\u{1F4DE}'));
  const paramsArb = fc.array(fc.tuple(nameArb, valueArb), { maxLength: 12 });
  const algArb = fc.constantFrom('HMAC_SHA1', 'HMAC_SHA256');

  test('accepts every signature the SDK computes, and the SDK accepts every signature we compute', () => {
    fc.assert(
      fc.property(urlArb, paramsArb, algArb, (url, params, alg) => {
        const settingsHeader = alg === 'HMAC_SHA256' ? `key=webhooks_sharedkey_x,algorithm=${alg}` : undefined;
        const theirs = sdkSign(url, params, creds.authToken, alg);
        const ours = twilioSignature(creds.authToken, url, params, alg === 'HMAC_SHA256' ? 'sha256' : 'sha1');
        expect(ours).toBe(theirs);
        expect(validTwilioSignature({ authToken: creds.authToken, url, params, signature: theirs, settingsHeader })).toBe(true);
        expect(validateRequest(creds.authToken, ours, url, sdkParams(params), alg)).toBe(true);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  test('gives the SDK\'s verdict on altered signatures, parameters and URLs', () => {
    const alteration = fc.constantFrom('none', 'flipChar', 'dropPadding', 'lastCharBits', 'otherToken', 'otherAlg', 'addParam', 'dropParam', 'otherValue', 'otherUser', 'otherPath', 'noQuery', 'portVariant');
    fc.assert(
      fc.property(urlArb, paramsArb, algArb, alteration, (url, params, alg, how) => {
        let sig = sdkSign(url, params, creds.authToken, alg);
        let checkedUrl = url;
        let checked: FormParams = params;
        const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
        const lastData = sig.replace(/=+$/, '').length - 1;
        if (how === 'flipChar') sig = sig.slice(0, 3) + (sig[3] === 'A' ? 'B' : 'A') + sig.slice(4);
        if (how === 'dropPadding') sig = sig.replace(/=+$/, '');
        // Same decoded bytes, different text: base64's unused low bits of the last character.
        if (how === 'lastCharBits') sig = sig.slice(0, lastData) + b64[b64.indexOf(sig[lastData]!) ^ 1]! + sig.slice(lastData + 1);
        if (how === 'otherToken') sig = sdkSign(url, params, randomBytes(16).toString('hex'), alg);
        if (how === 'otherAlg') sig = sdkSign(url, params, creds.authToken, alg === 'HMAC_SHA1' ? 'HMAC_SHA256' : 'HMAC_SHA1');
        if (how === 'addParam') checked = [...params, ['Extra', 'x']];
        if (how === 'dropParam') checked = params.slice(1);
        if (how === 'otherValue') checked = params.map(([k, v], i) => (i === 0 ? [k, `${v}x`] : [k, v]));
        if (how === 'otherUser') checkedUrl = `${url}x`;
        if (how === 'otherPath') checkedUrl = url.replace('/api/twilio/status', '/api/twilio/statuz');
        // Signed without the owner's query: valid for the bare URL only.
        if (how === 'noQuery') sig = sdkSign(url.split('?')[0]!, params, creds.authToken, alg);
        // Signed with the scheme's default port spelled out, or left out: Twilio may sign either spelling.
        if (how === 'portVariant') sig = sdkSign(url.includes(':443/') ? url.replace(':443/', '/') : url.replace(/^(https:\/\/[^/]+)/, '$1:443'), params, creds.authToken, alg);
        const settingsHeader = alg === 'HMAC_SHA256' ? `algorithm=${alg}` : undefined;
        const ours = validTwilioSignature({ authToken: creds.authToken, url: checkedUrl, params: checked, signature: sig, settingsHeader });
        const theirs = validateRequest(creds.authToken, sig, checkedUrl, sdkParams(checked), alg);
        expect(ours).toBe(theirs);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  test('reads the signature-settings header as the SDK does', () => {
    const part = fc.oneof(
      fc.constantFrom('algorithm=HMAC_SHA256', 'algorithm=hmac_sha256', 'algorithm=HMAC_SHA1', 'algorithm=', 'algorithm=HMAC_MD5', ' algorithm = HMAC_SHA256 ', 'key=webhooks_sharedkey_1', 'algo=HMAC_SHA256'),
      fc.string({ maxLength: 12 }),
    );
    const sdkHash = (header: string) => {
      const alg = getSignatureAlgorithm(header).toUpperCase();
      return alg === 'HMAC_SHA1' ? 'sha1' : alg === 'HMAC_SHA256' ? 'sha256' : undefined;
    };
    fc.assert(
      fc.property(fc.array(part, { maxLength: 4 }), (parts) => {
        const header = parts.join(',');
        expect(signatureAlgorithm(header)).toBe(sdkHash(header));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  describe('rejects', () => {
    const userId = randomUUID();
    const url = callbackUrlFor(STATUS_URL, userId);
    const params = callbackParams(newSid(), 'ringing');
    const sig = sdkSign(url, params);
    const valid = (over: Partial<Parameters<typeof validTwilioSignature>[0]>) => validTwilioSignature({ authToken: creds.authToken, url, params, signature: sig, ...over });

    test('accepts the untouched request (control)', () => expect(valid({})).toBe(true));
    test('rejects a tampered parameter', () => expect(valid({ params: params.map(([k, v]) => (k === 'CallStatus' ? [k, 'completed'] : [k, v])) })).toBe(false));
    test('rejects an added parameter', () => expect(valid({ params: [...params, ['Digits', '1']] })).toBe(false));
    test('rejects a removed parameter', () => expect(valid({ params: params.filter(([k]) => k !== 'To') })).toBe(false));
    test('rejects a repeated parameter with a new value', () => expect(valid({ params: [...params, ['CallStatus', 'completed']] })).toBe(false));
    test('rejects another host', () => expect(valid({ url: url.replace('api.example.com', 'evil.example.com') })).toBe(false));
    test('rejects another stage path', () => expect(valid({ url: url.replace('/prod/', '/dev/') })).toBe(false));
    test('rejects another user in ?u=', () => expect(valid({ url: callbackUrlFor(STATUS_URL, randomUUID()) })).toBe(false));
    test('rejects a signature over the URL without ?u=', () => expect(valid({ signature: sdkSign(STATUS_URL, params) })).toBe(false));
    test('rejects a wrong auth token', () => expect(valid({ authToken: randomBytes(16).toString('hex') })).toBe(false));
    test('rejects an empty auth token', () => expect(valid({ authToken: '' })).toBe(false));
    test('rejects a missing signature', () => expect(valid({ signature: undefined })).toBe(false));
    test.each(['', '!!!!', 'not base64 at all', `${sig}=`, `${sig}AAAA`, sig.slice(0, -2), `${sig} `, ` ${sig}`])('rejects the malformed signature %p', (s) => expect(valid({ signature: s })).toBe(false));
    test('rejects a signature for another call (CallSid changed)', () => expect(valid({ params: params.map(([k, v]) => (k === 'CallSid' ? [k, newSid()] : [k, v])) })).toBe(false));
    test('rejects a SHA1 signature when the settings header says HMAC_SHA256', () => expect(valid({ settingsHeader: 'algorithm=HMAC_SHA256' })).toBe(false));
    test('rejects a SHA256 signature without the settings header', () => expect(valid({ signature: sdkSign(url, params, creds.authToken, 'HMAC_SHA256') })).toBe(false));
    test('rejects an unknown algorithm, even with a signature valid under SHA1', () => expect(valid({ settingsHeader: 'algorithm=HMAC_MD5' })).toBe(false));
    test('accepts a SHA256 signature when the settings header says so (control)', () =>
      expect(valid({ signature: sdkSign(url, params, creds.authToken, 'HMAC_SHA256'), settingsHeader: 'key=k1,algorithm=HMAC_SHA256' })).toBe(true));
  });
});

describe('POST /api/twilio/status through the handler chain, on dynalite', () => {
  test('a valid callback answers 204 with no body and moves the call record', async () => {
    const { userId, callSid } = await placedCall();

    const r = await statusRoute()(signedRequest(userId, callbackParams(callSid, 'ringing')));

    expect([r.statusCode, r.body]).toEqual([204, '']);
    expect(await statusOf(userId, callSid)).toBe('ringing');
  });

  test('a valid SHA256-signed callback is accepted too', async () => {
    const { userId, callSid } = await placedCall();
    const params = callbackParams(callSid, 'in-progress');
    const req = signedRequest(userId, params, { 'X-Twilio-Webhooks-Signature-Settings': 'key=k1,algorithm=HMAC_SHA256' });
    req.headers['X-Twilio-Signature'] = sdkSign(callbackUrlFor(STATUS_URL, userId), params, creds.authToken, 'HMAC_SHA256');

    expect((await statusRoute()(req)).statusCode).toBe(204);
    expect(await statusOf(userId, callSid)).toBe('in-progress');
  });

  const cases: [string, (userId: string, callSid: string) => Req][] = [
    ['a tampered parameter', (u, sid) => {
      const r = signedRequest(u, callbackParams(sid, 'ringing'));
      return { ...r, body: form(callbackParams(sid, 'completed')) };
    }],
    ['an added parameter', (u, sid) => {
      const r = signedRequest(u, callbackParams(sid, 'completed'));
      return { ...r, body: `${r.body}&Digits=1` };
    }],
    ['a removed parameter', (u, sid) => {
      const r = signedRequest(u, callbackParams(sid, 'completed'));
      return { ...r, body: form(callbackParams(sid, 'completed').filter(([k]) => k !== 'From')) };
    }],
    ['a signature over another host', (u, sid) => {
      const p = callbackParams(sid, 'completed');
      return { ...signedRequest(u, p), headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': sdkSign(callbackUrlFor('https://evil.example.com/prod/api/twilio/status', u), p) } };
    }],
    ['a signature over another stage path', (u, sid) => {
      const p = callbackParams(sid, 'completed');
      return { ...signedRequest(u, p), headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': sdkSign(callbackUrlFor('https://api.example.com/dev/api/twilio/status', u), p) } };
    }],
    ['a signature for another user\'s URL, sent with this user in ?u=', (u, sid) => {
      const r = signedRequest(randomUUID(), callbackParams(sid, 'completed'));
      return { ...r, query: { u: [u] } };
    }],
    ['a signature over the route URL without the owner\'s ?u=', (u, sid) => {
      const p = callbackParams(sid, 'completed');
      return { ...signedRequest(u, p), headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': sdkSign(STATUS_URL, p) } };
    }],
    ['a second query parameter', (u, sid) => ({ ...signedRequest(u, callbackParams(sid, 'completed')), query: { u: [u], x: ['1'] } })],
    ['a repeated ?u=', (u, sid) => ({ ...signedRequest(u, callbackParams(sid, 'completed')), query: { u: [u, u] } })],
    ['no query at all', (u, sid) => ({ ...signedRequest(u, callbackParams(sid, 'completed')), query: {} })],
    ['a wrong auth token', (u, sid) => {
      const p = callbackParams(sid, 'completed');
      return { ...signedRequest(u, p), headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': sdkSign(callbackUrlFor(STATUS_URL, u), p, randomBytes(16).toString('hex')) } };
    }],
    ['a missing signature header', (u, sid) => {
      const r = signedRequest(u, callbackParams(sid, 'completed'));
      return { ...r, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } };
    }],
    ['a malformed base64 signature', (u, sid) => {
      const r = signedRequest(u, callbackParams(sid, 'completed'));
      return { ...r, headers: { ...r.headers, 'X-Twilio-Signature': `${r.headers['X-Twilio-Signature'] ?? ''}%%` } };
    }],
    ['a signature for another call (CallSid changed)', (u, sid) => {
      const r = signedRequest(u, callbackParams(newSid(), 'completed'));
      return { ...r, body: form(callbackParams(sid, 'completed')) };
    }],
    ['a SHA1 signature with the settings header claiming SHA256', (u, sid) => signedRequest(u, callbackParams(sid, 'completed'), { 'X-Twilio-Webhooks-Signature-Settings': 'algorithm=HMAC_SHA256' })],
    ['an unknown algorithm', (u, sid) => signedRequest(u, callbackParams(sid, 'completed'), { 'X-Twilio-Webhooks-Signature-Settings': 'algorithm=HMAC_SHA512' })],
  ];

  test.each(cases)('rejects %s: 403 invalid_signature and nothing written', async (_name, build) => {
    const { userId, callSid, slot } = await placedCall();
    const before = await tableState();

    const r = await statusRoute()(build(userId, callSid));

    expect([r.statusCode, errorCode(r)]).toEqual([403, 'invalid_signature']);
    expectCleanError(r);
    expect(await tableState()).toEqual(before);
    expect(before.get(`USER#${userId}|CALLS`)?.['live']?.SS).toContain(slot);
  });

  test('rejects a validly signed callback from a foreign account (403), nothing written', async () => {
    const { userId, callSid } = await placedCall();
    const before = await tableState();

    const r = await statusRoute()(signedRequest(userId, callbackParams(callSid, 'completed', `AC${randomBytes(16).toString('hex')}`)));

    expect([r.statusCode, errorCode(r)]).toEqual([403, 'invalid_signature']);
    expectCleanError(r);
    expect(await tableState()).toEqual(before);
  });

  test('fails closed (503) when the Twilio secret holds no auth token, nothing written', async () => {
    const { userId, callSid } = await placedCall();
    const withoutToken = Object.fromEntries(Object.entries(creds).filter(([k]) => k !== 'authToken')) as unknown as TwilioCredentials;
    const before = await tableState();

    const r = await statusRoute(deps({ twilioCredentials: async () => withoutToken }))(signedRequest(userId, callbackParams(callSid, 'completed')));

    expect([r.statusCode, errorCode(r)]).toEqual([503, 'unavailable']);
    expectCleanError(r);
    expect(await tableState()).toEqual(before);
  });

  test.each(['application/json', 'text/plain', 'multipart/form-data; boundary=x'])('rejects the content type %s with 415', async (type) => {
    const { userId, callSid } = await placedCall();
    const req = signedRequest(userId, callbackParams(callSid, 'completed'));

    const r = await statusRoute()({ ...req, headers: { ...req.headers, 'Content-Type': type } });

    expect([r.statusCode, errorCode(r)]).toEqual([415, 'unsupported_media_type']);
    expectCleanError(r);
    expect(await statusOf(userId, callSid)).toBe('queued');
  });

  test('rejects a body over 8 KB with 413, even when validly signed', async () => {
    const { userId, callSid } = await placedCall();
    const params: [string, string][] = [...callbackParams(callSid, 'completed'), ['Padding', 'x'.repeat(8 * 1024)]];

    const r = await statusRoute()(signedRequest(userId, params));

    expect([r.statusCode, errorCode(r)]).toEqual([413, 'payload_too_large']);
    expectCleanError(r);
    expect(await statusOf(userId, callSid)).toBe('queued');
  });

  test.each(['https://api.example.com', 'http://localhost:5173', 'null'])('rejects any Origin header (%s) with 403, even on a valid callback', async (origin) => {
    const { userId, callSid } = await placedCall();

    const r = await statusRoute()(signedRequest(userId, callbackParams(callSid, 'completed'), { Origin: origin }));

    expect([r.statusCode, errorCode(r)]).toEqual([403, 'origin_not_allowed']);
    expectCleanError(r);
    expect(r.headers?.['Access-Control-Allow-Origin']).toBeUndefined();
    expect(await statusOf(userId, callSid)).toBe('queued');
  });

  test('ignores a validly signed callback for an unknown call: 204 and no item created', async () => {
    const userId = randomUUID();
    const before = await tableState();

    const r = await statusRoute()(signedRequest(userId, callbackParams(newSid(), 'completed')));

    expect(r.statusCode).toBe(204);
    expect(await tableState()).toEqual(before);
  });

  test('ignores a validly signed callback naming another user\'s call: 204, that call untouched', async () => {
    const { callSid } = await placedCall();
    const owner = (await tableState()).size; // any change would show below
    const intruder = randomUUID();

    const r = await statusRoute()(signedRequest(intruder, callbackParams(callSid, 'completed')));

    expect(r.statusCode).toBe(204);
    expect((await tableState()).size).toBe(owner);
    expect([...(await tableState()).keys()].some((k) => k.startsWith(`USER#${intruder}|`))).toBe(false);
  });

  test('rejects more than N forged callbacks per minute from one IP with 429 and Retry-After; valid ones and other IPs are unaffected', async () => {
    const N = 4;
    const route = statusRoute(deps(), { ...config, statusLimitPerIpPerMinute: N });
    const { userId, callSid } = await placedCall();
    const ip = `198.51.100.${1 + Math.floor(Math.random() * 250)}`;
    const other = `192.0.2.${1 + Math.floor(Math.random() * 250)}`;
    const forged = (sourceIp: string) => {
      const req = signedRequest(userId, callbackParams(callSid, 'completed'));
      return route({ ...req, headers: { ...req.headers, 'X-Twilio-Signature': Buffer.alloc(20, 7).toString('base64') }, sourceIp });
    };
    const valid = (sourceIp: string, status: CallStatus) => route({ ...signedRequest(userId, callbackParams(callSid, status)), sourceIp });

    const first = await Promise.all(Array.from({ length: N }, () => forged(ip)));
    const over = await forged(ip);
    const fromOther = await forged(other);

    expect(first.map((r) => r.statusCode)).toEqual(Array(N).fill(403));
    expect([over.statusCode, errorCode(over)]).toEqual([429, 'rate_limited']);
    expectCleanError(over);
    const retry = Number(over.headers?.['Retry-After']);
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    expect(fromOther.statusCode).toBe(403);
    // Twilio's real callbacks from that same IP still go through: a lost `completed` would hold a call slot.
    const many = await Promise.all(Array.from({ length: 3 * N }, () => valid(ip, 'ringing')));
    expect(many.map((r) => r.statusCode)).toEqual(Array(3 * N).fill(204));
    expect((await valid(ip, 'in-progress')).statusCode).toBe(204);
    // The forged `completed`s recorded nothing.
    expect(await statusOf(userId, callSid)).toBe('in-progress');
  });

  test('handler-level agreement: any extra parameters, signed by the SDK and form-encoded, are accepted', async () => {
    const { userId, callSid } = await placedCall();
    const route = statusRoute();
    const extra = fc.array(fc.tuple(fc.stringMatching(/^[A-Z][A-Za-z]{0,10}$/).filter((k) => !['AccountSid', 'CallSid', 'CallStatus'].includes(k)), fc.string({ unit: 'grapheme', maxLength: 16 })), { maxLength: 8 });
    await fc.assert(
      fc.asyncProperty(extra, async (more) => {
        const r = await route(signedRequest(userId, [...callbackParams(callSid, 'ringing'), ...more]));
        expect(r.statusCode).toBe(204);
      }),
      { numRuns: scale(25, 200), seed: SEED },
    );
    expect(await statusOf(userId, callSid)).toBe('ringing');
  });
});
