import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks, type NagPack } from 'cdk-nag';
import { ConfigError, parseConfig, type ServiceConfig } from './config';
import { VoiceTokenStack } from './voice-token-stack';

/** The context key holding the service configuration (`cdk.json` → `context.voiceToken`, or `-c voiceToken=<json>`). */
export const CONFIG_CONTEXT_KEY = 'voiceToken';
/** Stack id, and so the CloudFormation stack name. */
export const STACK_ID = 'TwilioVoiceToken';

export interface BuiltApp {
  readonly app: App;
  readonly stack: VoiceTokenStack;
  readonly config: ServiceConfig;
  /** The cdk-nag packs registered on the app; tests call `validateScope(app)` on them. */
  readonly nagPacks: readonly NagPack[];
}

/**
 * Reads and validates the service configuration from context. `-c voiceToken='<json>'` arrives as a
 * string, `cdk.json` context as an object; both are accepted.
 * @throws ConfigError naming the bad key and the fix.
 */
export function readConfig(app: App): ServiceConfig {
  let raw: unknown = app.node.tryGetContext(CONFIG_CONTEXT_KEY);
  if (typeof raw === 'string') {
    try {
      raw = JSON.parse(raw);
    } catch (cause) {
      throw new ConfigError('', `-c ${CONFIG_CONTEXT_KEY}=... is not valid JSON (${(cause as Error).message})`, `pass a JSON object, e.g. -c ${CONFIG_CONTEXT_KEY}='{"allowedOrigins":["https://app.example.com"],...}'`);
    }
  }
  return parseConfig(raw);
}

/**
 * Builds the app exactly as `cdk synth` does: validated config, the stack, and cdk-nag's AwsSolutions
 * and Serverless packs as policy-validation plugins (synthesis fails on any unacknowledged finding).
 * `bin/app.ts` calls it with no props (the CLI supplies `cdk.json` context); tests pass `context`.
 */
export function buildApp(props: AppProps = {}): BuiltApp {
  const app = new App(props);
  const config = readConfig(app);
  const stack = new VoiceTokenStack(app, STACK_ID, {
    config,
    description: 'Server-side Twilio Voice token service (API Gateway, Lambda, DynamoDB, Secrets Manager)',
    env: { account: process.env['CDK_DEFAULT_ACCOUNT'], region: process.env['CDK_DEFAULT_REGION'] },
  });
  const nagPacks = [new AwsSolutionsChecks(app), new ServerlessChecks(app)];
  Validations.of(app).addPlugins(...nagPacks);
  return { app, stack, config, nagPacks };
}
