import middy from '@middy/core';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { AWS_CLIENT_OPTIONS } from '../shared/aws';
import { loadConfig } from '../shared/config';
import { audit, observe } from '../shared/audit';
import { ApiError } from '../shared/errors';
import { readHeaders, readableOrigin } from '../shared/http';
import { CachedSecrets } from '../shared/secrets';
import { allow, deny } from './policy';
import { createVerifier } from './service';
import { createSessionCheck } from './session-check';

const config = loadConfig();
// Only the legacy HS256 secret is read from Secrets Manager, so only then is the SDK loaded (on first use;
// the stack leaves it out of the bundle otherwise).
const legacySecretId = config.supabaseJwtSecretId;
const secrets = legacySecretId
  ? new CachedSecrets(async () => new (await import('@aws-sdk/client-secrets-manager')).SecretsManagerClient(AWS_CLIENT_OPTIONS), config.secretCacheTtlSeconds * 1000)
  : undefined;
const verify = createVerifier({
  issuer: config.issuer,
  jwksUrl: config.jwksUrl,
  ...(secrets && legacySecretId ? { hsSecret: () => secrets.get(legacySecretId) } : {}),
  ...(config.sessionCheck ? { sessionCheck: createSessionCheck({ url: config.sessionCheckUrl, apiKey: config.supabaseAnonKey ?? '' }) } : {}),
});

/**
 * REQUEST authorizer. Rejections are explicit Denies (reported by API Gateway as the ACCESS_DENIED gateway
 * response, a 401 here); only a failure to decide (JWKS or Secrets Manager unreachable) throws, which API
 * Gateway reports as AUTHORIZER_FAILURE, a 503: fail closed.
 */
export const handler = middy<APIGatewayRequestAuthorizerEvent, APIGatewayAuthorizerResult>().use(observe()).handler(async (event, context) => {
  const parsed = readHeaders(event as Parameters<typeof readHeaders>[0]);
  const { headers, duplicate } = parsed;
  const corsOrigin = readableOrigin(parsed, config.allowedOrigins) ?? '';
  const sourceIp = event.requestContext?.identity?.sourceIp;
  const route = `${event.httpMethod} ${event.resource}`;
  const who = { operation: 'authorizer', route, sourceIp, requestId: event.requestContext?.requestId, lambdaRequestId: context.awsRequestId } as const;

  // Could not decide (JWKS or Secrets Manager unreachable): API Gateway answers 503; say why in the log.
  const fail = (err: unknown): never => {
    audit({ ...who, outcome: 'failed', reason: err instanceof ApiError ? err.reason : 'unexpected', status: 503 });
    throw err;
  };

  const verdict = await verify(headers['authorization'], duplicate.has('authorization')).catch(fail);
  if (!verdict.ok) {
    audit({ ...who, outcome: 'denied', reason: verdict.reason, status: 401 });
    return deny(event.methodArn, corsOrigin);
  }
  const usageKey = config.usageKey;
  audit({ ...who, outcome: 'allowed', reason: 'valid_session', userId: verdict.session.userId });
  return allow(event.methodArn, verdict.session, corsOrigin, usageKey);
});
