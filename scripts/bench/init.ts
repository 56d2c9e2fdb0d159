import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ENV } from '../../lambdas/shared/config';
import type { Bundle } from './build';
import { median } from './stats';

const run = promisify(execFile);

/**
 * Everything the functions read at cold start, with dummy values: no request is made, so nothing needs to
 * answer. The same names local mode sets (local/server.ts).
 */
export const INIT_ENV: Readonly<Record<string, string>> = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'AKIABENCHDUMMY000000',
  AWS_SECRET_ACCESS_KEY: 'dummy',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  [ENV.TABLE_NAME]: 'bench-table',
  [ENV.TWILIO_SECRET_ID]: 'bench/twilio',
  [ENV.ENCRYPTION_KEYS_SECRET_ID]: 'bench/encryption-keys',
  [ENV.USAGE_KEY]: 'bench-usage-key-0123456789',
  [ENV.SUPABASE_URL]: 'https://bench.supabase.co',
  [ENV.ALLOWED_ORIGINS]: 'https://app.example',
  [ENV.DIAL_PREFIXES]: '+1,+44',
  [ENV.STATUS_CALLBACK_URL]: 'https://api.example/prod/api/twilio/status',
  POWERTOOLS_SERVICE_NAME: 'voice-token-bench',
  POWERTOOLS_METRICS_NAMESPACE: 'VoiceTokenBench',
  POWERTOOLS_LOG_LEVEL: 'INFO',
};

export interface InitResult {
  /** Median milliseconds from `import()` of the bundle to its top-level code having run. */
  readonly ms: number;
  /** Fastest sample, ms: the least disturbed by other work on the machine. */
  readonly minMs: number;
  /** Median resident set size after init, MB (Node's own baseline included, as Lambda reports it). */
  readonly rssMb: number;
  readonly samples: readonly number[];
}

/** Loads one bundle and prints how long its top-level code took, and the RSS after it. */
const LOADER = `const t0 = performance.now();
const m = await import(process.argv[2]);
const ms = performance.now() - t0;
if (typeof m.handler !== 'function') throw new Error('no handler export');
process.stdout.write(JSON.stringify({ ms, rss: process.memoryUsage().rss }));
`;

/**
 * Init time of each bundle in a fresh `node` process per sample (one warmup process each first, for the file
 * cache). Samples go round-robin over the bundles, so a slow moment of the machine hits them all alike.
 */
export async function measureInit(bundles: readonly Bundle[], dir: string, samples: number): Promise<Map<string, InitResult>> {
  const loader = join(dir, 'loader.mjs');
  writeFileSync(loader, LOADER);
  const env = { PATH: process.env['PATH'] ?? '', ...INIT_ENV };
  const once = async (b: Bundle) => {
    const { stdout } = await run(process.execPath, [loader, b.file], { env, maxBuffer: 1 << 20 });
    return JSON.parse(stdout) as { ms: number; rss: number };
  };
  const raw = new Map<string, { ms: number; rss: number }[]>(bundles.map((b) => [b.id, []]));
  for (const b of bundles) await once(b);
  for (let i = 0; i < samples; i++) for (const b of bundles) raw.get(b.id)!.push(await once(b));
  return new Map(
    [...raw].map(([id, xs]) => [id, { ms: median(xs.map((x) => x.ms)), minMs: Math.min(...xs.map((x) => x.ms)), rssMb: median(xs.map((x) => x.rss)) / 2 ** 20, samples: xs.map((x) => x.ms) }]),
  );
}
