import { ENV } from '../../lambdas/shared/config';
import { TWILIO_SECRET_FIELDS } from '../../lib/constructs/secrets';
import { actionsOf, logicalId, statementsOfRole, synthesize } from './support';

const { stack, template } = synthesize();
const resources = template.toJSON()['Resources'] as Record<string, { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string; UpdateReplacePolicy?: string }>;
const resourceOf = (construct: Parameters<typeof logicalId>[1]) => resources[logicalId(stack, construct)];

describe('token table', () => {
  it('is one on-demand table keyed by pk and sk strings', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    });
  });

  it('expires items through TTL on expiresAt', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
  });

  it('encrypts with its own customer-managed KMS key', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: {
        SSEEnabled: true,
        SSEType: 'KMS',
        KMSMasterKeyId: { 'Fn::GetAtt': [logicalId(stack, stack.table.key), 'Arn'] },
      },
    });
  });

  it('has point-in-time recovery', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('survives stack deletion and replacement, and so does its key', () => {
    expect(resourceOf(stack.table.table)).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(resourceOf(stack.table.key)).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('keeps the construct id TokenTable (renaming it would replace the table)', () => {
    expect(stack.table.node.id).toBe('TokenTable');
    expect(stack.table.node.path).toBe(`${stack.stackName}/TokenTable`);
  });
});

describe('KMS keys', () => {
  it('uses two customer-managed keys for data, both rotated yearly by KMS and retained (a third encrypts the alarm topic)', () => {
    template.resourceCountIs('AWS::KMS::Key', 3);
    for (const key of [stack.table.key, stack.secrets.key]) {
      expect(resourceOf(key)).toMatchObject({ Properties: { EnableKeyRotation: true }, DeletionPolicy: 'Retain' });
    }
  });
});

describe('secrets', () => {
  const secretsKeyArn = { 'Fn::GetAtt': [logicalId(stack, stack.secrets.key), 'Arn'] };

  it('creates the Twilio, encryption-key and usage-key secrets, and no legacy JWT secret by default', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 3);
    expect(stack.secrets.legacyJwt).toBeUndefined();
  });

  it('encrypts every secret with the customer-managed secrets key and keeps it on teardown', () => {
    const secrets = Object.values(resources).filter((r) => r.Type === 'AWS::SecretsManager::Secret');
    for (const secret of secrets) {
      expect(secret).toMatchObject({ Properties: { KmsKeyId: secretsKeyArn }, DeletionPolicy: 'Retain' });
    }
  });

  it('creates the Twilio secret as a JSON template of empty fields for the operator to fill', () => {
    const twilio = resourceOf(stack.secrets.twilio);
    expect(JSON.parse(String(twilio?.Properties['SecretString']))).toEqual(Object.fromEntries(TWILIO_SECRET_FIELDS.map((f) => [f, ''])));
    expect(twilio?.Properties['GenerateSecretString']).toBeUndefined();
  });

  it('generates the first token-encryption key at deploy as k_v1 next to current "v1"', () => {
    expect(resourceOf(stack.secrets.encryptionKeys)?.Properties).toMatchObject({
      GenerateSecretString: {
        SecretStringTemplate: JSON.stringify({ current: 'v1' }),
        GenerateStringKey: 'k_v1',
        PasswordLength: 64,
        ExcludePunctuation: true,
        IncludeSpace: false,
      },
    });
    expect(resourceOf(stack.secrets.encryptionKeys)?.Properties['SecretString']).toBeUndefined();
  });

  it('generates the usage key at deploy as a 40-character string without punctuation', () => {
    expect(resourceOf(stack.secrets.usageKey)?.Properties).toMatchObject({
      GenerateSecretString: { PasswordLength: 40, ExcludePunctuation: true, IncludeSpace: false },
    });
    expect(resourceOf(stack.secrets.usageKey)?.Properties['GenerateSecretString']).not.toHaveProperty('SecretStringTemplate');
  });

  it('holds no secret value anywhere in the template: the only literal secret string is the empty Twilio placeholder', () => {
    const literals = Object.values(resources)
      .filter((r) => r.Type === 'AWS::SecretsManager::Secret')
      .map((r) => r.Properties['SecretString'])
      .filter((v) => v !== undefined);
    expect(literals).toEqual([JSON.stringify(Object.fromEntries(TWILIO_SECRET_FIELDS.map((f) => [f, ''])))]);
  });

  it('takes no CloudFormation parameters other than CDK’s bootstrap version', () => {
    expect(Object.keys(template.toJSON()['Parameters'] ?? {})).toEqual(['BootstrapVersion']);
  });
});

describe('with legacyJwtSecret', () => {
  const legacy = synthesize({ config: { legacyJwtSecret: true } });
  const legacySecret = legacy.stack.secrets.legacyJwt;
  const legacyRef = legacySecret && { Ref: logicalId(legacy.stack, legacySecret) };

  it('adds a KMS-encrypted placeholder secret for the legacy Supabase JWT secret', () => {
    expect(legacySecret).toBeDefined();
    legacy.template.resourceCountIs('AWS::SecretsManager::Secret', 4);
    expect(legacy.template.toJSON()['Resources'][legacyRef?.Ref ?? '']).toMatchObject({
      Properties: {
        KmsKeyId: { 'Fn::GetAtt': [logicalId(legacy.stack, legacy.stack.secrets.key), 'Arn'] },
        GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true },
      },
      DeletionPolicy: 'Retain',
    });
  });

  it('tells only the authorizer where the legacy secret is', () => {
    const withLegacy = legacy.template.findResources('AWS::Lambda::Function', {
      Properties: { Environment: { Variables: { [ENV.SUPABASE_JWT_SECRET_ID]: legacyRef } } },
    });
    expect(Object.keys(withLegacy)).toEqual([logicalId(legacy.stack, legacy.stack.functions.authorizer)]);
  });

  it('lets only the authorizer read the legacy secret', () => {
    const { authorizer, handlers } = legacy.stack.functions;
    const readers = [authorizer, handlers.token, handlers.voice, handlers.hangup].filter((fn) =>
      statementsOfRole(legacy.template, logicalId(legacy.stack, fn.role ?? fn)).some(
        (s) => actionsOf(s).includes('secretsmanager:GetSecretValue') && JSON.stringify(s.Resource).includes(`"${legacyRef?.Ref}"`),
      ),
    );
    expect(readers).toEqual([authorizer]);
  });

  it('outputs the legacy secret name', () => {
    legacy.template.hasOutput('LegacyJwtSecretName', {});
    expect(Object.keys(template.findOutputs('LegacyJwtSecretName'))).toEqual([]);
  });
});
