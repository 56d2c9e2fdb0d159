import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, writeSync } from 'node:fs';
import { type IncomingMessage, Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { APIGatewayRequestAuthorizerEvent, Context } from 'aws-lambda';
import { STATUS_CALLBACK_PATH } from '../../lib/routes';
import { loadLocalSecrets, signDevToken } from '../../local/keys';
import { startLocal } from '../../local/server';
import { percentile } from './stats';

/** One DynamoDB API call made while serving a request, with what it costs in request units. */
export interface DynamoCall {
  readonly op: string;
  readonly readUnits: number;
  readonly writeUnits: number;
}

/** One request served by the local gateway, as seen from inside it. */
interface Served {
  label: string;
  ms: number;
  status: number;
  dynamo: DynamoCall[];
  secretsCalls: number;
}

export interface RouteResult {
  readonly label: string;
  readonly n: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** DynamoDB calls per request: median and worst. */
  readonly roundTrips: { readonly median: number; readonly max: number };
  /** Request units per request (median), for the cost model. */
  readonly readUnits: number;
  readonly writeUnits: number;
  /** Secrets Manager calls per request, worst case (0 once warm). */
  readonly secretsCallsMax: number;
  readonly statuses: Readonly<Record<string, number>>;
  readonly ops: Readonly<Record<string, number>>;
}

export interface LocalResult {
  readonly routes: readonly RouteResult[];
  /** The authorizer handler invoked directly with a fresh token each time (API Gateway cache miss). */
  readonly authorizer: { readonly n: number; readonly p50Ms: number; readonly p99Ms: number; readonly secretsCallsMax: number };
  readonly users: number;
}

/** Request units of one call (items under 1 KB to write and 4 KB to read, as this table's are). */
function units(op: string, input: Record<string, unknown>): DynamoCall {
  const read = (consistent: unknown) => (consistent === true ? 1 : 0.5);
  switch (op) {
    case 'GetItemCommand':
    case 'QueryCommand':
      return { op, readUnits: read(input['ConsistentRead']), writeUnits: 0 };
    case 'BatchGetItemCommand': {
      const tables = Object.values((input['RequestItems'] ?? {}) as Record<string, { Keys?: unknown[]; ConsistentRead?: boolean }>);
      return { op, readUnits: tables.reduce((s, t) => s + (t.Keys?.length ?? 0) * read(t.ConsistentRead), 0), writeUnits: 0 };
    }
    case 'TransactGetItemsCommand':
      return { op, readUnits: 2 * ((input['TransactItems'] as unknown[] | undefined)?.length ?? 0), writeUnits: 0 };
    case 'TransactWriteItemsCommand':
      return { op, readUnits: 0, writeUnits: 2 * ((input['TransactItems'] as unknown[] | undefined)?.length ?? 0) };
    case 'BatchWriteItemCommand': {
      const tables = Object.values((input['RequestItems'] ?? {}) as Record<string, unknown[]>);
      return { op, readUnits: 0, writeUnits: tables.reduce((s, t) => s + t.length, 0) };
    }
    default:
      // PutItem, UpdateItem, DeleteItem: one write unit each, also when a condition fails.
      return { op, readUnits: 0, writeUnits: 1 };
  }
}

/**
 * Counts, per request the local gateway serves, the DynamoDB and Secrets Manager calls the SDK sends and the
 * time from the request's arrival to its response's end. Attribution uses AsyncLocalStorage entered where
 * Node emits the gateway's `request` event, so the stand-in's status callbacks, arriving while another
 * request runs, are counted against their own request.
 */
function instrument(labelFor: (req: IncomingMessage) => string | undefined, served: Served[]): () => void {
  const als = new AsyncLocalStorage<Served>();
  const originalEmit = Server.prototype.emit as (this: Server, event: string | symbol, ...args: unknown[]) => boolean;
  Server.prototype.emit = function emit(this: Server, event: string | symbol, ...args: unknown[]): boolean {
    const req = args[0] as IncomingMessage | undefined;
    const label = event === 'request' && req ? labelFor(req) : undefined;
    if (label === undefined) return originalEmit.call(this, event, ...args);
    const record: Served = { label, ms: 0, status: 0, dynamo: [], secretsCalls: 0 };
    const t0 = process.hrtime.bigint();
    (args[1] as ServerResponse).once('finish', () => {
      record.ms = Number(process.hrtime.bigint() - t0) / 1e6;
      record.status = (args[1] as ServerResponse).statusCode;
      served.push(record);
    });
    return als.run(record, () => originalEmit.call(this, event, ...args));
  } as typeof Server.prototype.emit;

  const ddbSend = DynamoDBClient.prototype.send;
  DynamoDBClient.prototype.send = function send(this: DynamoDBClient, command: { constructor: { name: string }; input: unknown }, ...rest: unknown[]) {
    als.getStore()?.dynamo.push(units(command.constructor.name, command.input as Record<string, unknown>));
    return (ddbSend as (...a: unknown[]) => unknown).call(this, command, ...rest);
  } as typeof DynamoDBClient.prototype.send;
  const smSend = SecretsManagerClient.prototype.send;
  SecretsManagerClient.prototype.send = function send(this: SecretsManagerClient, ...args: unknown[]) {
    const store = als.getStore();
    if (store) store.secretsCalls += 1;
    return (smSend as (...a: unknown[]) => unknown).call(this, ...args);
  } as typeof SecretsManagerClient.prototype.send;

  return () => {
    Server.prototype.emit = originalEmit as typeof Server.prototype.emit;
    DynamoDBClient.prototype.send = ddbSend;
    SecretsManagerClient.prototype.send = smSend;
  };
}

/** Discards the functions' log lines (they are written, to /dev/null, so their cost stays in the timings). */
function silenceStdout(): () => void {
  const fd = openSync('/dev/null', 'w');
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, encodingOrCb?: unknown, cb?: unknown) => {
    if (typeof chunk === 'string') writeSync(fd, chunk);
    else writeSync(fd, chunk);
    const done = typeof encodingOrCb === 'function' ? encodingOrCb : cb;
    if (typeof done === 'function') (done as () => void)();
    return true;
  }) as typeof process.stdout.write;
  return () => {
    process.stdout.write = original;
    closeSync(fd);
  };
}

function summarise(label: string, xs: readonly Served[]): RouteResult {
  const count = <T extends string>(keys: T[]) => keys.reduce<Record<string, number>>((m, k) => ({ ...m, [k]: (m[k] ?? 0) + 1 }), {});
  const trips = xs.map((x) => x.dynamo.length);
  return {
    label,
    n: xs.length,
    p50Ms: percentile(xs.map((x) => x.ms), 50),
    p99Ms: percentile(xs.map((x) => x.ms), 99),
    roundTrips: { median: percentile(trips, 50), max: Math.max(...trips) },
    readUnits: percentile(xs.map((x) => x.dynamo.reduce((s, d) => s + d.readUnits, 0)), 50),
    writeUnits: percentile(xs.map((x) => x.dynamo.reduce((s, d) => s + d.writeUnits, 0)), 50),
    secretsCallsMax: Math.max(...xs.map((x) => x.secretsCalls)),
    statuses: count(xs.map((x) => String(x.status))),
    ops: count(xs.flatMap((x) => x.dynamo.map((d) => d.op.replace(/Command$/, '')))),
  };
}

function lambdaContext(name: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${name}`,
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 'bench',
    getRemainingTimeInMillis: () => 5000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/**
 * Local mode in this process (dynalite, Secrets Manager and Twilio stand-ins), driven one request at a time
 * by `users` distinct users (after `warmup` users whose requests are not counted): logout (which warms the
 * gateway's authorizer cache for the user's token), token (new session), token (reuse), voice (every other
 * user with an Idempotency-Key), hangup; plus the status callbacks the Twilio stand-in sends for each call.
 */
export async function measureLocal(users: number, warmup: number): Promise<LocalResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-local-'));
  const previousLocalDir = process.env['LOCAL_DIR'];
  process.env['LOCAL_DIR'] = dir;
  const served: Served[] = [];
  let current = 'unlabelled';
  const warmupUsers = new Set<string>();
  const restoreInstrument = instrument((req) => {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const path = url.pathname;
    // Callbacks for a warmup user's call (the owner rides in the query) are warmup too: the first one is cold.
    if (path === STATUS_CALLBACK_PATH) return warmupUsers.has(url.searchParams.get('u') ?? '') ? 'warmup' : 'status callback';
    return path.startsWith('/api/') ? current : undefined;
  }, served);
  const restoreStdout = silenceStdout();
  const limits = '1000000';
  const api = await startLocal({
    port: 0,
    demoPort: 'off',
    log: () => undefined,
    env: {
      IP_TOKEN_LIMIT_PER_MINUTE: limits,
      USER_TOKEN_QUOTA_PER_DAY: limits,
      USER_CALL_QUOTA_PER_DAY: limits,
      CONCURRENT_CALL_LIMIT: '100',
      STATUS_LIMIT_PER_IP_PER_MINUTE: limits,
    },
  });
  try {
    const secrets = await loadLocalSecrets();
    const request = async (label: string, method: string, path: string, token: string, body?: unknown, headers: Record<string, string> = {}) => {
      current = label;
      const res = await fetch(`${api.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, json: text ? (JSON.parse(text) as Record<string, { sid?: string }>) : {} };
    };
    const sids: string[] = [];
    for (let i = 0; i < warmup + users; i++) {
      const measured = i >= warmup;
      const tag = (label: string) => (measured ? label : 'warmup');
      const sub = randomUUID();
      if (!measured) warmupUsers.add(sub);
      const token = await signDevToken(secrets, { issuer: api.issuer, sub });
      await request(tag('token DELETE (logout)*'), 'DELETE', '/api/twilio/token', token);
      await request(tag('token (new session)'), 'POST', '/api/twilio/token', token, {});
      await request(tag('token (reuse)'), 'POST', '/api/twilio/token', token, {});
      const withKey = i % 2 === 1;
      const call = await request(tag(withKey ? 'voice (Idempotency-Key)' : 'voice'), 'POST', '/api/twilio/voice', token, { to: '+14155550123' }, withKey ? { 'Idempotency-Key': `bench-${randomBytes(8).toString('hex')}` } : {});
      const sid = call.json['call']?.sid;
      if (call.status !== 201 || !sid) throw new Error(`voice answered ${call.status}: ${JSON.stringify(call.json)}`);
      sids.push(sid);
      await request(tag('hangup'), 'POST', '/api/twilio/hangup', token, { callSid: sid });
    }
    await Promise.all(sids.map((sid) => api.twilio?.settled(sid)));

    // The authorizer on its own, as API Gateway invokes it on a cache miss: a fresh token every time.
    const { handler: authorize } = await import('../../lambdas/authorizer/handler');
    const tokens = await Promise.all(Array.from({ length: warmup + users }, () => signDevToken(secrets, { issuer: api.issuer, sub: randomUUID() })));
    const authMs: number[] = [];
    let authSecrets = 0;
    const restoreSm = (() => {
      const send = SecretsManagerClient.prototype.send;
      SecretsManagerClient.prototype.send = function (this: SecretsManagerClient, ...args: unknown[]) {
        authSecrets += 1;
        return (send as (...a: unknown[]) => unknown).call(this, ...args);
      } as typeof send;
      return () => (SecretsManagerClient.prototype.send = send);
    })();
    for (const [i, token] of tokens.entries()) {
      const event = {
        type: 'REQUEST',
        methodArn: 'arn:aws:execute-api:us-east-1:000000000000:local/local/POST/api/twilio/token',
        resource: '/api/twilio/token',
        path: '/api/twilio/token',
        httpMethod: 'POST',
        headers: { Authorization: `Bearer ${token}` },
        multiValueHeaders: { Authorization: [`Bearer ${token}`] },
        requestContext: { requestId: randomUUID(), identity: { sourceIp: '127.0.0.1' } },
      } as unknown as APIGatewayRequestAuthorizerEvent;
      if (i === warmup) authSecrets = 0;
      const t0 = process.hrtime.bigint();
      const result = await authorize(event, lambdaContext('authorizer'));
      if (i >= warmup) authMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (result.policyDocument.Statement[0]?.Effect !== 'Allow') throw new Error('the authorizer denied a valid bench token');
    }
    restoreSm();

    const labels = [...new Set(served.map((s) => s.label))].filter((l) => l !== 'warmup' && l !== 'unlabelled');
    return {
      routes: labels.map((l) => summarise(l, served.filter((s) => s.label === l))),
      authorizer: { n: authMs.length, p50Ms: percentile(authMs, 50), p99Ms: percentile(authMs, 99), secretsCallsMax: authSecrets },
      users,
    };
  } finally {
    await api.stop();
    restoreStdout();
    restoreInstrument();
    if (previousLocalDir === undefined) delete process.env['LOCAL_DIR'];
    else process.env['LOCAL_DIR'] = previousLocalDir;
  }
}
