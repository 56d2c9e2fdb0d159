/**
 * The Lambdas' configuration, read once per cold start from environment variables set by the stack
 * (or by local mode). Values here are names and limits, never secrets: secrets are fetched from
 * Secrets Manager by name at run time.
 */

/** Environment variable names: the contract between the stack, local mode and the functions. */
export const ENV = {
  TABLE_NAME: 'TABLE_NAME',
  TWILIO_SECRET_ID: 'TWILIO_SECRET_ID',
  ENCRYPTION_KEYS_SECRET_ID: 'ENCRYPTION_KEYS_SECRET_ID',
  SUPABASE_JWT_SECRET_ID: 'SUPABASE_JWT_SECRET_ID',
  USAGE_KEY: 'USAGE_KEY',
  SUPABASE_URL: 'SUPABASE_URL',
  JWKS_URL: 'JWKS_URL',
  ALLOWED_ORIGINS: 'ALLOWED_ORIGINS',
  TOKEN_TTL_SECONDS: 'TOKEN_TTL_SECONDS',
  IP_TOKEN_LIMIT_PER_MINUTE: 'IP_TOKEN_LIMIT_PER_MINUTE',
  USER_TOKEN_QUOTA_PER_DAY: 'USER_TOKEN_QUOTA_PER_DAY',
  USER_CALL_QUOTA_PER_DAY: 'USER_CALL_QUOTA_PER_DAY',
  DIAL_PREFIXES: 'DIAL_PREFIXES',
  SECRET_CACHE_TTL_SECONDS: 'SECRET_CACHE_TTL_SECONDS',
  TWILIO_API_BASE_URL: 'TWILIO_API_BASE_URL',
  BIND_SESSION_TO_IP: 'BIND_SESSION_TO_IP',
  SESSION_CHECK: 'SESSION_CHECK',
  SUPABASE_ANON_KEY: 'SUPABASE_ANON_KEY',
  STATUS_CALLBACK_URL: 'STATUS_CALLBACK_URL',
  CONCURRENT_CALL_LIMIT: 'CONCURRENT_CALL_LIMIT',
  MAX_CALL_SECONDS: 'MAX_CALL_SECONDS',
  STATUS_LIMIT_PER_IP_PER_MINUTE: 'STATUS_LIMIT_PER_IP_PER_MINUTE',
} as const;

export interface LambdaConfig {
  readonly tableName: string;
  readonly twilioSecretId: string;
  readonly encryptionKeysSecretId: string;
  /** Set only when legacy HS256 tokens are accepted. */
  readonly supabaseJwtSecretId: string | undefined;
  /**
   * The usage-plan key the authorizer hands to API Gateway. Not a credential: with the API's key source set
   * to AUTHORIZER, API Gateway never accepts it from a client; it only names the usage plan to count against.
   */
  readonly usageKey: string | undefined;
  readonly issuer: string;
  readonly jwksUrl: string;
  readonly allowedOrigins: readonly string[];
  readonly tokenTtlSeconds: number;
  readonly ipTokenLimitPerMinute: number;
  readonly userTokenQuotaPerDay: number;
  readonly userCallQuotaPerDay: number;
  readonly dialPrefixes: readonly string[];
  readonly secretCacheTtlSeconds: number;
  /** Override of `https://api.twilio.com` (a loopback stand-in in local mode and tests). */
  readonly twilioApiBaseUrl: string | undefined;
  /** `/voice` and `/hangup` only from the IP that opened the voice session (409 otherwise). Default off. */
  readonly bindSessionToIp: boolean;
  /** Ask Supabase (`GET /auth/v1/user`) whether the session is still signed in. Default off. */
  readonly sessionCheck: boolean;
  /** `${SUPABASE_URL}/auth/v1/user` */
  readonly sessionCheckUrl: string;
  /** The project's anon (publishable) key, which Supabase's auth API requires as `apikey`; public, not a secret. */
  readonly supabaseAnonKey: string | undefined;
  /**
   * The exact public URL of `POST /api/twilio/status` (stage path included): given to Twilio as each call's
   * `statusCallback`, and the URL its `X-Twilio-Signature` is checked against.
   */
  readonly statusCallbackUrl: string;
  /** Calls a user may have live at once (by their recorded state). Default 2. */
  readonly concurrentCallLimit: number;
  /** Longest a call may last (Twilio's `timeLimit`), seconds; a call slot that never hears back frees itself after this. Default 3600. */
  readonly maxCallSeconds: number;
  /** Status callbacks accepted per source IP per minute. Default 600. */
  readonly statusLimitPerIpPerMinute: number;
}

function list(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

const flag = (v: string | undefined) => v === 'true';

function num(env: NodeJS.ProcessEnv, key: string, def: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`Environment variable ${key} must be a positive integer`);
  return n;
}

/** Reads and checks the configuration; throws at cold start (fail fast) when a required value is missing. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): LambdaConfig {
  const required = (key: string): string => {
    const v = env[key];
    if (!v) throw new Error(`Environment variable ${key} is required`);
    return v;
  };
  const supabaseUrl = required(ENV.SUPABASE_URL).replace(/\/+$/, '');
  return {
    tableName: env[ENV.TABLE_NAME] ?? '',
    twilioSecretId: env[ENV.TWILIO_SECRET_ID] ?? '',
    encryptionKeysSecretId: env[ENV.ENCRYPTION_KEYS_SECRET_ID] ?? '',
    supabaseJwtSecretId: env[ENV.SUPABASE_JWT_SECRET_ID] || undefined,
    usageKey: env[ENV.USAGE_KEY] || undefined,
    issuer: `${supabaseUrl}/auth/v1`,
    jwksUrl: env[ENV.JWKS_URL] || `${supabaseUrl}/auth/v1/.well-known/jwks.json`,
    allowedOrigins: list(env[ENV.ALLOWED_ORIGINS]),
    tokenTtlSeconds: Math.min(num(env, ENV.TOKEN_TTL_SECONDS, 3600), 86_400),
    ipTokenLimitPerMinute: num(env, ENV.IP_TOKEN_LIMIT_PER_MINUTE, 5),
    userTokenQuotaPerDay: num(env, ENV.USER_TOKEN_QUOTA_PER_DAY, 50),
    userCallQuotaPerDay: num(env, ENV.USER_CALL_QUOTA_PER_DAY, 100),
    dialPrefixes: list(env[ENV.DIAL_PREFIXES]),
    secretCacheTtlSeconds: num(env, ENV.SECRET_CACHE_TTL_SECONDS, 300),
    twilioApiBaseUrl: env[ENV.TWILIO_API_BASE_URL] || undefined,
    bindSessionToIp: flag(env[ENV.BIND_SESSION_TO_IP]),
    sessionCheck: flag(env[ENV.SESSION_CHECK]),
    sessionCheckUrl: `${supabaseUrl}/auth/v1/user`,
    supabaseAnonKey: env[ENV.SUPABASE_ANON_KEY] || undefined,
    statusCallbackUrl: env[ENV.STATUS_CALLBACK_URL] ?? '',
    concurrentCallLimit: num(env, ENV.CONCURRENT_CALL_LIMIT, 2),
    maxCallSeconds: num(env, ENV.MAX_CALL_SECONDS, 3600),
    statusLimitPerIpPerMinute: num(env, ENV.STATUS_LIMIT_PER_IP_PER_MINUTE, 600),
  };
}
