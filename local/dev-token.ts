/**
 * Prints a session token from the local Supabase-style issuer:
 *   npm run -s dev:token -- --sub <uuid> [--claims '<json>'] [--ttl <seconds>]
 * The issuer is http://127.0.0.1:${PORT:-3000}/auth/v1, so run it with the same PORT as `npm start`.
 * A negative TTL (an already expired token) is written `--ttl=-60`.
 */
import { parseArgs } from 'node:util';
import { loadLocalSecrets, signDevToken } from './keys';

const USAGE = "usage: npm run -s dev:token -- --sub <uuid> [--claims '<json object>'] [--ttl <seconds>]\n";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values: { sub?: string; claims?: string; ttl?: string };
  try {
    ({ values } = parseArgs({ options: { sub: { type: 'string' }, claims: { type: 'string' }, ttl: { type: 'string' } } }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (!values.sub) fail('--sub is required');
  let claims: unknown = {};
  if (values.claims !== undefined) {
    try {
      claims = JSON.parse(values.claims);
    } catch {
      fail('--claims must be a JSON object');
    }
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) fail('--claims must be a JSON object');
  const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
  if (!Number.isInteger(ttl)) fail('--ttl must be a whole number of seconds');
  const port = process.env['PORT'] ?? '3000';
  const token = await signDevToken(await loadLocalSecrets(), {
    issuer: `http://127.0.0.1:${port}/auth/v1`,
    sub: values.sub,
    ttlSeconds: ttl,
    claims: claims as Record<string, unknown>,
  });
  process.stdout.write(`${token}\n`);
}

main().catch((err: unknown) => fail(`could not sign a token: ${err instanceof Error ? err.message : String(err)}`));
