import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { startEmbeddedTable } from '../../local/table';

/** The service's table on an embedded DynamoDB (dynalite), for storage tests. */
export interface TestTable {
  readonly client: DynamoDBClient;
  readonly table: string;
  stop(): Promise<void>;
}

export async function startTable(table = 'test-table'): Promise<TestTable> {
  const t = await startEmbeddedTable(table);
  return {
    client: t.client,
    table,
    stop: t.stop,
  };
}
