import middy from '@middy/core';
import httpCors from '@middy/http-cors';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import * as z from 'zod/mini';
import { CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECONDS, MAX_BODY_BYTES, MAX_CALLBACK_BODY_BYTES, SECURITY_HEADERS, errorBody } from './contract';
import {
  ApiError,
  InvalidRequestError,
  OriginNotAllowedError,
  PayloadTooLargeError,
  UnauthenticatedError,
  UnsupportedMediaTypeError,
} from './errors';
import { audit, observe } from './audit';
import { OUTCOME, type Operation, type Outcome } from './observability';

/** Who is calling, as the authorizer vouched for it (flat context: strings and numbers). */
export interface Caller {
  readonly userId: string;
  readonly sessionId: string;
  /** Expiry of the Supabase session, epoch seconds. */
  readonly exp: number;
  /** API Gateway's `requestContext.identity.sourceIp`; never a client header. */
  readonly sourceIp: string;
}

export interface ApiRequest<B> {
  /** `POST` or `DELETE` (the route table's methods). */
  readonly method: string;
  readonly body: B;
  readonly caller: Caller;
  readonly headers: Readonly<Record<string, string>>;
  readonly requestId: string;
}

export interface ApiResponse {
  readonly status: number;
  readonly body?: unknown;
  /**
   * What the request did, for its audit line: outcome, reason code and non-secret details (a call SID, a
   * masked number). Default: outcome `issued`, reason `ok`.
   */
  readonly audit?: {
    readonly outcome: Outcome;
    readonly reason: string;
    /** Whom the request concerned, when no authorizer said so (a status callback names the call's owner). */
    readonly userId?: string;
    readonly detail?: Readonly<Record<string, string | number | undefined>>;
  };
}

type Event = APIGatewayProxyEvent;
type Result = APIGatewayProxyResult;

/**
 * Headers by lower-case name (the last value), and the names sent more than once. Names are compared
 * case-insensitively, so `authorization` and `AUTHORIZATION` are one header sent twice. API Gateway puts
 * every value in `multiValueHeaders`; `headers` alone is used when that is absent.
 */
export function readHeaders(event: Pick<Event, 'headers' | 'multiValueHeaders'>): { headers: Record<string, string>; duplicate: Set<string> } {
  const values = new Map<string, string[]>();
  const multi = Object.entries(event.multiValueHeaders ?? {});
  const entries: [string, string][] = multi.length
    ? multi.flatMap(([k, v]) => (Array.isArray(v) ? v.map((x): [string, string] => [k, String(x)]) : []))
    : Object.entries(event.headers ?? {}).flatMap(([k, v]): [string, string][] => (typeof v === 'string' ? [[k, v]] : []));
  for (const [k, v] of entries) {
    const name = k.toLowerCase();
    values.set(name, [...(values.get(name) ?? []), v]);
  }
  const headers: Record<string, string> = {};
  const duplicate = new Set<string>();
  for (const [name, list] of values) {
    headers[name] = list[list.length - 1]!;
    if (list.length > 1) duplicate.add(name);
  }
  return { headers, duplicate };
}

/** Headers whose meaning would be ambiguous if sent twice: refused rather than guessed. */
const SINGLE_VALUED = ['content-type', 'idempotency-key'];

/** Exact allowlist: an origin is allowed only if it is, byte for byte, one of the configured ones. */
export function isAllowedOrigin(origin: string | undefined, allowed: readonly string[]): origin is string {
  return origin !== undefined && allowed.includes(origin);
}

/** Refuses a request whose `Origin` is not on the allowlist, before anything else runs (CSRF guard). */
const originGuard = (allowed: readonly string[]): middy.MiddlewareObj<Event, Result> => ({
  before: (request) => {
    const parsed = readHeaders(request.event);
    if (parsed.headers['origin'] !== undefined && readableOrigin(parsed, allowed) === undefined) {
      throw new OriginNotAllowedError({ reason: 'origin_not_allowed' });
    }
  },
});

/**
 * The request's origin when exactly one `Origin` header names an allowlisted origin, else undefined: the one
 * rule for who may read a response, used by the handlers' CORS and by the authorizer's `corsOrigin`.
 */
export function readableOrigin({ headers, duplicate }: ReturnType<typeof readHeaders>, allowed: readonly string[]): string | undefined {
  const origin = headers['origin'];
  return !duplicate.has('origin') && isAllowedOrigin(origin, allowed) ? origin : undefined;
}

/**
 * Security headers and `Vary: Origin` on every response, success or error; and the last word on CORS: a
 * response that no origin may read (foreign, duplicated or absent `Origin`) leaves with no CORS header.
 */
const responseHeaders = (allowed: readonly string[]): middy.MiddlewareObj<Event, Result> => {
  const apply = (request: middy.Request<Event, Result>) => {
    if (!request.response) return;
    const headers = { ...(request.response.headers ?? {}) } as Record<string, string | number | boolean>;
    if (readableOrigin(readHeaders(request.event), allowed) === undefined) {
      for (const k of Object.keys(headers)) if (k.toLowerCase().startsWith('access-control-')) delete headers[k];
    }
    Object.assign(headers, SECURITY_HEADERS);
    if (!Object.keys(headers).some((k) => k.toLowerCase() === 'vary')) headers['Vary'] = 'Origin';
    request.response = { ...request.response, headers };
  };
  return { after: apply, onError: apply };
};

/** The audit line's who/where fields for a proxy event; `userId` only as the authorizer vouched for it. */
function auditContext(event: Event, context: Context) {
  const resource = event.resource ?? event.path ?? '';
  return {
    operation: (resource.split('/').pop() ?? '') as Operation,
    route: `${event.httpMethod} ${resource}`,
    requestId: event.requestContext?.requestId,
    lambdaRequestId: context.awsRequestId,
    userId: event.requestContext?.authorizer?.['userId'] as string | undefined,
    sourceIp: event.requestContext?.identity?.sourceIp,
  };
}

/** The audit outcome of a refusal: 429 limited, other 401/403 denied, other 4xx rejected, 5xx failed. */
function outcomeOf(status: number): Outcome {
  if (status === 429) return OUTCOME.limited;
  if (status >= 500) return OUTCOME.failed;
  return status === 401 || status === 403 ? OUTCOME.denied : OUTCOME.rejected;
}

/**
 * Maps every error to the JSON contract: ApiError by its code, anything else to a generic 500 with the
 * details in the audit line only.
 */
const errorMapper = (): middy.MiddlewareObj<Event, Result> => ({
  onError: (request) => {
    const err = request.error;
    const who = auditContext(request.event, request.context);
    if (err instanceof ApiError) {
      audit({ ...who, outcome: outcomeOf(err.status), reason: err.reason, status: err.status, detail: { code: err.code, cause: describeCause(err.cause) } });
      request.response = {
        statusCode: err.status,
        headers: { 'Content-Type': 'application/json', ...(err.retryAfter ? { 'Retry-After': String(err.retryAfter) } : {}) },
        body: errorBody(err.code, err.message),
      };
      return;
    }
    audit({ ...who, outcome: OUTCOME.failed, reason: 'unexpected', status: 500, detail: { code: 'internal_error', cause: describeCause(err) } });
    request.response = { statusCode: 500, headers: { 'Content-Type': 'application/json' }, body: errorBody('internal_error') };
  },
});

/** Name and message of an error chain for the log; never request data or the error's own properties. */
function describeCause(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const parts: string[] = [];
  for (let e: unknown = err, i = 0; e instanceof Error && i < 4; e = e.cause, i++) parts.push(`${e.name}: ${e.message}`);
  return parts.join(' <- ');
}

function parseBody<B>(event: Event, headers: Record<string, string>, schema: z.core.$ZodType<B>, fieldHelp: Record<string, string>): B {
  const bytes = bodyBytes(event);
  if (bytes.length > MAX_BODY_BYTES) throw new PayloadTooLargeError();
  let value: unknown = {};
  if (bytes.length > 0) {
    const [type, ...params] = (headers['content-type'] ?? '').split(';').map((p) => p.trim().toLowerCase());
    // JSON is UTF-8 (RFC 8259); a body declared in another charset would be read wrongly.
    const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
    if (type !== 'application/json' || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) throw new UnsupportedMediaTypeError();
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new InvalidRequestError({ reason: 'malformed_json', message: 'The body is not valid JSON.' });
    }
  }
  return validate(value, schema, fieldHelp, 'The body must be a JSON object with the documented fields.');
}

/**
 * A GET request's input: its query parameters, each given once, and no body. Validated like a body, so the
 * logic receives the same typed object whichever way the input came.
 */
function parseQuery<B>(event: Event, schema: z.core.$ZodType<B>, fieldHelp: Record<string, string>): B {
  if ((event.body ?? '').length > 0) throw new InvalidRequestError({ reason: 'body_on_get', message: 'A GET request takes no body.' });
  const { query, repeated } = readQuery(event);
  if (repeated[0] !== undefined) throw new InvalidRequestError({ reason: 'duplicate_query', message: `The query parameter "${repeated[0].slice(0, 40)}" was sent more than once.` });
  return validate(query, schema, fieldHelp, 'The query must carry the documented parameters.');
}

/** Query parameters given once, by name, and the names given more than once (like `readHeaders`). */
function readQuery(event: Pick<Event, 'queryStringParameters' | 'multiValueQueryStringParameters'>): { query: Record<string, string>; repeated: string[] } {
  const query: Record<string, string> = {};
  const repeated: string[] = [];
  if (!event.multiValueQueryStringParameters) return { query: { ...(event.queryStringParameters ?? {}) } as Record<string, string>, repeated };
  for (const [k, values] of Object.entries(event.multiValueQueryStringParameters)) {
    if ((values?.length ?? 0) > 1) repeated.push(k);
    else if (values?.length) query[k] = values[0]!;
  }
  return { query, repeated };
}

/** The request body's bytes, decoded when API Gateway sent it base64-encoded. */
const bodyBytes = (event: Pick<Event, 'body' | 'isBase64Encoded'>) => Buffer.from(event.body ?? '', event.isBase64Encoded ? 'base64' : 'utf8');

function validate<B>(value: unknown, schema: z.core.$ZodType<B>, fieldHelp: Record<string, string>, fallback: string): B {
  const parsed = z.safeParse(schema, value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue?.code === 'unrecognized_keys') {
    throw new InvalidRequestError({ reason: 'unknown_field', message: `Unknown field "${String(issue.keys[0]).slice(0, 40)}".` });
  }
  const field = issue?.path[0];
  const help = typeof field === 'string' ? fieldHelp[field] : undefined;
  throw new InvalidRequestError({ reason: 'invalid_field', message: help ?? fallback });
}

function callerOf(event: Event, now: number): Caller {
  const ctx = event.requestContext?.authorizer ?? {};
  const userId = ctx['userId'];
  const exp = Number(ctx['exp']);
  // A cached Allow can outlive the session it was issued for: re-check expiry on every request.
  if (typeof userId !== 'string' || !userId || !Number.isFinite(exp) || exp * 1000 <= now) {
    throw new UnauthenticatedError({ reason: !userId ? 'no_authorizer_context' : 'session_expired' });
  }
  return { userId, sessionId: String(ctx['sessionId'] ?? ''), exp, sourceIp: event.requestContext.identity.sourceIp };
}

export interface HandlerOptions<B> {
  readonly allowedOrigins: readonly string[];
  /** Body schema (zod/mini keeps bundles small; full zod schemas work too). */
  readonly schema: z.core.$ZodType<B>;
  /** One human sentence per body field, used when that field is invalid. */
  readonly fieldHelp?: Record<string, string>;
  /** Methods the route's path serves (for preflight). Default `POST`. */
  readonly methods?: readonly string[];
  /** The query parameters of a GET on the route's path, validated into the same input type as the body. */
  readonly querySchema?: z.core.$ZodType<B>;
  readonly now?: () => number;
}

/**
 * Builds an API handler: middlewares first, the route's logic last. Preflight (`OPTIONS`) is answered
 * here without touching the logic; the authorizer never sees it.
 */
export function apiHandler<B>(opts: HandlerOptions<B>, logic: (req: ApiRequest<B>) => Promise<ApiResponse>) {
  const now = opts.now ?? Date.now;
  return middy<Event, Result>()
    // Outermost: cold start and sampling first, metrics flushed after the audit line of any outcome.
    .use(observe<Event, Result>())
    .use(responseHeaders(opts.allowedOrigins))
    .use(originGuard(opts.allowedOrigins))
    .use(
      httpCors({
        origins: [...opts.allowedOrigins],
        // Our exact match, not http-cors's object lookup (which would match names like `constructor`).
        // Its typing says string; an empty one sets no header.
        getOrigin: (incoming: string) => (isAllowedOrigin(incoming, opts.allowedOrigins) ? incoming : ''),
        methods: [...(opts.methods ?? ['POST']), 'OPTIONS'].join(','),
        headers: CORS_ALLOW_HEADERS.join(','),
        exposeHeaders: CORS_EXPOSE_HEADERS.join(','),
        maxAge: CORS_MAX_AGE_SECONDS,
      }),
    )
    .use(errorMapper())
    .handler(async (event: Event, context: Context): Promise<Result> => {
      if (event.httpMethod === 'OPTIONS') return { statusCode: 204, headers: {}, body: '' };
      const { headers, duplicate } = readHeaders(event);
      const caller = callerOf(event, now());
      const twice = SINGLE_VALUED.find((h) => duplicate.has(h));
      if (twice) throw new InvalidRequestError({ reason: 'duplicate_header', message: `The ${twice} header was sent more than once.` });
      const body = event.httpMethod === 'GET' && opts.querySchema ? parseQuery(event, opts.querySchema, opts.fieldHelp ?? {}) : parseBody(event, headers, opts.schema, opts.fieldHelp ?? {});
      const res = await logic({ method: event.httpMethod, body, caller, headers, requestId: context.awsRequestId });
      return respond(event, context, res);
    });
}

/** Writes the audit line of a handled request and shapes its response. */
function respond(event: Event, context: Context, res: ApiResponse): Result {
  const who = auditContext(event, context);
  audit({ ...who, userId: res.audit?.userId ?? who.userId, outcome: res.audit?.outcome ?? OUTCOME.issued, reason: res.audit?.reason ?? 'ok', status: res.status, detail: res.audit?.detail });
  return res.body === undefined
    ? { statusCode: res.status, headers: {}, body: '' }
    : { statusCode: res.status, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(res.body) };
}

/** A webhook request as the route's logic sees it: form parameters in order, headers, query and source IP. */
export interface WebhookRequest {
  readonly params: readonly (readonly [string, string])[];
  readonly headers: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
  readonly sourceIp: string;
}

/** Most form parameters a webhook body may carry (Twilio's status callbacks carry some 25). */
const MAX_FORM_PARAMS = 100;

/**
 * Builds the handler of a server-to-server webhook (Twilio's status callback): form-encoded body, no
 * authorizer, no CORS. Any `Origin` header is refused (403): no browser has business here. The logic
 * authenticates the request itself (signature). Same security headers, error contract and audit line as
 * every other route.
 */
export function webhookHandler(logic: (req: WebhookRequest) => Promise<ApiResponse>) {
  return middy<Event, Result>()
    .use(observe<Event, Result>())
    .use(responseHeaders([]))
    .use(originGuard([]))
    .use(errorMapper())
    .handler(async (event: Event, context: Context): Promise<Result> => {
      const { headers, duplicate } = readHeaders(event);
      const twice = ['content-type', 'x-twilio-signature', 'x-twilio-webhooks-signature-settings'].find((h) => duplicate.has(h));
      if (twice) throw new InvalidRequestError({ reason: 'duplicate_header', message: `The ${twice} header was sent more than once.` });
      const bytes = bodyBytes(event);
      if (bytes.length > MAX_CALLBACK_BODY_BYTES) throw new PayloadTooLargeError();
      const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/x-www-form-urlencoded') {
        throw new UnsupportedMediaTypeError({ message: 'Send the body as application/x-www-form-urlencoded.' });
      }
      const params = [...new URLSearchParams(bytes.toString('utf8'))];
      if (params.length > MAX_FORM_PARAMS) throw new PayloadTooLargeError({ reason: 'too_many_params' });
      const { query, repeated } = readQuery(event);
      // A repeated query parameter cannot be the URL we gave Twilio: keep a marker the signature check fails on.
      for (const k of repeated) query[k] = '\u0000';
      const res = await logic({ params, headers, query, sourceIp: event.requestContext.identity.sourceIp });
      return respond(event, context, res);
    });
}
