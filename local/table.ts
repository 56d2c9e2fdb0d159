import { CreateTableCommand, DynamoDBClient, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { awsStandInServer, close, listen, readBody } from './http-util';

/** An embedded DynamoDB (dynalite, in memory) on loopback, holding the service's table. */
export interface EmbeddedTable {
  /** The loopback listener, reachable only with this run's access key id (see `awsStandInServer`). */
  readonly server: Server;
  readonly endpoint: string;
  /** A client for the embedded endpoint (dummy credentials; dynalite does not check them). */
  readonly client: DynamoDBClient;
  readonly table: string;
  stop(): Promise<void>;
}

/**
 * Starts dynalite and creates the table with the stack's key schema (`pk`/`sk` strings, TTL on `expiresAt`).
 * dynalite, like DynamoDB, applies a conditional update atomically, which the limiter relies on.
 */
export async function startEmbeddedTable(table: string, accessKeyId = `LOCAL${randomBytes(8).toString('hex').toUpperCase()}`): Promise<EmbeddedTable> {
  const db = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const server = awsStandInServer(accessKeyId, withItemOnConditionFailure(db.listeners('request')[0] as RequestListener));
  const endpoint = `http://127.0.0.1:${await listen(server, 0)}`;
  const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey: 'local' } });
  await client.send(
    new CreateTableCommand({
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  // dynalite never expires items itself: like DynamoDB's lazy TTL, which is why every read checks expiry.
  await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true } })).catch(() => undefined);
  const stop = async () => {
    client.destroy();
    await close(server);
    // dynalite's own close also shuts its in-memory store; its server never listened, so ignore that error.
    await new Promise<void>((resolve) => db.close(() => resolve()));
  };
  return { server, endpoint, client, table, stop };
}

/** One request to dynalite's handler, in memory: status, headers and body of its answer. */
function invoke(inner: RequestListener, headers: IncomingHttpHeaders, body: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve) => {
    const req = Object.assign(Readable.from([Buffer.from(body, 'utf8')]), { headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, method: 'POST', url: '/' });
    const out: Record<string, string> = {};
    const res = {
      statusCode: 200,
      contentType: '',
      setHeader: (k: string, v: unknown) => void (out[k.toLowerCase()] = String(v)),
      getHeader: (k: string) => out[k.toLowerCase()],
      end: (chunk?: string | Buffer) => resolve({ status: res.statusCode, headers: out, body: chunk === undefined ? '' : String(chunk) }),
    };
    inner(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
}

/**
 * dynalite does not implement `ReturnValuesOnConditionCheckFailure`; DynamoDB does (the failed item comes
 * back inside ConditionalCheckFailedException, with no extra request). This wrapper adds it for PutItem,
 * UpdateItem and DeleteItem, so the service behaves here as on DynamoDB. Everything else passes through.
 */
function withItemOnConditionFailure(inner: RequestListener): RequestListener {
  return (req, res) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    if (req.method !== 'POST' || !/\.(PutItem|UpdateItem|DeleteItem)$/.test(target)) return inner(req, res);
    void (async () => {
      const raw = ((await readBody(req, 1024 * 1024)) ?? Buffer.alloc(0)).toString('utf8');
      const first = await invoke(inner, req.headers, raw);
      let answer = first;
      try {
        const input = JSON.parse(raw) as { TableName?: string; Key?: Record<string, unknown>; Item?: Record<string, unknown>; ReturnValuesOnConditionCheckFailure?: string };
        const failed = first.status === 400 && /ConditionalCheckFailedException/.test(first.body);
        if (failed && input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD') {
          const Key = input.Key ?? { pk: input.Item?.['pk'], sk: input.Item?.['sk'] };
          const got = await invoke(inner, { ...req.headers, 'x-amz-target': 'DynamoDB_20120810.GetItem' }, JSON.stringify({ TableName: input.TableName, Key, ConsistentRead: true }));
          const item = (JSON.parse(got.body) as { Item?: unknown }).Item;
          const error = JSON.parse(first.body) as Record<string, unknown>;
          const body = JSON.stringify(item ? { ...error, Item: item } : error);
          // The body changed, so its checksum header would no longer match.
          const headers = Object.fromEntries(Object.entries(first.headers).filter(([k]) => k !== 'x-amz-crc32'));
          answer = { status: first.status, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, body };
        }
      } catch {
        // not JSON: pass dynalite's answer through as it is
      }
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    })();
  };
}
