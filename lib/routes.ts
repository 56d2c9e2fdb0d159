/**
 * The route table: the one source of truth for what the API serves. The CDK stack builds API Gateway
 * resources and methods from it, and the local gateway dispatches requests with it, so the two cannot drift.
 */

/** The Lambda functions behind the API (the authorizer is not a route target). */
export type FunctionName = 'token' | 'voice' | 'hangup' | 'status';

export interface Route {
  /** HTTP method as API Gateway spells it. */
  readonly method: 'POST' | 'DELETE' | 'GET';
  /** Resource path below the stage, always starting with `/api/twilio/`. */
  readonly path: string;
  /** The function that serves the route. */
  readonly fn: FunctionName;
  /**
   * Whether the Supabase Lambda authorizer guards the route (browser routes, with CORS preflight). The one
   * route that is not, Twilio's status callback, proves itself with `X-Twilio-Signature` instead.
   */
  readonly authorized: boolean;
  /** Query parameters a GET requires (API Gateway refuses a request without them). */
  readonly query?: readonly string[];
  /** Name of the API Gateway request model that validates the body, if API Gateway can do it. */
  readonly model?: 'TokenRequest' | 'VoiceRequest' | 'HangupRequest';
}

export const ROUTES: readonly Route[] = [
  { method: 'POST', path: '/api/twilio/token', fn: 'token', authorized: true, model: 'TokenRequest' },
  { method: 'POST', path: '/api/twilio/voice', fn: 'voice', authorized: true, model: 'VoiceRequest' },
  { method: 'POST', path: '/api/twilio/hangup', fn: 'hangup', authorized: true, model: 'HangupRequest' },
  { method: 'DELETE', path: '/api/twilio/token', fn: 'token', authorized: true },
  { method: 'GET', path: '/api/twilio/voice', fn: 'voice', authorized: true, query: ['callSid'] },
  { method: 'POST', path: '/api/twilio/status', fn: 'status', authorized: false },
];

/** The path Twilio's status callbacks are sent to (below the public base URL). */
export const STATUS_CALLBACK_PATH = '/api/twilio/status';

/**
 * Distinct resource paths of the browser routes; each gets an `OPTIONS` preflight method served by the
 * route's function. Twilio's callback path has none: no browser may call it.
 */
export const RESOURCE_PATHS: readonly string[] = [...new Set(ROUTES.filter((r) => r.authorized).map((r) => r.path))];

export { CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECONDS } from '../lambdas/shared/contract';

/** Finds the route for a method and path, or undefined. */
export function findRoute(method: string, path: string): Route | undefined {
  return ROUTES.find((r) => r.method === method && r.path === path);
}

/** Methods served on a path (for `Access-Control-Allow-Methods` and 405 answers). */
export function methodsFor(path: string): string[] {
  return ROUTES.filter((r) => r.path === path).map((r) => r.method);
}
