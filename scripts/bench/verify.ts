import { createHmac, createPublicKey, createSecretKey, generateKeyPairSync, randomBytes, randomUUID, sign, timingSafeEqual, verify as cryptoVerify } from 'node:crypto';
import { createServer } from 'node:http';
import { JwtVerifier } from 'aws-jwt-verify';
import type { Jwks } from 'aws-jwt-verify/jwk';
import { createVerifier } from '../../lambdas/authorizer/service';
import { close, listen } from '../../local/http-util';
import { median } from './stats';

export interface VerifyResult {
  /** Median microseconds per verification, over `batches` batches of `iterations`. */
  readonly us: Record<'es256Project' | 'es256Raw' | 'es256AwsJwtVerify' | 'hs256Project' | 'hs256Raw', number>;
  /** Requests the JWKS server received during the timed loops (the warm path must make none). */
  readonly jwksRequestsWhileTimed: number;
  readonly iterations: number;
  readonly batches: number;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** A Supabase-shaped access token signed with `signer` over `header.payload`. */
function token(header: Record<string, unknown>, issuer: string, signer: (input: Buffer) => Buffer): string {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: issuer, aud: 'authenticated', sub: randomUUID(), role: 'authenticated', aal: 'aal1', session_id: randomUUID(), is_anonymous: false, iat: now, exp: now + 3600 };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${b64url(signer(Buffer.from(input)))}`;
}

/** Median µs per call of `fn` over `batches` batches of `iterations` sequential calls, call i getting `inputs[i]`. */
async function time<T>(inputs: readonly T[], fn: (input: T) => unknown, batches: number): Promise<number> {
  const iterations = inputs.length;
  const perBatch: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) await fn(inputs[i]!);
    perBatch.push(Number(process.hrtime.bigint() - t0) / 1000 / iterations);
  }
  return median(perBatch);
}

/**
 * Warm verification cost per token through the project's verifier (`createVerifier`, JWKS served on loopback
 * and cached by a first call), beside the floor of the same work: `crypto.verify` of the ES256 signature
 * (IEEE P1363 encoding, key already imported) and an HMAC-SHA256 compare (key object made once), and
 * aws-jwt-verify (its JWKS cache loaded with the same document) for ES256. Every iteration of a batch gets a
 * distinct token, as API Gateway only invokes the authorizer for a token it has not cached.
 */
export async function measureVerify(iterations: number, batches: number): Promise<VerifyResult> {
  const kid = `bench-${randomBytes(4).toString('hex')}`;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }] };
  let jwksRequests = 0;
  const server = createServer((_req, res) => {
    jwksRequests += 1;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(jwks));
  });
  const port = await listen(server, 0);
  try {
    const issuer = `http://127.0.0.1:${port}/auth/v1`;
    const hsSecret = randomBytes(32).toString('base64');
    const hmacKey = createSecretKey(Buffer.from(hsSecret, 'utf8'));
    const esTokens = Array.from({ length: iterations }, () => token({ alg: 'ES256', kid, typ: 'JWT' }, issuer, (input) => sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' })));
    const hsTokens = Array.from({ length: iterations }, () => token({ alg: 'HS256', typ: 'JWT' }, issuer, (input) => createHmac('sha256', hmacKey).update(input).digest()));

    const project = createVerifier({ issuer, jwksUrl: `${issuer}/.well-known/jwks.json`, hsSecret: async () => hsSecret });
    const tampered = (t: string) => `${t.slice(0, -4)}${t.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    for (const t of [esTokens[0]!, hsTokens[0]!]) {
      const verdict = await project(`Bearer ${t}`);
      if (!verdict.ok) throw new Error(`the project's verifier refused the bench token: ${verdict.reason}`);
      // An instrument that measured a verifier which no longer checks signatures would be worse than none.
      if ((await project(`Bearer ${tampered(t)}`)).ok) throw new Error("the project's verifier accepted a tampered token");
    }

    const awsJwt = JwtVerifier.create({ issuer, audience: 'authenticated', jwksUri: `${issuer}/.well-known/jwks.json` });
    awsJwt.cacheJwks(jwks as unknown as Jwks);
    awsJwt.verifySync(esTokens[0]!);

    // The floor: the signature check alone, on bytes split and decoded beforehand.
    const split = (t: string) => {
      const dot = t.lastIndexOf('.');
      return { input: Buffer.from(t.slice(0, dot)), sig: Buffer.from(t.slice(dot + 1), 'base64url') };
    };
    const esParts = esTokens.map(split);
    const hsParts = hsTokens.map(split);
    const key = createPublicKey({ key: jwks.keys[0]!, format: 'jwk' });
    const rawEs = (p: { input: Buffer; sig: Buffer }) => {
      if (!cryptoVerify('sha256', p.input, { key, dsaEncoding: 'ieee-p1363' }, p.sig)) throw new Error('raw ES256 failed');
    };
    const rawHs = (p: { input: Buffer; sig: Buffer }) => {
      if (!timingSafeEqual(createHmac('sha256', hmacKey).update(p.input).digest(), p.sig)) throw new Error('raw HS256 failed');
    };
    const viaProject = async (t: string) => {
      if (!(await project(`Bearer ${t}`)).ok) throw new Error("the project's verifier refused a bench token");
    };

    const warm = jwksRequests;
    const us = {
      es256Raw: await time(esParts, rawEs, batches),
      es256Project: await time(esTokens, viaProject, batches),
      es256AwsJwtVerify: await time(esTokens, (t) => awsJwt.verifySync(t), batches),
      hs256Raw: await time(hsParts, rawHs, batches),
      hs256Project: await time(hsTokens, viaProject, batches),
    };
    return { us, jwksRequestsWhileTimed: jwksRequests - warm, iterations, batches };
  } finally {
    await close(server);
  }
}
