/**
 * The whole API on this machine, on embedded parts. The same handlers and authorizer as the
 * stack run behind a local gateway on 127.0.0.1:${PORT:-3000}, with dynalite as DynamoDB, a Secrets
 * Manager stand-in serving secrets generated into `.local/`, the local Supabase-style issuer (JWKS on the
 * same port) and a Twilio stand-in (or real Twilio when TWILIO_* credentials are set).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Server, createServer } from 'node:http';
import { ENV } from '../lambdas/shared/config';
import { STATUS_CALLBACK_PATH } from '../lib/routes';
import { demoServer } from './demo-server';
import { createGateway } from './gateway';
import { close, listen } from './http-util';
import { loadLocalSecrets } from './keys';
import { startEmbeddedTable } from './table';
import { secretsManagerStandIn } from './secrets-manager';
import { DEFAULT_TIMING, type TwilioStandIn, twilioStandIn } from './twilio-standin';

export interface LocalOptions {
  /** Gateway port; 0 picks a free one. Default: $PORT or 3000. */
  readonly port?: number;
  /** Extra environment for the functions (limits, origins…), applied before they load. */
  readonly env?: Readonly<Record<string, string>>;
  readonly log?: (line: string) => void;
  /** Demo page port; 'off' serves no demo. Default: $DEMO_PORT, else the gateway's port + 1 (0 when that is 0). */
  readonly demoPort?: number | 'off';
}

export interface LocalApi {
  readonly url: string;
  readonly port: number;
  readonly issuer: string;
  /** Undefined when real Twilio is configured. */
  readonly twilio: TwilioStandIn | undefined;
  /** The demo page (its own origin, on the default allowlist), or undefined when it is off. */
  readonly demoUrl: string | undefined;
  stop(): Promise<void>;
}

const TABLE = 'voice-token-local';

export async function startLocal(options: LocalOptions = {}): Promise<LocalApi> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const secrets = await loadLocalSecrets();
  const servers: Server[] = [];

  // Embedded DynamoDB, in memory. The stand-ins of AWS services answer only requests signed with this run's random access key id.
  const accessKeyId = `LOCAL${randomBytes(8).toString('hex').toUpperCase()}`;
  const dynamo = await startEmbeddedTable(TABLE, accessKeyId);
  const dynamoEndpoint = dynamo.endpoint;

  // Twilio: real when credentials are configured, else the loopback stand-in.
  const real = process.env['TWILIO_ACCOUNT_SID'] && process.env['TWILIO_API_KEY_SID'] && process.env['TWILIO_API_KEY_SECRET'];
  const twilioSecret = real
    ? {
        accountSid: process.env['TWILIO_ACCOUNT_SID']!,
        apiKeySid: process.env['TWILIO_API_KEY_SID']!,
        apiKeySecret: process.env['TWILIO_API_KEY_SECRET']!,
        ...(process.env['TWILIO_TWIML_APP_SID'] ? { twimlAppSid: process.env['TWILIO_TWIML_APP_SID'] } : {}),
        ...(process.env['TWILIO_VOICE_URL'] ? { voiceUrl: process.env['TWILIO_VOICE_URL'] } : {}),
        callerId: process.env['TWILIO_CALLER_ID'] ?? '',
        ...(process.env['TWILIO_AUTH_TOKEN'] ? { authToken: process.env['TWILIO_AUTH_TOKEN'] } : {}),
      }
    : secrets.twilio;
  let twilio: TwilioStandIn | undefined;
  let twilioBase = '';
  if (!real) {
    const talk = Number(options.env?.['TWILIO_STANDIN_TALK_SECONDS'] ?? process.env['TWILIO_STANDIN_TALK_SECONDS']);
    const timing = Number.isFinite(talk) && talk > 0 ? { ...DEFAULT_TIMING, talkMs: talk * 1000 } : DEFAULT_TIMING;
    twilio = twilioStandIn(secrets.twilio as { accountSid: string; apiKeySid: string; apiKeySecret: string; authToken: string }, timing);
    servers.push(twilio.server);
    twilioBase = `http://127.0.0.1:${await listen(twilio.server, 0)}`;
  }

  // Secrets Manager stand-in, holding the generated local secrets.
  const sm = secretsManagerStandIn(
    new Map([
      ['local/twilio', JSON.stringify(twilioSecret)],
      ['local/encryption-keys', JSON.stringify(secrets.encryptionKeys)],
    ]),
    accessKeyId,
  );
  servers.push(sm);
  const smEndpoint = `http://127.0.0.1:${await listen(sm, 0)}`;

  const port = options.port ?? Number(process.env['PORT'] ?? 3000);
  // The gateway must know its port before the functions load (the issuer URL is part of their config):
  // claim it with a bare server (this also resolves PORT=0 to a free port), then hand it over.
  const probe = createServer();
  const actualPort = await listen(probe, port);
  await close(probe);
  const url = `http://127.0.0.1:${actualPort}`;

  // The demo page is a second origin, as a real frontend is; it joins the allowlist only by default.
  const chosen = options.demoPort ?? process.env['DEMO_PORT'];
  const demoSetting = chosen ?? (port === 0 ? 0 : actualPort + 1);
  let demoUrl: string | undefined;
  if (demoSetting !== 'off') {
    const demo = demoServer({ apiUrl: url, apiPort: actualPort });
    try {
      demoUrl = `http://127.0.0.1:${await listen(demo, Number(demoSetting))}`;
      servers.push(demo);
    } catch (err) {
      // The API matters more than the demo: a busy default port only turns the demo off.
      if (chosen !== undefined || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      log(`Demo page off: port ${demoSetting} is in use (choose one with DEMO_PORT).`);
    }
  }

  const env: Record<string, string> = {
    // The SDK's "Node 22 needed from 2027" notice concerns this machine's Node, not the Lambda runtime (nodejs24.x).
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: smEndpoint,
    [ENV.TABLE_NAME]: TABLE,
    [ENV.TWILIO_SECRET_ID]: 'local/twilio',
    [ENV.ENCRYPTION_KEYS_SECRET_ID]: 'local/encryption-keys',
    [ENV.USAGE_KEY]: secrets.usageKey,
    [ENV.SUPABASE_URL]: url,
    [ENV.ALLOWED_ORIGINS]: process.env['ALLOWED_ORIGINS'] ?? ['http://localhost:5173', ...(demoUrl ? [demoUrl] : [])].join(','),
    [ENV.DIAL_PREFIXES]: process.env['DIAL_PREFIXES'] ?? '+1,+44',
    // Where Twilio reports call progress: this gateway for the stand-in; with real Twilio, a public URL
    // (a tunnel to this port) in PUBLIC_BASE_URL, since Twilio cannot reach 127.0.0.1.
    [ENV.STATUS_CALLBACK_URL]: `${process.env['PUBLIC_BASE_URL'] ?? url}${STATUS_CALLBACK_PATH}`,
    POWERTOOLS_SERVICE_NAME: 'voice-token-local',
    ...(twilioBase ? { [ENV.TWILIO_API_BASE_URL]: twilioBase } : {}),
    ...(options.env ?? {}),
  };
  Object.assign(process.env, env);

  // Loaded only now, so their module-scope config reads the environment above: exactly as on Lambda.
  const [authorizer, token, voice, hangup, status] = await Promise.all([
    import('../lambdas/authorizer/handler'),
    import('../lambdas/token/handler'),
    import('../lambdas/voice/handler'),
    import('../lambdas/hangup/handler'),
    import('../lambdas/status/handler'),
  ]);
  const jwks = JSON.stringify({ keys: [secrets.issuer.publicJwk] });
  // The API's own description (docs/openapi.json), with this run's URL as its first server.
  const openapi = localOpenApi(url);
  const gateway = createGateway({
    functions: { token: token.handler, voice: voice.handler, hangup: hangup.handler, status: status.handler },
    authorizer: authorizer.handler,
    authorizerCacheTtlSeconds: Number(process.env['AUTHORIZER_CACHE_TTL_SECONDS'] ?? 60),
    stage: 'local',
    staticRoutes: {
      '/auth/v1/.well-known/jwks.json': () => ({ contentType: 'application/json', body: jwks }),
      '/openapi.json': () => ({ contentType: 'application/json', body: openapi }),
    },
    accessLog: (line) => log(line),
  });
  servers.push(gateway);
  await listen(gateway, actualPort);

  return {
    url,
    port: actualPort,
    issuer: `${url}/auth/v1`,
    twilio,
    demoUrl,
    stop: async () => {
      await Promise.all([...servers.map(close), dynamo.stop()]);
    },
  };
}

export function banner(api: LocalApi): string {
  const origins = process.env['ALLOWED_ORIGINS'] ?? 'http://localhost:5173';
  const port = api.port === 3000 ? '' : `PORT=${api.port} `;
  return `
Voice token API (local) listening on ${api.url}
  issuer JWKS: ${api.url}/auth/v1/.well-known/jwks.json
  OpenAPI:     ${api.url}/openapi.json
  demo page:   ${api.demoUrl ? `${api.demoUrl}/${origins.split(',').includes(api.demoUrl) ? '' : '  (not in ALLOWED_ORIGINS: the browser will block its requests)'}` : 'off'}
  Twilio:      ${api.twilio ? 'local stand-in (no real calls)' : 'REAL Twilio (TWILIO_* credentials set)'}
  origins:     ${origins}

Try it (in another terminal):
  TOKEN=$(${port}npm run -s dev:token -- --sub 3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f)
  API=${api.url}
  curl -s -X POST $API/api/twilio/token -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{}'
  curl -s -X POST $API/api/twilio/voice -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"to":"+14155550123"}'
  curl -s -X POST $API/api/twilio/hangup -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"callSid":"<sid from the call above>"}'
(The README has the full session.) Ctrl-C stops it.
`;
}

/** docs/openapi.json with the running local API as its first server. */
function localOpenApi(url: string): string {
  const doc = JSON.parse(readFileSync(join(__dirname, '../docs/openapi.json'), 'utf8')) as { servers?: { url: string; description?: string }[] };
  doc.servers = [{ url, description: 'This local mode' }, ...(doc.servers ?? []).filter((s) => !s.url.startsWith('http://127.0.0.1'))];
  return JSON.stringify(doc, null, 2);
}
