import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CfnElement } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { buildApp, CONFIG_CONTEXT_KEY, type BuiltApp } from '../../lib/app';

export const PROJECT_ROOT = path.join(__dirname, '..', '..');

/** `cdk.json` → `context`: the feature flags and the example `voiceToken` config the project ships. */
export function shippedContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
  return cdkJson.context;
}

/** The shipped `voiceToken` config object. */
export function shippedConfig(): Record<string, unknown> {
  return shippedContext()[CONFIG_CONTEXT_KEY] as Record<string, unknown>;
}

export interface Synthesized extends BuiltApp {
  readonly template: Template;
}

/**
 * Builds the app through the same `buildApp` as `bin/app.ts`, from the shipped context with optional
 * config overrides. esbuild bundling is skipped unless `bundle` is set (CDK's `aws:cdk:bundling-stacks`
 * context): template assertions do not need the code, and the nag test bundles for real.
 */
export function synthesize(options: { config?: Record<string, unknown>; bundle?: boolean } = {}): Synthesized {
  const context: Record<string, unknown> = {
    ...shippedContext(),
    [CONFIG_CONTEXT_KEY]: { ...shippedConfig(), ...options.config },
    ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
  };
  const built = buildApp({ context });
  return { ...built, template: Template.fromStack(built.stack) };
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
