import { randomBytes, randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { type Keyring, parseKeyring } from '../../lambdas/shared/crypto';
import type { TwilioCredentials } from '../../lambdas/shared/twilio';

/** Twilio credentials shaped like real ones, generated per test run (an auth token included, for callbacks). */
export function testTwilioCredentials(): TwilioCredentials & { readonly authToken: string } {
  return {
    accountSid: `AC${randomBytes(16).toString('hex')}`,
    apiKeySid: `SK${randomBytes(16).toString('hex')}`,
    apiKeySecret: randomBytes(16).toString('hex'),
    twimlAppSid: `AP${randomBytes(16).toString('hex')}`,
    callerId: '+15005550006',
    authToken: randomBytes(16).toString('hex'),
  };
}

/** A keyring with one fresh AES-256 key, version v1. */
export function testKeyring(): Keyring {
  return parseKeyring(JSON.stringify({ current: 'v1', keys: { v1: randomBytes(32).toString('base64') } }));
}

/** An API Gateway REST proxy event as the handlers receive it: headers and query also in their multi-value forms. */
export function proxyEvent(o: {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | null;
  readonly query?: Readonly<Record<string, readonly string[]>> | null;
  readonly sourceIp: string;
  /** The authorizer's context; absent on routes without the authorizer. */
  readonly authorizer?: Readonly<Record<string, unknown>>;
}): APIGatewayProxyEvent {
  const headers = { ...(o.headers ?? {}) };
  return {
    httpMethod: o.method,
    resource: o.path,
    path: o.path,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: o.query ? Object.fromEntries(Object.entries(o.query).map(([k, v]) => [k, v[v.length - 1]])) : null,
    multiValueQueryStringParameters: o.query ?? null,
    body: o.body ?? null,
    isBase64Encoded: false,
    requestContext: { requestId: randomUUID(), identity: { sourceIp: o.sourceIp }, ...(o.authorizer ? { authorizer: o.authorizer } : {}) },
  } as unknown as APIGatewayProxyEvent;
}
