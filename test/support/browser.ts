import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LocalSecrets } from '../../local/keys';
import type { LocalApi } from '../../local/server';

/** Debian's Chromium, driven by playwright-core; the browser tests skip (with a note) where it is absent. */
export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);
/** Where the browser tests leave their screenshots. */
export const ARTIFACTS = resolve(__dirname, '../../test-artifacts');

/**
 * Local mode in this process for a browser test: free ports, the demo page on, its own `.local/` secrets in a
 * fresh temporary directory, function logs off. Returns the running API and the secrets it generated.
 */
export async function startLocalForBrowser(dirPrefix: string, options: { env?: Record<string, string>; log?: (line: string) => void } = {}): Promise<{ api: LocalApi; secrets: LocalSecrets }> {
  mkdirSync(ARTIFACTS, { recursive: true });
  process.env['LOCAL_DIR'] = mkdtempSync(join(tmpdir(), dirPrefix));
  const { startLocal } = await import('../../local/server');
  const api = await startLocal({
    port: 0,
    demoPort: 0,
    log: options.log ?? (() => undefined),
    env: { POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true', ...options.env },
  });
  const secrets = JSON.parse(readFileSync(join(process.env['LOCAL_DIR'], 'secrets.json'), 'utf8')) as LocalSecrets;
  return { api, secrets };
}
