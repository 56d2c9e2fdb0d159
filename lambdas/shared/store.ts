import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { randomBytes } from 'node:crypto';
import { UnavailableError } from './errors';

/**
 * DynamoDB adapter: one table, string keys `pk`/`sk`, TTL attribute `expiresAt` in epoch seconds.
 *
 *   voice session   pk USER#<userId>   sk SESSION            kv, ct (sealed token), issuedAt, expiresAt, ip?,
 *                                                            t<dayStart> (tokens minted that day; kept on logout)
 *   call record     pk USER#<userId>   sk CALL#<callSid>     status, rank, slot, to (masked), createdAt, expiresAt
 *   live calls      pk USER#<userId>   sk CALLS              live (string set of "<nonce>:<expiresAt>" slots),
 *                                                            d<dayStart> (calls placed that day),
 *                                                            k<keyHash> (Idempotency-Key claims: {rh, at, unk?}), expiresAt
 *   (a call record made under an Idempotency-Key carries its hash as `idem`)
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

/**
 * A call's states as Twilio reports them, and their order: a record only ever moves up this order, so a late
 * or repeated status callback can never undo a later one (`ringing` after `completed` changes nothing).
 */
export const STATUS_RANK = {
  queued: 0,
  initiated: 1,
  ringing: 2,
  'in-progress': 3,
  completed: 4,
  busy: 4,
  failed: 4,
  'no-answer': 4,
  canceled: 4,
} as const;
export type CallStatus = keyof typeof STATUS_RANK;
export const CALL_STATUSES = Object.keys(STATUS_RANK) as CallStatus[];
export const ENDED_STATUSES: ReadonlySet<CallStatus> = new Set(CALL_STATUSES.filter((s) => STATUS_RANK[s] === 4));

export interface CallRecord {
  readonly userId: string;
  readonly callSid: string;
  readonly status: CallStatus;
  readonly to: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** The live-call slot the call holds until it ends (see `admitCall`); empty on records older than slots. */
  readonly slot: string;
  /** Hash of the Idempotency-Key the call was placed under, if any. */
  readonly idem?: string;
}

/** An Idempotency-Key claimed together with a call's admission. */
export interface KeyClaim {
  /** SHA-256 of the key. */
  readonly hash: string;
  /** SHA-256 of what the request asked for: a key reused for something else is refused. */
  readonly requestHash: string;
}

/** A claim that was never completed (a request that crashed) may be taken over after this many seconds. */
export const KEY_PENDING_SECONDS = 60;
/** A key answers with its call for this long. */
export const KEY_TTL_SECONDS = 86_400;

/** Why an admission under an Idempotency-Key did not dial: the key was used before. */
export type KeyReplay =
  | { readonly state: 'done'; readonly call: CallRecord & { readonly live: boolean } }
  | { readonly state: 'pending' | 'mismatch' | 'unknown_outcome' };

/** What `advanceCallStatus` did: moved the record up, found it already at or past that state, or found none. */
export type AdvanceResult =
  | { readonly result: 'updated'; readonly call: CallRecord }
  | { readonly result: 'stale'; readonly call: CallRecord }
  | { readonly result: 'unknown' };

export type AdmitResult =
  | { readonly allowed: true; readonly slot: string }
  | { readonly allowed: false; readonly limiter: 'user_call_quota' | 'concurrent_calls'; readonly retryAfter: number }
  | { readonly allowed: false; readonly limiter: 'idempotency'; readonly replay: KeyReplay };

export interface AdmitLimits {
  /** Calls a user may have live at once. */
  readonly concurrentCalls: number;
  /** Calls a user may place per day (UTC days, like every daily window here). */
  readonly callsPerDay: number;
  /** When the slot frees itself if no status callback ever says the call ended, epoch seconds. */
  readonly slotExpiresAt: number;
}

/** How `writeSession` may replace what is stored. */
export interface SessionWrite {
  /** Tokens the user may mint per day (UTC days); the write counts one. */
  readonly dailyQuota: number;
  /**
   * Keep a stored session that is still usable instead: one with a token that expires after this time (epoch
   * seconds) and, when `boundIp` is set, was opened from that IP. Undefined: replace whatever is stored.
   */
  readonly keepIfExpiringAfter?: number;
  readonly boundIp?: string;
}

export type SessionWriteResult =
  | { readonly written: true }
  | { readonly written: false; readonly reason: 'kept'; readonly current: SessionRecord }
  | { readonly written: false; readonly reason: 'quota'; readonly retryAfter: number };

export interface LimitResult {
  readonly allowed: boolean;
  /** Seconds until the window ends (when not allowed). */
  readonly retryAfter: number;
}

/** Storage port used by the services; the DynamoDB class below is the production implementation. */
export interface Store {
  getSession(userId: string, now: number): Promise<SessionRecord | undefined>;
  /**
   * Stores a new session and counts it against the daily quota in one conditional write, unless a usable
   * session is stored (then that one is returned) or the quota is spent. Atomic: concurrent first requests
   * store one session, and the quota is never exceeded.
   */
  writeSession(session: SessionRecord, write: SessionWrite, now: number): Promise<SessionWriteResult>;
  /**
   * Reads the session, one call record and whether that call still holds a live-call slot, in a single round
   * trip. `live` is false for a call whose slot was freed (it ended) or has expired.
   */
  getSessionAndCall(userId: string, callSid: string, now: number): Promise<{ session?: SessionRecord; call?: CallRecord & { readonly live: boolean } }>;
  putCall(call: CallRecord): Promise<void>;
  /** Moves a call record to `status` if that is later in STATUS_RANK than its current state. Never creates a record. */
  advanceCallStatus(userId: string, callSid: string, status: CallStatus, now: number): Promise<AdvanceResult>;
  /**
   * Admits one more call for the user, atomically: within the daily quota and with fewer than the allowed
   * number of live calls. Takes a live-call slot, returned for `releaseCallSlot` once the call ends.
   */
  admitCall(userId: string, limits: AdmitLimits, now: number, key?: KeyClaim): Promise<AdmitResult>;
  /** Frees a live-call slot (and, for a call that was never placed, its key claim); idempotent. */
  releaseCallSlot(userId: string, slot: string, keyHash?: string): Promise<void>;
  /** Marks a key claim as "Twilio never answered": the call may exist, so the key never dials again. */
  markOutcomeUnknown(userId: string, keyHash: string): Promise<void>;
  /** The user's calls that hold a live, unexpired slot and whose record does not say they ended (one Query). */
  liveCalls(userId: string, now: number): Promise<CallRecord[]>;
  /** Deletes the user's voice session (logout): the sealed token goes, the day's mint count stays. Idempotent. */
  deleteSession(userId: string): Promise<void>;
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

/** A conditional write whose failed condition means "nothing to do" (already gone, changed meanwhile). */
async function unlessConditionFails(op: () => Promise<unknown>): Promise<void> {
  try {
    await guard(op);
  } catch (err) {
    if (!(err instanceof ConditionalCheckFailedException)) throw err;
  }
}

/** Daily windows are UTC days: the day's start, and the seconds until the next one (at least 1). */
const dayStart = (now: number) => now - (now % 86_400);
const untilNextDay = (now: number) => Math.max(1, 86_400 - (now % 86_400));

export class DynamoStore implements Store {
  constructor(
    private readonly db: Pick<DynamoDBClient, 'send'>,
    private readonly table: string,
  ) {}

  async getSession(userId: string, now: number): Promise<SessionRecord | undefined> {
    const item = await this.sessionItem(userId);
    return item ? toSession(item, now) : undefined;
  }

  async writeSession(s: SessionRecord, w: SessionWrite, now: number): Promise<SessionWriteResult> {
    const names: Record<string, string> = { '#t': `t${dayStart(now)}` };
    const values: Record<string, AttributeValue> = {
      ':kv': S(s.kv),
      ':ct': S(s.ct),
      ':issuedAt': N(s.issuedAt),
      ':exp': N(s.expiresAt),
      ':one': N(1),
      ':quota': N(w.dailyQuota),
    };
    let condition = '(attribute_not_exists(#t) OR #t < :quota)';
    if (w.keepIfExpiringAfter !== undefined) {
      // Replace only a session that is gone (logged out), expired or about to, or bound to another IP.
      values[':keepAfter'] = N(w.keepIfExpiringAfter);
      let replaceable = 'attribute_not_exists(ct) OR expiresAt <= :keepAfter';
      if (w.boundIp !== undefined) {
        values[':ip'] = S(w.boundIp);
        replaceable += ' OR attribute_not_exists(ip) OR ip <> :ip';
      }
      condition += ` AND (${replaceable})`;
    }
    if (s.ip) values[':newIp'] = S(s.ip);
    try {
      await guard(() =>
        this.db.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: { pk: userPk(s.userId), sk: S('SESSION') },
            UpdateExpression: `SET kv = :kv, ct = :ct, issuedAt = :issuedAt, expiresAt = :exp${s.ip ? ', ip = :newIp' : ''} ADD #t :one${s.ip ? '' : ' REMOVE ip'}`,
            ConditionExpression: condition,
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
            // DynamoDB hands back the item that failed the condition, so telling "kept" from "quota" costs no read.
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        ),
      );
      return { written: true };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const old = err.Item ?? (await this.sessionItem(s.userId));
      if (num(old ?? {}, names['#t']!) >= w.dailyQuota) return { written: false, reason: 'quota', retryAfter: untilNextDay(now) };
      const current = old ? toSession(old, now) : undefined;
      // Neither over quota nor replaceable: the stored session is usable (the condition said so).
      if (current) return { written: false, reason: 'kept', current };
      // Logged out between the failed write and the read: write once more, replacing whatever is there.
      if (w.keepIfExpiringAfter !== undefined) return this.writeSession(s, { dailyQuota: w.dailyQuota }, now);
      return { written: false, reason: 'quota', retryAfter: untilNextDay(now) };
    }
  }

  private async sessionItem(userId: string): Promise<Record<string, AttributeValue> | undefined> {
    const out = await guard(() => this.db.send(new GetItemCommand({ TableName: this.table, Key: { pk: userPk(userId), sk: S('SESSION') }, ConsistentRead: true })));
    return out.Item;
  }

  async getSessionAndCall(userId: string, callSid: string, now: number): Promise<{ session?: SessionRecord; call?: CallRecord & { readonly live: boolean } }> {
    const out = await guard(() =>
      this.db.send(
        new BatchGetItemCommand({
          RequestItems: {
            [this.table]: {
              Keys: [
                { pk: userPk(userId), sk: S('SESSION') },
                { pk: userPk(userId), sk: S(`CALL#${callSid}`) },
                { pk: userPk(userId), sk: S('CALLS') },
              ],
              ConsistentRead: true,
            },
          },
        }),
      ),
    );
    // Three small items never exceed BatchGetItem's limits; an unprocessed key means throttling: fail closed.
    if (Object.keys(out.UnprocessedKeys ?? {}).length > 0) throw new UnavailableError({ reason: 'dynamodb_unprocessed' });
    const items = new Map((out.Responses?.[this.table] ?? []).map((item) => [str(item, 'sk'), item]));
    const sessionItem = items.get('SESSION');
    const callItem = items.get(`CALL#${callSid}`);
    const session = sessionItem ? toSession(sessionItem, now) : undefined;
    const call = callItem ? toCall(callItem, now) : undefined;
    const slots = new Set(items.get('CALLS')?.['live']?.SS ?? []);
    return {
      ...(session ? { session } : {}),
      ...(call ? { call: { ...call, live: callIsLive(call, slots, now) } } : {}),
    };
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
            rank: N(STATUS_RANK[c.status]),
            slot: S(c.slot),
            to: S(c.to),
            createdAt: N(c.createdAt),
            expiresAt: N(c.expiresAt),
            ...(c.idem ? { idem: S(c.idem) } : {}),
          },
        }),
      ),
    );
  }

  async advanceCallStatus(userId: string, callSid: string, status: CallStatus, now: number): Promise<AdvanceResult> {
    const Key = { pk: userPk(userId), sk: S(`CALL#${callSid}`) };
    try {
      const out = await guard(() =>
        this.db.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key,
            UpdateExpression: 'SET #s = :s, #r = :r, updatedAt = :now',
            // Only an existing, unexpired record, and only upwards: duplicates and reordered callbacks are no-ops.
            ConditionExpression: 'attribute_exists(pk) AND expiresAt > :now AND (attribute_not_exists(#r) OR #r < :r)',
            ExpressionAttributeNames: { '#s': 'status', '#r': 'rank' },
            ExpressionAttributeValues: { ':s': S(status), ':r': N(STATUS_RANK[status]), ':now': N(now) },
            ReturnValues: 'ALL_NEW',
          }),
        ),
      );
      const call = out.Attributes ? toCall(out.Attributes, now) : undefined;
      if (call) return { result: 'updated', call };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
    const out = await guard(() => this.db.send(new GetItemCommand({ TableName: this.table, Key, ConsistentRead: true })));
    const call = out.Item ? toCall(out.Item, now) : undefined;
    return call ? { result: 'stale', call } : { result: 'unknown' };
  }

  async admitCall(userId: string, limits: AdmitLimits, now: number, key?: KeyClaim): Promise<AdmitResult> {
    const Key = { pk: userPk(userId), sk: S('CALLS') };
    const dayAttr = `d${dayStart(now)}`;
    const keyAttr = key ? `k${key.hash}` : undefined;
    const slot = `${randomBytes(9).toString('base64url')}:${limits.slotExpiresAt}`;
    // A few rounds at most: each failed round either refuses for good or first frees expired slots and claims.
    for (let round = 0; round < 4; round++) {
      let item: Record<string, AttributeValue>;
      try {
        await guard(() =>
          this.db.send(
            new UpdateItemCommand({
              TableName: this.table,
              Key,
              // One atomic check-and-take for both limits and the key, so concurrent requests can never exceed
              // either limit, nor dial twice under one key.
              UpdateExpression: `ADD #live :slot, #day :one SET expiresAt = :exp${keyAttr ? ', #k = :claim' : ''}`,
              ConditionExpression: `(attribute_not_exists(#day) OR #day < :quota) AND (attribute_not_exists(#live) OR size(#live) < :cap)${keyAttr ? ' AND attribute_not_exists(#k)' : ''}`,
              ExpressionAttributeNames: { '#live': 'live', '#day': dayAttr, ...(keyAttr ? { '#k': keyAttr } : {}) },
              ExpressionAttributeValues: {
                ':slot': { SS: [slot] },
                ':one': N(1),
                ':quota': N(limits.callsPerDay),
                ':cap': N(limits.concurrentCalls),
                ':exp': N(Math.max(dayStart(now) + 86_400 + 60, limits.slotExpiresAt, key ? now + KEY_TTL_SECONDS : 0)),
                ...(key ? { ':claim': { M: { rh: S(key.requestHash), at: N(now) } } } : {}),
              },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            }),
          ),
        );
        return { allowed: true, slot };
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        item = err.Item ?? (await guard(() => this.db.send(new GetItemCommand({ TableName: this.table, Key, ConsistentRead: true })))).Item ?? {};
      }
      const live = item['live']?.SS ?? [];
      const slots = new Set(live);
      const claim = keyAttr ? item[keyAttr]?.M : undefined;
      if (key && claim) {
        // The key was used before: answer as that request did, whatever the limits say now.
        if (claim['rh']?.S !== key.requestHash) return { allowed: false, limiter: 'idempotency', replay: { state: 'mismatch' } };
        if (claim['unk']?.BOOL) return { allowed: false, limiter: 'idempotency', replay: { state: 'unknown_outcome' } };
        const call = await this.callByKey(userId, key.hash, now);
        if (call) return { allowed: false, limiter: 'idempotency', replay: { state: 'done', call: { ...call, live: callIsLive(call, slots, now) } } };
        const at = num(claim, 'at');
        if (at > now - KEY_PENDING_SECONDS) return { allowed: false, limiter: 'idempotency', replay: { state: 'pending' } };
        // Claimed by a request that never finished (or whose call record expired): take it over.
        await this.dropClaim(Key, keyAttr!, at);
        continue;
      }
      if (num(item, dayAttr) >= limits.callsPerDay) return { allowed: false, limiter: 'user_call_quota', retryAfter: untilNextDay(now) };
      // Slots whose call never reported its end expire; so do earlier days' counters and old key claims.
      const expired = live.filter((s) => slotExpiry(s) <= now);
      const oldAttrs = Object.keys(item).filter((k) => (/^d\d+$/.test(k) && k !== dayAttr) || (/^k[0-9a-f]{64}$/.test(k) && num(item[k]?.M ?? {}, 'at') <= now - KEY_TTL_SECONDS));
      if (expired.length === 0 && live.length >= limits.concurrentCalls) {
        return { allowed: false, limiter: 'concurrent_calls', retryAfter: CONCURRENT_RETRY_AFTER_SECONDS };
      }
      if (expired.length > 0 || oldAttrs.length > 0) await this.prune(Key, expired, oldAttrs);
    }
    return { allowed: false, limiter: 'concurrent_calls', retryAfter: CONCURRENT_RETRY_AFTER_SECONDS };
  }

  /** The unexpired call record placed under a key, if any (one Query; only a replay asks). */
  private async callByKey(userId: string, keyHash: string, now: number): Promise<CallRecord | undefined> {
    const items = await this.queryCallItems(userId, 'CALL#', { expression: 'idem = :h', values: { ':h': S(keyHash) } });
    return items.map((i) => toCall(i, now)).find((c) => c !== undefined);
  }

  /** Every item of the user whose sort key starts with `prefix` (and passes `filter`), all pages. */
  private async queryCallItems(userId: string, prefix: string, filter?: { expression: string; values: Record<string, AttributeValue> }): Promise<Record<string, AttributeValue>[]> {
    const items: Record<string, AttributeValue>[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await guard(() =>
        this.db.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
            ExpressionAttributeValues: { ':pk': userPk(userId), ':prefix': S(prefix), ...filter?.values },
            ...(filter ? { FilterExpression: filter.expression } : {}),
            ConsistentRead: true,
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
        ),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** Removes a key claim, only if it is still the one seen (claimed at `at`). */
  private async dropClaim(Key: Record<string, AttributeValue>, keyAttr: string, at: number): Promise<void> {
    await unlessConditionFails(() =>
      this.db.send(
        new UpdateItemCommand({ TableName: this.table, Key, UpdateExpression: 'REMOVE #k', ConditionExpression: '#k.#at = :at', ExpressionAttributeNames: { '#k': keyAttr, '#at': 'at' }, ExpressionAttributeValues: { ':at': N(at) } }),
      ),
    );
  }

  async markOutcomeUnknown(userId: string, keyHash: string): Promise<void> {
    await unlessConditionFails(() =>
      this.db.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: userPk(userId), sk: S('CALLS') },
          UpdateExpression: 'SET #k.#unk = :t',
          ConditionExpression: 'attribute_exists(#k)',
          ExpressionAttributeNames: { '#k': `k${keyHash}`, '#unk': 'unk' },
          ExpressionAttributeValues: { ':t': { BOOL: true } },
        }),
      ),
    );
  }

  private async prune(Key: Record<string, AttributeValue>, expired: string[], oldDays: string[]): Promise<void> {
    const names = Object.fromEntries(oldDays.map((d, i) => [`#o${i}`, d]));
    const parts = [expired.length ? 'DELETE #live :expired' : '', oldDays.length ? `REMOVE ${Object.keys(names).join(', ')}` : ''].filter(Boolean);
    await unlessConditionFails(() =>
      this.db.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key,
          UpdateExpression: parts.join(' '),
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { ...(expired.length ? { '#live': 'live' } : {}), ...names },
          ...(expired.length ? { ExpressionAttributeValues: { ':expired': { SS: expired } } } : {}),
        }),
      ),
    );
  }

  async releaseCallSlot(userId: string, slot: string, keyHash?: string): Promise<void> {
    if (!slot) return;
    await unlessConditionFails(() =>
      this.db.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: userPk(userId), sk: S('CALLS') },
          UpdateExpression: `DELETE #live :slot${keyHash ? ' REMOVE #k' : ''}`,
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#live': 'live', ...(keyHash ? { '#k': `k${keyHash}` } : {}) },
          ExpressionAttributeValues: { ':slot': { SS: [slot] } },
        }),
      ),
    );
  }

  async liveCalls(userId: string, now: number): Promise<CallRecord[]> {
    // `CALL#<sid>` records and the `CALLS` item sort together under `CALL`.
    const items = await this.queryCallItems(userId, 'CALL');
    const slots = new Set(items.find((i) => str(i, 'sk') === 'CALLS')?.['live']?.SS ?? []);
    return items
      .filter((i) => str(i, 'sk').startsWith('CALL#'))
      .map((i) => toCall(i, now))
      .filter((c): c is CallRecord => !!c && !!c.slot && callIsLive(c, slots, now));
  }

  async deleteSession(userId: string): Promise<void> {
    await unlessConditionFails(() =>
      this.db.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: userPk(userId), sk: S('SESSION') },
          // The day's mint count stays, so logging out and in again cannot reset the token quota.
          UpdateExpression: 'REMOVE kv, ct, issuedAt, ip',
          ConditionExpression: 'attribute_exists(pk)',
        }),
      ),
    );
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
  // Expired, or logged out (the sealed token removed, the mint count kept).
  if (expiresAt <= now || !item['ct']) return undefined;
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
    slot: str(item, 'slot'),
    ...(item['idem']?.S ? { idem: item['idem'].S } : {}),
  };
}

/** A live-call slot is `<nonce>:<expiresAt>`. */
const slotExpiry = (slot: string) => Number(slot.slice(slot.lastIndexOf(':') + 1)) || 0;

/**
 * Whether a call is still live: its record does not say it ended and, if it holds a slot, that slot is still
 * taken and unexpired (a freed slot means it was ended through /hangup; an expired one, that it cannot be live).
 */
function callIsLive(call: CallRecord, slots: ReadonlySet<string>, now: number): boolean {
  return !ENDED_STATUSES.has(call.status) && (!call.slot || (slots.has(call.slot) && slotExpiry(call.slot) > now));
}

/** Retry-After for the concurrent-call cap: a live call may end at any moment. */
export const CONCURRENT_RETRY_AFTER_SECONDS = 5;
