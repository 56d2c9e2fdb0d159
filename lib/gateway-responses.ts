import { CORS_EXPOSE_HEADERS, CORS_ORIGIN_CONTEXT_KEY, ERRORS, SECURITY_HEADERS, errorBody, type ErrorCode } from '../lambdas/shared/contract';

/**
 * API Gateway's own responses (authorizer rejections, throttling, defaults), as data. The stack turns each
 * entry into an `AWS::ApiGateway::GatewayResponse`; the local gateway renders the same entries with the
 * same mapping rules, so local behaviour cannot drift from the deployed one.
 *
 * CORS on these responses: a gateway response can map headers only from static values, request
 * parameters and context variables; its body template is plain substitution, not VTL. So it cannot
 * compare the `Origin` header with the allowlist itself. The authorizer does that: it puts the request's
 * origin into its context as `corsOrigin` only when the origin is allowlisted (empty otherwise), and
 * `Access-Control-Allow-Origin` is mapped from `context.authorizer.corsOrigin`. An allowed origin can
 * therefore read a 401 from the authorizer; a foreign one gets no usable `Access-Control-Allow-Origin`.
 * Where API Gateway answers before the authorizer runs (no `Authorization` header at all, stage
 * throttling, unknown route), the context is empty and no origin is allowed to read the answer.
 */

export type GatewayResponseType =
  | 'UNAUTHORIZED'
  | 'ACCESS_DENIED'
  | 'AUTHORIZER_FAILURE'
  | 'AUTHORIZER_CONFIGURATION_ERROR'
  | 'THROTTLED'
  | 'QUOTA_EXCEEDED'
  | 'BAD_REQUEST_BODY'
  | 'BAD_REQUEST_PARAMETERS'
  | 'REQUEST_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'MISSING_AUTHENTICATION_TOKEN'
  | 'INVALID_API_KEY'
  | 'INTEGRATION_FAILURE'
  | 'INTEGRATION_TIMEOUT'
  | 'DEFAULT_4XX'
  | 'DEFAULT_5XX';

export interface GatewayResponseDef {
  readonly type: GatewayResponseType;
  /** Status override; undefined keeps API Gateway's own status (the DEFAULT_* types). */
  readonly statusCode?: string;
  readonly code: ErrorCode;
  /** Extra static headers (e.g. Retry-After). */
  readonly headers?: Readonly<Record<string, string>>;
}

const def = (type: GatewayResponseType, code: ErrorCode, headers?: Record<string, string>, keepStatus = false): GatewayResponseDef => ({
  type,
  code,
  ...(keepStatus ? {} : { statusCode: String(ERRORS[code].status) }),
  ...(headers ? { headers } : {}),
});

export const GATEWAY_RESPONSES: readonly GatewayResponseDef[] = [
  def('UNAUTHORIZED', 'unauthenticated'),
  // The authorizer answers every rejected session with an explicit Deny (so its context can carry
  // `corsOrigin`); API Gateway reports a Deny as ACCESS_DENIED, which the contract calls a 401.
  def('ACCESS_DENIED', 'unauthenticated'),
  // The authorizer could not decide (JWKS or Secrets Manager unreachable): fail closed.
  def('AUTHORIZER_FAILURE', 'unavailable'),
  def('AUTHORIZER_CONFIGURATION_ERROR', 'unavailable'),
  def('THROTTLED', 'rate_limited', { 'Retry-After': '1' }),
  def('QUOTA_EXCEEDED', 'rate_limited', { 'Retry-After': '3600' }),
  def('BAD_REQUEST_BODY', 'invalid_request'),
  def('BAD_REQUEST_PARAMETERS', 'invalid_request'),
  def('REQUEST_TOO_LARGE', 'payload_too_large'),
  def('UNSUPPORTED_MEDIA_TYPE', 'unsupported_media_type'),
  // A REST API answers an unknown path or method with "Missing Authentication Token": say what it is.
  def('MISSING_AUTHENTICATION_TOKEN', 'not_found'),
  // The usage key comes from the authorizer; a missing one is our fault, not the caller's.
  def('INVALID_API_KEY', 'unavailable'),
  def('INTEGRATION_FAILURE', 'unavailable'),
  def('INTEGRATION_TIMEOUT', 'unavailable'),
  def('DEFAULT_4XX', 'invalid_request', undefined, true),
  def('DEFAULT_5XX', 'internal_error', undefined, true),
];

export { CORS_ORIGIN_CONTEXT_KEY };

/**
 * Header mappings in API Gateway's syntax: `'static'` values in single quotes, or a context variable.
 * The local gateway interprets exactly these expressions.
 */
export function gatewayResponseHeaders(d: GatewayResponseDef): Record<string, string> {
  const quoted = (v: string) => `'${v}'`;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...SECURITY_HEADERS, ...(d.headers ?? {}) })) headers[k] = quoted(v);
  headers['Vary'] = quoted('Origin');
  headers['Access-Control-Allow-Origin'] = `context.authorizer.${CORS_ORIGIN_CONTEXT_KEY}`;
  // Only responses with a Retry-After need to expose it. The value is static (a gateway response cannot
  // make it conditional), and without a matching Access-Control-Allow-Origin a browser ignores it.
  if (d.headers?.['Retry-After']) headers['Access-Control-Expose-Headers'] = quoted(CORS_EXPOSE_HEADERS.join(', '));
  return headers;
}

/** The body template (plain JSON: gateway response templates are substitution only, not VTL). */
export function gatewayResponseTemplate(d: GatewayResponseDef): string {
  return errorBody(d.code);
}
