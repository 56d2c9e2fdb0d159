import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { UnavailableError } from './errors';

/**
 * DynamoDB adapter: one table, string keys `pk`/`sk`, TTL attribute `expiresAt` in epoch seconds.
 *
 *   voice session   pk USER#<userId>   sk SESSION            kv, ct (sealed token), issuedAt, expiresAt
 *   call record     pk USER#<userId>   sk CALL#<callSid>     status, to (masked), createdAt, expiresAt
 *   idempotency     pk USER#<userId>   sk IDEM#<keyHash>     requestHash, callSid?, expiresAt
 *   counter         pk LIMIT#<name>    sk W#<windowStart>    n, expiresAt
 *
 * DynamoDB deletes expired items lazily (up to days later), so every read and every conditional write
 * treats an item whose `expiresAt` has passed as absent. Any DynamoDB failure becomes a 503: fail closed.
 */

export interface SessionRecord {
  readonly userId: string;
  readonly kv: string;
  readonly ct: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** The source IP that opened the session; stored only when sessions are bound to it. */
  readonly ip?: string;
}

export type CallStatus = 'queued' | 'ringing' | 'in-progress' | 'completed' | 'busy' | 'failed' | 'no-answer' | 'canceled';
export const ENDED_STATUSES: ReadonlySet<CallStatus> = new Set(['completed', 'busy', 'failed', 'no-answer', 'canceled']);

export interface CallRecord {
  readonly userId: string;
  readonly callSid: string;
  readonly status: CallStatus;
  readonly to: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export type IdempotencyClaim =
  | { readonly state: 'claimed' }
  | { readonly state: 'done'; readonly callSid: string }
  | { readonly state: 'pending' }
  | { readonly state: 'mismatch' };

export interface LimitResult {
  readonly allowed: boolean;
  /** Seconds until the window ends (when not allowed). */
  readonly retryAfter: number;
}

/** Storage port used by the services; the DynamoDB class below is the production implementation. */
export interface Store {
  getSession(userId: string, now: number): Promise<SessionRecord | undefined>;
  putSession(session: SessionRecord): Promise<void>;
  /** Reads the session and one call record in a single round trip. */
  getSessionAndCall(userId: string, callSid: string, now: number): Promise<{ session?: SessionRecord; call?: CallRecord }>;
  putCall(call: CallRecord): Promise<void>;
  setCallStatus(userId: string, callSid: string, status: CallStatus, now: number): Promise<void>;
  claimIdempotencyKey(userId: string, keyHash: string, requestHash: string, now: number, ttlSeconds: number): Promise<IdempotencyClaim>;
  /** Records the call a key produced and keeps the key until `expiresAt` (epoch seconds). */
  completeIdempotencyKey(userId: string, keyHash: string, callSid: string, expiresAt: number): Promise<void>;
  releaseIdempotencyKey(userId: string, keyHash: string): Promise<void>;
  /** Counts one event in a fixed window; allowed only while the count stays within `limit`. Atomic. */
  consume(name: string, limit: number, windowSeconds: number, now: number): Promise<LimitResult>;
}

const S = (v: string): AttributeValue => ({ S: v });
const N = (v: number): AttributeValue => ({ N: String(v) });
const str = (item: Record<string, AttributeValue>, k: string) => item[k]?.S ?? '';
const num = (item: Record<string, AttributeValue>, k: string) => Number(item[k]?.N ?? '0');
const userPk = (userId: string) => S(`USER#${userId}`);

/** The item key a sealed session token is bound to (its AAD). */
export const sessionItemKey = (userId: string) => `USER#${userId}|SESSION`;

async function guard<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof ConditionalCheckFailedException) throw err;
    throw new UnavailableError({ reason: 'dynamodb_unavailable', cause: err });
  }
}

export class DynamoStore implements Store {
  constructor(
    private readonly db: Pick<DynamoDBClient, 'send'>,
    private readonly table: string,
  ) {}

  async getSession(userId: string, now: number): Promise<SessionRecord | undefined> {
    const out = await guard(() =>
      this.db.send(new GetItemCommand({ TableName: this.table, Key: { pk: userPk(userId), sk: S('SESSION') }, ConsistentRead: true })),
    );
    return out.Item ? toSession(out.Item, now) : undefined;
  }

  async putSession(s: SessionRecord): Promise<void> {
    await guard(() =>
      this.db.send(
        new PutItemCommand({
          TableName: this.table,
          Item: { pk: userPk(s.userId), sk: S('SESSION'), kv: S(s.kv), ct: S(s.ct), issuedAt: N(s.issuedAt), expiresAt: N(s.expiresAt), ...(s.ip ? { ip: S(s.ip) } : {}) },
        }),
      ),
    );
  }

  async getSessionAndCall(userId: string, callSid: string, now: number): Promise<{ session?: SessionRecord; call?: CallRecord }> {
    const out = await guard(() =>
      this.db.send(
        new BatchGetItemCommand({
          RequestItems: {
            [this.table]: {
              Keys: [
                { pk: userPk(userId), sk: S('SESSION') },
                { pk: userPk(userId), sk: S(`CALL#${callSid}`) },
              ],
              ConsistentRead: true,
            },
          },
        }),
      ),
    );
    // Two small items never exceed BatchGetItem's limits; an unprocessed key means throttling: fail closed.
    if (Object.keys(out.UnprocessedKeys ?? {}).length > 0) throw new UnavailableError({ reason: 'dynamodb_unprocessed' });
    const result: { session?: SessionRecord; call?: CallRecord } = {};
    for (const item of out.Responses?.[this.table] ?? []) {
      if (str(item, 'sk') === 'SESSION') {
        const session = toSession(item, now);
        if (session) result.session = session;
      } else {
        const call = toCall(item, now);
        if (call) result.call = call;
      }
    }
    return result;
  }

  async putCall(c: CallRecord): Promise<void> {
    await guard(() =>
      this.db.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            pk: userPk(c.userId),
            sk: S(`CALL#${c.callSid}`),
            status: S(c.status),
            to: S(c.to),
            createdAt: N(c.createdAt),
            expiresAt: N(c.expiresAt),
          },
        }),
      ),
    );
  }

  async setCallStatus(userId: string, callSid: string, status: CallStatus, now: number): Promise<void> {
    try {
      await guard(() =>
        this.db.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: { pk: userPk(userId), sk: S(`CALL#${callSid}`) },
            UpdateExpression: 'SET #s = :s',
            // Only an existing, unexpired record of this user is updated; never create one here.
            ConditionExpression: 'attribute_exists(pk) AND expiresAt > :now',
            ExpressionAttributeNames: { '#s': 'status' },
            ExpressionAttributeValues: { ':s': S(status), ':now': N(now) },
          }),
        ),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  async claimIdempotencyKey(userId: string, keyHash: string, requestHash: string, now: number, ttlSeconds: number): Promise<IdempotencyClaim> {
    const Key = { pk: userPk(userId), sk: S(`IDEM#${keyHash}`) };
    try {
      await guard(() =>
        this.db.send(
          new PutItemCommand({
            TableName: this.table,
            Item: { ...Key, requestHash: S(requestHash), expiresAt: N(now + ttlSeconds) },
            ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
            ExpressionAttributeValues: { ':now': N(now) },
          }),
        ),
      );
      return { state: 'claimed' };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
    const out = await guard(() => this.db.send(new GetItemCommand({ TableName: this.table, Key, ConsistentRead: true })));
    const item = out.Item;
    // Released or expired between the two calls: the caller may retry.
    if (!item || num(item, 'expiresAt') <= now) return { state: 'pending' };
    if (str(item, 'requestHash') !== requestHash) return { state: 'mismatch' };
    const callSid = str(item, 'callSid');
    return callSid ? { state: 'done', callSid } : { state: 'pending' };
  }

  async completeIdempotencyKey(userId: string, keyHash: string, callSid: string, expiresAt: number): Promise<void> {
    await guard(() =>
      this.db.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: userPk(userId), sk: S(`IDEM#${keyHash}`) },
          UpdateExpression: 'SET callSid = :c, expiresAt = :e',
          ExpressionAttributeValues: { ':c': S(callSid), ':e': N(expiresAt) },
        }),
      ),
    );
  }

  async releaseIdempotencyKey(userId: string, keyHash: string): Promise<void> {
    await guard(() => this.db.send(new DeleteItemCommand({ TableName: this.table, Key: { pk: userPk(userId), sk: S(`IDEM#${keyHash}`) } })));
  }

  async consume(name: string, limit: number, windowSeconds: number, now: number): Promise<LimitResult> {
    const windowStart = Math.floor(now / windowSeconds) * windowSeconds;
    const windowEnd = windowStart + windowSeconds;
    try {
      await guard(() =>
        this.db.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: { pk: S(`LIMIT#${name}`), sk: S(`W#${windowStart}`) },
            // One atomic read-check-increment: DynamoDB evaluates the condition and applies the update
            // as a single operation, so concurrent requests can never admit more than `limit`.
            UpdateExpression: 'SET n = if_not_exists(n, :zero) + :one, expiresAt = :exp',
            ConditionExpression: 'attribute_not_exists(n) OR n < :limit',
            ExpressionAttributeValues: { ':zero': N(0), ':one': N(1), ':limit': N(limit), ':exp': N(windowEnd + 60) },
          }),
        ),
      );
      return { allowed: true, retryAfter: 0 };
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return { allowed: false, retryAfter: Math.max(1, windowEnd - now) };
      throw err;
    }
  }
}

function toSession(item: Record<string, AttributeValue>, now: number): SessionRecord | undefined {
  const expiresAt = num(item, 'expiresAt');
  if (expiresAt <= now) return undefined;
  const ip = str(item, 'ip');
  return { userId: str(item, 'pk').slice('USER#'.length), kv: str(item, 'kv'), ct: str(item, 'ct'), issuedAt: num(item, 'issuedAt'), expiresAt, ...(ip ? { ip } : {}) };
}

function toCall(item: Record<string, AttributeValue>, now: number): CallRecord | undefined {
  const expiresAt = num(item, 'expiresAt');
  if (expiresAt <= now) return undefined;
  return {
    userId: str(item, 'pk').slice('USER#'.length),
    callSid: str(item, 'sk').slice('CALL#'.length),
    status: str(item, 'status') as CallStatus,
    to: str(item, 'to'),
    createdAt: num(item, 'createdAt'),
    expiresAt,
  };
}
