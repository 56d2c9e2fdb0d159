import { Match } from 'aws-cdk-lib/assertions';
import { ENV } from '../../lambdas/shared/config';
import { TABLE_ITEM_ACTIONS } from '../../lib/constructs/token-table';
import { actionsOf, logicalId, statementsOfRole, synthesize } from './support';

const { stack, template } = synthesize();
const { authorizer, handlers } = stack.functions;
const handlerList = [
  ['token', handlers.token],
  ['voice', handlers.voice],
  ['hangup', handlers.hangup],
] as const;
const everyFunction = [['authorizer', authorizer] as const, ...handlerList, ['status', handlers.status] as const];

type Props = Record<string, unknown>;
const functionProps = (fn: typeof authorizer): Props =>
  (template.toJSON()['Resources'][logicalId(stack, fn)] as { Properties: Props }).Properties;
const envOf = (fn: typeof authorizer): Record<string, unknown> =>
  (functionProps(fn)['Environment'] as { Variables: Record<string, unknown> }).Variables;
const roleId = (fn: typeof authorizer): string => logicalId(stack, fn.role ?? fn);
const ref = (construct: Parameters<typeof logicalId>[1]) => ({ Ref: logicalId(stack, construct) });

const COMMON_ENV = [ENV.SUPABASE_URL, ENV.ALLOWED_ORIGINS, ENV.SECRET_CACHE_TTL_SECONDS, 'POWERTOOLS_SERVICE_NAME', 'POWERTOOLS_METRICS_NAMESPACE', 'POWERTOOLS_LOG_LEVEL', 'POWERTOOLS_LOGGER_SAMPLE_RATE', 'NODE_OPTIONS'];

describe('functions', () => {
  it('deploys exactly five functions (no CDK helper functions)', () => {
    template.resourceCountIs('AWS::Lambda::Function', 5);
  });

  it.each(everyFunction)('runs %s on Node.js 24 on arm64 with active X-Ray tracing, bundled as ESM', (_name, fn) => {
    expect(functionProps(fn)).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      Handler: 'index.handler',
    });
  });

  it('gives the authorizer 256 MB and 5 seconds', () => {
    expect(functionProps(authorizer)).toMatchObject({ MemorySize: 256, Timeout: 5 });
  });

  it.each(handlerList)('gives the %s handler 512 MB and 10 seconds', (_name, fn) => {
    expect(functionProps(fn)).toMatchObject({ MemorySize: 512, Timeout: 10 });
  });

  it('gives the status function 256 MB and 10 seconds', () => {
    expect(functionProps(handlers.status)).toMatchObject({ MemorySize: 256, Timeout: 10 });
  });

  it.each(everyFunction)('logs %s to its own log group with the configured retention, kept on teardown', (_name, fn) => {
    const logGroupRef = (functionProps(fn)['LoggingConfig'] as { LogGroup: { Ref: string } }).LogGroup.Ref;
    expect(template.toJSON()['Resources'][logGroupRef]).toMatchObject({
      Type: 'AWS::Logs::LogGroup',
      Properties: { RetentionInDays: 90 },
      DeletionPolicy: 'Retain',
    });
  });

  it('takes log retention from config', () => {
    const { stack: s, template: t } = synthesize({ config: { logRetentionDays: 30 } });
    const fn = t.toJSON()['Resources'][logicalId(s, s.functions.handlers.token)] as { Properties: Props };
    const logGroupRef = (fn.Properties['LoggingConfig'] as { LogGroup: { Ref: string } }).LogGroup.Ref;
    expect(t.toJSON()['Resources'][logGroupRef]).toMatchObject({ Properties: { RetentionInDays: 30 } });
  });
});

describe('environment', () => {
  it('gives the authorizer only what verifying a session needs', () => {
    expect(Object.keys(envOf(authorizer)).sort()).toEqual([...COMMON_ENV, ENV.USAGE_KEY].sort());
    expect(envOf(authorizer)).toMatchObject({
      [ENV.SUPABASE_URL]: 'https://abcdefghijklmnopqrst.supabase.co',
      [ENV.ALLOWED_ORIGINS]: 'https://app.example.com',
      // The usage-plan key (not a credential with an AUTHORIZER key source), resolved by CloudFormation at deploy.
      [ENV.USAGE_KEY]: { 'Fn::Join': ['', ['{{resolve:secretsmanager:', ref(stack.secrets.usageKey), ':SecretString:::}}']] },
      [ENV.SECRET_CACHE_TTL_SECONDS]: '300',
      NODE_OPTIONS: '--enable-source-maps',
    });
  });

  it.each(handlerList)('gives the %s handler the table, the secrets by ARN and the limits from config', (_name, fn) => {
    const expectedKeys = [
      ...COMMON_ENV,
      ENV.TABLE_NAME,
      ENV.TWILIO_SECRET_ID,
      ENV.ENCRYPTION_KEYS_SECRET_ID,
      ENV.TOKEN_TTL_SECONDS,
      ENV.IP_TOKEN_LIMIT_PER_MINUTE,
      ENV.USER_TOKEN_QUOTA_PER_DAY,
      ENV.USER_CALL_QUOTA_PER_DAY,
      ENV.DIAL_PREFIXES,
      ENV.CONCURRENT_CALL_LIMIT,
      ENV.MAX_CALL_SECONDS,
      // The voice function hands Twilio the callback URL with every call it places.
      ...(fn === handlers.voice ? [ENV.STATUS_CALLBACK_URL] : []),
    ];
    expect(Object.keys(envOf(fn)).sort()).toEqual(expectedKeys.sort());
    expect(envOf(fn)).toMatchObject({
      [ENV.TABLE_NAME]: ref(stack.table.table),
      [ENV.TWILIO_SECRET_ID]: ref(stack.secrets.twilio),
      [ENV.ENCRYPTION_KEYS_SECRET_ID]: ref(stack.secrets.encryptionKeys),
      [ENV.TOKEN_TTL_SECONDS]: '3600',
      [ENV.IP_TOKEN_LIMIT_PER_MINUTE]: '5',
      [ENV.USER_TOKEN_QUOTA_PER_DAY]: '50',
      [ENV.USER_CALL_QUOTA_PER_DAY]: '100',
      [ENV.DIAL_PREFIXES]: '+1',
      [ENV.CONCURRENT_CALL_LIMIT]: '2',
      [ENV.MAX_CALL_SECONDS]: '3600',
    });
  });

  it('gives the status function the table, the Twilio secret by ARN, its per-IP limit and the callback URL, nothing more', () => {
    expect(Object.keys(envOf(handlers.status)).sort()).toEqual(
      [...COMMON_ENV, ENV.TABLE_NAME, ENV.TWILIO_SECRET_ID, ENV.STATUS_LIMIT_PER_IP_PER_MINUTE, ENV.STATUS_CALLBACK_URL].sort(),
    );
    expect(envOf(handlers.status)).toMatchObject({
      [ENV.TABLE_NAME]: ref(stack.table.table),
      [ENV.TWILIO_SECRET_ID]: ref(stack.secrets.twilio),
      [ENV.STATUS_LIMIT_PER_IP_PER_MINUTE]: '600',
    });
  });

  it('takes the call limits from config', () => {
    const { stack: s, template: t } = synthesize({ config: { concurrentCallLimit: 3, maxCallSeconds: 600, statusLimitPerIpPerMinute: 120 } });
    const env = (fn: typeof authorizer) => (t.toJSON()['Resources'][logicalId(s, fn)] as { Properties: { Environment: { Variables: Props } } }).Properties.Environment.Variables;
    expect(env(s.functions.handlers.voice)).toMatchObject({ [ENV.CONCURRENT_CALL_LIMIT]: '3', [ENV.MAX_CALL_SECONDS]: '600' });
    expect(env(s.functions.handlers.status)).toMatchObject({ [ENV.STATUS_LIMIT_PER_IP_PER_MINUTE]: '120' });
  });

  it('joins list settings with commas', () => {
    const { stack: s, template: t } = synthesize({
      config: { allowedOrigins: ['https://a.example.com', 'https://b.example.com'], dialPrefixes: ['+1', '+44'] },
    });
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          [ENV.ALLOWED_ORIGINS]: 'https://a.example.com,https://b.example.com',
          [ENV.DIAL_PREFIXES]: '+1,+44',
          [ENV.TABLE_NAME]: { Ref: logicalId(s, s.table.table) },
        }),
      },
    });
  });

  it('resolves exactly one secret into an environment variable: the usage-plan key, on the authorizer only', () => {
    for (const [name, fn] of everyFunction) {
      const resolved = Object.entries(envOf(fn)).filter(([, v]) => /resolve:secretsmanager/.test(JSON.stringify(v)));
      expect([name, resolved.map(([k]) => k)]).toEqual([name, fn === authorizer ? [ENV.USAGE_KEY] : []]);
    }
    expect(JSON.stringify(envOf(authorizer)[ENV.USAGE_KEY])).toContain(logicalId(stack, stack.secrets.usageKey));
  });

  it('never puts a credential in an environment variable: secrets are referenced by ARN only', () => {
    const resources = template.toJSON()['Resources'] as Record<string, { Type: string; Properties: Props }>;
    const secretIds = new Set(Object.entries(resources).filter(([, r]) => r.Type === 'AWS::SecretsManager::Secret').map(([id]) => id));
    const literalSecretStrings = [...secretIds].map((id) => resources[id]?.Properties['SecretString']).filter((v): v is string => typeof v === 'string');

    for (const [, fn] of everyFunction) {
      for (const [key, value] of Object.entries(envOf(fn))) {
        // The usage-plan key is no credential (the API's key source is AUTHORIZER); checked above.
        if (fn === authorizer && key === ENV.USAGE_KEY) continue;
        const json = JSON.stringify(value);
        expect(json).not.toMatch(/resolve:secretsmanager|SecretString/);
        for (const literal of literalSecretStrings) expect(json).not.toContain(literal);
        if (typeof value !== 'string' && key !== ENV.STATUS_CALLBACK_URL) {
          // Anything computed must be a plain Ref: a secret's Ref is its ARN, the table's Ref its name.
          // (The callback URL is joined from the API id and region; its own tests pin it.)
          expect(Object.keys(value as object)).toEqual(['Ref']);
          if (key.endsWith('_SECRET_ID')) expect(secretIds.has((value as { Ref: string }).Ref)).toBe(true);
        }
      }
    }
  });
});

describe('IAM, least privilege', () => {
  it('gives the authorizer no DynamoDB access at all', () => {
    const actions = statementsOfRole(template, roleId(authorizer)).flatMap(actionsOf);
    expect(actions.filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
  });

  it('gives the authorizer no Secrets Manager access when no legacy secret is configured', () => {
    const secretStatements = statementsOfRole(template, roleId(authorizer)).filter((s) => actionsOf(s).some((a) => a.startsWith('secretsmanager:')));
    expect(secretStatements).toEqual([]);
  });

  it.each(handlerList)('lets the %s handler read and write items of the token table by key only', (_name, fn) => {
    const dynamo = statementsOfRole(template, roleId(fn)).filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toHaveLength(1);
    expect(actionsOf(dynamo[0]!).sort()).toEqual(
      ['dynamodb:BatchGetItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'].sort(),
    );
    expect(dynamo[0]!.Resource).toEqual({ 'Fn::GetAtt': [logicalId(stack, stack.table.table), 'Arn'] });
  });

  it.each(handlerList)('gives the %s handler no Scan, Query, batch write, wildcard or table administration', (_name, fn) => {
    const actions = statementsOfRole(template, roleId(fn)).flatMap(actionsOf);
    const forbidden = ['dynamodb:*', 'dynamodb:Scan', 'dynamodb:Query', 'dynamodb:BatchWriteItem', 'dynamodb:DeleteTable', 'dynamodb:UpdateTable', 'dynamodb:CreateTable'];
    expect(actions.filter((a) => forbidden.includes(a))).toEqual([]);
    expect(actions.filter((a) => a.startsWith('dynamodb:')).every((a) => (TABLE_ITEM_ACTIONS as readonly string[]).includes(a))).toBe(true);
  });

  it.each(handlerList)('lets the %s handler use the table key only through DynamoDB', (_name, fn) => {
    const kmsStatements = statementsOfRole(template, roleId(fn)).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    expect(kmsStatements).toHaveLength(1);
    const [statement] = kmsStatements;
    expect(actionsOf(statement!).sort()).toEqual(['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey']);
    expect(statement!.Resource).toEqual({ 'Fn::GetAtt': [logicalId(stack, stack.table.key), 'Arn'] });
    expect(Object.keys(statement!.Condition?.['StringEquals'] ?? {})).toEqual(['kms:ViaService']);
    expect(JSON.stringify(statement!.Condition)).toMatch(/dynamodb\..*amazonaws\.com/);
  });

  it.each(handlerList)('lets the %s handler read the Twilio and encryption-key secrets and no other', (_name, fn) => {
    const secretStatements = statementsOfRole(template, roleId(fn)).filter((s) => actionsOf(s).some((a) => a.startsWith('secretsmanager:')));
    expect(secretStatements).toHaveLength(1);
    expect(actionsOf(secretStatements[0]!).sort()).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
    expect(secretStatements[0]!.Resource).toEqual(expect.arrayContaining([ref(stack.secrets.twilio), ref(stack.secrets.encryptionKeys)]));
    expect(secretStatements[0]!.Resource).toHaveLength(2);
  });

  it('lets the status function read and write table items by key only, through DynamoDB for the table key', () => {
    const statements = statementsOfRole(template, roleId(handlers.status));
    const dynamo = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toHaveLength(1);
    expect(actionsOf(dynamo[0]!).sort()).toEqual([...TABLE_ITEM_ACTIONS].sort());
    expect(dynamo[0]!.Resource).toEqual({ 'Fn::GetAtt': [logicalId(stack, stack.table.table), 'Arn'] });
    const kms = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    expect(kms).toHaveLength(1);
    expect(kms[0]!.Resource).toEqual({ 'Fn::GetAtt': [logicalId(stack, stack.table.key), 'Arn'] });
    expect(JSON.stringify(kms[0]!.Condition)).toMatch(/dynamodb\..*amazonaws\.com/);
  });

  it('lets the status function read the Twilio secret and no other: no encryption keys, no usage key', () => {
    const secretStatements = statementsOfRole(template, roleId(handlers.status)).filter((s) => actionsOf(s).some((a) => a.startsWith('secretsmanager:')));
    expect(secretStatements).toEqual([
      { Effect: 'Allow', Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'], Resource: ref(stack.secrets.twilio) },
    ]);
    const text = JSON.stringify(statementsOfRole(template, roleId(handlers.status)));
    for (const other of [stack.secrets.encryptionKeys, stack.secrets.usageKey, stack.secrets.key]) expect(text).not.toContain(`"${logicalId(stack, other)}"`);
  });

  it('grants the status function only log, X-Ray, item and table-key actions', () => {
    const actions = new Set(statementsOfRole(template, roleId(handlers.status)).flatMap(actionsOf));
    const allowed = new Set([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'xray:PutTraceSegments',
      'xray:PutTelemetryRecords',
      ...TABLE_ITEM_ACTIONS,
      'kms:Decrypt',
      'kms:DescribeKey',
      'kms:Encrypt',
      'kms:GenerateDataKey',
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
    ]);
    expect([...actions].filter((a) => !allowed.has(a))).toEqual([]);
  });

  it('grants no wildcard action to any function', () => {
    for (const [, fn] of everyFunction) {
      const actions = statementsOfRole(template, roleId(fn)).flatMap(actionsOf);
      expect(actions.filter((a) => a.includes('*'))).toEqual([]);
    }
  });

  it('uses Resource "*" only for X-Ray, which has no resource-level permissions (the IAM5 acknowledgement relies on it)', () => {
    const policies = Object.values(template.findResources('AWS::IAM::Policy')) as { Properties: { PolicyDocument: { Statement: Parameters<typeof actionsOf>[0][] } } }[];
    const starActions = policies
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s) => s.Resource === '*' || (Array.isArray(s.Resource) && s.Resource.includes('*')))
      .flatMap(actionsOf);
    expect(new Set(starActions)).toEqual(new Set(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']));
  });

  it('attaches no AWS-managed policy to the function roles', () => {
    for (const [, fn] of everyFunction) {
      const role = template.toJSON()['Resources'][roleId(fn)] as { Properties: Props };
      expect(role.Properties['ManagedPolicyArns']).toBeUndefined();
    }
  });

  it('lets each function write only to its own log group', () => {
    for (const [, fn] of everyFunction) {
      const logs = statementsOfRole(template, roleId(fn)).filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
      const logGroupRef = (functionProps(fn)['LoggingConfig'] as { LogGroup: { Ref: string } }).LogGroup.Ref;
      expect(logs).toEqual([{ Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': [logGroupRef, 'Arn'] } }]);
    }
  });
});
