import type { APIGatewayAuthorizerResult } from 'aws-lambda';
import { CORS_ORIGIN_CONTEXT_KEY } from '../shared/contract';
import type { Session } from './service';

/**
 * Builds the authorizer's answer. An Allow covers every method and route of the stage, because API Gateway
 * caches the first answer for a token and reuses it for the other routes. A Deny carries the same flat
 * context shape so the gateway response can tell an allowlisted origin that it may read the 401.
 */
export function stageWildcardArn(methodArn: string): string {
  // arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{method}/{path…}
  const [prefix, stage] = methodArn.split('/');
  return `${prefix}/${stage}/*`;
}

export function allow(methodArn: string, session: Session, corsOrigin: string, usageKey: string | undefined): APIGatewayAuthorizerResult {
  return {
    principalId: session.userId,
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: stageWildcardArn(methodArn) }] },
    context: { userId: session.userId, sessionId: session.sessionId, exp: session.exp, aal: session.aal, [CORS_ORIGIN_CONTEXT_KEY]: corsOrigin },
    ...(usageKey ? { usageIdentifierKey: usageKey } : {}),
  };
}

export function deny(methodArn: string, corsOrigin: string): APIGatewayAuthorizerResult {
  return {
    principalId: 'unauthenticated',
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: stageWildcardArn(methodArn) }] },
    context: { [CORS_ORIGIN_CONTEXT_KEY]: corsOrigin },
  };
}
