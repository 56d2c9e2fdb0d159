import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Captures every structured log line the test run produces, for the whole-run scan in log-scan.ts: a
 * setup file wraps this worker's stdout and stderr (where Powertools writes), and local-process.ts passes
 * the output of `npm start` children through `captureLogChunk`. Only JSON lines are kept (log lines, EMF,
 * access logs), not jest's own output. Without LOG_CAPTURE_DIR (a run not started by jest) it does nothing.
 */

const KEY = Symbol.for('voice-token.log-capture');

const file = (name: string) => {
  const dir = process.env['LOG_CAPTURE_DIR'];
  return dir ? join(dir, `${name}-${process.pid}.ndjson`) : undefined;
};

/** Appends the JSON lines of one chunk of log output to this run's capture. */
export function captureLogChunk(chunk: string | Uint8Array): void {
  const target = file('log');
  if (!target) return;
  const lines = String(chunk)
    .split('\n')
    .filter((l) => l.startsWith('{'));
  if (lines.length) appendFileSync(target, `${lines.join('\n')}\n`);
}

/** Registers a secret value a test holds; the whole-run scan fails if any log line contains it. */
export function registerCanary(...values: string[]): void {
  const target = file('canaries');
  if (target) appendFileSync(target, `${values.filter((v) => v.length >= 8).join('\n')}\n`);
}

/** Wraps this process's stdout and stderr once (setup files run once per test file, in the same worker). */
export function installLogCapture(): void {
  const holder = process as unknown as Record<symbol, boolean>;
  if (holder[KEY] || !process.env['LOG_CAPTURE_DIR']) return;
  holder[KEY] = true;
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      captureLogChunk(chunk);
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
}
