import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { buildApp, CONFIG_CONTEXT_KEY, STAGE_CONTEXT_KEY, STAGES_CONTEXT_KEY } from '../../lib/app';
import { BaseFunction } from '../../lib/constructs/base-function';
import { FUNCTIONS, type FunctionId } from './build';

/** us-east-1 list prices assumed for the cost model, as of the date below. */
export const PRICES = {
  asOf: '2026-12-03',
  region: 'us-east-1',
  /** Lambda on arm64 (Graviton), first pricing tier. */
  lambdaArmPerGbSecond: 0.0000133334,
  lambdaPerMillionRequests: 0.2,
  /** DynamoDB on-demand. */
  dynamoPerMillionWriteUnits: 0.625,
  dynamoPerMillionReadUnits: 0.125,
  /** API Gateway REST API, first 333 million requests a month. */
  restApiPerMillionRequests: 3.5,
} as const;

/** Share of authorized requests answered from API Gateway's authorizer cache (the authorizer not invoked). */
export const AUTHORIZER_CACHE_HIT_RATIO = 0.5;

export interface StackFacts {
  readonly memoryMb: Readonly<Record<FunctionId, number>>;
  readonly authorizerCacheTtlSeconds: number | undefined;
  readonly source: string;
}

/**
 * Memory sizes as the stack configures them: synthesizes the shipped `prod` stage (without bundling) and reads
 * each function's MemorySize, found by its construct id (Authorizer, Token, Voice, Hangup, Status).
 */
export function stackFacts(): StackFacts {
  const root = join(__dirname, '..', '..');
  const context = (JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> }).context;
  const built = buildApp({ context: { ...context, [STAGE_CONTEXT_KEY]: 'prod', 'aws:cdk:bundling-stacks': [] } });
  const stage = built.stages[0];
  if (!stage) throw new Error('the app built no stage');
  const memoryMb: Partial<Record<FunctionId, number>> = {};
  for (const c of stage.stack.node.findAll()) {
    if (!(c instanceof BaseFunction)) continue;
    const id = c.node.id.toLowerCase() as FunctionId;
    const memory = (c.node.defaultChild as CfnFunction).memorySize;
    if (FUNCTIONS.includes(id) && typeof memory === 'number') memoryMb[id] = memory;
  }
  const missing = FUNCTIONS.filter((f) => memoryMb[f] === undefined);
  if (missing.length) throw new Error(`no memory size found for ${missing.join(', ')}`);
  const shared = context[CONFIG_CONTEXT_KEY] as Record<string, unknown> | undefined;
  const prod = (context[STAGES_CONTEXT_KEY] as Record<string, Record<string, unknown>> | undefined)?.['prod'];
  const ttl = prod?.['authorizerCacheTtlSeconds'] ?? shared?.['authorizerCacheTtlSeconds'];
  return { memoryMb: memoryMb as Record<FunctionId, number>, authorizerCacheTtlSeconds: typeof ttl === 'number' ? ttl : undefined, source: 'synthesized prod stage (cdk.json context)' };
}

export interface RouteCost {
  readonly route: string;
  readonly fn: FunctionId;
  readonly billedMs: number;
  readonly authorized: boolean;
  /** USD per million requests, by part. */
  readonly apiGateway: number;
  readonly lambda: number;
  readonly authorizer: number;
  readonly dynamo: number;
  readonly total: number;
}

const lambdaCost = (memoryMb: number, billedMs: number) => PRICES.lambdaPerMillionRequests + (memoryMb / 1024) * (billedMs / 1000) * PRICES.lambdaArmPerGbSecond * 1e6;

/** Cost per million requests of one route, from its measured warm duration and DynamoDB request units. */
export function routeCost(o: {
  route: string;
  fn: FunctionId;
  durationMs: number;
  readUnits: number;
  writeUnits: number;
  authorized: boolean;
  authorizerMs: number;
  memoryMb: Readonly<Record<FunctionId, number>>;
}): RouteCost {
  // Lambda bills each invocation's duration rounded up to the millisecond.
  const billedMs = Math.max(1, Math.ceil(o.durationMs));
  const lambda = lambdaCost(o.memoryMb[o.fn], billedMs);
  const authorizer = o.authorized ? (1 - AUTHORIZER_CACHE_HIT_RATIO) * lambdaCost(o.memoryMb.authorizer, Math.max(1, Math.ceil(o.authorizerMs))) : 0;
  const dynamo = o.readUnits * PRICES.dynamoPerMillionReadUnits + o.writeUnits * PRICES.dynamoPerMillionWriteUnits;
  const apiGateway = PRICES.restApiPerMillionRequests;
  return { route: o.route, fn: o.fn, billedMs, authorized: o.authorized, apiGateway, lambda, authorizer, dynamo, total: apiGateway + lambda + authorizer + dynamo };
}
