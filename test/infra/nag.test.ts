import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, Stack, Validations, type PolicyViolation } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks, ServerlessChecks, type NagPack } from 'cdk-nag';
import { logicalId, synthesize } from './support';

/**
 * cdk-nag 3 runs as a CDK policy-validation plugin. Its packs expose `validateScope(scope)`, which walks
 * the construct tree and returns `{ success, violations }` after applying `Validations.of(x).acknowledge`.
 * That is read directly here: annotations are no longer where findings go, so an Annotations-based
 * check would pass whatever the stack contained.
 */
function findings(packs: readonly NagPack[], app: App): string[] {
  return packs.flatMap((pack) =>
    pack.validateScope(app).violations.flatMap((v: PolicyViolation) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath ?? '?'}`)),
  );
}

describe('cdk-nag on the app as cdk synth builds it (esbuild bundling included)', () => {
  const built = synthesize({ bundle: true });

  it('registers the AwsSolutions and Serverless packs', () => {
    expect(built.nagPacks.map((p) => p.name)).toEqual(['AwsSolutions', 'Serverless']);
  });

  it('reports no unacknowledged finding', () => {
    expect(findings(built.nagPacks, built.app)).toEqual([]);
  });

  it('synthesizes through the policy-validation plugins without a failure', () => {
    // force: run synthesis (and so the registered plugins) again rather than return the cached assembly.
    expect(() => built.app.synth({ force: true })).not.toThrow();
  });

  it('bundles each function as one minified ESM file with a source map, defining require and bundling the AWS SDK', () => {
    const assembly = built.app.synth();
    const template = built.template.toJSON() as { Resources: Record<string, { Properties: { Code: { S3Key: string } } }> };
    for (const fn of built.stack.functions.all) {
      const s3Key = template.Resources[logicalId(built.stack, fn)]?.Properties.Code.S3Key ?? '';
      const dir = path.join(assembly.directory, `asset.${s3Key.replace(/\.zip$/, '')}`);
      const code = readFileSync(path.join(dir, 'index.mjs'), 'utf8');
      expect(code.startsWith("import { createRequire as __voiceTokenCreateRequire } from 'node:module'; const require = __voiceTokenCreateRequire(import.meta.url);")).toBe(true);
      expect(existsSync(path.join(dir, 'index.mjs.map'))).toBe(true);
      // An external SDK would appear as a minified top-level import (`import{…}from"@aws-sdk/…"`); the
      // SDK's own error messages mention `[import "@aws-sdk/…"]` with a space, which these do not match.
      expect(code).not.toContain('from"@aws-sdk/');
      expect(code).not.toContain('import"@aws-sdk/');
    }
  });
});

describe('cdk-nag on the legacy-JWT variant', () => {
  it('reports no unacknowledged finding', () => {
    const built = synthesize({ config: { legacyJwtSecret: true } });
    expect(findings(built.nagPacks, built.app)).toEqual([]);
  });
});

describe('the cdk-nag check itself (guards against a check that cannot fail)', () => {
  function nonCompliantApp(): { app: App; stack: Stack; bucket: s3.Bucket } {
    const app = new App();
    const stack = new Stack(app, 'NonCompliant');
    const bucket = new s3.Bucket(stack, 'Bucket');
    new dynamodb.Table(stack, 'Table', { partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING } });
    new lambda.Function(stack, 'Fn', { runtime: lambda.Runtime.NODEJS_20_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler = async () => {};') });
    return { app, stack, bucket };
  }

  it('fails on a bucket without SSL enforcement or access logs and a table without point-in-time recovery', () => {
    const { app } = nonCompliantApp();
    const result = findings([new AwsSolutionsChecks()], app);
    expect(result).toEqual(
      expect.arrayContaining([
        'AwsSolutions-S1 at NonCompliant/Bucket/Resource',
        'AwsSolutions-S10 at NonCompliant/Bucket/Resource',
        'AwsSolutions-DDB3 at NonCompliant/Table/Resource',
        'AwsSolutions-L1 at NonCompliant/Fn/Resource',
      ]),
    );
  });

  it('fails on a function without explicit memory, timeout or tracing', () => {
    const { app } = nonCompliantApp();
    const result = findings([new ServerlessChecks()], app);
    expect(result).toEqual(
      expect.arrayContaining([
        'Serverless-LambdaDefaultMemorySize at NonCompliant/Fn/Resource',
        'Serverless-LambdaDefaultTimeout at NonCompliant/Fn/Resource',
        'Serverless-LambdaTracing at NonCompliant/Fn/Resource',
      ]),
    );
  });

  it('lets an acknowledgement silence only the rule it names, on the construct it is attached to', () => {
    const { app, bucket } = nonCompliantApp();
    Validations.of(bucket).acknowledge({ id: 'AwsSolutions-S1', reason: 'test' });
    const result = findings([new AwsSolutionsChecks()], app);
    expect(result).not.toContain('AwsSolutions-S1 at NonCompliant/Bucket/Resource');
    expect(result).toContain('AwsSolutions-S10 at NonCompliant/Bucket/Resource');
  });

  it('fails synthesis when a registered pack finds a violation', () => {
    const { app } = nonCompliantApp();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-S10/);
  });
});
