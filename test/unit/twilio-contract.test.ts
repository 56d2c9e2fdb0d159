import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { InvalidRequestError, UpstreamError } from '../../lambdas/shared/errors';
import { CALL_STATUSES } from '../../lambdas/shared/store';
import { STATUS_CALLBACK_EVENTS, type TwilioCredentials, TwilioRest, twilioIdentity } from '../../lambdas/shared/twilio';
import AccessToken from 'twilio/lib/jwt/AccessToken';
import { mintAccessToken } from '../../lambdas/shared/twilio-token';
import { close, listen } from '../../local/http-util';
import { type TwilioStandIn, twilioStandIn } from '../../local/twilio-standin';

/**
 * What the project sends to Twilio, and what it expects back, checked against Twilio's own OpenAPI description
 * of API 2010-04-01 (kept beside the repository, never committed); plus the Twilio adapter's behaviour against
 * the loopback stand-in, through the real Twilio SDK. Without the OpenAPI file only the spec checks are skipped:
 * the adapter checks need nothing but the stand-in.
 */

const SPEC_PATH = path.resolve(__dirname, '../../../shared/twilio-openapi/twilio_api_v2010.json');
const CREATE_PATH = '/2010-04-01/Accounts/{AccountSid}/Calls.json';
const CALL_PATH = '/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json';

/** The parts of an OpenAPI 3.0 schema these checks read. */
interface Schema {
  readonly $ref?: string;
  readonly type?: string;
  readonly nullable?: boolean;
  readonly enum?: readonly unknown[];
  readonly description?: string;
  readonly pattern?: string;
  readonly required?: readonly string[];
  readonly properties?: Readonly<Record<string, Schema>>;
}

interface Operation {
  readonly requestBody?: { readonly content: Readonly<Record<string, { readonly schema: Schema }>> };
  readonly responses: Readonly<Record<string, { readonly content?: Readonly<Record<string, { readonly schema: Schema }>> }>>;
}

interface OpenApi {
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
  readonly components: { readonly schemas: Readonly<Record<string, Schema>> };
}

const spec: OpenApi | undefined = existsSync(SPEC_PATH) ? (JSON.parse(readFileSync(SPEC_PATH, 'utf8')) as OpenApi) : undefined;
if (!spec) console.info(`Twilio OpenAPI description not found at ${SPEC_PATH}: skipping the Twilio OpenAPI contract checks.`);
const describeWithSpec = spec ? describe : describe.skip;

function api(): OpenApi {
  if (!spec) throw new Error('the OpenAPI description is not loaded');
  return spec;
}

function resolve(schema: Schema): Schema {
  if (!schema.$ref) return schema;
  const name = schema.$ref.replace(/^#\/components\/schemas\//, '');
  const target = api().components.schemas[name];
  if (!target) throw new Error(`unresolvable $ref ${schema.$ref}`);
  return resolve(target);
}

function operation(template: string, method: 'get' | 'post'): Operation {
  const op = api().paths[template]?.[method];
  if (!op) throw new Error(`the OpenAPI description has no ${method.toUpperCase()} ${template}`);
  return op;
}

function formSchema(template: string): Schema {
  const schema = operation(template, 'post').requestBody?.content['application/x-www-form-urlencoded']?.schema;
  if (!schema) throw new Error(`POST ${template} has no form request body`);
  return resolve(schema);
}

/** The schema of a JSON response, with the `$ref` it was reached through. */
function responseSchema(template: string, method: 'get' | 'post', status: string): { ref: string | undefined; schema: Schema } {
  const schema = operation(template, method).responses[status]?.content?.['application/json']?.schema;
  if (!schema) throw new Error(`${method.toUpperCase()} ${template} has no ${status} JSON response`);
  return { ref: schema.$ref, schema: resolve(schema) };
}

/** A path template as a regular expression over concrete paths. */
function templateMatcher(template: string): RegExp {
  const source = template
    .split(/\{[A-Za-z]+\}/)
    .map((literal) => literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]+');
  // eslint-disable-next-line security/detect-non-literal-regexp -- built from the OpenAPI file's own path templates, escaped
  return new RegExp(`^${source}$`);
}

/** Every way `value` departs from `schema` (properties, their types, nullability, enums and patterns). */
function violations(value: Record<string, unknown>, schema: Schema): string[] {
  const found: string[] = [];
  for (const [name, v] of Object.entries(value)) {
    const declared = schema.properties?.[name];
    if (!declared) {
      found.push(`${name}: not a property of the schema`);
      continue;
    }
    const prop = resolve(declared);
    if (v === null) {
      if (!prop.nullable) found.push(`${name}: null but not nullable`);
      continue;
    }
    const typeOk =
      prop.type === undefined ||
      (prop.type === 'string' && typeof v === 'string') ||
      (prop.type === 'integer' && Number.isInteger(v)) ||
      (prop.type === 'number' && typeof v === 'number') ||
      (prop.type === 'boolean' && typeof v === 'boolean') ||
      (prop.type === 'array' && Array.isArray(v)) ||
      (prop.type === 'object' && typeof v === 'object' && !Array.isArray(v));
    if (!typeOk) found.push(`${name}: ${JSON.stringify(v)} is not of type ${prop.type}`);
    if (prop.enum && !prop.enum.includes(v)) found.push(`${name}: ${JSON.stringify(v)} is not one of ${prop.enum.join(', ')}`);
    // eslint-disable-next-line security/detect-non-literal-regexp -- patterns come from Twilio's OpenAPI file (test data)
    if (prop.pattern && typeof v === 'string' && !new RegExp(prop.pattern).test(v)) found.push(`${name}: ${v} does not match ${prop.pattern}`);
  }
  return found;
}

/**
 * A form body as the values its schema describes: a repeated name becomes an array where the schema says
 * array, whole-number strings become integers where it says integer (form encoding has only strings).
 */
function formValues(form: readonly [string, string][], schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of new Set(form.map(([k]) => k))) {
    const values = form.filter(([k]) => k === name).map(([, v]) => v);
    const declared = schema.properties?.[name];
    const type = declared ? resolve(declared).type : undefined;
    if (type === 'array') out[name] = values;
    else if (type === 'integer' && /^-?\d+$/.test(values[0]!)) out[name] = Number(values[0]);
    else out[name] = values.length === 1 ? values[0] : values;
  }
  return out;
}

const hex32 = () => randomBytes(16).toString('hex');

/** Credentials shaped like Twilio's, generated per run. */
function twilioCredentials(overrides: Partial<TwilioCredentials> = {}): TwilioCredentials {
  return { accountSid: `AC${hex32()}`, apiKeySid: `SK${hex32()}`, apiKeySecret: hex32(), twimlAppSid: `AP${hex32()}`, callerId: '+15005550006', ...overrides };
}

const TO = '+14155550123';
const INVALID_TO = '+15005550001';
const CALL_OPTS = { statusCallback: 'https://api.example.com/prod/api/twilio/status?u=user-1', timeLimit: 3600 };
/** What every calls.create sends for status callbacks (the stand-in's record keeps the last StatusCallbackEvent). */
const STATUS_PARAMS = { StatusCallback: CALL_OPTS.statusCallback, StatusCallbackMethod: 'POST', StatusCallbackEvent: 'completed', TimeLimit: '3600' };

let creds: TwilioCredentials;
let standIn: TwilioStandIn;
let baseUrl: string;
let twilio: TwilioRest;

beforeAll(async () => {
  creds = twilioCredentials();
  standIn = twilioStandIn(creds);
  baseUrl = `http://127.0.0.1:${await listen(standIn.server, 0)}`;
  twilio = new TwilioRest(baseUrl, 5000, mintAccessToken);
});

afterAll(() => close(standIn.server));

beforeEach(() => {
  standIn.requests.length = 0;
  standIn.failNext(0, { status: 500, code: 20500 });
});

/** Calls the stand-in directly (not through the adapter), authenticated with the API key. */
async function callStandIn(method: 'GET' | 'POST', urlPath: string, form?: Record<string, string>, auth: TwilioCredentials = creds) {
  const res = await fetch(`${baseUrl}${urlPath}`, {
    method,
    headers: {
      Authorization: `Basic ${Buffer.from(`${auth.apiKeySid}:${auth.apiKeySecret}`).toString('base64')}`,
      ...(form ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(form ? { body: new URLSearchParams(form).toString() } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const callsPath = () => `/2010-04-01/Accounts/${creds.accountSid}/Calls`;

describeWithSpec('call states and status callbacks match Twilio\'s OpenAPI description', () => {
  test('every call status Twilio documents is a state the call records know, and they know only those and `initiated`', () => {
    const documented = (api().components.schemas['call_enum_status']?.enum ?? []) as string[];
    expect(documented.length).toBeGreaterThan(5);
    // `initiated` exists only in status callbacks (the REST resource says `queued` then).
    expect([...CALL_STATUSES].sort()).toEqual([...documented, 'initiated'].sort());
  });

  test('the status callback events asked for are the ones Twilio describes, sent with a method it allows', () => {
    const props = formSchema(CREATE_PATH).properties ?? {};
    const events = resolve(props['StatusCallbackEvent']!);
    expect(events.type).toBe('array');
    for (const e of STATUS_CALLBACK_EVENTS) expect(String(events.description)).toContain(`\`${e}\``);
    expect(resolve(props['StatusCallbackMethod']!).enum).toContain('POST');
    expect(resolve(props['TimeLimit']!).type).toBe('integer');
  });
});

describeWithSpec('requests the project sends match Twilio\'s OpenAPI description', () => {
  async function createRequest(credentials: TwilioCredentials) {
    await twilio.createCall(credentials, TO, CALL_OPTS);
    const sent = standIn.requests.find((r) => r.method === 'POST' && templateMatcher(CREATE_PATH).test(r.path));
    if (!sent) throw new Error('the adapter sent no create-call request');
    return sent;
  }

  test('creates a call with POST on the documented Calls path', async () => {
    const sent = await createRequest(creds);

    expect(sent.path).toBe(`${callsPath()}.json`);
  });

  test('sends only form parameters the create-call schema declares', async () => {
    const sent = await createRequest(creds);

    expect(Object.keys(sent.params).filter((k) => !(k in (formSchema(CREATE_PATH).properties ?? {})))).toEqual([]);
  });

  test('sends every parameter the create-call schema requires', async () => {
    const required = formSchema(CREATE_PATH).required ?? [];
    const sent = await createRequest(creds);

    expect(required.length).toBeGreaterThan(0);
    expect(Object.keys(sent.params)).toEqual(expect.arrayContaining([...required]));
  });

  test('sends To, From and the TwiML App as documented', async () => {
    const sent = await createRequest(creds);

    expect(sent.params).toEqual({ To: TO, From: creds.callerId, ApplicationSid: creds.twimlAppSid, ...STATUS_PARAMS });
    expect(violations(formValues(sent.form, formSchema(CREATE_PATH)), formSchema(CREATE_PATH))).toEqual([]);
    expect(sent.form.filter(([k]) => k === 'StatusCallbackEvent').map(([, v]) => v)).toEqual(['initiated', 'ringing', 'answered', 'completed']);
  });

  test('sends a voice URL as a declared parameter when no TwiML App is configured', async () => {
    const withUrl: TwilioCredentials = { ...creds, twimlAppSid: undefined, voiceUrl: 'https://voice.example.com/twiml' };

    const sent = await createRequest(withUrl);

    expect(sent.params).toEqual({ To: TO, From: creds.callerId, Url: 'https://voice.example.com/twiml', ...STATUS_PARAMS });
    expect(violations(formValues(sent.form, formSchema(CREATE_PATH)), formSchema(CREATE_PATH))).toEqual([]);
    expect(sent.form.filter(([k]) => k === 'StatusCallbackEvent').map(([, v]) => v)).toEqual(['initiated', 'ringing', 'answered', 'completed']);
  });

  test('ends a call with POST on the documented call path, sending only declared parameters', async () => {
    const call = await twilio.createCall(creds, TO, CALL_OPTS);
    standIn.requests.length = 0;

    await twilio.endCall(creds, call.sid);

    const [sent] = standIn.requests;
    expect(sent?.method).toBe('POST');
    expect(sent?.path).toMatch(templateMatcher(CALL_PATH));
    expect(Object.keys(sent?.params ?? {}).filter((k) => !(k in (formSchema(CALL_PATH).properties ?? {})))).toEqual([]);
    expect(Object.keys(sent?.params ?? {})).toEqual(expect.arrayContaining([...(formSchema(CALL_PATH).required ?? [])]));
  });

  test('ends a call with Status "completed", a value the update schema allows', async () => {
    const call = await twilio.createCall(creds, TO, CALL_OPTS);
    standIn.requests.length = 0;

    await twilio.endCall(creds, call.sid);

    expect(standIn.requests[0]?.params).toEqual({ Status: 'completed' });
    const status = formSchema(CALL_PATH).properties?.['Status'];
    expect(status).toBeDefined();
    const allowed = resolve(status!).enum;
    if (allowed) expect(allowed).toContain('completed');
  });
});

describeWithSpec('the stand-in answers like Twilio\'s OpenAPI description', () => {
  const callSchema = () => responseSchema(CREATE_PATH, 'post', '201');

  test('finds the call resource schema through the create response', () => {
    expect(callSchema().ref).toBe('#/components/schemas/api.v2010.account.call');
  });

  test('documents the same call resource for create, fetch and update', () => {
    expect(responseSchema(CALL_PATH, 'get', '200').ref).toBe(callSchema().ref);
    expect(responseSchema(CALL_PATH, 'post', '200').ref).toBe(callSchema().ref);
  });

  test('answers create with 201 and a call resource that fits the schema', async () => {
    const res = await callStandIn('POST', `${callsPath()}.json`, { To: TO, From: creds.callerId, ApplicationSid: creds.twimlAppSid! });

    expect(res.status).toBe(201);
    expect(violations(res.body, callSchema().schema)).toEqual([]);
  });

  test('answers fetch with 200 and a call resource that fits the schema', async () => {
    const { sid } = await twilio.createCall(creds, TO, CALL_OPTS);

    const res = await callStandIn('GET', `${callsPath()}/${sid}.json`);

    expect(res.status).toBe(200);
    expect(violations(res.body, responseSchema(CALL_PATH, 'get', '200').schema)).toEqual([]);
  });

  test('answers update with 200 and a completed call resource that fits the schema', async () => {
    const { sid } = await twilio.createCall(creds, TO, CALL_OPTS);

    const res = await callStandIn('POST', `${callsPath()}/${sid}.json`, { Status: 'completed' });

    expect(res.status).toBe(200);
    expect(res.body['status']).toBe('completed');
    expect(violations(res.body, responseSchema(CALL_PATH, 'post', '200').schema)).toEqual([]);
  });

  test('reports call statuses from the documented status enum', async () => {
    const statusEnum = resolve(callSchema().schema.properties?.['status'] ?? {}).enum;
    const created = await callStandIn('POST', `${callsPath()}.json`, { To: TO, From: creds.callerId, Url: 'https://voice.example.com/twiml' });
    const ended = await callStandIn('POST', `${callsPath()}/${String(created.body['sid'])}.json`, { Status: 'completed' });

    expect(statusEnum).toEqual(expect.arrayContaining(['queued', 'completed']));
    expect(statusEnum).toContain(created.body['status']);
    expect(statusEnum).toContain(ended.body['status']);
  });
});

describe('the stand-in\'s errors have Twilio\'s error shape', () => {
  const cases: readonly [string, number, () => Promise<{ status: number; body: Record<string, unknown> }>][] = [
    ['an invalid To (21211)', 21211, () => callStandIn('POST', `${callsPath()}.json`, { To: INVALID_TO, From: '+15005550006', Url: 'https://voice.example.com/twiml' })],
    ['an unknown call (20404)', 20404, () => callStandIn('GET', `${callsPath()}/CA${hex32()}.json`)],
    ['wrong credentials (20003)', 20003, () => callStandIn('GET', `${callsPath()}/CA${hex32()}.json`, undefined, twilioCredentials())],
    [
      'ending an ended call (21220)',
      21220,
      async () => {
        const created = await callStandIn('POST', `${callsPath()}.json`, { To: TO, From: '+15005550006', Url: 'https://voice.example.com/twiml' });
        const path = `${callsPath()}/${String(created.body['sid'])}.json`;
        await callStandIn('POST', path, { Status: 'completed' });
        return callStandIn('POST', path, { Status: 'completed' });
      },
    ],
    [
      'an injected server error',
      20500,
      () => {
        standIn.failNext(1, { status: 500, code: 20500 });
        return callStandIn('GET', `${callsPath()}/CA${hex32()}.json`);
      },
    ],
  ];

  test.each(cases)('answers %s with code, message, more_info and status', async (_name, code, request) => {
    const res = await request();

    expect(Object.keys(res.body).sort()).toEqual(['code', 'message', 'more_info', 'status']);
    expect(res.body).toEqual({ code, message: expect.any(String) as unknown, more_info: `https://www.twilio.com/docs/errors/${code}`, status: res.status });
  });
});

describe('TwilioRest adapter', () => {
  test('creates a call and reports its SID and status', async () => {
    const call = await twilio.createCall(creds, TO, CALL_OPTS);

    expect(call).toEqual({ sid: expect.stringMatching(/^CA[0-9a-f]{32}$/) as unknown, status: 'queued' });
    expect(standIn.calls.get(call.sid)?.to).toBe(TO);
  });

  test('authenticates with the API key, never the account SID as user', async () => {
    const other = twilioCredentials({ accountSid: creds.accountSid, apiKeySid: creds.apiKeySid, apiKeySecret: hex32() });

    await expect(twilio.createCall(other, TO, CALL_OPTS)).rejects.toBeInstanceOf(UpstreamError);
  });

  test('rejects an invalid destination (Twilio 21211) as invalid_request 400, not a 5xx', async () => {
    const err: unknown = await twilio.createCall(creds, INVALID_TO, CALL_OPTS).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err).toMatchObject({ code: 'invalid_request', status: 400, reason: 'twilio_21211' });
  });

  test('fails with upstream_error 502 when Twilio refuses the credentials (20003)', async () => {
    const err: unknown = await twilio.createCall(twilioCredentials({ accountSid: creds.accountSid }), TO, CALL_OPTS).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ code: 'upstream_error', status: 502 });
  });

  test('fails with upstream_error 502 when Twilio answers 500', async () => {
    standIn.failNext(1, { status: 500, code: 20500 });

    await expect(twilio.createCall(creds, TO, CALL_OPTS)).rejects.toMatchObject({ code: 'upstream_error', status: 502 });
  });

  test('fails with upstream_error 502 when Twilio does not answer in time', async () => {
    const impatient = new TwilioRest(baseUrl, 300);
    standIn.failNext(1, 'timeout');

    const err: unknown = await impatient.createCall(creds, TO, CALL_OPTS).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ status: 502, reason: 'twilio_create_network' });
  });

  test('fails with upstream_error 502 when Twilio cannot be reached at all', async () => {
    const server = twilioStandIn(creds).server;
    const port = await listen(server, 0);
    await close(server);

    await expect(new TwilioRest(`http://127.0.0.1:${port}`, 1000).createCall(creds, TO, CALL_OPTS)).rejects.toMatchObject({ status: 502 });
  });

  test('does not leak the API key secret into the error it raises', async () => {
    standIn.failNext(1, { status: 500, code: 20500 });

    const err = (await twilio.createCall(creds, TO, CALL_OPTS).catch((e: unknown) => e)) as Error;

    expect(`${err.message} ${JSON.stringify(err)}`).not.toContain(creds.apiKeySecret);
  });

  test('ends a live call and reports it completed', async () => {
    const { sid } = await twilio.createCall(creds, TO, CALL_OPTS);

    await expect(twilio.endCall(creds, sid)).resolves.toBe('completed');
    expect(standIn.calls.get(sid)?.status).toBe('completed');
  });

  test('reports an already completed call as already_ended', async () => {
    const { sid } = await twilio.createCall(creds, TO, CALL_OPTS);
    await twilio.endCall(creds, sid);

    await expect(twilio.endCall(creds, sid)).resolves.toBe('already_ended');
  });

  test('reports a call Twilio does not know (20404) as already_ended', async () => {
    await expect(twilio.endCall(creds, `CA${hex32()}`)).resolves.toBe('already_ended');
  });

  test('fails with upstream_error 502 when ending a call meets a Twilio 500', async () => {
    const { sid } = await twilio.createCall(creds, TO, CALL_OPTS);
    standIn.failNext(1, { status: 500, code: 20500 });

    await expect(twilio.endCall(creds, sid)).rejects.toMatchObject({ code: 'upstream_error', status: 502 });
  });
});

describe('twilioIdentity', () => {
  test('maps a Supabase UUID to u_ followed by the UUID with underscores', () => {
    const uuid = randomUUID();

    expect(twilioIdentity(uuid)).toBe(`u_${uuid.replace(/-/g, '_')}`);
  });

  test('produces an identity Twilio accepts', () => {
    expect(twilioIdentity(randomUUID())).toMatch(/^[A-Za-z0-9_]{1,121}$/);
  });

  test('maps the same user to the same identity whatever the UUID\'s case', () => {
    const uuid = randomUUID();

    expect(twilioIdentity(uuid.toUpperCase())).toBe(twilioIdentity(uuid));
  });

  test.each([
    ['characters Twilio does not allow', 'user@example.com'],
    ['more than 121 characters', 'a'.repeat(120)],
  ])('rejects a user id with %s', (_name, userId) => {
    expect(() => twilioIdentity(userId)).toThrow(InvalidRequestError);
  });
});

describe('fetchCallStatus (only when a user meets the cap, for calls whose end was never reported)', () => {
  test('reads the call\'s status with GET on the call resource, authenticated with the API key', async () => {
    const { sid } = await twilio.createCall(creds, TO, CALL_OPTS);
    standIn.requests.length = 0;
    expect(await twilio.fetchCallStatus(creds, sid)).toMatch(/^(queued|initiated|ringing|in-progress)$/);
    expect(standIn.requests).toEqual([expect.objectContaining({ method: 'GET', path: `${callsPath()}/${sid}.json` })]);
    await twilio.endCall(creds, sid);
    expect(await twilio.fetchCallStatus(creds, sid)).toBe('completed');
  });

  test('a call Twilio does not know (20404) counts as ended; other failures are 502', async () => {
    expect(await twilio.fetchCallStatus(creds, `CA${hex32()}`)).toBe('completed');
    standIn.failNext(1, { status: 500, code: 20500 });
    await expect(twilio.fetchCallStatus(creds, `CA${hex32()}`)).rejects.toBeInstanceOf(UpstreamError);
  });
});

describe('mintAccessToken', () => {
  const identity = 'u_6f1c2d3e_4a5b_4c6d_8e9f_0a1b2c3d4e5f';

  test('mints a token with a voice grant for the identity and the TwiML App', () => {
    const claims = decodeJwt(twilio.mintAccessToken(creds, identity, 3600));

    expect(claims['grants']).toMatchObject({ identity, voice: { outgoing: { application_sid: creds.twimlAppSid } } });
  });

  test('mints a token that does not accept incoming calls', () => {
    const grants = decodeJwt(twilio.mintAccessToken(creds, identity, 3600))['grants'] as { voice?: { incoming?: { allow?: boolean } } };

    expect(grants.voice?.incoming?.allow ?? false).toBe(false);
  });

  test('mints a token issued by the API key for the account', () => {
    const token = twilio.mintAccessToken(creds, identity, 3600);

    expect(decodeJwt(token)).toMatchObject({ iss: creds.apiKeySid, sub: creds.accountSid });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'HS256', cty: 'twilio-fpa;v=1' });
  });

  test('signs the token with the API key secret', async () => {
    const token = twilio.mintAccessToken(creds, identity, 3600);

    await expect(jwtVerify(token, new TextEncoder().encode(creds.apiKeySecret))).resolves.toBeDefined();
  });

  test('gives the token the requested lifetime', () => {
    const { iat, exp } = decodeJwt(twilio.mintAccessToken(creds, identity, 3600));

    expect(exp! - iat!).toBe(3600);
  });

  test('caps the lifetime at 24 hours even when asked for more', () => {
    const { iat, exp } = decodeJwt(twilio.mintAccessToken(creds, identity, 10 * 86_400));

    expect(exp! - iat!).toBeLessThanOrEqual(86_400);
  });

  test.each([
    ['a TwiML App', {}],
    ['a voice URL (no TwiML App)', { twimlAppSid: undefined, voiceUrl: 'https://voice.example.com/twiml' }],
  ])('is byte for byte the token the twilio SDK\'s AccessToken builds, with %s', (_name, change) => {
    const c: TwilioCredentials = { ...creds, ...change };
    const at = 1_796_000_000_000;
    const sdk = new AccessToken(c.accountSid, c.apiKeySid, c.apiKeySecret, { identity, ttl: 3600 });
    sdk.addGrant(new AccessToken.VoiceGrant({ ...(c.twimlAppSid ? { outgoingApplicationSid: c.twimlAppSid } : {}), incomingAllow: false }));
    const realNow = Date.now;
    Date.now = () => at;
    let expected: string;
    try {
      expected = sdk.toJwt();
    } finally {
      Date.now = realNow;
    }
    const ours = mintAccessToken(c, identity, 3600, at);
    expect(decodeProtectedHeader(ours)).toEqual(decodeProtectedHeader(expected));
    expect(decodeJwt(ours)).toEqual(decodeJwt(expected));
    expect(ours).toBe(expected);
  });
});
