import * as path from 'node:path';
import { RemovalPolicy, Validations, type Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, LogLevel } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { ConfigError } from '../config';
import type { FunctionName } from '../routes';

/** Repository root, so entries resolve the same from `bin/`, `lib/` and tests. */
const PROJECT_ROOT = path.join(__dirname, '..', '..');

/**
 * esbuild emits ESM, but some bundled dependencies (twilio's CommonJS parts) still call `require` for
 * Node built-ins. ESM has no `require`, so the bundle defines one (esbuild's documented workaround,
 * https://github.com/evanw/esbuild/issues/1921). The alias avoids clashing with a bundled `createRequire`.
 */
const ESM_REQUIRE_BANNER =
  "import { createRequire as __voiceTokenCreateRequire } from 'node:module'; const require = __voiceTokenCreateRequire(import.meta.url);";

/** The esbuild settings of every function, exported so `npm run bench` builds exactly what the stack deploys. */
export const BUNDLING = {
  minify: true,
  sourceMap: true,
  // Line mappings are enough for stack traces; leaving the sources out keeps the zip small.
  sourcesContent: false,
  format: OutputFormat.ESM,
  target: 'node24',
  mainFields: ['module', 'main'],
  banner: ESM_REQUIRE_BANNER,
  // Bundle everything, @aws-sdk included (NodejsFunction leaves @aws-sdk/* external by default).
  externalModules: [] as string[],
  logLevel: LogLevel.WARNING,
  forceDockerBundling: false,
};

export interface BaseFunctionProps {
  /** Folder under `lambdas/` holding `handler.ts` (which exports `handler`). */
  readonly handlerDir: FunctionName | 'authorizer';
  /** What the function does, shown in the Lambda console. */
  readonly description: string;
  /** Memory in MB; it also buys CPU (Lambda allocates CPU in proportion to memory). */
  readonly memorySize: number;
  /** Hard time limit. */
  readonly timeout: Duration;
  /** Retention of the function's log group, days (from `logRetentionDays`). */
  readonly logRetentionDays: number;
  /** Environment: names, ARNs and limits only, never secret values. */
  readonly environment: Readonly<Record<string, string>>;
  /** Reserved concurrency. @default - none, the function shares the account's unreserved pool */
  readonly reservedConcurrentExecutions?: number;
  /**
   * Packages left out of the bundle, for code paths this deployment never takes (the runtime's copy would
   * serve them). @default - none: everything is bundled
   */
  readonly externalModules?: readonly string[];
}

/**
 * Every Lambda default in one place: Node.js 24 on arm64, bundled by the local esbuild into one
 * minified ESM file with source maps (AWS SDK included: the runtime's SDK version is not pinned, so
 * bundling it keeps the tested version), X-Ray tracing, and an explicit log group with retention.
 *
 * Each function gets its own role without the `AWSLambdaBasicExecutionRole` managed policy: the role
 * may write only to the function's own log group.
 *
 * Meant for synchronously invoked functions (API Gateway handlers and authorizers): the dead-letter
 * rule is acknowledged here because no asynchronous invocation exists to dead-letter.
 */
export class BaseFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: BaseFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: retentionFor(props.logRetentionDays),
      // Logs are the audit trail of token operations: keep them after a teardown; retention still expires them.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the ${props.handlerDir} function`,
    });
    logGroup.grantWrite(role);

    super(scope, id, {
      entry: path.join(PROJECT_ROOT, 'lambdas', props.handlerDir, 'handler.ts'),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      role,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      environment: {
        ...props.environment,
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: { ...BUNDLING, externalModules: [...(props.externalModules ?? BUNDLING.externalModules)] },
    });

    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Only X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) uses Resource *: X-Ray has no resource-level permissions. Every other statement names its log group, table, key or secret.',
    });
    Validations.of(this).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason:
        'Invoked synchronously by API Gateway (handlers and authorizer): errors go back to the caller, and a dead-letter queue only ever receives asynchronous invocations.',
    });
  }
}

/**
 * CloudWatch Logs accepts only certain retention periods; checking here turns a deploy-time failure
 * into a synth-time error that names the key.
 */
export function retentionFor(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number' && v !== logs.RetentionDays.INFINITE);
  if (!allowed.includes(days)) {
    throw new ConfigError('logRetentionDays', `CloudWatch Logs does not offer ${days} days`, `use one of ${allowed.join(', ')}`);
  }
  return days as logs.RetentionDays;
}
