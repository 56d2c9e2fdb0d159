/**
 * The API's wire contract: error codes with their statuses and messages, and the headers every response
 * carries. Used by the Lambdas, by the stack's gateway responses and by the local gateway, so a response
 * looks the same whoever produces it. Pure constants: safe to import from CDK code and from bundles.
 */

export const ERRORS = {
  invalid_request: { status: 400, message: 'The request is malformed or has invalid fields.' },
  unauthenticated: { status: 401, message: 'Sign in again: the session is missing, expired or invalid.' },
  origin_not_allowed: { status: 403, message: 'This origin is not allowed to call the API.' },
  destination_not_allowed: { status: 403, message: 'Calls to this destination are not allowed.' },
  invalid_signature: { status: 403, message: 'The request signature is missing or invalid.' },
  call_not_found: { status: 404, message: 'No such call.' },
  not_found: { status: 404, message: 'No such route.' },
  method_not_allowed: { status: 405, message: 'This method is not allowed on this route.' },
  no_voice_session: { status: 409, message: 'Open a voice session first (POST /api/twilio/token).' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  unsupported_media_type: { status: 415, message: 'Send the body as application/json.' },
  rate_limited: { status: 429, message: 'Too many requests; retry after the time given in Retry-After.' },
  internal_error: { status: 500, message: 'Something went wrong on our side; try again later.' },
  upstream_error: { status: 502, message: 'The telephony provider failed; try again later.' },
  unavailable: { status: 503, message: 'The service is temporarily unavailable; try again later.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** The JSON body of every error response. */
export function errorBody(code: ErrorCode, message: string = ERRORS[code].message): string {
  return JSON.stringify({ error: { code, message } });
}

/** Headers on every response, success or error, from a Lambda or from API Gateway itself. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Strict-Transport-Security': 'max-age=63072000; includeSubDomains',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
};

/** A Twilio call SID, as the API takes and gives it. */
export const CALL_SID = /^CA[0-9a-f]{32}$/;
/** A phone number in E.164 form. */
export const E164 = /^\+[1-9]\d{6,14}$/;

/** Largest request body the handlers accept, in bytes ("a few KB"). */
export const MAX_BODY_BYTES = 4096;

/** Largest status callback body accepted: Twilio's form posts carry some 25 fields, well under this. */
export const MAX_CALLBACK_BODY_BYTES = 8192;

/** Largest `Authorization` header the authorizer looks at; longer ones are refused before any crypto. */
export const MAX_AUTHORIZATION_HEADER_BYTES = 4096;

/** Request headers a browser may send (answered in preflight). */
export const CORS_ALLOW_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key'] as const;
/** Response headers a browser may read. */
export const CORS_EXPOSE_HEADERS = ['Retry-After'] as const;
/** How long a browser may cache a preflight answer, in seconds. */
export const CORS_MAX_AGE_SECONDS = 600;

/** The authorizer context key holding the request's origin when, and only when, it is allowlisted. */
export const CORS_ORIGIN_CONTEXT_KEY = 'corsOrigin';
