import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { type LocalSecrets, signDevToken } from '../../local/keys';
import type { LocalApi } from '../../local/server';
import { ARTIFACTS, CHROMIUM, haveChromium, startLocalForBrowser } from '../support/browser';

/**
 * A call ends on its own in the page: the demo page polls `getCall` while a call is live, and the Twilio
 * stand-in's far end hangs up after one second here (`TWILIO_STANDIN_TALK_SECONDS=1`), or is busy, or does not
 * answer. The page shows why the call ended and drops its Hang up button, with no click. Its own file (and so
 * its own local mode): the functions read their config once per process, and demo.test.ts needs 30 s calls.
 *
 * Skipped, with a note, only when /usr/bin/chromium is absent (as demo.test.ts).
 */

const maybe = haveChromium ? describe : describe.skip;
if (!haveChromium) test.skip(`browser tests (skipped: no Chromium at ${CHROMIUM}; apt-get install -y chromium)`, () => undefined);

maybe('a call in the demo page', () => {
  let api: LocalApi;
  let secrets: LocalSecrets;

  beforeAll(async () => {
    ({ api, secrets } = await startLocalForBrowser('voice-token-browser-ends-', { env: { TWILIO_STANDIN_TALK_SECONDS: '1' } }));
  }, 60_000);

  afterAll(async () => {
    if (api) await api.stop();
  });

  test.each([
    ['+14155550123', 'completed', 'the other side hung up'],
    ['+15005550002', 'busy', 'the line was busy'],
    ['+15005550003', 'no-answer', 'no one answered'],
  ])('a call to %s ends on its own: the page shows "%s — %s" and offers no Hang up', async (to, status, reason) => {
    const profile = mkdtempSync(join(tmpdir(), 'voice-token-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 900, height: 1200 },
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const reads: string[] = [];
      page.on('response', (r) => {
        if (new URL(r.url()).search.startsWith('?callSid=')) reads.push(`${r.request().method()} ${r.status()}`);
      });
      await page.goto(`${api.demoUrl}/`);
      await page.getByLabel('Session token').fill(await signDevToken(secrets, { issuer: `${api.url}/auth/v1`, sub: randomUUID(), ttlSeconds: 3600 }));
      await page.getByRole('button', { name: 'Use this session' }).click();
      await page.getByRole('button', { name: 'Open voice session' }).click();
      await page.locator('#session-state', { hasText: 'Voice session active' }).waitFor();
      await page.getByLabel('Number (E.164)').fill(to);
      await page.getByRole('button', { name: 'Call', exact: true }).click();

      const state = page.locator('#call-state');
      await state.filter({ hasText: /: queued\.$/ }).waitFor();
      expect(await page.getByRole('button', { name: 'Hang up' }).isEnabled()).toBe(true);
      const sid = /Call (CA[0-9a-f]{32})/.exec((await state.textContent()) ?? '')?.[1];
      expect(sid).toBeDefined();

      // Nobody clicks anything: the page reads the call until Twilio (the stand-in) reports it over.
      await state.filter({ hasText: `Call ${sid}: ${status} — ${reason}.` }).waitFor({ timeout: 20_000 });
      expect(await state.getAttribute('data-status')).toBe(status);
      expect(await page.getByRole('button', { name: 'Hang up' }).isDisabled()).toBe(true);
      expect(await page.locator('#error').isHidden()).toBe(true);
      expect(api.twilio!.calls.get(sid!)?.status).toBe(status);
      await page.screenshot({ path: join(ARTIFACTS, `browser-call-ends-${status}.png`), fullPage: true });

      // And then it stops reading: no further GET within the next two poll intervals.
      const count = reads.length;
      expect(count).toBeGreaterThan(0);
      expect(reads.every((r) => r === 'GET 200')).toBe(true);
      await page.waitForTimeout(3200);
      expect(reads).toHaveLength(count);
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }, 60_000);
});
