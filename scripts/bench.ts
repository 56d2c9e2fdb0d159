/**
 * `npm run bench`: the performance targets of issue 5, measured side by side in one run on this machine.
 *
 * - init: each function bundle (built with the stack's esbuild settings) loaded in a fresh `node` process,
 *   beside reference bundles (an empty handler, the AWS SDK clients alone, twilio parts, a naive voice build);
 * - bundle sizes;
 * - warm token verification through the authorizer's verifier, beside raw crypto and aws-jwt-verify;
 * - DynamoDB round trips and warm latency per route, through the local gateway against dynalite;
 * - cost per million requests on AWS from those numbers.
 *
 * Prints markdown tables and writes the raw numbers to bench-results/latest.json. Nothing here asserts:
 * FAIL in the table is information, and the exit code is 0 unless the bench itself breaks.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Bundle, FUNCTIONS, type FunctionId, buildAll } from './bench/build';
import { AUTHORIZER_CACHE_HIT_RATIO, PRICES, type RouteCost, routeCost, stackFacts } from './bench/cost';
import { measureInit } from './bench/init';
import { type RouteResult, measureLocal } from './bench/local';
import { round } from './bench/stats';
import { measureVerify } from './bench/verify';

const setting = (name: string, def: number) => Number(process.env[name] ?? def);
const INIT_SAMPLES = setting('BENCH_INIT_SAMPLES', 11);
const VERIFY_ITERATIONS = setting('BENCH_VERIFY_ITERATIONS', 1000);
const VERIFY_BATCHES = setting('BENCH_VERIFY_BATCHES', 7);
const USERS = setting('BENCH_USERS', 100);
const WARMUP_USERS = setting('BENCH_WARMUP_USERS', 10);

/** The SDK clients each function cannot avoid loading: the reference build it is compared with. */
const UNAVOIDABLE: Record<FunctionId, { ref: string; what: string }> = {
  authorizer: { ref: 'secrets', what: 'Secrets Manager client' },
  token: { ref: 'dynamodb+secrets', what: 'DynamoDB + Secrets Manager clients' },
  voice: { ref: 'dynamodb+secrets', what: 'DynamoDB + Secrets Manager clients' },
  hangup: { ref: 'dynamodb+secrets', what: 'DynamoDB + Secrets Manager clients' },
  status: { ref: 'dynamodb+secrets', what: 'DynamoDB + Secrets Manager clients' },
};
const INIT_HEADROOM_MS = 25;
const NAIVE_RATIO = 0.4;
const KB = 1024;
const BUNDLE_LIMIT_BYTES: Record<FunctionId, number> = { authorizer: 100 * KB, token: KB * KB, voice: KB * KB, hangup: KB * KB, status: KB * KB };
const ROUND_TRIP_LIMITS: Readonly<Record<string, number>> = { 'token (new session)': 2, 'token (reuse)': 2, voice: 3, 'voice (Idempotency-Key)': 3, hangup: 2 };
/** Which function serves each measured route, and whether the Supabase authorizer guards it. */
const ROUTE_FUNCTION: Readonly<Record<string, { fn: FunctionId; authorized: boolean }>> = {
  'token (new session)': { fn: 'token', authorized: true },
  'token (reuse)': { fn: 'token', authorized: true },
  voice: { fn: 'voice', authorized: true },
  'voice (Idempotency-Key)': { fn: 'voice', authorized: true },
  hangup: { fn: 'hangup', authorized: true },
  'status callback': { fn: 'status', authorized: false },
};

const pass = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const table = (head: string[], rows: (string | number)[][]) =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

async function main(): Promise<void> {
  const started = Date.now();
  const loadBefore = loadavg()[0] ?? 0;
  // The SDK's "Node 22 needed from 2027" notice concerns this machine's Node, not the Lambda runtime.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
  const work = mkdtempSync(join(tmpdir(), 'bench-'));
  try {
    log('building bundles with the stack settings…');
    const bundles = await buildAll(work);
    const byId = new Map<string, Bundle>(bundles.map((b) => [b.id, b]));
    const facts = stackFacts();

    log(`init: ${INIT_SAMPLES} fresh processes per bundle, ${bundles.length} bundles…`);
    const init = await measureInit(bundles, work, INIT_SAMPLES);
    const initOf = (id: string) => init.get(id)!;

    log(`verification: ${VERIFY_BATCHES} batches of ${VERIFY_ITERATIONS}…`);
    const verify = await measureVerify(VERIFY_ITERATIONS, VERIFY_BATCHES);

    log(`local mode: ${USERS} users (+${WARMUP_USERS} warmup)…`);
    const local = await measureLocal(USERS, WARMUP_USERS);
    const route = (label: string): RouteResult | undefined => local.routes.find((r) => r.label === label);

    // ---- targets ----
    const targets: { target: string; measured: string; ok: boolean }[] = [];
    const naive = initOf('naive-voice').ms;
    for (const fn of FUNCTIONS) {
      const u = UNAVOIDABLE[fn];
      const limit = initOf(u.ref).ms + INIT_HEADROOM_MS;
      targets.push({ target: `init ${fn} ≤ ${u.what} + ${INIT_HEADROOM_MS} ms (${round(limit)} ms)`, measured: `${round(initOf(fn).ms)} ms`, ok: initOf(fn).ms <= limit });
    }
    for (const fn of ['voice', 'hangup'] as const) {
      targets.push({ target: `init ${fn} ≤ ${NAIVE_RATIO} × naive voice (${round(NAIVE_RATIO * naive)} ms)`, measured: `${round(initOf(fn).ms)} ms`, ok: initOf(fn).ms <= NAIVE_RATIO * naive });
    }
    for (const fn of FUNCTIONS) {
      const b = byId.get(fn)!;
      targets.push({ target: `bundle ${fn} ≤ ${BUNDLE_LIMIT_BYTES[fn] / KB} KB`, measured: `${round(b.bytes / KB)} KB`, ok: b.bytes <= BUNDLE_LIMIT_BYTES[fn] });
    }
    const v = verify.us;
    targets.push({ target: 'ES256 verify ≤ 1.3 × raw crypto.verify', measured: `${round(v.es256Project)} µs = ${round(v.es256Project / v.es256Raw, 2)} × raw`, ok: v.es256Project <= 1.3 * v.es256Raw });
    targets.push({ target: 'ES256 verify ≤ aws-jwt-verify', measured: `${round(v.es256Project)} vs ${round(v.es256AwsJwtVerify)} µs`, ok: v.es256Project <= v.es256AwsJwtVerify });
    targets.push({ target: 'warm verification: 0 JWKS requests', measured: String(verify.jwksRequestsWhileTimed), ok: verify.jwksRequestsWhileTimed === 0 });
    for (const [label, limit] of Object.entries(ROUND_TRIP_LIMITS)) {
      const r = route(label);
      targets.push({ target: `DynamoDB round trips ${label} ≤ ${limit}`, measured: r ? String(r.roundTrips.max) : 'not measured', ok: !!r && r.roundTrips.max <= limit });
    }

    // ---- costs ----
    const costs: RouteCost[] = Object.entries(ROUTE_FUNCTION).flatMap(([label, { fn, authorized }]) => {
      const r = route(label);
      return r ? [routeCost({ route: label, fn, durationMs: r.p50Ms, readUnits: r.readUnits, writeUnits: r.writeUnits, authorized, authorizerMs: local.authorizer.p50Ms, memoryMb: facts.memoryMb })] : [];
    });

    // ---- report ----
    const usd = (x: number) => `$${x.toFixed(3)}`;
    const out: string[] = [];
    out.push(`## Benchmark (npm run bench), ${new Date().toISOString()}`);
    out.push(`Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${round(loadBefore, 2)} before and ${round(loadavg()[0] ?? 0, 2)} after (other work on the machine inflates every absolute number; the targets compare bundles measured interleaved in this run); medians unless noted. Unavoidable clients: authorizer = Secrets Manager client; token, voice, hangup, status = DynamoDB + Secrets Manager clients (one reference bundle constructing both).`);
    out.push('');
    out.push('### Init in a fresh process (bundles built with the stack settings, source maps off)');
    out.push(
      `Init: time for \`import()\` of the bundle (its top-level code: config, clients) in a new \`node\` process, median (targets) and fastest of ${INIT_SAMPLES} after a warmup, bundles interleaved; RSS after init includes Node's own baseline. Bundle KB: the minified .mjs (1 KB = 1024 bytes), without its source map. Reference builds, same settings: an empty handler; each SDK client alone and both together (constructed with the project's client options); twilio's AccessToken module; the full \`twilio\` package with a client constructed; naive voice = the voice handler plus the full \`twilio\` package, a client constructed and its Calls resource loaded.`,
    );
    out.push(
      table(
        ['bundle', 'init ms', 'min ms', 'RSS MB', 'bundle KB', `≤ unavoidable + ${INIT_HEADROOM_MS} ms`, `≤ ${NAIVE_RATIO} × naive voice`, 'size target'],
        bundles.map((b) => {
          const i = initOf(b.id);
          const fn = b.kind === 'function' ? (b.id as FunctionId) : undefined;
          return [
            fn ? `**${b.id}**` : `ref: ${b.id}`,
            round(i.ms),
            round(i.minMs),
            round(i.rssMb),
            round(b.bytes / KB),
            fn ? `${pass(i.ms <= initOf(UNAVOIDABLE[fn].ref).ms + INIT_HEADROOM_MS)} (${UNAVOIDABLE[fn].ref} ${round(initOf(UNAVOIDABLE[fn].ref).ms)} ms)` : '',
            fn === 'voice' || fn === 'hangup' ? `${pass(i.ms <= NAIVE_RATIO * naive)} (${round(NAIVE_RATIO * naive)} ms)` : '',
            fn ? `${pass(b.bytes <= BUNDLE_LIMIT_BYTES[fn])} (≤ ${BUNDLE_LIMIT_BYTES[fn] / KB} KB)` : '',
          ];
        }),
      ),
    );
    out.push('');
    out.push(`### Warm token verification (µs per token, median of ${verify.batches} batches of ${verify.iterations}; JWKS requests while timed: ${verify.jwksRequestsWhileTimed})`);
    out.push(
      table(
        ['alg', 'project verifier (createVerifier)', 'raw crypto', 'aws-jwt-verify', 'ratio to raw', 'target'],
        [
          ['ES256', round(v.es256Project), round(v.es256Raw), round(v.es256AwsJwtVerify), round(v.es256Project / v.es256Raw, 2), `${pass(v.es256Project <= 1.3 * v.es256Raw && v.es256Project <= v.es256AwsJwtVerify)} (≤ 1.3 × raw and ≤ aws-jwt-verify)`],
          ['HS256', round(v.hs256Project), round(v.hs256Raw), '–', round(v.hs256Project / v.hs256Raw, 2), 'reported'],
        ],
      ),
    );
    out.push('');
    out.push(`### Per route, warm, through the local gateway against dynalite (${local.users} users, one request at a time; latency from request arrival to response end)`);
    out.push(
      table(
        ['route', 'n', 'p50 ms', 'p99 ms', 'DynamoDB calls (median / max)', 'RRU / WRU', 'Secrets Manager calls', 'DynamoDB ops', 'round-trip target'],
        [
          ...local.routes.map((r) => [
            r.label,
            r.n,
            round(r.p50Ms, 2),
            round(r.p99Ms, 2),
            `${r.roundTrips.median} / ${r.roundTrips.max}`,
            `${r.readUnits} / ${r.writeUnits}`,
            r.secretsCallsMax,
            Object.entries(r.ops).map(([op, n]) => `${op} ${round(n / r.n, 2)}`).join(', '),
            ROUND_TRIP_LIMITS[r.label] !== undefined ? `${pass(r.roundTrips.max <= ROUND_TRIP_LIMITS[r.label]!)} (≤ ${ROUND_TRIP_LIMITS[r.label]})` : '',
          ]),
          ['authorizer (invoked directly, fresh token)', local.authorizer.n, round(local.authorizer.p50Ms, 2), round(local.authorizer.p99Ms, 2), '0', '–', local.authorizer.secretsCallsMax, '', ''],
        ],
      ),
    );
    out.push('Local mode runs the TypeScript sources in this process (tsx), with the function log lines written to /dev/null; DynamoDB and Secrets Manager calls are counted at the SDK clients\' `send`, per request.');
    out.push('*logout runs first for each user and so includes the authorizer (gateway cache miss); the other authorized routes hit the gateway cache. Twilio is the loopback stand-in: real Twilio adds its own latency to voice and hangup.');
    out.push('');
    out.push(`### Cost per million requests, USD (${PRICES.region} prices assumed as of ${PRICES.asOf})`);
    out.push(
      table(
        ['route', 'function (MB)', 'billed ms', 'API Gateway', 'Lambda', `authorizer (${Math.round((1 - AUTHORIZER_CACHE_HIT_RATIO) * 100)}% misses)`, 'DynamoDB', '**total**'],
        costs.map((c) => [c.route, `${c.fn} (${facts.memoryMb[c.fn]})`, c.billedMs, usd(c.apiGateway), usd(c.lambda), c.authorized ? usd(c.authorizer) : '–', usd(c.dynamo), `**${usd(c.total)}**`]),
      ),
    );
    out.push(
      [
        `Assumptions (${PRICES.asOf}, ${PRICES.region}): Lambda arm64 $${PRICES.lambdaArmPerGbSecond} per GB-s and $${PRICES.lambdaPerMillionRequests} per million requests;`,
        `DynamoDB on-demand $${PRICES.dynamoPerMillionWriteUnits} per million write units and $${PRICES.dynamoPerMillionReadUnits} per million read units (items under 1 KB; strongly consistent reads 1 unit, eventually consistent 0.5, transactions double);`,
        `API Gateway REST $${PRICES.restApiPerMillionRequests} per million requests (status callbacks pass the gateway too, without the authorizer).`,
        `Memory from the ${facts.source}: ${FUNCTIONS.map((f) => `${f} ${facts.memoryMb[f]} MB`).join(', ')}.`,
        `Durations: this run's warm p50, rounded up to 1 ms (handlers measured through the local gateway, so slightly high; the authorizer invoked directly), on this machine's full cores: Lambda at 256–512 MB gets a fraction of a vCPU, so real durations are longer.`,
        `Authorizer cache hit ratio ${AUTHORIZER_CACHE_HIT_RATIO} (cache TTL ${facts.authorizerCacheTtlSeconds ?? '?'} s, keyed by the Authorization header). Not included: Twilio, Secrets Manager calls (none on the warm path, one per secret per TTL per instance), KMS, CloudWatch Logs and X-Ray, data transfer, cold starts.`,
      ].join(' '),
    );
    out.push('');
    out.push('### Targets (issue 5)');
    out.push(table(['target', 'measured', 'result'], targets.map((t) => [t.target, t.measured, pass(t.ok)])));
    out.push(`\n${targets.filter((t) => t.ok).length} of ${targets.length} targets pass. Bench took ${round((Date.now() - started) / 1000)} s.`);
    process.stdout.write(`${out.join('\n')}\n`);

    const resultsDir = join(__dirname, '..', 'bench-results');
    mkdirSync(resultsDir, { recursive: true });
    const json = {
      date: new Date().toISOString(),
      loadAverage: { before: loadBefore, after: loadavg()[0] ?? 0 },
      node: process.version,
      cpus: cpus().map((c) => c.model),
      settings: { INIT_SAMPLES, VERIFY_ITERATIONS, VERIFY_BATCHES, USERS, WARMUP_USERS },
      bundles: bundles.map((b) => ({ id: b.id, kind: b.kind, bytes: b.bytes, init: initOf(b.id) })),
      unavoidable: UNAVOIDABLE,
      verify,
      local,
      stack: facts,
      prices: PRICES,
      authorizerCacheHitRatio: AUTHORIZER_CACHE_HIT_RATIO,
      costs,
      targets,
    };
    writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
    log(`raw numbers in ${join('bench-results', 'latest.json')}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
