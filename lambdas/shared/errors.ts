import { ERRORS, type ErrorCode } from './contract';

/**
 * The one error type services throw. Each subclass is a contract error code; the http middleware maps it
 * to its status and JSON body. `cause` keeps the underlying error for the log, never for the response.
 */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds, sent as `Retry-After` (429, 503). */
  readonly retryAfter: number | undefined;
  /** Short machine-readable reason for logs and metrics (never sent to the caller). */
  readonly reason: string;

  constructor(code: ErrorCode, opts: { reason?: string; retryAfter?: number; cause?: unknown; message?: string } = {}) {
    super(opts.message ?? ERRORS[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = ERRORS[code].status;
    this.retryAfter = opts.retryAfter;
    this.reason = opts.reason ?? code;
  }
}

type Opts = ConstructorParameters<typeof ApiError>[1];
const kind = (code: ErrorCode) =>
  class extends ApiError {
    constructor(opts?: Opts) {
      super(code, opts);
    }
  };

export class InvalidRequestError extends kind('invalid_request') {}
export class UnauthenticatedError extends kind('unauthenticated') {}
export class OriginNotAllowedError extends kind('origin_not_allowed') {}
export class DestinationNotAllowedError extends kind('destination_not_allowed') {}
export class ForbiddenSignatureError extends kind('invalid_signature') {}
export class CallNotFoundError extends kind('call_not_found') {}
export class MethodNotAllowedError extends kind('method_not_allowed') {}
export class NoVoiceSessionError extends kind('no_voice_session') {}
export class PayloadTooLargeError extends kind('payload_too_large') {}
export class UnsupportedMediaTypeError extends kind('unsupported_media_type') {}
export class UpstreamError extends kind('upstream_error') {}
export class UnavailableError extends kind('unavailable') {}

export class RateLimitedError extends ApiError {
  constructor(retryAfter: number, reason: string) {
    super('rate_limited', { retryAfter: Math.max(1, Math.ceil(retryAfter)), reason });
  }
}
