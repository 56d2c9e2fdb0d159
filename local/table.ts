import { CreateTableCommand, DynamoDBClient, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import type { Server } from 'node:http';
import { listen } from './http-util';

/** An embedded DynamoDB (dynalite, in memory) on loopback, holding the service's table. */
export interface EmbeddedTable {
  readonly server: Server;
  readonly endpoint: string;
  /** A client for the embedded endpoint (dummy credentials; dynalite does not check them). */
  readonly client: DynamoDBClient;
  readonly table: string;
}

/**
 * Starts dynalite and creates the table with the stack's key schema (`pk`/`sk` strings, TTL on `expiresAt`).
 * dynalite, like DynamoDB, applies a conditional update atomically, which the limiter relies on.
 */
export async function startEmbeddedTable(table: string): Promise<EmbeddedTable> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const endpoint = `http://127.0.0.1:${await listen(server, 0)}`;
  const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
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
  return { server, endpoint, client, table };
}
