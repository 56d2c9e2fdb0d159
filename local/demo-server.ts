import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { transformSync } from 'esbuild';

/**
 * Serves the demo page (`local/demo/`) on its own loopback port, so that the page is a real second origin
 * calling the API cross-origin with preflight, as a deployed frontend does. Local mode puts this origin on
 * its default allowlist; the browser tests also run a copy of it on a foreign origin.
 *
 * The page gets no token from here: the user pastes one from `npm run -s dev:token` (see the page). A
 * token-minting endpoint would let any web page the browser visits sign in to the local API.
 */

export interface DemoOptions {
  /** The API's base URL, written into the page; the page's CSP allows connections to it only. */
  readonly apiUrl: string;
  /** Shown in the page's `dev:token` example when the API is not on the default port. */
  readonly apiPort: number;
}

const root = resolve(__dirname, '..');

/** The typed client, compiled to plain ES2022 (type annotations stripped; it has no imports). */
function clientModule(): string {
  const source = readFileSync(join(root, 'client/src/voice-client.ts'), 'utf8');
  return transformSync(source, { loader: 'ts', format: 'esm', target: 'es2022' }).code;
}

export function demoServer(o: DemoOptions): Server {
  const apiOrigin = new URL(o.apiUrl).origin;
  const html = readFileSync(join(root, 'local/demo/index.html'), 'utf8')
    .replaceAll('{{API_URL}}', o.apiUrl)
    .replaceAll('{{PORT_PREFIX}}', o.apiPort === 3000 ? '' : `PORT=${o.apiPort} `);
  const files = new Map<string, { type: string; body: string }>([
    ['/', { type: 'text/html; charset=utf-8', body: html }],
    ['/index.html', { type: 'text/html; charset=utf-8', body: html }],
    ['/demo.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(join(root, 'local/demo/demo.js'), 'utf8') }],
    ['/demo.css', { type: 'text/css; charset=utf-8', body: readFileSync(join(root, 'local/demo/demo.css'), 'utf8') }],
    ['/voice-client.js', { type: 'text/javascript; charset=utf-8', body: clientModule() }],
  ]);
  const headers = {
    // Scripts and styles from this origin only, requests to the API only, no framing, no form posts.
    'Content-Security-Policy': `default-src 'none'; script-src 'self'; style-src 'self'; connect-src ${apiOrigin}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  };
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const file = req.method === 'GET' || req.method === 'HEAD' ? files.get(path) : undefined;
    if (!file) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('Not found\n');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': file.type });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  });
}
