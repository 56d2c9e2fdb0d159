/**
 * Prints a session token from the local Supabase-style issuer:
 *   npm run -s dev:token -- --sub <uuid> [--claims '<json>'] [--ttl <seconds>]
 */
import { parseArgs } from 'node:util';
import { loadLocalSecrets, signDevToken } from './keys';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sub: { type: 'string' }, claims: { type: 'string' }, ttl: { type: 'string' } } });
  if (!values.sub) {
    process.stderr.write("usage: npm run -s dev:token -- --sub <uuid> [--claims '<json>'] [--ttl <seconds>]\n");
    process.exit(2);
  }
  let claims: Record<string, unknown> = {};
  if (values.claims) {
    try {
      claims = JSON.parse(values.claims) as Record<string, unknown>;
    } catch {
      process.stderr.write('--claims must be a JSON object\n');
      process.exit(2);
    }
  }
  const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
  if (!Number.isInteger(ttl)) {
    process.stderr.write('--ttl must be a whole number of seconds\n');
    process.exit(2);
  }
  const port = process.env['PORT'] ?? '3000';
  const token = await signDevToken(await loadLocalSecrets(), { issuer: `http://127.0.0.1:${port}/auth/v1`, sub: values.sub, ttlSeconds: ttl, claims });
  process.stdout.write(`${token}\n`);
}

void main();
