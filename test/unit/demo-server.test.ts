import type { Server } from 'node:http';
import { demoServer } from '../../local/demo-server';
import { close, listen } from '../../local/http-util';
import { send } from '../support/http';

/** The demo page's server: what it serves, under which headers, and nothing else. */

const API = 'http://127.0.0.1:3456';
let server: Server;
let base: string;

beforeAll(async () => {
  server = demoServer({ apiUrl: API, apiPort: 3456 });
  base = `http://127.0.0.1:${await listen(server, 0)}`;
});

afterAll(() => close(server));

test('serves the page with the API URL and the dev:token command for its port', async () => {
  const r = await send(`${base}/`, { method: 'GET' });
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
  expect(r.text).toContain(`<meta name="voice-api-url" content="${API}">`);
  expect(r.text).toContain('PORT=3456 npm run -s dev:token');
  expect(r.text).not.toContain('{{');
});

test('locks the page down with a CSP that allows connections to the API only', async () => {
  const r = await send(`${base}/`, { method: 'GET' });
  const csp = String(r.headers['content-security-policy']);
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain(`connect-src ${API};`);
  expect(csp).toContain("frame-ancestors 'none'");
  expect(r.headers['cache-control']).toBe('no-store');
  expect(r.headers['x-content-type-options']).toBe('nosniff');
});

test('serves the typed client compiled to plain JavaScript', async () => {
  const r = await send(`${base}/voice-client.js`, { method: 'GET' });
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
  expect(r.text).toContain('export {');
  expect(r.text).toContain('createVoiceClient');
  expect(r.text).not.toMatch(/:\s*VoiceClientOptions\b/); // no type annotations left
});

test.each([
  ['an unknown file', 'GET', '/secrets.json'],
  ['a prototype property name', 'GET', '/__proto__'],
  ['a path outside the demo', 'GET', '/../package.json'],
  ['another method', 'POST', '/'],
])('rejects %s with 404', async (_name, method, path) => {
  const r = await send(`${base}${path}`, { method });
  expect(r.status).toBe(404);
});
