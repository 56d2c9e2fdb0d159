import middy from '@middy/core';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { AWS_CLIENT_OPTIONS } from '../shared/aws';
import { loadConfig } from '../shared/config';
import { ApiError } from '../shared/errors';
import { isAllowedOrigin, readHeaders } from '../shared/http';
import { logger } from '../shared/logger';
import { CachedSecrets } from '../shared/secrets';
import { allow, deny } from './policy';
import { createVerifier } from './service';

const config = loadConfig();
const secrets = new CachedSecrets(new SecretsManagerClient(AWS_CLIENT_OPTIONS), config.secretCacheTtlSeconds * 1000);
const verify = createVerifier({
  issuer: config.issuer,
  jwksUrl: config.jwksUrl,
  ...(config.supabaseJwtSecretId ? { hsSecret: () => secrets.get(config.supabaseJwtSecretId!) } : {}),
});

/**
 * REQUEST authorizer. Rejections are explicit Denies (reported by API Gateway as the ACCESS_DENIED gateway
 * response, a 401 here); only a failure to decide (JWKS or Secrets Manager unreachable) throws, which API
 * Gateway reports as AUTHORIZER_FAILURE, a 503: fail closed.
 */
export const handler = middy<APIGatewayRequestAuthorizerEvent, APIGatewayAuthorizerResult>().handler(async (event) => {
  const { headers, duplicate } = readHeaders(event as Parameters<typeof readHeaders>[0]);
  const origin = headers['origin'];
  const corsOrigin = !duplicate.has('origin') && isAllowedOrigin(origin, config.allowedOrigins) ? origin : '';
  const sourceIp = event.requestContext?.identity?.sourceIp;
  const route = `${event.httpMethod} ${event.resource}`;

  // Could not decide (JWKS or Secrets Manager unreachable): API Gateway answers 503; say why in the log.
  const fail = (err: unknown): never => {
    logger.error('authorizer failure', { outcome: 'failed', reason: err instanceof ApiError ? err.reason : 'unexpected', sourceIp, route });
    throw err;
  };

  const verdict = await verify(headers['authorization'], duplicate.has('authorization')).catch(fail);
  if (!verdict.ok) {
    logger.warn('authorizer decision', { outcome: 'denied', reason: verdict.reason, sourceIp, route });
    return deny(event.methodArn, corsOrigin);
  }
  const usageKey = config.usageKeySecretId ? await secrets.get(config.usageKeySecretId).catch(fail) : undefined;
  logger.info('authorizer decision', { outcome: 'allowed', userId: verdict.session.userId, sourceIp, route });
  return allow(event.methodArn, verdict.session, corsOrigin, usageKey);
});
