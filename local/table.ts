import { CreateTableCommand, DynamoDBClient, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { randomBytes } from 'node:crypto';
import type { RequestListener, Server } from 'node:http';
import { awsStandInServer, close, listen } from './http-util';

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
  const server = awsStandInServer(accessKeyId, db.listeners('request')[0] as RequestListener);
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
