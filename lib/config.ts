/**
 * Stack configuration: read once from CDK context (`cdk.json` → `context.voiceToken`), validated here,
 * and handed to the stack as a typed object. Every error names the key and says how to fix it.
 */

export interface ServiceConfig {
  /** Origins allowed to call the API from a browser, matched exactly. No `*`, at least one. */
  readonly allowedOrigins: readonly string[];
  /** Supabase project URL, e.g. `https://abcd.supabase.co`. Issuer is `${supabaseUrl}/auth/v1`. */
  readonly supabaseUrl: string;
  /** Also accept HS256 tokens signed with the legacy Supabase JWT secret (kept in Secrets Manager). Default false. */
  readonly legacyJwtSecret: boolean;
  /** Lifetime of a minted Twilio Access Token (and so of a voice session), seconds. Default 3600, max 86400. */
  readonly tokenTtlSeconds: number;
  /** `/token` requests allowed per source IP per minute. Default 5. */
  readonly ipTokenLimitPerMinute: number;
  /** Tokens a user may have minted per day. Default 50. */
  readonly userTokenQuotaPerDay: number;
  /** Calls a user may place per day. Default 100. */
  readonly userCallQuotaPerDay: number;
  /** E.164 prefixes calls may be placed to (toll-fraud guard), e.g. `["+1", "+44"]`. */
  readonly dialPrefixes: readonly string[];
  /** Stage-wide steady request rate (requests/second) and burst. */
  readonly throttle: { readonly rateLimit: number; readonly burstLimit: number };
  /** Usage-plan quota: requests per period for the whole stage (a coarse backstop). */
  readonly quota: { readonly limit: number; readonly period: 'DAY' | 'WEEK' | 'MONTH' };
  /** Reject signed-out sessions by asking Supabase (`GET /auth/v1/user`) on each uncached authorization. Default false. */
  readonly onlineSessionCheck: boolean;
  /** The project's anon (publishable) key, public by design; required when `onlineSessionCheck` is on. */
  readonly supabaseAnonKey: string | undefined;
  /** Serve `/voice` and `/hangup` only from the IP that opened the voice session (409 otherwise). Default false. */
  readonly bindSessionToIp: boolean;
  /** How long API Gateway caches an authorizer decision, seconds. Default 60, max 3600. */
  readonly authorizerCacheTtlSeconds: number;
  /** CloudWatch Logs retention for function and access logs, days. Default 90. */
  readonly logRetentionDays: number;
  /** API Gateway stage name. Default: the stage key (`dev`, `staging`, `prod`), or `prod` without stages. */
  readonly stageName: string;
  /**
   * Public https base URL of the stage as Twilio calls it (a custom domain, or the stage URL with its path),
   * without a trailing slash. Default: none, and the stack uses its own stage URL. Twilio signs the exact
   * URL it calls, so this must be the URL Twilio is given: the status callback is `${base}/api/twilio/status`.
   */
  readonly publicBaseUrl: string | undefined;
  /** Calls a user may have live at once (by Twilio's status callbacks). Default 2, 1 to 50. */
  readonly concurrentCallLimit: number;
  /** Longest a call may last (Twilio's `timeLimit`), seconds. Default 3600, 60 to 14400. */
  readonly maxCallSeconds: number;
  /** Status callbacks accepted per source IP per minute (Twilio's IPs are shared). Default 600. */
  readonly statusLimitPerIpPerMinute: number;
  /** API Gateway method throttling of `POST /api/twilio/status` (no usage plan applies to it). Default 20 rps, burst 40. */
  readonly statusThrottle: { readonly rateLimit: number; readonly burstLimit: number };
  /** Level of the functions' diagnostic logs (audit lines are always written). Default `INFO`. */
  readonly logLevel: LogLevelName;
  /** Share of invocations that log at DEBUG whatever `logLevel` says, 0 to 1. Default 0.01. */
  readonly debugLogSampleRate: number;
  /** Alarms: where they notify, their thresholds and where their runbook lives. */
  readonly alarms: AlarmConfig;
}

export const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

export interface AlarmConfig {
  /** Email address subscribed to the alarm topic (confirm the subscription mail). Default: none. */
  readonly email: string | undefined;
  /** Static ceiling: tokens minted in 5 minutes that always alarm. Default 100. */
  readonly tokensIssuedPer5Minutes: number;
  /** Authorizer denials in 5 minutes that alarm. Default 50. */
  readonly authDenialsPer5Minutes: number;
  /** Rate-limited requests in 5 minutes that alarm. Default 25. */
  readonly rateLimitedPer5Minutes: number;
  /** Twilio upstream errors in 5 minutes that alarm. Default 5. */
  readonly upstreamErrorsPer5Minutes: number;
  /** Status callbacks refused for a missing or wrong `X-Twilio-Signature` in 5 minutes that alarm. Default 10. */
  readonly callbackSignatureFailuresPer5Minutes: number;
  /** Base URL of docs/runbook.md as your team reads it (e.g. its page in your Git host). Default `docs/runbook.md`. */
  readonly runbookUrl: string;
}

export class ConfigError extends Error {
  constructor(key: string, problem: string, fix: string, root = 'voiceToken') {
    super(`Invalid config "${root}${key ? `.${key}` : ''}": ${problem}. Fix: ${fix} (in cdk.json context or with -c).`);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, unknown>;

const DEFAULTS = {
  legacyJwtSecret: false,
  tokenTtlSeconds: 3600,
  ipTokenLimitPerMinute: 5,
  userTokenQuotaPerDay: 50,
  userCallQuotaPerDay: 100,
  throttle: { rateLimit: 10, burstLimit: 20 },
  quota: { limit: 100_000, period: 'DAY' as const },
  authorizerCacheTtlSeconds: 60,
  onlineSessionCheck: false,
  bindSessionToIp: false,
  logRetentionDays: 90,
  stageName: 'prod',
  concurrentCallLimit: 2,
  maxCallSeconds: 3600,
  statusLimitPerIpPerMinute: 600,
  // Twilio sends a handful of callbacks per call (initiated, ringing, answered, completed); 20 rps is far above
  // what the per-user call limits allow a busy deployment, and low enough that a flood cannot run up the bill.
  statusThrottle: { rateLimit: 20, burstLimit: 40 },
  logLevel: 'INFO' as const,
  debugLogSampleRate: 0.01,
  alarms: { tokensIssuedPer5Minutes: 100, authDenialsPer5Minutes: 50, rateLimitedPer5Minutes: 25, upstreamErrorsPer5Minutes: 5, callbackSignatureFailuresPer5Minutes: 10, runbookUrl: 'docs/runbook.md' },
};

function parseAlarms(raw: unknown): AlarmConfig {
  const a = (raw ?? {}) as Raw;
  if (typeof a !== 'object' || Array.isArray(a)) {
    throw new ConfigError('alarms', `expected an object, got ${JSON.stringify(raw)}`, 'set "alarms" to an object such as {"email":"oncall@example.com"}');
  }
  const email = a['email'];
  if (email !== undefined && (typeof email !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email))) {
    throw new ConfigError('alarms.email', `expected an email address, got ${JSON.stringify(email)}`, 'set it to the on-call address, e.g. "oncall@example.com", or leave it out');
  }
  const runbookUrl = a['runbookUrl'] ?? DEFAULTS.alarms.runbookUrl;
  if (typeof runbookUrl !== 'string' || runbookUrl.length === 0 || runbookUrl.length > 300 || /[\s#]/.test(runbookUrl)) {
    throw new ConfigError('alarms.runbookUrl', `expected a URL or path without spaces or "#", got ${JSON.stringify(runbookUrl)}`, 'set it to where your team reads docs/runbook.md, e.g. "https://git.example.com/voice-token/blob/main/docs/runbook.md"');
  }
  const d = DEFAULTS.alarms;
  return {
    email,
    tokensIssuedPer5Minutes: int(a, 'tokensIssuedPer5Minutes', d.tokensIssuedPer5Minutes, 1, 1_000_000, 'alarms.tokensIssuedPer5Minutes'),
    authDenialsPer5Minutes: int(a, 'authDenialsPer5Minutes', d.authDenialsPer5Minutes, 1, 1_000_000, 'alarms.authDenialsPer5Minutes'),
    rateLimitedPer5Minutes: int(a, 'rateLimitedPer5Minutes', d.rateLimitedPer5Minutes, 1, 1_000_000, 'alarms.rateLimitedPer5Minutes'),
    upstreamErrorsPer5Minutes: int(a, 'upstreamErrorsPer5Minutes', d.upstreamErrorsPer5Minutes, 1, 1_000_000, 'alarms.upstreamErrorsPer5Minutes'),
    callbackSignatureFailuresPer5Minutes: int(a, 'callbackSignatureFailuresPer5Minutes', d.callbackSignatureFailuresPer5Minutes, 1, 1_000_000, 'alarms.callbackSignatureFailuresPer5Minutes'),
    runbookUrl,
  };
}

function int(raw: Raw, key: string, def: number, min: number, max: number, path = key): number {
  const v = raw[key] ?? def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(path, `expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`, `set "${key}" to a whole number from ${min} to ${max}`);
  }
  return v;
}

function bool(raw: Raw, key: string, def: boolean, fix: string): boolean {
  const v = raw[key] ?? def;
  if (typeof v !== 'boolean') throw new ConfigError(key, `expected true or false, got ${JSON.stringify(v)}`, fix);
  return v;
}

function stringList(raw: Raw, key: string): string[] {
  const v = raw[key];
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw new ConfigError(key, `expected a list of strings, got ${JSON.stringify(v)}`, `set "${key}" to a JSON list of strings`);
  }
  return list as string[];
}

/** Checks one origin: scheme://host[:port], nothing else, no wildcard. */
export function checkOrigin(origin: string, key = 'allowedOrigins'): void {
  if (origin.includes('*')) {
    throw new ConfigError(key, `"${origin}" contains "*"; origins are matched exactly and wildcards would admit any site`, 'list every allowed origin in full, e.g. "https://app.example.com"');
  }
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new ConfigError(key, `"${origin}" is not a URL`, 'write origins as scheme://host[:port], e.g. "https://app.example.com"');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== origin) {
    throw new ConfigError(key, `"${origin}" is not a bare origin (expected exactly "${url.origin}" without path, slash or query)`, 'write origins as scheme://host[:port] with no trailing slash');
  }
}

function isBareHttpsUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' && url.origin === value;
  } catch {
    return false;
  }
}

/** The stage whose config must be production-grade: https, public origins and base URL only. */
export const PRODUCTION_STAGE = 'prod';

/**
 * Whether a host name is one no public client could reach: `localhost` (and `*.localhost`), loopback
 * (127.0.0.0/8, `[::1]`), private and link-local IPv4 ranges, IPv6 unique-local and link-local, unspecified
 * addresses, and the `.local`/`.internal` names of private networks. `host` is `URL.hostname` (lower case,
 * IPv6 in brackets).
 */
export function isNonPublicHost(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.local') || host.endsWith('.internal') || !host.includes('.') && !host.startsWith('[')) return true;
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
  }
  if (host.startsWith('[')) {
    const v6 = host.slice(1, -1);
    return v6 === '::1' || v6 === '::' || /^f[cd]/.test(v6) || /^fe[89ab]/.test(v6) || v6.startsWith('::ffff:');
  }
  return false;
}

/** Checks `publicBaseUrl`: https, no credentials, query, fragment or trailing slash; a path is allowed. */
function parsePublicBaseUrl(raw: unknown, production: boolean): string | undefined {
  if (raw === undefined) return undefined;
  const example = 'e.g. "https://voice.example.com" or "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"';
  if (typeof raw !== 'string') {
    throw new ConfigError('publicBaseUrl', `expected a URL string, got ${JSON.stringify(raw)}`, `set it to the stage's public https URL, ${example}, or leave it out to use the stage URL`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('publicBaseUrl', `"${raw}" is not a URL`, `write the stage's public https URL, ${example}`);
  }
  const problem =
    url.protocol !== 'https:' ? 'it is not https (Twilio must call the callback over TLS)'
    : url.username || url.password ? 'it contains credentials'
    : raw.includes('?') ? 'it has a query'
    : raw.includes('#') ? 'it has a fragment'
    : raw.endsWith('/') ? 'it ends with "/" (route paths are appended to it)'
    : undefined;
  if (problem) throw new ConfigError('publicBaseUrl', `"${raw}": ${problem}`, `write the base URL Twilio calls, ${example}, with no trailing slash`);
  const canonical = url.pathname === '/' ? url.origin : `${url.origin}${url.pathname}`;
  if (canonical !== raw) {
    throw new ConfigError('publicBaseUrl', `"${raw}" is not in canonical form (expected "${canonical}"); Twilio signs the exact URL, so spellings matter`, `write it exactly as "${canonical}"`);
  }
  if (production && isNonPublicHost(url.hostname)) {
    throw new ConfigError('publicBaseUrl', `"${raw}" is not a public address, and the ${PRODUCTION_STAGE} stage needs one Twilio can reach`, `set the ${PRODUCTION_STAGE} stage's publicBaseUrl to its public https URL, or leave it out to use the stage URL`);
  }
  return raw;
}

/** The prod stage refuses origins only a developer's machine has: plain http and non-public hosts. */
function checkProductionOrigin(origin: string): void {
  const url = new URL(origin);
  if (url.protocol !== 'https:' || isNonPublicHost(url.hostname)) {
    throw new ConfigError(
      'allowedOrigins',
      `"${origin}" is ${url.protocol !== 'https:' ? 'not https' : 'not a public host'}, which a production stage (${PRODUCTION_STAGE}, or any with "production": true) refuses (any local page or network neighbour could call the production API)`,
      `keep http:// and localhost origins in the dev stage's block ("voiceTokenStages": {"dev": {"allowedOrigins": [...]}}) and list only your public https frontends for ${PRODUCTION_STAGE}`,
    );
  }
}

export interface ParseOptions {
  /**
   * The stage this config is for. It is the default `stageName`, and the `prod` stage gets the production
   * checks (https public origins, public `publicBaseUrl`). @default - no stage: `stageName` defaults to `prod`,
   * without the production checks (callers that deploy use `parseStageConfig`)
   */
  readonly stage?: string;
}

/** Validates raw context and fills in defaults. Throws ConfigError naming the key on any problem. */
export function parseConfig(raw: unknown, options: ParseOptions = {}): ServiceConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('', 'the "voiceToken" context object is missing', 'add a "voiceToken" object to "context" in cdk.json');
  }
  const r = raw as Raw;
  // The prod stage always gets the production checks; any other stage (say "production" or "live") opts in.
  const production = options.stage === PRODUCTION_STAGE || bool(r, 'production', false, `set "production": true in the block of every stage that serves real users (${PRODUCTION_STAGE} always does)`);

  const allowedOrigins = stringList(r, 'allowedOrigins');
  if (allowedOrigins.length === 0) {
    throw new ConfigError('allowedOrigins', 'the list is empty, so no browser could call the API', 'list the origins of your frontends, e.g. ["https://app.example.com"]');
  }
  allowedOrigins.forEach((o) => checkOrigin(o));
  if (production) allowedOrigins.forEach(checkProductionOrigin);

  const supabaseUrl = r['supabaseUrl'];
  if (typeof supabaseUrl !== 'string' || !isBareHttpsUrl(supabaseUrl)) {
    throw new ConfigError('supabaseUrl', `expected an https URL without path, got ${JSON.stringify(supabaseUrl)}`, 'set it to your project URL, e.g. "https://abcdefghijklmnop.supabase.co"');
  }

  const legacyJwtSecret = r['legacyJwtSecret'] ?? DEFAULTS.legacyJwtSecret;
  if (typeof legacyJwtSecret !== 'boolean') {
    throw new ConfigError('legacyJwtSecret', `expected true or false, got ${JSON.stringify(legacyJwtSecret)}`, 'set it to true only for projects still signing with the legacy HS256 secret');
  }

  const dialPrefixes = stringList(r, 'dialPrefixes');
  if (dialPrefixes.length === 0) {
    throw new ConfigError('dialPrefixes', 'the list is empty, so no call could be placed', 'list the E.164 prefixes you allow, e.g. ["+1"]');
  }
  for (const p of dialPrefixes) {
    if (!/^\+[1-9]\d{0,6}$/.test(p)) {
      throw new ConfigError('dialPrefixes', `"${p}" is not an E.164 prefix`, 'write prefixes as "+" and 1 to 7 digits, e.g. "+1" or "+4420"');
    }
  }

  const onlineSessionCheck = bool(r, 'onlineSessionCheck', DEFAULTS.onlineSessionCheck, 'set it to true to reject signed-out sessions (one Supabase request per uncached authorization)');
  const bindSessionToIp = bool(r, 'bindSessionToIp', DEFAULTS.bindSessionToIp, 'set it to true to serve a voice session only to the IP that opened it');
  const supabaseAnonKey = r['supabaseAnonKey'];
  if (supabaseAnonKey !== undefined && (typeof supabaseAnonKey !== 'string' || !/^[A-Za-z0-9._-]{20,2048}$/.test(supabaseAnonKey))) {
    throw new ConfigError('supabaseAnonKey', 'expected the project\'s anon or publishable key', 'copy it from your Supabase project\'s API settings');
  }
  if (onlineSessionCheck && supabaseAnonKey === undefined) {
    throw new ConfigError('supabaseAnonKey', 'it is required when onlineSessionCheck is true (Supabase\'s auth API needs it)', 'set "supabaseAnonKey" to the project\'s anon or publishable key, or turn onlineSessionCheck off');
  }

  const t = (r['throttle'] ?? DEFAULTS.throttle) as Raw;
  const q = (r['quota'] ?? DEFAULTS.quota) as Raw;
  const period = q['period'] ?? DEFAULTS.quota.period;
  if (period !== 'DAY' && period !== 'WEEK' && period !== 'MONTH') {
    throw new ConfigError('quota.period', `expected DAY, WEEK or MONTH, got ${JSON.stringify(period)}`, 'set "period" to "DAY", "WEEK" or "MONTH"');
  }

  const stageName = r['stageName'] ?? options.stage ?? DEFAULTS.stageName;
  if (typeof stageName !== 'string' || !/^[a-zA-Z0-9_]{1,64}$/.test(stageName)) {
    throw new ConfigError('stageName', `expected letters, digits or underscore, got ${JSON.stringify(stageName)}`, 'set it to e.g. "prod"');
  }

  const st = r['statusThrottle'] ?? DEFAULTS.statusThrottle;
  if (typeof st !== 'object' || st === null || Array.isArray(st)) {
    throw new ConfigError('statusThrottle', `expected an object, got ${JSON.stringify(st)}`, 'set it to e.g. {"rateLimit":20,"burstLimit":40}, or leave it out');
  }

  return {
    allowedOrigins,
    supabaseUrl,
    legacyJwtSecret,
    tokenTtlSeconds: int(r, 'tokenTtlSeconds', DEFAULTS.tokenTtlSeconds, 60, 86_400),
    ipTokenLimitPerMinute: int(r, 'ipTokenLimitPerMinute', DEFAULTS.ipTokenLimitPerMinute, 1, 1000),
    userTokenQuotaPerDay: int(r, 'userTokenQuotaPerDay', DEFAULTS.userTokenQuotaPerDay, 1, 100_000),
    userCallQuotaPerDay: int(r, 'userCallQuotaPerDay', DEFAULTS.userCallQuotaPerDay, 1, 100_000),
    dialPrefixes,
    throttle: {
      rateLimit: int(t, 'rateLimit', DEFAULTS.throttle.rateLimit, 1, 10_000, 'throttle.rateLimit'),
      burstLimit: int(t, 'burstLimit', DEFAULTS.throttle.burstLimit, 1, 5_000, 'throttle.burstLimit'),
    },
    quota: { limit: int(q, 'limit', DEFAULTS.quota.limit, 1, 1_000_000_000, 'quota.limit'), period },
    authorizerCacheTtlSeconds: int(r, 'authorizerCacheTtlSeconds', DEFAULTS.authorizerCacheTtlSeconds, 0, 3600),
    onlineSessionCheck,
    supabaseAnonKey: supabaseAnonKey as string | undefined,
    bindSessionToIp,
    logRetentionDays: int(r, 'logRetentionDays', DEFAULTS.logRetentionDays, 1, 3653),
    stageName,
    publicBaseUrl: parsePublicBaseUrl(r['publicBaseUrl'], production),
    concurrentCallLimit: int(r, 'concurrentCallLimit', DEFAULTS.concurrentCallLimit, 1, 50),
    maxCallSeconds: int(r, 'maxCallSeconds', DEFAULTS.maxCallSeconds, 60, 14_400),
    statusLimitPerIpPerMinute: int(r, 'statusLimitPerIpPerMinute', DEFAULTS.statusLimitPerIpPerMinute, 1, 100_000),
    statusThrottle: {
      rateLimit: int(st as Raw, 'rateLimit', DEFAULTS.statusThrottle.rateLimit, 1, 10_000, 'statusThrottle.rateLimit'),
      burstLimit: int(st as Raw, 'burstLimit', DEFAULTS.statusThrottle.burstLimit, 1, 5_000, 'statusThrottle.burstLimit'),
    },
    logLevel: parseLogLevel(r['logLevel']),
    debugLogSampleRate: parseSampleRate(r['debugLogSampleRate']),
    alarms: parseAlarms(r['alarms']),
  };
}

function parseLogLevel(raw: unknown): LogLevelName {
  const v = raw ?? DEFAULTS.logLevel;
  if (!LOG_LEVELS.includes(v as LogLevelName)) {
    throw new ConfigError('logLevel', `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(v)}`, 'set it to "INFO" (audit lines are written at every level)');
  }
  return v as LogLevelName;
}

function parseSampleRate(raw: unknown): number {
  const v = raw ?? DEFAULTS.debugLogSampleRate;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
    throw new ConfigError('debugLogSampleRate', `expected a number from 0 to 1, got ${JSON.stringify(v)}`, 'set it to e.g. 0.01 to log 1% of invocations at DEBUG, or 0 for none');
  }
  return v;
}

/** Keys whose values are objects merged key by key when a stage block overrides the shared block. */
const MERGED_OBJECT_KEYS = ['throttle', 'quota', 'alarms', 'statusThrottle'] as const;

/**
 * A stage's raw config: its block of `voiceTokenStages` laid over the shared `voiceToken` block. A key set in
 * the stage block replaces the shared value, except `throttle`, `quota`, `statusThrottle` and `alarms`,
 * which are merged key by key (a stage can change one alarm threshold and keep the shared email). Lists
 * (`allowedOrigins`, `dialPrefixes`) are replaced whole, never concatenated.
 */
export function mergeStageConfig(shared: Raw, stageBlock: Raw): Raw {
  const merged: Raw = { ...shared, ...stageBlock };
  for (const key of MERGED_OBJECT_KEYS) {
    const [a, b] = [shared[key], stageBlock[key]];
    if (isPlainObject(a) && isPlainObject(b)) merged[key] = { ...a, ...b };
  }
  return merged;
}

function isPlainObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates one stage's config (shared block merged with the stage block, see `mergeStageConfig`), with
 * the stage's defaults and checks. Errors name the stage as well as the key.
 */
export function parseStageConfig(shared: unknown, stageBlock: unknown, stage: string): ServiceConfig {
  if (!isPlainObject(shared)) {
    throw new ConfigError('', 'the "voiceToken" context object is missing', 'add a "voiceToken" object to "context" in cdk.json');
  }
  if (stageBlock !== undefined && !isPlainObject(stageBlock)) {
    throw new ConfigError(stage, `expected an object of overrides, got ${JSON.stringify(stageBlock)}`, `set "voiceTokenStages.${stage}" to an object such as {"allowedOrigins":["https://app.example.com"]}`, 'voiceTokenStages');
  }
  try {
    return parseConfig(mergeStageConfig(shared, stageBlock ?? {}), { stage });
  } catch (err) {
    throw inStage(err, stage);
  }
}

/** Prefixes a ConfigError's message with the stage it concerns (other errors pass through unchanged). */
export function inStage(err: unknown, stage: string): unknown {
  if (err instanceof ConfigError && !err.message.startsWith('Stage "')) {
    err.message = `Stage "${stage}" (voiceToken merged with voiceTokenStages.${stage}): ${err.message}`;
  }
  return err;
}
