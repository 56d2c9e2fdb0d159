import { randomUUID } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { APIGatewayAuthorizerResult, APIGatewayProxyResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import fc from 'fast-check';
import { z } from 'zod';
import { allow, deny } from '../../lambdas/authorizer/policy';
import { createVerifier } from '../../lambdas/authorizer/service';
import { apiHandler, readHeaders } from '../../lambdas/shared/http';
import { createGateway } from '../../local/gateway';
import { close, listen } from '../../local/http-util';
import { send } from '../support/http';
import { ISSUER, type TestKey, generateTestKey, localJwks, nowSeconds, signToken } from '../support/jwt';
import { FULL_SCALE, scale } from '../support/scale';

/**
 * The authorizer's security claims that need volume or real moving parts: property-based mutations of a valid
 * token, an unknown-`kid` flood and key rotation against jose's real remote JWKS client (a loopback JWKS server
 * that counts fetches), and the authorizer cache as the gateway applies it.
 */

const MUTATIONS = scale(1_000, 10_000);
const FLOOD = 1_000;

let es: TestKey;
let rs: TestKey;
beforeAll(async () => {
  [es, rs] = await Promise.all([generateTestKey('ES256'), generateTestKey('RS256')]);
});

describe('property: mutations of a valid token', () => {
  /** One edit of the compact serialisation. */
  type Edit =
    | { kind: 'replace'; at: number; ch: string }
    | { kind: 'insert'; at: number; ch: string }
    | { kind: 'delete'; at: number }
    | { kind: 'flip'; segment: 0 | 1 | 2; byte: number; bit: number }
    | { kind: 'swap'; a: 0 | 1 | 2; b: 0 | 1 | 2 }
    | { kind: 'truncate'; at: number }
    | { kind: 'append'; text: string };

  const CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/= \t\n%';
  const ch = fc.constantFrom(...CHARS.split(''));
  const seg = fc.constantFrom(0 as const, 1 as const, 2 as const);
  const pos = fc.nat({ max: 4096 });
  const edit: fc.Arbitrary<Edit> = fc.oneof(
    fc.record({ kind: fc.constant('replace' as const), at: pos, ch }),
    fc.record({ kind: fc.constant('insert' as const), at: pos, ch }),
    fc.record({ kind: fc.constant('delete' as const), at: pos }),
    fc.record({ kind: fc.constant('flip' as const), segment: seg, byte: pos, bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant('swap' as const), a: seg, b: seg }),
    fc.record({ kind: fc.constant('truncate' as const), at: pos }),
    fc.record({ kind: fc.constant('append' as const), text: fc.string({ unit: ch, minLength: 1, maxLength: 8 }) }),
  );

  function apply(token: string, e: Edit): string {
    const at = (n: number) => n % (token.length + 1);
    switch (e.kind) {
      case 'replace':
        return token.slice(0, at(e.at)) + e.ch + token.slice(at(e.at) + 1);
      case 'insert':
        return token.slice(0, at(e.at)) + e.ch + token.slice(at(e.at));
      case 'delete':
        return token.slice(0, at(e.at)) + token.slice(at(e.at) + 1);
      case 'truncate':
        return token.slice(0, at(e.at));
      case 'append':
        return token + e.text;
      case 'swap': {
        const parts = token.split('.');
        if (parts.length < 3) return token;
        [parts[e.a], parts[e.b]] = [parts[e.b]!, parts[e.a]!];
        return parts.join('.');
      }
      case 'flip': {
        const parts = token.split('.');
        const bytes = Buffer.from(parts[e.segment] ?? '', 'base64url');
        if (bytes.length === 0) return token;
        bytes[e.byte % bytes.length]! ^= 1 << e.bit;
        parts[e.segment] = bytes.toString('base64url');
        return parts.join('.');
      }
    }
  }

  /** True when `m` is the same token as `original` once each segment is decoded (non-canonical base64url). */
  function decodesIdentical(m: string, original: string): boolean {
    const a = m.split('.');
    const b = original.split('.');
    if (a.length !== 3 || !a.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return false;
    // The signature covers the header and payload segments as ASCII text: those must match exactly.
    return a[0] === b[0] && a[1] === b[1] && Buffer.from(a[2]!, 'base64url').equals(Buffer.from(b[2]!, 'base64url'));
  }

  test.each([['ES256'], ['RS256']] as const)(`rejects every one of ${MUTATIONS} mutated %s tokens unless it decodes to the identical token`, async (alg) => {
    const key = alg === 'ES256' ? es : rs;
    const verify = createVerifier({ issuer: ISSUER, jwksUrl: 'http://127.0.0.1:9/never-fetched', jwks: localJwks([es, rs]) });
    const original = await signToken(key);
    expect((await verify(`Bearer ${original}`)).ok).toBe(true);
    let accepted = 0;
    let identical = 0;
    let acceptedChanged = 0;

    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
        const mutated = edits.reduce(apply, original);
        // Never throws (a throw would be a 503 for a forged token); an Allow only for the same token.
        const verdict = await verify(`Bearer ${mutated}`);
        const same = decodesIdentical(mutated, original);
        if (same) identical++;
        if (verdict.ok) accepted++;
        // Only the canonical spelling of a signature passes, so an accepted mutation is the unchanged token.
        if (verdict.ok && mutated !== original) acceptedChanged++;
        return !verdict.ok || same;
      }),
      { numRuns: MUTATIONS, seed: FULL_SCALE ? undefined : 20261203 },
    );

    if (FULL_SCALE) console.info(`${alg} mutations: ${MUTATIONS} tried, ${accepted} accepted (${acceptedChanged} of them differing from the original string), ${identical} decode to the identical token`);
    expect(accepted).toBeLessThanOrEqual(identical);
    expect(acceptedChanged).toBe(0);
  }, 120_000);
});

describe('the remote JWKS (jose createRemoteJWKSet against a loopback server)', () => {
  let server: Server;
  let jwksUrl: string;
  let published: TestKey[] = [];
  let fetches = 0;

  beforeAll(async () => {
    server = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ keys: published.map((k) => k.publicJwk) }));
    });
    jwksUrl = `http://127.0.0.1:${await listen(server, 0)}/auth/v1/.well-known/jwks.json`;
  });
  afterAll(() => close(server));
  afterEach(() => jest.restoreAllMocks());

  /** A fresh verifier, as after a cold start, reading the loopback JWKS with the production options. */
  const coldVerifier = () => createVerifier({ issuer: ISSUER, jwksUrl });
  /** Moves the clock jose's cooldown reads (Date.now) forward. */
  const advance = (ms: number) => {
    const base = Date.now();
    jest.spyOn(Date, 'now').mockImplementation(() => base + ms);
  };
  const unknownKidTokens = (n: number) => Promise.all(Array.from({ length: n }, () => signToken(es, {}, { kid: randomUUID() })));

  test(`fetches the JWKS at most once for a flood of ${FLOOD} tokens with random kids`, async () => {
    published = [es];
    fetches = 0;
    const verify = coldVerifier();
    const tokens = await unknownKidTokens(FLOOD);

    const verdicts = await Promise.all(tokens.map((t) => verify(`Bearer ${t}`)));
    for (const t of tokens.slice(0, 100)) await verify(`Bearer ${t}`); // and sequentially, after the first fetch

    expect(verdicts.every((v) => !v.ok && v.reason === 'unknown_kid')).toBe(true);
    expect(fetches).toBeLessThanOrEqual(1);
  }, 60_000);

  test(`refetches at most once per cooldown for a flood of ${FLOOD} random kids on a warm verifier`, async () => {
    published = [es];
    fetches = 0;
    const verify = coldVerifier();
    expect((await verify(`Bearer ${await signToken(es)}`)).ok).toBe(true);
    expect(fetches).toBe(1);
    const tokens = await unknownKidTokens(FLOOD);

    advance(31_000); // past the 30 s cooldown: one refetch is allowed
    const verdicts = await Promise.all(tokens.map((t) => verify(`Bearer ${t}`)));
    for (const t of tokens.slice(0, 100)) await verify(`Bearer ${t}`);

    expect(verdicts.every((v) => !v.ok)).toBe(true);
    expect(fetches).toBe(2);
  }, 60_000);

  test('picks up a rotated-in key without a restart, and drops a retired one', async () => {
    published = [es];
    fetches = 0;
    const verify = coldVerifier();
    expect((await verify(`Bearer ${await signToken(es)}`)).ok).toBe(true);
    const next = await generateTestKey('ES256');
    // Signed before the clock moves: the verifier keeps the real clock, only jose's cooldown reads the moved one.
    const [byNext, byOld] = await Promise.all([signToken(next), signToken(es)]);

    published = [es, next]; // the project adds a signing key
    advance(31_000);
    const rotated = await verify(`Bearer ${byNext}`);
    published = [next]; // and later retires the old one
    advance(31_000 + 600_001); // past the 10-minute cache age
    const retired = await verify(`Bearer ${byOld}`);

    expect(rotated).toEqual({ ok: true, session: expect.anything() });
    expect(retired).toEqual({ ok: false, reason: 'unknown_kid' });
    expect(fetches).toBe(3);
  }, 30_000);

  test('fails closed (503) when the JWKS endpoint answers with an error status', async () => {
    const failing = createServer((_req, res) => {
      res.writeHead(500);
      res.end('oops');
    });
    const url = `http://127.0.0.1:${await listen(failing, 0)}/jwks.json`;
    try {
      const verify = createVerifier({ issuer: ISSUER, jwksUrl: url });
      await expect(verify(`Bearer ${await signToken(es)}`)).rejects.toMatchObject({ code: 'unavailable', status: 503 });
    } finally {
      await close(failing);
    }
  });
});

describe('authorizer result caching (the local gateway applies the stack\'s cache contract)', () => {
  const ROUTES = ['/api/twilio/token', '/api/twilio/voice', '/api/twilio/hangup'];
  let gateway: Server;
  let url: string;
  let authorizerCalls = 0;
  let clock = Date.now();

  beforeAll(async () => {
    const verify = createVerifier({ issuer: ISSUER, jwksUrl: 'http://127.0.0.1:9/never-fetched', jwks: localJwks([es]) });
    // The real verifier and policy, as the authorizer handler composes them.
    const authorizer = async (event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> => {
      authorizerCalls++;
      const { headers, duplicate } = readHeaders(event as Parameters<typeof readHeaders>[0]);
      const verdict = await verify(headers['authorization'], duplicate.has('authorization'));
      return verdict.ok ? allow(event.methodArn, verdict.session, '', undefined) : deny(event.methodArn, '');
    };
    // The real handler chain, with a clock the test moves: it re-checks `exp` on every request.
    const fn = apiHandler({ allowedOrigins: ['http://localhost:5173'], schema: z.unknown(), now: () => clock }, async () => ({ status: 200, body: { ok: true } }));
    const handler = (e: Parameters<typeof fn>[0], c: Parameters<typeof fn>[1]) => fn(e, c) as Promise<APIGatewayProxyResult>;
    gateway = createGateway({
      functions: { token: handler, voice: handler, hangup: handler, status: handler },
      authorizer,
      authorizerCacheTtlSeconds: 60,
      stage: 'local',
      staticRoutes: {},
      accessLog: () => undefined,
    });
    url = `http://127.0.0.1:${await listen(gateway, 0)}`;
  });
  afterAll(() => close(gateway));

  const post = (path: string, token: string) => send(`${url}${path}`, { headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: '{}' });

  test('serves all three routes from one cached authorizer result', async () => {
    authorizerCalls = 0;
    clock = Date.now();
    const token = await signToken(es);

    const statuses = [];
    for (const path of ROUTES) statuses.push((await post(path, token)).status);

    expect(statuses).toEqual([200, 200, 200]);
    expect(authorizerCalls).toBe(1);
  });

  test('never lets a cached Allow outlive the session: the handler re-checks exp', async () => {
    authorizerCalls = 0;
    clock = Date.now();
    const exp = nowSeconds() + 5;
    const token = await signToken(es, { exp });
    expect((await post(ROUTES[0]!, token)).status).toBe(200);

    clock = exp * 1000 + 1; // the session has expired; the gateway's cached Allow has not
    const afterExpiry = await Promise.all(ROUTES.map((path) => post(path, token)));

    expect(authorizerCalls).toBe(1);
    expect(afterExpiry.map((r) => r.status)).toEqual([401, 401, 401]);
    expect(afterExpiry[0]!.json()).toEqual({ error: { code: 'unauthenticated', message: expect.any(String) } });
  });
});
