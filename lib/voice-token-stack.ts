import { CfnOutput, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { ServiceConfig } from './config';
import { STATUS_CALLBACK_PATH } from './routes';
import { Api } from './constructs/api';
import { ServiceFunctions } from './constructs/functions';
import { Monitoring } from './constructs/monitoring';
import { Secrets, type TWILIO_SECRET_FIELDS } from './constructs/secrets';
import { TokenTable } from './constructs/token-table';

export interface VoiceTokenStackProps extends StackProps {
  /** Validated configuration (see `parseConfig`). */
  readonly config: ServiceConfig;
}

/** Placeholder values for the NextStep command: shapes only, never real credentials. */
const TWILIO_PLACEHOLDERS: Readonly<Record<(typeof TWILIO_SECRET_FIELDS)[number], string>> = {
  accountSid: 'AC...',
  apiKeySid: 'SK...',
  apiKeySecret: '<api key secret>',
  twimlAppSid: 'AP...',
  callerId: '+1...',
  authToken: '<account auth token>',
};

/** The server-side Twilio Voice token service. Wiring only: each concern lives in `lib/constructs/`. */
export class VoiceTokenStack extends Stack {
  public readonly table: TokenTable;
  public readonly secrets: Secrets;
  public readonly functions: ServiceFunctions;
  public readonly api: Api;
  public readonly monitoring: Monitoring;
  /** The URL Twilio posts call status to (`publicBaseUrl` or the stage URL, plus `/api/twilio/status`). */
  public readonly statusCallbackUrl: string;

  constructor(scope: Construct, id: string, props: VoiceTokenStackProps) {
    super(scope, id, props);
    const { config } = props;

    this.table = new TokenTable(this, 'TokenTable');
    this.secrets = new Secrets(this, 'Secrets', { legacyJwtSecret: config.legacyJwtSecret });
    this.functions = new ServiceFunctions(this, 'Functions', { config, table: this.table, secrets: this.secrets });
    this.api = new Api(this, 'Api', {
      config,
      authorizer: this.functions.authorizer,
      handlers: this.functions.handlers,
      usageKeySecret: this.secrets.usageKey,
    });
    // Set after the API exists. The default base is built from the API id and the configured stage name,
    // not the Stage resource, which would make the functions depend on the deployment that depends on them.
    this.statusCallbackUrl = `${config.publicBaseUrl ?? this.api.baseUrlForFunctions}${STATUS_CALLBACK_PATH}`;
    this.functions.setStatusCallbackUrl(this.statusCallbackUrl);

    this.monitoring = new Monitoring(this, 'Monitoring', {
      alarms: config.alarms,
      restApi: this.api.restApi,
      accessLogs: this.api.accessLogs,
      table: this.table.table,
      functions: { Authorizer: this.functions.authorizer, Token: this.functions.handlers.token, Voice: this.functions.handlers.voice, Hangup: this.functions.handlers.hangup, Status: this.functions.handlers.status },
    });

    const output = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    output('ApiUrl', this.api.url, 'Stage URL; append a route path, e.g. /api/twilio/token');
    output('TokenTableName', this.table.table.tableName, 'DynamoDB table of sessions, call records and counters');
    output('TwilioSecretName', this.secrets.twilio.secretName, 'Secret to fill with the Twilio credentials (see NextStep)');
    output('TwilioSecretArn', this.secrets.twilio.secretArn, 'ARN of the Twilio credentials secret');
    output('EncryptionKeysSecretName', this.secrets.encryptionKeys.secretName, 'Versioned token-encryption keys');
    output('UsageKeySecretName', this.secrets.usageKey.secretName, 'Value of the usage-plan API key (read by the authorizer)');
    if (this.secrets.legacyJwt) {
      output('LegacyJwtSecretName', this.secrets.legacyJwt.secretName, 'Put the legacy Supabase JWT secret here after deploy');
    }
    output('AuthorizerFunctionName', this.functions.authorizer.functionName, 'Lambda authorizer');
    output('TokenFunctionName', this.functions.handlers.token.functionName, 'POST and DELETE /api/twilio/token');
    output('VoiceFunctionName', this.functions.handlers.voice.functionName, 'POST /api/twilio/voice');
    output('HangupFunctionName', this.functions.handlers.hangup.functionName, 'POST /api/twilio/hangup');
    output('StatusFunctionName', this.functions.handlers.status.functionName, "POST /api/twilio/status (Twilio's call status callbacks)");
    output('StatusCallbackUrl', this.statusCallbackUrl, "URL Twilio posts call status to; Twilio's signature covers it exactly, so it must match the URL Twilio calls");
    output('AccessLogGroupName', this.api.accessLogs.logGroupName, 'API Gateway access logs (JSON)');
    output('AlarmTopicArn', this.monitoring.topic.topicArn, 'SNS topic every alarm notifies; subscribe on-call to it (docs/runbook.md)');
    output('DashboardUrl', this.monitoring.dashboardUrl, 'CloudWatch dashboard for on-call and the security team');
    output(
      'NextStep',
      Fn.join('', [
        'aws secretsmanager put-secret-value --secret-id ',
        this.secrets.twilio.secretArn,
        ` --secret-string '${JSON.stringify(TWILIO_PLACEHOLDERS)}'`,
      ]),
      'Run once after the first deploy with your Twilio values; until then the API answers 503',
    );
  }
}
