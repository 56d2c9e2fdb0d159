import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CfnElement } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { buildApp, CONFIG_CONTEXT_KEY, STAGE_CONTEXT_KEY, STAGES_CONTEXT_KEY, type BuiltApp } from '../../lib/app';
import type { ServiceConfig } from '../../lib/config';
import type { VoiceTokenStack } from '../../lib/voice-token-stack';

export const PROJECT_ROOT = path.join(__dirname, '..', '..');

/** `cdk.json` → `context`: the feature flags and the example `voiceToken` config the project ships. */
export function shippedContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
  return cdkJson.context;
}

/** The shipped `voiceToken` config object (the settings every stage shares). */
export function shippedConfig(): Record<string, unknown> {
  return shippedContext()[CONFIG_CONTEXT_KEY] as Record<string, unknown>;
}

/** The shipped `voiceTokenStages` object: each stage's overrides. */
export function shippedStages(): Record<string, Record<string, unknown>> {
  return shippedContext()[STAGES_CONTEXT_KEY] as Record<string, Record<string, unknown>>;
}

export interface Synthesized extends BuiltApp {
  /** The one stage built (`stage`, default `prod`). */
  readonly stack: VoiceTokenStack;
  readonly config: ServiceConfig;
  readonly template: Template;
}

/** Context for `buildApp` without esbuild bundling (CDK's `aws:cdk:bundling-stacks`), unless `bundle` is set. */
function bundlingContext(bundle: boolean | undefined): Record<string, unknown> {
  return bundle ? {} : { 'aws:cdk:bundling-stacks': [] };
}

/**
 * Builds one stage (`-c stage=<stage>`, default `prod`) through the same `buildApp` as `bin/app.ts`, from
 * the shipped context with optional overrides laid over that stage's block (so they win over both the
 * shared block and the shipped stage block). esbuild bundling is skipped unless `bundle` is set: template
 * assertions do not need the code, and the nag test bundles for real.
 */
export function synthesize(options: { config?: Record<string, unknown>; stage?: string; bundle?: boolean } = {}): Synthesized {
  const stage = options.stage ?? 'prod';
  const stages = shippedStages();
  const context: Record<string, unknown> = {
    ...shippedContext(),
    [STAGES_CONTEXT_KEY]: { ...stages, [stage]: { ...stages[stage], ...options.config } },
    [STAGE_CONTEXT_KEY]: stage,
    ...bundlingContext(options.bundle),
  };
  const built = buildApp({ context });
  const only = built.stages[0];
  if (built.stages.length !== 1 || !only) throw new Error(`expected one stage, built ${built.stages.length}`);
  return { ...built, stack: only.stack, config: only.config, template: Template.fromStack(only.stack) };
}

/** Builds the app from `context` laid over the shipped context, every stage unless it names one (as `cdk synth` does). */
export function synthesizeApp(context: Record<string, unknown> = {}, options: { bundle?: boolean } = {}): BuiltApp {
  return buildApp({ context: { ...shippedContext(), ...context, ...bundlingContext(options.bundle) } });
}

/** Logical id of a construct's CloudFormation resource (its default child for L2 constructs). */
export function logicalId(stack: Stack, construct: IConstruct): string {
  const element = (construct.node.defaultChild ?? construct) as CfnElement;
  return stack.getLogicalId(element);
}

export interface PolicyStatement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

/** Every statement of the identity policies attached to the role with this logical id. */
export function statementsOfRole(template: Template, roleLogicalId: string): PolicyStatement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p) => JSON.stringify(p['Properties']['Roles']).includes(`"${roleLogicalId}"`))
    .flatMap((p) => p['Properties']['PolicyDocument']['Statement'] as PolicyStatement[]);
}

/** A statement's actions as a list. */
export function actionsOf(statement: PolicyStatement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}
