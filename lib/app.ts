import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks, type NagPack } from 'cdk-nag';
import { ConfigError, inStage, parseStageConfig, PRODUCTION_STAGE, type ServiceConfig } from './config';
import { VoiceTokenStack } from './voice-token-stack';

/** The context key holding the settings shared by every stage (`cdk.json` → `context.voiceToken`, or `-c voiceToken=<json>`). */
export const CONFIG_CONTEXT_KEY = 'voiceToken';
/** The context key holding each stage's overrides: `{"dev": {...}, "staging": {...}, "prod": {...}}`. */
export const STAGES_CONTEXT_KEY = 'voiceTokenStages';
/** The context key choosing the one stage to synthesize (`-c stage=prod`); without it, every stage is. */
export const STAGE_CONTEXT_KEY = 'stage';
/** Prefix of every stack id (and so CloudFormation stack name): `TwilioVoiceToken-<stage>`. */
export const STACK_ID_PREFIX = 'TwilioVoiceToken';
/** Stack id of a stage, e.g. `TwilioVoiceToken-prod`. */
export const stackIdFor = (stage: string): string => `${STACK_ID_PREFIX}-${stage}`;

/** Stage keys become stack names and default API Gateway stage names: lower-case letters and digits. */
const STAGE_KEY = /^[a-z][a-z0-9]{0,19}$/;

export interface BuiltStage {
  /** The stage key, e.g. `prod`. */
  readonly stage: string;
  readonly stack: VoiceTokenStack;
  readonly config: ServiceConfig;
}

export interface BuiltApp {
  readonly app: App;
  /** The stages synthesized, in the order `voiceTokenStages` lists them (one when `-c stage` is given). */
  readonly stages: readonly BuiltStage[];
  /** The cdk-nag packs registered on the app; tests call `validateScope(app)` on them. */
  readonly nagPacks: readonly NagPack[];
}

/** A context value that may arrive as JSON text (`-c key='<json>'`) or as an object (`cdk.json`). */
function jsonContext(app: App, key: string, example: string): unknown {
  const raw: unknown = app.node.tryGetContext(key);
  if (typeof raw !== 'string') return raw;
  try {
    return JSON.parse(raw);
  } catch (cause) {
    throw new ConfigError('', `-c ${key}=... is not valid JSON (${(cause as Error).message})`, `pass a JSON object, e.g. -c ${key}='${example}'`, key);
  }
}

/**
 * Reads the shared settings from context, unvalidated (`parseStageConfig` validates each stage's merge).
 * `-c voiceToken='<json>'` arrives as a string, `cdk.json` context as an object; both are accepted.
 * @throws ConfigError when the string is not JSON.
 */
export function readSharedConfig(app: App): unknown {
  return jsonContext(app, CONFIG_CONTEXT_KEY, '{"allowedOrigins":["https://app.example.com"],...}');
}

/**
 * The stage blocks from context. Without `voiceTokenStages` the app has a single stage, `prod`, configured
 * by `voiceToken` alone.
 * @throws ConfigError on a non-object or a stage key that cannot name a stack.
 */
export function readStageBlocks(app: App): Readonly<Record<string, unknown>> {
  const raw = jsonContext(app, STAGES_CONTEXT_KEY, '{"dev":{},"prod":{}}');
  if (raw === undefined) return { [PRODUCTION_STAGE]: {} };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.keys(raw).length === 0) {
    throw new ConfigError('', `expected an object of stages, got ${JSON.stringify(raw)}`, 'set it to e.g. {"dev":{...},"staging":{...},"prod":{...}} (each block overrides voiceToken for that stage)', STAGES_CONTEXT_KEY);
  }
  for (const key of Object.keys(raw)) {
    if (!STAGE_KEY.test(key)) {
      throw new ConfigError(key, `"${key}" cannot name a stage (it becomes the stack name ${stackIdFor(key)} and the API stage)`, 'use 1 to 20 lower-case letters and digits, starting with a letter, e.g. "dev", "staging", "prod"', STAGES_CONTEXT_KEY);
    }
  }
  return raw as Record<string, unknown>;
}

/**
 * The stage keys to synthesize: the one `-c stage=<key>` names, or every stage.
 * @throws ConfigError for an unknown stage, listing the known ones.
 */
export function selectedStages(app: App, blocks: Readonly<Record<string, unknown>>): string[] {
  const known = Object.keys(blocks);
  const chosen: unknown = app.node.tryGetContext(STAGE_CONTEXT_KEY);
  if (chosen === undefined) return known;
  if (typeof chosen !== 'string' || !known.includes(chosen)) {
    throw new ConfigError('', `unknown stage ${JSON.stringify(chosen)}; the known stages are ${known.map((k) => `"${k}"`).join(', ')}`, `pass one of them, e.g. -c stage=${known[0] ?? PRODUCTION_STAGE}, or add a "${String(chosen)}" block to "${STAGES_CONTEXT_KEY}"`, STAGE_CONTEXT_KEY);
  }
  return [chosen];
}

/**
 * Twilio's signature covers the callback URL, and each stage checks it against its own: two stages with one
 * `publicBaseUrl` (typically one set in the shared block) would send one stage's callbacks to the other.
 * Checked across every stage, also when `-c stage` builds only one.
 * @throws ConfigError naming the stages that share a base URL.
 */
function checkDistinctCallbackUrls(shared: unknown, blocks: Readonly<Record<string, unknown>>): void {
  const sharedBase = (shared as Record<string, unknown> | undefined)?.['publicBaseUrl'];
  const owner = new Map<unknown, string>();
  for (const [stage, block] of Object.entries(blocks)) {
    const base = (block as Record<string, unknown> | undefined)?.['publicBaseUrl'] ?? sharedBase;
    if (base === undefined) continue;
    const other = owner.get(base);
    if (other !== undefined) {
      throw new ConfigError(
        'publicBaseUrl',
        `stages "${other}" and "${stage}" both use ${JSON.stringify(base)}, so Twilio's callbacks for one would reach the other`,
        `set publicBaseUrl in each stage's block of "${STAGES_CONTEXT_KEY}" (not in the shared block), one URL per stage, or leave it out to use each stage's own URL`,
      );
    }
    owner.set(base, stage);
  }
}

/**
 * Builds the app exactly as `cdk synth` does: for each selected stage, its validated config (shared
 * `voiceToken` merged with its `voiceTokenStages` block) and its own stack `TwilioVoiceToken-<stage>`,
 * then cdk-nag's AwsSolutions and Serverless packs as policy-validation plugins (synthesis fails on any
 * unacknowledged finding). `bin/app.ts` calls it with no props (the CLI supplies `cdk.json` context and
 * `-c stage`); tests pass `context`.
 * @throws ConfigError naming the stage, the bad key and the fix.
 */
export function buildApp(props: AppProps = {}): BuiltApp {
  const app = new App(props);
  const shared = readSharedConfig(app);
  const blocks = readStageBlocks(app);
  checkDistinctCallbackUrls(shared, blocks);
  const stages = selectedStages(app, blocks).map((stage): BuiltStage => {
    const config = parseStageConfig(shared, blocks[stage], stage);
    try {
      const stack = new VoiceTokenStack(app, stackIdFor(stage), {
        config,
        description: `Server-side Twilio Voice token service, ${stage} stage (API Gateway, Lambda, DynamoDB, Secrets Manager)`,
        env: { account: process.env['CDK_DEFAULT_ACCOUNT'], region: process.env['CDK_DEFAULT_REGION'] },
        tags: { 'voice-token:stage': stage },
      });
      return { stage, stack, config };
    } catch (err) {
      // Checks made while building (e.g. log retention) name the stage too.
      throw inStage(err, stage);
    }
  });
  const nagPacks = [new AwsSolutionsChecks(app), new ServerlessChecks(app)];
  Validations.of(app).addPlugins(...nagPacks);
  return { app, stages, nagPacks };
}
