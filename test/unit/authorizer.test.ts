import { randomUUID } from 'node:crypto';
import { type JWTVerifyGetKey, errors } from 'jose';
import { allow, deny, stageWildcardArn } from '../../lambdas/authorizer/policy';
import { type Session, createVerifier } from '../../lambdas/authorizer/service';
import { CORS_ORIGIN_CONTEXT_KEY, MAX_AUTHORIZATION_HEADER_BYTES } from '../../lambdas/shared/contract';
import { UnavailableError } from '../../lambdas/shared/errors';
import {
  type HmacKey,
  ISSUER,
  type TestKey,
  b64url,
  craftToken,
  generateTestKey,
  localJwks,
  nowSeconds,
  p1363ToDer,
  publicKeyPem,
  randomHmacSecret,
  signRaw,
  signToken,
  splitToken,
  supabaseClaims,
} from '../support/jwt';

/**
 * The authorizer's verifier against a local JWKS: positive controls first, then a table of attacks that must
 * all be denied (a `{ ok: false }` verdict, never an Allow and never a throw), then fail-closed behaviour.
 */

const bearer = (token: string) => `Bearer ${token}`;

let es: TestKey;
let rs: TestKey;
/** A key the project's JWKS does not publish. */
let attacker: TestKey;
let hsSecret: string;
let legacy: HmacKey;
let jwks: JWTVerifyGetKey;

beforeAll(async () => {
  [es, rs, attacker] = await Promise.all([generateTestKey('ES256'), generateTestKey('RS256'), generateTestKey('ES256')]);
  hsSecret = randomHmacSecret();
  legacy = { alg: 'HS256', secret: new TextEncoder().encode(hsSecret) };
  jwks = localJwks([es, rs]);
});

type Config = 'asymmetric only' | 'with legacy HS256 secret';
const CONFIGS: readonly Config[] = ['asymmetric only', 'with legacy HS256 secret'];

function verifierFor(config: Config, keySource: JWTVerifyGetKey = jwks) {
  return createVerifier({
    issuer: ISSUER,
    jwksUrl: 'http://127.0.0.1:9/never-fetched',
    jwks: keySource,
    ...(config === 'with legacy HS256 secret' ? { hsSecret: () => Promise.resolve(hsSecret) } : {}),
  });
}

describe('createVerifier accepts genuine Supabase sessions', () => {
  test('accepts an ES256 token and yields the user id, session id and expiry', async () => {
    const sub = randomUUID();
    const sessionId = randomUUID();
    const exp = nowSeconds() + 600;

    const verdict = await verifierFor('asymmetric only')(bearer(await signToken(es, { sub, session_id: sessionId, exp })));

    expect(verdict).toEqual({ ok: true, session: { userId: sub, sessionId, exp, aal: 'aal1' } });
  });

  test('accepts an RS256 token and yields the user id, session id and expiry', async () => {
    const sub = randomUUID();
    const sessionId = randomUUID();
    const exp = nowSeconds() + 600;

    const verdict = await verifierFor('asymmetric only')(bearer(await signToken(rs, { sub, session_id: sessionId, exp })));

    expect(verdict).toEqual({ ok: true, session: { userId: sub, sessionId, exp, aal: 'aal1' } });
  });

  test('accepts an HS256 token signed with the legacy secret when that secret is configured', async () => {
    const sub = randomUUID();

    const verdict = await verifierFor('with legacy HS256 secret')(bearer(await signToken(legacy, { sub })));

    expect(verdict).toMatchObject({ ok: true, session: { userId: sub } });
  });

  test('rejects an HS256 token signed with the legacy secret when no secret is configured', async () => {
    const verdict = await verifierFor('asymmetric only')(bearer(await signToken(legacy)));

    expect(verdict).toEqual({ ok: false, reason: 'alg_not_allowed' });
  });

  test('accepts a token that expired within the 30 second leeway', async () => {
    const verdict = await verifierFor('asymmetric only')(bearer(await signToken(es, { exp: nowSeconds() - 10 })));

    expect(verdict.ok).toBe(true);
  });

  test('accepts asymmetric tokens while the legacy secret is also configured', async () => {
    const verdict = await verifierFor('with legacy HS256 secret')(bearer(await signToken(rs)));

    expect(verdict.ok).toBe(true);
  });

  test('reports the user id in lower case whatever the case of the token subject', async () => {
    const sub = randomUUID();

    const verdict = await verifierFor('asymmetric only')(bearer(await signToken(es, { sub: sub.toUpperCase() })));

    expect(verdict).toMatchObject({ ok: true, session: { userId: sub } });
  });
});

/** What an attack hands to `verify`: the Authorization header value, and whether it was sent twice. */
interface Attempt {
  readonly authorization: string | undefined;
  readonly duplicated?: boolean;
}

interface Attack {
  readonly name: string;
  readonly build: () => Promise<Attempt>;
  /** The denial reason, per configuration (one string when both agree). */
  readonly reason: string | Record<Config, string>;
}

const ALG_NONE = (alg: string) => async (): Promise<Attempt> => ({
  authorization: bearer(craftToken({ alg, typ: 'JWT' }, supabaseClaims(), '')),
});

/** A valid token whose header (or payload) is replaced after signing; the signature stays the original. */
async function resegmented(part: 'header' | 'payload', change: Record<string, unknown>): Promise<string> {
  const token = await signToken(es);
  const { header, payload, signature } = splitToken(token);
  return part === 'header' ? craftToken({ ...header, ...change }, token.split('.')[1]!, signature) : craftToken(token.split('.')[0]!, { ...payload, ...change }, signature);
}

/** A token for the project's ES256 key with its signature replaced. */
async function withSignature(signature: (original: Uint8Array) => Uint8Array): Promise<string> {
  const token = await signToken(es);
  const [h, p, s] = token.split('.') as [string, string, string];
  return craftToken(h, p, signature(new Uint8Array(Buffer.from(s, 'base64url'))));
}

/** A token whose header claims `headerAlg` for `kid`, but whose signature is made by `signer` over that header. */
async function swappedAlg(headerAlg: string, kid: string, signer: TestKey): Promise<string> {
  const signingInput = `${b64url(JSON.stringify({ alg: headerAlg, typ: 'JWT', kid }))}.${b64url(JSON.stringify(supabaseClaims()))}`;
  return `${signingInput}.${b64url(await signRaw(signer, signingInput))}`;
}

/** Signs a token with an HMAC whose secret is the project's public key, the classic RS/HS confusion. */
async function publicKeyAsHmacSecret(alg: HmacKey['alg'], form: 'jwk' | 'pem', key: () => TestKey): Promise<Attempt> {
  const secret = form === 'jwk' ? JSON.stringify(key().publicJwk) : await publicKeyPem(key());
  return { authorization: bearer(await signToken({ alg, secret: new TextEncoder().encode(secret) })) };
}

const token = async (...args: Parameters<typeof signToken>): Promise<Attempt> => ({ authorization: bearer(await signToken(...args)) });

const ATTACKS: readonly Attack[] = [
  // Algorithm "none".
  { name: 'alg "none" with an empty signature', build: ALG_NONE('none'), reason: 'malformed_token' },
  { name: 'alg "None" with an empty signature', build: ALG_NONE('None'), reason: 'malformed_token' },
  { name: 'alg "NONE" with an empty signature', build: ALG_NONE('NONE'), reason: 'malformed_token' },
  {
    name: 'alg "none" with a junk signature',
    build: async () => ({ authorization: bearer(craftToken({ alg: 'none', typ: 'JWT' }, supabaseClaims(), 'AAAA')) }),
    reason: 'alg_not_allowed',
  },
  // HMAC keyed with the public key (algorithm confusion).
  ...(['HS256', 'HS384', 'HS512'] as const).flatMap((alg) =>
    (['jwk', 'pem'] as const).flatMap((form) =>
      (['RS256', 'ES256'] as const).map(
        (owner): Attack => ({
          name: `${alg} signed with the ${owner} public key (${form === 'jwk' ? 'JWK JSON' : 'PEM SPKI'}) as the secret`,
          build: () => publicKeyAsHmacSecret(alg, form, () => (owner === 'RS256' ? rs : es)),
          reason: alg === 'HS256' ? { 'asymmetric only': 'alg_not_allowed', 'with legacy HS256 secret': 'bad_signature' } : 'alg_not_allowed',
        }),
      ),
    ),
  ),
  {
    name: 'HS256 signed with the public key as the secret and carrying the key\'s kid',
    build: async () => ({
      authorization: bearer(await signToken({ alg: 'HS256', secret: new TextEncoder().encode(JSON.stringify(rs.publicJwk)) }, {}, { kid: rs.kid })),
    }),
    reason: { 'asymmetric only': 'alg_not_allowed', 'with legacy HS256 secret': 'bad_signature' },
  },
  // Algorithms outside the allowlist.
  { name: 'alg ES384', build: async () => ({ authorization: bearer(await swappedAlg('ES384', es.kid, es)) }), reason: 'alg_not_allowed' },
  { name: 'alg PS256', build: async () => ({ authorization: bearer(await swappedAlg('PS256', rs.kid, rs)) }), reason: 'alg_not_allowed' },
  { name: 'alg EdDSA', build: async () => ({ authorization: bearer(await swappedAlg('EdDSA', es.kid, es)) }), reason: 'alg_not_allowed' },
  {
    name: 'no alg at all',
    build: async () => ({ authorization: bearer(await signToken(es, {}, { alg: undefined })) }),
    reason: 'alg_not_allowed',
  },
  // Swapped algorithms.
  { name: 'an RS256 signature under a header claiming ES256', build: async () => ({ authorization: bearer(await swappedAlg('ES256', rs.kid, rs)) }), reason: 'unknown_kid' },
  { name: 'an ES256 signature under a header claiming RS256', build: async () => ({ authorization: bearer(await swappedAlg('RS256', es.kid, es)) }), reason: 'unknown_kid' },
  // Key ids.
  { name: 'an unknown kid', build: () => token(es, {}, { kid: randomUUID() }), reason: 'unknown_kid' },
  { name: 'a missing kid', build: () => token(es, {}, { kid: undefined }), reason: 'missing_kid' },
  { name: 'a kid with path traversal', build: () => token(es, {}, { kid: '../../etc/passwd' }), reason: 'unknown_kid' },
  { name: 'a SQL-ish kid', build: () => token(es, {}, { kid: "' OR 1=1 --" }), reason: 'unknown_kid' },
  { name: 'a token signed by a key outside the JWKS under its own kid', build: () => token(attacker), reason: 'unknown_kid' },
  { name: 'a token signed by a key outside the JWKS under the project\'s kid', build: () => token(attacker, {}, { kid: es.kid }), reason: 'bad_signature' },
  // Headers that point at other keys.
  { name: 'a jku header', build: () => token(es, {}, { jku: 'https://attacker.example/jwks.json' }), reason: 'forbidden_header' },
  { name: 'an x5u header', build: () => token(es, {}, { x5u: 'https://attacker.example/cert.pem' }), reason: 'forbidden_header' },
  { name: 'an x5c header', build: () => token(es, {}, { x5c: [b64url('not a certificate')] }), reason: 'forbidden_header' },
  {
    name: 'an embedded jwk header with the attacker\'s key, signed by that key',
    build: () => token(attacker, {}, { jwk: attacker.publicJwk }),
    reason: 'forbidden_header',
  },
  {
    name: 'an embedded jwk header with the attacker\'s key under the project\'s kid',
    build: () => token(attacker, {}, { jwk: attacker.publicJwk, kid: es.kid }),
    reason: 'forbidden_header',
  },
  { name: 'a crit header', build: () => token(es, {}, { crit: ['exp'] }), reason: 'forbidden_header' },
  // Malformed ECDSA signatures.
  {
    name: 'an all-zero ECDSA signature (r = s = 0, CVE-2022-21449 class)',
    build: async () => ({ authorization: bearer(await withSignature(() => new Uint8Array(64))) }),
    reason: 'bad_signature',
  },
  {
    name: 'an over-long ECDSA signature',
    build: async () => ({ authorization: bearer(await withSignature((s) => Uint8Array.from([...s, 0]))) }),
    reason: 'bad_signature',
  },
  {
    name: 'a DER-encoded ECDSA signature',
    build: async () => ({ authorization: bearer(await withSignature(p1363ToDer)) }),
    reason: 'bad_signature',
  },
  // Time.
  { name: 'a token expired beyond the leeway', build: () => token(es, { exp: nowSeconds() - 120 }), reason: 'expired' },
  { name: 'a token with nbf in the future', build: () => token(es, { nbf: nowSeconds() + 120 }), reason: 'claim_nbf' },
  { name: 'a token issued in the future beyond the leeway', build: () => token(es, { iat: nowSeconds() + 120 }), reason: 'issued_in_future' },
  { name: 'a token without exp', build: () => token(es, { exp: undefined }), reason: 'claim_exp' },
  { name: 'a token without iat', build: () => token(es, { iat: undefined }), reason: 'claim_iat' },
  // Claims.
  { name: 'a wrong issuer', build: () => token(es, { iss: 'https://other.supabase.co/auth/v1' }), reason: 'claim_iss' },
  { name: 'audience "anon"', build: () => token(es, { aud: 'anon' }), reason: 'claim_aud' },
  { name: 'a missing audience', build: () => token(es, { aud: undefined }), reason: 'claim_aud' },
  { name: 'role "anon"', build: () => token(es, { role: 'anon' }), reason: 'bad_role' },
  { name: 'role "service_role"', build: () => token(es, { role: 'service_role' }), reason: 'bad_role' },
  { name: 'a missing role', build: () => token(es, { role: undefined }), reason: 'claim_role' },
  { name: 'a missing sub', build: () => token(es, { sub: undefined }), reason: 'claim_sub' },
  { name: 'a non-UUID sub', build: () => token(es, { sub: 'admin' }), reason: 'bad_subject' },
  { name: 'an anonymous sign-in (is_anonymous true)', build: () => token(es, { is_anonymous: true }), reason: 'anonymous' },
  // Supabase project API keys: HS256 JWTs with no user.
  ...(['anon', 'service_role'] as const).map(
    (role): Attack => ({
      name: `the Supabase ${role} key`,
      build: () => token(legacy, { iss: 'supabase', ref: 'proj', role, aud: undefined, sub: undefined, session_id: undefined, is_anonymous: undefined, aal: undefined, exp: nowSeconds() + 10 * 365 * 86_400 }),
      reason: { 'asymmetric only': 'alg_not_allowed', 'with legacy HS256 secret': 'claim_aud' },
    }),
  ),
  // Tampering.
  { name: 'a tampered payload with the original signature', build: async () => ({ authorization: bearer(await resegmented('payload', { sub: randomUUID() })) }), reason: 'bad_signature' },
  { name: 'an escalated role with the original signature', build: async () => ({ authorization: bearer(await resegmented('payload', { role: 'service_role' })) }), reason: 'bad_signature' },
  { name: 'a tampered header with the original signature', build: async () => ({ authorization: bearer(await resegmented('header', { typ: 'at+jwt' })) }), reason: 'bad_signature' },
  // Framing.
  { name: 'a header segment that is not base64url', build: async () => ({ authorization: bearer(craftToken('A', b64url('{}'), 'AAAA')) }), reason: 'malformed_token' },
  { name: 'a header segment that is not JSON', build: async () => ({ authorization: bearer(craftToken(b64url('not json'), b64url('{}'), 'AAAA')) }), reason: 'malformed_token' },
  {
    name: 'a payload segment that is not JSON',
    build: async () => {
      const signingInput = `${b64url(JSON.stringify({ alg: 'ES256', kid: es.kid }))}.${b64url('not json')}`;
      return { authorization: bearer(`${signingInput}.${b64url(await signRaw(es, signingInput))}`) };
    },
    reason: 'malformed_token',
  },
  { name: 'characters outside base64url', build: async () => ({ authorization: bearer(`${(await signToken(es)).slice(0, -2)}+/`) }), reason: 'malformed_token' },
  { name: 'two segments', build: async () => ({ authorization: bearer((await signToken(es)).split('.').slice(0, 2).join('.')) }), reason: 'malformed_token' },
  {
    // Spare bits in the last character: the same signature bytes spelled differently (one token, many headers).
    name: 'a non-canonical base64url spelling of the valid signature',
    build: async () => {
      const t = await signToken(es);
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = t.slice(-1);
      return { authorization: bearer(`${t.slice(0, -1)}${alphabet[alphabet.indexOf(last) ^ 1]}`) };
    },
    reason: 'bad_signature',
  },
  { name: 'four segments', build: async () => ({ authorization: bearer(`${await signToken(es)}.AAAA`) }), reason: 'malformed_token' },
  { name: 'a leading space', build: async () => ({ authorization: ` ${bearer(await signToken(es))}` }), reason: 'malformed_token' },
  { name: 'a trailing space', build: async () => ({ authorization: `${bearer(await signToken(es))} ` }), reason: 'malformed_token' },
  { name: 'a trailing newline', build: async () => ({ authorization: `${bearer(await signToken(es))}\n` }), reason: 'malformed_token' },
  { name: 'a lowercase "bearer" scheme', build: async () => ({ authorization: `bearer ${await signToken(es)}` }), reason: 'malformed_token' },
  { name: 'no "Bearer" prefix', build: async () => ({ authorization: await signToken(es) }), reason: 'malformed_token' },
  { name: 'a "Basic" scheme', build: async () => ({ authorization: `Basic ${b64url('user:password')}` }), reason: 'malformed_token' },
  { name: 'two spaces after "Bearer"', build: async () => ({ authorization: `Bearer  ${await signToken(es)}` }), reason: 'malformed_token' },
  { name: 'an empty header', build: async () => ({ authorization: '' }), reason: 'missing_token' },
  { name: 'no header', build: async () => ({ authorization: undefined }), reason: 'missing_token' },
  { name: 'a duplicated Authorization header, even with a valid token', build: async () => ({ authorization: bearer(await signToken(es)), duplicated: true }), reason: 'duplicate_authorization' },
];

describe.each(CONFIGS)('createVerifier (%s)', (config) => {
  test.each(ATTACKS.map((a) => [a.name, a] as const))('rejects %s', async (_name, attack) => {
    const { authorization, duplicated } = await attack.build();

    const verdict = await verifierFor(config)(authorization, duplicated);

    expect(verdict).toEqual({ ok: false, reason: typeof attack.reason === 'string' ? attack.reason : attack.reason[config] });
  });
});

describe('createVerifier size limit', () => {
  /** A correctly signed token padded with a large claim until the header exceeds the limit. */
  async function oversizedToken(): Promise<string> {
    const authorization = bearer(await signToken(es, { padding: 'x'.repeat(MAX_AUTHORIZATION_HEADER_BYTES) }));
    expect(Buffer.byteLength(authorization)).toBeGreaterThan(MAX_AUTHORIZATION_HEADER_BYTES);
    return authorization;
  }

  test('rejects an Authorization header over 4096 bytes', async () => {
    const verdict = await verifierFor('asymmetric only')(await oversizedToken());

    expect(verdict).toEqual({ ok: false, reason: 'token_too_large' });
  });

  test('rejects an oversized header without consulting the key source', async () => {
    const keySource = jest.fn(jwks);

    await verifierFor('asymmetric only', keySource)(await oversizedToken());

    expect(keySource).not.toHaveBeenCalled();
  });

  test('consults the key source for a token within the limit', async () => {
    const keySource = jest.fn(jwks);

    const verdict = await verifierFor('asymmetric only', keySource)(bearer(await signToken(es)));

    expect(verdict.ok).toBe(true);
    expect(keySource).toHaveBeenCalledTimes(1);
  });
});

describe('createVerifier fails closed when it cannot decide', () => {
  const unreachable = (err: Error): JWTVerifyGetKey => () => Promise.reject(err);

  test('fails with "unavailable" when the JWKS fetch times out', async () => {
    const verify = verifierFor('asymmetric only', unreachable(new errors.JWKSTimeout()));

    await expect(verify(bearer(await signToken(es)))).rejects.toMatchObject({ code: 'unavailable', status: 503 });
  });

  test('fails with "unavailable" when the JWKS endpoint answers with garbage', async () => {
    const verify = verifierFor('asymmetric only', unreachable(new errors.JWKSInvalid('JSON Web Key Set malformed')));

    await expect(verify(bearer(await signToken(es)))).rejects.toBeInstanceOf(UnavailableError);
  });

  test('fails with "unavailable" when the JWKS fetch fails at the network level', async () => {
    const verify = verifierFor('asymmetric only', unreachable(new TypeError('fetch failed')));

    await expect(verify(bearer(await signToken(es)))).rejects.toMatchObject({ code: 'unavailable' });
  });

  test('fails with "unavailable" when the legacy secret cannot be read', async () => {
    const verify = createVerifier({
      issuer: ISSUER,
      jwksUrl: 'http://127.0.0.1:9/never-fetched',
      jwks,
      hsSecret: () => Promise.reject(new UnavailableError({ reason: 'secrets_unavailable' })),
    });

    await expect(verify(bearer(await signToken(legacy)))).rejects.toMatchObject({ code: 'unavailable' });
  });

  test('fails with "unavailable" rather than allowing when the key source throws something unknown', async () => {
    const verify = verifierFor('asymmetric only', unreachable(new RangeError('socket hang up')));

    await expect(verify(bearer(await signToken(es)))).rejects.toMatchObject({ code: 'unavailable' });
  });
});

describe('authorizer policy', () => {
  const methodArn = 'arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/api/twilio/token';
  const session: Session = { userId: randomUUID(), sessionId: randomUUID(), exp: 1_900_000_000, aal: 'aal1' };

  test('stageWildcardArn covers every method and route of the stage', () => {
    expect(stageWildcardArn(methodArn)).toBe('arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*');
  });

  test('allow grants invoke on the whole stage, so a cached answer serves the other routes', () => {
    const policy = allow(methodArn, session, 'http://localhost:5173', undefined);

    expect(policy.policyDocument.Statement).toEqual([
      { Action: 'execute-api:Invoke', Effect: 'Allow', Resource: 'arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*' },
    ]);
  });

  test('allow puts the session into a flat context of strings and numbers', () => {
    const policy = allow(methodArn, session, 'http://localhost:5173', undefined);

    expect(policy.principalId).toBe(session.userId);
    expect(policy.context).toEqual({
      userId: session.userId,
      sessionId: session.sessionId,
      exp: session.exp,
      aal: 'aal1',
      [CORS_ORIGIN_CONTEXT_KEY]: 'http://localhost:5173',
    });
    for (const value of Object.values(policy.context ?? {})) expect(['string', 'number']).toContain(typeof value);
  });

  test('allow supplies the usage key when one is configured', () => {
    const usageKey = randomUUID();

    expect(allow(methodArn, session, '', usageKey).usageIdentifierKey).toBe(usageKey);
  });

  test('allow leaves out the usage key when none is configured', () => {
    expect(allow(methodArn, session, '', undefined)).not.toHaveProperty('usageIdentifierKey');
  });

  test('deny refuses the whole stage and carries the allowlisted origin for the 401 gateway response', () => {
    const policy = deny(methodArn, 'http://localhost:5173');

    expect(policy.policyDocument.Statement).toEqual([
      { Action: 'execute-api:Invoke', Effect: 'Deny', Resource: 'arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*' },
    ]);
    expect(policy.context).toEqual({ [CORS_ORIGIN_CONTEXT_KEY]: 'http://localhost:5173' });
  });

  test('deny carries no user identity', () => {
    const policy = deny(methodArn, '');

    expect(policy.principalId).toBe('unauthenticated');
    expect(policy.context).not.toHaveProperty('userId');
  });
});
