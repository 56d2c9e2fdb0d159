import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { demoServer } from '../../local/demo-server';
import { close, listen } from '../../local/http-util';
import { type LocalSecrets, signDevToken } from '../../local/keys';
import type { LocalApi } from '../../local/server';
import { send } from '../support/http';
import { ARTIFACTS, CHROMIUM, haveChromium, startLocalForBrowser } from '../support/browser';

/**
 * The browser-facing promises in a real browser: Debian's Chromium, driven by playwright-core, loads the
 * demo page that local mode serves on its own (allowlisted) origin and uses the API cross-origin, with
 * preflight, exactly as a deployed frontend would. A copy of the page on a second, foreign origin shows
 * what the browser does there. Every scenario leaves a screenshot in test-artifacts/.
 *
 * Skipped, with a note, only when /usr/bin/chromium is absent (CI installs it: see .ci/run).
 */

const JWT = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;

// Code run inside the page, as strings: this project type-checks without the DOM library.
/** Markup, both storages, cookies, IndexedDB databases and Cache Storage names of the page. */
const IN_PAGE_EVERYTHING = `(async () => {
  const dump = (s) => JSON.stringify(Object.fromEntries(Object.entries(s)));
  const dbs = indexedDB.databases ? await indexedDB.databases() : [];
  const cacheNames = self.caches ? await self.caches.keys() : [];
  return [document.documentElement.outerHTML, dump(localStorage), dump(sessionStorage), document.cookie, JSON.stringify(dbs), JSON.stringify(cacheNames)].join('\\n');
})()`;
/** What the page shows after an action: its status line, or its error box with code, status and Retry-After. */
const IN_PAGE_OUTCOME = `(() => {
  const box = document.getElementById('error');
  const status = document.getElementById('status').textContent || '';
  if (box.hidden) return { status };
  const { code = '', status: httpStatus = '', retryAfter } = box.dataset;
  return { status, error: { code, status: httpStatus, ...(retryAfter === undefined ? {} : { retryAfter }), text: box.textContent || '' } };
})()`;

if (!haveChromium) {
  process.stderr.write(`\nBrowser tests skipped: no Chromium at ${CHROMIUM} (install it with: apt-get install -y chromium)\n\n`);
  test.skip(`browser tests (skipped: no Chromium at ${CHROMIUM}; apt-get install -y chromium)`, () => undefined);
}

const maybe = haveChromium ? describe : describe.skip;

maybe('the demo page in Chromium', () => {
  let api: LocalApi;
  let secrets: LocalSecrets;
  let foreign: Server;
  let foreignUrl: string;
  const accessLog: string[] = [];
  /** Every Supabase token a page was given: the only JWTs a page may ever hold. */
  const pasted = new Set<string>();

  beforeAll(async () => {
    ({ api, secrets } = await startLocalForBrowser('voice-token-browser-', { log: (line) => accessLog.push(line) }));
    // The same page, served from an origin that is not on the allowlist.
    foreign = demoServer({ apiUrl: api.url, apiPort: api.port });
    foreignUrl = `http://127.0.0.1:${await listen(foreign, 0)}`;
    expect(process.env['ALLOWED_ORIGINS']!.split(',')).toContain(api.demoUrl);
    expect(process.env['ALLOWED_ORIGINS']!.split(',')).not.toContain(foreignUrl);
  }, 60_000);

  afterAll(async () => {
    if (foreign) await close(foreign);
    if (api) await api.stop();
  });

  async function token(ttlSeconds = 3600, sub: string = randomUUID()): Promise<string> {
    const t = await signDevToken(secrets, { issuer: `${api.url}/auth/v1`, sub, ttlSeconds });
    pasted.add(t);
    return t;
  }

  interface Session {
    readonly page: Page;
    readonly context: BrowserContext;
    /** Every response the browser received, with its body where the page could have read it. */
    readonly responses: { url: string; status: number; headers: Record<string, string>; body: string }[];
    readonly consoleMessages: string[];
    /** The page's storage, cookies and markup, and every response: everything a Twilio token could hide in. */
    everything(): Promise<string>;
    close(): Promise<void>;
  }

  /** A fresh Chromium with its own profile directory, on the given page. */
  async function open(url: string): Promise<Session> {
    const profile = mkdtempSync(join(tmpdir(), 'voice-token-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 900, height: 1200 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const responses: Session['responses'] = [];
    const pending: Promise<void>[] = [];
    const consoleMessages: string[] = [];
    page.on('console', (m) => consoleMessages.push(m.text()));
    page.on('response', (r) => {
      pending.push(
        (async () => {
          const body = await r.text().catch(() => '');
          responses.push({ url: r.url(), status: r.status(), headers: await r.allHeaders(), body });
        })(),
      );
    });
    await page.goto(url);
    return {
      page,
      context,
      responses,
      consoleMessages,
      everything: async () => {
        await Promise.all(pending);
        const inPage = await page.evaluate<string>(IN_PAGE_EVERYTHING);
        return [inPage, JSON.stringify(await context.cookies()), ...responses.map((r) => `${r.url} ${r.status} ${JSON.stringify(r.headers)} ${r.body}`)].join('\n');
      },
      close: async () => {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  }

  async function signIn(page: Page, t: string): Promise<void> {
    await page.getByLabel('Session token').fill(t);
    await page.getByRole('button', { name: 'Use this session' }).click();
    await expect(page.locator('#signed-in-as').textContent()).resolves.toMatch(/^Signed in as /);
  }

  /** Waits until an action has finished: the status line or the error box says something new. */
  interface Outcome {
    status: string;
    error?: { code: string; status: string; retryAfter?: string; text: string };
  }
  async function outcome(page: Page, click: () => Promise<void>): Promise<Outcome> {
    await page.evaluate(`document.getElementById('status').textContent = ''; document.getElementById('error').hidden = true;`);
    await click();
    // A locator, not waitForFunction: the page's CSP (rightly) forbids the eval that a string predicate needs.
    await page.locator('#status:not(:empty), #error:not([hidden])').first().waitFor();
    return page.evaluate<Outcome>(IN_PAGE_OUTCOME);
  }

  /** No JWT other than the Supabase tokens the test pasted: in particular no Twilio Access Token. */
  function expectNoForeignJwt(text: string): void {
    const found = [...text.matchAll(JWT)].map((m) => m[0]);
    expect(found.filter((t) => !pasted.has(t))).toEqual([]);
  }

  test('from the allowed demo origin, a user signs in, opens a session, calls and hangs up; no Twilio token reaches the browser', async () => {
    const s = await open(`${api.demoUrl}/`);
    try {
      const callsBefore = api.twilio!.calls.size;
      await signIn(s.page, await token());
      expect((await outcome(s.page, () => s.page.getByRole('button', { name: 'Open voice session' }).click())).status).toBe('Voice session open.');
      expect(await s.page.locator('#session-state').textContent()).toMatch(/^Voice session active until /);
      expect((await outcome(s.page, () => s.page.getByRole('button', { name: 'Call', exact: true }).click())).status).toBe('Calling +14155550123.');
      const callState = (await s.page.locator('#call-state').textContent()) ?? '';
      const sid = /Call (CA[0-9a-f]{32}): queued\./.exec(callState)?.[1];
      expect(sid).toBeDefined();
      // Live at Twilio: the stand-in moves it on (initiated, ringing…) as soon as it is placed.
      expect(['queued', 'initiated', 'ringing', 'in-progress']).toContain(api.twilio!.calls.get(sid!)?.status);
      expect((await outcome(s.page, () => s.page.getByRole('button', { name: 'Hang up' }).click())).status).toBe('Call ended.');
      expect(await s.page.locator('#call-state').textContent()).toBe(`Call ${sid}: completed.`);
      expect(api.twilio!.calls.get(sid!)?.status).toBe('completed');
      expect(api.twilio!.calls.size).toBe(callsBefore + 1);
      await s.page.screenshot({ path: join(ARTIFACTS, 'browser-allowed-origin-call.png'), fullPage: true });

      // The browser really went cross-origin and read the answers: they named its origin.
      const apiAnswers = s.responses.filter((r) => r.url.startsWith(`${api.url}/api/`));
      // The page reads the live call every 1.5 s (GET …/voice?callSid=); any such read was this call's, and readable.
      const reads = apiAnswers.filter((r) => new URL(r.url).search !== '');
      for (const r of reads) expect(`${new URL(r.url).search} ${r.status}`).toBe(`?callSid=${sid} 200`);
      expect(apiAnswers.filter((r) => !reads.includes(r)).map((r) => `${new URL(r.url).pathname} ${r.status}`)).toEqual(['/api/twilio/token 200', '/api/twilio/voice 201', '/api/twilio/hangup 200']);
      for (const r of apiAnswers) expect(r.headers['access-control-allow-origin']).toBe(api.demoUrl);
      const everything = await s.everything();
      expect(everything).toContain('"expiresAt"');
      expectNoForeignJwt(everything);
      expect(everything).not.toContain(secrets.twilio['apiKeySecret']!);
    } finally {
      await s.close();
    }
  }, 60_000);

  test('from a foreign origin, the browser blocks every request and the API does nothing', async () => {
    const s = await open(`${foreignUrl}/`);
    try {
      const sub = randomUUID();
      const t = await token(3600, sub);
      const twilioRequests = api.twilio!.requests.length;
      const logFrom = accessLog.length;
      await signIn(s.page, t);
      const opening = await outcome(s.page, () => s.page.getByRole('button', { name: 'Open voice session' }).click());
      expect(opening.error).toMatchObject({ code: 'network_error', status: '0' });
      const calling = await outcome(s.page, () => s.page.getByRole('button', { name: 'Call', exact: true }).click());
      expect(calling.error).toMatchObject({ code: 'network_error', status: '0' });
      // Hanging up (the page offers no button without a call): the client on the same page, same result.
      const hangup = await s.page.evaluate<string>(`(async () => {
        const { createVoiceClient } = await import('/voice-client.js');
        const voice = createVoiceClient({ baseUrl: ${JSON.stringify(api.url)}, getAccessToken: () => ${JSON.stringify(t)} });
        return voice.hangup('CA${'0'.repeat(32)}').then(() => 'ended', (e) => e.code);
      })()`);
      expect(hangup).toBe('network_error');
      await s.page.screenshot({ path: join(ARTIFACTS, 'browser-foreign-origin-blocked.png'), fullPage: true });

      // Chromium says why: CORS.
      expect(s.consoleMessages.join('\n')).toMatch(/blocked by CORS policy/);
      // Only refused preflights reached the API: no POST, so nothing ran behind the authorizer.
      const lines = accessLog.slice(logFrom).map((l) => JSON.parse(l) as { httpMethod: string; status: number; resourcePath: string });
      expect(lines.length).toBeGreaterThan(0);
      for (const l of lines) expect(`${l.httpMethod} ${l.status}`).toBe('OPTIONS 403');
      expect(api.twilio!.requests.length).toBe(twilioRequests);
      // And no voice session was opened for this user: a direct call still finds none.
      const probe = await send(`${api.url}/api/twilio/voice`, {
        headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ to: '+14155550123' }),
        localAddress: '127.0.0.90',
      });
      expect(probe.status).toBe(409);
      expect(probe.json<{ error: { code: string } }>().error.code).toBe('no_voice_session');
      expectNoForeignJwt(await s.everything());
    } finally {
      await s.close();
    }
  }, 60_000);

  test('an expired session shows the readable 401 to the allowed origin, not a CORS error', async () => {
    const s = await open(`${api.demoUrl}/`);
    try {
      await signIn(s.page, await token(-120));
      const r = await outcome(s.page, () => s.page.getByRole('button', { name: 'Open voice session' }).click());
      expect(r.error).toMatchObject({ code: 'unauthenticated', status: '401' });
      expect(r.error!.text).toMatch(/sign in again/i);
      expect(await s.page.locator('#signed-in-as').textContent()).toBe('Not signed in.');
      await s.page.screenshot({ path: join(ARTIFACTS, 'browser-expired-session-401.png'), fullPage: true });
      const answer = s.responses.find((x) => x.url === `${api.url}/api/twilio/token`);
      expect(answer?.status).toBe(401);
      expect(answer?.headers['access-control-allow-origin']).toBe(api.demoUrl);
      expect(s.consoleMessages.join('\n')).not.toMatch(/CORS/);
      expectNoForeignJwt(await s.everything());
    } finally {
      await s.close();
    }
  }, 60_000);

  test('logging out ends the voice session through a cross-origin DELETE; the session is then gone', async () => {
    const s = await open(`${api.demoUrl}/`);
    try {
      const t = await token();
      await signIn(s.page, t);
      expect((await outcome(s.page, () => s.page.getByRole('button', { name: 'Open voice session' }).click())).status).toBe('Voice session open.');
      expect((await outcome(s.page, () => s.page.getByRole('button', { name: 'Log out' }).click())).status).toBe('Logged out: the voice session has ended.');
      expect(await s.page.locator('#signed-in-as').textContent()).toBe('Not signed in.');
      expect(await s.page.getByRole('button', { name: 'Log out' }).isDisabled()).toBe(true);
      await s.page.screenshot({ path: join(ARTIFACTS, 'browser-logout.png'), fullPage: true });

      // The browser's preflight allowed DELETE, and the page could read the 204.
      const answers = s.responses.filter((r) => r.url.startsWith(`${api.url}/api/`)).map((r) => `${new URL(r.url).pathname} ${r.status} ${r.headers['access-control-allow-origin']}`);
      expect(answers).toEqual([`/api/twilio/token 200 ${api.demoUrl}`, `/api/twilio/token 204 ${api.demoUrl}`]);
      const probe = await send(`${api.url}/api/twilio/voice`, {
        headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ to: '+14155550123' }),
        localAddress: '127.0.0.91',
      });
      expect(probe.status).toBe(409);
      expectNoForeignJwt(await s.everything());
    } finally {
      await s.close();
    }
  }, 60_000);

  test('a call over the concurrent-call cap shows a readable 429 with its Retry-After', async () => {
    const s = await open(`${api.demoUrl}/`);
    try {
      await signIn(s.page, await token());
      await outcome(s.page, () => s.page.getByRole('button', { name: 'Open voice session' }).click());
      // Two live calls are allowed at once (the default cap); the stand-in's far end talks for 30 s.
      const call = () => outcome(s.page, () => s.page.getByRole('button', { name: 'Call', exact: true }).click());
      expect((await call()).status).toBe('Calling +14155550123.');
      expect((await call()).status).toBe('Calling +14155550123.');
      const third = await call();
      expect(third.error).toMatchObject({ code: 'rate_limited', status: '429', retryAfter: '5' });
      expect(third.error!.text).toContain('the most calls allowed at once');
      expect(third.error!.text).toContain('try again in 5 seconds');
      await s.page.screenshot({ path: join(ARTIFACTS, 'browser-concurrent-call-cap-429.png'), fullPage: true });
      // Hanging up the current call frees a slot at once.
      expect((await outcome(s.page, () => s.page.getByRole('button', { name: 'Hang up' }).click())).status).toBe('Call ended.');
      expect((await call()).status).toBe('Calling +14155550123.');
    } finally {
      await s.close();
    }
  }, 60_000);

  test('a rate-limited request shows its Retry-After', async () => {
    const s = await open(`${api.demoUrl}/`);
    try {
      await signIn(s.page, await token());
      // Five /token requests per IP per minute (the whole browser is one IP); spare ones for a minute boundary.
      let r: Outcome = { status: '' };
      for (let i = 0; i < 12 && r.error?.code !== 'rate_limited'; i++) r = await outcome(s.page, () => s.page.getByRole('button', { name: 'Open voice session' }).click());
      expect(r.error).toMatchObject({ code: 'rate_limited', status: '429' });
      const seconds = Number(r.error!.retryAfter);
      expect(seconds).toBeGreaterThanOrEqual(1);
      expect(seconds).toBeLessThanOrEqual(60);
      expect(r.error!.text).toContain(`Try again in ${seconds} seconds`);
      expect(r.error!.text).toContain(`Retry-After: ${seconds}`);
      await s.page.screenshot({ path: join(ARTIFACTS, 'browser-rate-limited-retry-after.png'), fullPage: true });
      expectNoForeignJwt(await s.everything());
    } finally {
      await s.close();
    }
  }, 90_000);
});
