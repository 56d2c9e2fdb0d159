import { Duration } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/shared/config';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../../lambdas/shared/observability';
import type { ServiceConfig } from '../config';
import type { FunctionName } from '../routes';
import { BaseFunction } from './base-function';
import type { Secrets } from './secrets';
import type { TokenTable } from './token-table';

/** Left out of the authorizer's bundle when no legacy JWT secret is configured (`npm run bench` builds the same). */
export const AUTHORIZER_EXTERNALS = ['@aws-sdk/client-secrets-manager'] as const;

/** How long the Lambdas cache a secret value before reading it again, seconds. */
export const SECRET_CACHE_TTL_SECONDS = 300;
/** Powertools service name and metrics namespace shared by all functions (logs and metrics group by it). */
export { METRICS_NAMESPACE, SERVICE_NAME };

export interface ServiceFunctionsProps {
  readonly config: ServiceConfig;
  readonly table: TokenTable;
  readonly secrets: Secrets;
}

/**
 * The authorizer, the three browser route handlers and Twilio's status-callback handler, each with its
 * environment (names, ARNs and limits, never secret values) and least-privilege grants:
 * - authorizer: read the usage-key secret and, if configured, the legacy JWT secret; no table access;
 * - token, voice, hangup: single-item reads and writes on the table, read the Twilio and
 *   encryption-key secrets;
 * - status: single-item reads and writes on the table, read the Twilio secret (its `authToken` checks
 *   `X-Twilio-Signature`); never the encryption keys: it does not touch stored tokens.
 *
 * `STATUS_CALLBACK_URL` depends on the API, which is built after the functions; the stack sets it with
 * `setStatusCallbackUrl` once the API exists.
 */
export class ServiceFunctions extends Construct {
  public readonly authorizer: BaseFunction;
  /** Route handlers by name, as `lib/routes.ts` refers to them. */
  public readonly handlers: Readonly<Record<FunctionName, BaseFunction>>;

  constructor(scope: Construct, id: string, props: ServiceFunctionsProps) {
    super(scope, id);
    const { config, table, secrets } = props;

    const common: Record<string, string> = {
      [ENV.SUPABASE_URL]: config.supabaseUrl,
      [ENV.ALLOWED_ORIGINS]: config.allowedOrigins.join(','),
      [ENV.SECRET_CACHE_TTL_SECONDS]: String(SECRET_CACHE_TTL_SECONDS),
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      POWERTOOLS_LOG_LEVEL: config.logLevel,
      // Share of invocations whose diagnostic logs are written at DEBUG (Powertools re-rolls it per invocation).
      POWERTOOLS_LOGGER_SAMPLE_RATE: String(config.debugLogSampleRate),
    };

    this.authorizer = new BaseFunction(this, 'Authorizer', {
      handlerDir: 'authorizer',
      description: 'Verifies the Supabase session and returns the usage-plan key for API Gateway',
      // Verifying one JWT with a cached JWKS is light work; 256 MB still gives enough CPU for ES256/RS256.
      memorySize: 256,
      // API Gateway waits for the authorizer on every uncached request; a slow JWKS fetch must fail fast.
      timeout: Duration.seconds(5),
      logRetentionDays: config.logRetentionDays,
      // Without the legacy secret it reads nothing from Secrets Manager, so the SDK stays out of its bundle.
      externalModules: secrets.legacyJwt ? [] : [...AUTHORIZER_EXTERNALS],
      environment: {
        ...common,
        // The usage-plan key is not a credential: the API's key source is AUTHORIZER, so API Gateway never
        // takes it from a client. CloudFormation resolves the secret into the variable at deploy time, so the
        // authorizer makes no Secrets Manager call for it (and the template holds only the reference).
        [ENV.USAGE_KEY]: secrets.usageKey.secretValue.unsafeUnwrap(),
        ...(secrets.legacyJwt ? { [ENV.SUPABASE_JWT_SECRET_ID]: secrets.legacyJwt.secretArn } : {}),
        // The anon key is public (every frontend embeds it); Supabase's auth API wants it beside the user's token.
        ...(config.onlineSessionCheck ? { [ENV.SESSION_CHECK]: 'true', [ENV.SUPABASE_ANON_KEY]: config.supabaseAnonKey ?? '' } : {}),
      },
    });
    secrets.legacyJwt?.grantRead(this.authorizer);

    const handlerEnv: Record<string, string> = {
      ...common,
      [ENV.TABLE_NAME]: table.table.tableName,
      [ENV.TWILIO_SECRET_ID]: secrets.twilio.secretArn,
      [ENV.ENCRYPTION_KEYS_SECRET_ID]: secrets.encryptionKeys.secretArn,
      [ENV.TOKEN_TTL_SECONDS]: String(config.tokenTtlSeconds),
      [ENV.IP_TOKEN_LIMIT_PER_MINUTE]: String(config.ipTokenLimitPerMinute),
      [ENV.USER_TOKEN_QUOTA_PER_DAY]: String(config.userTokenQuotaPerDay),
      [ENV.USER_CALL_QUOTA_PER_DAY]: String(config.userCallQuotaPerDay),
      [ENV.DIAL_PREFIXES]: config.dialPrefixes.join(','),
      [ENV.CONCURRENT_CALL_LIMIT]: String(config.concurrentCallLimit),
      [ENV.MAX_CALL_SECONDS]: String(config.maxCallSeconds),
      ...(config.bindSessionToIp ? { [ENV.BIND_SESSION_TO_IP]: 'true' } : {}),
    };
    const handler = (id: string, handlerDir: FunctionName, description: string): BaseFunction => {
      const fn = new BaseFunction(this, id, {
        handlerDir,
        description,
        // The Twilio SDK is the largest dependency; more memory means more CPU for its cold start and TLS.
        memorySize: 512,
        // Twilio calls usually take well under a second; 10 s leaves room for one retry and stays below
        // API Gateway's 29 s integration timeout, so the client gets our error rather than a gateway 504.
        timeout: Duration.seconds(10),
        logRetentionDays: config.logRetentionDays,
        environment: handlerEnv,
      });
      table.grantItemReadWrite(fn);
      secrets.twilio.grantRead(fn);
      secrets.encryptionKeys.grantRead(fn);
      return fn;
    };

    this.handlers = {
      token: handler('Token', 'token', 'Opens a voice session: mints, encrypts and stores the Twilio Access Token'),
      voice: handler('Voice', 'voice', 'Places a call through the Twilio REST API for the caller'),
      hangup: handler('Hangup', 'hangup', "Ends one of the caller's own calls"),
      status: this.statusFunction(config, table, secrets, common),
    };
  }

  private statusFunction(config: ServiceConfig, table: TokenTable, secrets: Secrets, common: Record<string, string>): BaseFunction {
    const fn = new BaseFunction(this, 'Status', {
      handlerDir: 'status',
      description: "Records Twilio's call status callbacks (signed with X-Twilio-Signature) on the caller's call record",
      // Form parsing, one HMAC-SHA1 and one conditional write; no Twilio SDK client, so 256 MB is plenty.
      memorySize: 256,
      timeout: Duration.seconds(10),
      logRetentionDays: config.logRetentionDays,
      environment: {
        ...common,
        [ENV.TABLE_NAME]: table.table.tableName,
        [ENV.TWILIO_SECRET_ID]: secrets.twilio.secretArn,
        [ENV.STATUS_LIMIT_PER_IP_PER_MINUTE]: String(config.statusLimitPerIpPerMinute),
      },
    });
    table.grantItemReadWrite(fn);
    secrets.twilio.grantRead(fn);
    return fn;
  }

  /**
   * Gives the functions that need it the public URL of the status callback route: the voice function
   * (Twilio's `statusCallback` of each call) and the status function (the URL signatures are checked
   * against). Called by the stack after the API is built.
   */
  public setStatusCallbackUrl(url: string): void {
    for (const fn of [this.handlers.voice, this.handlers.status]) fn.addEnvironment(ENV.STATUS_CALLBACK_URL, url);
  }

  /** All five functions, for outputs and monitoring. */
  public get all(): readonly BaseFunction[] {
    return [this.authorizer, ...Object.values(this.handlers)];
  }
}
