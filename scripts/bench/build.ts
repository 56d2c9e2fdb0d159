import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { BUNDLING } from '../../lib/constructs/base-function';
import { AUTHORIZER_EXTERNALS } from '../../lib/constructs/functions';

/** The five functions of the stack, by their folder under `lambdas/`. */
export const FUNCTIONS = ['authorizer', 'token', 'voice', 'hangup', 'status'] as const;
export type FunctionId = (typeof FUNCTIONS)[number];

/** Reference builds: what a function cannot avoid loading, and what a naive build would load. */
export const REFERENCES = ['empty', 'dynamodb', 'secrets', 'dynamodb+secrets', 'twilio-accesstoken', 'twilio-full', 'naive-voice'] as const;
export type ReferenceId = (typeof REFERENCES)[number];

export interface Bundle {
  readonly id: FunctionId | ReferenceId;
  readonly kind: 'function' | 'reference';
  readonly file: string;
  readonly bytes: number;
}

const ROOT = join(__dirname, '..', '..');
const abs = (p: string) => JSON.stringify(join(ROOT, p));
// Placeholder credentials shaped like Twilio's: the reference clients are constructed, never used.
const TWILIO_ARGS = "'SK00000000000000000000000000000000', 'secret', { accountSid: 'AC00000000000000000000000000000000' }";

/** Entry sources of the reference builds. Each constructs its clients at module scope, as a handler would. */
const REFERENCE_SOURCES: Record<ReferenceId, string> = {
  empty: `export const handler = async () => ({ statusCode: 200, body: '' });`,
  dynamodb: `import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AWS_CLIENT_OPTIONS } from ${abs('lambdas/shared/aws')};
const db = new DynamoDBClient(AWS_CLIENT_OPTIONS);
export const handler = async () => db.config.serviceId;`,
  secrets: `import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AWS_CLIENT_OPTIONS } from ${abs('lambdas/shared/aws')};
const sm = new SecretsManagerClient(AWS_CLIENT_OPTIONS);
export const handler = async () => sm.config.serviceId;`,
  'dynamodb+secrets': `import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AWS_CLIENT_OPTIONS } from ${abs('lambdas/shared/aws')};
const db = new DynamoDBClient(AWS_CLIENT_OPTIONS);
const sm = new SecretsManagerClient(AWS_CLIENT_OPTIONS);
export const handler = async () => [db.config.serviceId, sm.config.serviceId];`,
  'twilio-accesstoken': `import AccessToken from 'twilio/lib/jwt/AccessToken';
export const handler = async () => new AccessToken('AC00000000000000000000000000000000', 'SK00000000000000000000000000000000', 'secret', { identity: 'x' }).toJwt();`,
  'twilio-full': `import twilio from 'twilio';
const client = twilio(${TWILIO_ARGS});
export const handler = async () => client.accountSid;`,
  // The voice handler as a naive build would ship it: the whole twilio package, its client built at module
  // scope and its Calls resource (the one voice uses) loaded.
  'naive-voice': `import twilio from 'twilio';
export { handler } from ${abs('lambdas/voice/handler')};
const client = twilio(${TWILIO_ARGS});
export const calls = client.calls;`,
};

/**
 * Builds every function bundle with the stack's esbuild settings (`BUNDLING` of the base function construct),
 * and the reference bundles with the same settings, into `outDir`. Source maps are left out: they do not
 * change the code that runs, and `--enable-source-maps` is only paid when an error is printed.
 */
export async function buildAll(outDir: string): Promise<Bundle[]> {
  const entries: { id: Bundle['id']; kind: Bundle['kind']; entry: string }[] = [];
  for (const fn of FUNCTIONS) entries.push({ id: fn, kind: 'function', entry: join(ROOT, 'lambdas', fn, 'handler.ts') });
  const refDir = join(outDir, 'reference-src');
  mkdirSync(refDir, { recursive: true });
  for (const ref of REFERENCES) {
    const entry = join(refDir, `${ref.replace('+', '-')}.ts`);
    writeFileSync(entry, `${REFERENCE_SOURCES[ref]}\n`);
    entries.push({ id: ref, kind: 'reference', entry });
  }
  const esm = BUNDLING.format === OutputFormat.ESM;
  return Promise.all(
    entries.map(async ({ id, kind, entry }) => {
      const file = join(outDir, kind, `${id.replace('+', '-')}.${esm ? 'mjs' : 'cjs'}`);
      await build({
        entryPoints: [entry],
        outfile: file,
        bundle: true,
        platform: 'node',
        format: esm ? 'esm' : 'cjs',
        minify: BUNDLING.minify,
        target: BUNDLING.target,
        mainFields: BUNDLING.mainFields,
        banner: { js: BUNDLING.banner },
        // As the stack builds them with the default config (no legacy JWT secret).
        external: id === 'authorizer' ? [...AUTHORIZER_EXTERNALS] : BUNDLING.externalModules,
        sourcemap: false,
        logLevel: 'error',
        // Reference entries live in a temp dir: resolve packages from the project.
        nodePaths: [join(ROOT, 'node_modules')],
      });
      return { id, kind, file, bytes: statSync(file).size };
    }),
  );
}
