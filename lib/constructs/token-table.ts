import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/**
 * The item operations the handlers use: reads by key and conditional writes, nothing else.
 * `BatchGetItem` reaches exactly what `GetItem` does (items by full key); `/hangup` uses it to read the
 * session and the call record in one round trip. No Scan or Query: no handler lists items.
 */
export const TABLE_ITEM_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
] as const;

/** Name of the TTL attribute; values are epoch seconds (DynamoDB ignores other formats). */
export const TTL_ATTRIBUTE = 'expiresAt';

/**
 * The one table: voice sessions (encrypted Twilio tokens), call ownership records and rate-limit
 * counters, keyed by `pk`/`sk` strings. Items expire through TTL on `expiresAt`; DynamoDB deletes them
 * lazily, so the Lambdas also check expiry on every read.
 *
 * `Table` (AWS::DynamoDB::Table) rather than `TableV2`: cdk-nag's point-in-time-recovery rule
 * (AwsSolutions-DDB3) inspects only `AWS::DynamoDB::Table`, so with `TableV2` the check would be silent.
 */
export class TokenTable extends Construct {
  public readonly table: dynamodb.Table;
  /** Customer-managed key for the table's server-side encryption. */
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string) {
    super(scope, id);

    this.key = new kms.Key(this, 'Key', {
      description: 'Encrypts the voice-token table at rest',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: TTL_ATTRIBUTE,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /**
   * Lets `grantee` read and write items by key, and nothing more: no Scan, Query, batch write or table admin.
   * `table.grantReadWriteData` would add Scan, Query and batch operations plus `kms:ReEncrypt*` and
   * `kms:GenerateDataKey*` wildcards, so the statements are written out here.
   */
  public grantItemReadWrite(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: [...TABLE_ITEM_ACTIONS], resourceArns: [this.table.tableArn] });
    // DynamoDB calls KMS on the caller's behalf for a customer-managed key; allow only that path.
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: [this.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${Stack.of(this).region}.amazonaws.com` } },
      }),
    );
  }
}
