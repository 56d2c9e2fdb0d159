import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Whole-run guard: every structured log line any test produced (functions in-process, `npm start`
 * children) is scanned after the run for what must never be logged: JWTs, bearer credentials, private keys,
 * full phone numbers, and the canaries tests registered (their generated secrets). A hit fails the run.
 */

/** What may never appear in a log line, whoever wrote it. */
export const FORBIDDEN: readonly { readonly name: string; readonly pattern: RegExp }[] = [
  { name: 'a JWT', pattern: /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/ },
  { name: 'a bearer credential', pattern: /Bearer\s+[A-Za-z0-9._~+/-]{10,}/ },
  { name: 'a private key', pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/ },
  { name: 'a full phone number', pattern: /\+[1-9]\d{7,14}(?!\d)/ },
];

/**
 * Lines (shortened) that break a rule or contain a canary. The rules apply to the functions' own lines
 * (Powertools log lines and EMF); the local gateway's access log repeats request paths as sent, which a fuzz
 * test fills with anything. Canaries apply to every line.
 */
export function findLeaks(lines: readonly string[], canaries: readonly string[]): string[] {
  const leaks: string[] = [];
  for (const line of lines) {
    const ours = line.includes('"level":') || line.includes('"_aws":');
    const rule = ours ? FORBIDDEN.find((f) => f.pattern.test(line)) : undefined;
    const canary = canaries.some((c) => line.includes(c));
    if (rule || canary) leaks.push(`${rule ? rule.name : 'a registered canary'} in: ${line.slice(0, 160)}…`);
  }
  return leaks;
}

export function setup(): void {
  process.env['LOG_CAPTURE_DIR'] ??= mkdtempSync(join(tmpdir(), 'voice-token-logs-'));
}

export function teardown(): void {
  const dir = process.env['LOG_CAPTURE_DIR'];
  if (!dir) return;
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return; // another project's teardown already scanned and removed it
  }
  const read = (prefix: string) => files.filter((f) => f.startsWith(prefix)).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));
  const leaks = findLeaks(read('log-'), read('canaries-'));
  rmSync(dir, { recursive: true, force: true });
  if (leaks.length) throw new Error(`Log scan: ${leaks.length} log line(s) contain what must never be logged:\n${leaks.slice(0, 20).join('\n')}`);
}
