import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIT_FIELDS, AUDIT_MESSAGE, METRIC, METRICS_NAMESPACE } from '../../lambdas/shared/observability';
import { type LocalSecrets, signDevToken } from '../../local/keys';
import { send } from '../support/http';
import { registerCanary } from '../support/log-capture';
import { type LocalProcess, startLocalProcess } from '../support/local-process';

/**
 * Local mode writes the same audit lines and embedded-metric-format lines to stdout as the functions write to
 * CloudWatch Logs on Lambda: driven over HTTP, `npm start` prints one audit line per request with the fields the
 * runbook queries use, and the metrics the alarms watch. Nothing secret appears in that output.
 */

let api: LocalProcess;
let secrets: LocalSecrets;
const sentTokens: string[] = [];

beforeAll(async () => {
  api = await startLocalProcess({ ALLOWED_ORIGINS: 'http://localhost:5173', IP_TOKEN_LIMIT_PER_MINUTE: '2' });
  secrets = JSON.parse(readFileSync(join(api.localDir, 'secrets.json'), 'utf8')) as LocalSecrets;
  registerCanary(secrets.twilio['apiKeySecret']!, secrets.usageKey, String(secrets.issuer.privateJwk.d), ...Object.values(secrets.encryptionKeys.keys));
}, 60_000);

afterAll(async () => {
  await api.stop();
});

async function token(): Promise<string> {
  const t = await signDevToken(secrets, { issuer: `${api.url}/auth/v1`, sub: randomUUID(), ttlSeconds: 600, claims: {} });
  sentTokens.push(t);
  registerCanary(t);
  return t;
}

const post = (path: string, t: string | undefined, body: unknown, localAddress: string) =>
  send(`${api.url}${path}`, {
    headers: { 'Content-Type': 'application/json', ...(t ? { Authorization: `Bearer ${t}` } : {}) },
    body: JSON.stringify(body),
    localAddress,
  });

const jsonLines = () =>
  api
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const audits = () => jsonLines().filter((l) => l['message'] === AUDIT_MESSAGE);
const metricNames = () =>
  jsonLines()
    .filter((l) => typeof l['_aws'] === 'object')
    .flatMap((l) => (l['_aws'] as { CloudWatchMetrics: { Namespace: string; Metrics: { Name: string }[] }[] }).CloudWatchMetrics.filter((d) => d.Namespace === METRICS_NAMESPACE).flatMap((d) => d.Metrics.map((m) => m.Name)));

/** Waits for output the child may not have flushed yet. */
async function eventually(check: () => void): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return check();
    } catch (err) {
      if (i > 40) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test('a session, a call and a hangup each write an audit line and count their metric', async () => {
  const t = await token();
  const ip = '127.0.1.1';
  expect((await post('/api/twilio/token', t, {}, ip)).status).toBe(200);
  expect((await post('/api/twilio/token', t, {}, ip)).status).toBe(200);
  const placed = await post('/api/twilio/voice', t, { to: '+14155550123' }, ip);
  expect(placed.status).toBe(201);
  const sid = placed.json<{ call: { sid: string } }>().call.sid;
  expect((await post('/api/twilio/hangup', t, { callSid: sid }, ip)).status).toBe(200);

  await eventually(() => {
    const mine = audits().filter((l) => l['sourceIp'] === ip && l['operation'] !== 'authorizer');
    expect(mine.map((l) => [l['operation'], l['outcome'], l['reason'], l['status']])).toEqual([
      ['token', 'issued', 'new_session', 200],
      ['token', 'reused', 'session_valid', 200],
      ['voice', 'issued', 'call_placed', 201],
      ['hangup', 'ended', 'ended', 200],
    ]);
    for (const line of mine) for (const field of AUDIT_FIELDS) expect(line).toHaveProperty(field);
    expect(mine[2]).toMatchObject({ callSid: sid, to: '+1********23' });
    expect(metricNames()).toEqual(expect.arrayContaining([METRIC.TokensIssued, METRIC.SessionsReused, METRIC.CallsStarted, METRIC.CallsEnded]));
  });
});

test('the authorizer audits its decisions, allowed and denied, with the denial reason', async () => {
  const ip = '127.0.1.2';
  expect((await post('/api/twilio/token', await token(), {}, ip)).status).toBe(200);
  expect((await post('/api/twilio/token', 'not-a-jwt', {}, ip)).status).toBe(401);

  await eventually(() => {
    const decisions = audits().filter((l) => l['sourceIp'] === ip && l['operation'] === 'authorizer');
    expect(decisions.map((l) => [l['outcome'], l['reason']])).toEqual([
      ['allowed', 'valid_session'],
      ['denied', 'malformed_token'],
    ]);
    expect(metricNames()).toContain(METRIC.AuthDenied);
  });
});

test('a rate-limited request is audited as limited with its limiter and counted', async () => {
  const ip = '127.0.1.3';
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await post('/api/twilio/token', await token(), {}, ip)).status);
  expect(statuses).toEqual([200, 200, 429]);

  await eventually(() => {
    expect(audits().filter((l) => l['sourceIp'] === ip && l['outcome'] === 'limited')).toEqual([expect.objectContaining({ operation: 'token', reason: 'ip_limit', status: 429 })]);
    expect(metricNames()).toContain(METRIC.RateLimited);
  });
});

test('no token, key, secret or full phone number appears in the output', () => {
  const out = api.output();
  const canaries = [...sentTokens, secrets.twilio['apiKeySecret']!, secrets.usageKey, String(secrets.issuer.privateJwk.d), ...Object.values(secrets.encryptionKeys.keys)];
  for (const c of canaries) expect(out).not.toContain(c);
  expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  // The start-up banner's curl example shows a number; log lines never do.
  expect(jsonLines().map((l) => JSON.stringify(l)).join('\n')).not.toContain('+14155550123');
  expect(jsonLines().map((l) => JSON.stringify(l)).join('\n')).not.toMatch(/Bearer /);
});
