import { createHash, randomUUID } from 'node:crypto';
import { type IncomingMessage, STATUS_CODES, type Server, type ServerResponse, createServer } from 'node:http';
import type { APIGatewayAuthorizerResult, APIGatewayProxyEvent, APIGatewayProxyResult, APIGatewayRequestAuthorizerEvent, Context } from 'aws-lambda';
import { SECURITY_HEADERS } from '../lambdas/shared/contract';
import { GATEWAY_RESPONSES, type GatewayResponseType, gatewayResponseHeaders, gatewayResponseTemplate } from '../lib/gateway-responses';
import { type FunctionName, RESOURCE_PATHS, findRoute } from '../lib/routes';
import { readBody } from './http-util';

/**
 * The local stand-in for API Gateway's REST API: the same route table as the stack, the same REQUEST
 * authorizer contract (identity source `Authorization`, result cache keyed by it, Allow/Deny policies),
 * the same gateway response definitions, Lambda proxy events, and JSON access log lines. The socket's
 * remote address stands for `requestContext.identity.sourceIp`.
 *
 * Not emulated: stage throttling and the usage plan (API Gateway features with no application logic),
 * and request-model validation (the handlers enforce the same rules themselves).
 */

type ProxyHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
type AuthorizerHandler = (event: APIGatewayRequestAuthorizerEvent, context: Context) => Promise<APIGatewayAuthorizerResult>;

export interface GatewayOptions {
  readonly functions: Readonly<Record<FunctionName, ProxyHandler>>;
  readonly authorizer: AuthorizerHandler;
  /** Authorizer result cache TTL, seconds (0 disables). */
  readonly authorizerCacheTtlSeconds: number;
  readonly stage: string;
  /** Extra GET routes served as-is (the issuer's JWKS). */
  readonly staticRoutes: Readonly<Record<string, () => { contentType: string; body: string }>>;
  /** Writes one access log line (JSON). */
  readonly accessLog: (line: string) => void;
}

/** API Gateway's payload limit for REST APIs is 10 MB; locally 1 MB is plenty and bounds memory. */
const MAX_PAYLOAD_BYTES = 1024 * 1024;
const API_ID = 'local';
const ACCOUNT = '000000000000';

function lambdaContext(name: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${name}`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** IAM-style wildcard match of an execute-api ARN (`*` matches any run of characters, `/` included). */
export function arnMatches(pattern: string, arn: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === arn;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (!arn.startsWith(first) || !arn.endsWith(last) || arn.length < first.length + last.length) return false;
  let at = first.length;
  for (const middle of parts.slice(1, -1)) {
    const found = arn.indexOf(middle, at);
    if (found < 0 || found + middle.length > arn.length - last.length) return false;
    at = found + middle.length;
  }
  return true;
}

function policyAllows(result: APIGatewayAuthorizerResult, methodArn: string): boolean {
  let allowed = false;
  for (const st of result.policyDocument?.Statement ?? []) {
    const s = st as { Effect: string; Resource?: string | string[] };
    const resources = Array.isArray(s.Resource) ? s.Resource : [s.Resource ?? ''];
    if (!resources.some((r) => arnMatches(r, methodArn))) continue;
    if (s.Effect === 'Deny') return false; // an explicit Deny always wins
    if (s.Effect === 'Allow') allowed = true;
  }
  return allowed;
}

export function createGateway(o: GatewayOptions): Server {
  const cache = new Map<string, { result: APIGatewayAuthorizerResult; until: number }>();

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      o.accessLog(JSON.stringify({ gatewayError: err instanceof Error ? err.name : 'unknown' }));
      if (!res.headersSent) send(res, 'DEFAULT_5XX', 500, {});
    });
  });
  // A request that never finishes its headers or body is cut off, not held open for Node's 5-minute default.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  // Requests Node cannot even parse (bad request line, oversized headers, conflicting lengths) still get
  // the contract's JSON and headers, not a bare status line.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const body = gatewayResponseTemplate(GATEWAY_RESPONSES.find((d) => d.type === 'DEFAULT_4XX')!);
    const headers = { ...SECURITY_HEADERS, Vary: 'Origin', 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' };
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`);
  });
  return server;

  function send(res: ServerResponse, type: GatewayResponseType, fallbackStatus: number, authorizerContext: Record<string, unknown>): number {
    const def = GATEWAY_RESPONSES.find((d) => d.type === type) ?? GATEWAY_RESPONSES.find((d) => d.type === (fallbackStatus >= 500 ? 'DEFAULT_5XX' : 'DEFAULT_4XX'))!;
    const status = Number(def.statusCode ?? fallbackStatus);
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    for (const [name, expr] of Object.entries(gatewayResponseHeaders(def))) {
      const value = resolveMapping(expr, authorizerContext);
      if (value) headers[name] = value; // an empty mapped value sends no header
    }
    res.writeHead(status, headers);
    res.end(gatewayResponseTemplate(def));
    return status;
  }

  /** Interprets API Gateway's header mapping expressions: `'static'` or `context.authorizer.<key>`. */
  function resolveMapping(expr: string, authorizerContext: Record<string, unknown>): string {
    if (expr.startsWith("'") && expr.endsWith("'")) return expr.slice(1, -1);
    const m = /^context\.authorizer\.(\w+)$/.exec(expr);
    if (m) return String(authorizerContext[m[1]!] ?? '');
    throw new Error(`unsupported mapping expression ${expr}`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const requestId = randomUUID();
    const sourceIp = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const method = req.method ?? 'GET';
    // The path is matched as sent, like API Gateway: no dot-segment or percent-decoding normalisation.
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    const queryPairs = [...new URLSearchParams(q < 0 ? '' : target.slice(q + 1))];
    const query = Object.fromEntries(queryPairs);
    const multiQuery: Record<string, string[]> = {};
    for (const [k, v] of queryPairs) (multiQuery[k] ??= []).push(v);
    let principalId = '';
    const log = (status: number, extra: Record<string, unknown> = {}) =>
      o.accessLog(
        JSON.stringify({
          requestId,
          ip: sourceIp,
          requestTime: new Date(started).toISOString(),
          httpMethod: method,
          resourcePath: path,
          status,
          principalId,
          latencyMs: Date.now() - started,
          ...extra,
        }),
      );

    const staticRoute = method === 'GET' ? o.staticRoutes[path] : undefined;
    if (staticRoute) {
      const { contentType, body } = staticRoute();
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': contentType });
      res.end(body);
      return log(200);
    }

    const body = await readBody(req, MAX_PAYLOAD_BYTES);
    if (body === undefined) return log(send(res, 'REQUEST_TOO_LARGE', 413, {}));

    const route = findRoute(method, path);
    const preflightFn = method === 'OPTIONS' && RESOURCE_PATHS.includes(path) ? findRouteForPath(path) : undefined;
    if (!route && !preflightFn) return log(send(res, 'MISSING_AUTHENTICATION_TOKEN', 403, {}));

    // Header names are case-insensitive: `authorization` and `AUTHORIZATION` are one header sent twice,
    // listed under the first spelling seen, with every value in multiValueHeaders.
    const headers: Record<string, string> = {};
    const multiValueHeaders: Record<string, string[]> = {};
    const spelling = new Map<string, string>();
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const raw = req.rawHeaders[i]!;
      const name = spelling.get(raw.toLowerCase()) ?? raw;
      spelling.set(raw.toLowerCase(), name);
      headers[name] = req.rawHeaders[i + 1]!;
      (multiValueHeaders[name] ??= []).push(req.rawHeaders[i + 1]!);
    }
    const methodArn = `arn:aws:execute-api:us-east-1:${ACCOUNT}:${API_ID}/${o.stage}/${method}${path}`;

    let authorizerContext: Record<string, unknown> = {};
    if (route?.authorized) {
      const identity = Object.entries(multiValueHeaders).find(([k]) => k.toLowerCase() === 'authorization')?.[1].join('\n');
      // Like API Gateway: a missing identity source is refused before the authorizer runs.
      if (!identity) return log(send(res, 'UNAUTHORIZED', 401, {}));
      const key = createHash('sha256').update(identity).digest('hex');
      let result = cache.get(key);
      if (!result || result.until <= Date.now()) {
        const event = {
          type: 'REQUEST',
          methodArn,
          resource: path,
          path,
          httpMethod: method,
          headers,
          multiValueHeaders,
          queryStringParameters: query,
          multiValueQueryStringParameters: multiQuery,
          pathParameters: {},
          stageVariables: {},
          requestContext: requestContext(requestId, method, path, sourceIp, {}),
        } as unknown as APIGatewayRequestAuthorizerEvent;
        try {
          result = { result: await o.authorizer(event, lambdaContext('authorizer', 5000)), until: Date.now() + o.authorizerCacheTtlSeconds * 1000 };
        } catch {
          return log(send(res, 'AUTHORIZER_FAILURE', 500, {}), { authorizerError: true });
        }
        if (o.authorizerCacheTtlSeconds > 0) cache.set(key, result);
      }
      authorizerContext = { ...(result.result.context ?? {}), principalId: result.result.principalId };
      principalId = String(result.result.principalId ?? '');
      if (!policyAllows(result.result, methodArn)) return log(send(res, 'ACCESS_DENIED', 403, authorizerContext));
    }

    // Like the stack's request validator: a required query parameter missing (or empty) is refused here.
    if (route?.query?.some((name) => !multiQuery[name]?.some((v) => v.length > 0))) return log(send(res, 'BAD_REQUEST_PARAMETERS', 400, authorizerContext));

    const fn = route?.fn ?? preflightFn!;
    const event: APIGatewayProxyEvent = {
      resource: path,
      path,
      httpMethod: method,
      headers,
      multiValueHeaders,
      queryStringParameters: queryPairs.length ? query : null,
      multiValueQueryStringParameters: queryPairs.length ? multiQuery : null,
      pathParameters: null,
      stageVariables: null,
      body: body.length ? body.toString('utf8') : null,
      isBase64Encoded: false,
      requestContext: requestContext(requestId, method, path, sourceIp, authorizerContext),
    };
    let result: APIGatewayProxyResult;
    try {
      result = await o.functions[fn](event, lambdaContext(fn, 10_000));
    } catch {
      return log(send(res, 'INTEGRATION_FAILURE', 502, authorizerContext), { integrationError: true });
    }
    if (!result || typeof result.statusCode !== 'number') return log(send(res, 'INTEGRATION_FAILURE', 502, authorizerContext), { integrationError: true });
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(result.headers ?? {})) out[k] = String(v);
    res.writeHead(result.statusCode, out);
    res.end(result.body ?? '');
    return log(result.statusCode);
  }

  function requestContext(requestId: string, method: string, path: string, sourceIp: string, authorizer: Record<string, unknown>) {
    return {
      accountId: ACCOUNT,
      apiId: API_ID,
      authorizer,
      httpMethod: method,
      identity: { sourceIp, userAgent: null } as unknown as APIGatewayProxyEvent['requestContext']['identity'],
      path: `/${o.stage}${path}`,
      protocol: 'HTTP/1.1',
      requestId,
      requestTimeEpoch: Date.now(),
      resourceId: 'local',
      resourcePath: path,
      stage: o.stage,
    } as APIGatewayProxyEvent['requestContext'];
  }
}

function findRouteForPath(path: string): FunctionName | undefined {
  return ['POST', 'DELETE', 'GET'].map((m) => findRoute(m, path)).find(Boolean)?.fn;
}
