import { TWILIO_SECRET_FIELDS } from '../../lib/constructs/secrets';
import { logicalId, synthesize } from './support';

const { stack, template } = synthesize();
const outputs = template.toJSON()['Outputs'] as Record<string, { Value: unknown; Description?: string }>;
const valueOf = (name: string): string => JSON.stringify(outputs[name]?.Value);

describe('stack outputs', () => {
  it('lists exactly the outputs operators need', () => {
    expect(Object.keys(outputs).sort()).toEqual(
      [
        'ApiUrl',
        'TokenTableName',
        'TwilioSecretName',
        'TwilioSecretArn',
        'EncryptionKeysSecretName',
        'UsageKeySecretName',
        'AuthorizerFunctionName',
        'TokenFunctionName',
        'VoiceFunctionName',
        'HangupFunctionName',
        'StatusFunctionName',
        'StatusCallbackUrl',
        'AccessLogGroupName',
        'AlarmTopicArn',
        'DashboardUrl',
        'NextStep',
      ].sort(),
    );
  });

  it('gives the stage URL without a trailing slash, so route paths can be appended', () => {
    const parts = (outputs['ApiUrl']?.Value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    expect(parts[0]).toBe('https://');
    expect(parts).toContainEqual({ Ref: logicalId(stack, stack.api.restApi) });
    expect(parts[parts.length - 1]).toEqual({ Ref: logicalId(stack, stack.api.restApi.deploymentStage) });
  });

  it('names the table, the secrets, the functions and the access log group', () => {
    expect(outputs['TokenTableName']?.Value).toEqual({ Ref: logicalId(stack, stack.table.table) });
    expect(outputs['TwilioSecretArn']?.Value).toEqual({ Ref: logicalId(stack, stack.secrets.twilio) });
    expect(valueOf('TwilioSecretName')).toContain(logicalId(stack, stack.secrets.twilio));
    expect(valueOf('EncryptionKeysSecretName')).toContain(logicalId(stack, stack.secrets.encryptionKeys));
    expect(valueOf('UsageKeySecretName')).toContain(logicalId(stack, stack.secrets.usageKey));
    expect(outputs['AuthorizerFunctionName']?.Value).toEqual({ Ref: logicalId(stack, stack.functions.authorizer) });
    expect(outputs['TokenFunctionName']?.Value).toEqual({ Ref: logicalId(stack, stack.functions.handlers.token) });
    expect(outputs['VoiceFunctionName']?.Value).toEqual({ Ref: logicalId(stack, stack.functions.handlers.voice) });
    expect(outputs['HangupFunctionName']?.Value).toEqual({ Ref: logicalId(stack, stack.functions.handlers.hangup) });
    expect(outputs['StatusFunctionName']?.Value).toEqual({ Ref: logicalId(stack, stack.functions.handlers.status) });
    expect(outputs['AccessLogGroupName']?.Value).toEqual({ Ref: logicalId(stack, stack.api.accessLogs) });
  });

  it('prints the put-secret-value command for the Twilio secret with placeholders only', () => {
    const [, parts] = (outputs['NextStep']?.Value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
    expect(parts).toEqual([
      'aws secretsmanager put-secret-value --secret-id ',
      { Ref: logicalId(stack, stack.secrets.twilio) },
      expect.stringMatching(/^ --secret-string '\{.*\}'$/),
    ]);
    const json = JSON.parse(String(parts[2]).replace(/^ --secret-string '/, '').replace(/'$/, '')) as Record<string, string>;
    expect(Object.keys(json)).toEqual([...TWILIO_SECRET_FIELDS]);
    expect(json).toEqual({ accountSid: 'AC...', apiKeySid: 'SK...', apiKeySecret: '<api key secret>', twimlAppSid: 'AP...', callerId: '+1...', authToken: '<account auth token>' });
  });

  it('exposes no secret value in any output', () => {
    expect(JSON.stringify(outputs)).not.toMatch(/resolve:secretsmanager|SecretString/);
  });
});
